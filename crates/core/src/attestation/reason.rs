//! Why a token was refused: the reason codes of spec section 5. The same word
//! is used in the HTTP answer, the denial page, the audit log and metrics.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    #[error("malformed")]
    Malformed,
    #[error("unsupported_alg")]
    UnsupportedAlg,
    #[error("bad_signature")]
    BadSignature,
    #[error("untrusted_chain")]
    UntrustedChain,
    #[error("cert_expired")]
    CertExpired,
    #[error("key_mismatch")]
    KeyMismatch,
    #[error("profile_mismatch")]
    ProfileMismatch,
    #[error("stale")]
    Stale,
    #[error("future_iat")]
    FutureIat,
    #[error("expired")]
    Expired,
    #[error("nonce_missing")]
    NonceMissing,
    #[error("nonce_unknown")]
    NonceUnknown,
    #[error("nonce_replayed")]
    NonceReplayed,
    #[error("too_large")]
    TooLarge,
}

impl Reason {
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
