//! 802.1X through the real FreeRADIUS 3.2 (Debian's `freeradius` and
//! `freeradius-rest`), started by each test in the foreground with a raddb
//! generated from `config/freeradius/`, and the real supplicant
//! `eapol_test` with a device certificate of the test PKI.
//!
//! `site_*`: what the example site does with each kind of answer on the
//! NAC URL, with a scripted stand-in there (not the gate): the answer's
//! VLAN, Reply-Message and Class reach the Access-Accept; a 401, a gate
//! that refuses connections or does not answer, and an accept without a
//! VLAN all end in an Access-Reject with an EAP-Failure and without keys;
//! the commented quarantine alternative puts a device in the quarantine
//! VLAN only when the gate cannot be reached; accounting reaches the NAC
//! URL with the Class the NAS echoes.
//!
//! `gate_*`: the same chain with the real gate on the NAC URL, devices
//! attesting first at the gate's TLS front: a clean device gets the VLAN
//! of the most sensitive segment, and its NAS's accounting with the
//! Access-Accept's Class is taken; a Kaspersky device gets the quarantine
//! VLAN, or a reject without one; a device that never attested gets the
//! quarantine VLAN; with the gate stopped FreeRADIUS rejects; over mutual
//! TLS (the rest module's example `tls` section) the gate knows FreeRADIUS
//! by its certificate's name, and one with another name gets rejects.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::freeradius::{
    Accounting, Eapol, EapolOutcome, FreeRadius, RadiusSetup, RestTls, StandIn, StandInAnswer,
};
use crate::support::upstream::{self, Upstream};
use crate::support::{Device, RouteSpec, Settings, TestGate, TestPki};

const POST_AUTH: &str = "/.well-known/posture-gate/nac/post-auth";
const ACCOUNTING: &str = "/.well-known/posture-gate/nac/accounting";

fn json_answer(status: u16, body: &str) -> StandInAnswer {
    StandInAnswer {
        status,
        content_type: "application/json",
        body: body.to_owned(),
    }
}

const ALLOWED: &str = r#"{"Tunnel-Type":"VLAN","Tunnel-Medium-Type":"IEEE-802","Tunnel-Private-Group-Id":"42","Reply-Message":"posture-gate: allowed PG-ABCD-EFGH","Class":"posture-gate:tok123"}"#;
const REFUSED: &str = r#"{"Reply-Message":"posture-gate: denied PG-WXYZ-1234"}"#;

struct Site {
    _dir: tempfile::TempDir,
    pki: TestPki,
    device: Device,
    radius: FreeRadius,
}

impl Site {
    fn start(nac_url: &str, quarantine_on_failure: Option<u16>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path());
        let device = pki.device("lt-1", "Org");
        let mut setup = RadiusSetup::new(nac_url, dir.path());
        setup.quarantine_on_failure = quarantine_on_failure;
        let radius = FreeRadius::start(&setup);
        Site {
            _dir: dir,
            pki,
            device,
            radius,
        }
    }

    async fn authenticate(&self) -> EapolOutcome {
        Eapol::new(
            "lt-1",
            &self.device.cert_path,
            &self.device.key_path,
            &self.pki.ca_path(),
        )
        .run(&self.radius)
        .await
    }

    fn explain(&self, outcome: &EapolOutcome) -> String {
        format!(
            "eapol_test:\n{}\nfreeradius:\n{}",
            outcome.output,
            self.radius.log()
        )
    }
}

/// A reject as the site must send it: EAP-Failure, no keys, no VLAN.
fn assert_clean_reject(site: &Site, outcome: &EapolOutcome) {
    assert!(outcome.rejected(), "{}", site.explain(outcome));
    assert_eq!(outcome.eap_code(), Some(4), "{}", site.explain(outcome));
    assert!(!outcome.has_mppe_keys(), "{}", site.explain(outcome));
    assert_eq!(outcome.vlan(), None, "{}", site.explain(outcome));
}

fn value<'a>(body: &'a Value, attribute: &str) -> &'a Value {
    &body[attribute]["value"][0]
}

