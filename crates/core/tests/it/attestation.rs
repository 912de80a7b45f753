//! Every reason code of spec §5, each from the bad token it names, the order
//! of checks of spec §7, and the good tokens that must pass.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use posture_core::attestation::claims::{Process, MAX_ARRAY_ITEMS};
use posture_core::attestation::{
    NonceCheck, NonceRedeemer, NonceVerdict, Reason, Verified, Verifier, VerifierSettings,
};
use posture_core::device::DeviceIdentity;
use posture_testkit::pki::{
    DeviceCredentials, DeviceIssuer, DeviceKeyType, DeviceSpec, LeafKeyUsage, Pki,
};
use posture_testkit::token::{claims_with_inventory, now, valid_claims, TokenBuilder};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

const MAX_AGE: i64 = 900;
const SKEW: i64 = 60;

struct Fixture {
    pki: Pki,
    device: DeviceCredentials,
    verifier: Verifier,
}

fn settings(require_nonce: bool) -> VerifierSettings {
    VerifierSettings {
        max_age: Duration::from_secs(MAX_AGE as u64),
        clock_skew: Duration::from_secs(SKEW as u64),
        require_nonce,
    }
}

fn fixture() -> Fixture {
    let pki = Pki::generate().unwrap();
    let device = pki
        .issue_device("lt-042", "Supplier BV", Some("IT"))
        .unwrap();
    let verifier = Verifier::new(&[pki.root_cert_der().clone()], settings(false)).unwrap();
    Fixture {
        pki,
        device,
        verifier,
    }
}

impl Fixture {
    fn device_with(&self, f: impl FnOnce(&mut DeviceSpec)) -> DeviceCredentials {
        let mut spec = DeviceSpec::new("lt-043", "Supplier BV");
        f(&mut spec);
        self.pki.issue_device_with(spec).unwrap()
    }

    /// Offline check: no client certificate, no nonce.
    fn check(&self, token: &str) -> Result<Verified, Reason> {
        self.verifier
            .verify(token.as_bytes(), None, now(), NonceCheck::Skip)
    }

    /// As the gate does over mutual TLS with the device's own certificate.
    fn check_bound(&self, token: &str, client: &DeviceCredentials) -> Result<Verified, Reason> {
        self.verifier.verify(
            token.as_bytes(),
            Some(client.cert_der.as_ref()),
            now(),
            NonceCheck::Skip,
        )
    }

    fn reason(&self, token: &str) -> Reason {
        match self.check(token) {
            Ok(_) => panic!("token was accepted"),
            Err(r) => r,
        }
    }

    fn token(&self) -> TokenBuilder<'_> {
        TokenBuilder::new(&self.device)
    }
}

fn years(n: i64) -> time::Duration {
    time::Duration::days(365 * n)
}

/// Nonces issued with an expiry; redeeming marks them used.
#[derive(Default)]
struct TestNonces {
    issued: Mutex<HashMap<String, (i64, bool)>>,
}

impl TestNonces {
    fn issue(&self, nonce: &str, expires_at: i64) {
        self.issued
            .lock()
            .unwrap()
            .insert(nonce.to_owned(), (expires_at, false));
    }
}

impl NonceRedeemer for TestNonces {
    fn redeem(&self, nonce: &str, now: i64) -> NonceVerdict {
        let mut issued = self.issued.lock().unwrap();
        match issued.get_mut(nonce) {
            None => NonceVerdict::Unknown,
            Some((exp, _)) if now >= *exp => NonceVerdict::Unknown,
            Some((_, used)) if *used => NonceVerdict::Replayed,
            Some((_, used)) => {
                *used = true;
                NonceVerdict::Fresh
            }
        }
    }
}

// ---------------------------------------------------------------- positive

#[test]
fn es256_token_verifies_with_leaf_identity() {
    let f = fixture();
    let v = f.check(&f.token().build().unwrap()).unwrap();
    assert_eq!(
        v.device,
        DeviceIdentity::from_der(f.device.cert_der.as_ref()).unwrap()
    );
    assert_eq!(v.device.subject, "CN=lt-042,OU=IT,O=Supplier BV");
    assert_eq!(v.device.organization.as_deref(), Some("Supplier BV"));
    assert_eq!(v.claims.software.len(), 12);
}

