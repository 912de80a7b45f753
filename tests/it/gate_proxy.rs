//! The request path over real sockets: TLS with client certificates,
//! routing, the decision, identity headers, HTTP/2, path tricks.

use crate::support as common;

use bytes::Bytes;
use common::upstream::{self, Upstream};
use common::{request, upstream_header, Proto, RouteSpec, Settings, TestGate};
use http_body_util::Full;

struct World {
    gate: TestGate,
    _public: Upstream,
    _finance: Upstream,
    _office: Upstream,
}

async fn world() -> World {
    let public = upstream::start("public").await;
    let finance = upstream::start("finance").await;
    let office = upstream::start("office").await;
    let routes = [
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: public.url(),
            segment: "open",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/finance",
            upstream: finance.url(),
            segment: "finance",
        },
        RouteSpec {
            host: "finance.test",
            prefix: "/",
            upstream: finance.url(),
            segment: "finance",
        },
        RouteSpec {
            host: "office.test",
            prefix: "/",
            upstream: office.url(),
            segment: "office",
        },
    ];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    World {
        gate,
        _public: public,
        _finance: finance,
        _office: office,
    }
}

#[tokio::test]
async fn a_clean_device_reaches_the_upstream_with_its_identity() {
    let w = world().await;
    let device = w.gate.pki.device("lt-001", "Ministerie van Test");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        let answer = w
            .gate
            .client(Some(&device), proto)
            .get("finance.test", "/reports?q=1")
            .await;
        assert_eq!(answer.status, 200, "{proto:?}: {}", answer.text());
        let body = answer.json();
        assert_eq!(body["upstream"], "finance");
        assert_eq!(body["path"], "/reports?q=1");
        assert_eq!(body["version"], "HTTP/1.1");
        assert_eq!(
            upstream_header(&answer, "x-posture-device-fingerprint"),
            Some(vec![device.fingerprint()])
        );
        let subject = &upstream_header(&answer, "x-posture-device-subject").unwrap()[0];
        assert!(subject.contains("lt-001"), "{subject}");
        assert_eq!(
            upstream_header(&answer, "x-posture-device-organization"),
            Some(vec!["Ministerie%20van%20Test".to_string()])
        );
        assert_eq!(
            upstream_header(&answer, "x-posture-decision"),
            Some(vec!["allow".into()])
        );
        assert_eq!(
            upstream_header(&answer, "x-forwarded-proto"),
            Some(vec!["https".into()])
        );
        assert_eq!(
            upstream_header(&answer, "x-forwarded-host"),
            Some(vec!["finance.test".into()])
        );
        assert_eq!(
            upstream_header(&answer, "x-forwarded-for"),
            Some(vec!["127.0.0.1".into()])
        );
        // The upstream's hop-by-hop headers stay on its side.
        assert!(answer.headers.get("x-upstream-hop").is_none());
    }
}

#[tokio::test]
async fn a_device_with_kaspersky_is_denied_the_finance_segment_with_a_page() {
    let w = world().await;
    let device = w.gate.pki.device("lt-002", "Leverancier BV");
    let verdict = w.gate.attest(&device, true).await;
    assert_eq!(verdict.status, 200, "{}", verdict.text());
    assert_eq!(verdict.json()["decisions"]["finance"], "deny");
    let answer = w
        .gate
        .client(Some(&device), Proto::H1)
        .get("finance.test", "/")
        .await;
    assert_eq!(answer.status, 403);
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    assert_eq!(answer.headers["referrer-policy"], "no-referrer");
    assert!(answer.headers.contains_key("content-security-policy"));
    // The open segment still lets it through.
    let open = w
        .gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(open.status, 200);
}

#[tokio::test]
async fn a_warned_device_is_forwarded_with_a_posture_warning() {
    let w = world().await;
    let device = w.gate.pki.device("lt-003", "Leverancier BV");
    assert_eq!(w.gate.attest(&device, true).await.status, 200);
    let answer = w
        .gate
        .client(Some(&device), Proto::H1)
        .get("office.test", "/")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        upstream_header(&answer, "x-posture-decision"),
        Some(vec!["warn".into()])
    );
    let warning = upstream_header(&answer, "posture-warning").unwrap();
    assert!(warning[0].contains("kaspersky"), "{warning:?}");
}

