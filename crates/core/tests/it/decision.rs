//! The decision over remembered postures: who a posture belongs to, when it
//! ages out, and which catalogue it was assessed with.

use std::path::Path;
use std::sync::Arc;

use posture_core::attestation::Verified;
use posture_core::catalogue::Catalogue;
use posture_core::config::Snapshot;
use posture_core::decision::{decide, Denial, Outcome, Posture};
use posture_core::device::DeviceIdentity;
use posture_testkit::token::{now, valid_claims};
use sha2::Digest;

fn identity(cn: &str) -> DeviceIdentity {
    let fingerprint: [u8; 32] = sha2::Sha256::digest(cn.as_bytes()).into();
    DeviceIdentity {
        fingerprint_sha256: hex::encode(fingerprint),
        fingerprint,
        subject: format!("CN={cn}"),
        organization: None,
        organizational_units: Vec::new(),
        subject_name: posture_core::dn::DistinguishedName::parse(&format!("CN={cn}")).ok(),
    }
}

fn posture_of(snapshot: &Snapshot, device: &DeviceIdentity, t: i64) -> Posture {
    let verified = Verified {
        device: device.clone(),
        claims: valid_claims(t),
        iat: t,
        valid_until: t + 900,
        leaf_not_after: t + 86_400,
    };
    Posture::new(snapshot, &verified)
}

fn snapshot() -> Snapshot {
    Snapshot::builtin_default(Vec::new()).unwrap()
}

#[test]
fn a_clean_posture_is_allowed_for_its_own_certificate_only() {
    let s = snapshot();
    let (a, b) = (identity("lt-a"), identity("lt-b"));
    let t = now();
    let p = posture_of(&s, &a, t);
    assert_eq!(decide(&s, Some(&a), Some(&p), 0, t), Outcome::Allow);
    assert_eq!(
        decide(&s, Some(&b), Some(&p), 0, t),
        Outcome::Deny(Denial::NoPosture)
    );
    assert_eq!(
        decide(&s, None, Some(&p), 0, t),
        Outcome::Deny(Denial::NoCertificate)
    );
}

#[test]
fn a_posture_is_stale_from_valid_until_on() {
    let s = snapshot();
    let a = identity("lt-a");
    let t = now();
    let p = posture_of(&s, &a, t);
    assert_eq!(
        decide(&s, Some(&a), Some(&p), 0, t + 900),
        Outcome::Deny(Denial::StalePosture {
            valid_until: t + 900
        })
    );
}

/// Postures know their catalogue by its content hash: a snapshot built
/// anew with the same catalogue (a reload that kept it, another replica)
/// keeps them current; one with a changed catalogue does not.
#[test]
fn a_posture_assessed_with_another_catalogue_must_be_made_again() {
    let (old, same) = (snapshot(), snapshot());
    let a = identity("lt-a");
    let t = now();
    let p = posture_of(&old, &a, t);
    assert!(p.is_current(&old) && p.is_current(&same));
    assert_eq!(decide(&same, Some(&a), Some(&p), 0, t), Outcome::Allow);

    let mut changed = snapshot();
    let mut catalogue = (*changed.catalogue).clone();
    catalogue.merge(Catalogue::from_toml_str(EXTRA_ENTRY, Path::new("extra.toml")).unwrap());
    changed.catalogue = Arc::new(catalogue);
    assert!(!p.is_current(&changed));
    assert_eq!(
        decide(&changed, Some(&a), Some(&p), 0, t),
        Outcome::Deny(Denial::CatalogueChanged)
    );
}

const EXTRA_ENTRY: &str = r#"
[[entry]]
id = "voorbeeld"
title = { nl = "Voorbeeld", en = "Example" }
rationale = { nl = "Omdat.", en = "Because." }
references = []

[entry.removal.generic]
nl = ["Verwijder het."]
en = ["Remove it."]

[[entry.identifier]]
kind = "vendor"
values = ["Voorbeeld BV"]
"#;

// ---------------------------------------------------------------------------
// The shared store's encoding (issue 15): read back as written, or refused.

use posture_core::store::wire::{decode_posture, encode_posture, WireError, POSTURE_V1};

#[test]
fn a_stored_posture_decodes_to_the_same_decisions() {
    let s = snapshot();
    let a = identity("lt-a");
    let t = now();
    let mut claims = valid_claims(t);
    claims.software.push(
        serde_json::from_value(serde_json::json!({
            "name": "Kaspersky Endpoint Security", "vendor": "AO Kaspersky Lab"
        }))
        .unwrap(),
    );
    let verified = Verified {
        device: a.clone(),
        claims,
        iat: t,
        valid_until: t + 900,
        leaf_not_after: t + 86_400,
    };
    for p in [posture_of(&s, &a, t), Posture::new(&s, &verified)] {
        let bytes = encode_posture(&p);
        assert_eq!(bytes[0], POSTURE_V1);
        let back = decode_posture(&bytes, &a.fingerprint).unwrap();
        assert_eq!(back.valid_until, p.valid_until);
        assert_eq!(back.assessment(), p.assessment());
        assert!(back.is_current(&s));
        assert_eq!(
            decide(&s, Some(&a), Some(&back), 0, t),
            decide(&s, Some(&a), Some(&p), 0, t)
        );
    }
    let denied = decode_posture(
        &encode_posture(&Posture::new(&s, &verified)),
        &a.fingerprint,
    );
    assert!(matches!(
        decide(&s, Some(&a), Some(&denied.unwrap()), 0, t),
        Outcome::Deny(Denial::Prohibited(_))
    ));
}

#[test]
fn a_stored_value_that_is_not_what_this_gate_writes_is_refused() {
    let s = snapshot();
    let (a, b) = (identity("lt-a"), identity("lt-b"));
    let bytes = encode_posture(&posture_of(&s, &a, now()));
    // Under another certificate's key.
    assert_eq!(
        decode_posture(&bytes, &b.fingerprint).unwrap_err(),
        WireError::WrongFingerprint
    );
    // Another version: a later gate's layout is absent, never misread.
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert_eq!(
        decode_posture(&v2, &a.fingerprint).unwrap_err(),
        WireError::Version(Some(2))
    );
    assert_eq!(
        decode_posture(&[], &a.fingerprint).unwrap_err(),
        WireError::Version(None)
    );
    // Garbage, truncation, and a field this version does not know.
    for bad in [
        b"\x01not json".to_vec(),
        bytes[..bytes.len() - 5].to_vec(),
        [&bytes[..bytes.len() - 1], b",\"extra\":1}"].concat(),
    ] {
        assert!(
            matches!(
                decode_posture(&bad, &a.fingerprint),
                Err(WireError::Malformed(_))
            ),
            "{}",
            String::from_utf8_lossy(&bad)
        );
    }
}
