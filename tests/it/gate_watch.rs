//! The reloader over real sockets: it follows every file the config refers
//! to (a rewritten CRL is picked up on its own, a broken one keeps the last
//! good one), it never reads a config file that is still being written, and
//! frequent reloads under load fail no request.

use crate::support as common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::conn::Conn;
use common::upstream::{self, Upstream};
use common::{config_text, Proto, RouteSpec, Settings, TestGate};

const BOUND: Duration = Duration::from_secs(20);

fn route(host: &'static str, up: &Upstream, segment: &'static str) -> RouteSpec {
    RouteSpec {
        host,
        prefix: "/",
        upstream: up.url(),
        segment,
    }
}

/// Replaces the config by rename, so no reader sees it half written.
fn replace_config(gate: &TestGate, text: &str) {
    let staged = gate.dir.path().join("gate.toml.staged");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, &gate.config).unwrap();
}

async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !ok().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status_of(gate: &TestGate, device: &common::Device, host: &str) -> Option<u16> {
    gate.client(Some(device), Proto::H1)
        .try_get(host, "/")
        .await
        .ok()
        .map(|a| a.status.as_u16())
}

#[tokio::test]
async fn a_rewritten_crl_is_picked_up_alone_and_a_broken_one_keeps_the_last_good() {
    let up = upstream::start("app").await;
    let routes = [route("public.test", &up, "open")];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let revoked = gate.pki.device("lt-701", "Org");
    let kept = gate.pki.device("lt-702", "Org");
    for d in [&revoked, &kept] {
        assert_eq!(gate.attest(d, false).await.status, 200);
    }
    let crl = gate.pki.crl(&[], "devices.crl.pem");
    let settings = Settings {
        crls: vec![crl.clone()],
        ..Settings::default()
    };
    replace_config(&gate, &config_text(&routes, &settings));
    gate.handle.reload_now().await.unwrap();
    assert_eq!(status_of(&gate, &revoked, "public.test").await, Some(200));
    // Let any reload the rename set off finish first, so that what follows
    // is seen only if the CRL file itself is watched.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status_of(&gate, &revoked, "public.test").await, Some(200));
    let config_before = std::fs::read(&gate.config).unwrap();

    // Only the CRL file changes; gate.toml is not touched.
    gate.pki.crl(&[&revoked], "devices.crl.pem");
    until("the rewritten CRL refuses the revoked device", async || {
        status_of(&gate, &revoked, "public.test").await.is_none()
    })
    .await;
    assert_eq!(status_of(&gate, &kept, "public.test").await, Some(200));

    // A CRL that does not parse: the last good one stays, neither "no CRL"
    // (the revoked device back in) nor "refuse everybody".
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status_of(&gate, &revoked, "public.test").await, None);
    assert_eq!(status_of(&gate, &kept, "public.test").await, Some(200));

    // And the watch goes on: a good CRL again is picked up.
    gate.pki.crl(&[], "devices.crl.pem");
    until("the new CRL lets the device in again", async || {
        status_of(&gate, &revoked, "public.test").await == Some(200)
    })
    .await;
    assert_eq!(std::fs::read(&gate.config).unwrap(), config_before);
}

/// The config of the torn-write test: a low segment `canteen` whose policy
/// denies Kaspersky, written last, as a table, so that the file without its
/// last three lines is a valid config in which that policy denies nothing.
fn canteen_config(routes: &[RouteSpec]) -> (String, &'static str) {
    let tail = "[[policy.rule]]\ncatalogue = \"kaspersky\"\naction = \"deny\"\n";
    let text = format!(
        "{}\n[[segment]]\nname = \"canteen\"\nsensitivity = \"low\"\npolicy = \"canteen\"\n\n\
         [[policy]]\nname = \"canteen\"\n{tail}",
        config_text(routes, &Settings::default())
    );
    (text, tail)
}

