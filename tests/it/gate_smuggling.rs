//! What a client could smuggle past the gate to an upstream that reads the
//! request differently, over real sockets: identity headers in spellings
//! that CGI-style servers fold together, other proxies' headers, paths that
//! some servers read as another route's, Host tricks, and identity values
//! and answers that must not be misread or shared.

use crate::support as common;

use bytes::Bytes;
use common::upstream::{self, Upstream};
use common::{config_text, request, upstream_header, Answer, Proto, RouteSpec, Settings, TestGate};
use http_body_util::Full;
use posture_core::device::DeviceIdentity;

struct World {
    gate: TestGate,
    routes: Vec<RouteSpec>,
    _public: Upstream,
    _kantine: Upstream,
    _finance: Upstream,
}

/// `public.test`: `/` open, `/kantine` open (its own upstream), `/financien`
/// denied to a device with Kaspersky.
async fn world() -> World {
    let public = upstream::start("public").await;
    let kantine = upstream::start("kantine").await;
    let finance = upstream::start("finance").await;
    let routes = vec![
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: public.url(),
            segment: "open",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/kantine",
            upstream: kantine.url(),
            segment: "open",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/financien",
            upstream: finance.url(),
            segment: "finance",
        },
    ];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    World {
        gate,
        routes,
        _public: public,
        _kantine: kantine,
        _finance: finance,
    }
}

impl World {
    /// Rewrites the config with `edit` applied to its text and reloads.
    async fn reconfigure(&self, edit: impl FnOnce(String) -> String) {
        let text = edit(config_text(&self.routes, &Settings::default()));
        std::fs::write(&self.gate.config, text).unwrap();
        self.gate.handle.reload_now().await.unwrap();
    }
}

/// A 400 page of the gate itself: the echo upstream answers 200 with JSON
/// to everything, so this answer never came from an upstream.
fn assert_refused_by_the_gate(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 400, "{what}: {}", answer.text());
    let content_type = answer.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/html"),
        "{what}: {content_type}"
    );
    assert!(!answer.text().contains("\"upstream\""), "{what}");
}

#[tokio::test]
async fn spoofed_identity_and_proxy_headers_never_reach_the_upstream_in_any_spelling() {
    let w = world().await;
    let device = w.gate.pki.device("lt-101", "Ministerie van Test");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let spoofed = [
        "X_Posture_Decision",
        "x_posture_decision",
        "X_Posture_Device_Subject",
        "x-posture_device-subject",
        "X_Posture_Device_Organization",
        "X.Posture.Device.Fingerprint",
        "X_Posture_Device_Fingerprint",
        "Posture_Warning",
        "Posture_Attestation",
        "X-Posture-Something-New",
        "Forwarded",
        "X-Real-IP",
        "X_Real_IP",
        "X-Forwarded-Port",
        "X-Forwarded-Prefix",
        "X_Forwarded_For",
        "X_Forwarded_Host",
        "X-Forwarded-Proto_",
        "X-Original-URL",
        "X-Rewrite-URL",
        "Proxy",
        "X-Forwarded-Client-Cert",
        "X-Forwarded-Tls-Client-Cert",
        "X-Forwarded-Tls-Client-Cert-Info",
        "X-SSL-Client-Cert",
        "X-SSL-Client-S-DN",
        "X_SSL_Client_Verify",
        "True-Client-IP",
    ];
    for proto in [Proto::H1, Proto::H2] {
        let mut req = request("GET", "public.test", "/", proto)
            .header("X-Posture-Decision", "allow")
            .header("X-Forwarded-For", "10.9.9.9")
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", "finance.test")
            .header("X-Request-Id", "kept");
        for name in spoofed {
            req = req.header(name, "allow,warn");
        }
        let answer = w
            .gate
            .client(Some(&device), proto)
            .send(req.body(Full::default()).unwrap())
            .await;
        assert_eq!(answer.status, 200, "{proto:?}: {}", answer.text());
        for name in spoofed {
            assert_eq!(
                upstream_header(&answer, &name.to_ascii_lowercase()),
                None,
                "{proto:?} {name}"
            );
        }
        // No upstream header carries the client's value under any name.
        let received = answer.json()["headers"].clone();
        for (name, values) in received.as_object().unwrap() {
            assert!(
                !values.to_string().contains("allow,warn"),
                "{proto:?}: {name} = {values}"
            );
        }
        assert_eq!(
            upstream_header(&answer, "x-posture-decision"),
            Some(vec!["allow".into()])
        );
        assert_eq!(
            upstream_header(&answer, "x-posture-device-fingerprint"),
            Some(vec![device.fingerprint()])
        );
        // The chain starts at the peer the gate sees: no trusted proxies.
        assert_eq!(
            upstream_header(&answer, "x-forwarded-for"),
            Some(vec!["127.0.0.1".into()])
        );
        assert_eq!(
            upstream_header(&answer, "x-forwarded-proto"),
            Some(vec!["https".into()])
        );
        assert_eq!(
            upstream_header(&answer, "x-forwarded-host"),
            Some(vec!["public.test".into()])
        );
        assert_eq!(
            upstream_header(&answer, "x-request-id"),
            Some(vec!["kept".into()])
        );
    }
}

