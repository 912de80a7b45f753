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
    // Refused with the `cert_revoked` page (issue 19), not a TLS alert.
    until("the rewritten CRL refuses the revoked device", async || {
        status_of(&gate, &revoked, "public.test").await == Some(403)
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
    assert_eq!(status_of(&gate, &revoked, "public.test").await, Some(403));
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

/// A volume as the kubelet mounts a ConfigMap (or Secret) and updates it
/// (`pkg/volume/util/atomic_writer.go`): the files live in a timestamped
/// directory `..2026_11_30_10_00_00.N`, `..data` is a symlink to it, and
/// every visible name is a symlink `name -> ..data/name`. An update writes
/// a whole new timestamped directory, points `..data_tmp` at it, renames
/// `..data_tmp` over `..data` (atomic) and deletes the old directory, so
/// no event ever names `gate.toml` or `server.pem` themselves.
struct ConfigMapVolume {
    dir: std::path::PathBuf,
    generation: u32,
    current: Option<std::path::PathBuf>,
}

impl ConfigMapVolume {
    fn new(dir: std::path::PathBuf, files: &[(&str, Vec<u8>)]) -> ConfigMapVolume {
        std::fs::create_dir_all(&dir).unwrap();
        let mut volume = ConfigMapVolume {
            dir,
            generation: 0,
            current: None,
        };
        volume.update(files);
        volume
    }

    fn update(&mut self, files: &[(&str, Vec<u8>)]) {
        use std::os::unix::fs::symlink;
        self.generation += 1;
        let name = format!(
            "..2026_11_30_10_00_{:02}.{}",
            self.generation, self.generation
        );
        let new = self.dir.join(&name);
        std::fs::create_dir(&new).unwrap();
        for (file, bytes) in files {
            std::fs::write(new.join(file), bytes).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for (file, _) in files {
            let visible = self.dir.join(file);
            if visible.symlink_metadata().is_err() {
                symlink(Path::new("..data").join(file), &visible).unwrap();
            }
        }
        if let Some(old) = self.current.replace(new) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }
}

use std::path::Path;

/// The server certificate a new TLS connection to `addr` is shown.
async fn served_certificate(addr: std::net::SocketAddr, pki: &common::TestPki) -> Vec<u8> {
    let config = common::client::tls_config(&pki.ca_der, None, Proto::H1);
    let tls = common::client::connect(addr, "public.test", config)
        .await
        .expect("TLS to the gate");
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("a server certificate")[0]
        .to_vec()
}

fn pem_certificate(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .expect("a PEM certificate")
        .to_vec()
}

/// Exactly the kubelet's layout and update order; three updates, each
/// changing one thing while every file is rewritten into the new
/// directory: the config (a route moves to another segment), the gate's
/// certificate and key (rotated), and the CRL (a device revoked).
#[tokio::test]
async fn a_kubernetes_configmap_update_reloads_the_config_a_rotated_certificate_and_a_new_crl() {
    common::init_tracing();
    let up = upstream::start("app").await;
    let tmp = tempfile::tempdir().unwrap();
    let pki = common::TestPki::new(&tmp.path().join("source"));
    let read = |name: &str| std::fs::read(pki.dir.join(name)).unwrap();
    let routes_v1 = [
        route("public.test", &up, "open"),
        route("other.test", &up, "open"),
    ];
    let routes_v2 = [
        route("public.test", &up, "open"),
        route("other.test", &up, "finance"),
    ];
    let settings = Settings {
        crls: vec!["devices.crl.pem".into()],
        ..Settings::default()
    };
    let crl_file = |revoked: &[&common::Device]| {
        let now = time::OffsetDateTime::now_utc();
        pki.crl_pem_valid(
            revoked,
            now - time::Duration::minutes(1),
            now + time::Duration::hours(1),
        )
        .into_bytes()
    };
    let mut files = vec![
        ("gate.toml", config_text(&routes_v1, &settings).into_bytes()),
        ("server.pem", read("server.pem")),
        ("server.key", read("server.key")),
        ("device-ca.pem", read("device-ca.pem")),
        ("nonce.key", vec![7u8; 32]),
        ("devices.crl.pem", crl_file(&[])),
    ];
    let mount = tmp.path().join("etc-posture-gate");
    let mut volume = ConfigMapVolume::new(mount.clone(), &files);
    assert!(mount
        .join("gate.toml")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());

    let gate = posture_gate::gate::Gate::bind(mount.join("gate.toml"))
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = gate.local_addr();
    let task = tokio::spawn(gate.run());
    let client = |d: &common::Device| common::Client::new(addr, &pki.ca_der, Some(d), Proto::H1);
    let status = async |d: &common::Device, host: &str| {
        client(d)
            .try_get(host, "/")
            .await
            .ok()
            .map(|a| a.status.as_u16())
    };
    let kaspersky = pki.device("lt-k8s-1", "Org");
    let revoked = pki.device("lt-k8s-2", "Org");
    for (d, k) in [(&kaspersky, true), (&revoked, false)] {
        let nonce = common::challenge(&client(d)).await;
        let token = d.token(&common::claims(Some(&nonce), k));
        assert_eq!(
            common::post_token(&client(d), "public.test", &token)
                .await
                .status,
            200
        );
    }
    assert_eq!(status(&kaspersky, "other.test").await, Some(200));
    let original = pem_certificate(&read("server.pem"));
    assert_eq!(served_certificate(addr, &pki).await, original);

    // 1. The config: other.test moves to the segment that denies Kaspersky.
    files[0].1 = config_text(&routes_v2, &settings).into_bytes();
    volume.update(&files);
    until("the new gate.toml puts other.test in finance", async || {
        status(&kaspersky, "other.test").await == Some(403)
    })
    .await;

    // 2. The certificate and key, rotated; gate.toml is byte for byte the same.
    let (cert, key) = pki.issue_server_pem(common::pki::SERVER_NAMES).unwrap();
    let rotated = pem_certificate(cert.as_bytes());
    assert_ne!(rotated, original);
    files[1].1 = cert.into_bytes();
    files[2].1 = key.into_bytes();
    volume.update(&files);
    until(
        "new connections are shown the rotated certificate",
        async || served_certificate(addr, &pki).await == rotated,
    )
    .await;
    assert_eq!(status(&revoked, "public.test").await, Some(200));

    // 3. The CRL, now revoking one device; nothing else changes.
    files[5].1 = crl_file(&[&revoked]);
    volume.update(&files);
    until("the new CRL refuses the revoked device", async || {
        status(&revoked, "public.test").await != Some(200)
    })
    .await;
    assert_eq!(status(&kaspersky, "public.test").await, Some(200));
    assert_eq!(status(&kaspersky, "other.test").await, Some(403));
    assert_eq!(served_certificate(addr, &pki).await, rotated);
    // Exactly one timestamped directory is left, as the kubelet leaves it.
    let dirs: Vec<_> = std::fs::read_dir(&mount)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..2026"))
        .collect();
    assert_eq!(dirs, ["..2026_11_30_10_00_04.4"]);
    task.abort();
}

/// The log lines of this thread, as JSON, while the guard lives.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(logs.clone())
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    /// Lines at `level` whose message contains `text` and that name `crl`.
    fn count(&self, level: &str, text: &str, crl: &Path) -> usize {
        let all = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        all.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["level"] == level
                    && v["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(text))
                    && v["fields"]["crl"].as_str() == Some(&crl.display().to_string())
            })
            .count()
    }
}

/// Before a CRL passes its nextUpdate the log says so (a warning within
/// the margin: here a quarter of a 62-minute validity), when it has passed
/// it says so as an error and the devices it speaks for are refused, and a
/// new CRL renamed over the old file is picked up without a signal.
#[tokio::test]
async fn a_crl_near_its_next_update_is_warned_of_and_a_new_one_renamed_into_place_is_used() {
    let (logs, _guard) = Logs::capture();
    let up = upstream::start("app").await;
    let routes = [route("public.test", &up, "open")];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let device = gate.pki.device("lt-crl-1", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let crl = gate.dir.path().join("devices.crl.pem");
    let now = time::OffsetDateTime::now_utc();
    let minutes = time::Duration::minutes;
    let put_crl = |pem: String| {
        let staged = gate.dir.path().join("devices.crl.pem.new");
        std::fs::write(&staged, pem).unwrap();
        std::fs::rename(&staged, &crl).unwrap();
    };
    put_crl(
        gate.pki
            .crl_pem_valid(&[], now - minutes(60), now + minutes(2)),
    );
    let settings = Settings {
        crls: vec![crl.clone()],
        ..Settings::default()
    };
    replace_config(&gate, &config_text(&routes, &settings));
    gate.handle.reload_now().await.unwrap();
    until(
        "a warning that the CRL reaches its nextUpdate soon",
        async || logs.count("WARN", "reaches its nextUpdate soon", &crl) > 0,
    )
    .await;
    // Still current: the device is served.
    assert_eq!(status_of(&gate, &device, "public.test").await, Some(200));
    assert_eq!(logs.count("ERROR", "passed its nextUpdate", &crl), 0);

    // A CRL already past its nextUpdate (the publishing job stopped and
    // someone copied the last one again): every device of its CA refused.
    let now = time::OffsetDateTime::now_utc();
    put_crl(
        gate.pki
            .crl_pem_valid(&[], now - minutes(120), now - minutes(1)),
    );
    until("the out-of-date CRL refuses the device", async || {
        status_of(&gate, &device, "public.test").await != Some(200)
    })
    .await;
    until("an error that the CRL passed its nextUpdate", async || {
        logs.count("ERROR", "passed its nextUpdate", &crl) > 0
    })
    .await;

    // A new CRL renamed over the old file: picked up on its own.
    let now = time::OffsetDateTime::now_utc();
    put_crl(
        gate.pki
            .crl_pem_valid(&[], now - minutes(1), now + minutes(60)),
    );
    until("the new CRL lets the device in again", async || {
        status_of(&gate, &device, "public.test").await == Some(200)
    })
    .await;
    // Fresh for 45 more minutes: no new warning about it. The errors and
    // warnings so far were one each, not one a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(logs.count("WARN", "reaches its nextUpdate soon", &crl), 1);
    assert_eq!(logs.count("ERROR", "passed its nextUpdate", &crl), 1);
}