#[tokio::test]
async fn a_config_file_still_being_written_is_never_loaded() {
    let (a, b) = (upstream::start("a").await, upstream::start("b").await);
    let gate = TestGate::start(&[route("public.test", &a, "open")], &Settings::default()).await;
    let (full, _) = canteen_config(&[
        route("public.test", &a, "open"),
        route("other.test", &a, "canteen"),
    ]);
    replace_config(&gate, &full);
    gate.handle.reload_now().await.unwrap();
    let device = gate.pki.device("lt-901", "Org");
    assert_eq!(gate.attest(&device, true).await.status, 200);
    assert_eq!(status_of(&gate, &device, "other.test").await, Some(403));

    // The same config, but public.test now goes to upstream b: seeing b
    // shows the finished file was loaded.
    let (next, tail) = canteen_config(&[
        route("public.test", &b, "open"),
        route("other.test", &a, "canteen"),
    ]);
    let prefix = &next[..next.len() - tail.len()];
    posture_core::config::load_str(prefix, &gate.config)
        .expect("the prefix is a valid config on its own");

    let mut file = std::fs::File::create(&gate.config).unwrap();
    file.write_all(prefix.as_bytes()).unwrap();
    file.flush().unwrap();
    // Longer than the debounce and the quiet period together, several times.
    let pause = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut checked = 0;
    while tokio::time::Instant::now() < pause {
        let status = status_of(&gate, &device, "other.test").await;
        assert_ne!(status, Some(200), "a half-written config was loaded");
        checked += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(checked > 0);
    file.write_all(tail.as_bytes()).unwrap();
    drop(file);

    until("the finished file is loaded", async || {
        gate.client(Some(&device), Proto::H1)
            .get("public.test", "/")
            .await
            .json()["upstream"]
            == "b"
    })
    .await;
    assert_eq!(status_of(&gate, &device, "other.test").await, Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_every_100ms_under_load_fails_no_request() {
    let (a, b) = (upstream::start("a").await, upstream::start("b").await);
    let routes_a = [
        route("public.test", &a, "open"),
        route("finance.test", &a, "finance"),
    ];
    let routes_b = [
        route("public.test", &b, "open"),
        route("finance.test", &b, "finance"),
    ];
    let gate = TestGate::start(&routes_a, &Settings::default()).await;
    let clean = Arc::new(gate.pki.device("lt-1001", "Org"));
    let kaspersky = Arc::new(gate.pki.device("lt-1002", "Org"));
    assert_eq!(gate.attest(&clean, false).await.status, 200);
    assert_eq!(gate.attest(&kaspersky, true).await.status, 200);
    let texts = [
        config_text(&routes_a, &Settings::default()),
        config_text(&routes_b, &Settings::default()),
    ];
    let (addr, ca) = (gate.addr, gate.pki.ca_der.clone());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (clean, kaspersky, ca) = (clean.clone(), kaspersky.clone(), ca.clone());
        let (stop, served) = (stop.clone(), served.clone());
        workers.push(tokio::spawn(async move {
            let proto = if w % 2 == 0 { Proto::H1 } else { Proto::H2 };
            let open = async |d: &common::Device| {
                Conn::try_open_at(addr, &ca, d, proto, "finance.test")
                    .await
                    .unwrap_or_else(|e| panic!("worker {w}: {e}"))
            };
            // One long-lived connection per device, and new ones as well.
            let mut clean_conn = open(&clean).await;
            let mut kasp_conn = open(&kaspersky).await;
            let fresh = |d: &common::Device| common::Client::new(addr, &ca, Some(d), proto);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let fresh_clean = fresh(&clean)
                    .try_get("finance.test", "/")
                    .await
                    .unwrap_or_else(|e| panic!("worker {w}: new connection failed: {e}"));
                assert_eq!(fresh_clean.status, 200, "{}", fresh_clean.text());
                let fresh_kasp = fresh(&kaspersky)
                    .try_get("finance.test", "/")
                    .await
                    .unwrap_or_else(|e| panic!("worker {w}: new connection failed: {e}"));
                assert_eq!(fresh_kasp.status, 403, "{}", fresh_kasp.text());
                let kept_clean = clean_conn.get("finance.test", "/").await;
                assert_eq!(kept_clean.status, 200, "{}", kept_clean.text());
                let kept_kasp = kasp_conn.get("finance.test", "/").await;
                assert_eq!(kept_kasp.status, 403, "{}", kept_kasp.text());
                n += 4;
            }
            served.fetch_add(n, Ordering::Relaxed);
            n
        }));
    }

    let mut reloads = 0;
    let end = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < end {
        // Written in place, so the file watcher reloads too.
        std::fs::write(&gate.config, &texts[reloads % 2]).unwrap();
        gate.handle.reload_now().await.unwrap();
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let n = tokio::time::timeout(BOUND, w).await.unwrap().unwrap();
        assert!(n > 0, "every worker was served");
    }
    assert!(reloads >= 10, "{reloads}");
    eprintln!(
        "{reloads} reloads, {} requests, none failed",
        served.load(Ordering::Relaxed)
    );
}
