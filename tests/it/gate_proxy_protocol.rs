//! PROXY protocol v2 from the balancers of `[server] proxy_protocol_from`:
//! the client's address it carries is the peer for the audit, for
//! X-Forwarded-For and for the per-address limit; a listed peer without a
//! valid header gets no TLS session; no other peer is read for one.

use crate::support as common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::client::{tls_config, Answer};
use common::upstream;
use common::{claims, request, Device, Proto, RouteSpec, Settings, TestGate};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use posture_gate::gate::Gate;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 `PROXY` header over TCP naming `source` (to 192.0.2.1:443 or
/// [2001:db8::1]:443), written out byte by byte as the spec lays it out.
fn proxy_v2(source: SocketAddr) -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.push(0x21); // version 2, PROXY
    let mut block = Vec::new();
    match source {
        SocketAddr::V4(s) => {
            h.push(0x11); // TCP over IPv4
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&[192, 0, 2, 1]);
        }
        SocketAddr::V6(s) => {
            h.push(0x21); // TCP over IPv6
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(
                &"2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
        }
    }
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&443u16.to_be_bytes());
    // A NOOP TLV, as balancers add TLVs of their own.
    block.extend_from_slice(&[0x04, 0x00, 0x02, 0xab, 0xcd]);
    h.extend_from_slice(&(block.len() as u16).to_be_bytes());
    h.extend_from_slice(&block);
    h
}

/// A v2 `LOCAL` header: the balancer's own health check.
fn local_v2() -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    h
}

fn routes(up: &upstream::Upstream) -> [RouteSpec; 1] {
    [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }]
}

fn listing(list: &str, extra: &str) -> Settings {
    Settings {
        server_extra: format!("proxy_protocol_from = [{list}]\n{extra}"),
        ..Settings::default()
    }
}

/// TCP to the gate, `prefix` first, then TLS with the device's certificate.
async fn tls_after(
    gate: &TestGate,
    prefix: &[u8],
    device: &Device,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut tcp = TcpStream::connect(gate.addr).await?;
    tcp.write_all(prefix).await?;
    let config = tls_config(&gate.pki.ca_der, Some(device), Proto::H1);
    let name = ServerName::try_from("public.test").unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake hung"))?
}

/// One HTTP/1.1 request on a fresh connection that starts with `prefix`.
async fn send_after(
    gate: &TestGate,
    prefix: &[u8],
    device: &Device,
    req: http::Request<Full<Bytes>>,
) -> Result<Answer, String> {
    let tls = tls_after(gate, prefix, device)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP/1 handshake: {e}"))?;
    tokio::spawn(conn);
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

fn get(path: &str) -> http::Request<Full<Bytes>> {
    request("GET", "public.test", path, Proto::H1)
        // A client's own claim of origin never counts.
        .header("x-forwarded-for", "10.9.9.9")
        .body(Full::default())
        .unwrap()
}

/// Challenge and attestation, both over connections that start with `prefix`.
async fn attest_after(gate: &TestGate, prefix: &[u8], device: &Device) {
    let challenge = send_after(
        gate,
        prefix,
        device,
        get("/.well-known/posture-gate/challenge"),
    )
    .await
    .unwrap();
    assert_eq!(challenge.status, 200, "{}", challenge.text());
    let nonce = challenge.json()["nonce"].as_str().unwrap().to_string();
    let token = device.token(&claims(Some(&nonce), false));
    let post = request(
        "POST",
        "public.test",
        "/.well-known/posture-gate/attest",
        Proto::H1,
    )
    .header("content-type", "application/eat+jwt")
    .body(Full::new(Bytes::from(token)))
    .unwrap();
    let answer = send_after(gate, prefix, device, post).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
}

fn forwarded_for(answer: &Answer) -> Vec<String> {
    common::upstream_header(answer, "x-forwarded-for").unwrap_or_default()
}

// Current-thread runtimes: every task of the gate runs on the test's
// thread, so the thread-local subscriber sees its audit events.
#[tokio::test(flavor = "current_thread")]
async fn the_header_of_a_listed_balancer_names_the_client() {
    let (captured, _guard) = common::audit::capture();
    let up = upstream::start("public").await;
    let gate = TestGate::start(&routes(&up), &listing("\"127.0.0.1\"", "")).await;
    let device = gate.pki.device("lt-601", "Leverancier BV");
    let client: SocketAddr = "203.0.113.7:4242".parse().unwrap();
    let header = proxy_v2(client);

    attest_after(&gate, &header, &device).await;
    let answer = send_after(&gate, &header, &device, get("/app"))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(forwarded_for(&answer), ["203.0.113.7"]);

    let events = captured.audit_events();
    let decision = events
        .iter()
        .find(|e| e["event"] == "decision")
        .expect("a decision event");
    assert_eq!(decision["source"], "203.0.113.7:4242", "{decision}");
    let attestation = events
        .iter()
        .find(|e| e["event"] == "attestation")
        .expect("an attestation event");
    assert_eq!(attestation["source"], "203.0.113.7:4242", "{attestation}");
    assert_eq!(gate.handle.proxy_header_refusals(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_local_header_keeps_the_balancer_address() {
    let (captured, _guard) = common::audit::capture();
    let up = upstream::start("public").await;
    let gate = TestGate::start(&routes(&up), &listing("\"127.0.0.0/8\"", "")).await;
    let device = gate.pki.device("lt-602", "Leverancier BV");

    attest_after(&gate, &local_v2(), &device).await;
    let answer = send_after(&gate, &local_v2(), &device, get("/"))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(forwarded_for(&answer), ["127.0.0.1"]);
    let events = captured.audit_events();
    let decision = events.iter().find(|e| e["event"] == "decision").unwrap();
    let source = decision["source"].as_str().unwrap();
    assert!(source.starts_with("127.0.0.1:"), "{source}");
}

/// Waits until the gate has counted `n` refused headers (the count is
/// made just before the close the client sees, in another task).
async fn refusals_reach(gate: &TestGate, n: u64) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while gate.handle.proxy_header_refusals() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "refusals counted: {}, expected {n}",
        gate.handle.proxy_header_refusals()
    );
    assert_eq!(gate.handle.proxy_header_refusals(), n);
}

/// Reads until the gate closes; it must send nothing (a TLS server never
/// speaks first) and close well within the guard.
async fn closed_without_a_byte(mut tcp: TcpStream) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("the gate sent {n} bytes"),
        Err(_) => panic!("the gate kept the connection open"),
    }
}

