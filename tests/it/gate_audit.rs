//! One audit event per decision, and the idle timeout.

use crate::support as common;

use std::time::Duration;

use common::client::{connect, tls_config};
use common::upstream;
use common::{request, Proto, RouteSpec, Settings, TestGate};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

// A current-thread runtime: every task of the gate runs on this thread, so
// a thread-local subscriber sees all its events.
#[tokio::test(flavor = "current_thread")]
async fn each_decision_is_one_audit_event_and_a_denial_reference_is_on_the_page() {
    let (captured, _guard) = common::audit::capture();

    let up = upstream::start("public").await;
    let routes = [
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: up.url(),
            segment: "open",
        },
        RouteSpec {
            host: "finance.test",
            prefix: "/pay",
            upstream: up.url(),
            segment: "finance",
        },
    ];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let device = gate.pki.device("lt-501", "Leverancier BV");
    assert_eq!(gate.attest(&device, true).await.status, 200);

    let allowed = gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(allowed.status, 200);
    let denied = gate
        .client(Some(&device), Proto::H1)
        .get("finance.test", "/pay/1")
        .await;
    assert_eq!(denied.status, 403);

    let events = captured.audit_events();
    let decisions: Vec<_> = events.iter().filter(|e| e["event"] == "decision").collect();
    assert_eq!(decisions.len(), 2, "{events:#?}");
    let allow = &decisions[0];
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["enforcement"], "proxy");
    assert_eq!(allow["device"]["fingerprint_sha256"], device.fingerprint());
    assert_eq!(allow["segment"], "open");
    let deny = &decisions[1];
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["segment"], "finance");
    assert_eq!(deny["route_host"], "finance.test");
    assert_eq!(deny["route_prefix"], "/pay");
    assert_eq!(deny["device"]["organization"], "Leverancier BV");
    assert_eq!(
        deny["device"]["organizational_units"],
        serde_json::json!(["Laptops"])
    );
    assert!(deny["source"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(deny["findings"][0]["catalog_id"], "kaspersky", "{deny}");
    let reference = deny["reference"].as_str().unwrap();
    assert!(!reference.is_empty());
    assert!(
        denied.text().contains(reference),
        "the page shows the reference of the log line"
    );
    let attestations: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "attestation")
        .collect();
    assert_eq!(attestations.len(), 1);
    assert_eq!(attestations[0]["valid"], true);
    assert_eq!(attestations[0]["remembered"], true);
    assert_eq!(attestations[0]["findings"][0]["catalog_id"], "kaspersky");
}

/// The reference on a page, e.g. `PG-7K2M-Q9XD`.
fn reference_on(page: &str) -> String {
    let at = page.find("PG-").expect("the page shows a reference");
    page[at..at + 12].to_string()
}

/// Every page that shows a reference has an audit event with it: a request
/// the gate cannot route (404), a malformed one (400) and one whose upstream
/// is down (502), not only the decisions.
#[tokio::test(flavor = "current_thread")]
async fn the_references_on_404_400_and_502_pages_are_in_audit_events() {
    let (captured, _guard) = common::audit::capture();
    let up = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let device = gate.pki.device("lt-503", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let client = gate.client(Some(&device), Proto::H1);

    let unknown = client.get("other.test", "/").await;
    assert_eq!(unknown.status, 404);
    let malformed = client.get("public.test", "/x%2Fy").await;
    assert_eq!(malformed.status, 400);
    up.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let failed = gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(failed.status, 502);

    let events = captured.audit_events();
    for (answer, reason, routed) in [
        (&unknown, "unknown_host", false),
        (&malformed, "bad_request", false),
        (&failed, "upstream_unavailable", true),
    ] {
        let reference = reference_on(&answer.text());
        let with_it: Vec<_> = events
            .iter()
            .filter(|e| e["reference"] == reference.as_str())
            .collect();
        assert_eq!(with_it.len(), 1, "{reference}: {events:#?}");
        let e = with_it[0];
        assert_eq!(e["event"], "refused", "{e}");
        assert_eq!(e["reason"], reason, "{e}");
        assert_eq!(e["enforcement"], "proxy");
        assert_eq!(e["device"]["fingerprint_sha256"], device.fingerprint());
        assert!(e["source"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert_eq!(e.get("segment").is_some(), routed, "{e}");
        if routed {
            assert_eq!(e["route_host"], "public.test");
            assert_eq!(e["segment"], "open");
        }
    }
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let settings = Settings {
        idle_timeout: "1s",
        header_read_timeout: "60s",
        ..Settings::default()
    };
    let up = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }];
    let gate = TestGate::start(&routes, &settings).await;
    let device = gate.pki.device("lt-502", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        let tls = connect(
            gate.addr,
            "public.test",
            tls_config(&gate.pki.ca_der, Some(&device), proto),
        )
        .await
        .unwrap();
        let req = request("GET", "public.test", "/", proto)
            .body(Full::<bytes::Bytes>::default())
            .unwrap();
        // The senders stay alive, so the client never closes on its own.
        let mut h1_sender = None;
        let mut h2_sender = None;
        let closed = match proto {
            Proto::H1 => {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .unwrap();
                let conn = tokio::spawn(conn);
                assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
                h1_sender = Some(sender);
                conn
            }
            Proto::H2 => {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .unwrap();
                let conn = tokio::spawn(conn);
                assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
                h2_sender = Some(sender);
                conn
            }
        };
        // The client keeps the connection open; the gate ends it.
        tokio::time::timeout(Duration::from_secs(20), closed)
            .await
            .unwrap_or_else(|_| panic!("{proto:?}: idle connection left open"))
            .unwrap()
            .ok();
        drop((h1_sender, h2_sender));
    }
}

#[tokio::test]
async fn a_request_waiting_on_its_upstream_is_not_idle() {
    let settings = Settings {
        idle_timeout: "1s",
        upstream_timeout: "10s",
        ..Settings::default()
    };
    let up = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }];
    let gate = TestGate::start(&routes, &settings).await;
    let device = gate.pki.device("lt-503", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        let answer = gate
            .client(Some(&device), proto)
            .get("public.test", "/sleep-ms/2500")
            .await;
        assert_eq!(answer.status, 200, "{proto:?}");
    }
}
