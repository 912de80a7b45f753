//! What the fuzz targets share: a fixed attestation PKI and clock, so a
//! token in the seed corpus verifies today and in every later run.
//!
//! `fixtures/` holds a development root CA, a device chain and the device's
//! key, made once by `cargo run --example make_seeds` (see README.md). They
//! are test material for the fuzzer only; nothing trusts them.

use std::sync::OnceLock;

use posture_core::attestation::sign::SigningKey;
use posture_core::attestation::{NonceRedeemer, NonceVerdict, Verifier, VerifierSettings};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The fixed "now" of every run, inside the validity of the fixture chain.
pub fn fixed_now() -> i64 {
    include_str!("../fixtures/now").trim().parse().unwrap_or(0)
}

/// The nonce the fuzzers' nonce store redeems (once per verification).
pub const NONCE: &str = "fuzz-nonce-0123456789abcdef";

pub struct Fixture {
    pub verifier: Verifier,
    /// `[leaf, device CA]`, DER.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: SigningKey,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = CertificateDer::from_pem_slice(include_bytes!("../fixtures/ca.pem"))
            .expect("fixtures/ca.pem");
        let chain = CertificateDer::pem_slice_iter(include_bytes!("../fixtures/device-cert.pem"))
            .collect::<Result<Vec<_>, _>>()
            .expect("fixtures/device-cert.pem");
        let key = SigningKey::from_pem(include_str!("../fixtures/device-key.pem"))
            .expect("fixtures/device-key.pem");
        let settings = VerifierSettings {
            require_nonce: false,
            ..VerifierSettings::default()
        };
        // No chain cache: every input takes the whole path, and a cache hit
        // would make a run's behaviour depend on the inputs before it.
        let verifier = Verifier::with_chain_cache(&[root], settings, 0).expect("verifier");
        Fixture {
            verifier,
            chain,
            key,
        }
    })
}

/// Redeems [`NONCE`] as fresh, calls everything else unknown.
pub struct OneNonce;

impl NonceRedeemer for OneNonce {
    fn redeem(&self, nonce: &str, _now: i64) -> NonceVerdict {
        if nonce == NONCE {
            NonceVerdict::Fresh
        } else {
            NonceVerdict::Unknown
        }
    }
}
