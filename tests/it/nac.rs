//! The 802.1X decision API over real sockets, with FreeRADIUS played by a
//! plain HTTP client posting what `rlm_rest` posts (the real FreeRADIUS
//! and eapol_test are in `nac_freeradius`): the VLAN a posture allows,
//! quarantine and reject, who may ask, and accounting.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::support as common;
use common::client::Answer;
use common::pki::Device;
use common::upstream::{self, Upstream};
use common::{RouteSpec, Settings, TestGate};

const POST_AUTH: &str = "/.well-known/posture-gate/nac/post-auth";
const ACCOUNTING: &str = "/.well-known/posture-gate/nac/accounting";

/// finance (high, Kaspersky denied) on VLAN 100, office (low, warned) on
/// VLAN 200, open without a VLAN; quarantine 999 unless `quarantine` is
/// false.
async fn world(quarantine: bool) -> (TestGate, Upstream) {
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
        vlans: [Some(100), Some(200), None],
        extra: format!(
            "[nac]\nlisten = \"127.0.0.1:0\"\n{quarantine}\
             [[nac.radius]]\nname = \"radius-test\"\nfrom = [\"127.0.0.1\"]\n"
        ),
        ..Settings::default()
    };
    (TestGate::start(&routes, &settings).await, app)
}

/// What rlm_rest posts in post-auth after EAP-TLS with `device`'s
/// certificate (formats as recorded from FreeRADIUS 3.2.1,
/// tests/fixtures/nac).
pub(crate) fn post_auth_body(device: &Device, mac: &str) -> Value {
    let (_, leaf) = X509Certificate::from_der(device.cert_der.as_ref()).unwrap();
    let serial = hex::encode(leaf.serial.to_bytes_be());
    let issuer = posture_core::nac::oneline(leaf.issuer());
    let attr = |t: &str, v: Value| json!({"type": t, "value": [v]});
    json!({
        "User-Name": attr("string", json!("lt-nac")),
        "NAS-IP-Address": attr("ipaddr", json!("127.0.0.1")),
        "NAS-Port": attr("integer", json!(7)),
        "Calling-Station-Id": attr("string", json!(mac)),
        "NAS-Identifier": attr("string", json!("switch-1")),
        "NAS-Port-Type": attr("integer", json!("Ethernet")),
        "EAP-Type": attr("integer", json!("TLS")),
        "TLS-Client-Cert-Serial": attr("string", json!(serial)),
        "TLS-Client-Cert-Issuer": attr("string", json!(issuer)),
        "TLS-Client-Cert-Subject": attr("string", json!("/O=Org/CN=lt-nac")),
        "TLS-Client-Cert-Common-Name": attr("string", json!("lt-nac")),
    })
}

async fn post(gate: &TestGate, from: &str, path: &str, body: &Value) -> Answer {
    post_to(gate.nac_addr.unwrap(), from, path, body).await
}

/// What FreeRADIUS on `from` posts to the NAC listener at `to`.
pub(crate) async fn post_to(to: SocketAddr, from: &str, path: &str, body: &Value) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(to).await.unwrap();
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header("x-freeradius-section", "post-auth")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub(crate) fn value<'a>(reply: &'a Value, name: &str) -> &'a str {
    reply[name]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {reply}"))
}

