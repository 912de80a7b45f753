//! Signing an attestation: used by the agent, the tests and the demo.
//! The header carries `alg`, `typ: eat+jwt` and the `x5c` chain in standard
//! base64 (spec §1); the key must be the one of the `x5c` leaf, which is also
//! the device's mutual-TLS key (spec §2).

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::claims::Claims;
use super::jws::MAX_X5C;

/// Errors never carry key material, only what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The PEM text holds no private key block at all.
    #[error("no private key found in the PEM text (expected PKCS#8 or SEC1 \"EC PRIVATE KEY\")")]
    NoKey,
    /// A private key that is not P-256, P-384 or Ed25519: RSA (PKCS#8 or a
    /// PKCS#1 `RSA PRIVATE KEY`), another curve, or DER that does not parse.
    #[error("the private key is not a P-256, P-384 or Ed25519 key this agent can sign with")]
    UnsupportedKey,
    /// A certificate given to compare with the key is not DER X.509.
    #[error("the certificate is not DER-encoded X.509")]
    BadCertificate,
    /// The chain to put in `x5c` is empty or longer than
    /// [`MAX_X5C`].
    #[error("the x5c chain must hold 1 to {MAX_X5C} certificates, leaf first")]
    ChainLength,
    /// The claims or header did not serialise to JSON.
    #[error("the claims could not be serialised: {0}")]
    Claims(#[from] serde_json::Error),
    /// aws-lc-rs refused to sign (ECDSA only; Ed25519 signing cannot fail).
    #[error("the signature operation failed")]
    Signing,
}

/// A device's signing key. `Debug` shows the algorithm only.
pub enum SigningKey {
    /// P-256, signs ES256.
    P256(EcdsaKeyPair),
    /// P-384, signs ES384 (which the gate may accept, spec §1).
    P384(EcdsaKeyPair),
    /// Ed25519, signs EdDSA.
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.alg())
    }
}

impl SigningKey {
    /// PKCS#8 (`PRIVATE KEY`: P-256, P-384 or Ed25519) or SEC1 (`EC PRIVATE
    /// KEY`: P-256, P-384).
    pub fn from_pem(pem: &str) -> Result<SigningKey, SignError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| SignError::NoKey)?;
        Self::from_der(&der)
    }

    /// As [`SigningKey::from_pem`], from DER already out of its PEM block.
    /// PKCS#1 (RSA) and any other form is [`SignError::UnsupportedKey`].
    pub fn from_der(der: &PrivateKeyDer<'_>) -> Result<SigningKey, SignError> {
        match der {
            PrivateKeyDer::Pkcs8(p) => {
                let bytes = p.secret_pkcs8_der();
                if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, bytes) {
                    return Ok(SigningKey::P256(k));
                }
                if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, bytes) {
                    return Ok(SigningKey::P384(k));
                }
                Ed25519KeyPair::from_pkcs8(bytes)
                    .map(SigningKey::Ed25519)
                    .map_err(|_| SignError::UnsupportedKey)
            }
            PrivateKeyDer::Sec1(s) => {
                let der = s.secret_sec1_der();
                if let Ok(k) =
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                {
                    return Ok(SigningKey::P256(k));
                }
                EcdsaKeyPair::from_private_key_der(&ECDSA_P384_SHA384_FIXED_SIGNING, der)
                    .map(SigningKey::P384)
                    .map_err(|_| SignError::UnsupportedKey)
            }
            _ => Err(SignError::UnsupportedKey),
        }
    }

    /// The JWS `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match self {
            SigningKey::P256(_) => "ES256",
            SigningKey::P384(_) => "ES384",
            SigningKey::Ed25519(_) => "EdDSA",
        }
    }

    /// DER SubjectPublicKeyInfo of the public half.
    fn public_key_spki_der(&self) -> Vec<u8> {
        let der = match self {
            SigningKey::P256(k) | SigningKey::P384(k) => k.public_key().as_der(),
            SigningKey::Ed25519(k) => k.public_key().as_der(),
        };
        // Serialising a public key that aws-lc-rs holds cannot fail short of
        // an allocation failure; an empty SPKI then matches no certificate.
        der.map(|d| d.as_ref().to_vec()).unwrap_or_default()
    }

    /// Signs `message` the JWS way: ES256 as fixed-length r||s.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            SigningKey::P256(k) | SigningKey::P384(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Signing),
            SigningKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// A compact JWS over `claims` with header `{alg, typ: "eat+jwt", x5c}`.
pub fn sign_token(
    claims: &Claims,
    chain: &[CertificateDer<'_>],
    key: &SigningKey,
) -> Result<String, SignError> {
    if chain.is_empty() || chain.len() > MAX_X5C {
        return Err(SignError::ChainLength);
    }
    let x5c: Vec<String> = chain.iter().map(|c| STANDARD.encode(c.as_ref())).collect();
    let header = serde_json::json!({ "alg": key.alg(), "typ": "eat+jwt", "x5c": x5c });
    let payload = serde_json::to_vec(claims)?;
    sign_parts(&serde_json::to_vec(&header)?, &payload, key)
}

/// Signs arbitrary header and payload bytes; for tests that need headers
/// this profile would refuse.
pub fn sign_parts(header: &[u8], payload: &[u8], key: &SigningKey) -> Result<String, SignError> {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

/// Whether `cert_der`'s SubjectPublicKeyInfo is `key`'s public half, byte for
/// byte, as the gate compares them (spec §2).
pub fn key_matches_certificate(key: &SigningKey, cert_der: &[u8]) -> Result<bool, SignError> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|_| SignError::BadCertificate)?;
    Ok(cert.public_key().raw == key.public_key_spki_der().as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        CertificateParams, KeyPair as RcKeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
        PKCS_ED25519,
    };

    fn cert_for(key: &RcKeyPair) -> Vec<u8> {
        CertificateParams::new(vec!["d".into()])
            .unwrap()
            .self_signed(key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn pkcs8_p256_and_ed25519_load_and_match_their_certificates() {
        for (alg, name) in [
            (&PKCS_ECDSA_P256_SHA256, "ES256"),
            (&PKCS_ECDSA_P384_SHA384, "ES384"),
            (&PKCS_ED25519, "EdDSA"),
        ] {
            let rc = RcKeyPair::generate_for(alg).unwrap();
            let key = SigningKey::from_pem(&rc.serialize_pem()).unwrap();
            assert_eq!(key.alg(), name);
            assert!(key_matches_certificate(&key, &cert_for(&rc)).unwrap());
            let other = RcKeyPair::generate_for(alg).unwrap();
            assert!(!key_matches_certificate(&key, &cert_for(&other)).unwrap());
        }
    }

    #[test]
    fn sec1_ec_private_key_loads() {
        let rc = RcKeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let pkcs8 = rc.serialize_der();
        let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
        let sec1 = k.private_key().as_der().unwrap();
        let pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            STANDARD.encode(sec1.as_ref())
        );
        let key = SigningKey::from_pem(&pem).unwrap();
        assert!(key_matches_certificate(&key, &cert_for(&rc)).unwrap());
    }

    #[test]
    fn errors_and_debug_show_no_key_material() {
        assert!(matches!(
            SigningKey::from_pem("nothing"),
            Err(SignError::NoKey)
        ));
        let rc = RcKeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let key = SigningKey::from_pem(&rc.serialize_pem()).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(ES256)");
    }
}
