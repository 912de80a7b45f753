//! Forward-auth over real sockets, with the proxy played by a plain HTTP
//! client that sends what nginx, Caddy or Traefik would send (the real
//! proxies are in `forward_auth_nginx` and `forward_auth_caddy`): who may
//! ask, the certificate header verified like a TLS client certificate, the
//! answers and headers each proxy needs, the pages kept by reference, the
//! posture endpoints through the proxy, and the original target normalised
//! as the reverse proxy normalises its own.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::net::TcpSocket;

use crate::support as common;
use common::client::Answer;
use common::pki::{Device, TestPki};
use common::upstream::{self, Upstream};
use common::{claims, RouteSpec, Settings, TestGate};

const AUTHZ: &str = "/.well-known/posture-gate/authz";

/// A gate with two routes on one host, `/public` (open) and `/secret`
/// (finance, Kaspersky denied), and forward-auth for one nginx on
/// 127.0.0.1 and one Traefik on 127.0.0.3.
async fn world() -> (TestGate, Upstream) {
    let app = upstream::start("app").await;
    let routes = [
        RouteSpec {
            host: "public.test",
            prefix: "/public",
            upstream: app.url(),
            segment: "open",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/secret",
            upstream: app.url(),
            segment: "finance",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/office",
            upstream: app.url(),
            segment: "office",
        },
    ];
    let settings = Settings {
        extra: "[forward_auth]\n\
                listen = \"127.0.0.1:0\"\n\
                [[forward_auth.proxy]]\n\
                name = \"nginx-test\"\n\
                kind = \"nginx\"\n\
                from = [\"127.0.0.1\"]\n\
                [[forward_auth.proxy]]\n\
                name = \"traefik-test\"\n\
                kind = \"traefik\"\n\
                from = [\"127.0.0.3/32\"]\n\
                [[forward_auth.proxy]]\n\
                name = \"envoy-test\"\n\
                kind = \"envoy\"\n\
                from = [\"127.0.0.4/32\"]\n"
            .to_string(),
        ..Settings::default()
    };
    (TestGate::start(&routes, &settings).await, app)
}

