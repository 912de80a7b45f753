//! Verification of a posture attestation in the order of checks of spec
//! section 7; the first failure is the reason. Nothing in the payload is
//! decoded, let alone acted on, before the signature has been checked.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::chain::{ChainValidator, KeyKind, ValidatedChain};
use super::claims::{Claims, PROFILE_V1};
use super::jws::{self, Alg};
use super::Reason;
use crate::device::DeviceIdentity;

/// Chains kept by default; a few thousand devices share a handful of CAs and
/// each device has one leaf.
const DEFAULT_CHAIN_CACHE: u64 = 4096;

/// The time and challenge rules of spec section 3, from the `[attestation]`
/// section of the gate's configuration (`max_age`, `clock_skew`,
/// `require_nonce`).
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// An `iat` older than this is `stale`; also caps `valid_until`.
    /// Whole seconds count; default 15 minutes, at most 24 h in config.
    pub max_age: Duration,
    /// How far `iat` may lie in the future before it is `future_iat`; whole
    /// seconds count; default 60 s.
    pub clock_skew: Duration,
    /// Whether a token without `eat_nonce` is `nonce_missing`; default
    /// true. A present nonce is redeemed either way.
    pub require_nonce: bool,
}

impl Default for VerifierSettings {
    /// The defaults of spec section 3.
    fn default() -> Self {
        VerifierSettings {
            max_age: Duration::from_secs(15 * 60),
            clock_skew: Duration::from_secs(60),
            require_nonce: true,
        }
    }
}

/// Why a [`Verifier`] could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// webpki cannot make a trust anchor of this certificate.
    #[error("attestation trust anchor {index} is not a usable certificate: {reason}")]
    BadTrustAnchor {
        /// 0-based position in the slice given to [`Verifier::new`].
        index: usize,
        /// webpki's error, for the operator.
        reason: String,
    },
    /// The anchor list is empty: no token could ever be valid.
    #[error("no attestation trust anchors configured")]
    NoTrustAnchors,
    /// webpki cannot parse this CRL.
    #[error("CRL {index} does not parse: {reason}")]
    BadCrl {
        /// 0-based position in the slice given to [`Verifier::with_crls`].
        index: usize,
        /// webpki's error, for the operator.
        reason: String,
    },
}

/// What the gate's nonce store says about a nonce it is asked to redeem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceVerdict {
    /// Issued, not expired, never redeemed before: now redeemed.
    Fresh,
    /// Never issued, or expired (no longer one the gate issued as valid).
    Unknown,
    /// Issued and already redeemed.
    Replayed,
}

/// The nonces the gate issued at its challenge endpoint (spec section 4),
/// implemented by the server; the verifier only redeems. Called last, once
/// every other check has passed, so a refused token never uses up a nonce.
pub trait NonceRedeemer: Send + Sync {
    /// Redeems `nonce` at `now` (Unix seconds): at most one call per nonce
    /// may ever answer [`NonceVerdict::Fresh`], however many race.
    fn redeem(&self, nonce: &str, now: i64) -> NonceVerdict;
}

/// Whether [`Verifier::verify`] checks `eat_nonce`.
pub enum NonceCheck<'a> {
    /// The offline `verify` command: `eat_nonce` is not looked at at all.
    Skip,
    /// The gate: redeem the nonce in this store; missing is refused when
    /// [`VerifierSettings::require_nonce`] is set.
    Check(&'a dyn NonceRedeemer),
}

/// A token that passed every check of spec section 7.
#[derive(Debug, Clone)]
pub struct Verified {
    /// From the client certificate when one was presented, otherwise from
    /// the `x5c` leaf (spec section 7); never from the claims.
    pub device: DeviceIdentity,
    /// The payload, within the limits of spec section 3.
    pub claims: Claims,
    /// `claims.iat`, Unix seconds.
    pub iat: i64,
    /// Earlier of iat + max_age, exp, leaf notAfter (spec §7).
    pub valid_until: i64,
    /// The `x5c` leaf's notAfter, Unix seconds.
    pub leaf_not_after: i64,
}

/// Built once per config snapshot; `Send + Sync`, shared by all requests.
pub struct Verifier {
    settings: VerifierSettings,
    chains: ChainValidator,
}

