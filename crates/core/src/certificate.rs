//! A client certificate that was presented but failed verification (issue
//! 19 point 2): the TLS front completes the handshake for it, so the person
//! gets a page naming the problem instead of a TLS alert nobody can read,
//! but the connection carries no identity at all. It is judged exactly as a
//! connection without a certificate ([`crate::enforce::Client::rejected`]
//! only changes which page it gets), and everything recorded here about the
//! certificate is what its sender wrote into it: shown and audited, never
//! trusted.
//!
//! Which [`CertProblem`] a verifier's error is, is decided by one function
//! in the gate (`gate::tls::classify`), for the TLS front and for
//! forward-auth alike; this module has the vocabulary and the details.

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::code::Code;

/// Why a presented client certificate is refused. Serialised as the
/// `reason` of the `tls_refused` audit event (the same words it always had).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertProblem {
    /// Past its notAfter.
    Expired,
    /// Before its notBefore.
    NotYetValid,
    /// It does not chain to the client-CA bundle.
    UnknownIssuer,
    /// A CRL lists it (or a certificate of its chain).
    Revoked,
    /// No CRL, or only an out-of-date one, says whether it is revoked.
    RevocationUnknown,
    /// Not a client certificate (extended key usage, key usage).
    BadPurpose,
    /// More intermediates than the gate accepts.
    ChainTooLong,
    /// A signature in the chain does not verify.
    BadSignature,
    /// It does not decode (not X.509, or not as the gate reads it).
    Unreadable,
    /// Anything else the verifier refused (an unsupported algorithm, ...).
    Other,
}

impl CertProblem {
    /// Every problem, for tests.
    pub const ALL: [CertProblem; 10] = [
        CertProblem::Expired,
        CertProblem::NotYetValid,
        CertProblem::UnknownIssuer,
        CertProblem::Revoked,
        CertProblem::RevocationUnknown,
        CertProblem::BadPurpose,
        CertProblem::ChainTooLong,
        CertProblem::BadSignature,
        CertProblem::Unreadable,
        CertProblem::Other,
    ];

    /// The code a person, the audit log and the metrics see: the spec's
    /// `cert_expired` for both ends of the validity period (section 7),
    /// `untrusted_chain` for a chain that does not lead to the client CA.
    pub fn code(self) -> Code {
        match self {
            CertProblem::Expired | CertProblem::NotYetValid => Code::CertExpired,
            CertProblem::UnknownIssuer | CertProblem::BadSignature | CertProblem::ChainTooLong => {
                Code::UntrustedChain
            }
            CertProblem::Revoked => Code::CertRevoked,
            CertProblem::RevocationUnknown => Code::RevocationUnknown,
            CertProblem::BadPurpose => Code::CertWrongUsage,
            CertProblem::Unreadable | CertProblem::Other => Code::CertInvalid,
        }
    }

    /// The spec's reason code for an attestation posted on a connection
    /// with this certificate (spec section 5 has no other words for it):
    /// the token is never even read.
    pub fn attestation_reason(self) -> crate::attestation::Reason {
        use crate::attestation::Reason;
        match self {
            CertProblem::Expired | CertProblem::NotYetValid => Reason::CertExpired,
            _ => Reason::UntrustedChain,
        }
    }
}

/// The longest subject or issuer kept, in bytes: both are written by the
/// certificate's sender, and go into a page and an audit line.
pub const MAX_NAME_BYTES: usize = 512;

/// A presented certificate that failed verification, and what its leaf says
/// about itself (unverified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedCert {
    /// Why.
    pub problem: CertProblem,
    /// The leaf's subject (RFC 4514 as x509-parser writes it), at most
    /// [`MAX_NAME_BYTES`]; `None` when the leaf does not parse.
    pub subject: Option<String>,
    /// The leaf's issuer, likewise.
    pub issuer: Option<String>,
    /// The leaf's serial number, lowercase hex.
    pub serial: Option<String>,
    /// Lowercase hex SHA-256 of the leaf's DER (of whatever bytes were
    /// sent, so present even when they do not parse; empty only for a
    /// [`RejectedCert::bare`] one).
    pub fingerprint_sha256: String,
    /// The leaf's notBefore and notAfter, Unix seconds.
    pub not_before: Option<i64>,
    /// See `not_before`.
    pub not_after: Option<i64>,
}

impl RejectedCert {
    /// The details of the leaf `der`, refused for `problem`.
    pub fn of(problem: CertProblem, der: &[u8]) -> RejectedCert {
        let fingerprint: [u8; 32] = Sha256::digest(der).into();
        let mut rejected = RejectedCert {
            fingerprint_sha256: hex::encode(fingerprint),
            ..RejectedCert::bare(problem)
        };
        if let Ok((_, cert)) = X509Certificate::from_der(der) {
            rejected.subject = Some(bounded(cert.subject().to_string()));
            rejected.issuer = Some(bounded(cert.issuer().to_string()));
            rejected.serial = Some(bounded(hex::encode(cert.raw_serial())));
            rejected.not_before = Some(cert.validity().not_before.timestamp());
            rejected.not_after = Some(cert.validity().not_after.timestamp());
        }
        rejected
    }

    /// A problem without details: the page of a bare code.
    pub const fn bare(problem: CertProblem) -> RejectedCert {
        RejectedCert {
            problem,
            subject: None,
            issuer: None,
            serial: None,
            fingerprint_sha256: String::new(),
            not_before: None,
            not_after: None,
        }
    }

    /// The code of the problem.
    pub fn code(&self) -> Code {
        self.problem.code()
    }
}

/// `name` cut to [`MAX_NAME_BYTES`] at a character boundary, marked `…`.
fn bounded(mut name: String) -> String {
    if name.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
        name.push('…');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_contract() {
        assert_eq!(CertProblem::Expired.code().as_str(), "cert_expired");
        assert_eq!(CertProblem::NotYetValid.code().as_str(), "cert_expired");
        assert_eq!(
            CertProblem::UnknownIssuer.code().as_str(),
            "untrusted_chain"
        );
        assert_eq!(CertProblem::BadSignature.code().as_str(), "untrusted_chain");
        assert_eq!(CertProblem::Revoked.code().as_str(), "cert_revoked");
        assert_eq!(CertProblem::BadPurpose.code().as_str(), "cert_wrong_usage");
        assert_eq!(CertProblem::Unreadable.code().as_str(), "cert_invalid");
    }

    #[test]
    fn garbage_keeps_its_fingerprint_and_long_names_are_cut() {
        let r = RejectedCert::of(CertProblem::Unreadable, b"not a certificate");
        assert_eq!(r.fingerprint_sha256.len(), 64);
        assert!(r.subject.is_none() && r.serial.is_none());
        let long = bounded("é".repeat(400));
        assert!(long.len() <= MAX_NAME_BYTES + '…'.len_utf8());
        assert!(long.ends_with('…'));
    }
}