/// nginx's `$ssl_client_escaped_cert`: the PEM, percent-encoded.
fn escaped_pem(device: &Device) -> String {
    let text = pem_of(device.cert_der.as_ref());
    utf8_percent_encode(&text, NON_ALPHANUMERIC).to_string()
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Traefik's `X-Forwarded-Tls-Client-Cert`: base64 DER, `,`-separated.
fn traefik_chain(device: &Device) -> String {
    use base64::Engine;
    device
        .chain
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// One HTTP/1.1 request to the forward-auth listener from `from`.
async fn ask(gate: &TestGate, from: &str, req: Request<Full<Bytes>>) -> Answer {
    let addr = gate.forward_addr.expect("forward-auth listens on TCP");
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
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

/// nginx's `auth_request` for `uri` on `public.test`, as the example config
/// sends it, with `cert` in `X-Client-Cert` (`None`: no certificate, which
/// nginx sends as an empty value).
fn nginx_authz(uri: &str, cert: Option<&str>) -> http::request::Builder {
    Request::get(AUTHZ)
        .header("host", "public.test")
        .header("x-original-uri", uri)
        .header("x-client-cert", cert.unwrap_or(""))
        .header("x-forwarded-for", "192.0.2.10")
}

fn empty(b: http::request::Builder) -> Request<Full<Bytes>> {
    b.body(Full::new(Bytes::new())).unwrap()
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", answer.headers))
        .to_str()
        .unwrap()
}

/// Attests through the proxy: challenge, then the token, with the
/// certificate in nginx's header.
async fn attest_through_nginx(gate: &TestGate, device: &Device, kaspersky: bool) -> Answer {
    let cert = escaped_pem(device);
    let challenge = ask(
        gate,
        "127.0.0.1",
        empty(
            Request::get("/.well-known/posture-gate/challenge")
                .header("host", "public.test")
                .header("x-client-cert", &cert),
        ),
    )
    .await;
    assert_eq!(challenge.status, 200, "{}", challenge.text());
    let nonce = challenge.json()["nonce"].as_str().unwrap().to_string();
    let token = device.token(&claims(Some(&nonce), kaspersky));
    ask(
        gate,
        "127.0.0.1",
        Request::post("/.well-known/posture-gate/attest")
            .header("host", "public.test")
            .header("x-client-cert", &cert)
            .header("content-type", "application/eat+jwt")
            .body(Full::new(Bytes::from(token)))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_clean_device_attests_through_the_proxy_and_is_let_through_with_its_identity() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-1", "Leverancier BV");
    let verdict = attest_through_nginx(&gate, &device, false).await;
    assert_eq!(verdict.status, 200, "{}", verdict.text());
    assert_eq!(verdict.json()["valid"], true);
    assert_eq!(
        verdict.json()["device"]["fingerprint_sha256"],
        device.fingerprint()
    );

    let cert = escaped_pem(&device);
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/secret/report?q=1", Some(&cert))),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-decision"), "allow");
    assert_eq!(
        header(&answer, "x-posture-device-fingerprint"),
        device.fingerprint()
    );
    assert!(header(&answer, "x-posture-device-subject").contains("lt-fa-1"));
    assert_eq!(
        header(&answer, "x-posture-device-organization"),
        "Leverancier%20BV"
    );
    // Present and empty: a proxy copying it can never pass on a client's.
    assert_eq!(header(&answer, "posture-warning"), "");
    assert_eq!(header(&answer, "x-posture-reference"), "");
    assert!(answer.body.is_empty());

    // The same posture serves the gate's own door: one store.
    let direct = gate
        .client(Some(&device), common::Proto::H1)
        .get("public.test", "/secret/x")
        .await;
    assert_eq!(direct.status, 200, "{}", direct.text());
}

#[tokio::test(flavor = "current_thread")]
async fn kaspersky_is_refused_with_a_reference_and_the_page_is_kept_for_that_device_only() {
    let (captured, _guard) = common::audit::capture();
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-2", "Leverancier BV");
    let verdict = attest_through_nginx(&gate, &device, true).await;
    assert_eq!(verdict.status, 200, "{}", verdict.text());

    let cert = escaped_pem(&device);
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/secret/", Some(&cert)).header("accept-language", "nl")),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "prohibited");
    assert_eq!(header(&answer, "x-posture-decision"), "deny");
    let reference = header(&answer, "x-posture-reference").to_string();
    assert!(reference.starts_with("PG-"), "{reference}");
    let page = answer.text();
    assert!(page.contains("Kaspersky"), "{page}");
    assert!(page.contains(&reference));
    assert!(page.contains("lang=\"nl\""), "{page}");

    let decision = captured
        .decisions()
        .into_iter()
        .find(|d| d["reference"] == reference.as_str())
        .expect("a decision event with the page's reference");
    assert_eq!(decision["enforcement"], "forward_auth");
    assert_eq!(decision["proxy"], "nginx-test");
    assert_eq!(decision["source"], "192.0.2.10:0");
    assert_eq!(decision["segment"], "finance");
    assert_eq!(
        decision["device"]["fingerprint_sha256"],
        device.fingerprint()
    );

    // nginx's error_page asks for the page by reference, with the same
    // certificate header; in English this time.
    let path = format!("/.well-known/posture-gate/denied/{reference}");
    let page = ask(
        &gate,
        "127.0.0.1",
        empty(
            Request::get(&path)
                .header("host", "public.test")
                .header("x-client-cert", &cert)
                .header("accept-language", "en"),
        ),
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.text());
    assert!(page.text().contains("Kaspersky"));
    assert!(page.text().contains(&reference));
    assert!(page.text().contains("lang=\"en\""));

    // Another device, or none, does not see it.
    let other = gate.pki.device("lt-fa-3", "Ander BV");
    for cert in [Some(escaped_pem(&other)), None] {
        let mut req = Request::get(&path).header("host", "public.test");
        if let Some(cert) = &cert {
            req = req.header("x-client-cert", cert);
        }
        let page = ask(&gate, "127.0.0.1", empty(req)).await;
        assert_eq!(page.status, 404, "{}", page.text());
        assert!(!page.text().contains("Kaspersky"));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_warning_lets_the_request_through_with_its_reasons_and_a_reference() {
    let (captured, _guard) = common::audit::capture();
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-w", "Org");
    assert_eq!(attest_through_nginx(&gate, &device, true).await.status, 200);
    let cert = escaped_pem(&device);
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/office/", Some(&cert))),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-decision"), "warn");
    assert!(header(&answer, "posture-warning").contains("kaspersky"));
    let reference = header(&answer, "x-posture-reference");
    assert!(reference.starts_with("PG-"), "{reference}");
    let decision = captured
        .decisions()
        .into_iter()
        .find(|d| d["reference"] == reference)
        .expect("the warning's decision event");
    assert_eq!(decision["decision"], "warn");
    assert_eq!(decision["enforcement"], "forward_auth");
}

#[tokio::test]
async fn without_a_certificate_401_and_without_a_posture_403_each_with_its_page() {
    let (gate, _app) = world().await;
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/secret/", None).header("accept", "application/problem+json")),
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "no_certificate");
    assert!(header(&answer, "www-authenticate").starts_with("TLS-Client-Certificate"));
    assert_eq!(
        answer.json()["type"],
        "urn:posture-gate:problem:no-certificate"
    );

    let device = gate.pki.device("lt-fa-4", "Org");
    let cert = escaped_pem(&device);
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/secret/", Some(&cert))),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "no_posture");
}

#[tokio::test(flavor = "current_thread")]
async fn a_certificate_that_does_not_chain_to_the_client_ca_does_not_open_the_door() {
    let (captured, _guard) = common::audit::capture();
    let (gate, _app) = world().await;
    // A certificate of another CA, for a device name that has a clean
    // posture here: what a proxy that verifies nothing would forward.
    let device = gate.pki.device("lt-fa-5", "Org");
    assert_eq!(
        attest_through_nginx(&gate, &device, false).await.status,
        200
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = TestPki::new(elsewhere.path()).device("lt-fa-5", "Org");
    let cert = escaped_pem(&stranger);
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/public/", Some(&cert))),
    )
    .await;
    // The same CA name, another key: the signature does not verify, and
    // the code says the chain is not trusted (issue 19: the specific code,
    // as the TLS front gives it), on a page that names the certificate.
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "untrusted_chain");
    assert!(
        answer.text().contains("Code: untrusted_chain"),
        "{}",
        answer.text()
    );
    assert!(
        answer.text().contains(&stranger.fingerprint()),
        "{}",
        answer.text()
    );
    let reference = header(&answer, "x-posture-reference").to_string();
    let event = captured
        .audit_events()
        .into_iter()
        .find(|e| e["reference"] == reference.as_str())
        .expect("an audit event for the refusal");
    assert_eq!(event["reason"], "untrusted_chain");
    assert_eq!(event["route_prefix"], "/public");
    assert!(event.get("device").is_none(), "no identity: {event}");
    // And what the certificate says about itself, with the proxy that
    // forwarded it.
    let line = captured
        .audit_events()
        .into_iter()
        .find(|e| e["event"] == "tls_refused" && e["fingerprint_sha256"] == stranger.fingerprint())
        .expect("a tls_refused line for the forwarded certificate");
    assert_eq!(line["code"], "untrusted_chain", "{line}");
    assert_eq!(line["reason"], "bad_signature", "{line}");
    assert!(line["proxy"].is_string(), "{line}");
    assert!(
        line["subject"].as_str().unwrap().contains("CN=lt-fa-5"),
        "{line}"
    );

    // An expired certificate of the right CA: `cert_expired`, and the
    // posture its device name has does not open the door.
    let now = time::OffsetDateTime::now_utc();
    let mut spec = posture_gate::pki::DeviceSpec::new("lt-fa-5", "Org");
    spec.not_before = now - time::Duration::days(30);
    spec.not_after = now - time::Duration::days(1);
    let expired = gate.pki.device_from(spec);
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/public/", Some(&escaped_pem(&expired)))),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "cert_expired");
    assert!(
        answer.text().contains("Code: cert_expired"),
        "{}",
        answer.text()
    );
    // Attesting through the proxy with it is refused with the spec's code.
    let attested = attest_through_nginx(&gate, &expired, false).await;
    assert_eq!(attested.status, 400, "{}", attested.text());
    assert_eq!(attested.json()["reason"], "cert_expired");

    // Two certificate headers: one may be the client's own; neither counts.
    let good = escaped_pem(&device);
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/public/", Some(&good)).header("x-client-cert", &good)),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "cert_untrusted");
}