#[tokio::test]
async fn site_accept_carries_the_answers_vlan_reply_message_and_class() {
    let stand_in = StandIn::start(json_answer(200, ALLOWED)).await;
    let site = Site::start(&stand_in.url(), None);
    let outcome = site.authenticate().await;
    assert!(outcome.accepted(), "{}", site.explain(&outcome));
    assert_eq!(outcome.tunnel_type(), Some(13), "VLAN");
    assert_eq!(outcome.tunnel_medium_type(), Some(6), "IEEE-802");
    assert_eq!(outcome.vlan().as_deref(), Some("42"));
    assert_eq!(
        outcome.reply_message().as_deref(),
        Some("posture-gate: allowed PG-ABCD-EFGH")
    );
    assert_eq!(
        outcome.class().as_deref(),
        Some(&b"posture-gate:tok123"[..])
    );
    assert_eq!(outcome.eap_code(), Some(3));

    // One post-auth, after the handshake, naming the certificate.
    let received = stand_in.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].path, POST_AUTH);
    assert_eq!(received[0].headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(site.device.cert_der.as_ref()).unwrap();
    let serial = hex::encode(cert.raw_serial())
        .trim_start_matches("00")
        .to_owned();
    assert_eq!(value(&body, "TLS-Client-Cert-Serial"), serial.as_str());
    assert_eq!(
        value(&body, "TLS-Client-Cert-Issuer"),
        "/O=posture-gate development/CN=posture-gate development device CA"
    );
    assert_eq!(value(&body, "TLS-Client-Cert-Common-Name"), "lt-1");
    assert_eq!(value(&body, "User-Name"), "lt-1");
    assert_eq!(value(&body, "Calling-Station-Id"), "02-00-00-00-00-01");
    assert_eq!(value(&body, "NAS-Port"), 7);
    assert_eq!(value(&body, "NAS-Identifier"), "switch-1");
    assert_eq!(body["NAS-IP-Address"]["type"], "ipaddr");
}

#[tokio::test]
async fn site_401_rejects_with_eap_failure_and_without_keys() {
    let stand_in = StandIn::start(json_answer(401, REFUSED)).await;
    let site = Site::start(&stand_in.url(), None);
    let outcome = site.authenticate().await;
    assert_clean_reject(&site, &outcome);
    assert_eq!(stand_in.received().len(), 1);
}

#[tokio::test]
async fn site_rejects_when_the_gate_refuses_connections() {
    let stand_in = StandIn::start(json_answer(200, ALLOWED)).await;
    let site = Site::start(&stand_in.url(), None);
    stand_in.stop();
    let outcome = site.authenticate().await;
    assert_clean_reject(&site, &outcome);
    assert!(site.radius.log().contains("Couldn't connect"));
}

#[tokio::test]
async fn site_rejects_when_the_gate_does_not_answer() {
    // Accepts connections and never answers: the module's 2 s timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let site = Site::start(&url, None);
    let outcome = tokio::time::timeout(Duration::from_secs(20), site.authenticate())
        .await
        .unwrap();
    hold.abort();
    assert_clean_reject(&site, &outcome);
    assert!(site.radius.log().contains("Timeout was reached"));
}

