//! Writes a realistic schema-1 audit log for `posture-gate report`'s
//! benchmark (scripts/bench-report): tens of thousands of devices of
//! ministries, agencies and suppliers going through the doors for weeks,
//! a few percent of them reporting Kaspersky, some of those cleaned later,
//! some under an exemption. Events are serialised by the core's own
//! `AuditEvent` (as the gate does), wrapped as the contract's schema-1 line,
//! decisions with the access-log fields of proxied requests.
//!
//! ```text
//! cargo run --example audit_gen -- OUT [size_mb=1024] [devices=50000] [seed=1]
//! ```
//!
//! Deterministic for a seed. At the end it prints, on standard error, what
//! the report must find (one JSON object): devices that ever reported
//! Kaspersky, still in use by their latest report, cleaned, exempt.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use posture_core::audit::{AttestationEvent, AuditEvent, DecisionEvent, Device, Enforcement};
use posture_core::code::Code;
use posture_core::verdict::{Decision, Finding, FindingItem, ItemKind};

/// Deterministic and fast; quality is beside the point here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

const ORGANISATIONS: &[&str] = &[
    "Ministerie van Financiën",
    "Ministerie van Defensie",
    "Ministerie van Justitie en Veiligheid",
    "Ministerie van Binnenlandse Zaken",
    "Ministerie van Infrastructuur en Waterstaat",
    "Belastingdienst",
    "Rijkswaterstaat",
    "Dienst Justitiële Inrichtingen",
    "Logius",
    "SSC-ICT",
    "Leverancier BV",
    "Acme Consultancy B.V.",
    "Noordzee IT Services",
    "Kustwacht Systemen BV",
    "Delta Detachering",
    "Van Dijk, Jansen & Partners",
];
const UNITS: &[&str] = &[
    "Laptops",
    "Beheer",
    "Financiën",
    "HR",
    "Inkoop",
    "Servicedesk",
    "Ontwikkeling",
    "Directie",
];
const SEGMENTS: &[&str] = &["finance", "office", "open"];
const PATHS: &[&str] = &[
    "/",
    "/api/v1/orders",
    "/portal/home",
    "/pay/2024/07",
    "/static/app.js",
];
const KASPERSKY_VERSIONS: &[&str] = &["11.1.0.15919", "12.3.0.493", "21.3.10.391"];

struct Dev {
    fingerprint: String,
    subject: String,
    organization: String,
    units: Vec<String>,
    source: SocketAddr,
    /// Reports Kaspersky from this step on (u64::MAX: never).
    infected_from: u64,
    /// Reports it no more from this step on (u64::MAX: never).
    cleaned_from: u64,
    exempt: bool,
    version: &'static str,
    /// What the posture in force says: `None` before the first attestation.
    posture_has_kaspersky: Option<bool>,
    ever_reported: bool,
}