#[tokio::test(flavor = "current_thread")]
async fn a_peer_that_is_no_configured_proxy_is_refused_and_audited_whatever_it_claims() {
    let (captured, _guard) = common::audit::capture();
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-6", "Org");
    assert_eq!(
        attest_through_nginx(&gate, &device, false).await.status,
        200
    );
    let cert = escaped_pem(&device);
    let answer = ask(
        &gate,
        "127.0.0.2",
        empty(nginx_authz("/public/", Some(&cert))),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "untrusted_proxy");
    assert_eq!(header(&answer, "connection"), "close");
    assert!(answer.headers.get("x-posture-device-fingerprint").is_none());
    let event = captured
        .audit_events()
        .into_iter()
        .find(|e| e["reason"] == "untrusted_proxy")
        .expect("an audit event for the stranger");
    assert_eq!(event["enforcement"], "forward_auth");
    assert!(event["source"].as_str().unwrap().starts_with("127.0.0.2:"));
    assert!(event.get("device").is_none());
    // And no decision was made on its say-so.
    assert!(captured.decisions().is_empty());
}

#[tokio::test]
async fn an_encoded_dot_dot_is_judged_by_the_segment_it_reaches() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-7", "Org");
    assert_eq!(attest_through_nginx(&gate, &device, true).await.status, 200);
    let cert = escaped_pem(&device);
    // The open segment lets a Kaspersky device through...
    let open = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/public/x", Some(&cert))),
    )
    .await;
    assert_eq!(open.status, 200, "{}", open.text());
    // ...but not to /secret by way of /public.
    for uri in [
        "/public/%2e%2e/secret/x",
        "/public/%2E%2E/secret/x",
        "/public/./../secret/x",
        "/public/..%2fsecret/x",
        "http://public.test/public/%2e%2e/secret/x",
    ] {
        let answer = ask(&gate, "127.0.0.1", empty(nginx_authz(uri, Some(&cert)))).await;
        assert_eq!(answer.status, 403, "{uri}: {}", answer.text());
        let reason = header(&answer, "x-posture-reason");
        assert!(
            reason == "prohibited" || reason == "bad_request",
            "{uri}: {reason}"
        );
    }
    // An absolute target for another host than the Host header is refused.
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("http://other.test/public/x", Some(&cert))),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(header(&answer, "x-posture-reason"), "bad_request");
}

