//! Why a token was refused: the reason codes of spec section 5. The same word
//! is used in the HTTP answer, the denial page, the audit log and metrics.

use serde::{Deserialize, Serialize};

/// The code of a refused token: `reason` in `{"valid": false, "reason":
/// CODE}` (HTTP 400 from `attest`). `Display`, serde and [`Reason::code`]
/// all give the same snake_case string. Only the first failure in the order
/// of spec section 7 is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `malformed`: JSON, base64 or DER that does not parse; a bad `typ`,
    /// `crit` present, no `alg`, `x5c` missing or not 1 to 4 entries; a
    /// missing or non-numeric `iat`; a claim of the wrong JSON type.
    #[error("malformed")]
    Malformed,
    /// `unsupported_alg`: header `alg` present but not `ES256`, `ES384` or
    /// `EdDSA` (`none`, `HS*`, `RS*`, a non-string).
    #[error("unsupported_alg")]
    UnsupportedAlg,
    /// `bad_signature`: the signature does not verify with the `x5c` leaf's
    /// key, or `alg` does not fit that key's type.
    #[error("bad_signature")]
    BadSignature,
    /// `untrusted_chain`: the `x5c` chain does not lead to a configured
    /// attestation trust anchor, a certificate on it is revoked, or the
    /// leaf's keyUsage excludes digitalSignature or its extended key usage
    /// excludes clientAuth.
    #[error("untrusted_chain")]
    UntrustedChain,
    /// `cert_expired`: a certificate on the path is expired or not yet valid
    /// at the time of checking.
    #[error("cert_expired")]
    CertExpired,
    /// `key_mismatch`: the `x5c` leaf's SubjectPublicKeyInfo differs from
    /// the mutual-TLS client certificate's (spec section 2).
    #[error("key_mismatch")]
    KeyMismatch,
    /// `profile_mismatch`: `eat_profile` missing or not
    /// [`PROFILE_V1`](super::claims::PROFILE_V1).
    #[error("profile_mismatch")]
    ProfileMismatch,
    /// `stale`: `iat` older than the maximum age (default 15 minutes).
    #[error("stale")]
    Stale,
    /// `future_iat`: `iat` further ahead than the allowed clock skew
    /// (default 60 s).
    #[error("future_iat")]
    FutureIat,
    /// `expired`: `exp` present and not after the time of checking.
    #[error("expired")]
    Expired,
    /// `nonce_missing`: no `eat_nonce` where the gate requires challenges.
    #[error("nonce_missing")]
    NonceMissing,
    /// `nonce_unknown`: an `eat_nonce` the gate did not issue, or issued and
    /// expired.
    #[error("nonce_unknown")]
    NonceUnknown,
    /// `nonce_replayed`: an `eat_nonce` already redeemed.
    #[error("nonce_replayed")]
    NonceReplayed,
    /// `too_large`: a token over 1 MiB, a string over 1 KiB or an array over
    /// 10,000 items (spec section 3).
    #[error("too_large")]
    TooLarge,
}

impl Reason {
    /// Every code, in the order spec section 5 lists them.
    pub const ALL: [Reason; 14] = [
        Reason::Malformed,
        Reason::UnsupportedAlg,
        Reason::BadSignature,
        Reason::UntrustedChain,
        Reason::CertExpired,
        Reason::KeyMismatch,
        Reason::ProfileMismatch,
        Reason::Stale,
        Reason::FutureIat,
        Reason::Expired,
        Reason::NonceMissing,
        Reason::NonceUnknown,
        Reason::NonceReplayed,
        Reason::TooLarge,
    ];

    /// The wire code, as in spec section 5.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnsupportedAlg => "unsupported_alg",
            Reason::BadSignature => "bad_signature",
            Reason::UntrustedChain => "untrusted_chain",
            Reason::CertExpired => "cert_expired",
            Reason::KeyMismatch => "key_mismatch",
            Reason::ProfileMismatch => "profile_mismatch",
            Reason::Stale => "stale",
            Reason::FutureIat => "future_iat",
            Reason::Expired => "expired",
            Reason::NonceMissing => "nonce_missing",
            Reason::NonceUnknown => "nonce_unknown",
            Reason::NonceReplayed => "nonce_replayed",
            Reason::TooLarge => "too_large",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_display_and_serde_agree() {
        for r in Reason::ALL {
            assert_eq!(r.to_string(), r.code());
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.code())
            );
        }
    }
}