#[tokio::test]
async fn site_rejects_an_accept_that_names_no_vlan() {
    let stand_in = StandIn::start(json_answer(204, "")).await;
    let site = Site::start(&stand_in.url(), None);
    let outcome = site.authenticate().await;
    assert_clean_reject(&site, &outcome);

    stand_in.answer(json_answer(200, r#"{"Reply-Message":"no vlan"}"#));
    let outcome = site.authenticate().await;
    assert_clean_reject(&site, &outcome);

    // Not JSON at all (something else on the gate's port).
    stand_in.answer(StandInAnswer {
        status: 200,
        content_type: "text/html",
        body: "<html>hello</html>".into(),
    });
    let outcome = site.authenticate().await;
    assert_clean_reject(&site, &outcome);
    assert_eq!(stand_in.received().len(), 3);
}

#[tokio::test]
async fn site_quarantine_alternative_only_when_the_gate_cannot_be_reached() {
    let stand_in = StandIn::start(json_answer(401, REFUSED)).await;
    let site = Site::start(&stand_in.url(), Some(999));
    // The gate's own refusal still rejects.
    let outcome = site.authenticate().await;
    assert_clean_reject(&site, &outcome);

    // The gate's answer still decides when there is one.
    stand_in.answer(json_answer(200, ALLOWED));
    let outcome = site.authenticate().await;
    assert!(outcome.accepted(), "{}", site.explain(&outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("42"));

    stand_in.stop();
    let outcome = site.authenticate().await;
    assert!(outcome.accepted(), "{}", site.explain(&outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("999"));
    assert_eq!(outcome.tunnel_type(), Some(13));
    assert_eq!(
        outcome.reply_message().as_deref(),
        Some("posture-gate unreachable: quarantine")
    );
}

#[tokio::test]
async fn site_accounting_reaches_the_gate_with_the_echoed_class() {
    let stand_in = StandIn::start(json_answer(204, "")).await;
    let site = Site::start(&stand_in.url(), None);
    let mut request = Accounting {
        status: "Start",
        session_id: "5E1A0001".into(),
        nas_ip: "127.0.0.1".into(),
        nas_port: 7,
        calling_station_id: "02-00-00-00-00-01".into(),
        user_name: "lt-1".into(),
        class: Some(b"posture-gate:tok123".to_vec()),
    };
    let (answered, output) = request.send(&site.radius).await;
    assert!(answered, "{output}\n{}", site.radius.log());
    request.status = "Stop";
    let (answered, output) = request.send(&site.radius).await;
    assert!(answered, "{output}");

    let received = stand_in.received();
    assert_eq!(received.len(), 2);
    let statuses: Vec<Value> = received
        .iter()
        .map(|r| {
            assert_eq!(r.path, ACCOUNTING);
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            // octets travel hex-encoded
            assert_eq!(
                value(&body, "Class"),
                format!("0x{}", hex::encode("posture-gate:tok123")).as_str()
            );
            assert_eq!(value(&body, "Acct-Session-Id"), "5E1A0001");
            value(&body, "Acct-Status-Type").clone()
        })
        .collect();
    assert_eq!(statuses, ["Start", "Stop"]);

    // Without the gate no Accounting-Response: the NAS keeps retrying.
    stand_in.stop();
    let (answered, output) = request.send(&site.radius).await;
    assert!(!answered, "{output}");
}

/// The fixtures under tests/fixtures/nac are what this FreeRADIUS sends:
/// a fresh post-auth body has the same attribute names and types.
#[tokio::test]
async fn site_post_auth_body_has_the_recorded_fixtures_shape() {
    let stand_in = StandIn::start(json_answer(200, ALLOWED)).await;
    let site = Site::start(&stand_in.url(), None);
    let outcome = site.authenticate().await;
    assert!(outcome.accepted(), "{}", site.explain(&outcome));
    let fresh: Value = serde_json::from_slice(&stand_in.received()[0].body).unwrap();
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/nac/post-auth.json")).unwrap();
    let shape = |v: &Value| -> Vec<(String, String)> {
        let mut s: Vec<(String, String)> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["type"].as_str().unwrap_or_default().to_owned()))
            .collect();
        s.sort();
        s
    };
    assert_eq!(shape(&fresh), shape(&fixture));
}

/// finance (high, Kaspersky denied) on VLAN 100; office (low, Kaspersky
/// warned) on `office_vlan`; open without a VLAN; quarantine 999 when
/// `quarantine`.
async fn gate_world(office_vlan: Option<u16>, quarantine: bool) -> (TestGate, Upstream) {
    let app = upstream::start("app").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: app.url(),
        segment: "open",
    }];
    let quarantine = if quarantine {
        "quarantine_vlan = 999\n"
    } else {
        ""
    };
    let settings = Settings {
        vlans: [Some(100), office_vlan, None],
        extra: format!(
            "[nac]\nlisten = \"127.0.0.1:0\"\n{quarantine}\
             [[nac.radius]]\nname = \"freeradius\"\nfrom = [\"127.0.0.1\"]\n"
        ),
        ..Settings::default()
    };
    (TestGate::start(&routes, &settings).await, app)
}

