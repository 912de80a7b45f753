//! Hot reload over real sockets: a bad file keeps the last good config, a
//! good one is swapped in (routes, CRLs and TLS for new connections), the
//! file watcher notices edits, and requests in flight finish on the config
//! they started with.

use crate::support as common;

use std::time::Duration;

use common::upstream::{self, Upstream};
use common::{config_text, Proto, RouteSpec, Settings, TestGate};
use posture_gate::gate::ReloadError;

const BOUND: Duration = Duration::from_secs(20);

struct World {
    gate: TestGate,
    a: Upstream,
    b: Upstream,
}

fn routes_to(up: &Upstream) -> Vec<RouteSpec> {
    vec![RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }]
}

async fn world() -> World {
    let a = upstream::start("a").await;
    let b = upstream::start("b").await;
    let gate = TestGate::start(&routes_to(&a), &Settings::default()).await;
    World { gate, a, b }
}

async fn upstream_of(gate: &TestGate, device: &common::Device) -> String {
    let answer = gate
        .client(Some(device), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["upstream"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_broken_file_keeps_the_last_good_config_serving() {
    let w = world().await;
    let device = w.gate.pki.device("lt-301", "Org");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    std::fs::write(&w.gate.config, "[server\nlisten = ").unwrap();
    let error = w.gate.handle.reload_now().await.unwrap_err();
    assert!(matches!(error, ReloadError::Config(_)), "{error}");
    assert!(error.to_string().contains("gate.toml"), "{error}");
    assert_eq!(upstream_of(&w.gate, &device).await, "a");
    // Let the file watcher try too; still serving.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(upstream_of(&w.gate, &device).await, "a");
    assert_eq!(w.gate.handle.posture_count(), 1);
}

#[tokio::test]
async fn a_config_whose_certificate_does_not_load_is_refused() {
    let w = world().await;
    let device = w.gate.pki.device("lt-302", "Org");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    std::fs::write(w.gate.dir.path().join("broken.pem"), "not a certificate").unwrap();
    let text = config_text(&routes_to(&w.b), &Settings::default())
        .replace("cert = \"server.pem\"", "cert = \"broken.pem\"");
    std::fs::write(&w.gate.config, text).unwrap();
    assert!(w.gate.handle.reload_now().await.is_err());
    assert_eq!(upstream_of(&w.gate, &device).await, "a");
}

#[tokio::test]
async fn a_good_file_is_swapped_in_and_postures_survive() {
    let w = world().await;
    let device = w.gate.pki.device("lt-303", "Org");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    std::fs::write(
        &w.gate.config,
        config_text(&routes_to(&w.b), &Settings::default()),
    )
    .unwrap();
    w.gate.handle.reload_now().await.unwrap();
    assert_eq!(upstream_of(&w.gate, &device).await, "b");
}

/// Postures keep only the assessment made with one catalogue, not the
/// inventory: a reload that changes the catalogue must make every device
/// report again rather than judge it by entries it was never matched with.
#[tokio::test]
async fn a_changed_catalogue_makes_devices_attest_again() {
    let w = world().await;
    let device = w.gate.pki.device("lt-309", "Org");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let extra = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config/extra-catalogue.toml"),
    )
    .unwrap();
    std::fs::write(w.gate.dir.path().join("extra.toml"), extra).unwrap();
    let text = format!(
        "[catalogue]\ninclude = [\"extra.toml\"]\n\n{}",
        config_text(&routes_to(&w.b), &Settings::default())
    );
    std::fs::write(&w.gate.config, text).unwrap();
    w.gate.handle.reload_now().await.unwrap();

    let client = w.gate.client(Some(&device), Proto::H1);
    let denied = client.get("public.test", "/").await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    let page = denied.text();
    assert!(
        page.contains("posture-agent attest") && page.contains("gewijzigd"),
        "the page says the list changed and how to report again: {page}"
    );
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    assert_eq!(upstream_of(&w.gate, &device).await, "b");
}

#[tokio::test]
async fn the_file_watcher_reloads_an_edited_config() {
    let w = world().await;
    let device = w.gate.pki.device("lt-304", "Org");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    // Replace by rename, as editors and ConfigMaps do.
    let staged = w.gate.dir.path().join("gate.toml.new");
    std::fs::write(&staged, config_text(&routes_to(&w.b), &Settings::default())).unwrap();
    std::fs::rename(&staged, &w.gate.config).unwrap();
    let deadline = tokio::time::Instant::now() + BOUND;
    while upstream_of(&w.gate, &device).await != "b" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_crl_added_by_reload_refuses_the_revoked_device_on_new_connections() {
    let w = world().await;
    let revoked = w.gate.pki.device("lt-305", "Org");
    let kept = w.gate.pki.device("lt-306", "Org");
    for d in [&revoked, &kept] {
        assert_eq!(w.gate.attest(d, false).await.status, 200);
    }
    let crl = w.gate.pki.crl(&[&revoked], "devices.crl.pem");
    let settings = Settings {
        crls: vec![crl],
        ..Settings::default()
    };
    std::fs::write(&w.gate.config, config_text(&routes_to(&w.a), &settings)).unwrap();
    w.gate.handle.reload_now().await.unwrap();
    // The handshake completes (issue 19), and the page says `cert_revoked`.
    let refused = w
        .gate
        .client(Some(&revoked), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains("cert_revoked"),
        "{}",
        refused.text()
    );
    assert_eq!(upstream_of(&w.gate, &kept).await, "a");
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_config_it_started_with() {
    let w = world().await;
    let device = w.gate.pki.device("lt-307", "Org");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let client = w.gate.client(Some(&device), Proto::H1);
    let slow = tokio::spawn(async move { client.get("public.test", "/sleep-ms/800").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(
        &w.gate.config,
        config_text(&routes_to(&w.b), &Settings::default()),
    )
    .unwrap();
    w.gate.handle.reload_now().await.unwrap();
    let answer = tokio::time::timeout(BOUND, slow).await.unwrap().unwrap();
    assert_eq!(answer.json()["upstream"], "a");
    assert_eq!(upstream_of(&w.gate, &device).await, "b");
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_a_config_the_watcher_cannot_see() {
    let w = world().await;
    let device = w.gate.pki.device("lt-308", "Org");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    // The config becomes a symlink into a directory nobody watches, so only
    // the signal can tell the gate about edits there.
    let elsewhere = tempfile::tempdir().unwrap();
    let real = elsewhere.path().join("real.toml");
    let absolute = |text: String| {
        ["server.pem", "server.key", "device-ca.pem", "nonce.key"]
            .iter()
            .fold(text, |t, f| {
                t.replace(
                    &format!("\"{f}\""),
                    &format!("{:?}", w.gate.dir.path().join(f).display().to_string()),
                )
            })
    };
    std::fs::write(
        &real,
        absolute(config_text(&routes_to(&w.a), &Settings::default())),
    )
    .unwrap();
    std::fs::remove_file(&w.gate.config).unwrap();
    std::os::unix::fs::symlink(&real, &w.gate.config).unwrap();
    w.gate.handle.reload_now().await.unwrap();
    assert_eq!(upstream_of(&w.gate, &device).await, "a");

    std::fs::write(
        &real,
        absolute(config_text(&routes_to(&w.b), &Settings::default())),
    )
    .unwrap();
    let status = tokio::process::Command::new("kill")
        .arg("-HUP")
        .arg(std::process::id().to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + BOUND;
    while upstream_of(&w.gate, &device).await != "b" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