#[tokio::test]
async fn traefik_sends_its_chain_as_base64_der_in_its_own_headers() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-8", "Org");
    assert_eq!(attest_through_nginx(&gate, &device, true).await.status, 200);
    let traefik = |uri: &str, host: &str| {
        Request::get(AUTHZ)
            .header("host", "gate.internal:9090")
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-tls-client-cert", traefik_chain(&device))
    };
    let open = ask(
        &gate,
        "127.0.0.3",
        empty(traefik("/public/", "public.test")),
    )
    .await;
    assert_eq!(open.status, 200, "{}", open.text());
    assert_eq!(
        header(&open, "x-posture-device-fingerprint"),
        device.fingerprint()
    );
    let secret = ask(
        &gate,
        "127.0.0.3",
        empty(traefik("/secret/", "public.test")),
    )
    .await;
    assert_eq!(secret.status, 403, "{}", secret.text());
    assert_eq!(header(&secret, "x-posture-reason"), "prohibited");
    // nginx's headers mean nothing from Traefik: no target, no decision.
    let crossed = ask(
        &gate,
        "127.0.0.3",
        empty(nginx_authz("/public/", Some(&escaped_pem(&device)))),
    )
    .await;
    assert_eq!(crossed.status, 403);
    assert_eq!(header(&crossed, "x-posture-reason"), "bad_request");
}

/// A gate whose forward-auth listens on `listen` with `more` lines in
/// `[forward_auth]` and the one proxy `proxy`.
async fn gate_with(listen: &str, more: &str, proxy: &str) -> (TestGate, Upstream) {
    let app = upstream::start("app").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: app.url(),
        segment: "open",
    }];
    let settings = Settings {
        extra: format!(
            "[forward_auth]\nlisten = \"{listen}\"\n{more}[[forward_auth.proxy]]\n{proxy}"
        ),
        ..Settings::default()
    };
    (TestGate::start(&routes, &settings).await, app)
}

async fn send_over<S>(stream: S, req: Request<Full<Bytes>>) -> Answer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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