#[test]
fn eddsa_token_verifies() {
    let f = fixture();
    let d = f.device_with(|s| s.key = DeviceKeyType::Ed25519);
    let token = TokenBuilder::new(&d).build().unwrap();
    assert!(token.starts_with(&URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA""#)[..10]));
    assert!(f.check_bound(&token, &d).is_ok());
}

#[test]
fn es384_token_verifies() {
    let f = fixture();
    let d = f.device_with(|s| s.key = DeviceKeyType::P384);
    assert_eq!(d.signing_key().alg(), "ES384");
    assert!(f
        .check_bound(&TokenBuilder::new(&d).build().unwrap(), &d)
        .is_ok());
}

#[test]
fn bound_token_verifies_and_identity_is_the_client_certificate() {
    let f = fixture();
    // A second certificate for the same key: the identity must come from the
    // certificate presented in TLS, not from the x5c leaf.
    let key = rcgen::KeyPair::from_pem(&f.device.key_pem).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tls-name");
    let client = params.self_signed(&key).unwrap().der().to_vec();
    let token = f.token().build().unwrap();
    let v = f
        .verifier
        .verify(token.as_bytes(), Some(&client), now(), NonceCheck::Skip)
        .unwrap();
    assert_eq!(v.device.subject, "CN=tls-name");
    assert_eq!(v.device, DeviceIdentity::from_der(&client).unwrap());
    assert_ne!(
        v.device.fingerprint_sha256,
        f.check(&token).unwrap().device.fingerprint_sha256
    );
}

#[test]
fn anchor_may_appear_in_x5c_and_leaf_may_come_from_root() {
    let f = fixture();
    let mut chain = f.device.chain.clone();
    chain.push(f.pki.root_cert_der().clone());
    assert!(f.check(&f.token().x5c(&chain).build().unwrap()).is_ok());
    let d = f.device_with(|s| s.issuer = DeviceIssuer::Root);
    assert_eq!(d.chain.len(), 1);
    assert!(f.check(&TokenBuilder::new(&d).build().unwrap()).is_ok());
}

#[test]
fn leaf_without_key_usage_extension_is_usable() {
    let f = fixture();
    let d = f.device_with(|s| s.key_usage = LeafKeyUsage::Absent);
    assert!(f.check(&TokenBuilder::new(&d).build().unwrap()).is_ok());
}

#[test]
fn typ_variants_and_ignored_key_hints_pass() {
    let f = fixture();
    for typ in ["EAT+JWT", "application/eat+jwt", "Application/Eat+Jwt"] {
        assert!(
            f.check(&f.token().typ(typ).build().unwrap()).is_ok(),
            "{typ}"
        );
    }
    // kid/jku/x5u/jwk are never used to find a key.
    let token = f
        .token()
        .header("kid", "other")
        .header("jku", "http://127.0.0.1:1/keys")
        .header("x5u", "http://127.0.0.1:1/cert")
        .header("jwk", serde_json::json!({"kty": "oct", "k": "AAAA"}))
        .build()
        .unwrap();
    assert!(f.check(&token).is_ok());
}

#[test]
fn valid_until_is_iat_plus_max_age_when_earliest() {
    let f = fixture();
    let iat = now() - 10;
    let v = f
        .check(&f.token().claims(valid_claims(iat)).build().unwrap())
        .unwrap();
    assert_eq!(v.iat, iat);
    assert_eq!(v.valid_until, iat + MAX_AGE);
}

#[test]
fn valid_until_is_exp_when_earliest() {
    let f = fixture();
    let exp = now() + 30;
    let v = f
        .check(
            &f.token()
                .with_claims(|c| c.exp = Some(exp))
                .build()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(v.valid_until, exp);
}

#[test]
fn valid_until_is_leaf_not_after_when_earliest() {
    let f = fixture();
    let not_after = OffsetDateTime::now_utc() + time::Duration::seconds(120);
    let d = f.device_with(|s| s.not_after = not_after);
    let v = f.check(&TokenBuilder::new(&d).build().unwrap()).unwrap();
    assert_eq!(v.leaf_not_after, not_after.unix_timestamp());
    assert_eq!(v.valid_until, not_after.unix_timestamp());
}

#[test]
fn unknown_claims_are_ignored() {
    let f = fixture();
    let mut json = serde_json::to_value(valid_claims(now())).unwrap();
    json["x-vendor"] = serde_json::json!({"anything": [1, 2, 3]});
    let token = f.token().payload_bytes(json.to_string()).build().unwrap();
    assert!(f.check(&token).is_ok());
}

// ---------------------------------------------------------------- malformed

#[test]
fn malformed_not_three_parts() {
    let f = fixture();
    let token = f.token().build().unwrap();
    let (two, _) = token.rsplit_once('.').unwrap();
    assert_eq!(f.reason(two), Reason::Malformed);
    assert_eq!(f.reason(&format!("{token}.x")), Reason::Malformed);
    assert_eq!(f.reason(""), Reason::Malformed);
}

#[test]
fn malformed_bad_base64url() {
    let f = fixture();
    let token = f.token().build().unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[0] = "eyJ!!!";
    assert_eq!(f.reason(&parts.join(".")), Reason::Malformed);
    // A correctly signed payload segment that is not base64url.
    let token = f.token().payload_segment("eyJ*not*base64").build().unwrap();
    assert_eq!(f.reason(&token), Reason::Malformed);
    // Signature segment that is not base64url.
    let token = format!("{}.{}.%%", parts[1], parts[1]);
    assert_eq!(f.reason(&token), Reason::Malformed);
}

#[test]
fn malformed_header_not_json() {
    let f = fixture();
    assert_eq!(
        f.reason(&f.token().header_bytes("not json").build().unwrap()),
        Reason::Malformed
    );
    assert_eq!(
        f.reason(&f.token().header_bytes(r#"["ES256"]"#).build().unwrap()),
        Reason::Malformed
    );
}

#[test]
fn malformed_typ_wrong_or_missing() {
    let f = fixture();
    for typ in ["JWT", "at+jwt", "application/jwt", "eat+cwt"] {
        assert_eq!(
            f.reason(&f.token().typ(typ).build().unwrap()),
            Reason::Malformed,
            "{typ}"
        );
    }
    assert_eq!(
        f.reason(&f.token().remove_header("typ").build().unwrap()),
        Reason::Malformed
    );
}

#[test]
fn malformed_crit_present() {
    let f = fixture();
    let token = f
        .token()
        .header("crit", serde_json::json!(["exp"]))
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::Malformed);
    let token = f
        .token()
        .header("crit", serde_json::Value::Null)
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::Malformed);
}

#[test]
fn malformed_alg_missing() {
    let f = fixture();
    assert_eq!(
        f.reason(&f.token().remove_header("alg").build().unwrap()),
        Reason::Malformed
    );
}

#[test]
fn malformed_x5c_missing() {
    let f = fixture();
    assert_eq!(
        f.reason(&f.token().remove_header("x5c").build().unwrap()),
        Reason::Malformed
    );
    assert_eq!(
        f.reason(&f.token().x5c_strings(vec![]).build().unwrap()),
        Reason::Malformed
    );
}

#[test]
fn malformed_x5c_base64url_instead_of_base64() {
    let f = fixture();
    let url: Vec<String> = f
        .device
        .chain
        .iter()
        .map(|c| URL_SAFE_NO_PAD.encode(c.as_ref()))
        .collect();
    let std: Vec<String> = f
        .device
        .chain
        .iter()
        .map(|c| STANDARD.encode(c.as_ref()))
        .collect();
    assert_ne!(url, std, "the test needs a DER whose encodings differ");
    assert_eq!(
        f.reason(&f.token().x5c_strings(url).build().unwrap()),
        Reason::Malformed
    );
}

#[test]
fn malformed_x5c_five_entries() {
    let f = fixture();
    let mut chain = f.device.chain.clone();
    while chain.len() < 5 {
        chain.push(f.pki.root_cert_der().clone());
    }
    assert_eq!(
        f.reason(&f.token().x5c(&chain).build().unwrap()),
        Reason::Malformed
    );
    // Four is the limit and still fine.
    chain.truncate(4);
    assert!(f.check(&f.token().x5c(&chain).build().unwrap()).is_ok());
}

#[test]
fn malformed_x5c_not_der() {
    let f = fixture();
    let garbage = vec![STANDARD.encode(b"certainly not DER")];
    assert_eq!(
        f.reason(&f.token().x5c_strings(garbage).build().unwrap()),
        Reason::Malformed
    );
    // A leaf with trailing bytes after its DER.
    let mut leaf = f.device.cert_der.to_vec();
    leaf.push(0);
    let x5c = vec![
        STANDARD.encode(&leaf),
        STANDARD.encode(f.pki.device_ca_cert_der()),
    ];
    assert_eq!(
        f.reason(&f.token().x5c_strings(x5c).build().unwrap()),
        Reason::Malformed
    );
    // A garbage intermediate is DER that does not parse too.
    let x5c = vec![
        STANDARD.encode(&f.device.cert_der),
        STANDARD.encode(b"junk"),
    ];
    assert_eq!(
        f.reason(&f.token().x5c_strings(x5c).build().unwrap()),
        Reason::Malformed
    );
}

#[test]
fn malformed_payload_not_json_or_not_an_object() {
    let f = fixture();
    assert_eq!(
        f.reason(&f.token().payload_bytes("hello").build().unwrap()),
        Reason::Malformed
    );
    assert_eq!(
        f.reason(&f.token().payload_bytes("[1,2]").build().unwrap()),
        Reason::Malformed
    );
}

fn claims_json(f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut json = serde_json::to_value(valid_claims(now())).unwrap();
    f(&mut json);
    json.to_string()
}

#[test]
fn malformed_iat_string_or_missing() {
    let f = fixture();
    let s = claims_json(|j| j["iat"] = serde_json::json!(now().to_string()));
    assert_eq!(
        f.reason(&f.token().payload_bytes(s).build().unwrap()),
        Reason::Malformed
    );
    let s = claims_json(|j| {
        j.as_object_mut().unwrap().remove("iat");
    });
    assert_eq!(
        f.reason(&f.token().payload_bytes(s).build().unwrap()),
        Reason::Malformed
    );
}

#[test]
fn malformed_software_as_string_and_missing_os() {
    let f = fixture();
    let s = claims_json(|j| j["software"] = serde_json::json!("kesl"));
    assert_eq!(
        f.reason(&f.token().payload_bytes(s).build().unwrap()),
        Reason::Malformed
    );
    for claim in ["os", "software"] {
        let s = claims_json(|j| {
            j.as_object_mut().unwrap().remove(claim);
        });
        assert_eq!(
            f.reason(&f.token().payload_bytes(s).build().unwrap()),
            Reason::Malformed,
            "{claim}"
        );
    }
    let s = claims_json(|j| j["software"][0]["name"] = serde_json::json!(42));
    assert_eq!(
        f.reason(&f.token().payload_bytes(s).build().unwrap()),
        Reason::Malformed
    );
}

// ---------------------------------------------------------------- unsupported_alg

#[test]
fn unsupported_alg_none() {
    let f = fixture();
    assert_eq!(
        f.reason(&f.token().unsigned().build().unwrap()),
        Reason::UnsupportedAlg
    );
    // Even without typ or x5c: alg is judged first.
    let token = f
        .token()
        .unsigned()
        .remove_header("typ")
        .remove_header("x5c")
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::UnsupportedAlg);
}

#[test]
fn unsupported_alg_hs256_keyed_with_the_public_key() {
    let f = fixture();
    let token = f.token().hs256_with_leaf_public_key().build().unwrap();
    assert_eq!(f.reason(&token), Reason::UnsupportedAlg);
}

#[test]
fn unsupported_alg_rs256_and_made_up() {
    let f = fixture();
    for alg in ["RS256", "PS256", "ES512", "XX999", "es256", "HS512"] {
        assert_eq!(
            f.reason(&f.token().alg(alg).build().unwrap()),
            Reason::UnsupportedAlg,
            "{alg}"
        );
    }
    let token = f
        .token()
        .header("alg", serde_json::json!(["ES256"]))
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::UnsupportedAlg);
}

// ---------------------------------------------------------------- bad_signature

#[test]
fn bad_signature_tampered_payload() {
    let f = fixture();
    let token = f.token().build().unwrap();
    let other = f
        .token()
        .with_claims(|c| c.software.clear())
        .build()
        .unwrap();
    let p: Vec<&str> = token.split('.').collect();
    let o: Vec<&str> = other.split('.').collect();
    let tampered = format!("{}.{}.{}", p[0], o[1], p[2]);
    assert_eq!(f.reason(&tampered), Reason::BadSignature);
    // A flipped signature bit.
    let mut sig = URL_SAFE_NO_PAD.decode(p[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(f.reason(&flipped), Reason::BadSignature);
    // An empty signature with an allowed alg.
    assert_eq!(
        f.reason(&format!("{}.{}.", p[0], p[1])),
        Reason::BadSignature
    );
}

#[test]
fn bad_signature_by_another_key() {
    let f = fixture();
    let other = f.device_with(|_| {});
    let token = f.token().sign_with(other.signing_key()).build().unwrap();
    assert_eq!(f.reason(&token), Reason::BadSignature);
}

/// The header alg must agree with the leaf's key type: an allowed alg that
/// does not fit the key is `bad_signature` (see verify.rs), whoever signed.
#[test]
fn bad_signature_header_alg_disagrees_with_leaf_key() {
    let f = fixture();
    let ed = f.device_with(|s| s.key = DeviceKeyType::Ed25519);
    let token = TokenBuilder::new(&ed).alg("ES256").build().unwrap();
    assert_eq!(f.reason(&token), Reason::BadSignature);
    // Signed by a P-256 key, declared ES256, but the leaf is Ed25519.
    let token = TokenBuilder::new(&ed)
        .alg("ES256")
        .sign_with(f.device.signing_key())
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::BadSignature);
    let token = f.token().alg("EdDSA").build().unwrap();
    assert_eq!(f.reason(&token), Reason::BadSignature);
    let token = f.token().alg("ES384").build().unwrap();
    assert_eq!(f.reason(&token), Reason::BadSignature);
}

// ---------------------------------------------------------------- untrusted_chain

#[test]
fn untrusted_chain_self_signed_leaf() {
    let f = fixture();
    let d = f.device_with(|s| s.issuer = DeviceIssuer::SelfSigned);
    assert_eq!(
        f.reason(&TokenBuilder::new(&d).build().unwrap()),
        Reason::UntrustedChain
    );
}

#[test]
fn untrusted_chain_leaf_from_another_ca() {
    let f = fixture();
    let other = Pki::generate().unwrap();
    let d = other
        .issue_device("lt-042", "Supplier BV", Some("IT"))
        .unwrap();
    assert_eq!(
        f.reason(&TokenBuilder::new(&d).build().unwrap()),
        Reason::UntrustedChain
    );
    // Even with our device CA appended: it did not issue the leaf.
    let chain = vec![d.cert_der.clone(), f.pki.device_ca_cert_der().clone()];
    let token = TokenBuilder::new(&d).x5c(&chain).build().unwrap();
    assert_eq!(f.reason(&token), Reason::UntrustedChain);
}

#[test]
fn untrusted_chain_intermediate_missing() {
    let f = fixture();
    let token = f.token().x5c(&f.device.chain[..1]).build().unwrap();
    assert_eq!(f.reason(&token), Reason::UntrustedChain);
}

#[test]
fn untrusted_chain_leaf_without_digital_signature_key_usage() {
    let f = fixture();
    let d = f.device_with(|s| s.key_usage = LeafKeyUsage::WithoutDigitalSignature);
    assert_eq!(
        f.reason(&TokenBuilder::new(&d).build().unwrap()),
        Reason::UntrustedChain
    );
}

#[test]
fn untrusted_chain_ca_certificate_as_leaf() {
    let f = fixture();
    // The device CA "signing" a token with x5c [device CA]: a CA is not an
    // end entity.
    let token = f
        .token()
        .x5c(&[f.pki.device_ca_cert_der().clone()])
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::UntrustedChain);
}

// ---------------------------------------------------------------- cert_expired

#[test]
fn cert_expired_leaf() {
    let f = fixture();
    let t = OffsetDateTime::now_utc();
    let d = f.device_with(|s| {
        s.not_before = t - years(2);
        s.not_after = t - time::Duration::days(1);
    });
    assert_eq!(
        f.reason(&TokenBuilder::new(&d).build().unwrap()),
        Reason::CertExpired
    );
}

#[test]
fn cert_expired_leaf_not_yet_valid() {
    let f = fixture();
    let t = OffsetDateTime::now_utc();
    let d = f.device_with(|s| {
        s.not_before = t + time::Duration::days(1);
        s.not_after = t + years(1);
    });
    assert_eq!(
        f.reason(&TokenBuilder::new(&d).build().unwrap()),
        Reason::CertExpired
    );
}

#[test]
fn cert_expired_intermediate() {
    let t = OffsetDateTime::now_utc();
    let pki =
        Pki::generate_with_device_ca_validity(t - years(3), t - time::Duration::days(1)).unwrap();
    let d = pki.issue_device("lt-042", "Supplier BV", None).unwrap();
    let verifier = Verifier::new(&[pki.root_cert_der().clone()], settings(false)).unwrap();
    let token = TokenBuilder::new(&d).build().unwrap();
    let r = verifier.verify(token.as_bytes(), None, now(), NonceCheck::Skip);
    assert_eq!(r.err(), Some(Reason::CertExpired));
}

#[test]
fn chain_cache_does_not_hide_expiry() {
    let f = fixture();
    let token = f.token().build().unwrap();
    let t = now();
    let at = |when: i64| {
        f.verifier
            .verify(token.as_bytes(), None, when, NonceCheck::Skip)
            .map(|_| ())
    };
    assert_eq!(at(t), Ok(()));
    assert_eq!(at(t), Ok(()));
    // Two years on the leaf has expired; the token is checked for expiry of
    // the chain before its age.
    assert_eq!(at(t + 2 * 365 * 86_400), Err(Reason::CertExpired));
    assert_eq!(at(t - 2 * 86_400), Err(Reason::CertExpired));
    assert_eq!(at(t), Ok(()));
}

#[test]
fn cold_verifier_gives_the_same_answers() {
    let f = fixture();
    let cold =
        Verifier::with_chain_cache(&[f.pki.root_cert_der().clone()], settings(false), 0).unwrap();
    let other = f.device_with(|_| {});
    let tokens = [
        f.token().build().unwrap(),
        f.token().sign_with(other.signing_key()).build().unwrap(),
        f.token().x5c(&f.device.chain[..1]).build().unwrap(),
    ];
    for t in &tokens {
        for _ in 0..2 {
            let warm = f
                .verifier
                .verify(t.as_bytes(), None, now(), NonceCheck::Skip);
            let c = cold.verify(t.as_bytes(), None, now(), NonceCheck::Skip);
            assert_eq!(warm.map(|v| v.device), c.map(|v| v.device));
        }
    }
}

// ---------------------------------------------------------------- key_mismatch

#[test]
fn key_mismatch_another_devices_client_cert() {
    let f = fixture();
    let other = f.device_with(|_| {});
    let token = f.token().build().unwrap();
    assert_eq!(
        f.check_bound(&token, &other).err(),
        Some(Reason::KeyMismatch)
    );
    assert!(f.check_bound(&token, &f.device).is_ok());
    let r = f
        .verifier
        .verify(token.as_bytes(), Some(b"garbage"), now(), NonceCheck::Skip);
    assert_eq!(r.err(), Some(Reason::KeyMismatch));
}

// ---------------------------------------------------------------- claims

#[test]
fn profile_mismatch_missing_or_other() {
    let f = fixture();
    let t = f
        .token()
        .with_claims(|c| c.eat_profile = None)
        .build()
        .unwrap();
    assert_eq!(f.reason(&t), Reason::ProfileMismatch);
    let t = f
        .token()
        .with_claims(|c| c.eat_profile = Some("urn:posture-gate:attestation:v2".into()))
        .build()
        .unwrap();
    assert_eq!(f.reason(&t), Reason::ProfileMismatch);
}

#[test]
fn stale_iat_and_boundary() {
    let f = fixture();
    let t = now();
    let token = |iat| f.token().claims(valid_claims(iat)).build().unwrap();
    let at = |tok: &str| {
        f.verifier
            .verify(tok.as_bytes(), None, t, NonceCheck::Skip)
            .map(|_| ())
    };
    assert_eq!(at(&token(t - MAX_AGE - 1)), Err(Reason::Stale));
    assert_eq!(at(&token(t - MAX_AGE)), Ok(()));
}

#[test]
fn future_iat_and_just_inside_skew() {
    let f = fixture();
    let t = now();
    let token = |iat| f.token().claims(valid_claims(iat)).build().unwrap();
    let at = |tok: &str| {
        f.verifier
            .verify(tok.as_bytes(), None, t, NonceCheck::Skip)
            .map(|_| ())
    };
    assert_eq!(at(&token(t + SKEW + 1)), Err(Reason::FutureIat));
    assert_eq!(at(&token(t + SKEW)), Ok(()));
}

#[test]
fn expired_exp_past() {
    let f = fixture();
    let t = now();
    let token = |exp| {
        f.token()
            .with_claims(|c| c.exp = Some(exp))
            .build()
            .unwrap()
    };
    let at = |tok: &str| {
        f.verifier
            .verify(tok.as_bytes(), None, t, NonceCheck::Skip)
            .map(|_| ())
    };
    assert_eq!(at(&token(t - 1)), Err(Reason::Expired));
    assert_eq!(at(&token(t)), Err(Reason::Expired));
    assert_eq!(at(&token(t + 1)), Ok(()));
}

// ---------------------------------------------------------------- nonces

fn nonce_fixture() -> (Fixture, Verifier) {
    let f = fixture();
    let v = Verifier::new(&[f.pki.root_cert_der().clone()], settings(true)).unwrap();
    (f, v)
}

#[test]
fn nonce_missing_when_required() {
    let (f, v) = nonce_fixture();
    let store = TestNonces::default();
    let token = f.token().build().unwrap();
    let r = v.verify(token.as_bytes(), None, now(), NonceCheck::Check(&store));
    assert_eq!(r.err(), Some(Reason::NonceMissing));
    // Not required: absent is fine.
    let r = f
        .verifier
        .verify(token.as_bytes(), None, now(), NonceCheck::Check(&store));
    assert!(r.is_ok());
}

#[test]
fn nonce_unknown_never_issued_or_expired() {
    let (f, v) = nonce_fixture();
    let store = TestNonces::default();
    store.issue("expired", now() - 1);
    for n in ["never-issued", "expired"] {
        let token = f
            .token()
            .with_claims(|c| c.eat_nonce = Some(n.into()))
            .build()
            .unwrap();
        let r = v.verify(token.as_bytes(), None, now(), NonceCheck::Check(&store));
        assert_eq!(r.err(), Some(Reason::NonceUnknown), "{n}");
        // Present but not required: still checked.
        let r = f
            .verifier
            .verify(token.as_bytes(), None, now(), NonceCheck::Check(&store));
        assert_eq!(r.err(), Some(Reason::NonceUnknown), "{n}");
    }
}

#[test]
fn nonce_replayed_on_second_use() {
    let (f, v) = nonce_fixture();
    let store = TestNonces::default();
    store.issue("n-1", now() + 300);
    let token = f
        .token()
        .with_claims(|c| c.eat_nonce = Some("n-1".into()))
        .build()
        .unwrap();
    let first = v.verify(token.as_bytes(), None, now(), NonceCheck::Check(&store));
    assert!(first.is_ok());
    let second = v.verify(token.as_bytes(), None, now(), NonceCheck::Check(&store));
    assert_eq!(second.err(), Some(Reason::NonceReplayed));
}

#[test]
fn nonce_skip_does_not_look_at_eat_nonce() {
    let (f, v) = nonce_fixture();
    let token = f
        .token()
        .with_claims(|c| c.eat_nonce = Some("whatever".into()))
        .build()
        .unwrap();
    assert!(v
        .verify(token.as_bytes(), None, now(), NonceCheck::Skip)
        .is_ok());
    let token = f.token().build().unwrap();
    assert!(v
        .verify(token.as_bytes(), None, now(), NonceCheck::Skip)
        .is_ok());
}

// ---------------------------------------------------------------- too_large

#[test]
fn too_large_token_over_one_mib() {
    let f = fixture();
    let s = claims_json(|j| j["x-pad"] = serde_json::json!("a".repeat(800_000)));
    let token = f.token().payload_bytes(s).build().unwrap();
    assert!(token.len() > 1_048_576);
    assert_eq!(f.reason(&token), Reason::TooLarge);
    // Size comes first of all, even before the compact form.
    assert_eq!(f.reason(&"x".repeat(1_048_577)), Reason::TooLarge);
    // Just under the limit, a valid padded token passes.
    let pad = 1_048_576 - f.token().build().unwrap().len() - 64;
    let s = claims_json(|j| j["x-pad"] = serde_json::json!("a".repeat(pad * 3 / 4)));
    let token = f.token().payload_bytes(s).build().unwrap();
    assert!(token.len() <= 1_048_576);
    assert!(f.check(&token).is_ok());
}

#[test]
fn too_large_string_over_one_kib() {
    let f = fixture();
    let t = f
        .token()
        .with_claims(|c| c.sub = Some("x".repeat(1025)))
        .build()
        .unwrap();
    assert_eq!(f.reason(&t), Reason::TooLarge);
    let t = f
        .token()
        .with_claims(|c| c.software[0].name = "é".repeat(513))
        .build()
        .unwrap();
    assert_eq!(f.reason(&t), Reason::TooLarge);
    let t = f
        .token()
        .with_claims(|c| c.sub = Some("x".repeat(1024)))
        .build()
        .unwrap();
    assert!(f.check(&t).is_ok());
}

#[test]
fn too_large_ten_thousand_and_one_items() {
    let f = fixture();
    let t = f
        .token()
        .with_claims(|c| {
            c.processes = vec![
                Process {
                    name: "p".into(),
                    path: None
                };
                MAX_ARRAY_ITEMS + 1
            ]
        })
        .build()
        .unwrap();
    assert_eq!(f.reason(&t), Reason::TooLarge);
    // Exactly 10,000 (short) items fit in the token and pass.
    let t = f
        .token()
        .with_claims(|c| {
            c.processes = vec![
                Process {
                    name: "p".into(),
                    path: None
                };
                MAX_ARRAY_ITEMS
            ]
        })
        .build()
        .unwrap();
    assert!(t.len() <= 1_048_576);
    assert_eq!(f.check(&t).unwrap().claims.processes.len(), MAX_ARRAY_ITEMS);
    let t = f
        .token()
        .claims(claims_with_inventory(now(), 300))
        .build()
        .unwrap();
    assert!(f.check(&t).is_ok());
}

// ---------------------------------------------------------------- order of checks

#[test]
fn order_stale_and_wrongly_signed_is_bad_signature() {
    let f = fixture();
    let other = f.device_with(|_| {});
    let token = f
        .token()
        .claims(valid_claims(now() - 10 * MAX_AGE))
        .sign_with(other.signing_key())
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::BadSignature);
}

