//! Lines per second the audit writer sustains into a file: emitting tasks
//! send decision events (the size of an allowed request with a device) as
//! fast as the queue takes them, for a while; the writer's `written` count
//! over the time is the figure.
//!
//! ```text
//! cargo run --example audit_throughput -- [seconds=5] [fsync=batch] [dir=/tmp]
//! ```
//!
//! Output: one tab-separated line `fsync seconds lines lines_per_s
//! mib_per_s`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use posture_core::audit::{AuditEvent, DecisionEvent, Device, Enforcement};
use posture_core::config::snapshot::{AuditOutput, AuditSettings, Fsync};
use posture_core::verdict::Decision;
use posture_gate::audit::Audit;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let fsync = args.next().unwrap_or_else(|| "batch".into());
    let dir = tempfile::tempdir_in(args.next().unwrap_or_else(|| "/tmp".into()))?;
    let path = dir.path().join("audit.jsonl");
    let settings = AuditSettings {
        output: AuditOutput::File(path.clone()),
        rotate_size: None,
        fsync: match fsync.as_str() {
            "always" => Fsync::Always,
            "never" => Fsync::Never,
            _ => Fsync::Batch,
        },
        ..AuditSettings::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (lines, elapsed) = runtime.block_on(async move {
        let audit = Audit::start(&settings).context("start the writer")?;
        let start = Instant::now();
        let until = start + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let audit = audit.clone();
                tokio::spawn(async move {
                    let source: SocketAddr = "192.0.2.10:50000".parse().unwrap();
                    let units = vec!["Laptops".to_string()];
                    while Instant::now() < until {
                        let reference = posture_core::decision::Reference::new();
                        let event = AuditEvent::Decision(DecisionEvent {
                            reference: Some(&reference),
                            enforcement: Enforcement::Proxy,
                            device: Some(Device {
                                fingerprint_sha256:
                                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                                subject: "CN=lt-0042,OU=Laptops,O=Ministerie van Voorbeeld",
                                organization: Some("Ministerie van Voorbeeld"),
                                organizational_units: &units,
                            }),
                            source,
                            proxy: None,
                            route_host: "app.intern.example",
                            route_prefix: "/",
                            segment: "kantoor",
                            decision: Decision::Allow,
                            reason: None,
                            findings: &[],
                            unmet: &[],
                        });
                        audit.emit(&event).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        anyhow::ensure!(audit.flush(Duration::from_secs(60)).await, "flush");
        Ok::<_, anyhow::Error>((audit.health().written, start.elapsed()))
    })?;
    let bytes = std::fs::metadata(&path)?.len();
    let secs = elapsed.as_secs_f64();
    println!(
        "{fsync}\t{secs:.1}\t{lines}\t{:.0}\t{:.1}",
        lines as f64 / secs,
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
    Ok(())
}