#[tokio::test]
async fn on_a_unix_socket_the_one_proxy_is_whoever_may_open_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("authz.sock");
    // A socket left behind by a gate that was killed is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let listen = format!("unix:{}", socket.display());
    let (gate, _app) = gate_with(&listen, "", "name = \"nginx-unix\"\nkind = \"nginx\"\n").await;
    assert!(gate.forward_addr.is_none());
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "{mode:o}");

    let device = gate.pki.device("lt-fa-u", "Org");
    let cert = escaped_pem(&device);
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let answer = send_over(stream, empty(nginx_authz("/x", Some(&cert)))).await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "no_posture");

    // The socket goes with the gate.
    gate.handle.shutdown();
    let _ = gate.task.await;
    assert!(!socket.exists());
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_not_deleted_to_listen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authz.sock");
    std::fs::write(&path, b"keep me").unwrap();
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(pki_dir.path());
    std::fs::write(pki_dir.path().join("nonce.key"), [7u8; 32]).unwrap();
    let settings = Settings {
        extra: format!(
            "[forward_auth]\nlisten = \"unix:{}\"\n[[forward_auth.proxy]]\nname = \"n\"\nkind = \"nginx\"\n",
            path.display()
        ),
        ..Settings::default()
    };
    let config = pki_dir.path().join("gate.toml");
    std::fs::write(&config, common::config_text(&[], &settings)).unwrap();
    let Err(e) = posture_gate::gate::Gate::bind(config).await else {
        panic!("bound over a regular file");
    };
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    drop(pki);
}

/// The proxies' PKI of a mutual-TLS forward-auth: a CA, the gate's
/// listener certificate for 127.0.0.1, and client certificates for
/// proxies with these DNS names.
struct ProxyPki {
    ca_der: rustls_pki_types::CertificateDer<'static>,
    clients: Vec<(
        rustls_pki_types::CertificateDer<'static>,
        rustls_pki_types::PrivateKeyDer<'static>,
    )>,
}

fn proxy_pki(dir: &std::path::Path, names: &[&str]) -> ProxyPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "proxies CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("proxy-ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("authz.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("authz.key"), server_key.serialize_pem()).unwrap();
    let clients = names
        .iter()
        .map(|name| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let cert = p.signed_by(&key, &issuer).unwrap();
            let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
            (cert.der().clone(), key)
        })
        .collect();
    ProxyPki {
        ca_der: ca_cert.der().clone(),
        clients,
    }
}

/// A TLS connection to the forward-auth listener as a proxy with
/// certificate number `client` (or none).
async fn proxy_tls(
    gate: &TestGate,
    pki: &ProxyPki,
    client: Option<usize>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(i) => {
            let (cert, key) = &pki.clients[i];
            builder
                .with_client_auth_cert(vec![cert.clone()], key.clone_key())
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let stream = tokio::net::TcpStream::connect(gate.forward_addr.unwrap()).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, stream)
        .await?;
    // TLS 1.3: the server's verdict on the client certificate arrives after
    // the client's handshake is done; a read shows it.
    use tokio::io::AsyncWriteExt;
    tls.flush().await?;
    Ok(tls)
}

#[tokio::test]
async fn with_mutual_tls_a_proxy_is_known_by_its_certificate_and_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = proxy_pki(dir.path(), &["nginx.dmz.test", "other.dmz.test"]);
    let files = |f: &str| dir.path().join(f).display().to_string();
    let more = format!(
        "tls_certificate = \"{}\"\ntls_key = \"{}\"\nproxy_ca = \"{}\"\n",
        files("authz.pem"),
        files("authz.key"),
        files("proxy-ca.pem")
    );
    let (gate, _app) = gate_with(
        "127.0.0.1:0",
        &more,
        "name = \"nginx-mtls\"\nkind = \"nginx\"\ncertificate_name = \"nginx.dmz.test\"\n",
    )
    .await;
    let device = gate.pki.device("lt-fa-m", "Org");
    let cert = escaped_pem(&device);

    let tls = proxy_tls(&gate, &pki, Some(0)).await.unwrap();
    let answer = send_over(tls, empty(nginx_authz("/x", Some(&cert)))).await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "no_posture");

    // A certificate of the same CA for another name is no such proxy.
    let tls = proxy_tls(&gate, &pki, Some(1)).await.unwrap();
    let answer = send_over(tls, empty(nginx_authz("/x", Some(&cert)))).await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    assert_eq!(header(&answer, "x-posture-reason"), "untrusted_proxy");

    // Without a certificate there is no request at all.
    let refused = match proxy_tls(&gate, &pki, None).await {
        Err(_) => true,
        Ok(tls) => {
            let (mut sender, conn) = http1::handshake(TokioIo::new(tls)).await.unwrap();
            tokio::spawn(conn);
            sender
                .send_request(empty(nginx_authz("/x", Some(&cert))))
                .await
                .is_err()
        }
    };
    assert!(refused, "a peer without a proxy certificate got an answer");
}

