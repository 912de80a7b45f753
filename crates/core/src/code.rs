//! One vocabulary of codes: why a request was refused or could not be
//! served. The same word is the audit event's `reason`, the name behind the
//! denial page's problem type, and (later) the metrics label, so a count in
//! a dashboard, a line in the audit log and the page a person saw can be
//! matched by their code.
//!
//! The attestation codes are the spec's own (section 5, [`Reason`]); they
//! are wrapped, not typed out a second time.

use std::fmt;

use serde::Serialize;

use crate::attestation::Reason;

/// Why a request was refused or could not be served.
///
/// Serialised as its snake_case word ([`Code::as_str`]); an attestation
/// reason as the spec's code, e.g. `nonce_replayed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// No client certificate at the TLS handshake.
    NoCertificate,
    /// The client certificate is on a CRL of the current configuration.
    #[serde(rename = "cert_revoked")]
    CertRevoked,
    /// CRLs are configured, but none that is current speaks for the client
    /// certificate.
    RevocationUnknown,
    /// A client certificate that a proxy forwarded (forward-auth) does not
    /// verify against the client-CA bundle and CRLs, or does not decode:
    /// what the gate's own TLS handshake would have refused.
    CertUntrusted,
    /// The client certificate is expired or not yet valid (spec section
    /// 7's word for both); the connection has no identity.
    CertExpired,
    /// The client certificate does not chain to the client-CA bundle
    /// (unknown issuer, a bad signature, too long a chain).
    UntrustedChain,
    /// The client certificate is not for client authentication (no
    /// clientAuth extended key usage).
    CertWrongUsage,
    /// The client certificate does not decode, or is refused for a reason
    /// none of the other codes names.
    CertInvalid,
    /// A request on the forward-auth listener from a peer that is none of
    /// its configured proxies: refused without reading its headers.
    UntrustedProxy,
    /// No attestation remembered for this device.
    NoPosture,
    /// The remembered attestation has aged out.
    StalePosture,
    /// The catalogue changed since the device's posture was assessed.
    CatalogueChanged,
    /// The segment's policy denies the device's posture (the findings and
    /// unmet requirements say why).
    Prohibited,
    /// The posture store could not be asked (a shared store out of reach):
    /// refused, never guessed.
    PostureStoreUnavailable,
    /// A token sent with the request may be fine, but its nonce could not be
    /// recorded as used now (the used-nonce memory is full, or its store is
    /// out of reach): refused, since an unrecorded nonce could be used
    /// again; the device may try again shortly.
    NonceNotRecorded,
    /// The audit log cannot take the decision's line in time and
    /// `on_audit_failure = "deny"`: no decision without a record.
    AuditUnavailable,
    /// The request is malformed (Host, path, encoded separators).
    BadRequest,
    /// No route for the request's host and path.
    UnknownHost,
    /// The upstream could not be reached or answered nonsense.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// A body larger than the gate reads.
    PayloadTooLarge,
    /// An attestation sent with the request did not verify: the spec's
    /// reason code.
    #[serde(untagged)]
    Attestation(Reason),
}

impl Code {
    /// Every code, for tests and label sets.
    pub fn all() -> impl Iterator<Item = Code> {
        [
            Code::NoCertificate,
            Code::CertRevoked,
            Code::RevocationUnknown,
            Code::CertUntrusted,
            Code::CertExpired,
            Code::UntrustedChain,
            Code::CertWrongUsage,
            Code::CertInvalid,
            Code::UntrustedProxy,
            Code::NoPosture,
            Code::StalePosture,
            Code::CatalogueChanged,
            Code::Prohibited,
            Code::PostureStoreUnavailable,
            Code::NonceNotRecorded,
            Code::AuditUnavailable,
            Code::BadRequest,
            Code::UnknownHost,
            Code::UpstreamUnavailable,
            Code::UpstreamTimeout,
            Code::PayloadTooLarge,
        ]
        .into_iter()
        .chain(Reason::ALL.into_iter().map(Code::Attestation))
    }

    /// The code as one word, as it is serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NoCertificate => "no_certificate",
            Code::CertRevoked => "cert_revoked",
            Code::RevocationUnknown => "revocation_unknown",
            Code::CertUntrusted => "cert_untrusted",
            Code::CertExpired => "cert_expired",
            Code::UntrustedChain => "untrusted_chain",
            Code::CertWrongUsage => "cert_wrong_usage",
            Code::CertInvalid => "cert_invalid",
            Code::UntrustedProxy => "untrusted_proxy",
            Code::NoPosture => "no_posture",
            Code::StalePosture => "stale_posture",
            Code::CatalogueChanged => "catalogue_changed",
            Code::Prohibited => "prohibited",
            Code::PostureStoreUnavailable => "posture_store_unavailable",
            Code::NonceNotRecorded => "nonce_not_recorded",
            Code::AuditUnavailable => "audit_unavailable",
            Code::BadRequest => "bad_request",
            Code::UnknownHost => "unknown_host",
            Code::UpstreamUnavailable => "upstream_unavailable",
            Code::UpstreamTimeout => "upstream_timeout",
            Code::PayloadTooLarge => "payload_too_large",
            Code::Attestation(reason) => reason.code(),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Reason> for Code {
    fn from(reason: Reason) -> Code {
        Code::Attestation(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_display_and_as_str_agree_for_every_code() {
        for code in Code::all() {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
            assert_eq!(code.to_string(), code.as_str());
        }
    }

    #[test]
    fn codes_are_distinct_words_and_attestation_codes_are_the_specs() {
        // A client certificate out of its validity period, or not chaining
        // to a trusted CA, has the spec's word whether it came at the
        // handshake or in `x5c`: those two words are shared, no other.
        let shared = [
            (Code::CertExpired, Reason::CertExpired),
            (Code::UntrustedChain, Reason::UntrustedChain),
        ];
        for (code, reason) in shared {
            assert_eq!(code.as_str(), Code::Attestation(reason).as_str());
        }
        let words: Vec<&str> = Code::all()
            .filter(|c| !shared.iter().any(|(code, _)| code == c))
            .map(Code::as_str)
            .collect();
        let mut unique = words.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), words.len(), "{words:?}");
        assert!(words
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        assert_eq!(
            Code::Attestation(Reason::NonceReplayed).as_str(),
            "nonce_replayed"
        );
        assert_eq!(Code::CertRevoked.as_str(), "cert_revoked");
    }
}