/// FreeRADIUS from the example files, asking `gate`, with the gate's PKI
/// (its server certificate, and the root the device CA hangs off).
fn radius_for(gate: &TestGate) -> FreeRadius {
    let nac = gate.nac_addr.expect("the gate has a [nac] listener");
    FreeRadius::start(&RadiusSetup::new(format!("http://{nac}"), gate.dir.path()))
}

async fn authenticate(gate: &TestGate, radius: &FreeRadius, device: &Device) -> EapolOutcome {
    authenticate_trusting(&gate.pki.ca_path(), radius, device).await
}

async fn authenticate_trusting(ca: &Path, radius: &FreeRadius, device: &Device) -> EapolOutcome {
    Eapol::new("lt-1", &device.cert_path, &device.key_path, ca)
        .run(radius)
        .await
}

fn explain(radius: &FreeRadius, outcome: &EapolOutcome) -> String {
    format!(
        "eapol_test:\n{}\nfreeradius:\n{}",
        outcome.output,
        radius.log()
    )
}

fn assert_rejected(radius: &FreeRadius, outcome: &EapolOutcome) {
    assert!(outcome.rejected(), "{}", explain(radius, outcome));
    assert_eq!(outcome.eap_code(), Some(4), "{}", explain(radius, outcome));
    assert!(!outcome.has_mppe_keys(), "{}", explain(radius, outcome));
    assert_eq!(outcome.vlan(), None, "{}", explain(radius, outcome));
}

#[tokio::test]
async fn gate_clean_device_gets_the_sensitive_vlan_and_its_accounting_is_taken() {
    let (gate, _app) = gate_world(Some(200), true).await;
    let radius = radius_for(&gate);
    let device = gate.pki.device("lt-1", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);

    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("100"));
    assert_eq!(outcome.tunnel_type(), Some(13));
    assert_eq!(outcome.tunnel_medium_type(), Some(6));
    assert_eq!(
        outcome.reply_message().as_deref(),
        Some("posture-gate: allowed to finance")
    );
    let class = outcome.class().expect("a Class in the Access-Accept");
    assert!(class.starts_with(b"posture-gate:"), "{class:?}");

    // The NAS echoes the Class in accounting; FreeRADIUS answers the NAS
    // only when the gate took it (a failed rest call gives no answer).
    let mut accounting = Accounting {
        status: "Start",
        session_id: "5E1A0001".into(),
        nas_ip: "127.0.0.1".into(),
        nas_port: 7,
        calling_station_id: "02-00-00-00-00-01".into(),
        user_name: "lt-1".into(),
        class: Some(class),
    };
    for status in ["Start", "Interim-Update", "Stop"] {
        accounting.status = status;
        let (answered, output) = accounting.send(&radius).await;
        assert!(answered, "{status}: {output}\n{}", radius.log());
    }
}

#[tokio::test]
async fn gate_kaspersky_device_gets_the_quarantine_vlan() {
    // Kaspersky may enter no segment with a VLAN (finance denies it).
    let (gate, _app) = gate_world(None, true).await;
    let radius = radius_for(&gate);
    let device = gate.pki.device("lt-1", "Org");
    assert_eq!(gate.attest(&device, true).await.status, 200);
    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("999"));
    assert_eq!(outcome.tunnel_type(), Some(13));
    let message = outcome.reply_message().unwrap_or_default();
    assert!(
        message.starts_with("posture-gate: quarantined"),
        "{message}"
    );
}

#[tokio::test]
async fn gate_kaspersky_device_is_rejected_without_a_quarantine_vlan() {
    let (gate, _app) = gate_world(None, false).await;
    let radius = radius_for(&gate);
    let device = gate.pki.device("lt-1", "Org");
    assert_eq!(gate.attest(&device, true).await.status, 200);
    let outcome = authenticate(&gate, &radius, &device).await;
    assert_rejected(&radius, &outcome);
    assert!(radius.log().contains("Status : 401"), "{}", radius.log());
}

