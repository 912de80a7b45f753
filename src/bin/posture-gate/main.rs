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
    /// The embedded demo: a throwaway PKI, a demo app, two demo devices and the gate.
    Demo {
        /// Where to write the PKI, the config and the devices (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Port of the gate on localhost.
        #[arg(long, default_value_t = 8443)]
        port: u16,
    },
    /// Development PKI: a throwaway root CA, server and device certificates.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create a root CA, a device CA and a server certificate for localhost in DIR.
    Init { dir: PathBuf },
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
        Command::Pki { command } => match command {
            PkiCommand::Init { dir } => {
                let p = pki::init(&dir).with_context(|| format!("pki init {}", dir.display()))?;
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
                println!(
                    "server certificate (localhost, 127.0.0.1):   {}",
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
        },
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
            let today = time::OffsetDateTime::now_utc().date();
            print!("{}", config::summary(&snapshot, today));
            Ok(ExitCode::SUCCESS)
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