fn findings(d: &Dev, only_segment: Option<&str>) -> Vec<Finding> {
    SEGMENTS
        .iter()
        .filter(|s| **s != "open")
        .filter(|s| only_segment.is_none_or(|o| o == **s))
        .map(|s| {
            let (action, exemption, expires) = if d.exempt {
                (
                    Decision::Allow,
                    Some("RA-2026-0042".to_owned()),
                    Some("2999-12-31".to_owned()),
                )
            } else if *s == "finance" {
                (Decision::Deny, None, None)
            } else {
                (Decision::Warn, None, None)
            };
            Finding {
                catalog_id: "kaspersky".into(),
                segment: (*s).into(),
                action,
                item: FindingItem {
                    kind: ItemKind::Software,
                    name: "Kaspersky Endpoint Security for Windows".into(),
                    vendor: Some("AO Kaspersky Lab".into()),
                    version: Some(d.version.into()),
                    id: Some("{7A4192A1-84C4-4E90-A31B-B4ABA3A3A2A1}".into()),
                },
                category: "antivirus".into(),
                exemption,
                exemption_expires: expires,
                deny_from: None,
            }
        })
        .collect()
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .context("usage: audit_gen OUT [size_mb] [devices] [seed]")?;
    let size_mb: u64 = args.next().map_or(Ok(1024), |a| a.parse())?;
    let devices: u64 = args.next().map_or(Ok(50_000), |a| a.parse())?;
    let seed: u64 = args.next().map_or(Ok(1), |a| a.parse())?;
    let target = size_mb * 1024 * 1024;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);

    // About 2.3 million lines per GB; steps are lines.
    let steps_estimate = target / 440;
    let mut devs: Vec<Dev> = (0..devices)
        .map(|i| {
            let org = ORGANISATIONS[rng.below(ORGANISATIONS.len() as u64) as usize];
            let unit = UNITS[rng.below(UNITS.len() as u64) as usize];
            let mut units = vec![unit.to_owned()];
            if rng.chance(100) {
                units.push("Extern".to_owned());
            }
            let kaspersky = rng.chance(30);
            let infected_from = if kaspersky {
                rng.below(steps_estimate / 4)
            } else {
                u64::MAX
            };
            let cleaned_from = if kaspersky && rng.chance(400) {
                steps_estimate / 4 + rng.below(steps_estimate / 2)
            } else {
                u64::MAX
            };
            let ou_text: String = units.iter().map(|u| format!(",OU={u}")).collect();
            Dev {
                fingerprint: hex::encode(Sha256::digest(format!("device-{seed}-{i}"))),
                subject: format!("CN=lt-{i:05}{ou_text},O={}", org.replace(',', "\\,")),
                organization: org.to_owned(),
                units,
                source: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 50000)),
                infected_from,
                cleaned_from,
                exempt: kaspersky && rng.chance(100),
                version: KASPERSKY_VERSIONS[rng.below(KASPERSKY_VERSIONS.len() as u64) as usize],
                posture_has_kaspersky: None,
                ever_reported: false,
            }
        })
        .collect();

    let file = std::fs::File::create(&out).with_context(|| format!("creating {out}"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let start = time::macros::datetime!(2026-10-01 06:00:00 UTC);
    // The log covers about 8 weeks.
    let span_micros: i64 = 56 * 86_400 * 1_000_000;
    let per_step = (span_micros / steps_estimate.max(1) as i64).max(1);
    let mut written: u64 = 0;
    let mut step: u64 = 0;
    let mut line = Vec::with_capacity(2048);
    let mut reference_counter: u64 = 0;
    while written < target {
        let at = start + time::Duration::microseconds(step as i64 * per_step);
        let i = rng.below(devices) as usize;
        let d = &mut devs[i];
        let has_now = step >= d.infected_from && step < d.cleaned_from;
        let device = Device {
            fingerprint_sha256: &d.fingerprint,
            subject: &d.subject,
            organization: Some(&d.organization),
            organizational_units: &d.units,
        };
        line.clear();
        let time_text = at
            .format(&time::format_description::well_known::Rfc3339)
            .context("formatting a time")?;
        write!(line, "{{\"schema\":1,\"time\":\"{time_text}\",")?;
        // One attestation for every nine decisions; a device's first
        // event is always an attestation.
        if d.posture_has_kaspersky.is_none() || rng.chance(100) {
            let f = if has_now {
                findings(d, None)
            } else {
                Vec::new()
            };
            let event = AuditEvent::Attestation(AttestationEvent {
                reference: None,
                device: Some(device),
                source: d.source,
                valid: true,
                reason: None,
                valid_until: Some(at.unix_timestamp() + 86_400),
                remembered: true,
                findings: &f,
            });
            line.extend_from_slice(&event.to_json_bytes()[1..]);
            d.posture_has_kaspersky = Some(has_now);
            d.ever_reported |= has_now;
        } else {
            let segment = SEGMENTS[rng.below(SEGMENTS.len() as u64) as usize];
            let with = d.posture_has_kaspersky == Some(true) && segment != "open";
            let f = if with {
                findings(d, Some(segment))
            } else {
                Vec::new()
            };
            let decision = if d.exempt || !with {
                Decision::Allow
            } else if segment == "finance" {
                Decision::Deny
            } else {
                Decision::Warn
            };
            reference_counter += 1;
            let reference = format!(
                "PG-{:04X}-{:04X}",
                reference_counter >> 16,
                reference_counter & 0xffff
            );
            let event = AuditEvent::Decision(DecisionEvent {
                reference: Some(&reference),
                enforcement: Enforcement::Proxy,
                device: Some(device),
                source: d.source,
                proxy: None,
                route_host: "app.rijksportaal.example",
                route_prefix: "/",
                segment,
                decision,
                reason: (decision == Decision::Deny).then_some(Code::Prohibited),
                findings: &f,
                unmet: &[],
            });
            let json = event.to_json_bytes();
            // The access-log fields the contract adds to proxied decisions.
            line.extend_from_slice(&json[1..json.len() - 1]);
            let status = if decision == Decision::Deny { 403 } else { 200 };
            write!(
                line,
                ",\"method\":\"GET\",\"path\":\"{}\",\"status\":{status},\"bytes\":{},\"latency_ms\":{}.{}}}",
                PATHS[rng.below(PATHS.len() as u64) as usize],
                rng.below(200_000),
                rng.below(80),
                rng.below(10)
            )?;
        }
        line.push(b'\n');
        w.write_all(&line)?;
        written += line.len() as u64;
        step += 1;
    }
    w.flush()?;

    let mut ever = 0;
    let mut in_use = 0;
    let mut cleaned = 0;
    let mut exempt = 0;
    for d in &devs {
        if !d.ever_reported {
            continue;
        }
        ever += 1;
        match (d.posture_has_kaspersky, d.exempt) {
            (Some(true), true) => exempt += 1,
            (Some(true), false) => in_use += 1,
            _ => cleaned += 1,
        }
    }
    eprintln!(
        "{{\"bytes\":{written},\"lines\":{step},\"devices\":{devices},\"kaspersky_devices\":{ever},\
         \"in_use\":{in_use},\"exempt\":{exempt},\"cleaned\":{cleaned}}}"
    );
    Ok(())
}