#[test]
fn order_expired_chain_and_bad_signature_is_cert_expired() {
    let f = fixture();
    let t = OffsetDateTime::now_utc();
    let d = f.device_with(|s| {
        s.not_before = t - years(2);
        s.not_after = t - time::Duration::days(1);
    });
    let token = TokenBuilder::new(&d)
        .signature(vec![0; 64])
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::CertExpired);
}

#[test]
fn order_size_before_everything_and_alg_before_x5c() {
    let f = fixture();
    let s = claims_json(|j| j["x-pad"] = serde_json::json!("a".repeat(800_000)));
    let token = f.token().unsigned().payload_bytes(s).build().unwrap();
    assert_eq!(f.reason(&token), Reason::TooLarge);
    let token = f
        .token()
        .alg("RS256")
        .x5c_strings(vec!["-_-".into()])
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::UnsupportedAlg);
}

#[test]
fn order_untrusted_chain_before_signature_and_malformed_payload_after_it() {
    let f = fixture();
    let other = Pki::generate()
        .unwrap()
        .issue_device("x", "y", None)
        .unwrap();
    let token = TokenBuilder::new(&other)
        .payload_bytes("not json")
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::UntrustedChain);
    // A payload that does not parse, signed by a key that is not the leaf's.
    let token = f
        .token()
        .payload_bytes("not json")
        .sign_with(other.signing_key())
        .build()
        .unwrap();
    assert_eq!(f.reason(&token), Reason::BadSignature);
}

