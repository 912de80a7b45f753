//! The `posture-agent` command, run on the endpoint: collects the inventory,
//! signs it with the device key and attests to the gate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use posture_gate::agent::{self, Inventory};
use posture_gate::agent_attest::{attest_once, AttestError, Credentials, GateAnswer};
use posture_gate::attestation::claims::OsFamily;
use posture_gate::catalogue::Catalogue;

const EXIT_ERROR: u8 = 1;
const EXIT_DENIED: u8 = 3;

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

#[derive(Subcommand)]
enum Command {
    /// Print what this machine would report (installed software, processes, OS, security products).
    Collect {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Import `osqueryi --json` output instead of collecting (tables programs,
        /// deb_packages, rpm_packages, apps, processes).
        #[arg(long, value_name = "FILE")]
        from_osquery: Option<PathBuf>,
    },
    /// Attest to the gate over mutual TLS and print the verdict in plain words.
    /// Exit 0: allowed everywhere; 3: denied somewhere; 1: error.
    Attest {
        /// The gate, e.g. https://gate.example.nl:8443
        #[arg(long)]
        gate: String,
        /// PEM device certificate (leaf first, then its CA chain).
        #[arg(long)]
        cert: PathBuf,
        /// PEM private key of the device certificate (PKCS#8 or SEC1).
        #[arg(long)]
        key: PathBuf,
        /// PEM CA bundle that issued the gate's server certificate (default: the system's roots).
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Print the gate's verdict JSON.
        #[arg(long)]
        json: bool,
        /// Keep attesting at this interval (e.g. 5m), with backoff on errors.
        #[arg(long, value_parser = humantime::parse_duration)]
        interval: Option<Duration>,
        /// Import `osqueryi --json` output instead of collecting.
        #[arg(long, value_name = "FILE")]
        from_osquery: Option<PathBuf>,
    },
    /// Print a signed attestation token, for scripts and the `Posture-Attestation` header.
    Token {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// A nonce from the gate's challenge endpoint.
        #[arg(long)]
        nonce: Option<String>,
        #[arg(long, value_name = "FILE")]
        from_osquery: Option<PathBuf>,
    },
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posture-agent: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn inventory(from_osquery: Option<&Path>) -> Result<Inventory> {
    let inv = match from_osquery {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            agent::from_osquery(&text).with_context(|| format!("{}", p.display()))?
        }
        None => agent::collect(),
    };
    for w in &inv.warnings {
        tracing::warn!(collector = w.collector, "{}", w.message);
    }
    Ok(inv)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Collect { json, from_osquery } => {
            let inv = inventory(from_osquery.as_deref())?;
            if json {
                println!("{}", agent::render_json(&inv));
            } else {
                print!("{}", agent::render_table(&inv));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            cert,
            key,
            nonce,
            from_osquery,
        } => {
            let creds = Credentials::load(&cert, &key)?;
            let claims = inventory(from_osquery.as_deref())?.into_claims(now(), nonce, hostname());
            println!("{}", creds.sign(&claims)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Attest {
            gate,
            cert,
            key,
            ca,
            json,
            interval,
            from_osquery,
        } => {
            let creds = Credentials::load(&cert, &key)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let once = || async {
                    let inv = inventory(from_osquery.as_deref())?;
                    let family = inv.os.family;
                    let answer = attest_once(
                        &gate,
                        ca.as_deref(),
                        &creds,
                        |nonce| inv.into_claims(now(), Some(nonce), hostname()),
                        Duration::from_secs(30),
                    )
                    .await?;
                    Ok::<(GateAnswer, OsFamily), anyhow::Error>((answer, family))
                };
                let Some(every) = interval else {
                    return Ok(match once().await {
                        Ok((answer, family)) => report(&answer, family, json),
                        Err(e) => {
                            eprintln!("posture-agent: {}", explain(&e));
                            ExitCode::from(EXIT_ERROR)
                        }
                    });
                };
                // Re-attest on a fixed rhythm; after an error retry sooner,
                // doubling the wait up to the interval itself.
                let mut backoff = Duration::from_secs(5);
                loop {
                    let wait = match once().await {
                        Ok((answer, family)) => {
                            report(&answer, family, json);
                            backoff = Duration::from_secs(5);
                            every
                        }
                        Err(e) => {
                            tracing::error!("{}", explain(&e));
                            let w = backoff.min(every);
                            backoff = (backoff * 2).min(every);
                            w
                        }
                    };
                    tokio::time::sleep(wait).await;
                }
            })
        }
    }
}

fn explain(e: &anyhow::Error) -> String {
    match e.downcast_ref::<AttestError>() {
        Some(AttestError::Refused(reason)) => {
            let words = posture_gate::page::reasons::explain(*reason, posture_gate::page::Lang::En);
            format!(
                "the gate refused the attestation ({reason}): {} {}",
                words.what, words.fix
            )
        }
        _ => format!("{e:#}"),
    }
}

/// Prints the verdict in plain words; the exit code says whether any segment denied.
fn report(answer: &GateAnswer, os: OsFamily, json: bool) -> ExitCode {
    let v = &answer.verdict;
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    }
    let mut denied = false;
    if let Some(decisions) = v["decisions"].as_object() {
        for (segment, d) in decisions {
            let d = d.as_str().unwrap_or("deny");
            denied |= d == "deny";
            if !json {
                let word = match d {
                    "allow" => "allowed",
                    "warn" => "allowed, with a warning",
                    _ => "DENIED",
                };
                println!("{segment:<20} {word}");
            }
        }
    }
    if !json {
        print_findings(v, os);
        if let Some(until) = v["valid_until"].as_str() {
            println!("\nThis posture is valid until {until}.");
        }
    }
    if denied {
        ExitCode::from(EXIT_DENIED)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_findings(v: &serde_json::Value, os: OsFamily) {
    let Some(findings) = v["findings"].as_array().filter(|f| !f.is_empty()) else {
        return;
    };
    let catalogue = Catalogue::builtin().ok();
    let mut seen = std::collections::BTreeSet::new();
    println!("\nFound on this device:");
    for f in findings {
        let item = &f["item"];
        let name = item["name"].as_str().unwrap_or("?");
        let version = item["version"].as_str().unwrap_or("");
        let id = f["catalog_id"].as_str().unwrap_or("?");
        if !seen.insert((id.to_owned(), name.to_owned(), version.to_owned())) {
            continue;
        }
        println!("  - {name} {version}  (prohibited: {id})");
    }
    let Some(catalogue) = catalogue else { return };
    let ids: std::collections::BTreeSet<&str> = findings
        .iter()
        .filter_map(|f| f["catalog_id"].as_str())
        .collect();
    for id in ids {
        let Some(i) = catalogue.index_of(id) else {
            continue;
        };
        let entry = &catalogue.entries()[i];
        println!("\nHow to remove {}:", entry.title.en);
        for (n, step) in entry.removal_steps(Some(os)).en.iter().enumerate() {
            println!("  {}. {step}", n + 1);
        }
    }
    println!("\nThen run posture-agent attest again.");
}
