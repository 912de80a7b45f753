//! Gate nonces (spec section 4): stateless to issue, single-use to redeem.
//!
//! A nonce is `base64url(expires_at ‖ 16 random bytes ‖ HMAC-SHA256)`. The
//! MAC and the expiry it carries let every gate instance that shares the
//! secret accept another's nonce without shared state; the used-nonce
//! memory makes it single-use per instance, for its whole lifetime, and
//! refuses rather than forgets when it is full.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use posture_core::attestation::{NonceStore, NonceVerdict};

type HmacSha256 = Hmac<Sha256>;

/// Spec section 4: a nonce expires after at most 5 minutes.
pub const MAX_TTL: Duration = Duration::from_secs(5 * 60);
const RANDOM_LEN: usize = 16;
const SIGNED_LEN: usize = 8 + RANDOM_LEN;
const NONCE_LEN: usize = SIGNED_LEN + 32;

/// Issues and checks nonces with one secret; rebuilt on every reload.
pub struct NonceIssuer {
    secret: Vec<u8>,
    ttl: Duration,
}

/// A freshly issued nonce.
pub struct Issued {
    pub nonce: String,
    pub expires_at: i64,
}

impl NonceIssuer {
    pub fn new(secret: Vec<u8>, ttl: Duration) -> NonceIssuer {
        NonceIssuer {
            secret,
            ttl: ttl.min(MAX_TTL),
        }
    }

    pub fn issue(&self, now: i64) -> Issued {
        let expires_at = now.saturating_add(self.ttl.as_secs() as i64);
        let mut raw = [0u8; NONCE_LEN];
        raw[..8].copy_from_slice(&expires_at.to_be_bytes());
        rand::rng().fill_bytes(&mut raw[8..SIGNED_LEN]);
        let tag = self.mac(&raw[..SIGNED_LEN]).finalize().into_bytes();
        raw[SIGNED_LEN..].copy_from_slice(&tag);
        Issued {
            nonce: URL_SAFE_NO_PAD.encode(raw),
            expires_at,
        }
    }

    /// The expiry of a nonce this secret signed, if it did and it is still
    /// valid at `now`.
    pub fn check(&self, nonce: &str, now: i64) -> Option<i64> {
        if nonce.len() > 2 * NONCE_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if raw.len() != NONCE_LEN {
            return None;
        }
        self.mac(&raw[..SIGNED_LEN])
            .verify_slice(&raw[SIGNED_LEN..])
            .ok()?;
        let expires_at = i64::from_be_bytes(raw[..8].try_into().ok()?);
        (expires_at > now).then_some(expires_at)
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        mac
    }
}

/// A per-process secret for when the config names none. Nonces then only
/// work on the instance that issued them.
pub fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// Nonces already redeemed, each kept until it would have expired anyway.
///
/// Never forgets a nonce that could still be redeemed: a cache that evicts
/// under pressure would let an evicted nonce be accepted a second time. So
/// the memory is bounded by refusing instead: when it is full of live
/// nonces, the challenge endpoint answers 503 with `Retry-After` and an
/// attestation whose nonce cannot be recorded is refused.
pub struct UsedNonces {
    capacity: usize,
    inner: Mutex<Used>,
}

struct Used {
    /// Nonce → its expiry (unix seconds).
    expires: HashMap<Box<str>, i64>,
    /// The earliest expiry in `expires`: nothing can be swept before then,
    /// so a full store refuses in O(1) instead of scanning on every call.
    earliest: i64,
}

impl Used {
    /// Drops every nonce that has expired by `now`, if any can have.
    fn sweep(&mut self, now: i64) {
        if now < self.earliest {
            return;
        }
        self.expires.retain(|_, e| *e > now);
        self.earliest = self.expires.values().copied().min().unwrap_or(i64::MAX);
    }
}

/// What recording a redeemed nonce did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Fresh,
    Replayed,
    /// Full of nonces that are all still live: not recorded.
    Full,
}

