//! Postures and used nonces in a Redis (or Valkey) server shared by every
//! replica, with redis-rs 1.x: `ConnectionManager`s (multiplexed, they
//! reconnect by themselves) for commands, and one dedicated RESP2 pub/sub
//! connection for invalidations, which this module re-creates itself
//! (redis-rs's pub/sub never reconnects).
//!
//! Keys, all under `key_prefix` (default `posture-gate:`):
//! - `<prefix>posture:<hex fingerprint>`: the posture in the core's
//!   versioned encoding (`posture_core::store::wire`), expiring at its
//!   `valid_until` (`EXAT`). A value that does not decode, of another
//!   version, or bound to another certificate than its key is treated as
//!   absent and logged, never trusted.
//! - `<prefix>nonce:<nonce>`: `SET NX PXAT <expiry>`: a nonce is accepted
//!   once across all replicas.
//! - `<prefix>nac:cert:<issuer sha256>:<serial>` (802.1X): the identity of
//!   the device certificate with that issuer and serial, JSON, expiring
//!   with the certificate's knowledge (`PXAT`); read at most 8 KiB of it.
//! - `<prefix>nac:sessions:<hex fingerprint>`: a hash of the device's NAS
//!   sessions, field `<nas>|<mac or accounting id>`, JSON values, expiring
//!   when the newest session would (`PEXPIREAT`).
//! - channel `<prefix>invalidate`: a `put` publishes
//!   `<gate instance>:<hex fingerprint>`; every gate drops that entry from
//!   its near cache on receipt (usually within milliseconds).
//!
//! The near cache (moka, `near_cache_capacity` entries) keeps each posture
//! read or written, so the request path does not ask Redis every time. An
//! entry is *fresh* for `propagation` after it was read (timed from when
//! the read was sent), then asked of Redis again: so a new posture reaches
//! every replica within `propagation` even when an invalidation is lost.
//! An entry never outlives its posture's `valid_until`. When the
//! subscriber reconnects (messages may have been lost meanwhile), the near
//! cache is flushed, except for postures kept locally during an outage.
//!
//! When Redis fails: every call is bounded by `command_timeout`
//! (`tokio::time::timeout`, around the reconnect wait as well, which
//! `ConnectionManager`'s own response timeout does not cover); a posture
//! in the near cache is served, stale or not, until its own `valid_until`;
//! one that is not is refused (the core denies `posture_store_unavailable`).
//! After a failure, calls skip Redis for [`PROBE_INTERVAL`] (one request
//! probes it after that, and so do the readiness endpoint and the
//! subscriber), so an outage does not add the timeout to every request.
//! The outage is logged once, and its end once. An attestation that cannot
//! be written is refused (`on_store_failure = "deny"`: 503, retry later)
//! or kept in this gate's near cache only, its nonce in this gate's memory
//! (`"local"`; replay protection is then per replica until Redis is back).
//! Nothing queues: a call that fails is answered at once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisError, RedisResult};

use posture_core::config::model::StoreFailure;
use posture_core::config::snapshot::RedisSettings;
use posture_core::decision::Posture;
use posture_core::device::DeviceIdentity;
use posture_core::nac::{CertKey, NasSession};
use posture_core::store::wire::{decode_posture, encode_posture};
use posture_core::store::{Fingerprint, NonceUse, StoreError, UsedNonces};

/// The most of a stored posture a gate reads. Four times the largest token
/// (spec: 1 MiB), whose assessment is always smaller; what it stops is a
/// value planted under the prefix (Redis allows 512 MB) costing every
/// replica that much memory on every request of that device.
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

/// After a failed call, the time other calls answer from the near cache
/// (or fail) without asking Redis.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// The longest wait between two attempts to subscribe again.
const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(2);
/// Used nonces kept in this gate's memory while Redis is out of reach
/// (`on_store_failure = "local"`).
const LOCAL_NONCES: u64 = 100_000;

/// Why the store cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the Redis store {url}: {source}")]
pub struct SetupError {
    url: String,
    source: RedisError,
}

