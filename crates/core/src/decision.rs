//! The transport-free decision. The reverse proxy, forward-auth and 802.1X
//! all call these two functions, so a device is judged the same way at every
//! door:
//!
//! - [`attest`]: a token arrives -> it is verified (spec section 7) and
//!   assessed once against the catalogue, giving a [`Posture`] to remember and
//!   the verdict of spec section 5 to answer with;
//! - [`decide`]: a request for a segment arrives -> the device's remembered
//!   posture is judged by that segment's policy.

use std::collections::BTreeMap;

use rand::RngCore;

use crate::attestation::claims::Os;
use crate::attestation::{NonceCheck, Reason, Verified, Verifier};
use crate::catalogue::CatalogueDigest;
use crate::code::Code;
use crate::config::Snapshot;
use crate::device::DeviceIdentity;
pub use crate::policy::SegmentResult;
use crate::policy::{self, Assessment};
use crate::verdict::{Decision, Verdict};

/// What the gate remembers about a device between attestations: who it is,
/// until when, and the assessment of its report. The inventory itself is
/// not kept (see [`Assessment`]); the verdict to the agent is made before
/// it is dropped.
#[derive(Debug, Clone)]
pub struct Posture {
    /// SHA-256 of the certificate the attestation was bound to.
    fingerprint: [u8; 32],
    /// Unix seconds; the posture must not be used from then on.
    pub valid_until: i64,
    /// The content hash of the catalogue the assessment was made with. A
    /// reload that leaves the catalogue as it was has the same digest, so
    /// the posture stays current (in this process or in a shared store);
    /// one that changes it makes the posture stale, because a report that
    /// was not kept cannot be matched against the new entries.
    catalogue: CatalogueDigest,
    assessment: Assessment,
}

impl Posture {
    /// The posture of a verified token, assessed with `snapshot`'s catalogue.
    pub fn new(snapshot: &Snapshot, verified: &Verified) -> Posture {
        Posture {
            assessment: policy::assess(&snapshot.matcher, &verified.claims),
            catalogue: snapshot.catalogue.digest(),
            fingerprint: verified.device.fingerprint,
            valid_until: verified.valid_until,
        }
    }

    /// A posture from its parts, as a shared store keeps them
    /// ([`crate::store::wire`]).
    pub(crate) fn from_parts(
        fingerprint: [u8; 32],
        valid_until: i64,
        catalogue: CatalogueDigest,
        assessment: Assessment,
    ) -> Posture {
        Posture {
            fingerprint,
            valid_until,
            catalogue,
            assessment,
        }
    }

    /// The fingerprint of the certificate this posture was bound to.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// How long this posture may still be used from `now` (zero once it
    /// has aged out): what every store keeps it for.
    pub fn time_left(&self, now: i64) -> std::time::Duration {
        std::time::Duration::from_secs(self.valid_until.saturating_sub(now).max(0) as u64)
    }

    /// Whether this posture was bound to `device`'s certificate.
    pub fn belongs_to(&self, device: &DeviceIdentity) -> bool {
        device.fingerprint == self.fingerprint
    }

    /// Whether the assessment was made with this snapshot's catalogue.
    pub fn is_current(&self, snapshot: &Snapshot) -> bool {
        self.catalogue == snapshot.catalogue.digest()
    }

    /// The digest of the catalogue the assessment was made with.
    pub fn catalogue_digest(&self) -> CatalogueDigest {
        self.catalogue
    }

    /// What the report was found to contain, per catalogue entry.
    pub fn assessment(&self) -> &Assessment {
        &self.assessment
    }

    /// The OS as the device reported it, for the removal steps on a page.
    pub fn os(&self) -> &Os {
        &self.assessment.os
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No client certificate at the TLS handshake.
    NoCertificate,
    /// A client certificate was presented but failed verification: judged
    /// as [`Denial::NoCertificate`], with the problem named.
    CertificateRejected(std::sync::Arc<crate::certificate::RejectedCert>),
    /// The client certificate is revoked by a CRL of the current
    /// configuration; checked on every request, not only at the handshake.
    CertificateRevoked,
    /// CRLs are configured, but none that is current speaks for the client
    /// certificate: what a new handshake would refuse.
    RevocationUnknown,
    /// No attestation remembered for this device.
    NoPosture,
    /// The remembered attestation has aged out.
    StalePosture {
        /// Unix seconds from which the posture was no longer used.
        valid_until: i64,
    },
    /// The catalogue changed since the remembered attestation was assessed:
    /// the device must report again to be judged against the new entries.
    CatalogueChanged,
    /// An attestation sent with the request did not verify.
    InvalidAttestation(Reason),
    /// The segment's policy denies this posture.
    Prohibited(SegmentResult),
    /// The posture store could not be asked: refused, never guessed.
    PostureStoreUnavailable,
    /// An inline token's nonce could not be recorded as used now: refused
    /// (an unrecorded nonce could be used twice); try again shortly.
    NonceNotRecorded,
}

impl Denial {
    /// The code of this denial, for the audit log, the page and metrics.
    pub fn code(&self) -> Code {
        match self {
            Denial::NoCertificate => Code::NoCertificate,
            Denial::CertificateRejected(rejected) => rejected.code(),
            Denial::CertificateRevoked => Code::CertRevoked,
            Denial::RevocationUnknown => Code::RevocationUnknown,
            Denial::NoPosture => Code::NoPosture,
            Denial::StalePosture { .. } => Code::StalePosture,
            Denial::CatalogueChanged => Code::CatalogueChanged,
            Denial::InvalidAttestation(r) => Code::Attestation(*r),
            Denial::Prohibited(_) => Code::Prohibited,
            Denial::PostureStoreUnavailable => Code::PostureStoreUnavailable,
            Denial::NonceNotRecorded => Code::NonceNotRecorded,
        }
    }
}

/// What a request for a segment comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Let through.
    Allow,
    /// Let through, but the upstream and the audit log are told why.
    Warn(SegmentResult),
    /// Refused, for this reason.
    Deny(Denial),
}

