//! The decision over remembered postures: who a posture belongs to, when it
//! ages out, and which catalogue it was assessed with.

use posture_core::attestation::Verified;
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

/// Postures know their catalogue by `Arc`: one built anew, even with the
/// same content, is another catalogue (a reload keeps the old `Arc` when
/// the content is equal; see `gate::reload`).
#[test]
fn a_posture_assessed_with_another_catalogue_must_be_made_again() {
    let (old, new) = (snapshot(), snapshot());
    let a = identity("lt-a");
    let t = now();
    let p = posture_of(&old, &a, t);
    assert!(p.is_current(&old) && !p.is_current(&new));
    assert_eq!(
        decide(&new, Some(&a), Some(&p), 0, t),
        Outcome::Deny(Denial::CatalogueChanged)
    );
}

