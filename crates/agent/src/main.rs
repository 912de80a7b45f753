//! The `posture-agent` command, run on the endpoint: collects the inventory,
//! signs it with the device key and attests to the gate.
//!
//! Exit codes: 0 allowed on every segment (or the command succeeded), 3
//! denied on at least one segment, 1 on any error (unreachable gate, bad or
//! mismatched key, a token the gate refused), 2 for bad usage (clap).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use posture_agent::attest::{attest_once, AttestError, Credentials, GateAnswer};
use posture_agent::{self as agent, Inventory};
use posture_core::attestation::claims::OsFamily;
use posture_core::catalogue::Catalogue;
use posture_core::decision::unix_now as now;
use posture_core::verdict::{Decision, Finding, ItemKind, Requirement, Unmet, Verdict};

const EXIT_ERROR: u8 = 1;
const EXIT_DENIED: u8 = 3;
/// How long one attestation (connect, challenge, post) may take.
const ATTEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The first retry after a failed attestation in `--interval` mode.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Parser)]
#[command(
    name = "posture-agent",
    version,
    about = "Reports this device's posture to a posture-gate"
)]
struct Cli {
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

/// The device's certificate and key.
#[derive(Args)]
struct Device {
    /// PEM device certificate (leaf first, then its CA chain).
    #[arg(long, value_name = "PEM")]
    cert: PathBuf,
    /// PEM private key of the device certificate (PKCS#8 or SEC1; P-256,
    /// P-384 or Ed25519).
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Print what this machine would report (installed software, processes,
    /// OS, security products), without sending anything.
    Collect {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Attest to the gate over mutual TLS and print the verdict in plain
    /// words. Exit 0: allowed everywhere; 3: denied somewhere; 1: error.
    Attest {
        /// The gate, e.g. https://gate.example.nl:8443
        #[arg(long, value_name = "URL")]
        gate: String,
        #[command(flatten)]
        device: Device,
        /// PEM CA bundle that issued the gate's server certificate (default:
        /// the system's roots).
        #[arg(long, value_name = "PEM")]
        ca: Option<PathBuf>,
        /// Print the gate's verdict JSON instead of words.
        #[arg(long)]
        json: bool,
        /// Keep attesting, at most this far apart (e.g. 10m) and always well
        /// before the posture ages out, retrying sooner after an error.
        #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
        interval: Option<Duration>,
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

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    // A zero or sub-second interval would hammer the gate.
    if d < Duration::from_secs(1) {
        return Err("the interval must be at least 1s".into());
    }
    Ok(d)
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
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posture-agent: {}", explain(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn inventory(source: &Source) -> Result<Inventory> {
    let inv = match (&source.from_osquery, &source.root) {
        (Some(p), _) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            agent::from_osquery(&text).with_context(|| format!("{}", p.display()))?
        }
        (None, Some(root)) => {
            // A typo in DIR would otherwise give an empty, "clean" inventory
            // with only warnings.
            if !root.is_dir() {
                bail!("--root {}: not a directory", root.display());
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

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Collect { json, source } => {
            let inv = inventory(&source)?;
            if json {
                emit(&format!("{}\n", agent::render_json(&inv)))?;
            } else {
                emit(&agent::render_table(&inv))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            device,
            nonce,
            source,
        } => {
            let creds = Credentials::load(&device.cert, &device.key)?;
            let claims = inventory(&source)?.into_claims(now(), nonce, hostname());
            emit(&format!("{}\n", creds.sign(&claims)?))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Attest {
            gate,
            device,
            ca,
            json,
            interval,
            source,
        } => {
            let creds = Credentials::load(&device.cert, &device.key)?;
            let attester = Attester {
                gate,
                ca,
                creds,
                source,
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
}

impl Attester {
    async fn once(&self) -> Result<(GateAnswer, OsFamily)> {
        let inv = inventory(&self.source)?;
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
        Ok(report(&answer, family, json))
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
                    report(&answer, family, json);
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
                        explain(&e)
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

/// An error in words; a refused token names the gate's reason code and what
/// to do about it.
fn explain(e: &anyhow::Error) -> String {
    match e.downcast_ref::<AttestError>() {
        Some(AttestError::Refused(reason)) => {
            let words = posture_core::reasons::explain(*reason, posture_core::lang::Lang::En);
            format!(
                "the gate refused the attestation (reason: {reason}): {} {}",
                words.what, words.fix
            )
        }
        _ => format!("{e:#}"),
    }
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

/// Prints the verdict in plain words (or its JSON); the exit code says
/// whether any segment denied.
fn report(answer: &GateAnswer, os: OsFamily, json: bool) -> ExitCode {
    let v = &answer.verdict;
    // A decision this agent does not know reads as a denial (see
    // `Decision`'s Deserialize).
    let denied: Vec<&str> = v
        .decisions
        .iter()
        .filter(|(_, d)| **d == Decision::Deny)
        .map(|(seg, _)| seg.as_str())
        .collect();
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
    } else {
        words(v, &denied, os)
    };
    if let Err(e) = emit(&text) {
        tracing::error!("{e:#}");
    }
    if denied.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DENIED)
    }
}

/// `writeln!` into a String, which cannot fail.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

fn words(v: &Verdict, denied: &[&str], os: OsFamily) -> String {
    let mut out = String::new();
    if denied.is_empty() {
        say!(
            out,
            "Allowed: the gate admits this device to every segment."
        );
    } else {
        say!(
            out,
            "DENIED: the gate refuses this device on {}.",
            denied.join(", ")
        );
    }
    say!(out, "Device: {}", v.device.subject);
    out.push('\n');
    for (segment, d) in &v.decisions {
        let word = match d {
            Decision::Allow => "allowed",
            Decision::Warn => "allowed, with a warning",
            Decision::Deny => "DENIED",
        };
        say!(out, "  {segment:<20} {word}");
    }
    let found = findings(&mut out, &v.findings, os);
    let unmet = unmet(&mut out, &v.unmet);
    if found || unmet {
        say!(out, "\nThen run posture-agent attest again.");
    }
    say!(out, "\nThis posture is valid until {}.", v.valid_until);
    out
}

/// Prohibited items and how to remove them; whether there were any.
fn findings(out: &mut String, findings: &[Finding], os: OsFamily) -> bool {
    if findings.is_empty() {
        return false;
    }
    let mut seen = std::collections::BTreeSet::new();
    say!(out, "\nFound on this device:");
    for f in findings {
        let item = &f.item;
        let version = item.version.as_deref().unwrap_or("");
        if !seen.insert((f.catalog_id.as_str(), item.name.as_str(), version)) {
            continue;
        }
        let kind = match item.kind {
            ItemKind::Software => "software",
            ItemKind::Process => "process",
            ItemKind::SecurityProduct => "security_product",
        };
        let version = if version.is_empty() {
            String::new()
        } else {
            format!(" {version}")
        };
        say!(
            out,
            "  - {kind} {}{version} (prohibited: {})",
            item.name,
            f.catalog_id
        );
    }
    let ids: std::collections::BTreeSet<&str> =
        findings.iter().map(|f| f.catalog_id.as_str()).collect();
    removal_steps(out, &ids, os);
    true
}

/// Requirements a policy set that the device does not meet (minimum OS
/// version, a working antivirus), once each with the segments that want
/// them; whether there were any. A denial without a finding must still say
/// why.
fn unmet(out: &mut String, unmet: &[Unmet]) -> bool {
    if unmet.is_empty() {
        return false;
    }
    // By code, so the list reads in the same order whatever the gate sent.
    type Segments<'a> = (Requirement, Vec<&'a str>);
    let mut by_requirement: std::collections::BTreeMap<(&str, &str), Segments<'_>> =
        std::collections::BTreeMap::new();
    for u in unmet {
        by_requirement
            .entry((u.requirement.code(), u.detail.as_str()))
            .or_insert_with(|| (u.requirement, Vec::new()))
            .1
            .push(u.segment.as_str());
    }
    say!(out, "\nRequirements this device does not meet:");
    for ((_, detail), (requirement, segments)) in by_requirement {
        let what = match requirement {
            Requirement::Antivirus => "an enabled, up-to-date antivirus that is not prohibited",
            Requirement::MinOsVersion => "a minimum operating system version",
        };
        say!(out, "  - {what} (for {}): {detail}", segments.join(", "));
    }
    true
}

fn removal_steps(out: &mut String, ids: &std::collections::BTreeSet<&str>, os: OsFamily) {
    let catalogue = match Catalogue::builtin() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("no removal steps: the built-in catalogue does not load: {e}");
            return;
        }
    };
    for id in ids {
        let Some(i) = catalogue.index_of(id) else {
            say!(
                out,
                "\nRemove the software listed as {id} (ask the network team how)."
            );
            continue;
        };
        let entry = &catalogue.entries()[i];
        say!(out, "\nHow to remove {}:", entry.title.en);
        for (n, step) in entry.removal_steps(Some(os)).en.iter().enumerate() {
            say!(out, "  {}. {step}", n + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn verdict(json: serde_json::Value) -> Verdict {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_denial_for_an_unmet_requirement_says_which_and_where() {
        let v = verdict(serde_json::json!({
            "valid": true,
            "decisions": {"kantoor": "deny", "gasten": "allow", "beheer": "deny"},
            "device": {"subject": "CN=lt-1", "fingerprint_sha256": FINGERPRINT},
            "findings": [],
            "unmet": [
                {"requirement": "antivirus", "segment": "kantoor", "action": "deny",
                 "detail": "no enabled, up-to-date antivirus that is allowed was reported"},
                {"requirement": "antivirus", "segment": "beheer", "action": "deny",
                 "detail": "no enabled, up-to-date antivirus that is allowed was reported"},
                {"requirement": "min_os_version", "segment": "beheer", "action": "deny",
                 "detail": "windows 10.0.17763 (minimum 10.0.19045)"}
            ],
            "valid_until": "2026-11-23T12:00:00Z"
        }));
        let text = words(&v, &["beheer", "kantoor"], OsFamily::Windows);
        assert!(
            text.contains("DENIED: the gate refuses this device on beheer, kantoor."),
            "{text}"
        );
        assert!(
            text.contains("  - an enabled, up-to-date antivirus that is not prohibited (for kantoor, beheer): no enabled, up-to-date antivirus that is allowed was reported"),
            "{text}"
        );
        assert!(
            text.contains("  - a minimum operating system version (for beheer): windows 10.0.17763 (minimum 10.0.19045)"),
            "{text}"
        );
        assert_eq!(
            text.matches("Then run posture-agent attest again.").count(),
            1,
            "{text}"
        );
    }

    /// A decision word of a newer gate must never read as an admission.
    #[test]
    fn a_decision_this_agent_does_not_know_is_a_denial() {
        let v = verdict(serde_json::json!({"valid": true,
            "decisions": {"gasten": "allow", "kluis": "quarantine"},
            "device": {"subject": "CN=lt-1", "fingerprint_sha256": FINGERPRINT},
            "valid_until": "2026-11-23T12:00:00Z", "findings": []}));
        assert_eq!(v.decisions["kluis"], Decision::Deny);
        let text = words(&v, &["kluis"], OsFamily::Linux);
        assert!(text.contains("  kluis                DENIED"), "{text}");
    }

    #[test]
    fn an_allowed_device_gets_no_remedy() {
        let v = verdict(
            serde_json::json!({"valid": true, "decisions": {"gasten": "allow"},
            "device": {"subject": "CN=lt-1", "fingerprint_sha256": FINGERPRINT},
            "valid_until": "2026-11-23T12:00:00Z", "findings": [], "unmet": []}),
        );
        let text = words(&v, &[], OsFamily::Linux);
        assert!(text.starts_with("Allowed:"), "{text}");
        assert!(!text.contains("Then run"), "{text}");
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