/// One posture in the near cache.
#[derive(Clone)]
struct Near {
    posture: Arc<Posture>,
    /// Until then it is served without asking Redis.
    fresh_until: Instant,
    /// Kept during an outage with `on_store_failure = "local"`: Redis has
    /// never seen it.
    local: bool,
}

/// A near-cache entry lives until its posture's `valid_until`.
struct UntilValid;

impl moka::Expiry<Fingerprint, Near> for UntilValid {
    fn expire_after_create(&self, _: &Fingerprint, near: &Near, _: Instant) -> Option<Duration> {
        Some(remaining(&near.posture))
    }

    fn expire_after_update(
        &self,
        _: &Fingerprint,
        near: &Near,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(&near.posture))
    }
}

fn remaining(posture: &Posture) -> Duration {
    posture.time_left(crate::gate::unix_now())
}

/// The Redis store; see the module docs.
pub struct RedisStore {
    url: String,
    client: redis::Client,
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    prefix: String,
    channel: String,
    /// This gate's name on the invalidation channel: its own messages are
    /// not for it.
    instance: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    propagation: Duration,
    on_failure: StoreFailure,
    near: moka::sync::Cache<Fingerprint, Near>,
    local_nonces: UsedNonces,
    /// Whether the last command reached Redis.
    up: AtomicBool,
    /// Milliseconds since `epoch` of the last failed command.
    failed_at: AtomicU64,
    epoch: Instant,
    /// Whether the invalidation channel is subscribed now.
    subscribed: AtomicBool,
    /// Milliseconds since `epoch` of the last readiness PING: anyone may ask
    /// for readiness, without a certificate, so Redis is asked at most once
    /// per [`PROBE_INTERVAL`] and other askers get the state it left.
    probed_at: AtomicU64,
    /// Dropped with the store, which ends the subscriber task.
    _stop: tokio::sync::watch::Sender<()>,
}

