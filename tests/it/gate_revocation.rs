//! Revocation after the handshake, over real sockets: a device revoked by a
//! CRL while its connection is open is refused on that same connection
//! (HTTP/1.1 keep-alive and HTTP/2), and cannot attest again on it.

use crate::support as common;

use common::conn::Conn;
use common::upstream::{self, Upstream};
use common::{config_text, Proto, RouteSpec, Settings, TestGate};

fn routes(up: &Upstream) -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            host: "finance.test",
            prefix: "/",
            upstream: up.url(),
            segment: "finance",
        },
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: up.url(),
            segment: "open",
        },
    ]
}

/// Rewrites the config with a CRL revoking `revoked` and reloads.
async fn revoke(gate: &TestGate, up: &Upstream, revoked: &[&common::Device]) {
    let crl = gate.pki.crl(revoked, "devices.crl.pem");
    let settings = Settings {
        crls: vec![crl],
        ..Settings::default()
    };
    std::fs::write(&gate.config, config_text(&routes(up), &settings)).unwrap();
    gate.handle.reload_now().await.unwrap();
}

async fn revoked_on_an_open_connection(proto: Proto) {
    let up = upstream::start("app").await;
    let gate = TestGate::start(&routes(&up), &Settings::default()).await;
    let device = gate.pki.device("lt-601", "Org");
    let other = gate.pki.device("lt-602", "Org");
    for d in [&device, &other] {
        assert_eq!(gate.attest(d, false).await.status, 200);
    }
    // A token with a fresh nonce, made before the revocation.
    let token = gate.fresh_token(&device, false).await;

    let mut conn = Conn::open(&gate, &device, proto, "finance.test").await;
    let before = conn.get("finance.test", "/").await;
    assert_eq!(before.status, 200, "{}", before.text());

    revoke(&gate, &up, &[&device]).await;

    let after = conn.get("finance.test", "/").await;
    assert_eq!(
        after.status,
        403,
        "a revoked device keeps no access on its open connection: {}",
        after.text()
    );
    assert!(
        after.text().contains("niet meer aanvaard"),
        "the page says the certificate is refused: {}",
        after.text()
    );
    // Nor on a segment without rules: revocation is about who, not what.
    assert_eq!(conn.get("public.test", "/").await.status, 403);

    let again = conn.post_token("finance.test", &token).await;
    assert_eq!(again.status, 400, "{}", again.text());
    assert_eq!(again.json()["reason"], "untrusted_chain");

    // The device that was not revoked is served as before.
    let kept = gate
        .client(Some(&other), proto)
        .get("finance.test", "/")
        .await;
    assert_eq!(kept.status, 200, "{}", kept.text());
}

#[tokio::test]
async fn a_device_revoked_after_connecting_is_refused_on_its_keep_alive_connection() {
    revoked_on_an_open_connection(Proto::H1).await;
}

#[tokio::test]
async fn a_device_revoked_after_connecting_is_refused_on_its_http2_connection() {
    revoked_on_an_open_connection(Proto::H2).await;
}

/// The `x5c` chain of a token is checked against the CRLs as well: a
/// revoked device cannot attest through a connection without a client
/// certificate either.
#[tokio::test]
async fn a_token_whose_x5c_leaf_is_revoked_is_an_untrusted_chain() {
    let up = upstream::start("app").await;
    let gate = TestGate::start(&routes(&up), &Settings::default()).await;
    let device = gate.pki.device("lt-603", "Org");
    let token = gate.fresh_token(&device, false).await;
    revoke(&gate, &up, &[&device]).await;
    let answer = common::post_token(&gate.client(None, Proto::H1), "public.test", &token).await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.json()["reason"], "untrusted_chain");
}
