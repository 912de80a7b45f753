//! The whole verifier (spec §7) on arbitrary token bytes, with the fixture
//! trust anchor, clock and nonce store. The first byte picks whether the
//! device's certificate is presented as the mutual-TLS one and whether the
//! nonce is checked; the rest is the token.
//!
//! Random bytes rarely get past the signature; `claims_parse` signs what it
//! fuzzes to reach the checks after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_core::attestation::NonceCheck;
use posture_gate_fuzz::{fixed_now, fixture, OneNonce};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, token)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let client = (mode & 1 == 1).then(|| f.chain[0].as_ref());
    let nonce = if mode & 2 == 2 {
        NonceCheck::Check(&OneNonce)
    } else {
        NonceCheck::Skip
    };
    let now = fixed_now();
    if let Ok(v) = f.verifier.verify(token, client, now, nonce) {
        // Only the fixture device can sign, so only it can be admitted, and
        // nothing admitted is already past its validity.
        assert_eq!(
            v.device.fingerprint_sha256,
            fingerprint(f.chain[0].as_ref())
        );
        assert!(
            v.valid_until >= now,
            "admitted a token valid until {}",
            v.valid_until
        );
        assert!(v.claims.check_limits().is_ok());
    }
});

fn fingerprint(der: &[u8]) -> String {
    posture_core::device::DeviceIdentity::from_der(der)
        .map(|d| d.fingerprint_sha256)
        .unwrap_or_default()
}
