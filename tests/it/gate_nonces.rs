//! The used-nonce memory under pressure, over real sockets: it never
//! forgets a live nonce to make room. When it is full, challenges are
//! refused with 503 and Retry-After, and an attestation whose nonce cannot
//! be recorded is refused, so no nonce is ever accepted twice.

use crate::support as common;

use common::upstream;
use common::{config_text, post_token, Proto, RouteSpec, Settings, TestGate};
use posture_gate::gate::Gate;

/// A gate whose used-nonce memory holds 4 nonces (4 x a posture cache of 1).
async fn small_gate(routes: &[RouteSpec]) -> TestGate {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let pki = common::TestPki::new(dir.path());
    std::fs::write(dir.path().join("nonce.key"), [7u8; 32]).unwrap();
    let config = dir.path().join("gate.toml");
    let text = config_text(routes, &Settings::default()).replace(
        "[attestation]\n",
        "[attestation]\nposture_cache_capacity = 1\n",
    );
    std::fs::write(&config, text).unwrap();
    let gate = Gate::bind(config.clone()).await.unwrap();
    let addr = gate.local_addr();
    let handle = gate.handle();
    let task = tokio::spawn(gate.run());
    TestGate {
        dir,
        pki,
        config,
        addr,
        forward_addr: None,
        nac_addr: None,
        handle,
        task,
    }
}

#[tokio::test]
async fn a_full_nonce_memory_refuses_rather_than_forgets() {
    let up = upstream::start("app").await;
    let gate = small_gate(&[RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }])
    .await;
    let device = gate.pki.device("lt-1101", "Org");
    let client = gate.client(Some(&device), Proto::H1);
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(gate.fresh_token(&device, false).await);
    }
    for token in &tokens[..4] {
        let answer = post_token(&client, "public.test", token).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    for token in &tokens[4..] {
        let answer = post_token(&client, "public.test", token).await;
        assert_eq!(
            answer.status,
            503,
            "a nonce that cannot be recorded is not accepted: {}",
            answer.text()
        );
        let retry: u64 = answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&retry), "{retry}");
    }
    // However hard it is pushed, no nonce is accepted a second time.
    for round in 0..3 {
        for (i, token) in tokens.iter().enumerate() {
            let answer = post_token(&client, "public.test", token).await;
            assert_ne!(
                answer.status, 200,
                "round {round}: nonce {i} accepted twice"
            );
            if i < 4 {
                assert_eq!(answer.status, 400);
                assert_eq!(answer.json()["reason"], "nonce_replayed");
            }
        }
    }
    let refused = client
        .get("public.test", "/.well-known/posture-gate/challenge")
        .await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.headers.contains_key("retry-after"));
}

/// An inline token (`Posture-Attestation` on an ordinary request) whose nonce
/// cannot be recorded is refused as the gate's own trouble: 503 "cannot be
/// checked right now", not a 403 telling the device its report is bad.
#[tokio::test]
async fn an_inline_token_whose_nonce_cannot_be_recorded_gets_503_not_403() {
    let up = upstream::start("app").await;
    let gate = small_gate(&[RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }])
    .await;
    let device = gate.pki.device("lt-1102", "Org");
    let client = gate.client(Some(&device), Proto::H1);
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(gate.fresh_token(&device, false).await);
    }
    for token in &tokens[..4] {
        assert_eq!(post_token(&client, "public.test", token).await.status, 200);
    }
    let req = common::request("GET", "public.test", "/", Proto::H1)
        .header("accept", "application/problem+json")
        .header("posture-attestation", tokens[4].as_str())
        .body(http_body_util::Full::default())
        .unwrap();
    let answer = client.send(req).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(
        answer.json()["type"],
        "urn:posture-gate:problem:store-unavailable"
    );
}
