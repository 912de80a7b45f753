//! The `posture-agent` command, run on the endpoint: collects the inventory,
//! signs it with the device key and attests to the gate.
//!
//! Settings come from the command line, then the configuration file
//! (`posture_agent::config`), so the installed service and a person run the
//! same gate, CA, certificate and key. What a person reads is in Dutch or
//! English (`posture_agent::i18n`).
//!
//! Exit codes: 0 allowed on every segment (or the command succeeded), 3
//! denied on at least one segment, 4 allowed everywhere but warned on at
//! least one segment (a warn rule, including a staged one before its date),
//! 1 on any error (unreachable gate, bad, unreadable or mismatched key, a
//! configuration file that cannot be used, a token the gate refused), 2 for
//! bad usage (clap).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use posture_agent::attest::{attest_once, AttestError, Credentials, GateAnswer};
use posture_agent::config::{self, AgentConfig, ConfigError};
use posture_agent::i18n::{self, Lang};
use posture_agent::report::{self, Outcome};
use posture_agent::{self as agent, Inventory};
use posture_core::attestation::claims::OsFamily;
use posture_core::decision::unix_now as now;

const EXIT_ERROR: u8 = 1;
/// How long one attestation (connect, challenge, post) may take.
const ATTEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The first retry after a failed attestation in `--interval` mode.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);

const EXIT_CODES: &str = "\
Exit codes of attest: 0 allowed on every segment; 3 denied on at least one
segment; 4 allowed, but warned on at least one segment (for a staged rule the
output says from which date access will be refused); 1 an error (unreachable
gate, unreadable or mismatched key, a configuration file that cannot be used,
a report the gate refused: the output gives the reason code and the gate's
reference); 2 wrong arguments. collect and token: 0 done, 1 error.

Settings not given as flags come from the configuration file: --config FILE,
else $POSTURE_AGENT_CONFIG, else /etc/posture-agent/agent.toml (Linux),
/Library/Application Support/posture-agent/agent.toml (macOS),
%ProgramData%\\posture-agent\\agent.toml (Windows) if it exists. Keys: gate,
ca, cert, key, interval, lang. Flags override the file.

Output is in Dutch when LC_ALL, LC_MESSAGES or LANG (the first one set)
starts with nl, else English; --lang or lang in the file decide instead.";

#[derive(Parser)]
#[command(
    name = "posture-agent",
    version,
    about = "Reports this device's posture to a posture-gate",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The configuration file (agent.toml) to read settings from.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The language of the output: nl or en (default: the file's lang,
    /// else the locale's).
    #[arg(long, global = true, value_name = "nl|en", value_parser = parse_lang)]
    lang: Option<Lang>,
    #[command(subcommand)]
    command: Command,
}

/// Where the inventory comes from; by default this machine.
#[derive(Args)]
struct Source {
    /// Import `osqueryi --json` output instead of collecting (tables programs,
    /// deb_packages, rpm_packages, apps, processes, os_version).
    #[arg(long, value_name = "FILE")]
    from_osquery: Option<PathBuf>,
    /// Collect the Linux inventory from the file system under DIR instead of
    /// this machine: a container image, a chroot, a mounted disk. Reads
    /// DIR/var/lib/dpkg/status, DIR/etc/os-release, DIR/proc, DIR/snap (and
    /// the rpm database with `rpm --root DIR`). A macOS tree (with
    /// System/Library/CoreServices/SystemVersion.plist) is read as macOS.
    #[arg(long, value_name = "DIR", conflicts_with = "from_osquery")]
    root: Option<PathBuf>,
}

