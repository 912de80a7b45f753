//! The stores the gate keeps postures and used nonces in, chosen from
//! `[store]` at bind: in this process ([`Postures::Memory`]), or in a Redis
//! server shared by every replica ([`redis::RedisStore`]). Each is an enum
//! over the two, implementing the core's traits, so the request path
//! awaits one concrete future and nothing is boxed per request.

pub mod redis;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use posture_core::decision::Posture;
use posture_core::device::DeviceIdentity;
use posture_core::nac::{CertKey, NasSession};
use posture_core::store::{
    Fingerprint, MemoryNac, MemoryPostures, NacStore, NonceStore, NonceUse, PostureStore,
    StoreError, UsedNonces,
};

pub use self::redis::RedisStore;

/// The postures remembered per client certificate.
pub enum Postures {
    /// In this process.
    Memory(MemoryPostures),
    /// In Redis, behind this gate's near cache.
    Redis(Arc<RedisStore>),
}

/// The nonces already used.
pub enum Nonces {
    /// In this process.
    Memory(UsedNonces),
    /// In Redis (and, with `on_store_failure = "local"`, in this process
    /// while Redis is out of reach).
    Redis(Arc<RedisStore>),
}

impl Postures {
    /// How many postures this gate holds in memory (for Redis: in its near
    /// cache), after pending evictions.
    pub fn count(&self) -> u64 {
        match self {
            Postures::Memory(m) => m.count(),
            Postures::Redis(r) => r.near_count(),
        }
    }

    /// Whether the store answered its last call (always, for memory);
    /// asks nothing, for `/metrics`.
    pub fn is_up(&self) -> bool {
        match self {
            Postures::Memory(_) => true,
            Postures::Redis(r) => r.is_up(),
        }
    }

    /// `Ok` when the store can be used now; otherwise why not, in a few
    /// words (for the readiness endpoint).
    pub async fn ready(&self) -> Result<(), String> {
        match self {
            Postures::Memory(_) => Ok(()),
            Postures::Redis(r) => r.ready().await,
        }
    }
}

/// Posture lookups of this process, for `/metrics` (hit rate): a hit
/// found a remembered posture (current or not), a miss found none, an
/// error could not ask the store.
pub struct Lookups {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
}

pub static LOOKUPS: Lookups = Lookups {
    hits: AtomicU64::new(0),
    misses: AtomicU64::new(0),
    errors: AtomicU64::new(0),
};

impl PostureStore for Postures {
    async fn get(&self, fingerprint: &Fingerprint) -> Result<Option<Arc<Posture>>, StoreError> {
        let found = match self {
            Postures::Memory(m) => Ok(m.get_now(fingerprint)),
            Postures::Redis(r) => r.get_posture(fingerprint).await,
        };
        match &found {
            Ok(Some(_)) => LOOKUPS.hits.fetch_add(1, Ordering::Relaxed),
            Ok(None) => LOOKUPS.misses.fetch_add(1, Ordering::Relaxed),
            Err(_) => LOOKUPS.errors.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    async fn put(
        &self,
        fingerprint: &Fingerprint,
        posture: Arc<Posture>,
        now: i64,
    ) -> Result<(), StoreError> {
        match self {
            Postures::Memory(m) => {
                m.put_now(fingerprint, posture, now);
                Ok(())
            }
            Postures::Redis(r) => r.put_posture(fingerprint, posture, now).await,
        }
    }

    async fn remove(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        match self {
            Postures::Memory(m) => m.remove(fingerprint).await,
            Postures::Redis(r) => r.remove_posture(fingerprint).await,
        }
    }
}

impl NonceStore for Nonces {
    async fn use_once(
        &self,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<NonceUse, StoreError> {
        match self {
            Nonces::Memory(m) => Ok(m.use_now(nonce, expires_at, now)),
            Nonces::Redis(r) => r.use_nonce(nonce, expires_at, now).await,
        }
    }

    async fn full_for(&self, now: i64) -> Result<Option<u64>, StoreError> {
        match self {
            Nonces::Memory(m) => Ok(m.full_for_now(now)),
            Nonces::Redis(r) => Ok(r.nonces_full_for(now)),
        }
    }
}

/// What 802.1X remembers: identities by issuer and serial, NAS sessions.
pub enum Nac {
    /// In this process.
    Memory(MemoryNac),
    /// In Redis, shared by every replica.
    Redis(Arc<RedisStore>),
}

impl NacStore for Nac {
    async fn learn(
        &self,
        key: &CertKey,
        device: &DeviceIdentity,
        until: i64,
    ) -> Result<(), StoreError> {
        match self {
            Nac::Memory(m) => m.learn(key, device, until).await,
            Nac::Redis(r) => r.nac_learn(key, device, until).await,
        }
    }

    async fn device(&self, key: &CertKey) -> Result<Option<DeviceIdentity>, StoreError> {
        match self {
            Nac::Memory(m) => m.device(key).await,
            Nac::Redis(r) => r.nac_device(key).await,
        }
    }

    async fn put_session(
        &self,
        fingerprint: &Fingerprint,
        session: NasSession,
        until: i64,
    ) -> Result<(), StoreError> {
        match self {
            Nac::Memory(m) => m.put_session(fingerprint, session, until).await,
            Nac::Redis(r) => r.nac_put_session(fingerprint, &session, until).await,
        }
    }

    async fn end_session(
        &self,
        fingerprint: &Fingerprint,
        session: &NasSession,
    ) -> Result<(), StoreError> {
        match self {
            Nac::Memory(m) => m.end_session(fingerprint, session).await,
            Nac::Redis(r) => r.nac_end_session(fingerprint, session).await,
        }
    }

    async fn sessions(
        &self,
        fingerprint: &Fingerprint,
        now: i64,
    ) -> Result<Vec<NasSession>, StoreError> {
        match self {
            Nac::Memory(m) => m.sessions(fingerprint, now).await,
            Nac::Redis(r) => r.nac_sessions(fingerprint).await,
        }
    }
}
