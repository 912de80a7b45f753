//! The claims parser on arbitrary payload JSON, then the checks after the
//! signature: a payload that parses is signed with the fixture device key
//! under a valid header and goes through the whole verifier, so the fuzzer
//! reaches `check_limits`, the profile, time and nonce checks, which random
//! tokens never do.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use posture_core::attestation::claims::{Claims, PROFILE_V1};
use posture_core::attestation::jws;
use posture_core::attestation::sign::sign_parts;
use posture_core::attestation::{NonceCheck, Reason};
use posture_gate_fuzz::{fixed_now, fixture, OneNonce};

fuzz_target!(|json: &[u8]| {
    let b64 = URL_SAFE_NO_PAD.encode(json);
    let Ok(claims) = jws::parse_payload::<Claims>(b64.as_bytes()) else {
        return;
    };
    // What parsed serialises and parses back to the same claims: the agent
    // writes with the same types the gate reads with.
    let again = serde_json::to_vec(&claims).expect("claims serialise");
    let back: Claims = jws::parse_payload(URL_SAFE_NO_PAD.encode(&again).as_bytes())
        .expect("serialised claims parse");
    assert_eq!(back, claims);

    let f = fixture();
    let x5c: Vec<String> = f
        .chain
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c.as_ref()))
        .collect();
    let header = serde_json::json!({ "alg": f.key.alg(), "typ": "eat+jwt", "x5c": x5c });
    let header = serde_json::to_vec(&header).expect("header");
    let token = sign_parts(&header, json, &f.key).expect("sign");
    let now = fixed_now();
    let client = Some(f.chain[0].as_ref());
    match f
        .verifier
        .verify(token.as_bytes(), client, now, NonceCheck::Check(&OneNonce))
    {
        Ok(v) => {
            assert_eq!(v.claims, claims);
            assert_eq!(v.claims.eat_profile.as_deref(), Some(PROFILE_V1));
            assert!(v.claims.check_limits().is_ok());
            assert!(v.valid_until >= now);
            assert!(v.claims.exp.is_none_or(|exp| exp > now));
        }
        Err(reason) => {
            // Signed by the device over its own chain, presented with its own
            // certificate, a payload that parsed: only the checks of the
            // claims themselves may refuse it.
            assert!(
                matches!(
                    reason,
                    Reason::TooLarge
                        | Reason::ProfileMismatch
                        | Reason::Stale
                        | Reason::FutureIat
                        | Reason::Expired
                        | Reason::NonceMissing
                        | Reason::NonceUnknown
                ),
                "{reason:?}"
            );
            if reason == Reason::TooLarge {
                assert!(claims.check_limits().is_err());
            }
        }
    }
});