#[test]
fn order_key_mismatch_before_payload() {
    let f = fixture();
    let other = f.device_with(|_| {});
    let token = f.token().payload_bytes("not json").build().unwrap();
    assert_eq!(
        f.check_bound(&token, &other).err(),
        Some(Reason::KeyMismatch)
    );
    let token = f
        .token()
        .claims(valid_claims(now() - 10 * MAX_AGE))
        .build()
        .unwrap();
    assert_eq!(
        f.check_bound(&token, &other).err(),
        Some(Reason::KeyMismatch)
    );
}

#[test]
fn order_claims_profile_then_exp_then_iat_then_nonce() {
    let (f, v) = nonce_fixture();
    let store = TestNonces::default();
    store.issue("n", now() + 300);
    let t = now();
    let check = |c: &dyn Fn(&mut posture_core::attestation::Claims)| {
        let token = f.token().with_claims(|x| c(x)).build().unwrap();
        v.verify(token.as_bytes(), None, t, NonceCheck::Check(&store))
            .err()
    };
    // too_large before profile_mismatch.
    let r = check(&|c| {
        c.eat_profile = None;
        c.sub = Some("x".repeat(2000));
    });
    assert_eq!(r, Some(Reason::TooLarge));
    let r = check(&|c| {
        c.eat_profile = None;
        c.exp = Some(t - 1);
    });
    assert_eq!(r, Some(Reason::ProfileMismatch));
    let r = check(&|c| {
        c.exp = Some(t - 1);
        c.iat = t - 10 * MAX_AGE;
    });
    assert_eq!(r, Some(Reason::Expired));
    let r = check(&|c| {
        c.iat = t - 10 * MAX_AGE;
        c.eat_nonce = Some("n".into());
    });
    assert_eq!(r, Some(Reason::Stale));
    // The refused tokens above did not use up the nonce.
    let r = check(&|c| c.eat_nonce = Some("n".into()));
    assert_eq!(r, None);
}

#[test]
fn settings_are_kept() {
    let f = fixture();
    assert_eq!(
        f.verifier.settings().max_age,
        Duration::from_secs(MAX_AGE as u64)
    );
    let _: &[CertificateDer<'_>] = &f.device.chain;
}
