//! The example configuration's policies applied to clean devices of every
//! OS the agent reports security products for (issue 19 point 1): a clean
//! Debian machine (no antivirus, as Linux estates usually run) and a clean
//! Mac (XProtect enabled and up to date) get in where the policies mean
//! them to; Windows still needs a working antivirus where one is required.

use std::path::Path;

use posture_core::attestation::claims::Claims;
use posture_core::config::{load, Snapshot};
use posture_core::device::DeviceIdentity;
use posture_core::dn::DistinguishedName;
use posture_core::policy::{assess, evaluate_segment, utc_day};
use posture_core::verdict::{Decision, Requirement};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/config");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/gate.toml");

/// The real config/gate.toml, beside the fixture PKI it names.
fn example() -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    for entry in std::fs::read_dir(Path::new(FIXTURES).join("pki")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), pki.join(entry.file_name())).unwrap();
    }
    let config = dir.path().join("gate.toml");
    std::fs::copy(EXAMPLE, &config).unwrap();
    let snapshot = load(&config).unwrap_or_else(|e| panic!("{e}"));
    (dir, snapshot)
}

fn device() -> DeviceIdentity {
    let subject = "CN=lt-1,OU=Laptops,O=Leverancier BV".to_owned();
    DeviceIdentity {
        fingerprint_sha256: "ab".repeat(32),
        fingerprint: [0xab; 32],
        subject_name: DistinguishedName::parse(&subject).ok(),
        subject,
        organization: Some("Leverancier BV".into()),
        organizational_units: vec!["Laptops".into()],
    }
}

fn claims(os: Value, software: Value, security_products: Value) -> Claims {
    serde_json::from_value(json!({
        "eat_profile": "urn:posture-gate:attestation:v1",
        "iat": 1_800_000_000,
        "os": os,
        "software": software,
        "security_products": security_products,
    }))
    .unwrap()
}

/// Every example segment's decision for these claims, with the
/// requirements each denial names.
fn decisions(s: &Snapshot, c: &Claims) -> Vec<(String, Decision, Vec<Requirement>)> {
    let assessment = assess(&s.matcher, c);
    // A day on which the example's staged rule still warns.
    let today = utc_day(1_800_000_000);
    (0..s.segments.len())
        .map(|i| {
            let r = evaluate_segment(s, i, &device(), &assessment, today);
            let unmet = r.unmet.iter().map(|u| u.requirement).collect();
            (s.segments[i].name.clone(), r.decision, unmet)
        })
        .collect()
}

fn debian() -> Claims {
    claims(
        json!({"family": "linux", "name": "Debian GNU/Linux 12 (bookworm)", "version": "12"}),
        json!([
            {"name": "firefox-esr", "version": "128.5.0esr-1~deb12u1", "id": "firefox-esr", "source": "dpkg"},
            {"name": "openssh-server", "version": "1:9.2p1-2+deb12u3", "id": "openssh-server", "source": "dpkg"},
        ]),
        json!([]),
    )
}

fn mac(version: &str, xprotect_up_to_date: bool) -> Claims {
    claims(
        json!({"family": "macos", "name": "macOS", "version": version}),
        json!([
            {"name": "Safari", "vendor": "Apple", "version": "18.1", "id": "com.apple.Safari", "source": "macos-app"},
        ]),
        json!([{
            "name": "XProtect", "vendor": "Apple", "kind": "antivirus",
            "enabled": true, "up_to_date": xprotect_up_to_date,
        }]),
    )
}

fn windows(security_products: Value) -> Claims {
    claims(
        json!({"family": "windows", "name": "Windows 11 Pro", "version": "10.0.26100"}),
        json!([
            {"name": "Mozilla Firefox", "vendor": "Mozilla", "version": "133.0", "source": "registry"},
        ]),
        security_products,
    )
}

fn allowed_everywhere(d: &[(String, Decision, Vec<Requirement>)]) {
    assert_eq!(d.len(), 5, "the example has five segments");
    for (segment, decision, unmet) in d {
        assert_eq!(*decision, Decision::Allow, "{segment}: {unmet:?}");
    }
}

#[test]
fn a_clean_debian_machine_without_antivirus_is_allowed_on_every_example_segment() {
    let (_dir, s) = example();
    allowed_everywhere(&decisions(&s, &debian()));
}

#[test]
fn a_clean_mac_with_xprotect_is_allowed_on_every_example_segment() {
    let (_dir, s) = example();
    allowed_everywhere(&decisions(&s, &mac("15.1", true)));
    allowed_everywhere(&decisions(&s, &mac("26.1", true)));
}

#[test]
fn a_mac_is_held_to_the_os_minimum_and_to_a_current_xprotect() {
    let (_dir, s) = example();
    // macOS 14 is enough for the office, not for finance and management.
    let older = decisions(&s, &mac("14.7.1", true));
    for (segment, decision, unmet) in &older {
        let want = match segment.as_str() {
            "financien" | "beheer" => Decision::Deny,
            _ => Decision::Allow,
        };
        assert_eq!(*decision, want, "{segment}");
        if want == Decision::Deny {
            assert_eq!(unmet, &[Requirement::MinOsVersion], "{segment}");
        }
    }
    // XProtect with stale definitions does not count as a working antivirus.
    let stale = decisions(&s, &mac("15.1", false));
    for (segment, decision, unmet) in &stale {
        if segment == "gasten" {
            assert_eq!(*decision, Decision::Allow);
        } else {
            assert_eq!(*decision, Decision::Deny, "{segment}");
            assert_eq!(unmet, &[Requirement::Antivirus], "{segment}");
        }
    }
}

#[test]
fn windows_without_a_working_antivirus_is_still_denied_where_one_is_required() {
    let (_dir, s) = example();
    let none = decisions(&s, &windows(json!([])));
    let defender_off = decisions(
        &s,
        &windows(json!([{
            "name": "Microsoft Defender Antivirus", "vendor": "Microsoft", "kind": "antivirus",
            "enabled": false, "up_to_date": true,
        }])),
    );
    for d in [&none, &defender_off] {
        for (segment, decision, unmet) in d {
            if segment == "gasten" {
                assert_eq!(*decision, Decision::Allow, "guests need no antivirus");
            } else {
                assert_eq!(*decision, Decision::Deny, "{segment}");
                assert_eq!(unmet, &[Requirement::Antivirus], "{segment}");
            }
        }
    }
    let defender = windows(json!([{
        "name": "Microsoft Defender Antivirus", "vendor": "Microsoft", "kind": "antivirus",
        "enabled": true, "up_to_date": true,
    }]));
    allowed_everywhere(&decisions(&s, &defender));
}
