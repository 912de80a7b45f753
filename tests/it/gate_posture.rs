//! The posture endpoints of spec section 4 over real sockets: challenge,
//! attest, the inline `Posture-Attestation` header, nonces and binding.

use crate::support as common;

use bytes::Bytes;
use common::upstream::{self, Upstream};
use common::{claims, post_token, request, upstream_header, Proto, RouteSpec, Settings, TestGate};
use http_body_util::Full;

async fn world() -> (TestGate, Upstream) {
    let public = upstream::start("public").await;
    let routes = [
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: public.url(),
            segment: "open",
        },
        RouteSpec {
            host: "finance.test",
            prefix: "/",
            upstream: public.url(),
            segment: "finance",
        },
    ];
    (TestGate::start(&routes, &Settings::default()).await, public)
}

#[tokio::test]
async fn a_challenge_is_a_nonce_with_an_rfc3339_expiry_within_five_minutes() {
    let (gate, _up) = world().await;
    let device = gate.pki.device("lt-101", "Org");
    let answer = gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/.well-known/posture-gate/challenge")
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/json");
    let body = answer.json();
    assert!(body["nonce"].as_str().unwrap().len() >= 32);
    let expires = time::OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::ZERO && left <= time::Duration::minutes(5),
        "{left}"
    );
}

#[tokio::test]
async fn the_endpoints_answer_on_every_host() {
    let (gate, _up) = world().await;
    let device = gate.pki.device("lt-102", "Org");
    for host in ["finance.test", "other.test"] {
        let answer = gate
            .client(Some(&device), Proto::H2)
            .get(host, "/.well-known/posture-gate/challenge")
            .await;
        assert_eq!(answer.status, 200, "{host}");
    }
    let token = gate.fresh_token(&device, false).await;
    let answer = post_token(&gate.client(Some(&device), Proto::H2), "other.test", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[tokio::test]
async fn a_valid_report_gives_the_verdict_and_is_remembered_for_the_certificate() {
    let (gate, _up) = world().await;
    let device = gate.pki.device("lt-103", "Org");
    assert_eq!(gate.handle.posture_count(), 0);
    let answer = gate.attest(&device, false).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let verdict = answer.json();
    assert_eq!(verdict["valid"], true);
    assert_eq!(
        verdict["device"]["fingerprint_sha256"],
        device.fingerprint()
    );
    assert_eq!(verdict["decisions"]["finance"], "allow");
    assert_eq!(gate.handle.posture_count(), 1);
    let through = gate
        .client(Some(&device), Proto::H1)
        .get("finance.test", "/")
        .await;
    assert_eq!(through.status, 200);
}

#[tokio::test]
async fn a_replayed_nonce_is_refused() {
    let (gate, _up) = world().await;
    let device = gate.pki.device("lt-104", "Org");
    let client = gate.client(Some(&device), Proto::H1);
    let token = gate.fresh_token(&device, false).await;
    assert_eq!(post_token(&client, "public.test", &token).await.status, 200);
    let again = post_token(&client, "public.test", &token).await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.json(),
        serde_json::json!({"valid": false, "reason": "nonce_replayed"})
    );
}

#[tokio::test]
async fn a_nonce_the_gate_did_not_issue_is_refused() {
    let (gate, _up) = world().await;
    let device = gate.pki.device("lt-105", "Org");
    let token = device.token(&claims(Some("made-up-nonce"), false));
    let answer = post_token(
        &gate.client(Some(&device), Proto::H1),
        "public.test",
        &token,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["reason"], "nonce_unknown");
}

#[tokio::test]
async fn another_devices_token_is_refused() {
    let (gate, _up) = world().await;
    let mine = gate.pki.device("lt-106", "Org");
    let theirs = gate.pki.device("lt-107", "Org");
    let stolen = gate.fresh_token(&theirs, false).await;
    let answer = post_token(&gate.client(Some(&mine), Proto::H1), "public.test", &stolen).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["reason"], "key_mismatch");
    assert_eq!(gate.handle.posture_count(), 0);

    // Inline, too: refused with a page, and never forwarded.
    let stolen = gate.fresh_token(&theirs, false).await;
    let req = request("GET", "public.test", "/", Proto::H1)
        .header("posture-attestation", stolen)
        .body(Full::default())
        .unwrap();
    let answer = gate.client(Some(&mine), Proto::H1).send(req).await;
    assert_eq!(answer.status, 403);
}