#[tokio::test]
async fn only_a_trusted_proxy_extends_the_forwarded_for_chain() {
    let w = world().await;
    let device = w.gate.pki.device("lt-102", "Ministerie van Test");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let send = || async {
        let req = request("GET", "public.test", "/", Proto::H1)
            .header("X-Forwarded-For", "10.9.9.9, 10.8.8.8")
            .header("Forwarded", "for=10.9.9.9")
            .header("X-Real-IP", "10.9.9.9")
            .body(Full::default())
            .unwrap();
        let answer = w.gate.client(Some(&device), Proto::H1).send(req).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer
    };
    // Trusted proxies elsewhere: the loopback peer is not one of them.
    w.reconfigure(|t| {
        t.replacen(
            "[server]\n",
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
            1,
        )
    })
    .await;
    let answer = send().await;
    assert_eq!(
        upstream_header(&answer, "x-forwarded-for"),
        Some(vec!["127.0.0.1".into()])
    );
    // The loopback peer trusted: its chain is kept and the peer appended.
    w.reconfigure(|t| {
        t.replacen(
            "[server]\n",
            "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
            1,
        )
    })
    .await;
    let answer = send().await;
    assert_eq!(
        upstream_header(&answer, "x-forwarded-for"),
        Some(vec!["10.9.9.9, 10.8.8.8, 127.0.0.1".into()])
    );
    // Other claims of origin go even from a trusted proxy.
    assert_eq!(upstream_header(&answer, "forwarded"), None);
    assert_eq!(upstream_header(&answer, "x-real-ip"), None);
}

#[tokio::test]
async fn paths_that_upstreams_read_as_another_route_are_refused() {
    let w = world().await;
    let clean = w.gate.pki.device("lt-103", "Ministerie van Test");
    assert_eq!(w.gate.attest(&clean, false).await.status, 200);
    let evil = [
        // Tomcat, Spring, Jetty: path parameters stripped, then `..`.
        "/kantine/..;/financien/",
        "/kantine/..;x=1/financien",
        "/kantine/%2e%2e;/financien",
        "/kantine/.;/../financien",
        "/kantine/..%3B/financien",
        // Decoded twice.
        "/kantine/%252e%252e/financien",
        "/kantine/%252e%252e%252ffinancien",
        // The hex after `%25` itself percent-encoded: `%252%65` decodes to
        // `%252e` (found by the normalise fuzzer).
        "/kantine/%252%65%252%65/financien",
        "/kantine/%25u002e%25u002e/financien",
        // IIS and Windows trim trailing white space and dots.
        "/kantine/..%20/financien",
        "/kantine/..%09/financien",
        "/kantine/.../financien",
        // Encoded separators and invalid or overlong UTF-8.
        "/kantine%2f..%2ffinancien",
        "/kantine%5c..%5cfinancien",
        "/kantine/%c0%ae%c0%ae/financien",
        "/kantine/%c0%af../financien",
        "/kantine/%e0%80%ae%e0%80%ae/financien",
        "/kantine/%ed%a0%80",
        "/kantine/%ff",
    ];
    for proto in [Proto::H1, Proto::H2] {
        for path in evil {
            let answer = w
                .gate
                .client(Some(&clean), proto)
                .get("public.test", path)
                .await;
            assert_refused_by_the_gate(&answer, &format!("{proto:?} {path}"));
        }
        // The same route still answers its own paths.
        let ok = w
            .gate
            .client(Some(&clean), proto)
            .get("public.test", "/kantine/menu")
            .await;
        assert_eq!(ok.status, 200, "{proto:?}");
        assert_eq!(ok.json()["upstream"], "kantine");
    }
}