impl RedisStore {
    /// Builds the store without connecting (Redis may come up later: the
    /// gate starts, says it is not ready, and connects when it can), and
    /// starts the subscriber task. Must run inside a tokio runtime.
    pub fn new(settings: &RedisSettings) -> Result<Arc<RedisStore>, SetupError> {
        let fail = |source| SetupError {
            url: settings.url.clone(),
            source,
        };
        let client = client(settings).map_err(fail)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connections = (0..settings.pool_size.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<RedisResult<Vec<_>>>()
            .map_err(fail)?;
        let (stop, stopped) = tokio::sync::watch::channel(());
        let store = Arc::new(RedisStore {
            url: settings.url.clone(),
            client,
            connections,
            next: AtomicUsize::new(0),
            prefix: settings.key_prefix.clone(),
            channel: format!("{}invalidate", settings.key_prefix),
            instance: hex::encode(rand::random::<[u8; 8]>()),
            command_timeout: settings.command_timeout,
            connect_timeout: settings.connect_timeout,
            propagation: settings.propagation,
            on_failure: settings.on_store_failure,
            near: moka::sync::Cache::builder()
                .max_capacity(settings.near_cache_capacity)
                .expire_after(UntilValid)
                .support_invalidation_closures()
                .build(),
            local_nonces: UsedNonces::new(LOCAL_NONCES),
            up: AtomicBool::new(true),
            failed_at: AtomicU64::new(0),
            probed_at: AtomicU64::new(0),
            epoch: Instant::now(),
            subscribed: AtomicBool::new(false),
            _stop: stop,
        });
        tokio::spawn(subscribe(Arc::downgrade(&store), stopped));
        Ok(store)
    }

    fn posture_key(&self, fingerprint: &Fingerprint) -> String {
        format!("{}posture:{}", self.prefix, hex::encode(fingerprint))
    }

    /// Runs one command on the next connection, bounded by the command
    /// timeout, and keeps the up/down state (logging its changes). A read
    /// (`retry_read`) whose connection turns out to have been dropped (a
    /// server or balancer that closes idle connections; the first command
    /// after that fails, redis-rs#1415) is tried once more on the
    /// reconnected one, within the same timeout.
    async fn run<T, F, Fut>(&self, probe: bool, retry_read: bool, f: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !probe && self.resting() {
            return Err(StoreError::Unavailable(format!(
                "Redis {} did not answer a moment ago",
                self.url
            )));
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let connection = &self.connections[i];
        let attempt = async {
            match f(connection.clone()).await {
                Err(e) if retry_read && e.is_connection_dropped() => f(connection.clone()).await,
                done => done,
            }
        };
        match tokio::time::timeout(self.command_timeout, attempt).await {
            Ok(Ok(v)) => {
                self.mark_up();
                Ok(v)
            }
            Ok(Err(e)) if is_outage(&e) => Err(self.mark_down(e.to_string())),
            // Redis answered, with an error (a key of another type, an ACL
            // refusal): not an outage, but nothing to trust either.
            Ok(Err(e)) => Err(StoreError::Corrupt(e.to_string())),
            Err(_) => Err(self.mark_down(format!(
                "no answer within the command timeout ({:?})",
                self.command_timeout
            ))),
        }
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a call failed so recently that Redis is not asked again yet.
    fn resting(&self) -> bool {
        !self.up.load(Ordering::Relaxed)
            && self
                .millis()
                .saturating_sub(self.failed_at.load(Ordering::Relaxed))
                < PROBE_INTERVAL.as_millis() as u64
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::warn!(url = %self.url, "the Redis store is reachable again");
        }
    }

    fn mark_down(&self, why: String) -> StoreError {
        self.failed_at.store(self.millis(), Ordering::Relaxed);
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::error!(
                url = %self.url,
                on_store_failure = ?self.on_failure,
                "the Redis store is out of reach: {why}; serving postures from the near cache \
                 until each expires"
            );
        }
        StoreError::Unavailable(why)
    }

    /// The posture of this certificate: from the near cache while fresh,
    /// else from Redis (see the module docs for failures).
    pub async fn get_posture(
        &self,
        fingerprint: &Fingerprint,
    ) -> Result<Option<Arc<Posture>>, StoreError> {
        let cached = self.near.get(fingerprint);
        let sent = Instant::now();
        if let Some(near) = &cached {
            if near.fresh_until > sent {
                return Ok(Some(near.posture.clone()));
            }
        }
        let key = &self.posture_key(fingerprint);
        let read = self
            .run(false, true, |mut c| async move {
                // The length first, and never more than the cap read.
                redis::pipe()
                    .cmd("STRLEN")
                    .arg(key)
                    .cmd("GETRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(MAX_VALUE_BYTES)
                    .query_async::<(usize, Vec<u8>)>(&mut c)
                    .await
            })
            .await;
        let bytes = match read {
            Ok((0, _)) => None,
            Ok((len, _)) if len > MAX_VALUE_BYTES => {
                tracing::warn!(%key, len, "refused a stored posture: larger than {MAX_VALUE_BYTES} bytes");
                None
            }
            Ok((_, bytes)) => Some(bytes),
            // Stale is better than nothing during an outage: the entry
            // still holds until its own valid_until (moka drops it then).
            Err(StoreError::Unavailable(_)) if cached.is_some() => {
                return Ok(cached.map(|n| n.posture));
            }
            Err(e) => return Err(e),
        };
        let now = crate::gate::unix_now();
        let stored = bytes.and_then(|bytes| match decode_posture(&bytes, fingerprint) {
            Ok(p) if p.valid_until > now => Some(Arc::new(p)),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(%key, "refused a stored posture: {e}");
                None
            }
        });
        // A posture kept locally during an outage stays until Redis has
        // one as recent (a later valid_until is a later attestation).
        if let Some(near) = cached.filter(|n| n.local) {
            if stored
                .as_ref()
                .is_none_or(|s| s.valid_until < near.posture.valid_until)
            {
                return Ok(Some(near.posture));
            }
        }
        match &stored {
            Some(p) => self.near.insert(
                *fingerprint,
                Near {
                    posture: p.clone(),
                    fresh_until: sent + self.propagation,
                    local: false,
                },
            ),
            None => self.near.invalidate(fingerprint),
        }
        Ok(stored)
    }

    /// Writes a posture to Redis (until its `valid_until`) and tells the
    /// other gates to drop their copy.
    pub async fn put_posture(
        &self,
        fingerprint: &Fingerprint,
        posture: Arc<Posture>,
        now: i64,
    ) -> Result<(), StoreError> {
        if posture.valid_until <= now {
            return Ok(());
        }
        let key = self.posture_key(fingerprint);
        let value = encode_posture(&posture);
        let message = format!("{}:{}", self.instance, hex::encode(fingerprint));
        let until = posture.valid_until;
        let (key, value, message, channel) = (&key, &value, &message, &self.channel);
        let written = self
            .run(false, false, |mut c| async move {
                redis::pipe()
                    .cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("EXAT")
                    .arg(until)
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(channel)
                    .arg(message)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        let local = match written {
            Ok(()) => false,
            Err(StoreError::Unavailable(_)) if self.on_failure == StoreFailure::Local => true,
            Err(e) => {
                // The old posture must not outlive a report that replaced
                // it here, whether or not Redis took the new one.
                self.near.invalidate(fingerprint);
                return Err(e);
            }
        };
        self.near.insert(
            *fingerprint,
            Near {
                posture,
                // A local one is checked against Redis whenever it can be.
                fresh_until: if local {
                    Instant::now()
                } else {
                    Instant::now() + self.propagation
                },
                local,
            },
        );
        Ok(())
    }

    /// Forgets a posture here, in Redis, and at the other gates.
    pub async fn remove_posture(&self, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        self.near.invalidate(fingerprint);
        let key = self.posture_key(fingerprint);
        let message = format!("{}:{}", self.instance, hex::encode(fingerprint));
        let (key, message, channel) = (&key, &message, &self.channel);
        self.run(false, false, |mut c| async move {
            redis::pipe()
                .cmd("DEL")
                .arg(key)
                .ignore()
                .cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Marks a nonce used across all replicas: `SET NX PXAT`.
    pub async fn use_nonce(
        &self,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<NonceUse, StoreError> {
        let key = format!("{}nonce:{nonce}", self.prefix);
        // At least a second from now, so a nonce at the edge of its life
        // is still recorded rather than refused by Redis.
        let until_ms = expires_at.max(now + 1).saturating_mul(1000);
        let key = &key;
        let set = self
            .run(false, false, |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PXAT")
                    .arg(until_ms)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        match set {
            // A nonce spent at this gate during an outage ("local") is in
            // its own memory only; Redis would take it as new.
            Ok(Some(_)) if self.local_nonces.was_used(nonce, now) => Ok(NonceUse::AlreadyUsed),
            Ok(Some(_)) => Ok(NonceUse::Used),
            Ok(None) => Ok(NonceUse::AlreadyUsed),
            Err(StoreError::Unavailable(_)) if self.on_failure == StoreFailure::Local => {
                Ok(self.local_nonces.use_now(nonce, expires_at, now))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether a challenge can be handed out: Redis bounds nothing itself;
    /// during an outage with `"local"`, this gate's memory of nonces does.
    pub fn nonces_full_for(&self, now: i64) -> Option<u64> {
        match (self.up.load(Ordering::Relaxed), self.on_failure) {
            (false, StoreFailure::Local) => self.local_nonces.full_for_now(now),
            _ => None,
        }
    }

    /// `Ok` when Redis answers a PING within the command timeout and the
    /// invalidation channel is subscribed; otherwise why not.
    pub async fn ready(&self) -> Result<(), String> {
        let now = self.millis();
        let last = self.probed_at.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= PROBE_INTERVAL.as_millis() as u64;
        // `max(1)`: 0 means "never probed".
        let probe = due
            && self
                .probed_at
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if probe {
            self.run(true, true, |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .map_err(|e| format!("redis store: {e}"))?;
        } else if !self.up.load(Ordering::Relaxed) {
            return Err(format!("redis store: Redis {} did not answer", self.url));
        }
        if !self.subscribed.load(Ordering::Relaxed) {
            return Err("redis store: the invalidation channel is not subscribed".to_string());
        }
        Ok(())
    }

    /// Postures in the near cache, after pending evictions.
    pub fn near_count(&self) -> u64 {
        self.near.run_pending_tasks();
        self.near.entry_count()
    }

    /// One message of the invalidation channel.
    fn invalidated(&self, payload: &[u8]) {
        let Some((from, fingerprint)) = std::str::from_utf8(payload)
            .ok()
            .and_then(|p| p.split_once(':'))
        else {
            return;
        };
        if from == self.instance {
            return;
        }
        let mut key = [0u8; 32];
        if hex::decode_to_slice(fingerprint, &mut key).is_ok() {
            self.near.invalidate(&key);
        }
    }
}

/// Whether an error means Redis is out of reach (rather than that it
/// answered with an error).
fn is_outage(e: &RedisError) -> bool {
    // Unrecoverable: a wrong password or a broken handshake, which would
    // otherwise send every request into a new connection attempt.
    e.is_io_error() || e.is_unrecoverable_error()
}

fn client(settings: &RedisSettings) -> RedisResult<redis::Client> {
    let info = settings.url.as_str().into_connection_info()?;
    let mut redis_info = info.redis_settings().clone();
    if let Some(user) = &settings.username {
        redis_info = redis_info.set_username(user);
    }
    if let Some(password) = &settings.password {
        redis_info = redis_info.set_password(password);
    }
    let info = info.set_redis_settings(redis_info);
    if !settings.tls {
        return redis::Client::open(info);
    }
    redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls: settings
                .client_pem
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: settings.ca_pem.clone(),
        },
    )
}

/// The subscriber: subscribes to the invalidation channel, drops the
/// named entries from the near cache, and when the connection ends,
/// subscribes again (with a growing delay, at most 2 s), flushing the near
/// cache once subscribed, since messages were lost meanwhile. Ends when
/// the store is dropped.
async fn subscribe(store: Weak<RedisStore>, mut stopped: tokio::sync::watch::Receiver<()>) {
    let mut delay = Duration::from_millis(50);
    let mut first = true;
    loop {
        let Some((client, channel, timeout)) = store
            .upgrade()
            .map(|s| (s.client.clone(), s.channel.clone(), s.connect_timeout))
        else {
            return;
        };
        let connected = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            RedisResult::Ok(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                let Some(s) = store.upgrade() else { return };
                if !first {
                    s.near.invalidate_entries_if(|_, n| !n.local).ok();
                    tracing::warn!(url = %s.url, "invalidation channel subscribed again; near cache flushed");
                }
                first = false;
                s.subscribed.store(true, Ordering::Relaxed);
                drop(s);
                delay = Duration::from_millis(50);
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(m) => match store.upgrade() {
                                Some(s) => s.invalidated(m.get_payload_bytes()),
                                None => return,
                            },
                            None => break,
                        },
                        _ = stopped.changed() => return,
                    }
                }
                let Some(s) = store.upgrade() else { return };
                s.subscribed.store(false, Ordering::Relaxed);
                tracing::warn!(url = %s.url, "invalidation channel lost; subscribing again");
            }
            Ok(Err(e)) => tracing::debug!("cannot subscribe to the invalidation channel: {e}"),
            Err(_) => tracing::debug!("subscribing to the invalidation channel timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped.changed() => return,
        }
        delay = (delay * 2).min(MAX_RESUBSCRIBE_DELAY);
    }
}

/// The most of an 802.1X identity value read: a planted large value costs
/// no more than this.
const MAX_NAC_VALUE_BYTES: isize = 8 * 1024;
/// The most sessions of one device read.
const MAX_NAC_SESSIONS: usize = 16;

impl RedisStore {
    fn nac_cert_key(&self, key: &CertKey) -> String {
        format!("{}nac:cert:{}", self.prefix, key.as_str())
    }

    fn nac_sessions_key(&self, fingerprint: &Fingerprint) -> String {
        format!("{}nac:sessions:{}", self.prefix, hex::encode(fingerprint))
    }

    /// Whether the last call to Redis succeeded (no call is made here).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// See `NacStore::learn`.
    pub async fn nac_learn(
        &self,
        key: &CertKey,
        device: &DeviceIdentity,
        until: i64,
    ) -> Result<(), StoreError> {
        let value =
            serde_json::to_string(device).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (key, value) = (&self.nac_cert_key(key), &value);
        let until_ms = until.saturating_mul(1000);
        self.run(false, false, |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PXAT")
                .arg(until_ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// See `NacStore::device`; a value that does not read is absent.
    pub async fn nac_device(&self, key: &CertKey) -> Result<Option<DeviceIdentity>, StoreError> {
        let key = &self.nac_cert_key(key);
        let value: Vec<u8> = self
            .run(false, true, |mut c| async move {
                redis::cmd("GETRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(MAX_NAC_VALUE_BYTES - 1)
                    .query_async::<Vec<u8>>(&mut c)
                    .await
            })
            .await?;
        if value.is_empty() {
            return Ok(None);
        }
        match serde_json::from_slice::<DeviceIdentity>(&value) {
            Ok(device) => Ok(Some(device)),
            Err(e) => {
                tracing::warn!(key, "an unreadable 802.1X identity in Redis, ignored: {e}");
                Ok(None)
            }
        }
    }

    /// See `NacStore::put_session`.
    pub async fn nac_put_session(
        &self,
        fingerprint: &Fingerprint,
        session: &NasSession,
        until: i64,
    ) -> Result<(), StoreError> {
        let value =
            serde_json::to_string(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let key = &self.nac_sessions_key(fingerprint);
        let (field, value) = (&session_field(session), &value);
        let until_ms = until.saturating_mul(1000);
        self.run(false, false, |mut c| async move {
            redis::pipe()
                .cmd("HSET")
                .arg(key)
                .arg(field)
                .arg(value)
                .ignore()
                .cmd("PEXPIREAT")
                .arg(key)
                .arg(until_ms)
                .arg("GT")
                .ignore()
                .cmd("PEXPIREAT")
                .arg(key)
                .arg(until_ms)
                .arg("NX")
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// See `NacStore::end_session`.
    pub async fn nac_end_session(
        &self,
        fingerprint: &Fingerprint,
        session: &NasSession,
    ) -> Result<(), StoreError> {
        let key = &self.nac_sessions_key(fingerprint);
        let field = &session_field(session);
        // A late Stop of an earlier session at the same port must not end
        // the session there now: only the session it names is removed.
        let stored: Option<Vec<u8>> = self
            .run(false, true, |mut c| async move {
                redis::cmd("HGET")
                    .arg(key)
                    .arg(field)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
            .await?;
        let current = stored.and_then(|v| serde_json::from_slice::<NasSession>(&v).ok());
        if !current.is_some_and(|c| c.same(session)) {
            return Ok(());
        }
        self.run(false, false, |mut c| async move {
            redis::cmd("HDEL")
                .arg(key)
                .arg(field)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// See `NacStore::sessions`; values that do not read are skipped.
    pub async fn nac_sessions(
        &self,
        fingerprint: &Fingerprint,
    ) -> Result<Vec<NasSession>, StoreError> {
        let key = &self.nac_sessions_key(fingerprint);
        let fields: Vec<(String, Vec<u8>)> = self
            .run(false, true, |mut c| async move {
                redis::cmd("HGETALL")
                    .arg(key)
                    .query_async::<Vec<(String, Vec<u8>)>>(&mut c)
                    .await
            })
            .await?;
        Ok(fields
            .into_iter()
            .take(MAX_NAC_SESSIONS)
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect())
    }
}

/// A session's field in its device's hash: one per device address (or,
/// without one, per accounting session) at a NAS, as `NasSession::same`.
fn session_field(session: &NasSession) -> String {
    match (&session.calling_station_id, &session.acct_session_id) {
        (Some(mac), _) => format!("{}|{mac}", session.nas),
        (None, Some(id)) => format!("{}|acct:{id}", session.nas),
        (None, None) => format!("{}|", session.nas),
    }
}
