//! A config must not loosen a deny without saying so: `categories = []`,
//! categories that select nothing of the entry, and a high-sensitivity
//! segment whose policy denies nothing are errors with file and line, from
//! `check-config`, at load, and at reload (where the running config keeps
//! denying).

use crate::support as common;

use std::path::Path;
use std::process::Command;

use common::upstream::{self, Upstream};
use common::{config_text, Proto, RouteSpec, Settings, TestGate};

fn routes(up: &Upstream) -> Vec<RouteSpec> {
    vec![RouteSpec {
        host: "finance.test",
        prefix: "/",
        upstream: up.url(),
        segment: "finance",
    }]
}

const STRICT_RULE: &str = r#"rule = [{ catalogue = "kaspersky", action = "deny" }]"#;

/// The line (1-based) of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn check_config(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `text` over the running gate's config and checks that load,
/// check-config and reload all refuse it at `needle`'s line with `message`,
/// and that the Kaspersky device stays denied on the deny segment.
async fn refused_everywhere(gate: &TestGate, text: &str, needle: &str, message: &str) {
    std::fs::write(&gate.config, text).unwrap();
    let at = format!("gate.toml:{}:", line_of(text, needle));

    let errors = posture_core::config::load(&gate.config)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains(&at) && errors.contains(message),
        "load: {errors}"
    );

    let (code, stderr) = check_config(&gate.config);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&at) && stderr.contains(message),
        "check-config: {stderr}"
    );

    let error = gate.handle.reload_now().await.unwrap_err().to_string();
    assert!(error.contains(&at), "reload: {error}");
}

async fn kaspersky_device_denied(gate: &TestGate, device: &common::Device) {
    let answer = gate
        .client(Some(device), Proto::H1)
        .get("finance.test", "/")
        .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
}

#[tokio::test]
async fn categories_empty_is_an_error_and_the_deny_stays() {
    let up = upstream::start("app").await;
    let gate = TestGate::start(&routes(&up), &Settings::default()).await;
    let device = gate.pki.device("lt-801", "Org");
    assert_eq!(gate.attest(&device, true).await.status, 200);
    kaspersky_device_denied(&gate, &device).await;

    let text = config_text(&routes(&up), &Settings::default()).replacen(
        STRICT_RULE,
        r#"rule = [{ catalogue = "kaspersky", action = "deny", categories = [] }]"#,
        1,
    );
    refused_everywhere(&gate, &text, "categories = []", "categories = []").await;
    kaspersky_device_denied(&gate, &device).await;
}

#[tokio::test]
async fn a_high_segment_whose_policy_denies_nothing_needs_allow_empty() {
    let up = upstream::start("app").await;
    let gate = TestGate::start(&routes(&up), &Settings::default()).await;
    let device = gate.pki.device("lt-802", "Org");
    assert_eq!(gate.attest(&device, true).await.status, 200);

    // finance (high) guarded by a policy that only warns.
    let warn_only = config_text(&routes(&up), &Settings::default()).replacen(
        STRICT_RULE,
        r#"rule = [{ catalogue = "kaspersky", action = "warn" }]"#,
        1,
    );
    refused_everywhere(&gate, &warn_only, "policy = \"strict\"", "denies nothing").await;
    kaspersky_device_denied(&gate, &device).await;

    // Said explicitly, it is accepted.
    let explicit = warn_only.replacen(
        "name = \"strict\"\n",
        "name = \"strict\"\nallow_empty = true\n",
        1,
    );
    std::fs::write(&gate.config, &explicit).unwrap();
    let (code, stderr) = check_config(&gate.config);
    assert_eq!(code, Some(0), "{stderr}");
    gate.handle.reload_now().await.unwrap();
    let answer = gate
        .client(Some(&device), Proto::H1)
        .get("finance.test", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn categories_the_entry_does_not_have_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/extra-catalogue.toml"),
        dir.path().join("extra.toml"),
    )
    .unwrap();
    let text = r#"[catalogue]
include = ["extra.toml"]

[[policy]]
name = "p"
rule = [{ catalogue = "voorbeeld-scanner", action = "deny", categories = ["vpn"] }]

[[segment]]
name = "s"
sensitivity = "low"
policy = "p"
"#;
    let path = dir.path().join("gate.toml");
    std::fs::write(&path, text).unwrap();
    let errors = posture_core::config::load(&path).unwrap_err().to_string();
    assert!(
        errors.contains("gate.toml:6:") && errors.contains("matches nothing"),
        "{errors}"
    );
    // The same rule with a category the entry has is fine.
    std::fs::write(&path, text.replace("[\"vpn\"]", "[\"vpn\", \"antivirus\"]")).unwrap();
    posture_core::config::load(&path).unwrap();
}