impl UsedNonces {
    pub fn new(capacity: u64) -> UsedNonces {
        UsedNonces {
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).max(1),
            inner: Mutex::new(Used {
                expires: HashMap::new(),
                earliest: i64::MAX,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        // The map is consistent after every statement that changes it, so
        // a panic elsewhere while holding the lock leaves nothing half done.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `nonce` (valid until `expires_at`) used, atomically: of two
    /// concurrent callers exactly one sees `Fresh`.
    pub fn record(&self, nonce: &str, expires_at: i64, now: i64) -> Record {
        let mut used = self.lock();
        if used.expires.contains_key(nonce) {
            return Record::Replayed;
        }
        if used.expires.len() >= self.capacity {
            used.sweep(now);
            if used.expires.len() >= self.capacity {
                return Record::Full;
            }
        }
        used.expires.insert(nonce.into(), expires_at);
        used.earliest = used.earliest.min(expires_at);
        Record::Fresh
    }

    /// `None` when a new nonce could be recorded now; otherwise the seconds
    /// until the first recorded one expires and makes room.
    pub fn full_for(&self, now: i64) -> Option<u64> {
        let mut used = self.lock();
        if used.expires.len() < self.capacity {
            return None;
        }
        used.sweep(now);
        (used.expires.len() >= self.capacity).then(|| {
            u64::try_from(used.earliest.saturating_sub(now))
                .unwrap_or(0)
                .max(1)
        })
    }
}

/// The [`NonceStore`] that `decision::attest` redeems through: checks the MAC
/// and expiry with the current issuer, then marks the nonce used atomically.
pub struct Redeemer<'a> {
    pub issuer: &'a NonceIssuer,
    pub used: &'a UsedNonces,
    /// Set when a nonce could not be recorded because the memory was full;
    /// the verdict is then `Unknown` (refused), and the caller can say why.
    pub full: AtomicBool,
}

impl<'a> Redeemer<'a> {
    pub fn new(issuer: &'a NonceIssuer, used: &'a UsedNonces) -> Redeemer<'a> {
        Redeemer {
            issuer,
            used,
            full: AtomicBool::new(false),
        }
    }
}

impl NonceStore for Redeemer<'_> {
    fn redeem(&self, nonce: &str, now: i64) -> NonceVerdict {
        let Some(expires_at) = self.issuer.check(nonce, now) else {
            return NonceVerdict::Unknown;
        };
        match self.used.record(nonce, expires_at, now) {
            Record::Fresh => NonceVerdict::Fresh,
            Record::Replayed => NonceVerdict::Replayed,
            Record::Full => {
                // Accepting it unrecorded would make it reusable; refuse.
                self.full.store(true, Ordering::Relaxed);
                NonceVerdict::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secret: &[u8]) -> NonceIssuer {
        NonceIssuer::new(secret.to_vec(), Duration::from_secs(60))
    }

    #[test]
    fn a_nonce_is_accepted_once() {
        let i = issuer(b"k");
        let used = UsedNonces::new(100);
        let r = Redeemer::new(&i, &used);
        let n = i.issue(1000);
        assert_eq!(n.expires_at, 1060);
        assert_eq!(r.redeem(&n.nonce, 1001), NonceVerdict::Fresh);
        assert_eq!(r.redeem(&n.nonce, 1002), NonceVerdict::Replayed);
    }

    #[test]
    fn another_instance_with_the_same_secret_accepts_it() {
        let n = issuer(b"shared").issue(1000);
        assert_eq!(issuer(b"shared").check(&n.nonce, 1001), Some(1060));
        assert_eq!(issuer(b"other").check(&n.nonce, 1001), None);
    }

    #[test]
    fn expired_forged_and_garbage_nonces_are_unknown() {
        let i = issuer(b"k");
        let n = i.issue(1000);
        assert_eq!(i.check(&n.nonce, 1060), None);
        let mut raw = URL_SAFE_NO_PAD.decode(&n.nonce).unwrap();
        raw[0] ^= 1; // extend the expiry without the key
        assert_eq!(i.check(&URL_SAFE_NO_PAD.encode(raw), 1001), None);
        assert_eq!(i.check("not a nonce", 1001), None);
        assert_eq!(i.check("", 1001), None);
    }

    #[test]
    fn a_full_memory_refuses_and_never_forgets_a_live_nonce() {
        let used = UsedNonces::new(2);
        assert_eq!(used.record("a", 1010, 1000), Record::Fresh);
        assert_eq!(used.record("b", 1020, 1000), Record::Fresh);
        assert_eq!(used.full_for(1000), Some(10));
        assert_eq!(used.record("c", 1030, 1000), Record::Full);
        assert_eq!(used.record("a", 1010, 1001), Record::Replayed);
        assert_eq!(used.record("b", 1020, 1001), Record::Replayed);
        // Once "a" has expired it makes room; "b" is still remembered.
        assert_eq!(used.full_for(1010), None);
        assert_eq!(used.record("c", 1030, 1010), Record::Fresh);
        assert_eq!(used.record("b", 1020, 1011), Record::Replayed);
        assert_eq!(used.record("d", 1030, 1011), Record::Full);
    }

    #[test]
    fn a_nonce_refused_for_want_of_room_is_unknown_and_flagged() {
        let i = issuer(b"k");
        let used = UsedNonces::new(1);
        let (a, b) = (i.issue(1000), i.issue(1000));
        let r = Redeemer::new(&i, &used);
        assert_eq!(r.redeem(&a.nonce, 1001), NonceVerdict::Fresh);
        assert!(!r.full.load(Ordering::Relaxed));
        assert_eq!(r.redeem(&b.nonce, 1001), NonceVerdict::Unknown);
        assert!(r.full.load(Ordering::Relaxed));
        assert_eq!(r.redeem(&a.nonce, 1002), NonceVerdict::Replayed);
    }

    #[test]
    fn ttl_is_capped_at_five_minutes() {
        let i = NonceIssuer::new(b"k".to_vec(), Duration::from_secs(3600));
        assert_eq!(i.issue(0).expires_at, 300);
    }
}
