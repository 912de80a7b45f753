//! PLACEHOLDER: replaced by the attestation helper.
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub max_age: Duration,
    pub clock_skew: Duration,
    pub require_nonce: bool,
}
pub struct Verifier;
pub struct Verified;
pub enum NonceVerdict {}
pub enum NonceCheck {}
