//! The shared store (issue 15) with a real `redis-server`, started by each
//! test on a free loopback port: gates sharing one Redis admit a device
//! attested at any of them, deny at every one within the propagation bound
//! once it reports Kaspersky, accept a nonce once across all of them, keep
//! postures across a restart of the gate process, fail as configured while
//! Redis is down (readiness 503) and recover by themselves, speak TLS with
//! a password, and never trust a value they did not write.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support as common;

use common::redis::{free_port, RedisServer, RedisTls};
use common::upstream;
use common::{
    config_text, post_token, request, Client, Device, Proto, Replica, RouteSpec, Settings, TestGate,
};
use http_body_util::Full;

/// Generous guard for what should take milliseconds.
const GUARD: Duration = Duration::from_secs(10);
const PROPAGATION: Duration = Duration::from_secs(1);

fn routes(upstream: String) -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            host: "finance.test",
            prefix: "/",
            upstream: upstream.clone(),
            segment: "finance",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream,
            segment: "open",
        },
    ]
}

fn store(url: &str, extra: &str) -> Settings {
    Settings {
        extra: format!(
            "[store]\nkind = \"redis\"\nurl = \"{url}\"\npropagation = \"1s\"\n\
             command_timeout = \"250ms\"\n{extra}"
        ),
        ..Settings::default()
    }
}

/// Two gates sharing `redis`, in one directory (same PKI and nonce secret).
async fn two_gates(redis: &RedisServer, extra: &str) -> (TestGate, Replica, upstream::Upstream) {
    let up = upstream::start("app").await;
    let routes = routes(up.url());
    let settings = store(&redis.url(), extra);
    let a = TestGate::start(&routes, &settings).await;
    let b = a.replica("gate-b.toml", &routes, &settings).await;
    (a, b, up)
}

