//! Issue 19 point 2 over real sockets: a client certificate that fails
//! verification (expired, not yet valid, another CA, no clientAuth EKU,
//! revoked) completes the handshake and gets a page naming its problem, in
//! Dutch and English, as HTML and problem+json; the connection has no
//! identity at all (no upstream request, no posture, not even with a valid
//! token in the header or a posture attested before), gets the limits of a
//! peer without a certificate, and is audited once with what the
//! certificate says about itself. With the real `curl` (a page, not
//! `curl: (35)`) and `openssl s_client` (the handshake completes).

use crate::audit_log::{audit_table, lines, routes, Counting};
use crate::support as common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use posture_gate::pki::{DeviceIssuer, DeviceSpec};
use serde_json::Value;
use time::OffsetDateTime;

use common::{
    claims, config_text, request, Answer, Client, Device, Proto, Settings, TestGate, TestPki,
};

const BOUND: Duration = Duration::from_secs(20);
/// The open segment: any device with a posture gets in, so a refusal
/// there is about the certificate alone.
const HOST: &str = "public.test";

fn spec(name: &str) -> DeviceSpec {
    DeviceSpec::new(name, "Leverancier BV")
}

/// The bad certificates of this test, with the code and problem type each
/// must get and the spec reason an attestation on it gets.
struct Bad {
    what: &'static str,
    device: Device,
    code: &'static str,
    slug: &'static str,
    reason: &'static str,
    /// Words the English page must contain about this problem.
    en: &'static str,
    nl: &'static str,
}

fn bad_devices(pki: &TestPki, other: &TestPki) -> Vec<Bad> {
    let now = OffsetDateTime::now_utc();
    let mut expired = spec("lt-expired");
    expired.not_before = now - time::Duration::days(30);
    expired.not_after = now - time::Duration::days(1);
    let mut future = spec("lt-future");
    future.not_before = now + time::Duration::days(2);
    future.not_after = now + time::Duration::days(30);
    let mut no_eku = spec("lt-no-eku");
    no_eku.client_auth_eku = false;
    let mut own = spec("lt-selfmade");
    own.issuer = DeviceIssuer::SelfSigned;
    vec![
        Bad {
            what: "expired",
            device: pki.device_from(expired),
            code: "cert_expired",
            slug: "certificate-expired",
            reason: "cert_expired",
            en: "Your device's certificate has expired",
            nl: "Het certificaat van uw apparaat is verlopen",
        },
        Bad {
            what: "not yet valid",
            device: pki.device_from(future),
            code: "cert_expired",
            slug: "certificate-expired",
            reason: "cert_expired",
            en: "check that this device's date and time are correct",
            nl: "Controleer of de datum en tijd van dit apparaat kloppen",
        },
        Bad {
            what: "self-signed",
            device: pki.device_from(own),
            code: "untrusted_chain",
            slug: "certificate-untrusted-chain",
            reason: "untrusted_chain",
            en: "which this access check does not accept; it accepts certificates from",
            nl: "deze toegangscontrole aanvaardt dat niet. Ze aanvaardt certificaten van",
        },
        Bad {
            what: "another PKI's device CA",
            device: other.device("lt-foreign", "Elders BV"),
            code: "untrusted_chain",
            slug: "certificate-untrusted-chain",
            reason: "untrusted_chain",
            en: "is not from an issuer accepted here",
            nl: "komt niet van een uitgever die hier wordt aanvaard",
        },
        Bad {
            what: "no clientAuth EKU",
            device: pki.device_from(no_eku),
            code: "cert_wrong_usage",
            slug: "certificate-wrong-usage",
            reason: "untrusted_chain",
            en: "This certificate is not meant for devices",
            nl: "Dit certificaat is niet bedoeld voor apparaten",
        },
    ]
}

async fn page(c: &Client, accept: &str, lang: &str) -> Answer {
    let req = request("GET", HOST, "/", c.proto)
        .header("accept", accept)
        .header("accept-language", lang)
        .body(Full::<Bytes>::default())
        .unwrap();
    tokio::time::timeout(BOUND, c.try_send(req))
        .await
        .expect("answered in time")
        .unwrap_or_else(|e| panic!("the handshake completes and the gate answers: {e}"))
}

