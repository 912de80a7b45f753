//! The in-memory stores of one process.

use std::collections::HashMap;
use std::future::{ready, Future};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Fingerprint, NonceStore, NonceUse, PostureStore, StoreError};
use crate::decision::Posture;

/// The postures remembered per client certificate, in this process: a
/// bounded cache (`posture_cache_capacity` entries) in which each posture
/// expires at its own `valid_until`.
pub struct MemoryPostures {
    /// Keyed by the fingerprint's 32 bytes: no allocation of its own, which
    /// counts at 100,000 devices.
    cache: moka::sync::Cache<Fingerprint, Arc<Posture>>,
}

/// Each posture lives exactly until its own `valid_until`.
struct UntilValid;

fn remaining(posture: &Posture) -> Duration {
    posture.time_left(crate::decision::unix_now())
}

impl moka::Expiry<Fingerprint, Arc<Posture>> for UntilValid {
    fn expire_after_create(
        &self,
        _: &Fingerprint,
        posture: &Arc<Posture>,
        _: Instant,
    ) -> Option<Duration> {
        Some(remaining(posture))
    }

    fn expire_after_update(
        &self,
        _: &Fingerprint,
        posture: &Arc<Posture>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        // A newer report replaces the old one's lifetime, too.
        Some(remaining(posture))
    }
}

impl MemoryPostures {
    /// A cache of at most `capacity` postures.
    pub fn new(capacity: u64) -> MemoryPostures {
        MemoryPostures {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilValid)
                .build(),
        }
    }

    /// The posture of this certificate, without a future: for callers that
    /// hold this concrete type.
    pub fn get_now(&self, fingerprint: &Fingerprint) -> Option<Arc<Posture>> {
        self.cache.get(fingerprint)
    }

    /// Remembers a posture, without a future (see [`PostureStore::put`]).
    pub fn put_now(&self, fingerprint: &Fingerprint, posture: Arc<Posture>, now: i64) {
        if posture.valid_until > now {
            self.cache.insert(*fingerprint, posture);
        }
    }

    /// How many postures are remembered, after pending evictions.
    pub fn count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

impl PostureStore for MemoryPostures {
    fn get(
        &self,
        fingerprint: &Fingerprint,
    ) -> impl Future<Output = Result<Option<Arc<Posture>>, StoreError>> + Send {
        ready(Ok(self.get_now(fingerprint)))
    }

    fn put(
        &self,
        fingerprint: &Fingerprint,
        posture: Arc<Posture>,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.put_now(fingerprint, posture, now);
        ready(Ok(()))
    }

    fn remove(
        &self,
        fingerprint: &Fingerprint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.cache.invalidate(fingerprint);
        ready(Ok(()))
    }
}

/// Nonces already used, each kept until it would have expired anyway.
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

impl UsedNonces {
    /// A memory of at most `capacity` live nonces (at least one).
    pub fn new(capacity: u64) -> UsedNonces {
        UsedNonces {
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).max(1),
            inner: Mutex::new(Used {
                expires: HashMap::new(),
                earliest: i64::MAX,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Used> {
        // The map is consistent after every statement that changes it, so
        // a panic elsewhere while holding the lock leaves nothing half done.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`NonceStore::use_once`] without a future.
    pub fn use_now(&self, nonce: &str, expires_at: i64, now: i64) -> NonceUse {
        let mut used = self.lock();
        if used.expires.contains_key(nonce) {
            return NonceUse::AlreadyUsed;
        }
        if used.expires.len() >= self.capacity {
            used.sweep(now);
            if used.expires.len() >= self.capacity {
                return NonceUse::Full;
            }
        }
        used.expires.insert(nonce.into(), expires_at);
        used.earliest = used.earliest.min(expires_at);
        NonceUse::Used
    }

    /// Whether `nonce` was used and has not expired by `now`.
    pub fn was_used(&self, nonce: &str, now: i64) -> bool {
        self.lock()
            .expires
            .get(nonce)
            .is_some_and(|&expires| expires > now)
    }

    /// [`NonceStore::full_for`] without a future.
    pub fn full_for_now(&self, now: i64) -> Option<u64> {
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

impl NonceStore for UsedNonces {
    fn use_once(
        &self,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<NonceUse, StoreError>> + Send {
        ready(Ok(self.use_now(nonce, expires_at, now)))
    }

    fn full_for(&self, now: i64) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        ready(Ok(self.full_for_now(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls a future the in-memory stores return: always ready.
    fn now_of<T>(f: impl std::future::Future<Output = T>) -> T {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("an in-memory store must be ready at once"),
        }
    }

    #[test]
    fn a_full_memory_refuses_and_never_forgets_a_live_nonce() {
        let used = UsedNonces::new(2);
        let u = |n, e, t| now_of(used.use_once(n, e, t)).unwrap();
        assert_eq!(u("a", 1010, 1000), NonceUse::Used);
        assert_eq!(u("b", 1020, 1000), NonceUse::Used);
        assert_eq!(now_of(used.full_for(1000)), Ok(Some(10)));
        assert_eq!(u("c", 1030, 1000), NonceUse::Full);
        assert_eq!(u("a", 1010, 1001), NonceUse::AlreadyUsed);
        assert_eq!(u("b", 1020, 1001), NonceUse::AlreadyUsed);
        // Once "a" has expired it makes room; "b" is still remembered.
        assert_eq!(now_of(used.full_for(1010)), Ok(None));
        assert_eq!(u("c", 1030, 1010), NonceUse::Used);
        assert_eq!(u("b", 1020, 1011), NonceUse::AlreadyUsed);
        assert_eq!(u("d", 1030, 1011), NonceUse::Full);
    }

    #[test]
    fn a_nonce_is_used_once() {
        let used = UsedNonces::new(10);
        assert_eq!(now_of(used.use_once("n", 1060, 1000)), Ok(NonceUse::Used));
        assert_eq!(
            now_of(used.use_once("n", 1060, 1001)),
            Ok(NonceUse::AlreadyUsed)
        );
    }
}
