//! The wire contract of `shared/spec/attestation-v1.md`: parsing, chain
//! validation, signature, device binding, claims and limits, in the order of
//! spec section 7. Pure functions over bytes: no sockets, no runtime.

pub mod chain;
pub mod claims;
pub mod jws;
pub mod reason;
pub mod sign;
pub mod verify;

pub use claims::Claims;
pub use reason::Reason;
pub use verify::{
    NonceCheck, NonceRedeemer, NonceVerdict, Verified, Verifier, VerifierError, VerifierSettings,
};
