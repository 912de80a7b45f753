//! The encoding of a posture in a shared store: one version byte, then
//! JSON of a versioned wire struct. A gate reads only the versions it
//! knows; anything else (another version, bytes that do not decode, a
//! posture bound to another certificate than its key names, one already
//! expired) is refused with a [`WireError`], and the store treats it as
//! absent: a value in a shared store is never trusted to be what this gate
//! wrote.
//!
//! JSON rather than a denser binary encoding: a posture is a few hundred
//! bytes (the assessment keeps only catalogue matches), the decode runs
//! once per near-cache refresh rather than per request, and an operator can
//! read a value with `redis-cli GET`. `deny_unknown_fields` makes a value
//! of a later layout under the same version byte a refusal, not a misread.

use serde::{Deserialize, Serialize};

use super::Fingerprint;
use crate::catalogue::CatalogueDigest;
use crate::decision::Posture;
use crate::policy::Assessment;

/// The version byte of the current encoding. A later layout takes another
/// byte, so a gate of this version treats it as absent.
pub const POSTURE_V1: u8 = 1;

/// Why a stored value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Empty, or a version byte this gate does not know.
    #[error("unknown posture encoding version {0:?}")]
    Version(Option<u8>),
    /// The bytes after the version do not decode as its layout.
    #[error("the posture does not decode: {0}")]
    Malformed(String),
    /// The posture names another certificate than the key it was found
    /// under: never served for the key's certificate.
    #[error("the posture is bound to another certificate than its key")]
    WrongFingerprint,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireV1 {
    /// The certificate fingerprint, hex.
    fingerprint: String,
    valid_until: i64,
    /// The catalogue digest, hex.
    catalogue: String,
    assessment: Assessment,
}

/// The stored bytes of a posture.
pub fn encode_posture(posture: &Posture) -> Vec<u8> {
    let wire = WireV1 {
        fingerprint: hex::encode(posture.fingerprint()),
        valid_until: posture.valid_until,
        catalogue: hex::encode(posture.catalogue_digest().as_bytes()),
        assessment: posture.assessment().clone(),
    };
    let mut out = vec![POSTURE_V1];
    // Serialising plain strings, numbers and enums cannot fail.
    serde_json::to_writer(&mut out, &wire).unwrap_or_default();
    out
}

/// The posture stored under `key`'s fingerprint, checked: see the module
/// docs. Expiry is the caller's (and the store's) to check.
pub fn decode_posture(bytes: &[u8], key: &Fingerprint) -> Result<Posture, WireError> {
    let (version, body) = match bytes.split_first() {
        Some((v, body)) => (*v, body),
        None => return Err(WireError::Version(None)),
    };
    if version != POSTURE_V1 {
        return Err(WireError::Version(Some(version)));
    }
    let wire: WireV1 =
        serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    let fingerprint = hex32(&wire.fingerprint).ok_or_else(|| {
        WireError::Malformed("the fingerprint is not 32 bytes of hex".to_string())
    })?;
    if &fingerprint != key {
        return Err(WireError::WrongFingerprint);
    }
    let catalogue = hex32(&wire.catalogue).ok_or_else(|| {
        WireError::Malformed("the catalogue digest is not 32 bytes of hex".to_string())
    })?;
    Ok(Posture::from_parts(
        fingerprint,
        wire.valid_until,
        CatalogueDigest(catalogue),
        wire.assessment,
    ))
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}
