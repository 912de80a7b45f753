//! Interoperability with an independent JWS implementation (`jsonwebtoken`):
//! tokens the agent makes verify there, and tokens made there pass the real
//! gate. ES256 and EdDSA, both ways.

use crate::support as agent_common;
use posture_testkit as common;

use agent_common::{agent, clean_root, s, AgentGate};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use posture_testkit::pki::{DeviceCredentials, DeviceKeyType};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A key built only from the `x5c` leaf, the way a third party would: the
/// EC point's x and y, or the Ed25519 public key, as JWK components.
fn decoding_key_from_leaf(header: &Header) -> DecodingKey {
    let chain = header.x5c_der().unwrap().expect("x5c");
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let point = leaf.public_key().subject_public_key.data.as_ref();
    match header.alg {
        Algorithm::ES256 => {
            // SEC1 uncompressed point: 0x04 || x || y, 32 bytes each.
            assert_eq!(point.len(), 65);
            assert_eq!(point[0], 4);
            DecodingKey::from_ec_components(
                &URL_SAFE_NO_PAD.encode(&point[1..33]),
                &URL_SAFE_NO_PAD.encode(&point[33..]),
            )
            .unwrap()
        }
        Algorithm::EdDSA => {
            assert_eq!(point.len(), 32);
            DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(point)).unwrap()
        }
        other => panic!("unexpected alg {other:?}"),
    }
}

/// Checks signature and header shape only; the gate judges time and nonce.
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    v
}

async fn agent_token_verifies_with_jsonwebtoken(key: DeviceKeyType, alg: Algorithm) {
    let gate = AgentGate::start().await;
    let (_, device) = gate.device("lt-jws", key);
    let root = clean_root(gate.dir.path());
    let run = agent(&[
        "token",
        "--cert",
        s(&device.cert),
        "--key",
        s(&device.key),
        "--nonce",
        "nonce-from-the-gate",
        "--root",
        s(&root),
    ])
    .await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let token = run.stdout.trim();

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    assert_eq!(header.typ.as_deref(), Some("eat+jwt"));
    assert_eq!(header.x5c.as_ref().map(Vec::len), Some(2));
    assert!(header.kid.is_none() && header.jku.is_none() && header.crit.is_none());

    let key = decoding_key_from_leaf(&header);
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation(alg)).unwrap();
    let claims = data.claims;
    assert_eq!(claims["eat_profile"], "urn:posture-gate:attestation:v1");
    assert_eq!(claims["eat_nonce"], "nonce-from-the-gate");
    assert_eq!(claims["os"]["family"], "linux");
    assert!(claims["iat"].is_i64());

    // A token whose payload was changed after signing does not verify.
    let parts: Vec<&str> = token.split('.').collect();
    let mut tampered = claims.clone();
    tampered["software"] = serde_json::json!([]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered.to_string()),
        parts[2]
    );
    assert!(jsonwebtoken::decode::<serde_json::Value>(&forged, &key, &validation(alg)).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_es256_token_verifies_with_jsonwebtoken() {
    agent_token_verifies_with_jsonwebtoken(DeviceKeyType::P256, Algorithm::ES256).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_eddsa_token_verifies_with_jsonwebtoken() {
    agent_token_verifies_with_jsonwebtoken(DeviceKeyType::Ed25519, Algorithm::EdDSA).await;
}

/// Signs `claims` with jsonwebtoken: typ eat+jwt, x5c the device's chain in
/// standard base64, the key straight from the device's PEM file.
fn jsonwebtoken_token(
    device: &DeviceCredentials,
    alg: Algorithm,
    claims: &serde_json::Value,
) -> String {
    let mut header = Header::new(alg);
    header.typ = Some("eat+jwt".to_owned());
    header.x5c = Some(device.chain.iter().map(|c| STANDARD.encode(c)).collect());
    let pem = device.key_pem.as_bytes();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem).unwrap(),
        other => panic!("unexpected alg {other:?}"),
    };
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn jsonwebtoken_token_passes_the_gate(key: DeviceKeyType, alg: Algorithm) {
    let gate = AgentGate::start().await;
    let (device, _) = gate.device("lt-jwt", key);
    let client = gate.client(&device);

    let challenge = client
        .get("localhost", "/.well-known/posture-gate/challenge")
        .await;
    assert_eq!(challenge.status, 200, "{}", challenge.text());
    let nonce = challenge.json()["nonce"].as_str().unwrap().to_owned();
    let token = jsonwebtoken_token(&device, alg, &common::claims(Some(&nonce), true));
    let answer = common::post_token(&client, "localhost", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let verdict = answer.json();
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["decisions"]["finance"], "deny");
    assert_eq!(verdict["decisions"]["office"], "warn");
    assert_eq!(verdict["decisions"]["open"], "allow");
    assert_eq!(verdict["findings"][0]["catalog_id"], "kaspersky");
    assert_eq!(verdict["findings"][0]["item"]["name"], "kesl");
    assert_eq!(gate.handle.posture_count(), 1);

    // The same library's token for a clean device, with a fresh nonce.
    let challenge = client
        .get("localhost", "/.well-known/posture-gate/challenge")
        .await;
    let nonce = challenge.json()["nonce"].as_str().unwrap().to_owned();
    let token = jsonwebtoken_token(&device, alg, &common::claims(Some(&nonce), false));
    let answer = common::post_token(&client, "localhost", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["decisions"]["finance"], "allow");
}

#[tokio::test(flavor = "multi_thread")]
async fn jsonwebtoken_es256_token_passes_the_gate() {
    jsonwebtoken_token_passes_the_gate(DeviceKeyType::P256, Algorithm::ES256).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jsonwebtoken_eddsa_token_passes_the_gate() {
    jsonwebtoken_token_passes_the_gate(DeviceKeyType::Ed25519, Algorithm::EdDSA).await;
}
