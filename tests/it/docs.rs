//! The documents in docs/ against the product: the worked example of
//! docs/attestation-v1.md is read from the document (its marked blocks)
//! and checked by `posture-gate verify`, so the document cannot drift from
//! what the gate accepts. The agent's side of the example (that
//! `posture-agent token` makes these claims from that inventory) is
//! crates/agent/tests/it/docs.rs.

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read_doc(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("docs").join(name))
        .unwrap_or_else(|e| panic!("docs/{name}: {e}"))
}

/// The fenced block right after the line `<!-- example: {marker} -->`.
pub fn example(doc: &str, marker: &str) -> String {
    let tag = format!("<!-- example: {marker} -->");
    let mut lines = doc.lines().skip_while(|l| l.trim() != tag).skip(1);
    let fence = lines.next().unwrap_or_else(|| panic!("no block {tag}"));
    assert!(fence.starts_with("```"), "{tag} is not followed by a fence");
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    body.join("\n") + "\n"
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("a PEM certificate")
        .to_vec()
}

/// Writes the example's files into a temp dir and runs the verify command
/// of the document there, with `--now` replaced when `now` is given.
fn run_verify(doc: &str, token: &str, now: Option<&str>) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.jwt"), token).unwrap();
    for file in ["device.pem", "device-ca.pem"] {
        std::fs::write(dir.path().join(file), example(doc, file)).unwrap();
    }
    let command = example(doc, "verify command");
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("posture-gate"));
    let mut args: Vec<String> = words.map(str::to_owned).collect();
    if let Some(now) = now {
        let at = args.iter().position(|a| a == "--now").expect("--now") + 1;
        args[at] = now.to_owned();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args(&args)
        .current_dir(dir.path())
        .output()
        .expect("run posture-gate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), json_of(&stdout))
}

#[test]
fn the_worked_example_token_verifies_with_the_gate_as_of_the_time_it_was_made() {
    let doc = read_doc("attestation-v1.md");
    let token = example(&doc, "token.jwt");
    let parts: Vec<&str> = token.trim().split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");

    // The decoded header and claims shown are the token's own.
    let header = decode_part(parts[0]);
    let claims = decode_part(parts[1]);
    assert_eq!(header, json_of(&example(&doc, "header")));
    assert_eq!(claims, json_of(&example(&doc, "claims")));
    assert_eq!(
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(),
        64,
        "ES256 R||S"
    );
    // x5c: the device certificate shown, then the trust anchor shown.
    let x5c: Vec<Vec<u8>> = header["x5c"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| STANDARD.decode(c.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        x5c,
        [
            der_of(&example(&doc, "device.pem")),
            der_of(&example(&doc, "device-ca.pem"))
        ]
    );

    // `--now` is the moment the token was made (its iat).
    let command = example(&doc, "verify command");
    let now = command
        .split_whitespace()
        .skip_while(|w| *w != "--now")
        .nth(1)
        .expect("--now TIME");
    let now_unix = time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp();
    assert_eq!(claims["iat"].as_i64(), Some(now_unix));

    let (code, verdict) = run_verify(&doc, &token, None);
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict, json_of(&example(&doc, "verdict")));
    assert_eq!(verdict["decisions"]["default"], "deny");
}

/// The same command really checks: an hour later the token is stale, and
/// one changed byte of the claims breaks the signature.
#[test]
fn the_worked_example_is_refused_when_stale_or_altered() {
    let doc = read_doc("attestation-v1.md");
    let token = example(&doc, "token.jwt");
    let claims = decode_part(token.trim().split('.').nth(1).unwrap());
    let later = time::OffsetDateTime::from_unix_timestamp(claims["iat"].as_i64().unwrap() + 3600)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, verdict) = run_verify(&doc, &token, Some(&later));
    assert_eq!(
        (code, &verdict["reason"]),
        (1, &Value::from("stale")),
        "{verdict}"
    );

    let mut altered = claims.clone();
    altered["software"].as_array_mut().unwrap().pop();
    let parts: Vec<&str> = token.trim().split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(altered.to_string()),
        parts[2]
    );
    let (code, verdict) = run_verify(&doc, &forged, None);
    assert_eq!(
        (code, &verdict["reason"]),
        (1, &Value::from("bad_signature")),
        "{verdict}"
    );
}

/// The reason-code table names exactly the codes the gate gives.
#[test]
fn the_reason_code_table_lists_every_code_the_gate_gives_and_no_other() {
    let doc = read_doc("attestation-v1.md");
    let section = doc
        .split("## 9. Reason codes")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("section 9");
    let mut listed: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| order"))
        .filter_map(|l| l.split('|').nth(2))
        .flat_map(|cell| cell.split('/'))
        .map(|c| c.trim().trim_matches('`'))
        .filter(|c| !c.is_empty() && !c.starts_with("---"))
        .collect();
    listed.sort();
    listed.dedup();
    let mut codes: Vec<&str> = posture_core::attestation::Reason::ALL
        .iter()
        .map(|r| r.code())
        .collect();
    codes.sort();
    assert_eq!(listed, codes);
}

#[test]
fn the_readme_points_to_the_documents_in_the_repository() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    for doc in ["docs/attestation-v1.md", "docs/operations.md"] {
        assert!(
            readme.contains(&format!("]({doc})")),
            "README lacks a link to {doc}"
        );
        assert!(Path::new(ROOT).join(doc).is_file(), "{doc} is missing");
    }
    assert!(
        !readme.contains("shared/spec"),
        "README points outside the repository"
    );
}

/// `promtool`: on PATH (Debian's `prometheus` package, which
/// scripts/test-all installs). Missing is a failure, never a skip.
fn promtool() -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "promtool is not installed: run scripts/test-all (it installs Debian's \
             `prometheus` package), or `apt-get install prometheus`"
        )
    })
}

fn promtool_ok(args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The alert rules operations.md recommends are valid rules
/// (`promtool check rules`) and fire on exactly the series they are
/// meant for (`promtool test rules` with tests/fixtures/prometheus).
#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let root = Path::new(ROOT);
    let text = promtool_ok(&["check", "rules", "config/prometheus/alerts.yml"], root);
    assert!(text.contains("SUCCESS: 13 rules found"), "{text}");
    promtool_ok(
        &["test", "rules", "alerts.test.yml"],
        &root.join("tests/fixtures/prometheus"),
    );
}

/// Every metric the alerts use is one operations.md lists, so the names
/// the admin listener exports and the alerts agree through one table.
#[test]
fn the_alerts_use_only_metrics_the_operators_guide_lists() {
    let rules =
        std::fs::read_to_string(Path::new(ROOT).join("config/prometheus/alerts.yml")).unwrap();
    let guide = read_doc("operations.md");
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("posture_gate_"))
        .collect();
    used.sort();
    used.dedup();
    assert!(used.len() >= 8, "{used:?}");
    for metric in used {
        assert!(
            guide.contains(&format!("`{metric}")),
            "docs/operations.md does not list {metric}"
        );
    }
    assert!(guide.contains("(../config/prometheus/alerts.yml)"));
}
