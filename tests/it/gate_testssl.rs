//! testssl.sh (Debian's `testssl.sh` package, program `testssl`) against a
//! running gate on 127.0.0.1, with the server certificate of the
//! development PKI (`posture-gate pki init`): every finding of severity LOW
//! or worse fails the test, except the few below that are about the test
//! certificate rather than the gate. Protocols, cipher suites and their
//! order, forward secrecy, server defaults, HTTP security headers and the
//! known TLS vulnerabilities are all checked.
//!
//! No DNS or other network lookup: the target is an IP address, `--nodns
//! none`, and without `--phone-out` testssl fetches no CRL or OCSP answer.

use crate::support as common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use posture_gate::gate::Gate;
use posture_testkit::pki::Pki;

use common::{config_text, RouteSpec, Settings};

/// Findings of severity LOW or worse that are not a property of the gate.
/// Each names why; anything else at LOW or worse fails.
const NOT_ABOUT_THE_GATE: &[(&str, &str)] = &[(
    "cert_revocation",
    "\"Neither CRL nor OCSP URI provided\": the development PKI's server \
     certificate has no CRL distribution point or OCSP responder, because \
     nothing would serve them. Revocation information is put in a \
     certificate by the CA that issues it; the gate serves whatever \
     certificate it is configured with and cannot add either.",
)];

const FAILING: &[&str] = &["LOW", "MEDIUM", "HIGH", "CRITICAL", "FATAL"];

fn testssl_program() -> PathBuf {
    for name in ["testssl", "testssl.sh"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "this test needs testssl.sh (the Debian package testssl.sh installs it as `testssl`): \
         apt-get install testssl.sh, or run scripts/test-all, which installs it"
    );
}

struct Running {
    _dir: tempfile::TempDir,
    root_ca: PathBuf,
    port: u16,
    _task: tokio::task::JoinHandle<Result<(), posture_gate::gate::GateError>>,
}

async fn start_gate() -> Running {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate().unwrap();
    let paths = pki.write(&dir.path().join("pki")).unwrap();
    std::fs::write(dir.path().join("nonce.key"), [3u8; 32]).unwrap();
    let up = common::upstream::start("app").await;
    let routes = [RouteSpec {
        host: "localhost",
        prefix: "/",
        upstream: up.url(),
        segment: "finance",
    }];
    let text = config_text(&routes, &Settings::default())
        .replace("cert = \"server.pem\"", "cert = \"pki/server.pem\"")
        .replace("key = \"server.key\"", "key = \"pki/server.key\"")
        .replace("\"device-ca.pem\"", "\"pki/device-ca.pem\"");
    let config = dir.path().join("gate.toml");
    std::fs::write(&config, text).unwrap();
    let gate = Gate::bind(config).await.unwrap_or_else(|e| panic!("{e}"));
    let port = gate.local_addr().port();
    let task = tokio::spawn(async move {
        // The upstream lives as long as the gate.
        let _up = up;
        gate.run().await
    });
    Running {
        _dir: dir,
        root_ca: paths.ca_cert,
        port,
        _task: task,
    }
}

async fn run_testssl(program: &Path, gate: &Running, json: &Path) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("--quiet")
        .args(["--color", "0"])
        .args(["--warnings", "off"])
        .args(["--nodns", "none"])
        .args(["--connect-timeout", "10"])
        .args(["--openssl-timeout", "10"])
        .arg("--add-ca")
        .arg(&gate.root_ca)
        .arg("--jsonfile")
        .arg(json)
        .args(["-p", "-s", "-f", "-P", "-S", "-h", "-U"])
        .arg(format!("https://127.0.0.1:{}/", gate.port))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("testssl.sh finishes within 10 minutes")
        .expect("testssl.sh runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testssl_finds_nothing_of_severity_low_or_worse() {
    let program = testssl_program();
    let gate = start_gate().await;
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("testssl.json");
    let out = run_testssl(&program, &gate, &json).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "testssl.sh wrote no JSON ({e}); exit {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let findings: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("testssl.sh JSON: {e}\n{text}"));
    let field = |f: &serde_json::Value, name: &str| f[name].as_str().unwrap_or("").to_string();

    // The scan really happened: these are in every complete run.
    for id in [
        "TLS1_3",
        "cipher_order",
        "HTTP_status_code",
        "heartbleed",
        "cert_chain_of_trust",
    ] {
        assert!(
            findings.iter().any(|f| field(f, "id") == id),
            "testssl.sh reported no {id}; incomplete scan?\n{stdout}"
        );
    }
    // The test certificate chains to the dev root it was given.
    let trust = findings
        .iter()
        .find(|f| field(f, "id") == "cert_chain_of_trust")
        .map(|f| field(f, "severity"));
    assert_eq!(trust.as_deref(), Some("OK"), "{stdout}");

    let bad: Vec<String> = findings
        .iter()
        .filter(|f| FAILING.contains(&field(f, "severity").as_str()))
        .filter(|f| {
            !NOT_ABOUT_THE_GATE
                .iter()
                .any(|(id, _)| field(f, "id") == *id)
        })
        .map(|f| {
            format!(
                "{} {}: {}",
                field(f, "severity"),
                field(f, "id"),
                field(f, "finding")
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "testssl.sh findings of severity LOW or worse:\n  {}\n\n{stdout}",
        bad.join("\n  ")
    );
}