#[tokio::test]
async fn no_certificate_gets_the_denial_page_not_a_handshake_failure() {
    let w = world().await;
    for proto in [Proto::H1, Proto::H2] {
        let answer = w.gate.client(None, proto).get("finance.test", "/").await;
        assert_eq!(answer.status, 403, "{proto:?}");
        assert!(!answer.body.is_empty());
    }
    let json = w
        .gate
        .client(None, Proto::H1)
        .send(
            request("GET", "finance.test", "/", Proto::H1)
                .header("accept", "application/problem+json")
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(json.status, 403);
    assert!(json.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
}

#[tokio::test]
async fn a_certificate_without_a_posture_is_denied() {
    let w = world().await;
    let device = w.gate.pki.device("lt-004", "Ministerie van Test");
    let answer = w
        .gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(answer.status, 403);
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let w = world().await;
    let device = w.gate.pki.device("lt-005", "Ministerie van Test");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        let req = request("GET", "public.test", "/", proto)
            .header("X-Posture-Device-Fingerprint", "00ff")
            .header("x-posture-device-subject", "CN=admin")
            .header("X-Posture-Device-Organization", "Other")
            .header("X-Posture-Decision", "allow")
            .header("Posture-Warning", "none")
            .header("X-Forwarded-For", "10.9.9.9")
            .body(Full::default())
            .unwrap();
        let answer = w.gate.client(Some(&device), proto).send(req).await;
        assert_eq!(answer.status, 200, "{proto:?}");
        assert_eq!(
            upstream_header(&answer, "x-posture-device-fingerprint"),
            Some(vec![device.fingerprint()])
        );
        let subject = &upstream_header(&answer, "x-posture-device-subject").unwrap();
        assert_eq!(subject.len(), 1);
        assert!(!subject[0].contains("admin"));
        assert_eq!(
            upstream_header(&answer, "x-posture-device-organization")
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            upstream_header(&answer, "x-posture-decision"),
            Some(vec!["allow".into()])
        );
        assert_eq!(upstream_header(&answer, "posture-warning"), None);
        // A client's X-Forwarded-For is its own say-so: the chain starts
        // at the peer (no trusted proxies here; see gate_smuggling.rs).
        assert_eq!(
            upstream_header(&answer, "x-forwarded-for"),
            Some(vec!["127.0.0.1".into()])
        );
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let w = world().await;
    let device = w.gate.pki.device("lt-006", "Ministerie van Test");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let req = request("GET", "public.test", "/", Proto::H1)
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("proxy-authorization", "Basic Zm9v")
        .header("te", "trailers")
        .body(Full::default())
        .unwrap();
    let answer = w.gate.client(Some(&device), Proto::H1).send(req).await;
    assert_eq!(answer.status, 200);
    for name in ["x-private", "proxy-authorization", "te"] {
        assert_eq!(upstream_header(&answer, name), None, "{name}");
    }
}

#[tokio::test]
async fn path_tricks_cannot_reach_another_routes_upstream() {
    let w = world().await;
    let clean = w.gate.pki.device("lt-007", "Ministerie van Test");
    let flagged = w.gate.pki.device("lt-008", "Leverancier BV");
    assert_eq!(w.gate.attest(&clean, false).await.status, 200);
    assert_eq!(w.gate.attest(&flagged, true).await.status, 200);
    let tricks = [
        "//finance/x",
        "/x/../finance/x",
        "/x/%2e%2e/finance/x",
        "/x/%2E%2E/finance/x",
        "/./finance/x",
    ];
    for proto in [Proto::H1, Proto::H2] {
        for path in tricks {
            // The flagged device is routed to the finance segment and denied ...
            let denied = w
                .gate
                .client(Some(&flagged), proto)
                .get("public.test", path)
                .await;
            assert_eq!(denied.status, 403, "{proto:?} {path}: {}", denied.text());
            // ... and a clean one reaches the finance upstream on the normalised path.
            let allowed = w
                .gate
                .client(Some(&clean), proto)
                .get("public.test", path)
                .await;
            assert_eq!(allowed.status, 200, "{proto:?} {path}");
            assert_eq!(allowed.json()["upstream"], "finance", "{proto:?} {path}");
            assert_eq!(allowed.json()["path"], "/finance/x", "{proto:?} {path}");
        }
        for path in [
            "/x%2Ffinance",
            "/x%2f..%2ffinance",
            "/x%5C..%5Cfinance",
            "/x%00",
        ] {
            let refused = w
                .gate
                .client(Some(&flagged), proto)
                .get("public.test", path)
                .await;
            assert_eq!(refused.status, 400, "{proto:?} {path}");
        }
        // A prefix matches whole segments only.
        let apple = w
            .gate
            .client(Some(&flagged), proto)
            .get("public.test", "/financex")
            .await;
        assert_eq!(apple.status, 200);
        assert_eq!(apple.json()["upstream"], "public");
    }
}

#[tokio::test]
async fn an_unknown_host_gets_a_404_page() {
    let w = world().await;
    let device = w.gate.pki.device("lt-009", "Ministerie van Test");
    let answer = w
        .gate
        .client(Some(&device), Proto::H1)
        .get("other.test", "/")
        .await;
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn an_absolute_target_for_another_host_is_refused() {
    let w = world().await;
    let device = w.gate.pki.device("lt-010", "Ministerie van Test");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let client = w.gate.client(Some(&device), Proto::H1);
    // SNI public.test (from Host), target names finance.test.
    let req = http::Request::builder()
        .uri("https://finance.test/")
        .header("host", "public.test")
        .body(Full::<Bytes>::default())
        .unwrap();
    let answer = client.send(req).await;
    assert_eq!(answer.status, 400);
}

#[tokio::test]
async fn request_bodies_stream_to_the_upstream() {
    let w = world().await;
    let device = w.gate.pki.device("lt-011", "Ministerie van Test");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        let body = Bytes::from(vec![b'x'; 3 * 1024 * 1024]);
        let req = request("POST", "public.test", "/upload", proto)
            .body(Full::new(body))
            .unwrap();
        let answer = w.gate.client(Some(&device), proto).send(req).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["body_len"], 3 * 1024 * 1024);
    }
}

#[tokio::test]
async fn an_https_upstream_is_trusted_only_through_its_routes_ca() {
    let up_dir = tempfile::tempdir().unwrap();
    let _up_pki = common::TestPki::new(up_dir.path());
    let secure = upstream::start_tls("secure", up_dir.path()).await;
    let public = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: public.url(),
        segment: "open",
    }];
    let settings = Settings::default();
    let gate = TestGate::start(&routes, &settings).await;
    let port = secure.addr.port();
    let mut text = common::config_text(&routes, &settings);
    // The right CA, and the gate's own CA, which did not issue the upstream's certificate.
    text.push_str(&format!(
        "\n[[route]]\nhost = \"other.test\"\nupstream = \"https://localhost:{port}\"\nupstream_ca = {:?}\nsegment = \"open\"\n\
         \n[[route]]\nhost = \"office.test\"\nupstream = \"https://localhost:{port}\"\nupstream_ca = \"ca.pem\"\nsegment = \"open\"\n",
        up_dir.path().join("ca.pem").display().to_string()
    ));
    std::fs::write(&gate.config, text).unwrap();
    gate.handle.reload_now().await.unwrap();
    let device = gate.pki.device("lt-012", "Ministerie van Test");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let answer = gate
        .client(Some(&device), Proto::H2)
        .get("other.test", "/s")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["upstream"], "secure");
    assert_eq!(
        answer.json()["headers"]["host"][0],
        format!("localhost:{port}")
    );
    let wrong_ca = gate
        .client(Some(&device), Proto::H1)
        .get("office.test", "/s")
        .await;
    assert_eq!(wrong_ca.status, 502);
}