#[tokio::test]
async fn a_reload_that_drops_a_proxy_stops_answering_it() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-r", "Org");
    let cert = escaped_pem(&device);
    let asked = || {
        ask(
            &gate,
            "127.0.0.1",
            empty(nginx_authz("/public/", Some(&cert))),
        )
    };
    assert_eq!(header(&asked().await, "x-posture-reason"), "no_posture");
    let text = std::fs::read_to_string(&gate.config).unwrap();
    let text = text.replace("from = [\"127.0.0.1\"]", "from = [\"127.0.0.9\"]");
    std::fs::write(&gate.config, text).unwrap();
    gate.handle.reload_now().await.unwrap();
    assert_eq!(
        header(&asked().await, "x-posture-reason"),
        "untrusted_proxy"
    );
}

/// Envoy's `x-forwarded-client-cert` after `SANITIZE_SET` with the cert
/// and chain details: one element, `By`, `Hash`, and `Cert`/`Chain` as
/// URL-encoded PEM, quoted.
fn xfcc(device: &Device) -> String {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(device.cert_der.as_ref()));
    let enc = |pem: &str| utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string();
    let chain: String = device.chain.iter().map(|c| pem_of(c.as_ref())).collect();
    format!(
        "By=spiffe://cluster.local/ns/gate/sa/envoy;Hash={hash};Cert=\"{}\";Chain=\"{}\";Subject=\"CN=lt-fa-e,O=Org\";URI=",
        enc(&pem_of(device.cert_der.as_ref())),
        enc(&chain)
    )
}

#[tokio::test]
async fn envoy_asks_with_the_original_path_after_authz_and_its_xfcc() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-e", "Org");
    assert_eq!(attest_through_nginx(&gate, &device, true).await.status, 200);
    // ext_authz keeps the method and appends the original path and query.
    let envoy = |method: &str, path: &str, xfcc: &str| {
        Request::builder()
            .method(method)
            .uri(format!("{AUTHZ}{path}"))
            .header("host", "public.test")
            .header("content-length", "0")
            .header("x-forwarded-client-cert", xfcc)
            .header("accept", "application/problem+json")
    };
    let value = xfcc(&device);
    let open = ask(
        &gate,
        "127.0.0.4",
        empty(envoy("POST", "/public/form?x=1", &value)),
    )
    .await;
    assert_eq!(open.status, 200, "{}", open.text());
    assert_eq!(
        header(&open, "x-posture-device-fingerprint"),
        device.fingerprint()
    );
    let secret = ask(&gate, "127.0.0.4", empty(envoy("GET", "/secret/", &value))).await;
    assert_eq!(secret.status, 403, "{}", secret.text());
    assert_eq!(
        secret.json()["type"],
        "urn:posture-gate:problem:prohibited-software"
    );
    let sneaky = ask(
        &gate,
        "127.0.0.4",
        empty(envoy("GET", "/public/%2e%2e/secret/", &value)),
    )
    .await;
    assert_eq!(sneaky.status, 403, "{}", sneaky.text());

    // A header a real Envoy sent (Istio ingress, from the Kyma docs): it
    // decodes, and its certificate, of another CA, does not open the door.
    let captured = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/forward_auth/envoy-kyma-ingress-element.txt"
    ))
    .unwrap();
    let foreign = ask(
        &gate,
        "127.0.0.4",
        empty(envoy("GET", "/public/", captured.trim())),
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    // Its certificate is an X.509 v1 one, which webpki does not take: the
    // code names that (issue 19), rather than "untrusted".
    assert_eq!(header(&foreign, "x-posture-reason"), "cert_invalid");
    // The whole captured header has two elements (ingress, then sidecar):
    // the gate's Envoy must replace the header, so this is refused.
    let two = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/forward_auth/envoy-kyma-two-elements.txt"
    ))
    .unwrap();
    let refused = ask(
        &gate,
        "127.0.0.4",
        empty(envoy("GET", "/public/", two.trim())),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(header(&refused, "x-posture-reason"), "cert_untrusted");
}

