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
fn post_auth_body(device: &Device, mac: &str) -> Value {
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
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(gate.nac_addr.unwrap()).await.unwrap();
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

fn value<'a>(reply: &'a Value, name: &str) -> &'a str {
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
    assert!(reply.get("Class").is_none());
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
        .any(|e| e["reason"] == "untrusted_proxy"));
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
