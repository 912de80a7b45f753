//! Peers that try to hold the gate, over real sockets: stalled `attest`
//! uploads, HTTP/2 streams of peers without a certificate, PING-only
//! connections, upgrades the route does not carry, and tunnels that outlive
//! their idle timeout, their posture or their route's decision.

use crate::support as common;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::client::{connect, tls_config};
use common::upstream::{self, Upstream};
use common::{request, Device, Proto, RouteSpec, Settings, TestGate};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A generous bound so a broken gate fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(20);
const ATTEST: &str = "/.well-known/posture-gate/attest";
/// The head of an upload that announces the largest token and never sends it.
const STALLED_HEAD: &[u8] = b"POST /.well-known/posture-gate/attest HTTP/1.1\r\n\
    Host: public.test\r\nContent-Type: application/eat+jwt\r\nContent-Length: 1048576\r\n\r\n";

fn routes(upstream: &Upstream, segment: &'static str) -> [RouteSpec; 1] {
    [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: upstream.url(),
        segment,
    }]
}

async fn world(settings: Settings) -> (TestGate, Upstream) {
    let public = upstream::start("public").await;
    let gate = TestGate::start(&routes(&public, "open"), &settings).await;
    (gate, public)
}

/// TCP from a chosen loopback address (all of 127/8 is local on Linux),
/// then TLS, so one test can play several client addresses.
async fn connect_from(
    source: Ipv4Addr,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let tcp = socket.connect(addr).await?;
    let name = ServerName::try_from("public.test").unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// Sends the head of a 1 MiB upload and a thousand bytes of it.
async fn stall_upload<S: AsyncWrite + Unpin>(tls: &mut S) {
    tls.write_all(STALLED_HEAD).await.unwrap();
    tls.write_all(&[b'a'; 1000]).await.unwrap();
    tls.flush().await.unwrap();
}

#[tokio::test]
async fn a_stalled_attest_upload_without_certificate_is_answered_408_and_closed() {
    // Default body limits; the idle timeout is far beyond the test's bound.
    let settings = Settings {
        idle_timeout: "60s",
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let mut tls = connect(
        gate.addr,
        "public.test",
        tls_config(&gate.pki.ca_der, None, Proto::H1),
    )
    .await
    .unwrap();
    stall_upload(&mut tls).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(BOUND, tls.read_to_end(&mut buf))
        .await
        .expect("the gate ends a stalled upload");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{read:?}: {text}");
}

#[tokio::test]
async fn clean_devices_are_served_while_one_address_holds_stalled_uploads() {
    let settings = Settings {
        max_connections: 80,
        // Uploads stay open for the whole test, and the body budget has room
        // for all: only the per-address limit stands between them and the
        // last free places (the attest rate per address, which would refuse
        // uploads 31 and on by itself, is raised out of the way).
        server_extra: "max_connections_per_ip = 64\nbody_min_rate = 1\nbody_timeout = \"60s\"\n\
                       max_body_bytes_in_flight = 268435456\n\
                       attest_without_certificate_per_minute = 1000\n"
            .to_string(),
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let config = tls_config(&gate.pki.ca_der, None, Proto::H1);
    let mut held = Vec::new();
    for _ in 0..100 {
        if let Ok(mut tls) = connect_from(attacker, gate.addr, config.clone()).await {
            stall_upload(&mut tls).await;
            held.push(tls);
        }
    }
    assert_eq!(held.len(), 64, "one address holds at most its limit");
    // The device, from another address, attests and is served.
    let device = gate.pki.device("lt-301", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let answer = gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(answer.status, 200);
    // The stalled uploads were still open all along.
    for tls in &mut held {
        let mut byte = [0u8; 1];
        let pending = tokio::time::timeout(Duration::from_millis(1), tls.read(&mut byte)).await;
        assert!(pending.is_err(), "a stalled upload was closed early");
    }
}

/// A raw HTTP/2 client (no hyper), so streams can be left open and PINGs sent.
struct H2 {
    send: h2::client::SendRequest<Bytes>,
    ping: h2::PingPong,
    task: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

async fn h2_connect(gate: &TestGate, device: Option<&Device>) -> H2 {
    let tls = connect(
        gate.addr,
        "public.test",
        tls_config(&gate.pki.ca_der, device, Proto::H2),
    )
    .await
    .unwrap();
    let (send, mut conn) = h2::client::handshake(tls).await.unwrap();
    let ping = conn.ping_pong().expect("the first ping_pong");
    let task = tokio::spawn(conn);
    H2 { send, ping, task }
}

fn attest_request(length: usize) -> Request<()> {
    Request::builder()
        .method("POST")
        .uri(format!("https://public.test{ATTEST}"))
        .header("content-type", "application/eat+jwt")
        .header("content-length", length.to_string())
        .body(())
        .unwrap()
}

/// Opens an attest stream announcing 1 MiB and sends a thousand bytes.
async fn h2_stalled_upload(h2: &mut H2) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    h2.send = h2.send.clone().ready().await.unwrap();
    let (response, mut stream) = h2
        .send
        .send_request(attest_request(1024 * 1024), false)
        .unwrap();
    stream
        .send_data(Bytes::from(vec![b'a'; 1000]), false)
        .unwrap();
    (response, stream)
}

/// Posts a small (invalid) token on its own stream; the answer's status and
/// `Retry-After`.
async fn h2_small_attest(h2: &mut H2) -> (StatusCode, Option<String>) {
    let body = Bytes::from_static(b"not.a.token");
    h2.send = h2.send.clone().ready().await.unwrap();
    let (response, mut stream) = h2
        .send
        .send_request(attest_request(body.len()), false)
        .unwrap();
    stream.send_data(body, true).unwrap();
    let response = tokio::time::timeout(BOUND, response)
        .await
        .expect("the gate answers")
        .unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (response.status(), retry)
}

async fn h2_get(h2: &mut H2, path: &str) -> StatusCode {
    h2.send = h2.send.clone().ready().await.unwrap();
    let req = Request::builder()
        .uri(format!("https://public.test{path}"))
        .body(())
        .unwrap();
    let (response, _) = h2.send.send_request(req, true).unwrap();
    tokio::time::timeout(BOUND, response)
        .await
        .expect("the gate answers")
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_peer_without_certificate_gets_few_http2_streams() {
    let (gate, _up) = world(Settings::default()).await;
    let mut unknown = h2_connect(&gate, None).await;
    // After one exchange the server's SETTINGS have been applied.
    let challenge = "/.well-known/posture-gate/challenge";
    assert_eq!(h2_get(&mut unknown, challenge).await, 200);
    assert_eq!(unknown.send.current_max_send_streams(), 8);
    // A device with a certificate keeps hyper's default.
    let device = gate.pki.device("lt-302", "Org");
    let mut known = h2_connect(&gate, Some(&device)).await;
    assert_eq!(h2_get(&mut known, challenge).await, 200);
    assert_eq!(known.send.current_max_send_streams(), 200);
}

#[tokio::test]
async fn a_stalled_http2_attest_stream_is_answered_408() {
    let (gate, _up) = world(Settings {
        idle_timeout: "60s",
        ..Settings::default()
    })
    .await;
    let mut h2 = h2_connect(&gate, None).await;
    let (response, _stream) = h2_stalled_upload(&mut h2).await;
    let response = tokio::time::timeout(BOUND, response)
        .await
        .expect("the gate ends a stalled stream")
        .unwrap();
    assert_eq!(response.status(), 408);
}

#[tokio::test]
async fn bodies_beyond_the_in_flight_budget_get_503_until_it_is_free() {
    let settings = Settings {
        // Peers without a certificate share half: 2 MiB, two large tokens.
        server_extra:
            "max_body_bytes_in_flight = 4194304\nbody_min_rate = 1\nbody_timeout = \"60s\"\n"
                .to_string(),
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let mut h2 = h2_connect(&gate, None).await;
    // Before: a small token is read and judged (400: it is no token).
    assert_eq!(h2_small_attest(&mut h2).await.0, 400);
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(h2_stalled_upload(&mut h2).await);
    }
    // The two announced MiB take the whole budget once the gate has their
    // heads; from then on a third body is refused without being read.
    let deadline = tokio::time::Instant::now() + BOUND;
    let (status, retry) = loop {
        let (status, retry) = h2_small_attest(&mut h2).await;
        if status != 400 || tokio::time::Instant::now() > deadline {
            break (status, retry);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503);
    assert!(retry.is_some(), "a 503 says when to retry");
    // Devices with a certificate draw on the other half and still attest.
    let device = gate.pki.device("lt-308", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    // Once the stalled streams are gone, the budget is free again.
    for (_, mut stream) in stalled {
        stream.send_reset(h2::Reason::CANCEL);
    }
    let deadline = tokio::time::Instant::now() + BOUND;
    let status = loop {
        let (status, _) = h2_small_attest(&mut h2).await;
        if status != 503 || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_http2_connection_that_only_pings_is_closed_after_the_idle_timeout() {
    let (gate, _up) = world(Settings {
        idle_timeout: "1s",
        ..Settings::default()
    })
    .await;
    let mut h2 = h2_connect(&gate, None).await;
    let mut pongs = 0;
    let closed = tokio::time::timeout(BOUND, async {
        while h2.ping.ping(h2::Ping::opaque()).await.is_ok() {
            pongs += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the gate closes a connection that only pings"
    );
    assert!(pongs > 0, "the gate answered PINGs while it was open");
    let ended = tokio::time::timeout(BOUND, h2.task).await;
    assert!(ended.is_ok(), "the connection ended");
}

/// A response body that sends one chunk, waits, and sends another.
struct Drip {
    first: Option<Bytes>,
    wait: Pin<Box<tokio::time::Sleep>>,
    second: Option<Bytes>,
}

impl hyper::body::Body for Drip {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.wait.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(self.second.take().map(|b| Ok(Frame::data(b))))
    }
}

/// An upstream whose answer streams for 2.5 s, silent in between.
async fn drip_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Drip {
                        first: Some(Bytes::from_static(b"first ")),
                        wait: Box::pin(tokio::time::sleep(Duration::from_millis(2500))),
                        second: Some(Bytes::from_static(b"second")),
                    }))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_slow_upstream_or_a_long_response_is_not_idle() {
    let public = upstream::start("public").await;
    let (drip, _drip_task) = drip_upstream().await;
    let routes = [
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: public.url(),
            segment: "open",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/drip",
            upstream: format!("http://{drip}"),
            segment: "open",
        },
    ];
    let settings = Settings {
        idle_timeout: "1s",
        upstream_timeout: "10s",
        ..Settings::default()
    };
    let gate = TestGate::start(&routes, &settings).await;
    let device = gate.pki.device("lt-303", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        let client = gate.client(Some(&device), proto);
        let slow = client.get("public.test", "/sleep-ms/2500").await;
        assert_eq!(slow.status, 200, "{proto:?}");
        let long = client.get("public.test", "/drip").await;
        assert_eq!(long.status, 200, "{proto:?}");
        assert_eq!(long.text(), "first second", "{proto:?}");
    }
}

/// Sends an upgrade request on a fresh HTTP/1.1 connection.
async fn upgrade(
    gate: &TestGate,
    device: &Device,
    protocol: &str,
    token: Option<String>,
) -> Response<hyper::body::Incoming> {
    let tls = connect(
        gate.addr,
        "public.test",
        tls_config(&gate.pki.ca_der, Some(device), Proto::H1),
    )
    .await
    .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = request("GET", "public.test", "/ws", Proto::H1)
        .header("connection", "upgrade")
        .header("upgrade", protocol);
    if let Some(token) = token {
        req = req.header("posture-attestation", token);
    }
    sender
        .send_request(req.body(Full::<Bytes>::default()).unwrap())
        .await
        .unwrap()
}

async fn tunnel(
    gate: &TestGate,
    device: &Device,
    token: Option<String>,
) -> TokioIo<hyper::upgrade::Upgraded> {
    let response = upgrade(gate, device, "websocket", token).await;
    assert_eq!(response.status(), 101);
    TokioIo::new(hyper::upgrade::on(response).await.unwrap())
}

/// One message there and back; false once the tunnel is closed.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, message: &[u8]) -> bool {
    if io.write_all(message).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; message.len()];
    match tokio::time::timeout(BOUND, io.read_exact(&mut buf)).await {
        Ok(Ok(_)) => buf == message,
        Ok(Err(_)) => false,
        Err(_) => panic!("the tunnel neither echoed nor closed"),
    }
}

/// Keeps the tunnel busy (a message every 250 ms) until it is closed;
/// returns how many messages came back.
async fn chat_until_closed<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) -> usize {
    let mut echoed = 0;
    let closed = tokio::time::timeout(BOUND, async {
        while echo(io, b"still here").await {
            echoed += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the tunnel was not closed");
    echoed
}

#[tokio::test]
async fn an_upgrade_the_route_does_not_carry_is_not_relayed() {
    let (gate, _up) = world(Settings::default()).await;
    let device = gate.pki.device("lt-304", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    for protocol in ["h2c", "foo"] {
        let response = upgrade(&gate, &device, protocol, None).await;
        assert_eq!(response.status(), 200, "{protocol}");
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            seen["headers"].get("upgrade").is_none(),
            "{protocol}: the upstream saw {}",
            seen["headers"]
        );
    }
    // The route's own protocol still is relayed.
    let mut io = tunnel(&gate, &device, None).await;
    assert!(echo(&mut io, b"hello").await);
}

#[tokio::test]
async fn a_tunnel_without_traffic_is_closed_after_the_idle_timeout() {
    let (gate, _up) = world(Settings {
        idle_timeout: "1s",
        ..Settings::default()
    })
    .await;
    let device = gate.pki.device("lt-305", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let mut io = tunnel(&gate, &device, None).await;
    assert!(echo(&mut io, b"hello").await);
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(BOUND, io.read(&mut buf))
        .await
        .expect("the gate closes an idle tunnel");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn a_tunnel_is_closed_when_its_posture_runs_out() {
    let settings = Settings {
        max_age: Some("3s"),
        idle_timeout: "60s",
        ..Settings::default()
    };
    let (gate, _up) = world(settings).await;
    let device = gate.pki.device("lt-306", "Org");
    // Attested in the upgrade request itself: valid for 3 s from now.
    let token = gate.fresh_token(&device, false).await;
    let mut io = tunnel(&gate, &device, Some(token)).await;
    let echoed = chat_until_closed(&mut io).await;
    assert!(echoed > 0, "the tunnel worked before it was closed");
}

#[tokio::test]
async fn a_tunnel_is_closed_when_a_reload_denies_its_route() {
    let public = upstream::start("public").await;
    let settings = Settings {
        idle_timeout: "60s",
        ..Settings::default()
    };
    // Kaspersky is a warning on `office` and a denial on `finance`.
    let gate = TestGate::start(&routes(&public, "office"), &settings).await;
    let device = gate.pki.device("lt-307", "Org");
    assert_eq!(gate.attest(&device, true).await.status, 200);
    let mut io = tunnel(&gate, &device, None).await;
    assert!(echo(&mut io, b"hello").await);
    // A reload that does not change the decision keeps the tunnel.
    gate.handle.reload_now().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(echo(&mut io, b"after a reload").await);
    // One that denies the route closes it.
    let denying = common::config_text(&routes(&public, "finance"), &settings);
    std::fs::write(&gate.config, denying).unwrap();
    gate.handle.reload_now().await.unwrap();
    chat_until_closed(&mut io).await;
}