#[tokio::test]
async fn an_inline_attestation_is_verified_remembered_and_not_forwarded() {
    let (gate, _up) = world().await;
    let device = gate.pki.device("lt-108", "Org");
    for proto in [Proto::H1, Proto::H2] {
        let token = gate.fresh_token(&device, false).await;
        let req = request("GET", "public.test", "/inline", proto)
            .header("posture-attestation", token)
            .body(Full::default())
            .unwrap();
        let answer = gate.client(Some(&device), proto).send(req).await;
        assert_eq!(answer.status, 200, "{proto:?}: {}", answer.text());
        assert_eq!(upstream_header(&answer, "posture-attestation"), None);
    }
    let later = gate
        .client(Some(&device), Proto::H1)
        .get("public.test", "/")
        .await;
    assert_eq!(later.status, 200);
    assert_eq!(gate.handle.posture_count(), 1);
}

#[tokio::test]
async fn without_a_client_certificate_the_verdict_is_returned_but_not_remembered() {
    let (gate, _up) = world().await;
    let device = gate.pki.device("lt-109", "Org");
    let token = gate.fresh_token(&device, false).await;
    let answer = post_token(&gate.client(None, Proto::H1), "public.test", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json()["device"]["fingerprint_sha256"],
        device.fingerprint()
    );
    assert_eq!(gate.handle.posture_count(), 0);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413_and_a_wrong_type_415() {
    let (gate, _up) = world().await;
    let device = gate.pki.device("lt-110", "Org");
    for proto in [Proto::H1, Proto::H2] {
        let client = gate.client(Some(&device), proto);
        let big = Bytes::from(vec![b'a'; 1024 * 1024 + 1]);
        let req = request(
            "POST",
            "public.test",
            "/.well-known/posture-gate/attest",
            proto,
        )
        .header("content-type", "application/eat+jwt")
        .body(Full::new(big))
        .unwrap();
        assert_eq!(client.send(req).await.status, 413, "{proto:?}");
        let req = request(
            "POST",
            "public.test",
            "/.well-known/posture-gate/attest",
            proto,
        )
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
        assert_eq!(client.send(req).await.status, 415, "{proto:?}");
    }
    // At the limit, the token is read and judged on its content.
    let client = gate.client(Some(&device), Proto::H1);
    let at_limit = "a".repeat(1024 * 1024);
    let answer = post_token(&client, "public.test", &at_limit).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["valid"], false);
}

#[tokio::test]
async fn wrong_methods_on_the_endpoints_are_405() {
    let (gate, _up) = world().await;
    let client = gate.client(None, Proto::H1);
    let answer = client
        .get("public.test", "/.well-known/posture-gate/attest")
        .await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.headers["allow"], "POST");
    let req = request(
        "POST",
        "public.test",
        "/.well-known/posture-gate/challenge",
        Proto::H1,
    )
    .body(Full::default())
    .unwrap();
    assert_eq!(client.send(req).await.status, 405);
}

#[tokio::test]
async fn gates_sharing_a_nonce_secret_accept_each_others_nonces() {
    let (a, _up) = world().await;
    let (b, _up2) = world().await;
    let device_a = a.pki.device("lt-111", "Org");
    let nonce = common::challenge(&a.client(Some(&device_a), Proto::H1)).await;
    // Gate b has its own PKI; a device of b's CA redeems a's nonce there.
    let device_b = b.pki.device("lt-112", "Org");
    let token = device_b.token(&claims(Some(&nonce), false));
    let answer = post_token(&b.client(Some(&device_b), Proto::H1), "public.test", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}