#[tokio::test]
async fn real_traefik_values_decode_and_a_foreign_certificate_is_refused() {
    let (gate, _app) = world().await;
    for file in ["traefik-minimal-cheese.txt", "traefik-two-certs.txt"] {
        let value = std::fs::read_to_string(format!(
            "{}/tests/fixtures/forward_auth/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let answer = ask(
            &gate,
            "127.0.0.3",
            empty(
                Request::get(AUTHZ)
                    .header("x-forwarded-host", "public.test")
                    .header("x-forwarded-uri", "/public/")
                    .header("x-forwarded-tls-client-cert", value.trim()),
            ),
        )
        .await;
        assert_eq!(answer.status, 403, "{file}: {}", answer.text());
        // Traefik's sample certificates are X.509 v1, which webpki does
        // not take: `cert_invalid` (issue 19), not a generic refusal.
        assert_eq!(
            header(&answer, "x-posture-reason"),
            "cert_invalid",
            "{file}"
        );
    }
}

#[tokio::test]
async fn pages_are_kept_only_for_nginx_and_the_listener_speaks_only_http1() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-k", "Org");
    assert_eq!(attest_through_nginx(&gate, &device, true).await.status, 200);
    // Traefik shows the body it got; nothing is kept for it.
    let traefik = Request::get(AUTHZ)
        .header("x-forwarded-host", "public.test")
        .header("x-forwarded-uri", "/secret/")
        .header("x-forwarded-tls-client-cert", traefik_chain(&device));
    let refused = ask(&gate, "127.0.0.3", empty(traefik)).await;
    assert_eq!(refused.status, 403);
    let reference = header(&refused, "x-posture-reference").to_string();
    let page = ask(
        &gate,
        "127.0.0.1",
        empty(
            Request::get(format!("/.well-known/posture-gate/denied/{reference}"))
                .header("host", "public.test")
                .header("x-client-cert", escaped_pem(&device)),
        ),
    )
    .await;
    assert_eq!(page.status, 404, "{}", page.text());

    // An HTTP/2 client with prior knowledge gets no answer in HTTP/2.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gate.forward_addr.unwrap())
        .await
        .unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the connection ends");
    // An HTTP/2 server would answer with a SETTINGS frame (type 4).
    assert!(
        answer.len() < 9 || answer[3] != 4,
        "answered in HTTP/2: {answer:?}"
    );
}

/// The "check again" command behind a proxy names the route's host (the
/// agent attests through the proxy, on the name the browser used) and the
/// port the proxy says the browser used, on the page the proxy shows and on
/// the page it keeps for nginx (issue 19).
#[tokio::test]
async fn the_page_behind_the_proxy_shows_the_agent_command_for_the_proxy() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-cmd", "Leverancier BV");
    let cert = escaped_pem(&device);
    for (port, expected) in [(None, "443"), (Some("8443"), "8443")] {
        let mut req = nginx_authz("/secret/x", Some(&cert)).header("accept", "text/html");
        if let Some(port) = port {
            req = req.header("x-forwarded-port", port);
        }
        let answer = ask(&gate, "127.0.0.1", empty(req)).await;
        assert_eq!(answer.status, 403, "{}", answer.text());
        let command = format!(
            "<code>posture-agent attest --gate https://public.test:{expected} --ca gate-ca.pem</code>"
        );
        assert!(answer.text().contains(&command), "{}", answer.text());
        let reference = header(&answer, "x-posture-reference").to_string();
        let kept = ask(
            &gate,
            "127.0.0.1",
            empty(
                Request::get(format!("/.well-known/posture-gate/denied/{reference}"))
                    .header("host", "public.test")
                    .header("x-client-cert", &cert)
                    .header("accept", "text/html"),
            ),
        )
        .await;
        assert_eq!(kept.status, 403, "{}", kept.text());
        assert!(kept.text().contains(&command), "{}", kept.text());
    }
}

