//! The `posture-agent` binary end to end against the real gate on loopback:
//! collect, token, attest (allowed, denied, refused, errors) and
//! `--interval`.

use crate::support as agent_common;
use posture_testkit as common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_common::{agent, attest, clean_root, header_of, kesl_root, s, AgentGate};
use aws_lc_rs::encoding::AsDer;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{post_token, Answer};
use posture_testkit::pki::{DeviceKeyType, DevicePaths, Pki};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread")]
async fn this_machine_attests_and_is_allowed() {
    let gate = AgentGate::start().await;
    let (_, device) = gate.device("lt-001", DeviceKeyType::P256);
    let run = attest(&gate, &device, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(
        run.stdout
            .contains("Allowed: the gate admits this device to every segment."),
        "{}",
        run.all()
    );
    for segment in ["finance", "office", "open"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(segment) && l.ends_with("allowed")),
            "{segment}: {}",
            run.all()
        );
    }
    assert!(run.stdout.contains("This posture is valid until "));
    assert_eq!(gate.handle.posture_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn kesl_in_the_dpkg_database_is_denied_with_the_finding_and_removal_steps() {
    let gate = AgentGate::start().await;
    let (_, device) = gate.device("lt-002", DeviceKeyType::P256);
    let root = kesl_root();
    let run = attest(&gate, &device, &["--root", s(&root)]).await;
    assert_eq!(run.code, Some(3), "{}", run.all());
    let out = &run.stdout;
    assert!(
        out.contains("DENIED: the gate refuses this device on finance."),
        "{}",
        run.all()
    );
    assert!(out
        .lines()
        .any(|l| l.trim_start().starts_with("finance") && l.ends_with("DENIED")));
    assert!(out
        .lines()
        .any(|l| l.trim_start().starts_with("office") && l.ends_with("allowed, with a warning")));
    assert!(
        out.contains("  - software kesl 12.1.0-1297 (prohibited: kaspersky)"),
        "{out}"
    );
    assert!(
        out.contains("  - process kesl (prohibited: kaspersky)"),
        "{out}"
    );
    assert!(out.contains("How to remove "), "{out}");
    assert!(out.contains("  1. "), "{out}");
    assert!(
        out.contains("Then run posture-agent attest again."),
        "{out}"
    );

    // --json prints the gate's verdict as it came.
    let run = attest(&gate, &device, &["--root", s(&root), "--json"]).await;
    assert_eq!(run.code, Some(3), "{}", run.all());
    let verdict: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["decisions"]["finance"], "deny");
    assert!(verdict["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["catalog_id"] == "kaspersky" && f["item"]["name"] == "kesl"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_fixture_root_is_allowed() {
    let gate = AgentGate::start().await;
    let (_, device) = gate.device("lt-003", DeviceKeyType::P256);
    let root = clean_root(gate.dir.path());
    let run = attest(&gate, &device, &["--root", s(&root)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(!run.stdout.contains("kesl"), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_device_cannot_use_another_devices_token() {
    let gate = AgentGate::start().await;
    let (_, a) = gate.device("lt-a", DeviceKeyType::P256);
    let (b_creds, _) = gate.device("lt-b", DeviceKeyType::P256);
    let b = gate.client(&b_creds);
    let challenge = b
        .get("localhost", "/.well-known/posture-gate/challenge")
        .await;
    assert_eq!(challenge.status, 200, "{}", challenge.text());
    let nonce = challenge.json()["nonce"].as_str().unwrap().to_owned();

    let run = agent(&[
        "token",
        "--cert",
        s(&a.cert),
        "--key",
        s(&a.key),
        "--nonce",
        &nonce,
        "--root",
        s(&clean_root(gate.dir.path())),
    ])
    .await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let answer: Answer = post_token(&b, "localhost", run.stdout.trim()).await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.json()["reason"], "key_mismatch");
    assert_eq!(answer.json()["valid"], false);
    assert_eq!(gate.handle.posture_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_exits_one_with_the_reason() {
    // The gate admits the device in TLS but trusts another CA for
    // attestations: the token's chain is untrusted.
    let other = tempfile::tempdir().unwrap();
    Pki::generate().unwrap().write(other.path()).unwrap();
    let other_ca = other.path().join("ca.pem");
    let gate = AgentGate::start_with(|text| {
        text.replace(
            "trust_anchors = [\"device-ca.pem\"]",
            &format!("trust_anchors = [{:?}]", s(&other_ca)),
        )
    })
    .await;
    let (_, device) = gate.device("lt-004", DeviceKeyType::P256);
    let run = attest(&gate, &device, &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(
        run.stderr
            .contains("the gate refused the attestation (reason: untrusted_chain)"),
        "{}",
        run.all()
    );
    assert!(run.stdout.is_empty(), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_gate_exits_one_with_a_clear_message() {
    let gate = AgentGate::start().await;
    let (_, device) = gate.device("lt-005", DeviceKeyType::P256);
    // A port that was just free: nothing listens there now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}");
    let ca = gate.ca();
    let run = agent(&[
        "attest",
        "--gate",
        &url,
        "--cert",
        s(&device.cert),
        "--key",
        s(&device.key),
        "--ca",
        s(&ca),
    ])
    .await;
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(
        run.stderr
            .contains(&format!("cannot reach the gate at 127.0.0.1:{port}")),
        "{}",
        run.all()
    );

    let run = agent(&[
        "attest",
        "--gate",
        "http://localhost:1",
        "--cert",
        s(&device.cert),
        "--key",
        s(&device.key),
    ])
    .await;
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(run.stderr.contains("bad gate URL"), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_does_not_match_the_certificate_is_refused_without_printing_it() {
    let gate = AgentGate::start().await;
    let (_, a) = gate.device("lt-a", DeviceKeyType::P256);
    let (_, b) = gate.device("lt-b", DeviceKeyType::P256);
    let url = gate.url();
    let key_pem = std::fs::read_to_string(&b.key).unwrap();
    for args in [
        vec![
            "attest",
            "--gate",
            &url,
            "--cert",
            s(&a.cert),
            "--key",
            s(&b.key),
        ],
        vec!["token", "--cert", s(&a.cert), "--key", s(&b.key)],
    ] {
        let run = agent(&args).await;
        assert_eq!(run.code, Some(1), "{}", run.all());
        assert!(
            run.stderr.contains(&format!(
                "the private key in {} does not belong to the certificate",
                b.key.display()
            )),
            "{}",
            run.all()
        );
        assert!(run.stdout.is_empty(), "{}", run.all());
        assert!(!run.all().contains("PRIVATE KEY"), "{}", run.all());
        for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!run.all().contains(line), "key material printed");
        }
    }

    // A file that holds no key at all.
    let run = agent(&["token", "--cert", s(&a.cert), "--key", s(&a.cert)]).await;
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(run.stderr.contains("no private key found"), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ed25519_device_signs_eddsa_and_is_accepted() {
    let gate = AgentGate::start().await;
    let (_, device) = gate.device("lt-ed", DeviceKeyType::Ed25519);
    let run = agent(&["token", "--cert", s(&device.cert), "--key", s(&device.key)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let header = header_of(&run.stdout);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "eat+jwt");
    assert_eq!(header["x5c"].as_array().unwrap().len(), 2);

    let root = clean_root(gate.dir.path());
    let run = attest(&gate, &device, &["--root", s(&root)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.contains("Allowed"), "{}", run.all());
    assert_eq!(gate.handle.posture_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_prints_a_signed_es256_token_with_the_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate().unwrap();
    let device = pki
        .issue_device("lt-t", "Leverancier BV", None)
        .unwrap()
        .write(dir.path())
        .unwrap();
    let run = agent(&[
        "token",
        "--cert",
        s(&device.cert),
        "--key",
        s(&device.key),
        "--nonce",
        "n-123",
        "--root",
        s(&kesl_root()),
    ])
    .await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let token = run.stdout.trim();
    assert_eq!(token.split('.').count(), 3);
    assert_eq!(header_of(token)["alg"], "ES256");
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["eat_nonce"], "n-123");
    assert_eq!(claims["eat_profile"], "urn:posture-gate:attestation:v1");
    assert!(claims["software"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "kesl"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sec1_key_works_like_pkcs8() {
    let gate = AgentGate::start().await;
    let (creds, device) = gate.device("lt-sec1", DeviceKeyType::P256);
    // rcgen writes PKCS#8; SEC1 ("EC PRIVATE KEY") is what `openssl ecparam
    // -genkey` writes. Convert with the library that holds the key.
    let pkcs8 = PrivateKeyDer::from_pem_slice(creds.key_pem.as_bytes()).unwrap();
    let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.secret_der(),
    )
    .unwrap();
    let sec1 = key.private_key().as_der().unwrap();
    let pem = format!(
        "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(sec1.as_ref())
    );
    let sec1_path = gate.dir.path().join("sec1-key.pem");
    std::fs::write(&sec1_path, pem).unwrap();
    let paths = DevicePaths {
        key: sec1_path,
        ..device
    };
    let root = clean_root(gate.dir.path());
    let run = attest(&gate, &paths, &["--root", s(&root)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn collect_prints_a_table_json_and_osquery_imports() {
    let root = kesl_root();
    let run = agent(&["collect", "--root", s(&root)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.contains("kesl"), "{}", run.all());

    let run = agent(&["collect", "--json", "--root", s(&root)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(json.to_string().contains("\"kesl\""), "{}", run.stdout);

    let osquery =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osquery/combined.json");
    let run = agent(&["collect", "--json", "--from-osquery", s(&osquery)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap();

    let run = agent(&["collect", "--root", "/nonexistent/posture-agent-root"]).await;
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(run.stderr.contains("not a directory"), "{}", run.all());

    // This machine, as it is.
    let run = agent(&["collect", "--json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap();
}

/// Forwards TCP connections to `to`, counting them.
async fn counting_proxy(to: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread")]
async fn interval_keeps_attesting() {
    let gate = AgentGate::start().await;
    let (_, device) = gate.device("lt-int", DeviceKeyType::P256);
    let (proxy, connections) = counting_proxy(gate.addr).await;
    let root = clean_root(gate.dir.path());
    let url = format!("https://localhost:{}", proxy.port());
    let ca = gate.ca();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_posture-agent"))
        .args([
            "attest",
            "--gate",
            &url,
            "--cert",
            s(&device.cert),
            "--key",
            s(&device.key),
            "--ca",
            s(&ca),
            "--root",
            s(&root),
            "--interval",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut verdicts = 0;
    let two = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("Allowed: ") {
                verdicts += 1;
                if verdicts == 2 {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), two)
        .await
        .expect("two attestations within 60 s");
    assert!(connections.load(Ordering::SeqCst) >= 2);
    assert_eq!(gate.handle.posture_count(), 1);
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_problems_are_named() {
    let gate = AgentGate::start().await;
    // A device certificate from a CA the gate does not know.
    let other = tempfile::tempdir().unwrap();
    let stranger = Pki::generate()
        .unwrap()
        .issue_device("stranger", "Elsewhere BV", None)
        .unwrap()
        .write(other.path())
        .unwrap();
    // The gate completes the handshake for it (issue 19) and refuses the
    // attestation with the spec's code, which the agent names.
    let run = attest(&gate, &stranger, &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(
        run.stderr.contains("(reason: untrusted_chain)"),
        "{}",
        run.all()
    );
    assert_eq!(gate.handle.posture_count(), 0);

    // The gate's certificate checked against the wrong CA.
    let (_, device) = gate.device("lt-006", DeviceKeyType::P256);
    let url = gate.url();
    let wrong_ca = other.path().join("cert.pem");
    let run = agent(&[
        "attest",
        "--gate",
        &url,
        "--cert",
        s(&device.cert),
        "--key",
        s(&device.key),
        "--ca",
        s(&wrong_ca),
    ])
    .await;
    assert_eq!(run.code, Some(1), "{}", run.all());
    assert!(
        run.stderr.contains(&format!(
            "TLS with the gate failed: invalid peer certificate: UnknownIssuer (the gate's \
             server certificate is not issued by a CA in {})",
            wrong_ca.display()
        )),
        "{}",
        run.all()
    );
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    // `posture-agent collect | head`: the reader goes away early.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_posture-agent"))
        .args(["collect", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