#[tokio::test]
async fn a_listed_peer_without_a_valid_header_gets_no_tls_session() {
    let up = upstream::start("public").await;
    let gate = TestGate::start(&routes(&up), &listing("\"127.0.0.1\"", "")).await;
    let device = gate.pki.device("lt-603", "Leverancier BV");
    let mut expected = 0;

    // A connection closed before its first byte, as a balancer's plain TCP
    // health check: closed, not counted (the exact count at the end, some
    // seconds later, shows it).
    drop(TcpStream::connect(gate.addr).await.unwrap());

    // No header: TLS straight away, as a client that bypassed the balancer.
    tls_after(&gate, b"", &device).await.unwrap_err();
    expected += 1;
    refusals_reach(&gate, expected).await;

    // A v1 text header.
    let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 443\r\n";
    tls_after(&gate, v1, &device).await.unwrap_err();
    expected += 1;
    refusals_reach(&gate, expected).await;

    // The v2 signature with version 1 in the version nibble.
    let mut bad_version = proxy_v2("203.0.113.7:4242".parse().unwrap());
    bad_version[12] = 0x11;
    tls_after(&gate, &bad_version, &device).await.unwrap_err();
    expected += 1;
    refusals_reach(&gate, expected).await;

    // Announces 65535 bytes: refused from its first 16 bytes.
    let mut oversized = SIG.to_vec();
    oversized.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    tls_after(&gate, &oversized, &device).await.unwrap_err();
    expected += 1;
    refusals_reach(&gate, expected).await;

    // One byte over the cap of the address block and 4 KiB of TLVs, all sent.
    let mut over_cap = SIG.to_vec();
    over_cap.extend_from_slice(&[0x21, 0x11]);
    over_cap.extend_from_slice(&((12 + 4096 + 1) as u16).to_be_bytes());
    over_cap.resize(over_cap.len() + 12 + 4096 + 1, 0);
    tls_after(&gate, &over_cap, &device).await.unwrap_err();
    expected += 1;
    refusals_reach(&gate, expected).await;

    // Cut short, then the write side closed.
    let header = proxy_v2("203.0.113.7:4242".parse().unwrap());
    let mut tcp = TcpStream::connect(gate.addr).await.unwrap();
    tcp.write_all(&header[..20]).await.unwrap();
    tcp.shutdown().await.unwrap();
    closed_without_a_byte(tcp).await;
    expected += 1;
    refusals_reach(&gate, expected).await;

    // Cut short, then silence: closed at header_read_timeout (2 s here).
    let mut tcp = TcpStream::connect(gate.addr).await.unwrap();
    tcp.write_all(&header[..20]).await.unwrap();
    closed_without_a_byte(tcp).await;
    expected += 1;
    refusals_reach(&gate, expected).await;

    // The same gate still serves a balancer that sends a good header.
    let answer = send_after(
        &gate,
        &header,
        &device,
        get("/.well-known/posture-gate/challenge"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(gate.handle.proxy_header_refusals(), expected);
}

#[tokio::test]
async fn from_any_other_peer_a_proxy_header_is_not_honoured() {
    let up = upstream::start("public").await;
    let header = proxy_v2("203.0.113.7:4242".parse().unwrap());
    // Off (the default), and on for other addresses only.
    for settings in [
        Settings::default(),
        listing("\"192.0.2.0/24\", \"::1\"", ""),
    ] {
        let gate = TestGate::start(&routes(&up), &settings).await;
        let device = gate.pki.device("lt-604", "Leverancier BV");
        // The header is TLS garbage to the gate: the handshake fails.
        tls_after(&gate, &header, &device).await.unwrap_err();
        assert_eq!(gate.handle.proxy_header_refusals(), 0);
        // A plain client from here is served, and is who it is.
        let answer = gate
            .client(Some(&device), Proto::H1)
            .get("public.test", "/.well-known/posture-gate/challenge")
            .await;
        assert_eq!(answer.status, 200);
    }
}

#[tokio::test]
async fn the_per_address_limit_counts_the_client_behind_the_balancer() {
    let up = upstream::start("public").await;
    let settings = listing("\"127.0.0.1\"", "max_connections_per_ip = 1\n");
    let gate = TestGate::start(&routes(&up), &settings).await;
    let device = gate.pki.device("lt-605", "Leverancier BV");
    let a = proxy_v2("203.0.113.7:4242".parse().unwrap());
    let b = proxy_v2("198.51.100.9:5151".parse().unwrap());

    // Two clients through one balancer address: one place each, though
    // the limit is 1 and both come from 127.0.0.1.
    let held_a = tls_after(&gate, &a, &device).await.unwrap();
    let held_b = tls_after(&gate, &b, &device).await.unwrap();
    // A second connection of client A is over its limit: closed before TLS.
    let a_again = proxy_v2("203.0.113.7:4243".parse().unwrap());
    tls_after(&gate, &a_again, &device).await.unwrap_err();
    // Not a header refusal: the header was good.
    assert_eq!(gate.handle.proxy_header_refusals(), 0);
    // Once A's first connection is gone, A has its place again.
    drop(held_a);
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(tls) = tls_after(&gate, &a_again, &device).await {
                break tls;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "client A never got its place back");
    drop(held_b);
}

#[tokio::test(flavor = "current_thread")]
async fn an_ipv6_balancer_and_client() {
    let (captured, _guard) = common::audit::capture();
    let up = upstream::start("public").await;
    // The test kit listens on 127.0.0.1; this gate on ::1.
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let pki = common::TestPki::new(dir.path());
    std::fs::write(dir.path().join("nonce.key"), [7u8; 32]).unwrap();
    let config = dir.path().join("gate.toml");
    let text = common::config_text(&routes(&up), &listing("\"::1\"", "")).replacen(
        "listen = \"127.0.0.1:0\"",
        "listen = \"[::1]:0\"",
        1,
    );
    assert!(text.contains("[::1]:0"));
    std::fs::write(&config, text).unwrap();
    let bound = Gate::bind(config.clone()).await.unwrap();
    let addr = bound.local_addr();
    assert!(addr.is_ipv6());
    let handle = bound.handle();
    let task = tokio::spawn(bound.run());
    let gate = TestGate {
        dir,
        pki,
        config,
        addr,
        forward_addr: None,
        nac_addr: None,
        handle,
        task,
    };
    let device = gate.pki.device("lt-606", "Leverancier BV");

    let header = proxy_v2("[2001:db8::7]:4242".parse().unwrap());
    attest_after(&gate, &header, &device).await;
    let answer = send_after(&gate, &header, &device, get("/")).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(forwarded_for(&answer), ["2001:db8::7"]);
    let events = captured.audit_events();
    let decision = events.iter().find(|e| e["event"] == "decision").unwrap();
    assert_eq!(decision["source"], "[2001:db8::7]:4242", "{decision}");

    // An IPv4 client through the IPv6 balancer.
    let answer = send_after(
        &gate,
        &proxy_v2("203.0.113.8:1000".parse().unwrap()),
        &device,
        get("/"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(forwarded_for(&answer), ["203.0.113.8"]);

    // Without a header, ::1 gets no session.
    tls_after(&gate, b"", &device).await.unwrap_err();
    refusals_reach(&gate, 1).await;
    gate.handle.shutdown();
}