/// Status and problem type (its last part) of a GET on `host`.
async fn outcome(client: &Client, host: &str) -> (u16, String) {
    let req = request("GET", host, "/", Proto::H1)
        .header("accept", "application/problem+json")
        .body(Full::default())
        .unwrap();
    let answer = client.send(req).await;
    let kind = match answer.status.as_u16() {
        200 => String::new(),
        _ => answer.json()["type"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("urn:posture-gate:problem:")
            .to_string(),
    };
    (answer.status.as_u16(), kind)
}

async fn ready(client: &Client) -> (u16, String) {
    let answer = client
        .get("public.test", "/.well-known/posture-gate/ready")
        .await;
    (answer.status.as_u16(), answer.text())
}

/// Polls readiness until it answers `status`, within the guard.
async fn until_ready_is(client: &Client, status: u16) -> String {
    let start = Instant::now();
    loop {
        let (got, text) = ready(client).await;
        if got == status {
            return text;
        }
        assert!(
            start.elapsed() < GUARD,
            "readiness stayed {got} ({text}), expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_device_attested_at_one_gate_is_admitted_at_the_other() {
    let redis = RedisServer::start();
    let (a, b, _up) = two_gates(&redis, "").await;
    let device = a.pki.device("lt-1501", "Org");
    let at_b = b.client(&a, Some(&device), Proto::H1);
    assert_eq!(outcome(&at_b, "finance.test").await.1, "no-attestation");
    let answer = a.attest(&device, false).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(outcome(&at_b, "finance.test").await, (200, String::new()));
    assert_eq!(ready(&at_b).await, (200, "ready\n".to_string()));
}

#[tokio::test]
async fn a_kaspersky_report_at_one_gate_denies_at_the_other_within_the_bound() {
    let redis = RedisServer::start();
    let (a, b, _up) = two_gates(&redis, "").await;
    let device = a.pki.device("lt-1502", "Org");
    let at_a = a.client(Some(&device), Proto::H1);
    assert_eq!(a.attest(&device, false).await.status, 200);
    // A now holds the clean posture in its near cache.
    assert_eq!(outcome(&at_a, "finance.test").await.0, 200);

    let at_b = b.client(&a, Some(&device), Proto::H1);
    let token = a.fresh_token(&device, true).await;
    let posted = Instant::now();
    let answer = post_token(&at_b, "public.test", &token).await;
    let attest_took = posted.elapsed();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reported = Instant::now();
    let mut polls = 0;
    let took = loop {
        let sent = reported.elapsed();
        let (status, kind) = outcome(&at_a, "finance.test").await;
        if status == 403 {
            assert_eq!(kind, "prohibited-software");
            break sent;
        }
        assert_eq!(status, 200, "{kind}");
        assert!(
            sent <= PROPAGATION,
            "still allowed at A {sent:?} after the report at B"
        );
        polls += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    println!(
        "store_redis: a Kaspersky report at B (answered in {attest_took:?}) was denied at A by \
         the request sent {took:?} after B's answer, after {polls} request(s) still allowed \
         (bound {PROPAGATION:?})"
    );
}

#[tokio::test]
async fn without_an_invalidation_the_bound_still_holds() {
    let redis = RedisServer::start();
    let (a, _b, up) = two_gates(&redis, "").await;
    let device = a.pki.device("lt-1503", "Org");
    let at_a = a.client(Some(&device), Proto::H1);
    assert_eq!(a.attest(&device, false).await.status, 200);
    assert_eq!(outcome(&at_a, "finance.test").await.0, 200);

    // A gate under another prefix (another channel) assesses the Kaspersky
    // report; its value is copied under A's key without a message.
    let other = a
        .replica(
            "gate-other.toml",
            &routes(up.url()),
            &store(&redis.url(), "key_prefix = \"other:\"\n"),
        )
        .await;
    let token = a.fresh_token(&device, true).await;
    let answer = post_token(
        &other.client(&a, Some(&device), Proto::H1),
        "public.test",
        &token,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let fingerprint = device.fingerprint().replace(':', "").to_lowercase();
    let value = redis.command(&[b"GET", format!("other:posture:{fingerprint}").as_bytes()]);
    assert!(value.starts_with('\u{1}'), "{value:?}");
    let key = format!("posture-gate:posture:{fingerprint}");
    assert_eq!(
        redis.command(&[b"SET", key.as_bytes(), value.as_bytes()]),
        "+OK"
    );
    let written = Instant::now();
    let mut last_allowed = None;
    let took = loop {
        let sent = written.elapsed();
        let (status, kind) = outcome(&at_a, "finance.test").await;
        if status == 403 {
            assert_eq!(kind, "prohibited-software");
            break sent;
        }
        assert!(
            sent <= PROPAGATION,
            "still allowed {sent:?} after the write"
        );
        last_allowed = Some(sent);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "store_redis: without invalidation, the last request allowed at A was sent \
         {last_allowed:?} and the first denied {took:?} after the write (bound {PROPAGATION:?})"
    );
}

#[tokio::test]
async fn a_nonce_used_at_one_gate_is_replayed_at_the_other() {
    let redis = RedisServer::start();
    let (a, b, _up) = two_gates(&redis, "").await;
    let device = a.pki.device("lt-1504", "Org");
    let token = a.fresh_token(&device, false).await;
    let answer = post_token(&a.client(Some(&device), Proto::H1), "public.test", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let again = post_token(
        &b.client(&a, Some(&device), Proto::H1),
        "public.test",
        &token,
    )
    .await;
    assert_eq!(again.status, 400, "{}", again.text());
    assert_eq!(again.json()["reason"], "nonce_replayed");
}

/// A gate process, killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &std::path::Path) -> Process {
    serve_logging(config, Stdio::null())
}

fn serve_logging(config: &std::path::Path, stderr: Stdio) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_posture-gate"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("posture-gate runs"),
    )
}

/// Waits until the process answers readiness 200.
async fn until_serving(client: &Client) {
    let start = Instant::now();
    loop {
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            client.try_get("public.test", "/.well-known/posture-gate/ready"),
        )
        .await;
        if let Ok(Ok(a)) = answer {
            if a.status == 200 {
                return;
            }
        }
        assert!(start.elapsed() < GUARD, "the gate process did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_restarted_gate_process_keeps_every_posture() {
    let redis = RedisServer::start();
    let up = upstream::start("app").await;
    let routes = routes(up.url());
    // Only for the PKI and the directory; the gates under test are processes.
    let kit = TestGate::start(&routes, &Settings::default()).await;
    let port = free_port();
    let config = kit.dir.path().join("process.toml");
    let text = config_text(&routes, &store(&redis.url(), "")).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&config, text).unwrap();
    let addr = ([127, 0, 0, 1], port).into();
    let devices: Vec<Device> = (0..3)
        .map(|i| kit.pki.device(&format!("lt-15{i}5"), "Org"))
        .collect();
    let client = |d: Option<&Device>| Client::new(addr, &kit.pki.ca_der, d, Proto::H1);

    let gate = serve(&config);
    until_serving(&client(None)).await;
    for d in &devices {
        let c = client(Some(d));
        let nonce = common::challenge(&c).await;
        let answer = post_token(
            &c,
            "public.test",
            &d.token(&common::claims(Some(&nonce), false)),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(outcome(&c, "finance.test").await.0, 200);
    }
    drop(gate);

    let _gate = serve(&config);
    until_serving(&client(None)).await;
    for d in &devices {
        assert_eq!(
            outcome(&client(Some(d)), "finance.test").await,
            (200, String::new()),
            "after the restart"
        );
    }
}

#[tokio::test]
async fn redis_down_serves_the_near_cache_refuses_the_rest_and_recovers() {
    let mut redis = RedisServer::start();
    // finance is high: the default is on_store_failure = "deny".
    let (a, b, _up) = two_gates(&redis, "").await;
    let known = a.pki.device("lt-1506", "Org");
    let unknown = a.pki.device("lt-1507", "Org");
    let at_a = |d: &Device| a.client(Some(d), Proto::H1);
    assert_eq!(a.attest(&known, false).await.status, 200);
    assert_eq!(outcome(&at_a(&known), "finance.test").await.0, 200);
    // Attested at B only: not in A's near cache.
    let token = a.fresh_token(&unknown, false).await;
    assert_eq!(
        post_token(
            &b.client(&a, Some(&unknown), Proto::H1),
            "public.test",
            &token
        )
        .await
        .status,
        200
    );

    redis.stop();
    let why = until_ready_is(&at_a(&known), 503).await;
    assert!(why.starts_with("not ready: redis store"), "{why}");
    // Past its freshness, the known posture is still served until it expires.
    tokio::time::sleep(PROPAGATION).await;
    let start = Instant::now();
    assert_eq!(
        outcome(&at_a(&known), "finance.test").await,
        (200, String::new())
    );
    // What A cannot judge is refused, not guessed, and nothing hangs.
    let (status, kind) = outcome(&at_a(&unknown), "finance.test").await;
    // Its own page: 503, the device was not judged (not "admitted, but the
    // application does not answer").
    assert_eq!((status, kind.as_str()), (503, "store-unavailable"));
    // "deny": an attestation that cannot be shared is refused, retry later.
    let answer = a.attest(&unknown, false).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(answer.headers.contains_key("retry-after"));
    assert!(start.elapsed() < GUARD, "requests hung during the outage");

    redis.restart();
    until_ready_is(&at_a(&known), 200).await;
    until_ready_is(&b.client(&a, None, Proto::H1), 200).await;
    // Redis came back empty: the device attests again, and both gates
    // share it without a restart.
    assert_eq!(a.attest(&unknown, false).await.status, 200);
    assert_eq!(
        outcome(&b.client(&a, Some(&unknown), Proto::H1), "finance.test").await,
        (200, String::new())
    );
}

#[tokio::test]
async fn with_local_failure_an_attestation_during_an_outage_holds_at_that_gate_only() {
    let mut redis = RedisServer::start();
    let (a, b, _up) = two_gates(&redis, "on_store_failure = \"local\"\n").await;
    let device = a.pki.device("lt-1508", "Org");
    redis.stop();
    until_ready_is(&a.client(None, Proto::H1), 503).await;
    let answer = a.attest(&device, false).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        outcome(&a.client(Some(&device), Proto::H1), "finance.test").await,
        (200, String::new())
    );
    let (status, kind) = outcome(&b.client(&a, Some(&device), Proto::H1), "finance.test").await;
    assert_eq!(
        (status, kind.as_str()),
        (503, "store-unavailable"),
        "B cannot know of it"
    );
}

/// A nonce spent at a gate during an outage ("local") was recorded only in
/// that gate's memory; once Redis is back it must still be spent there.
#[tokio::test]
async fn a_nonce_used_during_an_outage_is_not_accepted_again_after_it() {
    let mut redis = RedisServer::start();
    let (a, _b, _up) = two_gates(&redis, "on_store_failure = \"local\"\n").await;
    let device = a.pki.device("lt-1509", "Org");
    let client = a.client(Some(&device), Proto::H1);
    let token = a.fresh_token(&device, false).await;
    redis.stop();
    until_ready_is(&a.client(None, Proto::H1), 503).await;
    let answer = post_token(&client, "public.test", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    redis.restart();
    until_ready_is(&a.client(None, Proto::H1), 200).await;
    let again = post_token(&client, "public.test", &token).await;
    assert_eq!(again.status, 400, "{}", again.text());
    assert_eq!(again.json()["reason"], "nonce_replayed");
}

#[tokio::test]
async fn rediss_with_a_password_works_and_a_wrong_password_is_not_ready() {
    let up = upstream::start("app").await;
    let routes = routes(up.url());
    let kit = TestGate::start(&routes, &Settings::default()).await;
    let dir = kit.dir.path();
    let redis = RedisServer::start_with(
        Some(RedisTls {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            ca: dir.join("ca.pem"),
        }),
        Some("correct horse battery"),
    );
    std::fs::write(dir.join("redis.pass"), "correct horse battery\n").unwrap();
    std::fs::write(dir.join("wrong.pass"), "wrong\n").unwrap();
    let settings = |pass: &str| {
        store(
            &redis.url(),
            &format!("ca = \"ca.pem\"\npassword_file = \"{pass}\"\n"),
        )
    };
    let a = kit
        .replica("tls-a.toml", &routes, &settings("redis.pass"))
        .await;
    let b = kit
        .replica("tls-b.toml", &routes, &settings("redis.pass"))
        .await;
    let device = kit.pki.device("lt-1509", "Org");
    until_ready_is(&a.client(&kit, None, Proto::H1), 200).await;
    let c = a.client(&kit, Some(&device), Proto::H1);
    let nonce = common::challenge(&c).await;
    let answer = post_token(
        &c,
        "public.test",
        &device.token(&common::claims(Some(&nonce), false)),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        outcome(&b.client(&kit, Some(&device), Proto::H1), "finance.test").await,
        (200, String::new())
    );

    let wrong = kit
        .replica("tls-wrong.toml", &routes, &settings("wrong.pass"))
        .await;
    let (status, why) = ready(&wrong.client(&kit, None, Proto::H1)).await;
    assert_eq!(status, 503, "{why}");
    let (status, _) = outcome(
        &wrong.client(&kit, Some(&device), Proto::H1),
        "finance.test",
    )
    .await;
    assert_ne!(status, 200);

    // A CA that did not issue the Redis server's certificate: the
    // connection is refused (only the configured CA is trusted).
    let other_ca = store(
        &redis.url(),
        "ca = \"device-ca.pem\"\npassword_file = \"redis.pass\"\n",
    );
    let untrusted = kit.replica("tls-other-ca.toml", &routes, &other_ca).await;
    let (status, why) = ready(&untrusted.client(&kit, None, Proto::H1)).await;
    assert_eq!(status, 503, "{why}");
}

#[tokio::test]
async fn a_value_the_gates_did_not_write_is_never_trusted() {
    let redis = RedisServer::start();
    let (a, b, _up) = two_gates(&redis, "").await;
    let device = a.pki.device("lt-1510", "Org");
    let other = a.pki.device("lt-1511", "Org");
    assert_eq!(a.attest(&device, false).await.status, 200);
    assert_eq!(a.attest(&other, false).await.status, 200);
    let hex = |d: &Device| d.fingerprint().replace(':', "").to_lowercase();
    let key = format!("posture-gate:posture:{}", hex(&device));
    let good = redis.command(&[b"GET", key.as_bytes()]);
    let others = redis.command(&[
        b"GET",
        format!("posture-gate:posture:{}", hex(&other)).as_bytes(),
    ]);
    let later_version = format!("\u{2}{}", &good[1..]);
    // The good value, made larger than a gate reads by trailing white
    // space that JSON would accept: refused by its length alone.
    let oversized = format!("{good}{}", " ".repeat(4 * 1024 * 1024));
    let at_b = b.client(&a, Some(&device), Proto::H1);
    // B has never served the device, so each request asks Redis.
    for (what, value) in [
        ("garbage", "\u{1}{not json"),
        ("a later version", later_version.as_str()),
        ("another device's posture", others.as_str()),
        ("empty", ""),
        ("larger than the cap", oversized.as_str()),
    ] {
        assert_eq!(
            redis.command(&[b"SET", key.as_bytes(), value.as_bytes()]),
            "+OK"
        );
        assert_eq!(
            outcome(&at_b, "finance.test").await,
            (403, "no-attestation".to_string()),
            "{what}"
        );
    }
    // A key of another type: Redis answers an error, which denies too.
    redis.command(&[b"DEL", key.as_bytes()]);
    redis.command(&[b"HSET", key.as_bytes(), b"f", b"v"]);
    let (status, _) = outcome(&at_b, "finance.test").await;
    assert_ne!(status, 200);
    // And the good value, put back, admits again: the refusals were the
    // values', not the gate's.
    redis.command(&[b"DEL", key.as_bytes()]);
    redis.command(&[b"SET", key.as_bytes(), good.as_bytes()]);
    assert_eq!(outcome(&at_b, "finance.test").await, (200, String::new()));
}

#[tokio::test]
async fn a_memory_store_is_always_ready_and_readiness_takes_only_get() {
    let up = upstream::start("app").await;
    let gate = TestGate::start(&routes(up.url()), &Settings::default()).await;
    let anonymous = gate.client(None, Proto::H2);
    assert_eq!(ready(&anonymous).await, (200, "ready\n".to_string()));
    let req = request(
        "POST",
        "public.test",
        "/.well-known/posture-gate/ready",
        Proto::H2,
    )
    .body(Full::default())
    .unwrap();
    assert_eq!(anonymous.send(req).await.status, 405);
}

/// Invalidations sent while a gate's subscriber was disconnected are lost:
/// once it has subscribed again, its near cache is flushed.
#[tokio::test]
async fn the_near_cache_is_flushed_when_the_invalidation_channel_reconnects() {
    let redis = RedisServer::start();
    let (a, _b, _up) = two_gates(&redis, "").await;
    let device = a.pki.device("lt-1512", "Org");
    assert_eq!(a.attest(&device, false).await.status, 200);
    assert_eq!(a.handle.posture_count(), 1);
    let killed = redis.command(&[b"CLIENT", b"KILL", b"TYPE", b"pubsub"]);
    assert!(killed.starts_with(':'), "{killed}");
    let start = Instant::now();
    while a.handle.posture_count() != 0 {
        assert!(start.elapsed() < GUARD, "the near cache was not flushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_ready_is(&a.client(None, Proto::H1), 200).await;
    // Flushed, not forgotten: Redis still has the posture.
    assert_eq!(
        outcome(&a.client(Some(&device), Proto::H1), "finance.test").await,
        (200, String::new())
    );
    assert_eq!(a.handle.posture_count(), 1);
}

/// The store is fixed at bind: a reload that changes `[store]` is taken
/// (with a warning), and the running store stays.
#[tokio::test]
async fn a_reload_that_changes_the_store_keeps_the_running_one() {
    let redis = RedisServer::start();
    let (a, b, up) = two_gates(&redis, "").await;
    std::fs::write(
        &a.config,
        config_text(&routes(up.url()), &Settings::default()),
    )
    .unwrap();
    a.handle.reload_now().await.expect("the reload is taken");
    let device = a.pki.device("lt-1513", "Org");
    assert_eq!(a.attest(&device, false).await.status, 200);
    assert_eq!(
        outcome(&b.client(&a, Some(&device), Proto::H1), "finance.test").await,
        (200, String::new()),
        "A still writes to Redis"
    );
}

/// A gate process through an outage: the outage is logged once however
/// many requests meet it, and its end once.
#[tokio::test]
async fn an_outage_is_logged_once_and_its_end_once() {
    let mut redis = RedisServer::start();
    let up = upstream::start("app").await;
    let routes = routes(up.url());
    let kit = TestGate::start(&routes, &Settings::default()).await;
    let port = free_port();
    let config = kit.dir.path().join("logging.toml");
    let text = config_text(&routes, &store(&redis.url(), "")).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&config, text).unwrap();
    let log = kit.dir.path().join("gate.log");
    let gate = serve_logging(&config, std::fs::File::create(&log).unwrap().into());
    let addr = ([127, 0, 0, 1], port).into();
    let device = kit.pki.device("lt-1514", "Org");
    let client = Client::new(addr, &kit.pki.ca_der, Some(&device), Proto::H1);
    until_serving(&client).await;

    redis.stop();
    until_ready_is(&client, 503).await;
    for _ in 0..10 {
        let (status, _) = outcome(&client, "finance.test").await;
        assert_ne!(status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.restart();
    until_ready_is(&client, 200).await;
    for _ in 0..3 {
        ready(&client).await;
    }
    drop(gate);
    let text = std::fs::read_to_string(&log).unwrap();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("the Redis store is out of reach"), 1, "{text}");
    assert_eq!(count("the Redis store is reachable again"), 1, "{text}");
}

/// The issue's own setup: two gate PROCESSES on different ports, sharing
/// one Redis and nothing else (each has its own near cache and its own
/// connections). Attested at A, admitted at B; Kaspersky reported at B,
/// denied at A within the bound; a nonce used at A is replayed at B.
#[tokio::test]
async fn two_gate_processes_share_postures_bound_and_nonces() {
    let redis = RedisServer::start();
    let up = upstream::start("app").await;
    let routes = routes(up.url());
    // Only for the PKI, the nonce secret and the directory.
    let kit = TestGate::start(&routes, &Settings::default()).await;
    let mut gates = Vec::new();
    let mut addrs = Vec::new();
    for name in ["a", "b"] {
        let port = free_port();
        let config = kit.dir.path().join(format!("process-{name}.toml"));
        let text = config_text(&routes, &store(&redis.url(), "")).replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        std::fs::write(&config, text).unwrap();
        gates.push(serve(&config));
        addrs.push(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let client =
        |at: usize, d: Option<&Device>| Client::new(addrs[at], &kit.pki.ca_der, d, Proto::H1);
    until_serving(&client(0, None)).await;
    until_serving(&client(1, None)).await;
    let device = kit.pki.device("lt-1590", "Org");
    let (at_a, at_b) = (client(0, Some(&device)), client(1, Some(&device)));

    // Attested at A: admitted at B.
    assert_eq!(outcome(&at_b, "finance.test").await.1, "no-attestation");
    let nonce = common::challenge(&at_a).await;
    let clean = device.token(&common::claims(Some(&nonce), false));
    let answer = post_token(&at_a, "public.test", &clean).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(outcome(&at_b, "finance.test").await, (200, String::new()));
    assert_eq!(outcome(&at_a, "finance.test").await, (200, String::new()));

    // The nonce A accepted is spent at B too.
    let replayed = post_token(&at_b, "public.test", &clean).await;
    assert_eq!(replayed.status, 400, "{}", replayed.text());
    assert_eq!(replayed.json()["reason"], "nonce_replayed");

    // Kaspersky reported at B: denied at A within the bound.
    let nonce = common::challenge(&at_b).await;
    let kaspersky = device.token(&common::claims(Some(&nonce), true));
    let answer = post_token(&at_b, "public.test", &kaspersky).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reported = Instant::now();
    let took = loop {
        let sent = reported.elapsed();
        let (status, kind) = outcome(&at_a, "finance.test").await;
        if status == 403 {
            assert_eq!(kind, "prohibited-software");
            break sent;
        }
        assert_eq!(status, 200, "{kind}");
        assert!(
            sent <= PROPAGATION,
            "still allowed at A {sent:?} after the report at B"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    println!("store_redis: two processes, Kaspersky at B denied at A by the request sent {took:?} after B's answer");
    drop(gates);
}

/// Readiness answers anyone, without a certificate: however often it is
/// asked, Redis is PINGed at most once per probe interval (500 ms).
#[tokio::test]
async fn readiness_asks_redis_at_most_once_per_interval() {
    let redis = RedisServer::start();
    let (a, _b, _up) = two_gates(&redis, "").await;
    let anonymous = a.client(None, Proto::H1);
    let pings = || -> u64 {
        let stats = redis.command(&[b"INFO", b"commandstats"]);
        stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    };
    let before = pings();
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(ready(&anonymous).await.0, 200);
    }
    let intervals = started.elapsed().as_millis() as u64 / 500;
    let asked = pings() - before;
    assert!(
        asked <= intervals + 2,
        "{asked} PINGs for 200 readiness requests in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn replicas_share_what_8021x_learnt_and_the_replica_that_sees_the_attestation_sends_the_coa()
{
    use crate::nac::{attribute, connect_at, NasStandIn};
    use posture_gate::radius::packet::attr;
    let redis = RedisServer::start();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("nas.secret");
    std::fs::write(&secret_file, b"s3cret-of-the-switch-1\n").unwrap();
    let mut settings = store(&redis.url(), "");
    settings.vlans = [Some(100), Some(200), None];
    settings.extra.push_str(&format!(
        "[nac]\nlisten = \"127.0.0.1:0\"\nquarantine_vlan = 999\n\
         [[nac.radius]]\nname = \"radius\"\nfrom = [\"127.0.0.1\"]\n\
         [[nac.nas]]\nname = \"switch-1\"\naddress = \"127.0.0.1\"\ncoa_port = {port}\n\
         secret_file = {:?}\n",
        secret_file.display().to_string()
    ));
    let up = upstream::start("app").await;
    let routes = routes(up.url());
    let a = TestGate::start(&routes, &settings).await;
    let b = a.replica("gate-b.toml", &routes, &settings).await;
    let nas = NasStandIn {
        socket,
        secret: b"s3cret-of-the-switch-1".to_vec(),
    };
    // Attested at A; RADIUS asks B, which knows the certificate from Redis.
    let device = a.pki.device("lt-redis-nac", "Org");
    assert_eq!(a.attest(&device, false).await.status, 200);
    let b_nac = b.nac_addr.unwrap();
    assert_eq!(
        connect_at(b_nac, &device, "02-00-00-00-00-21", "5E1A0021").await,
        "100"
    );
    // Kaspersky reported at A: A finds the session B recorded, and tells the NAS.
    assert_eq!(a.attest(&device, true).await.status, 200);
    let coa = nas.next().await;
    assert_eq!(
        attribute(&coa, attr::TUNNEL_PRIVATE_GROUP_ID).unwrap(),
        b"\x00200"
    );
    assert_eq!(attribute(&coa, attr::ACCT_SESSION_ID).unwrap(), b"5E1A0021");
}