/// The HTML as text, tags and entities aside, for `contains` checks.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    let out = out.replace("&#39;", "'");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn every_bad_certificate_gets_its_page_in_both_languages_and_nothing_else() {
    let up = Counting::start().await;
    let settings = Settings {
        extra: audit_table("audit.jsonl", ""),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = TestPki::new(other_dir.path());
    let good = gate.pki.device("lt-good", "Leverancier BV");
    let ca_subject = {
        let (_, ca) = x509_parser::parse_x509_certificate(gate.pki.device_ca_cert_der().as_ref())
            .expect("the device CA parses");
        ca.subject().to_string()
    };
    let bads = bad_devices(&gate.pki, &other);
    // The test client opens a connection per request: counted, for the
    // audit lines (one per connection).
    let mut connections = std::collections::HashMap::new();
    for bad in &bads {
        // Two pages per language, the inline token, the challenge, the
        // attestation: six requests per protocol.
        connections.insert(bad.device.fingerprint(), 2 * 6);
        for proto in [Proto::H1, Proto::H2] {
            let what = format!("{} ({proto:?})", bad.what);
            let c = gate.client(Some(&bad.device), proto);

            let json = page(&c, "application/problem+json", "en").await;
            assert_eq!(json.status, 403, "{what}: {}", json.text());
            let doc: Value = json.json();
            assert_eq!(
                doc["type"],
                format!("urn:posture-gate:problem:{}", bad.slug),
                "{what}: {doc}"
            );
            assert_eq!(doc["status"], 403, "{what}");
            assert!(
                json.headers.contains_key("x-posture-reference"),
                "{what}: the page has a reference"
            );

            for (lang, words) in [("en", bad.en), ("nl", bad.nl)] {
                let html = page(&c, "text/html", lang).await;
                assert_eq!(html.status, 403, "{what} {lang}");
                assert_eq!(
                    html.headers
                        .get("x-posture-reason")
                        .and_then(|v| v.to_str().ok()),
                    Some(bad.code),
                    "{what} {lang}: the code in a header too"
                );
                let text = text_of(&html.text());
                assert!(
                    text.to_lowercase().contains(&words.to_lowercase()),
                    "{what} {lang}: {words:?} in:\n{text}"
                );
                assert!(
                    text.contains(&format!("Code: {}", bad.code)),
                    "{what}: {text}"
                );
                assert!(
                    text.contains(&bad.device.fingerprint()),
                    "{what}: the fingerprint is shown: {text}"
                );
                assert!(text.contains("CN=lt-"), "{what}: the subject is shown");
                // Whom to ask: the CA this gate accepts, by name.
                assert!(text.contains(&ca_subject), "{what}: {ca_subject} in {text}");
            }

            // A valid device's fresh token in the header changes nothing:
            // without an identity no token is even read.
            let token = gate.fresh_token(&good, false).await;
            let req = request("GET", HOST, "/", proto)
                .header("accept", "application/problem+json")
                .header("posture-attestation", token)
                .body(Full::<Bytes>::default())
                .unwrap();
            let inline = c.send(req).await;
            assert_eq!(inline.status, 403, "{what}: {}", inline.text());
            assert_eq!(
                inline.json()["type"],
                format!("urn:posture-gate:problem:{}", bad.slug)
            );

            // A token signed with this very certificate's key is refused
            // with the spec's code, and nothing is remembered.
            let nonce = common::challenge(&c).await;
            let own = bad.device.token(&claims(Some(&nonce), false));
            let attest = common::post_token(&c, HOST, &own).await;
            assert_eq!(attest.status, 400, "{what}: {}", attest.text());
            assert_eq!(attest.json()["valid"], false, "{what}");
            assert_eq!(attest.json()["reason"], bad.reason, "{what}");
        }
    }
    assert_eq!(up.count(), 0, "no request reached the upstream");
    assert_eq!(gate.handle.posture_count(), 0, "no posture was stored");

    // The control: the same steps with a valid device do get through.
    assert_eq!(gate.attest(&good, false).await.status, 200);
    let ok = gate.client(Some(&good), Proto::H1).get(HOST, "/").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(up.count(), 1);

    // One `tls_refused` line per bad certificate and address a minute
    // (each device opened several connections from 127.0.0.1: the rest
    // are counted, not written), with what it says about itself.
    let all = lines(&gate, "audit.jsonl").await;
    let refused: Vec<&Value> = all.iter().filter(|l| l["event"] == "tls_refused").collect();
    assert_eq!(refused.len(), bads.len(), "{refused:#?}");
    assert!(connections.values().all(|&n| n > 1));
    for bad in &bads {
        let fingerprint = bad.device.fingerprint();
        let mine: Vec<&&Value> = refused
            .iter()
            .filter(|l| l["fingerprint_sha256"] == fingerprint.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{}", bad.what);
        let (_, cert) = x509_parser::parse_x509_certificate(bad.device.cert_der.as_ref()).unwrap();
        for line in mine {
            assert_eq!(line["code"], bad.code, "{line}");
            assert_eq!(line["subject"], cert.subject().to_string(), "{line}");
            assert_eq!(line["issuer"], cert.issuer().to_string(), "{line}");
            assert_eq!(line["serial"], hex::encode(cert.raw_serial()), "{line}");
            assert!(line["source"].as_str().unwrap().starts_with("127.0.0.1:"));
        }
    }
    // Its requests' decisions name the code and no device.
    for d in all.iter().filter(|l| l["event"] == "decision") {
        if d["decision"] == "deny" {
            assert!(d.get("device").is_none(), "{d}");
        }
    }
}

/// A device attested while its certificate was good; the CRL then revokes
/// it. A new connection completes the handshake and gets the `cert_revoked`
/// page (before issue 19: a TLS alert), and the remembered posture does
/// not open the door.
#[tokio::test]
async fn a_revoked_certificate_gets_the_revoked_page_despite_its_posture() {
    let up = Counting::start().await;
    let gate = TestGate::start(&routes(&up.url()), &Settings::default()).await;
    let device = gate.pki.device("lt-revoked", "Leverancier BV");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let before = gate.client(Some(&device), Proto::H1).get(HOST, "/").await;
    assert_eq!(before.status, 200, "{}", before.text());
    assert_eq!(up.count(), 1);
    assert_eq!(gate.handle.posture_count(), 1);

    let crl = gate.pki.crl(&[&device], "devices.crl.pem");
    let settings = Settings {
        crls: vec![crl],
        ..Settings::default()
    };
    std::fs::write(&gate.config, config_text(&routes(&up.url()), &settings)).unwrap();
    gate.handle.reload_now().await.expect("the CRL loads");
    for proto in [Proto::H1, Proto::H2] {
        let c = gate.client(Some(&device), proto);
        let json = page(&c, "application/problem+json", "nl").await;
        assert_eq!(json.status, 403, "{}", json.text());
        assert_eq!(
            json.json()["type"],
            "urn:posture-gate:problem:certificate-refused"
        );
        let html = text_of(&page(&c, "text/html", "en").await.text());
        assert!(
            html.contains("Your device's certificate has been revoked"),
            "{html}"
        );
        assert!(html.contains("Code: cert_revoked"), "{html}");
        let html = text_of(&page(&c, "text/html", "nl").await.text());
        assert!(
            html.contains("Het certificaat van uw apparaat is ingetrokken"),
            "{html}"
        );
        let nonce = common::challenge(&c).await;
        let token = device.token(&claims(Some(&nonce), false));
        let attest = common::post_token(&c, HOST, &token).await;
        assert_eq!(attest.status, 400, "{}", attest.text());
        assert_eq!(attest.json()["reason"], "untrusted_chain");
    }
    assert_eq!(up.count(), 1, "nothing more reached the upstream");
}

/// A peer with a bad certificate gets the HTTP/2 limits of a peer without
/// one (`max_streams_without_certificate`), not a device's.
#[tokio::test]
async fn a_bad_certificate_gets_the_limits_of_no_certificate() {
    let up = Counting::start().await;
    let settings = Settings {
        server_extra: "max_streams_without_certificate = 3\n".into(),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let now = OffsetDateTime::now_utc();
    let mut expired = spec("lt-expired");
    expired.not_before = now - time::Duration::days(30);
    expired.not_after = now - time::Duration::days(1);
    let expired = gate.pki.device_from(expired);
    let good = gate.pki.device("lt-good", "Leverancier BV");
    let streams = |device| {
        let config = common::client::tls_config(&gate.pki.ca_der, device, Proto::H2);
        let addr = gate.addr;
        async move {
            let tls = common::client::connect(addr, HOST, config).await.unwrap();
            let (_send, mut connection) = h2::client::handshake(tls).await.unwrap();
            // The server's SETTINGS arrive with the first exchange.
            let _ = tokio::time::timeout(Duration::from_millis(300), &mut connection).await;
            connection.max_concurrent_send_streams()
        }
    };
    assert_eq!(streams(None).await, 3, "no certificate");
    assert_eq!(streams(Some(&expired)).await, 3, "an expired certificate");
    assert!(streams(Some(&good)).await > 3, "a device's");
}

/// The real curl: the page instead of `curl: (35)`, exit 0.
#[tokio::test]
async fn curl_with_an_expired_certificate_reads_the_page() {
    let up = Counting::start().await;
    let gate = TestGate::start(&routes(&up.url()), &Settings::default()).await;
    let now = OffsetDateTime::now_utc();
    let mut expired = spec("lt-expired");
    expired.not_before = now - time::Duration::days(30);
    expired.not_after = now - time::Duration::days(1);
    let expired = gate.pki.device_from(expired);
    let port = gate.addr.port();
    let out = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
        .arg(gate.pki.ca_path())
        .arg("--resolve")
        .arg(format!("{HOST}:{port}:127.0.0.1"))
        .arg("--cert")
        .arg(&expired.cert_path)
        .arg("--key")
        .arg(&expired.key_path)
        .args(["-H", "Accept-Language: en", "--write-out", "\n%{http_code}"])
        .arg(format!("https://{HOST}:{port}/"))
        .output()
        .await
        .expect("curl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with("\n403"), "{stdout}");
    let text = text_of(&stdout);
    assert!(
        text.contains("Your device's certificate has expired"),
        "{text}"
    );
    assert!(text.contains("Code: cert_expired"), "{text}");
    assert_eq!(up.count(), 0);
}

/// `openssl s_client` with an expired certificate: the handshake completes
/// and a request gets the gate's 403.
#[tokio::test]
async fn openssl_s_client_completes_the_handshake_with_an_expired_certificate() {
    let up = Counting::start().await;
    let gate = TestGate::start(&routes(&up.url()), &Settings::default()).await;
    let now = OffsetDateTime::now_utc();
    let mut expired = spec("lt-expired");
    expired.not_before = now - time::Duration::days(30);
    expired.not_after = now - time::Duration::days(1);
    let expired = gate.pki.device_from(expired);
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(gate.addr.to_string())
        .args(["-servername", HOST, "-CAfile"])
        .arg(gate.pki.ca_path())
        .arg("-cert")
        .arg(&expired.cert_path)
        .arg("-key")
        .arg(&expired.key_path)
        .args(["-ign_eof", "-alpn", "http/1.1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(
                format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nAccept-Language: en\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
    }
    let out = tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .expect("openssl finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("Verify return code: 0 (ok)"),
        "the gate's certificate verifies: {stdout}\n{stderr}"
    );
    assert!(!stderr.contains("alert"), "no TLS alert: {stderr}");
    assert!(stdout.contains("HTTP/1.1 403"), "{stdout}");
    assert!(text_of(&stdout).contains("Your device's certificate has expired"));
    assert!(stdout.contains("Code: cert_expired"), "{stdout}");
    assert_eq!(up.count(), 0);
}

/// The subject is the sender's own words: escaped on the page, and a bad
/// certificate's attestations are under the no-certificate budget
/// (`attest_without_certificate_per_minute`), checked before the body.
#[tokio::test]
async fn a_bad_certificates_words_are_escaped_and_its_attestations_rate_limited() {
    let up = Counting::start().await;
    let settings = Settings {
        server_extra: "attest_without_certificate_per_minute = 2\n".into(),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let mut hostile = DeviceSpec::new("<script>alert(1)</script>", "Elders BV");
    hostile.issuer = DeviceIssuer::SelfSigned;
    let hostile = gate.pki.device_from(hostile);
    let c = gate.client(Some(&hostile), Proto::H1);
    let html = page(&c, "text/html", "en").await;
    assert_eq!(html.status, 403);
    let body = html.text();
    assert!(!body.contains("<script>alert(1)"), "{body}");
    assert!(body.contains("&#60;script&#62;alert(1)"), "{body}");

    let nonce = common::challenge(&c).await;
    let token = hostile.token(&claims(Some(&nonce), false));
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..3 {
            s.push(common::post_token(&c, HOST, &token).await.status.as_u16());
        }
        s
    };
    assert_eq!(statuses, [400, 400, 429], "the third is over the budget");
    assert_eq!(up.count(), 0);
    assert_eq!(gate.handle.posture_count(), 0);
}
