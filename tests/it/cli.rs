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

/// A config for a PKI made by `pki init` in `dir/pki`, with `server_extra`
/// lines in `[server]` and `extra` at the end.
fn pki_config(dir: &Path, server_extra: &str, extra: &str) -> std::path::PathBuf {
    if !dir.join("pki/ca.pem").exists() {
        let out = gate(&["pki", "init", dir.join("pki").to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        std::fs::write(dir.join("pki/nonce.key"), [7u8; 32]).unwrap();
    }
    let f = dir.join("gate.toml");
    std::fs::write(
        &f,
        format!(
            "[server]\nlisten = \"127.0.0.1:8443\"\ncert = \"pki/server.pem\"\n\
             key = \"pki/server.key\"\nclient_ca = \"pki/device-ca.pem\"\n{server_extra}\n\
             [attestation]\ntrust_anchors = [\"pki/device-ca.pem\"]\n\
             nonce_secret_file = \"pki/nonce.key\"\n\n\
             [[policy]]\nname = \"p\"\nrule = [{{ catalogue = \"kaspersky\", action = \"deny\" }}]\n\n\
             [[segment]]\nname = \"s\"\nsensitivity = \"low\"\npolicy = \"p\"\n{extra}"
        ),
    )
    .unwrap();
    f
}

fn check_config(f: &Path) -> (Option<i32>, String, String) {
    let out = gate(&["check-config", f.to_str().unwrap()]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn check_config_names_both_files_of_a_key_that_is_not_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let f = pki_config(dir.path(), "", "");
    assert_eq!(check_config(&f).0, Some(0));
    // The device CA's key is a valid key, but not the server certificate's.
    let f = pki_config(dir.path(), "", "");
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("pki/server.key", "pki/device-ca.key");
    std::fs::write(&f, text).unwrap();
    let (code, _, err) = check_config(&f);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("gate.toml:4:7: [server] cert and key"),
        "{err}"
    );
    for file in ["pki/device-ca.key", "pki/server.pem"] {
        assert!(
            err.contains(&dir.path().join(file).display().to_string()),
            "{err}"
        );
    }
    // serve stops at the same check, with the same message, before binding.
    let out = gate(&["serve", "--config", f.to_str().unwrap()]);
    let serve_err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        serve_err.contains("does not belong to the certificate"),
        "{serve_err}"
    );
    assert!(!serve_err.contains("KeyMismatch"), "{serve_err}");
}

#[test]
fn check_config_refuses_an_expired_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let f = pki_config(dir.path(), "", "");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(100);
    params.not_after = now - time::Duration::days(1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("pki/server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("pki/server.key"), key.serialize_pem()).unwrap();
    let (code, out, err) = check_config(&f);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("gate.toml: the server certificate"), "{err}");
    assert!(err.contains("server.pem expired on"), "{err}");
    assert!(out.contains("ERROR: the server certificate"), "{out}");
}

#[test]
fn check_config_warns_of_a_route_host_the_certificate_does_not_name_and_pki_init_host_fixes_it() {
    let route = "\n[[route]]\nhost = \"gate.example.org\"\nupstream = \"http://127.0.0.1:1\"\nsegment = \"s\"\n";
    let dir = tempfile::tempdir().unwrap();
    let f = pki_config(dir.path(), "", route);
    let (code, out, err) = check_config(&f);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("WARNING: the server certificate")
            && out.contains("does not name gate.example.org")
            && out.contains("pki init --host gate.example.org"),
        "{out}"
    );
    let fixed = tempfile::tempdir().unwrap();
    let init = gate(&[
        "pki",
        "init",
        fixed.path().join("pki").to_str().unwrap(),
        "--host",
        "gate.example.org",
        "--host",
        "192.0.2.10",
    ]);
    assert!(init.status.success(), "{init:?}");
    assert!(String::from_utf8_lossy(&init.stdout).contains("gate.example.org, 192.0.2.10"));
    std::fs::write(fixed.path().join("pki/nonce.key"), [7u8; 32]).unwrap();
    let route_ip = route.replace("gate.example.org", "192.0.2.10");
    let f = pki_config(fixed.path(), "", &format!("{route}{route_ip}"));
    let (code, out, err) = check_config(&f);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains("WARNING"), "{out}");
}

#[test]
fn check_config_reports_every_error_at_once_and_spells_out_months() {
    let dir = tempfile::tempdir().unwrap();
    let f = pki_config(
        dir.path(),
        "header_read_timeout = \"0s\"\nidle_timeout = \"15M\"\n",
        "\n[[route]]\nhost = \"localhost\"\nupstream = \"http://127.0.0.1:1\"\nsegment = \"nope\"\n",
    );
    let (code, _, err) = check_config(&f);
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains("gate.toml:6:23: header_read_timeout must be more than 0"),
        "{err}"
    );
    assert!(
        lines[1].contains("gate.toml:7:16: duration \"15M\" is in months")
            && lines[1].contains("write \"15m\" for minutes"),
        "{err}"
    );
    assert!(lines[2].contains("unknown segment \"nope\""), "{err}");
}