#[tokio::test]
async fn paths_are_judged_as_servlet_containers_and_iis_map_them() {
    let w = world().await;
    let clean = w.gate.pki.device("lt-104", "Ministerie van Test");
    let flagged = w.gate.pki.device("lt-105", "Leverancier BV");
    assert_eq!(w.gate.attest(&clean, false).await.status, 200);
    assert_eq!(w.gate.attest(&flagged, true).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        // Tomcat (parameters) or IIS (trailing dots and spaces, any case)
        // read these as /financien/...: so does the route.
        for path in [
            "/financien;x=1/rapport",
            "/;x/financien/rapport",
            "/financien./rapport",
            "/financien%20/rapport",
            "/financien.%20;x/rapport",
            "/FINANCIEN/rapport",
            "/Financien;x/rapport",
            "/%46inancien/rapport",
        ] {
            let denied = w
                .gate
                .client(Some(&flagged), proto)
                .get("public.test", path)
                .await;
            assert_eq!(denied.status, 403, "{proto:?} {path}: {}", denied.text());
            let allowed = w
                .gate
                .client(Some(&clean), proto)
                .get("public.test", path)
                .await;
            assert_eq!(allowed.status, 200, "{proto:?} {path}");
            assert_eq!(allowed.json()["upstream"], "finance", "{proto:?} {path}");
        }
        // The parameters themselves reach the upstream (`;jsessionid=`).
        let session = w
            .gate
            .client(Some(&clean), proto)
            .get("public.test", "/kantine/menu;jsessionid=abc")
            .await;
        assert_eq!(session.status, 200);
        assert_eq!(session.json()["upstream"], "kantine");
        assert_eq!(session.json()["path"], "/kantine/menu;jsessionid=abc");
        // A parameter on an ordinary segment before `..`: the gate resolves
        // the `..` and judges what it forwards.
        let resolved = w
            .gate
            .client(Some(&flagged), proto)
            .get("public.test", "/kantine;x=1/../financien/rapport")
            .await;
        assert_eq!(resolved.status, 403, "{proto:?}");
    }
}

#[tokio::test]
async fn a_route_may_allow_double_encoded_percent_signs() {
    let w = world().await;
    let clean = w.gate.pki.device("lt-106", "Ministerie van Test");
    assert_eq!(w.gate.attest(&clean, false).await.status, 200);
    let kantine = w.routes[1].upstream.clone();
    w.reconfigure(|mut t| {
        t.push_str(&format!(
            "\n[[route]]\nhost = \"other.test\"\nupstream = \"{kantine}\"\nsegment = \"open\"\nallow_encoded_percent = true\n"
        ));
        t
    })
    .await;
    let path = "/archief/100%2541";
    let allowed = w
        .gate
        .client(Some(&clean), Proto::H1)
        .get("other.test", path)
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.json()["path"], path);
    let refused = w
        .gate
        .client(Some(&clean), Proto::H1)
        .get("public.test", path)
        .await;
    assert_refused_by_the_gate(&refused, path);
    // Other refusals still apply on that route.
    let refused = w
        .gate
        .client(Some(&clean), Proto::H1)
        .get("other.test", "/a/..;/b")
        .await;
    assert_refused_by_the_gate(&refused, "other.test /a/..;/b");
}

#[tokio::test]
async fn two_hosts_or_two_ports_are_a_bad_request() {
    let w = world().await;
    let clean = w.gate.pki.device("lt-107", "Ministerie van Test");
    assert_eq!(w.gate.attest(&clean, false).await.status, 200);
    let client = w.gate.client(Some(&clean), Proto::H1);
    let with_hosts = |hosts: &[&str]| {
        let mut req = http::Request::builder().uri("/");
        for h in hosts {
            req = req.header("host", *h);
        }
        req.body(Full::<Bytes>::default()).unwrap()
    };
    for hosts in [
        &["public.test", "public.test"][..],
        &["public.test", "finance.test"][..],
        &["public.test:443:443"][..],
        &["public.test:443:8443"][..],
        &["public.test:x"][..],
    ] {
        let answer = client.send(with_hosts(hosts)).await;
        assert_refused_by_the_gate(&answer, &format!("{hosts:?}"));
    }
    let one_port = client.send(with_hosts(&["public.test:8443"])).await;
    assert_eq!(one_port.status, 200, "{}", one_port.text());
    // HTTP/2: a Host beside :authority that names another port twice.
    let h2 = w.gate.client(Some(&clean), Proto::H2);
    let req = request("GET", "public.test", "/", Proto::H2)
        .header("host", "public.test:443:443")
        .body(Full::default())
        .unwrap();
    let answer = h2.send(req).await;
    assert_refused_by_the_gate(&answer, "h2 host:443:443");
}

