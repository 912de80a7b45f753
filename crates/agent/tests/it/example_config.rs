//! Issue 19 point 1 end to end on the agent's side: what the agent itself
//! collects from a clean Debian tree and a clean macOS tree, judged by the
//! policies of the example configuration (config/gate.toml) exactly as the
//! gate judges a verified report. The core's own test of the example
//! (crates/core/tests/it/example_policy.rs) writes its claims by hand; this
//! one takes them from the collectors, so a collector that stops reporting
//! XProtect, or a policy that starts requiring what a clean machine cannot
//! report, fails here.

use std::path::Path;
use std::time::Duration;

use posture_agent::Inventory;
use posture_core::config::{load, Snapshot};
use posture_core::device::DeviceIdentity;
use posture_core::dn::DistinguishedName;
use posture_core::policy::{assess, evaluate_segment, utc_day};
use posture_core::verdict::{Decision, Requirement};

use crate::support::{clean_root, kesl_root, macos_root};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The real config/gate.toml beside the fixture PKI its paths name.
fn example() -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    for entry in std::fs::read_dir(Path::new(REPO).join("tests/fixtures/config/pki")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), pki.join(entry.file_name())).unwrap();
    }
    let config = dir.path().join("gate.toml");
    std::fs::copy(Path::new(REPO).join("config/gate.toml"), &config).unwrap();
    let snapshot = load(&config).unwrap_or_else(|e| panic!("{e}"));
    (dir, snapshot)
}

fn contractor() -> DeviceIdentity {
    let subject = "CN=lt-042,OU=Beheer,O=Leverancier BV".to_owned();
    DeviceIdentity {
        fingerprint_sha256: "cd".repeat(32),
        fingerprint: [0xcd; 32],
        subject_name: DistinguishedName::parse(&subject).ok(),
        subject,
        organization: Some("Leverancier BV".into()),
        organizational_units: vec!["Beheer".into()],
    }
}

/// Each example segment's decision for what the agent collected.
fn decisions(s: &Snapshot, inv: Inventory) -> Vec<(String, Decision)> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = inv.into_claims(now, None, None);
    let assessment = assess(&s.matcher, &claims);
    (0..s.segments.len())
        .map(|i| {
            let r = evaluate_segment(s, i, &contractor(), &assessment, utc_day(now));
            (s.segments[i].name.clone(), r.decision)
        })
        .collect()
}

fn decisions_and_unmet(s: &Snapshot, inv: Inventory) -> Vec<(String, Decision, Vec<Requirement>)> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let assessment = assess(&s.matcher, &inv.into_claims(now, None, None));
    (0..s.segments.len())
        .map(|i| {
            let r = evaluate_segment(s, i, &contractor(), &assessment, utc_day(now));
            let unmet = r.unmet.iter().map(|u| u.requirement).collect();
            (s.segments[i].name.clone(), r.decision, unmet)
        })
        .collect()
}

fn all(s: &Snapshot, d: Decision) -> Vec<(String, Decision)> {
    s.segments.iter().map(|seg| (seg.name.clone(), d)).collect()
}

#[test]
fn a_clean_debian_machine_as_collected_is_allowed_on_every_example_segment() {
    let (_dir, s) = example();
    let tmp = tempfile::tempdir().unwrap();
    let inv = posture_agent::collect_from(&clean_root(tmp.path()));
    assert_eq!(
        inv.os.family,
        posture_core::attestation::claims::OsFamily::Linux
    );
    assert_eq!(decisions(&s, inv), all(&s, Decision::Allow));
}

#[test]
fn a_clean_mac_as_collected_is_allowed_while_xprotect_is_current() {
    let (_dir, s) = example();
    let tmp = tempfile::tempdir().unwrap();
    let fresh = posture_agent::collect_from(&macos_root(
        tmp.path(),
        "macos-clean",
        Duration::from_secs(3 * 86_400),
    ));
    assert_eq!(
        fresh.os.family,
        posture_core::attestation::claims::OsFamily::Macos
    );
    // The fixture is macOS 14.4.1: allowed wherever the example asks no
    // newer macOS; the two segments that ask for macOS 15 refuse it for
    // that reason alone, not for its antivirus.
    let got = decisions_and_unmet(&s, fresh);
    for (seg, d, unmet) in &got {
        match seg.as_str() {
            "financien" | "beheer" => {
                assert_eq!(
                    (*d, unmet.as_slice()),
                    (Decision::Deny, &[Requirement::MinOsVersion][..]),
                    "{seg}"
                )
            }
            _ => assert_eq!((*d, unmet.as_slice()), (Decision::Allow, &[][..]), "{seg}"),
        }
    }
    // Definitions that stopped updating are no working antivirus: every
    // segment whose policy requires one for macOS refuses, the guest
    // network does not.
    let stale = posture_agent::collect_from(&macos_root(
        tmp.path(),
        "macos-clean",
        Duration::from_secs(120 * 86_400),
    ));
    let got = decisions(&s, stale);
    assert!(
        got.iter()
            .any(|(seg, d)| seg == "gasten" && *d == Decision::Allow),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(seg, d)| seg == "kantoor" && *d == Decision::Deny),
        "{got:?}"
    );
}

#[test]
fn the_kaspersky_tree_is_still_refused_on_the_sensitive_example_segments() {
    let (_dir, s) = example();
    let got = decisions(&s, posture_agent::collect_from(&kesl_root()));
    for seg in ["financien", "beheer"] {
        assert!(
            got.iter().any(|(n, d)| n == seg && *d == Decision::Deny),
            "{seg}: {got:?}"
        );
    }
}