#[tokio::test(flavor = "current_thread")]
async fn a_clean_device_gets_the_vlan_of_the_most_sensitive_segment_it_may_enter() {
    let (captured, _guard) = common::audit::capture();
    let (gate, _app) = world(true).await;
    let device = gate.pki.device("lt-nac-1", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let answer = post(
        &gate,
        "127.0.0.1",
        POST_AUTH,
        &post_auth_body(&device, "02-00-00-00-00-01"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reply = answer.json();
    assert_eq!(value(&reply, "Tunnel-Type"), "VLAN");
    assert_eq!(value(&reply, "Tunnel-Medium-Type"), "IEEE-802");
    assert_eq!(value(&reply, "Tunnel-Private-Group-Id"), "100");
    assert_eq!(reply["Reply-Message"]["do_xlat"], false);
    // The placement holds as long as the posture: the NAS asks again then.
    let timeout: i64 = value(&reply, "Session-Timeout").parse().unwrap();
    assert!((60..=15 * 60).contains(&timeout), "{timeout}");
    assert_eq!(value(&reply, "Termination-Action"), "RADIUS-Request");
    assert!(value(&reply, "Class").starts_with("posture-gate:1:"));
    let decision = captured.decisions().pop().expect("a decision event");
    assert_eq!(decision["enforcement"], "nac");
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["segment"], "finance");
    assert_eq!(decision["proxy"], "radius-test");
    assert_eq!(decision["route_host"], "switch-1");
    assert_eq!(
        decision["device"]["fingerprint_sha256"],
        device.fingerprint()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn kaspersky_is_placed_where_it_may_go_or_quarantined_and_an_unknown_device_too() {
    let (captured, _guard) = common::audit::capture();
    let (gate, _app) = world(true).await;
    // Kaspersky: finance denies it, office warns: office's VLAN.
    let device = gate.pki.device("lt-nac-2", "Org");
    assert_eq!(gate.attest(&device, true).await.status, 200);
    let answer = post(
        &gate,
        "127.0.0.1",
        POST_AUTH,
        &post_auth_body(&device, "02-00-00-00-00-02"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reply = answer.json();
    assert_eq!(value(&reply, "Tunnel-Private-Group-Id"), "200");
    assert!(value(&reply, "Reply-Message").contains("warning, reference PG-"));
    assert_eq!(captured.decisions().pop().unwrap()["decision"], "warn");

    // Never attested: quarantine, with a reference in the audit log.
    let stranger = gate.pki.device("lt-nac-3", "Org");
    let answer = post(
        &gate,
        "127.0.0.1",
        POST_AUTH,
        &post_auth_body(&stranger, "02-00-00-00-00-03"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reply = answer.json();
    assert_eq!(value(&reply, "Tunnel-Private-Group-Id"), "999");
    let message = value(&reply, "Reply-Message");
    assert!(message.contains("quarantined (no_posture)"), "{message}");
    let reference = message.rsplit(' ').next().unwrap();
    let decision = captured.decisions().pop().unwrap();
    assert_eq!(decision["reference"], reference);
    assert_eq!(decision["reason"], "no_posture");
    // A Class all the same: its sessions wait for its first attestation.
    assert!(value(&reply, "Class").starts_with("posture-gate:1:"));
}

#[tokio::test]
async fn without_a_quarantine_vlan_a_device_that_may_enter_nothing_is_rejected() {
    let app = upstream::start("app").await;
    let settings = Settings {
        vlans: [Some(100), None, None],
        extra: "[nac]\nlisten = \"127.0.0.1:0\"\n[[nac.radius]]\nname = \"r\"\nfrom = [\"127.0.0.1\"]\n".into(),
        ..Settings::default()
    };
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: app.url(),
        segment: "open",
    }];
    let gate = TestGate::start(&routes, &settings).await;
    let device = gate.pki.device("lt-nac-4", "Org");
    assert_eq!(gate.attest(&device, true).await.status, 200);
    let answer = post(
        &gate,
        "127.0.0.1",
        POST_AUTH,
        &post_auth_body(&device, "02-00-00-00-00-04"),
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert!(value(&answer.json(), "Reply-Message").contains("refused (prohibited)"));
}

#[tokio::test]
async fn a_certificate_of_an_unknown_issuer_or_a_body_that_is_not_rlm_rest_is_refused() {
    let (gate, _app) = world(true).await;
    let device = gate.pki.device("lt-nac-5", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let mut body = post_auth_body(&device, "02-00-00-00-00-05");
    body["TLS-Client-Cert-Issuer"]["value"][0] = json!("/CN=Some Other CA");
    let answer = post(&gate, "127.0.0.1", POST_AUTH, &body).await;
    assert_eq!(answer.status, 200);
    assert!(value(&answer.json(), "Reply-Message").contains("quarantined (cert_untrusted)"));
    let answer = post(&gate, "127.0.0.1", POST_AUTH, &json!(["not", "rlm_rest"])).await;
    assert_eq!(answer.status, 400);
}

#[tokio::test(flavor = "current_thread")]
async fn a_peer_that_is_no_configured_radius_server_is_refused_and_audited() {
    let (captured, _guard) = common::audit::capture();
    let (gate, _app) = world(true).await;
    let device = gate.pki.device("lt-nac-6", "Org");
    let answer = post(
        &gate,
        "127.0.0.2",
        POST_AUTH,
        &post_auth_body(&device, "02-00-00-00-00-06"),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert!(captured
        .audit_events()
        .iter()
        .any(|e| e["reason"] == "untrusted_proxy" && e["enforcement"] == "nac"));
    assert!(captured.decisions().is_empty());
}

#[tokio::test]
async fn accounting_with_the_gates_class_is_taken_and_anything_else_ignored() {
    let (gate, _app) = world(true).await;
    let device = gate.pki.device("lt-nac-7", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let answer = post(
        &gate,
        "127.0.0.1",
        POST_AUTH,
        &post_auth_body(&device, "02-00-00-00-00-07"),
    )
    .await;
    let class = value(&answer.json(), "Class").to_string();
    let attr = |t: &str, v: Value| json!({"type": t, "value": [v]});
    let start = json!({
        "User-Name": attr("string", json!("lt-nac")),
        "NAS-IP-Address": attr("ipaddr", json!("127.0.0.1")),
        "Calling-Station-Id": attr("string", json!("02-00-00-00-00-07")),
        "Acct-Status-Type": attr("integer", json!("Start")),
        "Acct-Session-Id": attr("string", json!("5E1A0001")),
        "Class": attr("octets", json!(format!("0x{}", hex::encode(&class)))),
    });
    let answer = post(&gate, "127.0.0.1", ACCOUNTING, &start).await;
    assert_eq!(answer.status, 204, "{}", answer.text());
    let mut other = start.clone();
    other["Class"] = attr("octets", json!("0x6f74686572"));
    assert_eq!(
        post(&gate, "127.0.0.1", ACCOUNTING, &other).await.status,
        204
    );
}

/// A NAS stand-in for CoA: a UDP socket that reads one request, checks it
/// with the shared secret, and answers ACK.
pub(crate) struct NasStandIn {
    pub socket: tokio::net::UdpSocket,
    pub secret: Vec<u8>,
}

impl NasStandIn {
    pub async fn next(&self) -> posture_gate::radius::packet::Request {
        use posture_gate::radius::packet::{decode_request, encode_response, ResponseKind};
        let mut buf = vec![0u8; 4096];
        let (n, from) = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.socket.recv_from(&mut buf),
        )
        .await
        .expect("a CoA request reaches the NAS")
        .unwrap();
        let request =
            decode_request(&buf[..n], &self.secret).expect("signed with the NAS's secret");
        let answer = encode_response(&request, ResponseKind::Ack, &[], &self.secret).unwrap();
        self.socket.send_to(&answer, from).await.unwrap();
        request
    }
}

pub(crate) fn attribute(
    request: &posture_gate::radius::packet::Request,
    kind: u8,
) -> Option<Vec<u8>> {
    request
        .attributes()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v.to_vec())
}

async fn world_with_nas(change: &str) -> (TestGate, Upstream, NasStandIn, tempfile::TempDir) {
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
             [[nac.radius]]\nname = \"radius-test\"\nfrom = [\"127.0.0.1\"]\n\
             [[nac.nas]]\nname = \"switch-1\"\naddress = \"127.0.0.1\"\ncoa_port = {port}\n\
             secret_file = {:?}\nchange = \"{change}\"\n",
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
    let nas = NasStandIn {
        socket,
        secret: b"s3cret-of-the-switch-1".to_vec(),
    };
    (gate, app, nas, secrets)
}

/// Post-auth and accounting Start for `device` at the NAS, as FreeRADIUS
/// would forward them; the VLAN it was given.
async fn connect_at_nas(gate: &TestGate, device: &Device, mac: &str, session: &str) -> String {
    connect_at(gate.nac_addr.unwrap(), device, mac, session).await
}

/// [`connect_at_nas`] through the NAC listener at `to`.
pub(crate) async fn connect_at(
    to: SocketAddr,
    device: &Device,
    mac: &str,
    session: &str,
) -> String {
    let answer = post_to(to, "127.0.0.1", POST_AUTH, &post_auth_body(device, mac)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reply = answer.json();
    let class = value(&reply, "Class").to_string();
    let attr = |t: &str, v: Value| json!({"type": t, "value": [v]});
    let start = json!({
        "User-Name": attr("string", json!("lt-nac")),
        "NAS-IP-Address": attr("ipaddr", json!("127.0.0.1")),
        "NAS-Port": attr("integer", json!(7)),
        "Calling-Station-Id": attr("string", json!(mac)),
        "Acct-Status-Type": attr("integer", json!("Start")),
        "Acct-Session-Id": attr("string", json!(session)),
        "Class": attr("octets", json!(format!("0x{}", hex::encode(&class)))),
    });
    assert_eq!(
        post_to(to, "127.0.0.1", ACCOUNTING, &start).await.status,
        204
    );
    value(&reply, "Tunnel-Private-Group-Id").to_string()
}

#[tokio::test(flavor = "current_thread")]
async fn an_attestation_that_changes_the_vlan_sends_the_nas_a_coa_with_the_new_one() {
    use posture_gate::radius::packet::{attr, RequestCode};
    let (captured, _guard) = common::audit::capture();
    let (gate, _app, nas, _secrets) = world_with_nas("coa").await;
    let device = gate.pki.device("lt-nac-8", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    assert_eq!(
        connect_at_nas(&gate, &device, "02-00-00-00-00-08", "5E1A0008").await,
        "100"
    );

    // Kaspersky reported: finance is out, office (VLAN 200) is still in.
    assert_eq!(gate.attest(&device, true).await.status, 200);
    let coa = nas.next().await;
    assert_eq!(coa.code(), RequestCode::Coa);
    assert_eq!(
        attribute(&coa, attr::TUNNEL_PRIVATE_GROUP_ID).unwrap(),
        b"\x00200"
    );
    assert_eq!(attribute(&coa, attr::ACCT_SESSION_ID).unwrap(), b"5E1A0008");
    assert_eq!(
        attribute(&coa, attr::CALLING_STATION_ID).unwrap(),
        b"02-00-00-00-00-08"
    );
    assert_eq!(
        attribute(&coa, attr::NAS_IP_ADDRESS).unwrap(),
        [127, 0, 0, 1]
    );

    // Clean again: back to finance's VLAN.
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let coa = nas.next().await;
    assert_eq!(
        attribute(&coa, attr::TUNNEL_PRIVATE_GROUP_ID).unwrap(),
        b"\x00100"
    );

    // Each one audited with its result, once the ACK is in.
    let changes = || {
        captured
            .audit_events()
            .into_iter()
            .filter(|e| e["event"] == "change")
            .collect::<Vec<_>>()
    };
    for _ in 0..100 {
        if changes().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let changes = changes();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert_eq!(changes[0]["result"], "ack");
    assert_eq!(changes[0]["nas"], "switch-1");
    assert_eq!(changes[0]["vlan_before"], 100);
    assert_eq!(changes[0]["vlan_after"], 200);
    assert_eq!(changes[1]["vlan_before"], 200);
    assert_eq!(changes[1]["vlan_after"], 100);
    assert_eq!(
        changes[1]["device"]["fingerprint_sha256"],
        device.fingerprint()
    );

    // An attestation that changes nothing sends nothing.
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let mut buf = [0u8; 64];
    let quiet = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        nas.socket.recv_from(&mut buf),
    )
    .await;
    assert!(quiet.is_err(), "a CoA for an unchanged VLAN");
}

#[tokio::test]
async fn a_nas_set_to_disconnect_gets_a_disconnect_request_and_a_stop_ends_the_session() {
    use posture_gate::radius::packet::{attr, RequestCode};
    let (gate, _app, nas, _secrets) = world_with_nas("disconnect").await;
    let device = gate.pki.device("lt-nac-9", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    connect_at_nas(&gate, &device, "02-00-00-00-00-09", "5E1A0009").await;
    assert_eq!(gate.attest(&device, true).await.status, 200);
    let request = nas.next().await;
    assert_eq!(request.code(), RequestCode::Disconnect);
    assert!(attribute(&request, attr::TUNNEL_PRIVATE_GROUP_ID).is_none());
    assert_eq!(
        attribute(&request, attr::ACCT_SESSION_ID).unwrap(),
        b"5E1A0009"
    );

    // The NAS reports the session's end: the next change has no one to tell.
    let attr_of = |t: &str, v: Value| json!({"type": t, "value": [v]});
    let class = format!("posture-gate:1:{}", device.fingerprint());
    let stop = json!({
        "NAS-IP-Address": attr_of("ipaddr", json!("127.0.0.1")),
        "Calling-Station-Id": attr_of("string", json!("02-00-00-00-00-09")),
        "Acct-Status-Type": attr_of("integer", json!("Stop")),
        "Acct-Session-Id": attr_of("string", json!("5E1A0009")),
        "Class": attr_of("octets", json!(format!("0x{}", hex::encode(&class)))),
    });
    assert_eq!(
        post(&gate, "127.0.0.1", ACCOUNTING, &stop).await.status,
        204
    );
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let mut buf = [0u8; 64];
    let quiet = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        nas.socket.recv_from(&mut buf),
    )
    .await;
    assert!(quiet.is_err(), "a request for a session that ended");
}

#[tokio::test]
async fn a_device_quarantined_before_it_ever_attested_is_moved_once_it_attests_clean() {
    use posture_gate::radius::packet::attr;
    let (gate, _app, nas, _secrets) = world_with_nas("coa").await;
    let device = gate.pki.device("lt-nac-10", "Org");
    // Unknown to the gate: quarantined, with a Class all the same, so its
    // accounting is taken.
    assert_eq!(
        connect_at_nas(&gate, &device, "02-00-00-00-00-10", "5E1A0010").await,
        "999"
    );
    assert_eq!(gate.attest(&device, false).await.status, 200);
    let coa = nas.next().await;
    assert_eq!(
        attribute(&coa, attr::TUNNEL_PRIVATE_GROUP_ID).unwrap(),
        b"\x00100"
    );
    assert_eq!(attribute(&coa, attr::ACCT_SESSION_ID).unwrap(), b"5E1A0010");
}

#[tokio::test]
async fn a_placement_whose_session_cannot_be_recorded_is_no_more_than_quarantine() {
    let (gate, _app) = world(true).await;
    let device = gate.pki.device("lt-nac-11", "Org");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    // Without a NAS address no CoA could ever reach the session.
    let mut body = post_auth_body(&device, "02-00-00-00-00-11");
    body.as_object_mut().unwrap().remove("NAS-IP-Address");
    let answer = post(&gate, "127.0.0.1", POST_AUTH, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let reply = answer.json();
    assert_eq!(value(&reply, "Tunnel-Private-Group-Id"), "999");
    assert!(value(&reply, "Reply-Message").contains("session not recorded"));
    assert!(reply.get("Session-Timeout").is_none());
}
