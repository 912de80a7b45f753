//! The `posture-gate` command as a user runs it: `pki`, `verify` and
//! `check-config`, through the real binary.

use std::path::Path;
use std::process::{Command, Output};

use posture_core::attestation::claims::{Claims, Os, OsFamily, Software, PROFILE_V1};
use posture_core::attestation::sign::{sign_token, SigningKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args(args)
        .output()
        .expect("the posture-gate binary runs")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn claims(now: i64, software: Vec<Software>) -> Claims {
    Claims {
        eat_profile: Some(PROFILE_V1.to_owned()),
        iat: now,
        exp: None,
        eat_nonce: None,
        sub: Some("test laptop".into()),
        os: Os {
            family: OsFamily::Windows,
            name: Some("Windows 11 Pro".into()),
            version: Some("10.0.22631".into()),
        },
        software,
        processes: vec![],
        security_products: vec![],
    }
}

fn item(name: &str, vendor: &str, version: &str) -> Software {
    Software {
        name: name.into(),
        vendor: Some(vendor.into()),
        version: Some(version.into()),
        ..Software::default()
    }
}

/// `pki init` + `pki issue-device`, then a token signed with the device key.
fn device_token(dir: &Path, software: Vec<Software>) -> (std::path::PathBuf, std::path::PathBuf) {
    let pki = dir.join("pki");
    let out = gate(&["pki", "init", pki.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "pki init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gate(&[
        "pki",
        "issue-device",
        pki.to_str().unwrap(),
        "--name",
        "lt-042",
        "--org",
        "Leverancier BV",
        "--ou",
        "Beheer",
    ]);
    assert!(
        out.status.success(),
        "issue-device: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = pki.join("devices").join("lt-042");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dev.join("cert.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chain.len(), 2, "cert.pem holds the leaf and the device CA");
    let key = SigningKey::from_pem(&std::fs::read_to_string(dev.join("key.pem")).unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = sign_token(&claims(now, software), &chain, &key).unwrap();
    let token_file = dir.join("token.jwt");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    (token_file, dev.join("cert.pem"))
}

#[test]
fn verify_denies_kaspersky_in_the_default_segment_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (token, cert) = device_token(
        dir.path(),
        vec![
            item("Mozilla Firefox (x64 nl)", "Mozilla", "128.0"),
            item(
                "Kaspersky Endpoint Security for Windows",
                "AO Kaspersky Lab",
                "12.3.0.493",
            ),
        ],
    );
    let anchor = dir.path().join("pki/ca.pem");
    let out = gate(&[
        "verify",
        "--token",
        token.to_str().unwrap(),
        "--trust-anchor",
        anchor.to_str().unwrap(),
        "--client-cert",
        cert.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["decisions"]["default"], "deny");
    assert_eq!(v["device"]["organization"], "Leverancier BV");
    assert_eq!(
        v["device"]["subject"],
        "CN=lt-042,OU=Beheer,O=Leverancier BV"
    );
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v:#}");
    assert_eq!(findings[0]["catalog_id"], "kaspersky");
    assert_eq!(findings[0]["segment"], "default");
    assert_eq!(findings[0]["action"], "deny");
    assert_eq!(findings[0]["item"]["kind"], "software");
    assert_eq!(findings[0]["item"]["version"], "12.3.0.493");
    assert_eq!(
        v["device"]["fingerprint_sha256"].as_str().unwrap().len(),
        64
    );
}

#[test]
fn verify_allows_a_clean_device() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = device_token(
        dir.path(),
        vec![item("ESET Endpoint Security", "ESET, spol. s r.o.", "11.0")],
    );
    let anchor = dir.path().join("pki/ca.pem");
    let out = gate(&[
        "verify",
        "--token",
        token.to_str().unwrap(),
        "--trust-anchor",
        anchor.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = stdout_json(&out);
    assert_eq!(v["decisions"]["default"], "allow");
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn verify_prints_the_reason_and_exits_one_for_an_invalid_token() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = device_token(dir.path(), vec![]);
    let anchor = dir.path().join("pki/ca.pem");
    // An hour later the token (max age 15 minutes) is stale.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = gate(&[
        "verify",
        "--token",
        token.to_str().unwrap(),
        "--trust-anchor",
        anchor.to_str().unwrap(),
        "--now",
        &later,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v, serde_json::json!({"valid": false, "reason": "stale"}));

    // Another CA as trust anchor: the chain is untrusted.
    let other = tempfile::tempdir().unwrap();
    let out = gate(&["pki", "init", other.path().to_str().unwrap()]);
    assert!(out.status.success());
    let out = gate(&[
        "verify",
        "--token",
        token.to_str().unwrap(),
        "--trust-anchor",
        other.path().join("ca.pem").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout_json(&out)["reason"], "untrusted_chain");
}

#[test]
fn verify_exits_two_on_usage_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (token, _) = device_token(dir.path(), vec![]);
    let anchor = dir.path().join("pki/ca.pem");
    let out = gate(&["verify", "--token", token.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --trust-anchor is a usage error"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[segment]]\nname = \"x\"\nsensitivity = \"high\"\npolicy = \"nope\"\n",
    )
    .unwrap();
    let out = gate(&[
        "verify",
        "--token",
        token.to_str().unwrap(),
        "--trust-anchor",
        anchor.to_str().unwrap(),
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:4:"), "names file and line: {err}");
    let out = gate(&[
        "verify",
        "--token",
        dir.path().join("missing.jwt").to_str().unwrap(),
        "--trust-anchor",
        anchor.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.jwt"));
}

#[test]
fn check_config_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gate.toml");
    std::fs::write(&f, "[attestation]\nmax_age = \"15m\"\nmax_agee = \"1h\"\n").unwrap();
    let out = gate(&["check-config", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gate.toml:3:1"), "{err}");
    assert!(err.contains("max_agee"), "{err}");
}