#[tokio::test]
async fn identity_dependent_answers_are_private_unless_the_upstream_chose() {
    let w = world().await;
    let clean = w.gate.pki.device("lt-108", "Ministerie van Test");
    assert_eq!(w.gate.attest(&clean, false).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        let client = w.gate.client(Some(&clean), proto);
        let answer = client.get("public.test", "/page").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["cache-control"], "private", "{proto:?}");
        assert_eq!(answer.headers.get_all("cache-control").iter().count(), 1);
        let answer = client.get("public.test", "/cached/page").await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.headers["cache-control"], "public, max-age=60",
            "{proto:?}"
        );
        assert_eq!(answer.headers.get_all("cache-control").iter().count(), 1);
    }
}

#[tokio::test]
async fn identity_values_cannot_carry_markup_separators_or_escapes() {
    let w = world().await;
    let cn = r#"lt-109 <b>"q"\x,y"#;
    let org = "Evil, Inc. <script>";
    let device = w.gate.pki.device(cn, org);
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    for proto in [Proto::H1, Proto::H2] {
        let answer = w
            .gate
            .client(Some(&device), proto)
            .get("public.test", "/")
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let subject = upstream_header(&answer, "x-posture-device-subject").unwrap();
        let organization = upstream_header(&answer, "x-posture-device-organization").unwrap();
        assert_eq!(subject.len(), 1);
        assert_eq!(organization, ["Evil%2C%20Inc.%20%3Cscript%3E"]);
        for value in [&subject[0], &organization[0]] {
            assert!(
                !value.contains(['<', '>', '\\', ',', '"', ' ']),
                "{proto:?}: {value}"
            );
        }
        // Percent-decoding gives back the RFC 4514 subject exactly.
        let identity = DeviceIdentity::from_der(&device.cert_der).unwrap();
        let decoded = percent_encoding::percent_decode_str(&subject[0])
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, identity.subject);
        assert!(
            identity.subject.contains(r#"\<b\>"#),
            "{}",
            identity.subject
        );
    }
}

/// A WSGI app on Python's `wsgiref` that answers with every `HTTP_*`
/// variable it got: CGI-style name folding as a real upstream does it.
const WSGI_ECHO: &str = r#"
import json
from wsgiref.simple_server import make_server, WSGIRequestHandler

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

def app(environ, start_response):
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]

server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"#;

#[tokio::test]
async fn a_wsgi_upstream_sees_only_the_gates_identity_variables() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let w = world().await;
    let mut python = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(WSGI_ECHO)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(python.stdout.take().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    let port: u16 = line.trim().parse().expect("wsgiref prints its port");
    w.reconfigure(|mut t| {
        t.push_str(&format!(
            "\n[[route]]\nhost = \"other.test\"\nupstream = \"http://127.0.0.1:{port}\"\nsegment = \"open\"\n"
        ));
        t
    })
    .await;
    // A certificate without O: the gate sends no organisation, so a
    // client's would be the only one.
    let device = w.gate.pki.device_without_organization("lt-110");
    assert_eq!(w.gate.attest(&device, false).await.status, 200);
    let req = request("GET", "other.test", "/", Proto::H1)
        .header("X_Posture_Decision", "warn")
        .header("X_Posture_Device_Subject", "CN=admin")
        .header("x-posture_device-organization", "Other BV")
        .header("Posture_Warning", "none")
        .header("X_Forwarded_For", "10.9.9.9")
        .header("X_Real_IP", "10.9.9.9")
        .header("Proxy", "http://10.9.9.9:3128")
        .body(Full::default())
        .unwrap();
    let answer = w.gate.client(Some(&device), Proto::H1).send(req).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let env = answer.json();
    assert_eq!(env["HTTP_X_POSTURE_DECISION"], "allow", "{env}");
    let subject = env["HTTP_X_POSTURE_DEVICE_SUBJECT"].as_str().unwrap();
    assert!(
        subject.contains("lt-110") && !subject.contains("admin"),
        "{env}"
    );
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env}");
    for absent in [
        "HTTP_X_POSTURE_DEVICE_ORGANIZATION",
        "HTTP_POSTURE_WARNING",
        "HTTP_X_REAL_IP",
        "HTTP_PROXY",
    ] {
        assert!(env.get(absent).is_none(), "{absent}: {env}");
    }
}
