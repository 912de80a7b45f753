//! Staged enforcement over real sockets and through `check-config` (issue
//! 19 point 8). The gate reads the real clock, so the dates are relative to
//! today: a rule whose deny_from was yesterday denies, one whose day is the
//! day after tomorrow still warns and names that day (two days, so a test
//! that runs across midnight still holds).

use std::process::Command;

use crate::support as common;

use common::upstream;
use common::{Proto, RouteSpec, Settings, TestGate};

fn day(offset: i64) -> time::Date {
    time::OffsetDateTime::now_utc().date() + time::Duration::days(offset)
}

fn staged_policy(name: &str, deny_from: time::Date) -> String {
    format!(
        "\n[[policy]]\nname = \"{name}\"\nrule = [{{ catalogue = \"kaspersky\", action = \"warn\", deny_from = {deny_from} }}]\n\n\
         [[segment]]\nname = \"{name}\"\nsensitivity = \"low\"\npolicy = \"{name}\"\n"
    )
}

// current_thread: the audit capture sees the events of the gate's tasks.
#[tokio::test(flavor = "current_thread")]
async fn a_staged_rule_warns_before_its_day_and_denies_from_it_and_the_audit_says_which() {
    let (captured, _guard) = common::audit::capture();
    let up = upstream::start("app").await;
    let routes = [
        RouteSpec {
            host: "public.test",
            prefix: "/past",
            upstream: up.url(),
            segment: "staged-past",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/future",
            upstream: up.url(),
            segment: "staged-future",
        },
    ];
    let (past, future) = (day(-1), day(2));
    let settings = Settings {
        extra: staged_policy("staged-past", past) + &staged_policy("staged-future", future),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes, &settings).await;
    let device = gate.pki.device("lt-801", "Leverancier BV");

    let answer = gate.attest(&device, true).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let verdict = answer.json();
    assert_eq!(verdict["decisions"]["staged-past"], "deny", "{verdict}");
    assert_eq!(verdict["decisions"]["staged-future"], "warn", "{verdict}");
    let finding = |segment: &str| {
        verdict["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["segment"] == segment)
            .cloned()
            .unwrap_or_else(|| panic!("no finding for {segment}: {verdict}"))
    };
    assert_eq!(finding("staged-past")["action"], "deny");
    assert_eq!(finding("staged-past")["deny_from"], past.to_string());
    assert_eq!(finding("staged-future")["action"], "warn");
    assert_eq!(finding("staged-future")["deny_from"], future.to_string());

    let client = gate.client(Some(&device), Proto::H1);
    let denied = client.get("public.test", "/past").await;
    assert_eq!(denied.status, 403);
    let warned = client.get("public.test", "/future").await;
    assert_eq!(warned.status, 200, "{}", warned.text());
    assert!(
        common::upstream_header(&warned, "posture-warning").is_some(),
        "the upstream is told of the warning: {}",
        warned.text()
    );

    // Each request's decision event says which stage applied: the action,
    // and the day the stages turn.
    let decisions = captured.decisions();
    let event = |segment: &str| {
        decisions
            .iter()
            .rev()
            .find(|e| e["segment"] == segment)
            .cloned()
            .unwrap_or_else(|| panic!("no decision event for {segment}: {decisions:#?}"))
    };
    let denied_event = event("staged-past");
    assert_eq!(
        denied_event["findings"][0]["action"], "deny",
        "{denied_event}"
    );
    assert_eq!(denied_event["findings"][0]["deny_from"], past.to_string());
    let warned_event = event("staged-future");
    assert_eq!(
        warned_event["findings"][0]["action"], "warn",
        "{warned_event}"
    );
    assert_eq!(warned_event["findings"][0]["deny_from"], future.to_string());
}

fn check_config(
    text: &str,
) -> (
    Option<i32>,
    String,
    String,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gate.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args(["check-config", file.to_str().unwrap()])
        .output()
        .expect("the posture-gate binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        file,
        dir,
    )
}

#[test]
fn check_config_lists_rules_that_deny_within_30_days_subjects_and_unreportable_antivirus() {
    let (soon, past, later) = (day(10), day(-3), day(100));
    let text = format!(
        r#"[[policy]]
name = "kantoor"
require_antivirus = true
rule = [
  {{ catalogue = "kaspersky", action = "warn", categories = ["vpn"], deny_from = {soon} }},
  {{ catalogue = "kaspersky", action = "warn", categories = ["antivirus"], deny_from = {past} }},
  {{ catalogue = "kaspersky", action = "warn", categories = ["password_manager"], deny_from = {later} }},
]

[[segment]]
name = "kantoor"
sensitivity = "low"
policy = "kantoor"

[[exemption]]
device_subject = "CN = lt-042, OU = Beheer, O = Leverancier BV"
catalogue = "kaspersky"
expires = 2999-12-31
reference = "RA-1"
"#
    );
    let (code, out, err, _file, _dir) = check_config(&text);
    assert_eq!(code, Some(0), "{out}\n{err}");
    for line in [
        format!("  policy kantoor: kaspersky warns until {}, denies from {soon} (in 10 days)", day(9)),
        format!("  policy kantoor: kaspersky denies since {past} (deny_from has passed: the rule now denies)"),
        "subject \"CN = lt-042, OU = Beheer, O = Leverancier BV\" matches a certificate whose subject is exactly CN=lt-042,O=leverancier bv,OU=beheer".to_owned(),
        "WARNING: policy kantoor requires an antivirus on android, ios, chromeos, other".to_owned(),
    ] {
        assert!(out.contains(&line), "check-config lacks {line:?}:\n{out}");
    }
    assert!(!out.contains(&format!("denies from {later} (in")), "{out}");
}

#[test]
fn check_config_refuses_a_subject_it_cannot_read_at_its_line() {
    let text = "[[policy]]\nname = \"p\"\n\n[[segment]]\nname = \"s\"\nsensitivity = \"low\"\npolicy = \"p\"\n\n\
                [[exemption]]\ndevice_subject = \"CN=lt-042;O=Leverancier BV\"\ncatalogue = \"kaspersky\"\n\
                expires = 2999-12-31\nreference = \"RA-1\"\n";
    let (code, out, err, file, _dir) = check_config(text);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "{}:10:18: device_subject \"CN=lt-042;O=Leverancier BV\" is not a distinguished name",
            file.display()
        )),
        "{err}"
    );
}
