//! The TLS door over real sockets, with the development PKI of
//! `posture-gate pki init` (client CA = the device CA alone, as in
//! config/gate.toml and the demo): client certificates that are expired,
//! not yet valid, from another CA, without the clientAuth extended key
//! usage, or sent with too long a chain complete the handshake but get only
//! the page naming their problem (issue 19), never reach an upstream and
//! never get a posture; the server picks the cipher suite; the gate's pages
//! carry HSTS.

use crate::support as common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use posture_gate::gate::Gate;
use posture_testkit::pki::{DeviceCredentials, DeviceIssuer, DeviceSpec, Pki};
use posture_testkit::token::TokenBuilder;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider};
use rustls::{ClientConfig, RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{config_text, request, Client, Proto, RouteSpec, Settings};

const HOST: &str = "localhost";

/// An upstream that counts the connections it gets and answers each with
/// a small 200.
struct CountingUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingUpstream {
    async fn start() -> CountingUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        CountingUpstream {
            addr,
            connections,
            task,
        }
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Door {
    _dir: tempfile::TempDir,
    pki: Pki,
    addr: SocketAddr,
    handle: posture_gate::gate::GateHandle,
    upstream: CountingUpstream,
    _task: tokio::task::JoinHandle<Result<(), posture_gate::gate::GateError>>,
}

/// A gate with `pki init`'s files: server.pem from the root, client CA the
/// device CA plus `extra_client_cas`, one route for `localhost` to the
/// counting upstream, guarded by the policy that denies Kaspersky.
async fn start(extra_client_cas: &[CertificateDer<'static>]) -> Door {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate().unwrap();
    let paths = pki.write(&dir.path().join("pki")).unwrap();
    let mut client_ca = std::fs::read_to_string(&paths.device_ca_cert).unwrap();
    for ca in extra_client_cas {
        client_ca.push_str(&pem(ca));
    }
    std::fs::write(dir.path().join("client-ca.pem"), client_ca).unwrap();
    std::fs::write(dir.path().join("nonce.key"), [9u8; 32]).unwrap();
    let upstream = CountingUpstream::start().await;
    let routes = [RouteSpec {
        host: HOST,
        prefix: "/",
        upstream: format!("http://{}", upstream.addr),
        segment: "finance",
    }];
    let text = config_text(&routes, &Settings::default());
    let text = replace_once(&text, "cert = \"server.pem\"", "cert = \"pki/server.pem\"");
    let text = replace_once(&text, "key = \"server.key\"", "key = \"pki/server.key\"");
    let text = replace_once(
        &text,
        "client_ca = \"device-ca.pem\"",
        "client_ca = \"client-ca.pem\"",
    );
    let text = replace_once(
        &text,
        "trust_anchors = [\"device-ca.pem\"]",
        "trust_anchors = [\"client-ca.pem\"]",
    );
    let config = dir.path().join("gate.toml");
    std::fs::write(&config, text).unwrap();
    let gate = Gate::bind(config).await.unwrap_or_else(|e| panic!("{e}"));
    let addr = gate.local_addr();
    let handle = gate.handle();
    let task = tokio::spawn(gate.run());
    Door {
        _dir: dir,
        pki,
        addr,
        handle,
        upstream,
        _task: task,
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from} in the test config");
    text.replace(from, to)
}

fn pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn provider_with(suites: &[SupportedCipherSuite]) -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = default_provider();
    if !suites.is_empty() {
        p.cipher_suites = suites.to_vec();
    }
    Arc::new(p)
}

/// A client that trusts the dev root and presents `chain` with `key_pem`.
fn client_config(
    door: &Door,
    cert: Option<(Vec<CertificateDer<'static>>, &str)>,
    version: &'static SupportedProtocolVersion,
    suites: &[SupportedCipherSuite],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(door.pki.root_cert_der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider_with(suites))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        Some((chain, key_pem)) => builder
            .with_client_auth_cert(
                chain,
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn client(door: &Door, config: Arc<ClientConfig>) -> Client {
    Client {
        addr: door.addr,
        config,
        proto: Proto::H1,
    }
}

const VERSIONS: [&SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];

async fn nonce(door: &Door) -> String {
    let c = client(
        door,
        client_config(door, None, &rustls::version::TLS13, &[]),
    );
    challenge(&c).await
}

async fn challenge(c: &Client) -> String {
    let answer = c.get(HOST, "/.well-known/posture-gate/challenge").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["nonce"].as_str().unwrap().to_string()
}

fn token(creds: &DeviceCredentials, nonce: &str) -> String {
    TokenBuilder::new(creds)
        .with_claims(|c| c.eat_nonce = Some(nonce.to_owned()))
        .build()
        .unwrap()
}

/// Posts a fresh attestation and then asks for the app, over TLS 1.3 and
/// 1.2: the handshake completes (issue 19: a page, not a TLS alert), the
/// attestation is refused with the spec's `reason`, the app answers with
/// the page of `code` (problem+json), the challenge is still served; none
/// of it reaches the upstream or leaves a posture behind.
async fn assert_refused(
    door: &Door,
    what: &str,
    chain: Vec<CertificateDer<'static>>,
    key_pem: &str,
    attest_with: Option<&DeviceCredentials>,
    (code, reason): (&str, &str),
) {
    for version in VERSIONS {
        let config = client_config(door, Some((chain.clone(), key_pem)), version, &[]);
        let c = client(door, config);
        if let Some(creds) = attest_with {
            let body = token(creds, &nonce(door).await);
            let req = request("POST", HOST, "/.well-known/posture-gate/attest", Proto::H1)
                .header("content-type", "application/eat+jwt")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let got = tokio::time::timeout(Duration::from_secs(20), c.try_send(req))
                .await
                .expect("the gate answers in time")
                .unwrap_or_else(|e| panic!("{what} ({version:?}): attest: {e}"));
            assert_eq!(got.status, 400, "{what} ({version:?}): {}", got.text());
            assert_eq!(got.json()["reason"], reason, "{what} ({version:?})");
            assert_eq!(got.json()["valid"], false, "{what} ({version:?})");
        }
        let req = request("GET", HOST, "/", Proto::H1)
            .header("accept", "application/problem+json")
            .body(Full::<Bytes>::default())
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(20), c.try_send(req))
            .await
            .expect("the gate answers in time")
            .unwrap_or_else(|e| panic!("{what} ({version:?}): the handshake failed: {e}"));
        assert_eq!(got.status, 403, "{what} ({version:?}): {}", got.text());
        let slug = got.json()["type"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            slug,
            format!("urn:posture-gate:problem:{code}"),
            "{what} ({version:?}): {}",
            got.text()
        );
        let challenge = c.get(HOST, "/.well-known/posture-gate/challenge").await;
        assert_eq!(challenge.status, 200, "{what}: as without a certificate");
    }
    assert_eq!(door.upstream.count(), 0, "{what}: reached the upstream");
    assert_eq!(door.handle.posture_count(), 0, "{what}: got a posture");
}

const EXPIRED: (&str, &str) = ("certificate-expired", "cert_expired");
const UNTRUSTED: (&str, &str) = ("certificate-untrusted-chain", "untrusted_chain");

fn spec(name: &str) -> DeviceSpec {
    DeviceSpec::new(name, "Leverancier BV")
}

/// The control: a device of the device CA attests and reaches the app over
/// both versions, so the refusals below are about the certificate.
#[tokio::test]
async fn a_device_certificate_from_the_device_ca_gets_through() {
    let door = start(&[]).await;
    let creds = door
        .pki
        .issue_device("lt-1", "Leverancier BV", None)
        .unwrap();
    for version in VERSIONS {
        let c = client(
            &door,
            client_config(
                &door,
                Some((creds.chain.clone(), &creds.key_pem)),
                version,
                &[],
            ),
        );
        let body = token(&creds, &challenge(&c).await);
        let answer = common::post_token(&c, HOST, &body).await;
        assert_eq!(answer.status, 200, "{version:?}: {}", answer.text());
        let app = c.get(HOST, "/").await;
        assert_eq!(app.status, 200, "{version:?}: {}", app.text());
        assert_eq!(app.text(), "ok");
    }
    assert_eq!(door.upstream.count(), 2);
    // The counters the refusals are checked with do see a device.
    assert_eq!(door.handle.posture_count(), 1);
}

#[tokio::test]
async fn expired_and_not_yet_valid_client_certificates_are_refused() {
    let door = start(&[]).await;
    let now = OffsetDateTime::now_utc();
    let mut expired = spec("lt-expired");
    expired.not_before = now - time::Duration::days(30);
    expired.not_after = now - time::Duration::days(1);
    let mut future = spec("lt-future");
    future.not_before = now + time::Duration::days(1);
    future.not_after = now + time::Duration::days(30);
    for (what, s) in [("expired", expired), ("not yet valid", future)] {
        let creds = door.pki.issue_device_with(s).unwrap();
        assert_refused(
            &door,
            what,
            creds.chain.clone(),
            &creds.key_pem,
            Some(&creds),
            EXPIRED,
        )
        .await;
    }
}

#[tokio::test]
async fn client_certificates_from_another_ca_are_refused() {
    let door = start(&[]).await;
    let other = Pki::generate().unwrap();
    let foreign = other
        .issue_device("lt-foreign", "Leverancier BV", None)
        .unwrap();
    assert_refused(
        &door,
        "another PKI's device CA",
        foreign.chain.clone(),
        &foreign.key_pem,
        Some(&foreign),
        UNTRUSTED,
    )
    .await;

    // The gate's own root is not a client CA: it also issued the server
    // certificate.
    let mut by_root = spec("lt-root");
    by_root.issuer = DeviceIssuer::Root;
    let by_root = door.pki.issue_device_with(by_root).unwrap();
    let mut chain = by_root.chain.clone();
    chain.push(door.pki.root_cert_der().clone());
    assert_refused(
        &door,
        "issued by the root",
        chain,
        &by_root.key_pem,
        Some(&by_root),
        UNTRUSTED,
    )
    .await;

    let mut own = spec("lt-self");
    own.issuer = DeviceIssuer::SelfSigned;
    let own = door.pki.issue_device_with(own).unwrap();
    assert_refused(
        &door,
        "self-signed",
        own.chain.clone(),
        &own.key_pem,
        Some(&own),
        UNTRUSTED,
    )
    .await;
}

/// webpki accepts a leaf without an extended key usage extension; the gate
/// does not.
#[tokio::test]
async fn a_client_certificate_without_the_client_auth_eku_is_refused() {
    let door = start(&[]).await;
    let mut s = spec("lt-no-eku");
    s.client_auth_eku = false;
    let creds = door.pki.issue_device_with(s).unwrap();
    assert_refused(
        &door,
        "no EKU",
        creds.chain.clone(),
        &creds.key_pem,
        Some(&creds),
        ("certificate-wrong-usage", "untrusted_chain"),
    )
    .await;
}

/// A CA with no path length constraint, for chains of any length.
fn unconstrained_ca(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = true;
    p
}

/// A client CA and a leaf under `intermediates` CAs below it: the leaf's
/// chain as a client sends it (leaf first, the anchor left out), its key.
struct LongChain {
    anchor: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key_pem: String,
}

fn long_chain(intermediates: usize) -> LongChain {
    let anchor_key = KeyPair::generate().unwrap();
    let anchor_params = unconstrained_ca("deep test anchor");
    let anchor = anchor_params
        .self_signed(&anchor_key)
        .unwrap()
        .der()
        .clone();
    let mut issuer = Issuer::new(anchor_params, anchor_key);
    let mut cas = Vec::new();
    for i in 0..intermediates {
        let key = KeyPair::generate().unwrap();
        let params = unconstrained_ca(&format!("deep test intermediate {i}"));
        cas.push(params.signed_by(&key, &issuer).unwrap().der().clone());
        issuer = Issuer::new(params, key);
    }
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "lt-deep");
    leaf.distinguished_name
        .push(DnType::OrganizationName, "Leverancier BV");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.use_authority_key_identifier_extension = true;
    let mut chain = vec![leaf.signed_by(&key, &issuer).unwrap().der().clone()];
    chain.extend(cas.into_iter().rev());
    LongChain {
        anchor,
        chain,
        key_pem: key.serialize_pem(),
    }
}

/// The gate takes at most three intermediates (the spec's bound on `x5c`);
/// webpki alone would build paths through six.
#[tokio::test]
async fn a_client_chain_longer_than_three_intermediates_is_refused() {
    let ok = long_chain(3);
    let four = long_chain(4);
    let six = long_chain(6);
    let eight = long_chain(8);
    let door = start(&[
        ok.anchor.clone(),
        four.anchor.clone(),
        six.anchor.clone(),
        eight.anchor.clone(),
    ])
    .await;

    // Control: three intermediates under a client CA pass the door.
    for version in VERSIONS {
        let c = client(
            &door,
            client_config(&door, Some((ok.chain.clone(), &ok.key_pem)), version, &[]),
        );
        let answer = c
            .try_get(HOST, "/.well-known/posture-gate/challenge")
            .await
            .unwrap_or_else(|e| panic!("three intermediates ({version:?}): {e}"));
        assert_eq!(answer.status, 200);
    }

    for (what, deep) in [("four", &four), ("six", &six), ("eight", &eight)] {
        assert_refused(
            &door,
            &format!("{what} intermediates"),
            deep.chain.clone(),
            &deep.key_pem,
            None,
            UNTRUSTED,
        )
        .await;
    }
}

/// The server's order decides: a client that lists the suites weakest
/// first still gets the NCSC's first choice.
#[tokio::test]
async fn the_server_chooses_the_cipher_suite_in_ncsc_order() {
    let door = start(&[]).await;
    let cases: [(
        &SupportedProtocolVersion,
        Vec<SupportedCipherSuite>,
        SupportedCipherSuite,
    ); 4] = [
        (
            &rustls::version::TLS13,
            vec![
                cipher_suite::TLS13_AES_128_GCM_SHA256,
                cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                cipher_suite::TLS13_AES_256_GCM_SHA384,
            ],
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS13,
            vec![
                cipher_suite::TLS13_AES_128_GCM_SHA256,
                cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            ],
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (
            &rustls::version::TLS12,
            vec![
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS12,
            vec![
                cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ],
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ];
    for (version, offered, expected) in cases {
        let config = client_config(&door, None, version, &offered);
        let tls = common::client::connect(door.addr, HOST, config)
            .await
            .unwrap_or_else(|e| panic!("{version:?} {offered:?}: {e}"));
        let got = tls.get_ref().1.negotiated_cipher_suite();
        assert_eq!(
            got.map(|s| s.suite()),
            Some(expected.suite()),
            "{version:?}, client offered {offered:?}"
        );
    }
}

#[tokio::test]
async fn the_gates_own_pages_carry_hsts() {
    let door = start(&[]).await;
    let c = client(
        &door,
        client_config(&door, None, &rustls::version::TLS13, &[]),
    );
    for path in ["/", "/.well-known/posture-gate/challenge"] {
        let answer = c.get(HOST, path).await;
        assert_eq!(
            answer
                .headers
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some("max-age=31536000"),
            "{path}: {:?}",
            answer.headers
        );
    }
}