/// Issue 19 point 3 at this door: a report refused through the proxy is
/// named on the page the proxy shows next, as at the gate's own door.
#[tokio::test]
async fn a_report_refused_through_the_proxy_is_named_on_its_next_page() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-refused", "Org");
    let other = gate.pki.device("lt-fa-other", "Org");
    let cert = escaped_pem(&device);
    let challenge = ask(
        &gate,
        "127.0.0.1",
        empty(
            Request::get("/.well-known/posture-gate/challenge")
                .header("host", "public.test")
                .header("x-client-cert", &cert),
        ),
    )
    .await;
    let nonce = challenge.json()["nonce"].as_str().unwrap().to_string();
    // Signed with another device's key, sent with this device's certificate.
    let refused = ask(
        &gate,
        "127.0.0.1",
        Request::post("/.well-known/posture-gate/attest")
            .header("host", "public.test")
            .header("x-client-cert", &cert)
            .header("content-type", "application/eat+jwt")
            .body(Full::new(Bytes::from(
                other.token(&claims(Some(&nonce), false)),
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["reason"], "key_mismatch");
    let answer = ask(
        &gate,
        "127.0.0.1",
        empty(nginx_authz("/secret/", Some(&cert)).header("accept", "application/problem+json")),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    let j = answer.json();
    assert_eq!(j["code"], "no_posture", "{j}");
    assert_eq!(j["reason"], "key_mismatch", "{j}");
    // nginx's error_page asks for the page again by reference: the same.
    let reference = header(&answer, "x-posture-reference").to_string();
    let kept = ask(
        &gate,
        "127.0.0.1",
        empty(
            Request::get(format!("/.well-known/posture-gate/denied/{reference}"))
                .header("host", "public.test")
                .header("x-client-cert", &cert)
                .header("accept", "application/problem+json"),
        ),
    )
    .await;
    assert_eq!(kept.json()["reason"], "key_mismatch", "{}", kept.text());
    // The other device is not told this one's refusal.
    let theirs = ask(
        &gate,
        "127.0.0.1",
        empty(
            nginx_authz("/secret/", Some(&escaped_pem(&other)))
                .header("accept", "application/problem+json"),
        ),
    )
    .await;
    assert_eq!(
        theirs.json()["reason"],
        serde_json::Value::Null,
        "{}",
        theirs.text()
    );
}

/// Issue 19 point 3 at this door: a warned browser navigation gets the
/// warning notice once (403 to the proxy, so the request is not forwarded;
/// nginx fetches it by reference and shows it as 200), then straight
/// through with the warning header; an API request never gets the notice.
#[tokio::test]
async fn a_warned_navigation_gets_the_notice_once_then_goes_through() {
    let (gate, _app) = world().await;
    let device = gate.pki.device("lt-fa-notice", "Org");
    assert_eq!(attest_through_nginx(&gate, &device, true).await.status, 200);
    let cert = escaped_pem(&device);
    let navigate = |accept: &str| {
        empty(
            nginx_authz("/office/report?y=1", Some(&cert))
                .header("x-original-method", "GET")
                .header("accept", accept)
                .header("accept-language", "en"),
        )
    };
    // An API request first: straight through, no notice spent.
    let api = ask(&gate, "127.0.0.1", navigate("application/json")).await;
    assert_eq!(api.status, 200, "{}", api.text());
    assert_eq!(header(&api, "x-posture-decision"), "warn");

    let first = ask(&gate, "127.0.0.1", navigate("text/html,*/*;q=0.8")).await;
    assert_eq!(first.status, 403, "the proxy must not forward this one");
    assert_eq!(header(&first, "x-posture-decision"), "warn");
    assert_eq!(header(&first, "x-posture-reason"), "warning_notice");
    assert!(first.text().contains("Please note"), "{}", first.text());
    assert!(
        first
            .text()
            .contains("<a class=\"button\" href=\"/office/report?y=1\">Continue</a>"),
        "{}",
        first.text()
    );
    // nginx's error_page asks for it by reference: the notice, as 200.
    let reference = header(&first, "x-posture-reference").to_string();
    let kept = ask(
        &gate,
        "127.0.0.1",
        empty(
            Request::get(format!("/.well-known/posture-gate/denied/{reference}"))
                .header("host", "public.test")
                .header("x-client-cert", &cert)
                .header("accept-language", "nl"),
        ),
    )
    .await;
    assert_eq!(kept.status, 200, "{}", kept.text());
    assert!(kept.text().contains("Verder</a>"), "{}", kept.text());

    // Continue: the same navigation again goes through with the header.
    let then = ask(&gate, "127.0.0.1", navigate("text/html,*/*;q=0.8")).await;
    assert_eq!(then.status, 200, "{}", then.text());
    assert!(header(&then, "posture-warning").contains("kaspersky"));
    // A POST is never held for a notice either (another device's first).
    let other = gate.pki.device("lt-fa-notice-2", "Org");
    assert_eq!(attest_through_nginx(&gate, &other, true).await.status, 200);
    let post = ask(
        &gate,
        "127.0.0.1",
        empty(
            nginx_authz("/office/form", Some(&escaped_pem(&other)))
                .header("x-original-method", "POST")
                .header("accept", "text/html"),
        ),
    )
    .await;
    assert_eq!(post.status, 200, "{}", post.text());
}