#[tokio::test]
async fn gate_device_that_never_attested_gets_the_quarantine_vlan() {
    let (gate, _app) = gate_world(Some(200), true).await;
    let radius = radius_for(&gate);
    let device = gate.pki.device("lt-1", "Org");
    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("999"));
    let message = outcome.reply_message().unwrap_or_default();
    assert!(message.contains("quarantined (no_posture)"), "{message}");

    // Once it has attested, the next authentication places it.
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("100"));
}

#[tokio::test]
async fn gate_stopped_freeradius_rejects() {
    let (gate, _app) = gate_world(Some(200), true).await;
    let radius = radius_for(&gate);
    let device = gate.pki.device("lt-1", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    // First with the gate: FreeRADIUS now holds a kept-alive connection.
    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));

    let ca = gate.pki.ca_path();
    gate.handle.shutdown();
    tokio::time::timeout(Duration::from_secs(20), gate.task)
        .await
        .expect("the gate stops")
        .unwrap()
        .unwrap();
    let outcome = authenticate_trusting(&ca, &radius, &device).await;
    assert_rejected(&radius, &outcome);
    assert!(
        radius.log().contains("Couldn't connect"),
        "{}",
        radius.log()
    );
}

/// A CA for the NAC listener's mutual TLS: the listener's certificate for
/// 127.0.0.1 and a client certificate per name, as PEM files in `dir`
/// (`nac-ca.pem`, `nac.pem`/`nac.key`, `<name>.pem`/`<name>.key`).
fn nac_tls_pki(dir: &Path, names: &[&str]) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "RADIUS CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca, &ca_key);
    std::fs::write(dir.join("nac-ca.pem"), ca_cert.pem()).unwrap();
    let leaf = |file: &str, name: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    };
    leaf("nac", "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth);
    for name in names {
        leaf(name, name, ExtendedKeyUsagePurpose::ClientAuth);
    }
}

#[tokio::test]
async fn gate_over_mutual_tls_knows_freeradius_by_its_certificate_name() {
    let tls_dir = tempfile::tempdir().unwrap();
    nac_tls_pki(tls_dir.path(), &["radius.test", "intruder.test"]);
    let file = |f: &str| tls_dir.path().join(f);
    let app = upstream::start("app").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: app.url(),
        segment: "open",
    }];
    let settings = Settings {
        vlans: [Some(100), Some(200), None],
        extra: format!(
            "[nac]\nlisten = \"127.0.0.1:0\"\nquarantine_vlan = 999\n\
             tls_certificate = {:?}\ntls_key = {:?}\nradius_ca = {:?}\n\
             [[nac.radius]]\nname = \"freeradius\"\ncertificate_name = \"radius.test\"\n",
            file("nac.pem").display().to_string(),
            file("nac.key").display().to_string(),
            file("nac-ca.pem").display().to_string(),
        ),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes, &settings).await;
    let device = gate.pki.device("lt-1", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let radius_as = |name: &str| {
        let mut setup = RadiusSetup::new(
            format!("https://{}", gate.nac_addr.unwrap()),
            gate.dir.path(),
        );
        setup.rest_tls = Some(RestTls {
            ca: file("nac-ca.pem"),
            cert: file(&format!("{name}.pem")),
            key: file(&format!("{name}.key")),
        });
        FreeRadius::start(&setup)
    };

    let radius = radius_as("radius.test");
    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("100"));

    // Same CA, a name the gate does not list: no decision, a reject.
    let intruder = radius_as("intruder.test");
    let outcome = authenticate(&gate, &intruder, &device).await;
    assert_rejected(&intruder, &outcome);
    // Refused by the gate (the TLS handshake itself succeeded).
    assert!(
        intruder.log().contains("Status : 403"),
        "{}",
        intruder.log()
    );
}