/// The device's certificate and key (default: cert and key of the
/// configuration file).
#[derive(Args)]
struct Device {
    /// PEM device certificate (leaf first, then its CA chain).
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
    /// PEM private key of the device certificate (PKCS#8 or SEC1; P-256,
    /// P-384 or Ed25519).
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Print what this machine would report (installed software, processes,
    /// OS, security products), without sending anything, and one line
    /// saying whether the built-in catalogue finds anything prohibited.
    Collect {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Attest to the gate over mutual TLS and print the verdict in plain
    /// words. Exit 0: allowed everywhere; 3: denied somewhere; 4: warned
    /// somewhere; 1: error.
    Attest {
        /// The gate, e.g. https://gate.example.nl:8443 (default: gate of the
        /// configuration file).
        #[arg(long, value_name = "URL")]
        gate: Option<String>,
        #[command(flatten)]
        device: Device,
        /// PEM CA bundle that issued the gate's server certificate (default:
        /// ca of the configuration file, else the system's roots).
        #[arg(long, value_name = "PEM")]
        ca: Option<PathBuf>,
        /// Print the gate's verdict JSON instead of words.
        #[arg(long)]
        json: bool,
        /// Keep attesting, at most this far apart (e.g. 10m) and always well
        /// before the posture ages out, retrying sooner after an error.
        #[arg(long, value_name = "DURATION", value_parser = config::parse_interval)]
        interval: Option<Duration>,
        /// Attest once even if the configuration file sets an interval.
        #[arg(long, conflicts_with = "interval")]
        once: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Print a signed attestation token, for scripts and the
    /// `Posture-Attestation` header.
    Token {
        #[command(flatten)]
        device: Device,
        /// A nonce from the gate's challenge endpoint.
        #[arg(long)]
        nonce: Option<String>,
        #[command(flatten)]
        source: Source,
    },
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parse_lang(s: &str) -> Result<Lang, String> {
    config::parse_lang(s).ok_or_else(|| "use nl or en".to_owned())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    // Until the file is read (it may set lang), the flag or the locale.
    let lang = cli
        .lang
        .unwrap_or_else(|| i18n::from_env(|name| std::env::var_os(name)));
    let file = match config::locate(
        cli.config.as_deref(),
        std::env::var_os(config::ENV_VAR),
        &config::default_path(),
    ) {
        None => None,
        Some((path, _)) => match config::load(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("posture-agent: {}", i18n::config_error(&e, lang));
                return ExitCode::from(EXIT_ERROR);
            }
        },
    };
    let lang = cli
        .lang
        .or(file.as_ref().and_then(|f| f.lang))
        .unwrap_or(lang);
    match run(cli.command, file.as_ref(), lang) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posture-agent: {}", explain(&e, lang));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn inventory(source: &Source, lang: Lang) -> Result<Inventory> {
    let inv = match (&source.from_osquery, &source.root) {
        (Some(p), _) => {
            let text = std::fs::read_to_string(p).with_context(|| {
                format!(
                    "{} {}",
                    lang.pick("kan niet lezen:", "cannot read"),
                    p.display()
                )
            })?;
            agent::from_osquery(&text).with_context(|| format!("{}", p.display()))?
        }
        (None, Some(root)) => {
            // A typo in DIR would otherwise give an empty, "clean" inventory
            // with only warnings.
            if !root.is_dir() {
                bail!(
                    "--root {}: {}",
                    root.display(),
                    lang.pick("geen map", "not a directory")
                );
            }
            agent::collect_from(root)
        }
        (None, None) => agent::collect(),
    };
    for w in &inv.warnings {
        tracing::warn!(collector = w.collector, "{}", w.message);
    }
    Ok(inv)
}

/// A label for people (`sub`); the device's identity is its certificate.
fn hostname() -> Option<String> {
    ["/etc/hostname", "/proc/sys/kernel/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
}

/// A setting from its flag, else from the file, else an error that says
/// where it can be given.
fn required<T: Clone>(
    flag: Option<T>,
    from_file: Option<&T>,
    (name, key): (&str, &str),
    file: Option<&AgentConfig>,
    lang: Lang,
) -> Result<T> {
    match flag.or_else(|| from_file.cloned()) {
        Some(v) => Ok(v),
        None => {
            let path = file.map(|f| f.path.display().to_string());
            bail!(i18n::missing(name, key, path.as_deref(), lang))
        }
    }
}

fn credentials(device: Device, file: Option<&AgentConfig>, lang: Lang) -> Result<Credentials> {
    let cert = required(
        device.cert,
        file.and_then(|f| f.cert.as_ref()),
        ("--cert", "cert"),
        file,
        lang,
    )?;
    let key = required(
        device.key,
        file.and_then(|f| f.key.as_ref()),
        ("--key", "key"),
        file,
        lang,
    )?;
    Ok(Credentials::load(&cert, &key)?)
}

fn run(command: Command, file: Option<&AgentConfig>, lang: Lang) -> Result<ExitCode> {
    match command {
        Command::Collect { json, source } => {
            let inv = inventory(&source, lang)?;
            if json {
                emit(&format!("{}\n", agent::render_json(&inv)))?;
            } else {
                emit(&agent::render_table_in(&inv, lang))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            device,
            nonce,
            source,
        } => {
            let creds = credentials(device, file, lang)?;
            let claims = inventory(&source, lang)?.into_claims(now(), nonce, hostname());
            emit(&format!("{}\n", creds.sign(&claims)?))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Attest {
            gate,
            device,
            ca,
            json,
            interval,
            once,
            source,
        } => {
            let gate = required(
                gate,
                file.and_then(|f| f.gate.as_ref()),
                ("--gate", "gate"),
                file,
                lang,
            )?;
            let creds = credentials(device, file, lang)?;
            let attester = Attester {
                gate,
                ca: ca.or_else(|| file.and_then(|f| f.ca.clone())),
                creds,
                source,
                lang,
            };
            let interval = match once {
                true => None,
                false => interval.or(file.and_then(|f| f.interval)),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                match interval {
                    None => attester.once_and_report(json).await,
                    Some(every) => attester.repeat(every, json).await,
                }
            })
        }
    }
}

struct Attester {
    gate: String,
    ca: Option<PathBuf>,
    creds: Credentials,
    source: Source,
    lang: Lang,
}

impl Attester {
    async fn once(&self) -> Result<(GateAnswer, OsFamily)> {
        let inv = inventory(&self.source, self.lang)?;
        let family = inv.os.family;
        let answer = attest_once(
            &self.gate,
            self.ca.as_deref(),
            &self.creds,
            |nonce| inv.into_claims(now(), Some(nonce), hostname()),
            ATTEST_TIMEOUT,
        )
        .await?;
        Ok((answer, family))
    }

    async fn once_and_report(&self, json: bool) -> Result<ExitCode> {
        let (answer, family) = self.once().await?;
        Ok(ExitCode::from(
            report(&answer, family, json, self.lang).exit_code(),
        ))
    }

    /// Re-attests until SIGINT or SIGTERM. The next report goes out after
    /// `every`, or after half the time the posture has left if that is
    /// sooner, so the gate never forgets the device between two reports.
    /// After an error it retries sooner, doubling the wait up to `every`.
    async fn repeat(&self, every: Duration, json: bool) -> Result<ExitCode> {
        let mut backoff = FIRST_BACKOFF.min(every);
        loop {
            let wait = match self.once().await {
                Ok((answer, family)) => {
                    report(&answer, family, json, self.lang);
                    backoff = FIRST_BACKOFF.min(every);
                    let next = next_attestation(&answer, every);
                    tracing::info!(
                        gate = %self.gate,
                        next_in = %humantime::format_duration(next),
                        "attested"
                    );
                    next
                }
                Err(e) => {
                    let wait = backoff;
                    tracing::error!(
                        retry_in = %humantime::format_duration(wait),
                        "{}",
                        explain(&e, self.lang)
                    );
                    backoff = (backoff * 2).min(every);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop_signal() => {
                    tracing::info!("stopping");
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}

/// When to attest again: `every`, or half of what is left of the posture's
/// validity if that is sooner (but not under a second).
fn next_attestation(answer: &GateAnswer, every: Duration) -> Duration {
    let left = time::OffsetDateTime::parse(
        &answer.verdict.valid_until,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .map(|until| (until - time::OffsetDateTime::now_utc()).whole_seconds());
    match left {
        Some(secs) => {
            let half = Duration::from_secs(secs.max(2) as u64 / 2);
            every.min(half)
        }
        None => every,
    }
}

#[cfg(unix)]
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn stop_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// An error in words, in `lang`; a refused token names the gate's reason
/// code, what to do about it and the gate's reference.
fn explain(e: &anyhow::Error, lang: Lang) -> String {
    if let Some(e) = e.downcast_ref::<AttestError>() {
        return i18n::attest_error(e, lang);
    }
    if let Some(e) = e.downcast_ref::<ConfigError>() {
        return i18n::config_error(e, lang);
    }
    format!("{e:#}")
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to standard output"),
    }
}

/// Prints the verdict in plain words (or its JSON, unchanged); the outcome
/// sets the exit code.
fn report(answer: &GateAnswer, os: OsFamily, json: bool, lang: Lang) -> Outcome {
    let v = &answer.verdict;
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
    } else {
        report::words(v, os, lang, answer.reference.as_deref())
    };
    if let Err(e) = emit(&text) {
        tracing::error!("{e:#}");
    }
    report::outcome(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn verdict(json: serde_json::Value) -> posture_core::verdict::Verdict {
        serde_json::from_value(json).unwrap()
    }

    fn answer_valid_for(secs: i64) -> GateAnswer {
        let until = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs);
        let until = until
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        GateAnswer {
            verdict: verdict(serde_json::json!({ "valid": true, "valid_until": until,
                "device": {"subject": "CN=lt-1", "fingerprint_sha256": FINGERPRINT},
                "decisions": {}, "findings": [] })),
            reference: None,
        }
    }

    #[test]
    fn next_attestation_comes_well_before_the_posture_ages_out() {
        let every = Duration::from_secs(600);
        // 15 minutes left: half of it (7.5 min) is sooner than the interval.
        let next = next_attestation(&answer_valid_for(900), every);
        assert!(next <= Duration::from_secs(450), "{next:?}");
        // An hour left: the interval decides.
        assert_eq!(next_attestation(&answer_valid_for(3600), every), every);
        // Already expired or unknown: soon, or the interval.
        assert_eq!(
            next_attestation(&answer_valid_for(-10), every),
            Duration::from_secs(1)
        );
        let mut unreadable = answer_valid_for(900);
        unreadable.verdict.valid_until = "soon".into();
        assert_eq!(next_attestation(&unreadable, every), every);
    }

    #[test]
    fn an_interval_under_a_second_is_refused() {
        use config::parse_interval;
        assert_eq!(parse_interval("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("500ms").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
