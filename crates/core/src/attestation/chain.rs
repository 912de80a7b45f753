//! The `x5c` chain: leaf -> (other `x5c` entries only) -> a configured trust
//! anchor, every certificate on the path valid at `now` (spec §1, §7).
//! Path building and signature checks are rustls-webpki's; the leaf's
//! keyUsage, which webpki does not look at, is checked here.
//!
//! Validated chains are kept in a small bounded cache keyed by SHA-256 over
//! the `x5c` DERs. A hit still checks the validity window of every
//! certificate on the path against `now`; anything outside it falls back to
//! the full validation, so the cache can only ever speed up a success. The
//! cache lives inside one `Verifier`, which is built per anchor set.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{
    ParsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED,
    ED25519,
};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Reason;
use crate::device::DeviceIdentity;

/// DER contents of the key type OIDs the allow-list needs.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The type of the leaf's public key, which decides the signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// EC key on P-256 (secp256r1): signs `ES256`.
    P256,
    /// EC key on P-384 (secp384r1): signs `ES384`.
    P384,
    /// Ed25519 key: signs `EdDSA`.
    Ed25519,
    /// RSA or anything else: no JWS algorithm on the allow-list fits.
    Other,
}

/// What the rest of verification needs from a validated chain.
pub struct ValidatedChain {
    /// DER of the leaf: a client certificate equal to it needs no parsing.
    pub leaf_der: Vec<u8>,
    /// DER of the leaf's SubjectPublicKeyInfo, for device binding.
    pub leaf_spki: Vec<u8>,
    /// Decides which header `alg` can verify (the header must agree).
    pub key_kind: KeyKind,
    /// `None` when the key does not parse for its type: no signature can
    /// verify with it.
    pub key: Option<ParsedPublicKey>,
    /// The leaf's notAfter, Unix seconds: one bound of `valid_until` (spec
    /// section 7).
    pub leaf_not_after: i64,
    /// The device identity of the leaf, computed once per chain: used when
    /// no client certificate was presented, or it is the leaf itself.
    pub leaf_identity: DeviceIdentity,
    /// Every certificate on the path is valid from `valid_from` to
    /// `valid_to`, both inclusive (as webpki counts).
    valid_from: i64,
    valid_to: i64,
}

impl ValidatedChain {
    fn valid_at(&self, now: i64) -> bool {
        self.valid_from <= now && now <= self.valid_to
    }
}

/// Validates `x5c` chains against one set of attestation trust anchors
/// (and optional CRLs), with the bounded cache of validated chains. Owned
/// by a `Verifier`; `Send + Sync`.
pub struct ChainValidator {
    anchors: Vec<TrustAnchor<'static>>,
    cache: Option<moka::sync::Cache<[u8; 32], Arc<ValidatedChain>>>,
    /// Revocation input for the path; empty: none configured.
    crls: Vec<webpki::CertRevocationList<'static>>,
    /// The earliest nextUpdate of `crls`: a cached chain is not trusted
    /// past it, so an out-of-date CRL is met by the full check.
    crls_until: i64,
}

impl ChainValidator {
    /// `cache_capacity` 0 turns the cache off.
    pub fn new(anchors: Vec<TrustAnchor<'static>>, cache_capacity: u64) -> ChainValidator {
        let cache = (cache_capacity > 0).then(|| moka::sync::Cache::new(cache_capacity));
        ChainValidator {
            anchors,
            cache,
            crls: Vec::new(),
            crls_until: i64::MAX,
        }
    }