impl Verifier {
    /// A verifier for tokens whose `x5c` chains to one of `trust_anchors`
    /// (DER), with a chain cache of 4096 entries.
    pub fn new(
        trust_anchors: &[CertificateDer<'_>],
        settings: VerifierSettings,
    ) -> Result<Verifier, VerifierError> {
        Self::with_chain_cache(trust_anchors, settings, DEFAULT_CHAIN_CACHE)
    }

    /// As [`Verifier::new`] with a chain cache of `capacity` entries; 0 turns
    /// it off (benchmarks of the cold path, tests).
    pub fn with_chain_cache(
        trust_anchors: &[CertificateDer<'_>],
        settings: VerifierSettings,
        capacity: u64,
    ) -> Result<Verifier, VerifierError> {
        if trust_anchors.is_empty() {
            return Err(VerifierError::NoTrustAnchors);
        }
        let anchors = trust_anchors
            .iter()
            .enumerate()
            .map(|(index, der)| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|e| VerifierError::BadTrustAnchor {
                        index,
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Verifier {
            settings,
            chains: ChainValidator::new(anchors, capacity),
        })
    }

    /// Checks every `x5c` chain against these CRLs too (spec §1: a revoked
    /// certificate does not chain to a trusted anchor, `untrusted_chain`).
    /// A CRL speaks only for certificates of its own issuer: a chain under
    /// an anchor no CRL covers is not refused for that; one whose CRL is out
    /// of date is.
    pub fn with_crls(
        mut self,
        crls: &[rustls_pki_types::CertificateRevocationListDer<'_>],
    ) -> Result<Verifier, VerifierError> {
        let owned = crls
            .iter()
            .enumerate()
            .map(|(index, der)| {
                webpki::OwnedCertRevocationList::from_der(der.as_ref()).map_err(|e| {
                    VerifierError::BadCrl {
                        index,
                        reason: e.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // webpki keeps nextUpdate to itself; the cache needs it too.
        let until = crls
            .iter()
            .filter_map(|der| x509_parser::parse_x509_crl(der.as_ref()).ok())
            .filter_map(|(_, crl)| crl.next_update().map(|t| t.timestamp()))
            .min()
            .unwrap_or(i64::MAX);
        self.chains.set_crls(owned, until);
        Ok(self)
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &VerifierSettings {
        &self.settings
    }

    /// `now`: unix seconds. `client_cert`: the DER the device presented in
    /// mutual TLS, if any.
    pub fn verify(
        &self,
        token: &[u8],
        client_cert: Option<&[u8]>,
        now: i64,
        nonce: NonceCheck<'_>,
    ) -> Result<Verified, Reason> {
        if token.len() > jws::MAX_TOKEN_BYTES {
            return Err(Reason::TooLarge);
        }
        let compact = jws::split(token)?;
        let header = jws::parse_header(compact.header_b64)?;
        let chain = self.chains.validate(&header.x5c, now)?;
        check_signature(
            header.alg,
            &chain,
            compact.signing_input,
            &compact.signature,
        )?;
        let device = bind_device(&chain, client_cert)?;
        let claims: Claims = jws::parse_payload(compact.payload_b64)?;
        claims.check_limits().map_err(|_| Reason::TooLarge)?;
        self.check_claims(&claims, now)?;
        check_nonce(&claims, self.settings.require_nonce, now, nonce)?;
        let max_age = i64::try_from(self.settings.max_age.as_secs()).unwrap_or(i64::MAX);
        let mut valid_until = claims.iat.saturating_add(max_age).min(chain.leaf_not_after);
        if let Some(exp) = claims.exp {
            valid_until = valid_until.min(exp);
        }
        Ok(Verified {
            device,
            iat: claims.iat,
            claims,
            valid_until,
            leaf_not_after: chain.leaf_not_after,
        })
    }

    /// `eat_profile`, then `exp`, then `iat` (spec §7).
    fn check_claims(&self, claims: &Claims, now: i64) -> Result<(), Reason> {
        if claims.eat_profile.as_deref() != Some(PROFILE_V1) {
            return Err(Reason::ProfileMismatch);
        }
        // RFC 7519 §4.1.4: the token must not be accepted on or after exp.
        if claims.exp.is_some_and(|exp| now >= exp) {
            return Err(Reason::Expired);
        }
        let max_age = i64::try_from(self.settings.max_age.as_secs()).unwrap_or(i64::MAX);
        let skew = i64::try_from(self.settings.clock_skew.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(claims.iat) > max_age {
            return Err(Reason::Stale);
        }
        if claims.iat.saturating_sub(now) > skew {
            return Err(Reason::FutureIat);
        }
        Ok(())
    }
}

/// The algorithm comes from the leaf's key type; the header must agree.
///
/// A header `alg` on the allow-list that does not fit the leaf's key (ES256
/// with an Ed25519 leaf, EdDSA with a P-256 or RSA leaf) is `bad_signature`,
/// not `unsupported_alg`: the algorithm itself is accepted, but the bytes
/// cannot be a valid signature by this key under it (RFC 8725 §3.1, key
/// confusion fails verification). `unsupported_alg` stays reserved for names
/// off the allow-list, decided from the header alone.
fn check_signature(
    alg: Alg,
    chain: &ValidatedChain,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), Reason> {
    let agrees = matches!(
        (alg, chain.key_kind),
        (Alg::Es256, KeyKind::P256) | (Alg::Es384, KeyKind::P384) | (Alg::EdDsa, KeyKind::Ed25519)
    );
    let key = chain
        .key
        .as_ref()
        .filter(|_| agrees)
        .ok_or(Reason::BadSignature)?;
    key.verify_sig(signing_input, signature)
        .map_err(|_| Reason::BadSignature)
}

/// Spec §2: the leaf's SubjectPublicKeyInfo must equal the client
/// certificate's, byte for byte. The identity is the client certificate's
/// when one was presented (spec §7), else the leaf's.
fn bind_device(
    chain: &Arc<ValidatedChain>,
    client_cert: Option<&[u8]>,
) -> Result<DeviceIdentity, Reason> {
    let Some(der) = client_cert else {
        return Ok(chain.leaf_identity.clone());
    };
    // The usual case: the device presents the very certificate it put in
    // x5c, whose identity the chain already holds.
    if der == chain.leaf_der.as_slice() {
        return Ok(chain.leaf_identity.clone());
    }
    // A client certificate that does not parse cannot be shown to share the
    // leaf's key: fail closed.
    let cert = match X509Certificate::from_der(der) {
        Ok(([], cert)) => cert,
        _ => return Err(Reason::KeyMismatch),
    };
    if cert.public_key().raw != chain.leaf_spki.as_slice() {
        return Err(Reason::KeyMismatch);
    }
    Ok(DeviceIdentity::from_parsed(der, &cert))
}

fn check_nonce(
    claims: &Claims,
    required: bool,
    now: i64,
    nonce: NonceCheck<'_>,
) -> Result<(), Reason> {
    let NonceCheck::Check(store) = nonce else {
        return Ok(());
    };
    match claims.eat_nonce.as_deref() {
        None if required => Err(Reason::NonceMissing),
        None => Ok(()),
        Some(n) => match store.redeem(n, now) {
            NonceVerdict::Fresh => Ok(()),
            NonceVerdict::Unknown => Err(Reason::NonceUnknown),
            NonceVerdict::Replayed => Err(Reason::NonceReplayed),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<Verified>();
    }

    #[test]
    fn defaults_follow_the_spec() {
        let s = VerifierSettings::default();
        assert_eq!(s.max_age, Duration::from_secs(900));
        assert_eq!(s.clock_skew, Duration::from_secs(60));
        assert!(s.require_nonce);
    }

    #[test]
    fn a_trust_anchor_that_does_not_parse_is_an_error() {
        let bad = [CertificateDer::from(&b"not a certificate"[..])];
        let err = Verifier::new(&bad, VerifierSettings::default()).err();
        assert!(matches!(
            err,
            Some(VerifierError::BadTrustAnchor { index: 0, .. })
        ));
        assert!(matches!(
            Verifier::new(&[], VerifierSettings::default()).err(),
            Some(VerifierError::NoTrustAnchors)
        ));
    }
}