impl Outcome {
    /// The decision word of spec section 5.
    pub fn decision(&self) -> Decision {
        match self {
            Outcome::Allow => Decision::Allow,
            Outcome::Warn(_) => Decision::Warn,
            Outcome::Deny(_) => Decision::Deny,
        }
    }
}

/// Verifies a token and judges it for every segment.
pub fn attest(
    snapshot: &Snapshot,
    verifier: &Verifier,
    token: &[u8],
    client_cert_der: Option<&[u8]>,
    now: i64,
    nonce: NonceCheck<'_>,
) -> Result<(Posture, Verdict), Reason> {
    let verified = verifier.verify(token, client_cert_der, now, nonce)?;
    let posture = Posture::new(snapshot, &verified);
    let verdict = verdict(snapshot, &verified.device, &posture, now);
    Ok((posture, verdict))
}

/// The verdict of spec section 5 for a posture just made with `snapshot`,
/// over every segment.
pub(crate) fn verdict(
    snapshot: &Snapshot,
    device: &DeviceIdentity,
    posture: &Posture,
    now: i64,
) -> Verdict {
    let assessment = &posture.assessment;
    let today = policy::utc_day(now);
    let mut decisions = BTreeMap::new();
    let mut findings = Vec::new();
    let mut unmet = Vec::new();
    for (i, seg) in snapshot.segments.iter().enumerate() {
        let r = policy::evaluate_segment(snapshot, i, device, assessment, today);
        decisions.insert(seg.name.clone(), r.decision);
        findings.extend(r.findings);
        unmet.extend(r.unmet);
    }
    Verdict {
        valid: true,
        device: device.clone(),
        valid_until: rfc3339(posture.valid_until),
        decisions,
        findings,
        unmet,
    }
}

/// Judges one request for `segment` (an index into `snapshot.segments`).
/// `client` is the identity of the TLS client certificate, if any; `posture`
/// what is remembered for it.
pub fn decide(
    snapshot: &Snapshot,
    client: Option<&DeviceIdentity>,
    posture: Option<&Posture>,
    segment: usize,
    now: i64,
) -> Outcome {
    let Some(client) = client else {
        return Outcome::Deny(Denial::NoCertificate);
    };
    // A posture belongs to exactly one certificate; callers key their cache
    // by fingerprint, and this check keeps a mix-up from becoming an allow.
    let Some(posture) = posture.filter(|p| p.belongs_to(client)) else {
        return Outcome::Deny(Denial::NoPosture);
    };
    if now >= posture.valid_until {
        return Outcome::Deny(Denial::StalePosture {
            valid_until: posture.valid_until,
        });
    }
    if !posture.is_current(snapshot) {
        return Outcome::Deny(Denial::CatalogueChanged);
    }
    let result = policy::evaluate_segment(
        snapshot,
        segment,
        client,
        &posture.assessment,
        policy::utc_day(now),
    );
    match result.decision {
        Decision::Allow => Outcome::Allow,
        Decision::Warn => Outcome::Warn(result),
        Decision::Deny => Outcome::Deny(Denial::Prohibited(result)),
    }
}

/// A short reference code for a decision, shown on the denial page and in
/// the log line, so the service desk can find the record. Crockford base32
/// without I, L, O, U: easy to read aloud and to type.
pub fn new_reference() -> String {
    Reference::new().to_string()
}

/// A reference (`PG-XXXX-XXXX`) held inline: every decision has one, the
/// allowed ones too, and making it allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reference([u8; 12]);

impl Reference {
    /// A new random reference: one draw from the thread's generator for all
    /// 40 bits.
    pub fn new() -> Reference {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut bits = rand::rng().next_u64();
        let mut r = *b"PG-XXXX-XXXX";
        for at in [3, 4, 5, 6, 8, 9, 10, 11] {
            r[at] = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
        }
        Reference(r)
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or("PG-0000-0000")
    }
}

impl Default for Reference {
    fn default() -> Self {
        Reference::new()
    }
}

impl std::ops::Deref for Reference {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Seconds since the Unix epoch; the clock every decision, store and door
/// uses. 0 if the system clock is before 1970 (only a broken one is).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC for a unix time; out-of-range times clamp to the epoch
/// bounds of `time`, which only a broken clock produces.
pub fn rfc3339(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_short_readable_and_distinct() {
        let a = new_reference();
        let b = new_reference();
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("PG-") && a.as_bytes()[7] == b'-');
        assert!(!a.contains(['I', 'L', 'O', 'U']));
        assert_ne!(a, b);
    }

    #[test]
    fn rfc3339_is_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
