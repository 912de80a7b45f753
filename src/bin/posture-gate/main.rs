//! The `posture-gate` command: parses arguments, calls the library, maps
//! errors to exit codes. No decisions are made here.

mod demo;
mod pki;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use posture_core::attestation::{NonceCheck, Verifier};
use posture_core::config::{self, Snapshot};
use posture_core::decision;
use posture_core::verdict::Invalid;
use posture_gate::gate::Gate;

/// Exit code for usage and configuration errors (clap uses it too).
const EXIT_USAGE: u8 = 2;
/// Exit code of `verify` for a token that is not valid.
const EXIT_INVALID_TOKEN: u8 = 1;
/// Exit code of `report` when prohibited software is still in use, so cron
/// can alert on it.
const EXIT_STILL_IN_USE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "posture-gate",
    version,
    about = "Mutual-TLS posture gate: admits devices by signed posture attestation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file and print a one-screen summary.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
    /// Verify an attestation token offline and print the verdict JSON (spec section 5).
    /// Exit 0: valid token (whatever the decisions); 1: invalid token; 2: usage or config error.
    Verify {
        /// File with the token (JWS compact serialization).
        #[arg(long)]
        token: PathBuf,
        /// PEM file with the trust anchor(s) for the token's x5c chain.
        #[arg(long)]
        trust_anchor: PathBuf,
        /// PEM file with the device's client certificate, to check the device binding.
        #[arg(long)]
        client_cert: Option<PathBuf>,
        /// Configuration whose segments and policies judge the token; without it one
        /// segment `default` denies the whole built-in catalogue.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Check as of this time (RFC 3339) instead of now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Run the gate: the mutual-TLS reverse proxy that enforces posture.
    Serve {
        /// The configuration file (TOML); reloaded on SIGHUP and when it changes.
        #[arg(long)]
        config: PathBuf,
    },
    /// Ask a running gate's admin listener whether it is alive (GET /healthz), for
    /// container health checks without curl in the image. Exit 0: alive; 1: not.
    Healthcheck {
        /// The `[admin] listen` address of the gate.
        #[arg(long, default_value = "127.0.0.1:9900")]
        admin: std::net::SocketAddr,
    },
    /// The embedded demo: a throwaway PKI, a demo app, two demo devices and the gate.
    Demo {
        /// Where to write the PKI, the config and the devices (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Port of the gate on localhost.
        #[arg(long, default_value_t = 8443)]
        port: u16,
    },
    /// Where prohibited software is still in use, by organisation, unit, catalogue entry or
    /// device, from audit logs (plain, rotated or gzip'd; also the `INFO audit:` lines of
    /// earlier gates). Exit 0: nothing still in use; 3: something is; 2: usage or read error.
    Report {
        /// Audit log files, in any order (e.g. /var/log/posture-gate/audit.jsonl*); `-` reads
        /// standard input.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Only events from this time on: RFC 3339, or a day (YYYY-MM-DD, from midnight UTC).
        #[arg(long)]
        since: Option<String>,
        /// How findings are grouped.
        #[arg(long, value_enum, default_value_t = ReportBy::Organisation)]
        by: ReportBy,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Development PKI: a throwaway root CA, server and device certificates.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportBy {
    /// The certificate's O: department, supplier or agency.
    #[value(alias = "organization")]
    Organisation,
    /// The certificate's OU.
    Unit,
    /// The catalogue entry.
    #[value(alias = "catalog")]
    Catalogue,
    /// The device.
    Device,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    /// Readable in 100 columns.
    Table,
    /// RFC 4180.
    Csv,
    /// One JSON document.
    Json,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create a root CA, a device CA and a server certificate for localhost in DIR.
    Init {
        dir: PathBuf,
        /// A DNS name or IP address clients reach the gate by, put in the server
        /// certificate besides localhost (repeat for more: --host gate.example.org
        /// --host 192.0.2.10). A name may be a wildcard such as *.example.org.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
    /// Issue a device certificate and key into DIR/devices/NAME/.
    IssueDevice {
        dir: PathBuf,
        /// Device name (the certificate's CN).
        #[arg(long)]
        name: String,
        /// Organisation (O): the department, supplier or agency.
        #[arg(long)]
        org: String,
        /// Organisational unit (OU).
        #[arg(long)]
        ou: Option<String>,
    },
    /// Issue a device certificate for a PKCS#10 request (openssl req -new ...) into
    /// DIR/devices/NAME/cert.pem, with the checks and contents of issue-device: the
    /// request's signature must verify, its key be P-256, P-384 or Ed25519, and it must
    /// not ask to be a CA; its other extensions are ignored. NAME comes from the
    /// request's CN unless given here; O (required) and OU are the signer's word, and a
    /// request that asks for another O or OU is refused.
    SignCsr {
        dir: PathBuf,
        /// The request, PEM (CERTIFICATE REQUEST) or DER.
        #[arg(long)]
        csr: PathBuf,
        /// Device name (the certificate's CN) instead of the request's CN.
        #[arg(long)]
        name: Option<String>,
        /// Organisation (O) the certificate states (required).
        #[arg(long)]
        org: Option<String>,
        /// Organisational unit (OU) the certificate states.
        #[arg(long)]
        ou: Option<String>,
    },
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for the whole process; the gate also passes it explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The audit log is the gate's own (`[audit]`, see the audit module);
    // its default output is standard output, never stderr with the
    // diagnostics above.
    posture_gate::audit::use_stdout();
    posture_gate::gate::note_audit_writer_installed();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posture-gate: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Verify {
            token,
            trust_anchor,
            client_cert,
            config,
            now,
        } => verify(
            &token,
            &trust_anchor,
            client_cert.as_deref(),
            config.as_deref(),
            now.as_deref(),
        ),
        Command::Serve { config } => serve(config),
        Command::Demo { dir, port } => demo(dir, port),
        Command::Healthcheck { admin } => Ok(healthcheck(admin)),
        Command::Report {
            logs,
            since,
            by,
            format,
        } => report(&logs, since.as_deref(), by, format),
        Command::Pki { command } => match command {
            PkiCommand::Init { dir, hosts } => {
                let p = pki::init(&dir, &hosts)
                    .with_context(|| format!("pki init {}", dir.display()))?;
                println!(
                    "root CA (trust anchor and client-CA bundle): {}",
                    p.ca_cert.display()
                );
                println!(
                    "root CA key (keep offline):                  {}",
                    p.ca_key.display()
                );
                println!(
                    "device CA (issues device certificates):      {}",
                    p.device_ca_cert.display()
                );
                let names = ["localhost", "127.0.0.1", "::1"]
                    .into_iter()
                    .chain(hosts.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "server certificate:                          {}\n  \
                     for {names}",
                    p.server_cert.display()
                );
                println!(
                    "server key:                                  {}",
                    p.server_key.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            PkiCommand::IssueDevice { dir, name, org, ou } => {
                let p = pki::issue_device(&dir, &name, &org, ou.as_deref())
                    .with_context(|| format!("pki issue-device {}", dir.display()))?;
                println!(
                    "device certificate (leaf + device CA): {}",
                    p.cert.display()
                );
                println!("device key:                            {}", p.key.display());
                Ok(ExitCode::SUCCESS)
            }
            PkiCommand::SignCsr {
                dir,
                csr,
                name,
                org,
                ou,
            } => {
                let issued = pki::sign_csr(&dir, &csr, name, org, ou)
                    .with_context(|| format!("pki sign-csr {}", dir.display()))?;
                print!("{}", pki::sign_csr_report(&dir, &issued));
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

/// How long the health check may take in all: well inside Docker's
/// default HEALTHCHECK timeout of 30 s.
const HEALTHCHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// GET /healthz over plain HTTP/1.1 with std's blocking socket: the check
/// runs every few seconds in a container, so no runtime is started.
fn healthcheck(admin: std::net::SocketAddr) -> ExitCode {
    use std::io::Read as _;
    let attempt = || -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&admin, HEALTHCHECK_TIMEOUT)?;
        stream.set_read_timeout(Some(HEALTHCHECK_TIMEOUT))?;
        stream.set_write_timeout(Some(HEALTHCHECK_TIMEOUT))?;
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
        )?;
        // The status line is all that is needed; the answer is a few bytes.
        let mut head = Vec::with_capacity(256);
        stream.take(4096).read_to_end(&mut head)?;
        Ok(String::from_utf8_lossy(&head).into_owned())
    };
    match attempt() {
        Ok(answer) if answer.starts_with("HTTP/1.1 200 ") => ExitCode::SUCCESS,
        Ok(answer) => {
            let status = answer.lines().next().unwrap_or("no answer");
            eprintln!("posture-gate healthcheck: {admin}/healthz answered {status:?}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("posture-gate healthcheck: {admin}/healthz: {e}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(config: PathBuf) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let gate = Gate::bind(config.clone())
            .await
            .with_context(|| format!("cannot start the gate with {}", config.display()))?;
        tracing::info!(addr = %gate.local_addr(), config = %config.display(), "posture-gate serving");
        if let Some(admin) = gate.admin_addr() {
            tracing::info!(addr = %admin, "admin endpoints (/metrics, /healthz, /readyz) listening");
        }
        gate.run().await.context("the gate stopped with an error")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn demo(dir: Option<PathBuf>, port: u16) -> Result<ExitCode> {
    let dir = match dir {
        Some(d) => d,
        None => {
            let suffix: u32 = rand::random();
            std::env::temp_dir().join(format!("posture-gate-demo-{suffix:08x}"))
        }
    };
    runtime()?.block_on(async {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the demo app on 127.0.0.1")?;
        let upstream_addr = upstream.local_addr()?;
        let files = demo::prepare(&dir, port, upstream_addr)?;
        tokio::spawn(demo::serve_upstream(upstream));
        let gate = Gate::bind(files.config.clone()).await.with_context(|| {
            format!("cannot start the gate on port {port} (is it in use? try --port)")
        })?;
        // A closed stdout (the demo piped into `head`) must not stop the gate.
        let _ = writeln!(std::io::stdout(), "{}", demo::instructions(&files, port));
        tokio::spawn(demo::keep_attestations_fresh(files.devices));
        gate.run().await.context("the gate stopped with an error")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn check_config(file: &Path) -> Result<ExitCode> {
    match config::load(file) {
        Ok(snapshot) => {
            let now = time::OffsetDateTime::now_utc();
            print!("{}", config::summary_at(&snapshot, now));
            // The gate would run with these, logging them as errors; a
            // check before deploying refuses them.
            let problems = config::certificate_problems(&snapshot, now.unix_timestamp());
            for problem in &problems {
                eprintln!("{}: {problem}", file.display());
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_USAGE)
            })
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::from(EXIT_USAGE))
        }
    }
}

fn verify(
    token: &Path,
    trust_anchor: &Path,
    client_cert: Option<&Path>,
    config_file: Option<&Path>,
    now: Option<&str>,
) -> Result<ExitCode> {
    let anchors = read_certs(trust_anchor)?;
    let snapshot = match config_file {
        Some(f) => match config::load(f) {
            Ok(s) => s,
            Err(errors) => {
                eprintln!("{errors}");
                return Ok(ExitCode::from(EXIT_USAGE));
            }
        },
        None => Snapshot::builtin_default(anchors.clone()).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let verifier = Verifier::new(&anchors, snapshot.attestation.verifier.clone())
        .with_context(|| format!("trust anchor {}", trust_anchor.display()))?;
    let client = match client_cert {
        Some(p) => Some(
            read_certs(p)?
                .into_iter()
                .next()
                .with_context(|| format!("{}: no certificate", p.display()))?,
        ),
        None => None,
    };
    let now = match now {
        Some(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("--now {s:?} is not an RFC 3339 time"))?
            .unix_timestamp(),
        None => time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let bytes =
        std::fs::read(token).with_context(|| format!("cannot read token {}", token.display()))?;
    // Files usually end with a newline; the token itself never contains white space.
    let token_bytes = bytes.trim_ascii();
    let result = decision::attest(
        &snapshot,
        &verifier,
        token_bytes,
        client.as_ref().map(|c| c.as_ref()),
        now,
        NonceCheck::Skip,
    );
    match result {
        Ok((_, verdict)) => {
            println!("{}", serde_json::to_string_pretty(&verdict)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            println!("{}", serde_json::to_string_pretty(&Invalid::new(reason))?);
            Ok(ExitCode::from(EXIT_INVALID_TOKEN))
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate in file", path.display());
    }
    Ok(certs)
}

fn report(
    logs: &[PathBuf],
    since: Option<&str>,
    by: ReportBy,
    format: ReportFormat,
) -> Result<ExitCode> {
    use posture_gate::report::{self, Format, GroupBy};
    let since = match since {
        Some(s) => match report::parse_since(s) {
            Some(t) => Some(t),
            None => bail!(
                "--since {s:?}: give RFC 3339 (2026-11-30T08:00:00+01:00) or a day (2026-11-30)"
            ),
        },
        None => None,
    };
    let by = match by {
        ReportBy::Organisation => GroupBy::Organisation,
        ReportBy::Unit => GroupBy::Unit,
        ReportBy::Catalogue => GroupBy::Catalogue,
        ReportBy::Device => GroupBy::Device,
    };
    let format = match format {
        ReportFormat::Table => Format::Table,
        ReportFormat::Csv => Format::Csv,
        ReportFormat::Json => Format::Json,
    };
    if logs.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        bail!("standard input (-) can be read only once");
    }
    let mut reader = report::Reader::new(since);
    for log in logs {
        reader.read_path(log)?;
    }
    let report = reader.finish(time::OffsetDateTime::now_utc().date());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match report
        .write(by, format, &mut out)
        .and_then(|()| out.flush())
    {
        Ok(()) => {}
        // `report ... | head`: the reader has what it wanted; the exit code
        // still tells what the whole report found.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(e).context("writing the report"),
    }
    if format == Format::Csv {
        if let Some(note) = report.skipped_note() {
            eprintln!("posture-gate report: {note}");
        }
    }
    Ok(if report.still_in_use() {
        ExitCode::from(EXIT_STILL_IN_USE)
    } else {
        ExitCode::SUCCESS
    })
}
