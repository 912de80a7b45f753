//! Every answer to `attest` (200 with a verdict, 400 with a reason) carries
//! `X-Posture-Reference`, the reference of its audit event, so the agent
//! can print it and the service desk can find the line (issue 19).

use crate::support as common;

use common::upstream;
use common::{post_token, Proto, RouteSpec, Settings, TestGate};

// Current-thread: the audit capture sees every task of the gate.
#[tokio::test(flavor = "current_thread")]
async fn attest_answers_carry_the_reference_of_their_audit_event() {
    let (captured, _guard) = common::audit::capture();
    let up = upstream::start("public").await;
    let routes = [RouteSpec {
        host: "public.test",
        prefix: "/",
        upstream: up.url(),
        segment: "open",
    }];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    let device = gate.pki.device("lt-ref", "Leverancier BV");

    let accepted = gate.attest(&device, true).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let refused = post_token(
        &gate.client(Some(&device), Proto::H1),
        "public.test",
        "not.a.token",
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["reason"], "malformed");

    let reference = |a: &common::Answer| {
        a.headers
            .get("x-posture-reference")
            .expect("X-Posture-Reference on the attest answer")
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (ok_ref, refused_ref) = (reference(&accepted), reference(&refused));
    for r in [&ok_ref, &refused_ref] {
        assert!(
            r.len() == 12 && r.starts_with("PG-") && r.as_bytes()[7] == b'-',
            "{r}"
        );
    }
    assert_ne!(ok_ref, refused_ref);

    let events = captured.audit_events();
    let attestations: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "attestation")
        .collect();
    assert_eq!(attestations.len(), 2, "{events:#?}");
    assert_eq!(attestations[0]["valid"], true);
    assert_eq!(attestations[0]["reference"], ok_ref.as_str());
    assert_eq!(attestations[1]["valid"], false);
    assert_eq!(attestations[1]["reason"], "malformed");
    assert_eq!(attestations[1]["reference"], refused_ref.as_str());
}
