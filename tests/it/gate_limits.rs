//! Limits and failure modes over real sockets: upstream down or slow,
//! slowloris, oversize headers, the connection limit, upgrades, graceful
//! shutdown.

use crate::support as common;

use std::time::Duration;

use bytes::Bytes;
use common::client::{connect, tls_config};
use common::upstream::{self, Upstream};
use common::{request, Proto, RouteSpec, Settings, TestGate};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A generous bound so a broken gate fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(20);

async fn world(settings: Settings) -> (TestGate, Upstream) {
    let public = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: public.url(),
        segment: "open",
    }];
    (TestGate::start(&routes, &settings).await, public)
}

async fn admitted(gate: &TestGate, cn: &str) -> common::Device {
    let device = gate.pki.device(cn, "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    device
}

#[tokio::test]
async fn a_stopped_upstream_gives_502() {
    let (gate, up) = world(Settings::default()).await;
    let device = admitted(&gate, "lt-201").await;
    let client = gate.client(Some(&device), Proto::H1);
    assert_eq!(client.get("public.test", "/").await.status, 200);
    up.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for proto in [Proto::H1, Proto::H2] {
        let answer = tokio::time::timeout(
            BOUND,
            gate.client(Some(&device), proto).get("public.test", "/"),
        )
        .await
        .expect("the gate answers");
        assert_eq!(answer.status, 502, "{proto:?}");
    }
}

#[tokio::test]
async fn a_slow_upstream_gives_504_within_the_timeout() {
    let settings = Settings {
        upstream_timeout: "1s",
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let device = admitted(&gate, "lt-202").await;
    let answer = tokio::time::timeout(
        BOUND,
        gate.client(Some(&device), Proto::H1)
            .get("public.test", "/slow"),
    )
    .await
    .expect("the gate answers before the upstream does");
    assert_eq!(answer.status, 504);
}

#[tokio::test]
async fn a_slowloris_is_cut_off_by_the_header_read_timeout() {
    let settings = Settings {
        header_read_timeout: "1s",
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let device = gate.pki.device("lt-203", "Org");
    let mut tls = connect(
        gate.addr,
        "public.test",
        tls_config(&gate.pki.ca_der, Some(&device), Proto::H1),
    )
    .await
    .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: public.test\r\nX-Slow: ")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // Never finish the header; the gate must close the connection.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(BOUND, tls.read_to_end(&mut buf))
        .await
        .expect("the gate closes the connection");
    // Closed: a clean EOF or a reset, possibly after a 408.
    if closed.is_ok() {
        let text = String::from_utf8_lossy(&buf);
        assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
}

#[tokio::test]
async fn a_tls_handshake_that_never_starts_is_cut_off() {
    let settings = Settings {
        header_read_timeout: "1s",
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let mut tcp = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(BOUND, tcp.read(&mut buf))
        .await
        .expect("the gate closes the connection");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test]
async fn oversize_headers_are_refused() {
    let settings = Settings {
        max_header_bytes: 16 * 1024,
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let device = admitted(&gate, "lt-204").await;
    let req = request("GET", "public.test", "/", Proto::H1)
        .header("x-big", "a".repeat(64 * 1024))
        .body(Full::default())
        .unwrap();
    let answer = gate.client(Some(&device), Proto::H1).try_send(req).await;
    // hyper answers 431, or closes the connection mid-request.
    if let Ok(answer) = answer {
        assert_eq!(answer.status, 431);
    }
    // A normal request on a new connection still works.
    assert_eq!(
        gate.client(Some(&device), Proto::H1)
            .get("public.test", "/")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let settings = Settings {
        max_connections: 2,
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let device = gate.pki.device("lt-205", "Org");
    let config = tls_config(&gate.pki.ca_der, Some(&device), Proto::H1);
    let first = connect(gate.addr, "public.test", config.clone())
        .await
        .unwrap();
    let second = connect(gate.addr, "public.test", config.clone())
        .await
        .unwrap();
    let third = tokio::time::timeout(BOUND, connect(gate.addr, "public.test", config.clone()))
        .await
        .unwrap();
    assert!(
        third.is_err(),
        "a third connection must not complete a handshake"
    );
    drop(first);
    drop(second);
    // Once the slots are free, connections are served again.
    let client = gate.client(Some(&device), Proto::H1);
    let mut ok = false;
    for _ in 0..50 {
        if client
            .try_get("public.test", "/.well-known/posture-gate/challenge")
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "connections are accepted again after others closed");
}

#[tokio::test]
async fn an_upgrade_passes_through_both_ways() {
    let (gate, _up) = world(Settings::default()).await;
    let device = admitted(&gate, "lt-206").await;
    let tls = connect(
        gate.addr,
        "public.test",
        tls_config(&gate.pki.ca_der, Some(&device), Proto::H1),
    )
    .await
    .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = request("GET", "public.test", "/ws", Proto::H1)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["upgrade"], "websocket");
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let mut io = TokioIo::new(upgraded);
    for message in [&b"ping"[..], b"second message"] {
        io.write_all(message).await.unwrap();
        let mut buf = vec![0u8; message.len()];
        tokio::time::timeout(BOUND, io.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, message);
    }
}

#[tokio::test]
async fn an_upgrade_without_a_posture_is_denied() {
    let (gate, _up) = world(Settings::default()).await;
    let device = gate.pki.device("lt-207", "Org");
    let req = request("GET", "public.test", "/ws", Proto::H1)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        gate.client(Some(&device), Proto::H1).send(req).await.status,
        403
    );
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight_and_stops_accepting() {
    let (gate, _up) = world(Settings::default()).await;
    let device = admitted(&gate, "lt-208").await;
    let client = gate.client(Some(&device), Proto::H1);
    let in_flight = tokio::spawn(async move { client.get("public.test", "/sleep-ms/700").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.handle.shutdown();
    let answer = tokio::time::timeout(BOUND, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 200);
    let late = gate.client(Some(&device), Proto::H1);
    let ended = tokio::time::timeout(BOUND, gate.task)
        .await
        .expect("run returns after the drain");
    assert!(ended.unwrap().is_ok());
    let after = late.try_get("public.test", "/").await;
    assert!(after.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn an_upgraded_connection_keeps_its_place_under_the_limit() {
    let settings = Settings {
        max_connections: 1,
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let device = gate.pki.device("lt-209", "Org");
    let token = {
        // The single slot is needed for the upgrade itself: attest inline.
        let nonce_client = gate.client(Some(&device), Proto::H1);
        let nonce = common::challenge(&nonce_client).await;
        device.token(&common::claims(Some(&nonce), false))
    };
    let config = tls_config(&gate.pki.ca_der, Some(&device), Proto::H1);
    // The challenge's connection frees the slot once the gate sees it close.
    let deadline = tokio::time::Instant::now() + BOUND;
    let tls = loop {
        match connect(gate.addr, "public.test", config.clone()).await {
            Ok(tls) => break tls,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the slot never came free: {e}"),
        }
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = request("GET", "public.test", "/ws", Proto::H1)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("posture-attestation", token)
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 101);
    let mut io = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    io.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    io.read_exact(&mut buf).await.unwrap();
    // The websocket is alive: no second connection gets in.
    let second = tokio::time::timeout(BOUND, connect(gate.addr, "public.test", config))
        .await
        .unwrap();
    assert!(
        second.is_err(),
        "the upgraded connection still holds the only slot"
    );
}