/// [`gate_world`] with office on VLAN 200 and one NAS (`switch-1` at
/// 127.0.0.1) whose CoA port is a socket of the test.
async fn gate_world_with_nas() -> (
    TestGate,
    Upstream,
    crate::nac::NasStandIn,
    tempfile::TempDir,
) {
    let app = upstream::start("app").await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("switch-1.secret");
    std::fs::write(&secret_file, b"s3cret-of-the-switch-1\n").unwrap();
    let settings = Settings {
        vlans: [Some(100), Some(200), None],
        extra: format!(
            "[nac]\nlisten = \"127.0.0.1:0\"\nquarantine_vlan = 999\n\
             [[nac.radius]]\nname = \"freeradius\"\nfrom = [\"127.0.0.1\"]\n\
             [[nac.nas]]\nname = \"switch-1\"\naddress = \"127.0.0.1\"\ncoa_port = {port}\n\
             secret_file = {:?}\n",
            secret_file.display().to_string()
        ),
        ..Settings::default()
    };
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: app.url(),
        segment: "open",
    }];
    let gate = TestGate::start(&routes, &settings).await;
    let nas = crate::nac::NasStandIn {
        socket,
        secret: b"s3cret-of-the-switch-1".to_vec(),
    };
    (gate, app, nas, secrets)
}

fn start_of(session: &str, class: Option<Vec<u8>>) -> Accounting {
    Accounting {
        status: "Start",
        session_id: session.into(),
        nas_ip: "127.0.0.1".into(),
        nas_port: 7,
        calling_station_id: "02-00-00-00-00-01".into(),
        user_name: "lt-1".into(),
        class,
    }
}

#[tokio::test]
async fn gate_attested_device_is_moved_by_coa_after_kaspersky_and_back() {
    use posture_gate::radius::packet::attr;
    let (gate, _app, nas, _secrets) = gate_world_with_nas().await;
    let radius = radius_for(&gate);
    let device = gate.pki.device("lt-1", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);

    // Through the real FreeRADIUS: the accept, and the NAS's accounting
    // Start with the accept's Class (rlm_rest sends it hex-encoded).
    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("100"));
    let (answered, output) = start_of("5E1A0101", outcome.class()).send(&radius).await;
    assert!(answered, "{output}");

    // Kaspersky: finance is out, office (200) still in; the CoA names the
    // session FreeRADIUS reported.
    assert_eq!(gate.attest(&device, true).await.status, 200);
    let coa = nas.next().await;
    let get = |kind| crate::nac::attribute(&coa, kind).unwrap_or_default();
    assert_eq!(get(attr::TUNNEL_PRIVATE_GROUP_ID), b"\x00200");
    assert_eq!(get(attr::ACCT_SESSION_ID), b"5E1A0101");
    assert_eq!(get(attr::CALLING_STATION_ID), b"02-00-00-00-00-01");
    assert_eq!(get(attr::NAS_IP_ADDRESS), [127, 0, 0, 1]);
    // The device's next authentication lands where the CoA put it.
    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("200"));

    // Clean again: back to finance.
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let coa = nas.next().await;
    assert_eq!(
        crate::nac::attribute(&coa, attr::TUNNEL_PRIVATE_GROUP_ID).unwrap_or_default(),
        b"\x00100"
    );
}
#[tokio::test]
async fn gate_quarantined_device_is_moved_by_coa_once_it_attests_clean() {
    use posture_gate::radius::packet::attr;
    let (gate, _app, nas, _secrets) = gate_world_with_nas().await;
    let radius = radius_for(&gate);
    let device = gate.pki.device("lt-1", "Org");

    let outcome = authenticate(&gate, &radius, &device).await;
    assert!(outcome.accepted(), "{}", explain(&radius, &outcome));
    assert_eq!(outcome.vlan().as_deref(), Some("999"));
    let (answered, output) = start_of("5E1A0201", outcome.class()).send(&radius).await;
    assert!(answered, "{output}");

    assert_eq!(gate.attest(&device, false).await.status, 200);
    let coa = nas.next().await;
    assert_eq!(
        crate::nac::attribute(&coa, attr::TUNNEL_PRIVATE_GROUP_ID).unwrap(),
        b"\x00100"
    );
    assert_eq!(
        crate::nac::attribute(&coa, attr::ACCT_SESSION_ID).unwrap(),
        b"5E1A0201"
    );
}