    /// Replaces the CRLs and forgets every cached chain, which was checked
    /// without them.
    /// `until`: the earliest nextUpdate among them.
    pub fn set_crls(&mut self, crls: Vec<webpki::OwnedCertRevocationList>, until: i64) {
        self.crls_until = until;
        self.crls = crls.into_iter().map(Into::into).collect();
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    /// Validates the decoded `x5c` (leaf first) at `now`, Unix seconds.
    /// Errors: `malformed` (DER), `untrusted_chain`, `cert_expired`.
    pub fn validate(&self, x5c: &[Vec<u8>], now: i64) -> Result<Arc<ValidatedChain>, Reason> {
        let Some(cache) = &self.cache else {
            return self.validate_cold(x5c, now).map(Arc::new);
        };
        let key = cache_key(x5c);
        if let Some(hit) = cache.get(&key) {
            if hit.valid_at(now) && now < self.crls_until {
                return Ok(hit);
            }
        }
        let chain = Arc::new(self.validate_cold(x5c, now)?);
        cache.insert(key, Arc::clone(&chain));
        Ok(chain)
    }

    fn validate_cold(&self, x5c: &[Vec<u8>], now: i64) -> Result<ValidatedChain, Reason> {
        let parsed = x5c
            .iter()
            .map(|der| parse_x509(der))
            .collect::<Result<Vec<_>, _>>()?;
        let (leaf_der, leaf) = match (x5c.first(), parsed.first()) {
            (Some(der), Some(cert)) => (der, cert),
            _ => return Err(Reason::Malformed),
        };
        let (valid_from, valid_to) = self.verify_path(x5c, &parsed, now)?;
        check_leaf_key_usage(leaf)?;
        let spki = leaf.public_key();
        let key_kind = key_kind(leaf);
        let key = parsed_key(key_kind, &spki.subject_public_key.data);
        Ok(ValidatedChain {
            leaf_der: leaf_der.clone(),
            leaf_spki: spki.raw.to_vec(),
            key_kind,
            key,
            leaf_not_after: leaf.validity().not_after.timestamp(),
            leaf_identity: DeviceIdentity::from_parsed(leaf_der, leaf),
            valid_from,
            valid_to,
        })
    }

    /// Runs webpki and returns the validity window shared by every
    /// certificate on the path it found.
    fn verify_path(
        &self,
        x5c: &[Vec<u8>],
        parsed: &[X509Certificate<'_>],
        now: i64,
    ) -> Result<(i64, i64), Reason> {
        let leaf_der = CertificateDer::from(x5c[0].as_slice());
        let leaf = EndEntityCert::try_from(&leaf_der).map_err(webpki_parse_reason)?;
        let intermediates: Vec<CertificateDer<'_>> = x5c[1..]
            .iter()
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect();
        let time = UnixTime::since_unix_epoch(Duration::from_secs(now.max(0) as u64));
        let crls: Vec<&webpki::CertRevocationList<'_>> = self.crls.iter().collect();
        // Unknown status is allowed: attestation anchors need not be the
        // client CA the CRLs are for. A CRL that does speak for a
        // certificate must be current.
        let revocation = webpki::RevocationOptionsBuilder::new(&crls).ok().map(|b| {
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                .build()
        });
        let path = leaf
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &intermediates,
                time,
                KeyUsage::client_auth(),
                revocation,
                None,
            )
            .map_err(path_reason)?;
        let mut from = parsed[0].validity().not_before.timestamp();
        let mut to = parsed[0].validity().not_after.timestamp();
        for cert in path.intermediate_certificates() {
            let der = cert.der();
            let Some(i) = x5c.iter().position(|d| d.as_slice() == der.as_ref()) else {
                continue;
            };
            from = from.max(parsed[i].validity().not_before.timestamp());
            to = to.min(parsed[i].validity().not_after.timestamp());
        }
        Ok((from, to))
    }
}

fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>, Reason> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(Reason::Malformed),
    }
}

/// SHA-256 over the length-prefixed DERs, so that no two different lists
/// share a key.
fn cache_key(x5c: &[Vec<u8>]) -> [u8; 32] {
    let mut h = Sha256::new();
    for der in x5c {
        h.update((der.len() as u64).to_be_bytes());
        h.update(der);
    }
    h.finalize().into()
}

/// x509-parser accepted the DER; webpki refusing its encoding is still "DER
/// that does not parse", anything else is a certificate it will not trust.
fn webpki_parse_reason(e: webpki::Error) -> Reason {
    match e {
        webpki::Error::BadDer | webpki::Error::BadDerTime | webpki::Error::TrailingData(_) => {
            Reason::Malformed
        }
        other => path_reason(other),
    }
}

/// webpki reports validity as its own variants: spec §7 makes both
/// `cert_expired`. Every other path failure is `untrusted_chain`.
fn path_reason(e: webpki::Error) -> Reason {
    match e {
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
            Reason::CertExpired
        }
        _ => Reason::UntrustedChain,
    }
}

/// A leaf whose keyUsage leaves out digitalSignature was not issued for
/// signing (RFC 5280 §4.2.1.3); webpki does not check it.
fn check_leaf_key_usage(leaf: &X509Certificate<'_>) -> Result<(), Reason> {
    match leaf.key_usage() {
        Ok(None) => Ok(()),
        Ok(Some(ku)) if ku.value.digital_signature() => Ok(()),
        _ => Err(Reason::UntrustedChain),
    }
}

fn key_kind(cert: &X509Certificate<'_>) -> KeyKind {
    let alg = &cert.public_key().algorithm;
    let oid = alg.algorithm.as_bytes();
    if oid == OID_ED25519 {
        return KeyKind::Ed25519;
    }
    if oid != OID_EC_PUBLIC_KEY {
        return KeyKind::Other;
    }
    let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
    match curve.as_ref().map(|c| c.as_bytes()) {
        Some(c) if c == OID_P256 => KeyKind::P256,
        Some(c) if c == OID_P384 => KeyKind::P384,
        _ => KeyKind::Other,
    }
}

/// The JWS verification algorithm of each key type: JWS ECDSA signatures are
/// fixed-length r||s (RFC 7518 §3.4), not ASN.1.
fn jws_algorithm(kind: KeyKind) -> Option<&'static dyn VerificationAlgorithm> {
    match kind {
        KeyKind::P256 => Some(&ECDSA_P256_SHA256_FIXED),
        KeyKind::P384 => Some(&ECDSA_P384_SHA384_FIXED),
        KeyKind::Ed25519 => Some(&ED25519),
        KeyKind::Other => None,
    }
}

fn parsed_key(kind: KeyKind, public_key: &[u8]) -> Option<ParsedPublicKey> {
    ParsedPublicKey::new(jws_algorithm(kind)?, public_key).ok()
}
