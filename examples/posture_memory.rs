//! How much memory remembered postures take: fills the gate's own posture
//! store (the core's `MemoryPostures`) with N distinct devices, each with a
//! freshly built inventory of M software items (as a real attestation would
//! arrive), and reports the resident set size (VmRSS) before and after.
//!
//! ```text
//! cargo run --release --example posture_memory -- [devices=100000] [items=50]
//! ```
//!
//! Output: one tab-separated line,
//! `devices items rss_before_mib rss_after_mib delta_mib bytes_per_posture`.

use std::sync::Arc;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use posture_core::attestation::Verified;
use posture_core::config::Snapshot;
use posture_core::decision::Posture;
use posture_core::device::DeviceIdentity;
use posture_core::store::MemoryPostures;
use posture_testkit::token::{claims_with_inventory, now};

/// VmRSS of this process in bytes, from /proc/self/status.
fn rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/self/status")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS without a value")?
        .parse()?;
    Ok(kib * 1024)
}

/// A device as a client certificate names it.
fn device(i: usize) -> DeviceIdentity {
    let fingerprint: [u8; 32] = Sha256::digest(i.to_be_bytes()).into();
    let subject = format!("CN=lt-{i:06},OU=Laptops,O=Ministerie van Voorbeeldzaken");
    DeviceIdentity {
        fingerprint_sha256: hex::encode(fingerprint),
        fingerprint,
        subject_name: posture_core::dn::DistinguishedName::parse(&subject).ok(),
        subject,
        organization: Some("Ministerie van Voorbeeldzaken".to_string()),
        organizational_units: vec!["Laptops".to_string()],
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let items: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let snapshot = Snapshot::builtin_default(Vec::new()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cache = MemoryPostures::new(devices as u64 * 2);
    let t = now();
    let before = rss_bytes()?;
    for i in 0..devices {
        let mut claims = claims_with_inventory(t, items);
        claims.sub = Some(format!("lt-{i:06}"));
        let device = device(i);
        let fingerprint = device.fingerprint;
        let verified = Verified {
            device,
            claims,
            iat: t,
            valid_until: t + 900,
            leaf_not_after: t + 86_400,
        };
        let posture = Posture::new(&snapshot, &verified);
        cache.put_now(&fingerprint, Arc::new(posture), t);
    }
    let count = cache.count();
    anyhow::ensure!(
        count == devices as u64,
        "the cache holds {count} postures, not {devices}"
    );
    let after = rss_bytes()?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let delta = after.saturating_sub(before);
    println!(
        "{devices}\t{items}\t{:.1}\t{:.1}\t{:.1}\t{}",
        mib(before),
        mib(after),
        mib(delta),
        delta / devices.max(1) as u64
    );
    Ok(())
}
