//! The memories a door needs between requests, as interfaces: the postures
//! remembered per device certificate ([`PostureStore`]) and the nonces
//! already used ([`NonceStore`]). The in-memory implementations
//! ([`MemoryPostures`], [`UsedNonces`]) serve one process; a shared store
//! (Redis, issue 15) implements the same traits so replicas agree.
//!
//! The methods return futures, because a shared store answers over the
//! network; the in-memory ones are ready at once (`std::future::ready`),
//! so awaiting them costs no allocation and no task switch. The futures
//! are `Send`, so a door may hold them across its own awaits on a
//! multi-threaded runtime. No runtime is named here.
//!
//! Every failure is a [`StoreError`], and every caller fails closed on it:
//! a posture that cannot be read denies (`posture_store_unavailable`), a
//! nonce that cannot be recorded as used is not accepted.
//!
//! The verifier's own hook for the nonce step of spec section 7 is
//! synchronous, [`crate::attestation::NonceRedeemer`]: the
//! enforcement step plugs [`crate::nonce::MacCheck`] in there (the MAC and
//! expiry) and spends the nonce through this module's [`NonceStore`] once
//! the token has verified.

mod memory;
mod nac_memory;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

pub use memory::{MemoryPostures, UsedNonces};
pub use nac_memory::MemoryNac;

use crate::decision::Posture;
use crate::device::DeviceIdentity;
use crate::nac::{CertKey, NasSession};

/// The SHA-256 fingerprint of a device certificate: a posture's key.
pub type Fingerprint = [u8; 32];

/// Why a store could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store is out of reach (connection refused, timed out).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something that is not what was put there.
    #[error("the store answered with an unreadable value: {0}")]
    Corrupt(String),
}

/// The postures remembered per client certificate, each until its own
/// `valid_until`.
pub trait PostureStore: Send + Sync {
    /// The posture remembered for this certificate, if any and not expired.
    fn get(
        &self,
        fingerprint: &Fingerprint,
    ) -> impl Future<Output = Result<Option<Arc<Posture>>, StoreError>> + Send;

    /// Remembers `posture` for this certificate until its `valid_until`,
    /// replacing any earlier one; one already expired at `now` is not kept.
    fn put(
        &self,
        fingerprint: &Fingerprint,
        posture: Arc<Posture>,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the posture of this certificate.
    fn remove(
        &self,
        fingerprint: &Fingerprint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What marking a nonce used did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// It had not been used: it is now, until it expires.
    Used,
    /// It had been used before.
    AlreadyUsed,
    /// The memory is full of nonces that are all still live: not recorded,
    /// so not to be accepted (the gate answers 503).
    Full,
}

/// The nonces already used, each until it would have expired anyway.
///
/// An implementation must never forget a nonce before its expiry (that
/// would let it be used twice): when it has no room, it answers
/// [`NonceUse::Full`] instead of evicting.
pub trait NonceStore: Send + Sync {
    /// Marks `nonce` (valid until `expires_at`) used, atomically: of two
    /// concurrent callers exactly one sees [`NonceUse::Used`].
    fn use_once(
        &self,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<NonceUse, StoreError>> + Send;

    /// `None` when a new nonce could be recorded now; otherwise the seconds
    /// until one recorded expires and makes room. A challenge is refused
    /// while the store is full: its nonce could not be redeemed.
    fn full_for(&self, now: i64) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
}

/// What 802.1X needs to remember (issue 17): which device certificate has
/// which issuer and serial (learnt when it attests), and the device's
/// sessions at NASes (from post-auth and accounting), so that any replica
/// can place a device and tell its NASes when its VLAN changes.
pub trait NacStore: Send + Sync {
    /// Remembers the device whose certificate `key` names, until `until`.
    fn learn(
        &self,
        key: &CertKey,
        device: &DeviceIdentity,
        until: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The device whose certificate `key` names, if known.
    fn device(
        &self,
        key: &CertKey,
    ) -> impl Future<Output = Result<Option<DeviceIdentity>, StoreError>> + Send;

    /// Records a session of the device, replacing the same session
    /// ([`NasSession::same`]), kept until `until` unless reported again.
    fn put_session(
        &self,
        fingerprint: &Fingerprint,
        session: NasSession,
        until: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets a session of the device (accounting Stop).
    fn end_session(
        &self,
        fingerprint: &Fingerprint,
        session: &NasSession,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The device's sessions now.
    fn sessions(
        &self,
        fingerprint: &Fingerprint,
        now: i64,
    ) -> impl Future<Output = Result<Vec<NasSession>, StoreError>> + Send;
}
