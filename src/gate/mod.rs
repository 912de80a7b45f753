//! The server: a TLS front that identifies devices by client certificate,
//! keeps their posture, judges each request with the core's one
//! enforcement step (`posture_core::enforce`), and proxies what it admits
//! to the upstream apps of the route.
//!
//! Everything that a reload may change lives in one [`Live`] behind an
//! `ArcSwap`: each connection takes the TLS config current at accept, each
//! request takes the whole `Live` once, so a reload never changes the rules
//! under a request in flight. What must outlive reloads (remembered postures,
//! used nonces, the fallback nonce secret) lives in `Shared`.
//!
//! Choices the issue left open:
//! - A posture is remembered only for a TLS client certificate fingerprint.
//!   A token posted without a client certificate is verified and its verdict
//!   returned, but nothing is cached: a device without a certificate cannot
//!   be recognised on its next request anyway.
//! - Beyond `max_connections_per_ip` from one address (checked first; an
//!   IPv4-mapped IPv6 address counts as its IPv4 address, loopback is not
//!   exempt) or `max_connections` in all, a new connection is accepted and
//!   closed at once, so the backlog (4096, capped by somaxconn) never fills
//!   with clients that will time out. Refusals are logged once a second.
//! - The TLS handshake is bounded by `header_read_timeout`.
//! - A peer in `[server] proxy_protocol_from` (an L4 balancer) must start
//!   each connection with a PROXY protocol v2 header, read before the TLS
//!   handshake and within the same `header_read_timeout` (see
//!   `proxy_header`); without a valid one the connection is closed, counted
//!   and logged (once a second), except one closed before its first byte
//!   (a balancer's TCP health check), which is only closed. The client address it names is then the
//!   connection's peer everywhere: audit `source`, `X-Forwarded-For`,
//!   `trusted_proxies` and `max_connections_per_ip`. The balancer's own
//!   address is not counted per address (it carries every client); a
//!   `LOCAL` header (its health check) keeps and counts the balancer's
//!   address. No other peer's bytes are ever read as a PROXY header: from
//!   them a header is just a failed TLS handshake.
//! - `listen`, `max_connections`, `max_body_bytes_in_flight`,
//!   `posture_cache_capacity`, `[store]` and `[audit]` are fixed at bind; a reload that
//!   changes them logs a warning and keeps the old ones (a reload does reopen
//!   the audit file, for logrotate). The other limits apply to new
//!   connections (and requests) after a reload.
//! - A peer whose client certificate failed verification is a peer
//!   without one for every limit below (and everything else; see `tls`).
//! - A peer without a client certificate may post at most
//!   `attest_without_certificate_per_minute` attestations a minute per
//!   address (a token bucket, see `attest_limit`), checked before its body
//!   is read; beyond: 429 with `Retry-After`.
//! - `[admin]` (see `admin`) is a side listener in plain HTTP for
//!   `/metrics`, `/healthz` and `/readyz`; its address and limit are fixed at
//!   bind. Under systemd (`NOTIFY_SOCKET`), `run` sends `READY=1` once it
//!   accepts, each reload `RELOADING=1` then `READY=1`, and shutdown
//!   `STOPPING=1` (see `systemd`).
//! - The `attest` body, the only body the gate reads itself, must come
//!   within `body_timeout` and, after 2 s, at `body_min_rate`; otherwise 408
//!   (and an HTTP/1 connection closes). Its size (declared, else 1 MiB) is
//!   reserved from `max_body_bytes_in_flight` before any byte is buffered;
//!   peers without a client certificate may hold only half of it. Spent: 503
//!   with `Retry-After`. Proxied bodies stream to the upstream unread.
//! - An HTTP/2 connection without a client certificate gets
//!   `max_streams_without_certificate` streams (default 8), 64 KiB stream and
//!   256 KiB connection windows and a 64 KiB send buffer; with a certificate,
//!   hyper's defaults (200 streams, 1 MiB windows).
//! - The idle timeout closes a connection with no request in flight (until
//!   its response body is sent in full) and none started for `idle_timeout`,
//!   HTTP/1 and HTTP/2 alike. Bytes alone (PINGs, a half-sent request head)
//!   do not count.
//! - Upstreams are spoken to in HTTP/1.1 whatever the client used, which
//!   also carries upgrades. Only the protocols in the route's `upgrades`
//!   (default `websocket`; `h2c` is refused by validation) are relayed; any
//!   other `Upgrade` token is dropped and the request goes on as a plain
//!   one. An upgraded connection runs in its own task and keeps its places
//!   under the connection limits; it is closed after `idle_timeout` without
//!   a byte either way, when its posture's `valid_until` passes (unless the
//!   device attested again and is still admitted), and when a reload
//!   changes its route's decision to deny (or drops the route or the
//!   protocol). Shutdown does not wait for it.
//! - With CRLs configured, rustls checks revocation for the whole chain and
//!   refuses a certificate whose status is unknown or whose CRL is out of
//!   date (fail closed). The same CRLs are checked again on every request
//!   and attestation (`posture_core::revocation`), so a connection opened
//!   before a revocation does not keep it out of reach; the `x5c` chain of
//!   a token is checked against them too (`untrusted_chain`).
//! - Reload reports a [`ReloadError`], which wraps the loader's
//!   `ConfigErrors` and adds what can fail after validation (unreadable
//!   certificate or key, an upstream CA that does not parse).
//! - Used nonces are remembered for their whole remaining lifetime, up to
//!   4 x `posture_cache_capacity` of them; nonces themselves are stateless
//!   (HMAC). When that memory is full of live nonces, nothing is evicted:
//!   challenges get 503 with Retry-After and an attestation whose nonce
//!   cannot be recorded gets 503 too, so no nonce is ever accepted twice.
//!
//! Headers the gate asserts to upstreams ([`GATE_OWNED`]) are removed from
//! every client request first: `X-Posture-Device-Fingerprint`,
//! `X-Posture-Device-Subject` (the RFC 4514 subject) and
//! `X-Posture-Device-Organization` (the first O), `X-Posture-Decision`
//! (`allow` or `warn`), `Posture-Warning` (catalogue ids and unmet
//! requirements behind a warning) and `Posture-Attestation` (consumed, never
//! forwarded). Subject and organisation are percent-encoded UTF-8: `%`,
//! space, `"`, `,`, `<`, `>`, `\`, controls and non-ASCII are escaped, so a
//! value is never a list, markup or an escape; percent-decode once for the
//! text (for the subject, then parse it as RFC 4514).
//!
//! Removed too, in every spelling that a CGI, WSGI or PHP upstream folds into
//! the same variable (any non-alphanumeric character read as `-`, so
//! `X_Posture_Decision` is `X-Posture-Decision`): every `X-Posture-*` and
//! `Posture-*` name, every `X-Forwarded-*` (the gate sets `-For`, `-Proto`,
//! `-Host` itself), `Forwarded`, `X-Real-IP` and the other client-IP claims,
//! `X-Original-URL`, `X-Rewrite-URL`, `Proxy` (httpoxy) and other proxies'
//! client-certificate headers (`X-SSL-Client-*`, XFCC, ...); the list is in
//! `headers.rs`. `X-Forwarded-For` starts at the peer the gate sees, unless
//! the peer is in `[server] trusted_proxies`: then its chain is kept and the
//! peer appended.
//!
//! Upstream answers without `Cache-Control` get `Cache-Control: private`:
//! each was made for one device and decision. Paths that some upstream reads
//! as another route's, two `Host` headers and a Host with two ports are a
//! 400 (see the routing module).

mod admin;
mod attest_limit;
mod conn;
mod forward;
mod headers;
mod listener;
mod nac;
mod posture;
mod proxy;
mod proxy_header;
mod reload;
mod remember;
mod respond;
mod routing;
mod systemd;
mod tls;
mod tunnel;
mod upstream;

pub use admin::{note_audit_writer_installed, HEALTHZ_PATH, METRICS_PATH, READYZ_PATH};
pub use headers::{
    DECISION, DEVICE_FINGERPRINT, DEVICE_ORGANIZATION, DEVICE_SUBJECT, GATE_OWNED,
    POSTURE_ATTESTATION, POSTURE_WARNING,
};
pub use posture::{ATTEST_PATH, CHALLENGE_PATH, MAX_TOKEN_BYTES, READY_PATH};
pub use reload::ReloadError;
pub use routing::{
    normalise_host, normalise_path, normalise_path_allowing_encoded_percent, route_view, PathError,
    RouteTable,
};
pub use tls::{TlsError, MAX_CLIENT_INTERMEDIATES};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex, Semaphore};

use posture_core::attestation::Verifier;
use posture_core::config::snapshot::ServerSettings;
use posture_core::config::snapshot::StoreSettings;
use posture_core::config::Snapshot;
use posture_core::nonce::{self, NonceIssuer};
use posture_core::revocation::Revocations;
use posture_core::store::{MemoryPostures, UsedNonces};

use crate::store::{Nonces, Postures, RedisStore};

/// What a reload replaces, as one unit.
pub struct Live {
    pub snapshot: Arc<Snapshot>,
    pub settings: ServerSettings,
    pub verifier: Verifier,
    pub tls: Arc<rustls::ServerConfig>,
    /// The verifier every client certificate is judged by once its
    /// handshake is done (`tls`'s own lets any certificate through).
    devices: Arc<tls::DeviceVerifier>,
    /// The revoked certificates of this config's CRLs, checked on every
    /// request and attestation, not only at the handshake.
    revocations: Revocations,
    /// Every file the config refers to, which the reloader watches.
    files: Vec<PathBuf>,
    pub routes: RouteTable,
    /// One pooled client per route, same index as `snapshot.routes`.
    upstreams: Vec<upstream::UpstreamClient>,
    nonces: NonceIssuer,
    /// The forward-auth side of this config: its TLS, its proxies' caches
    /// of verified certificates; `None` without `[forward_auth]`.
    forward: Option<forward::Doors>,
    /// The 802.1X side of this config; `None` without `[nac]`.
    nac: Option<nac::NacDoor>,
}

/// What outlives reloads.
pub(crate) struct Shared {
    live: ArcSwap<Live>,
    config_path: PathBuf,
    /// The postures remembered per client certificate (behind the core's
    /// `PostureStore`): in memory or in Redis, chosen from `[store]` at
    /// bind.
    postures: Postures,
    /// The nonces already used (behind the core's `NonceStore`), in the
    /// same store as the postures.
    used_nonces: Nonces,
    /// Used when the config names no nonce secret; kept across reloads so
    /// a reload does not invalidate the challenges already handed out.
    fallback_secret: Vec<u8>,
    reload_lock: Mutex<()>,
    shutdown: watch::Sender<bool>,
    /// Bytes of request bodies the gate may buffer at once, one permit per
    /// byte (`max_body_bytes_in_flight`, fixed at bind).
    bodies: Semaphore,
    /// The part of `bodies` that peers without a client certificate may
    /// take (half), so they can never crowd out devices that attest.
    unknown_bodies: Semaphore,
    /// Connections from `proxy_protocol_from` peers closed for their header.
    proxy_refusals: listener::ProxyRefusals,
    /// The pages of recent forward-auth refusals, by reference.
    denied: forward::DeniedPages,
    /// What 802.1X remembers: identities by issuer and serial, sessions.
    nac: crate::store::Nac,
    /// The order of each device's 802.1X changes (CoA).
    nac_lanes: nac::Lanes,
    /// The connection limits of every listener, for `/metrics`.
    open: Vec<admin::OpenConnections>,
    /// The listeners accept connections (from `run` until shutdown), for
    /// `/readyz`.
    serving: std::sync::atomic::AtomicBool,
    /// Attestations without a client certificate, per IP address.
    attest_limit: attest_limit::AttestLimit,
    /// The audit log (`[audit]`, fixed at bind; a reload reopens it).
    pub(crate) audit: crate::audit::Audit,
    /// A SIGHUP came: the next reload's trigger is `signal`.
    hangup: std::sync::atomic::AtomicBool,
    /// The last refused report per device, for its pages (per replica).
    refusals: remember::Refusals,
    /// When each device last saw each segment's warning notice.
    notices: remember::Notices,
    /// Which refused client certificates were audited lately (one line a
    /// minute per certificate and address).
    rejected_lines: remember::RejectedLines,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    // Transparent: "{0}" with the same error as source printed it twice
    // in `{:#}` (and a TLS key problem three times).
    #[error(transparent)]
    Config(#[from] ReloadError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for forward-auth on {listen:?}: {source}")]
    BindForwardAuth {
        listen: posture_core::config::snapshot::ForwardAuthListen,
        source: std::io::Error,
    },
    #[error("cannot listen for 802.1X decisions on {listen:?}: {source}")]
    BindNac {
        listen: posture_core::config::snapshot::ForwardAuthListen,
        source: std::io::Error,
    },
    #[error("cannot listen for the admin endpoints on {addr}: {source}")]
    BindAdmin {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] crate::store::redis::SetupError),
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
}

/// The server, bound and ready to run.
pub struct Gate {
    shared: Arc<Shared>,
    listener: TcpListener,
    /// The forward-auth listener, when `[forward_auth]` is configured.
    forward: Option<forward::Listener>,
    /// The 802.1X decision listener, when `[nac]` is configured.
    nac: Option<forward::Listener>,
    /// The admin listener, when `[admin]` is configured.
    admin: Option<forward::Listener>,
    connections: Arc<Semaphore>,
    signals: listener::Signals,
    watchers: reload::Watchers,
}

/// A clone-able handle for reloads, shutdown and inspection.
#[derive(Clone)]
pub struct GateHandle {
    shared: Arc<Shared>,
}

impl Gate {
    /// Loads the config, builds TLS, routes and upstream clients, and binds
    /// the listener from the `[server]` settings (port 0 allowed for tests).
    pub async fn bind(config_path: PathBuf) -> Result<Gate, GateError> {
        let (snapshot, files) = reload::load(config_path.clone()).await;
        let snapshot = snapshot?;
        let fallback_secret = nonce::random_secret();
        if snapshot.attestation.nonce_secret.is_none() {
            tracing::warn!(
                "no nonce_secret_file configured: using a per-process secret, so several gate \
                 instances will not accept each other's nonces"
            );
        }
        let capacity = snapshot.attestation.posture_cache_capacity;
        let (postures, used_nonces, nac_store) = match &snapshot.store {
            StoreSettings::Memory => (
                Postures::Memory(MemoryPostures::new(capacity)),
                Nonces::Memory(UsedNonces::new(capacity.saturating_mul(4))),
                crate::store::Nac::Memory(posture_core::store::MemoryNac::new(
                    usize::try_from(capacity).unwrap_or(usize::MAX),
                )),
            ),
            StoreSettings::Redis(settings) => {
                let redis = RedisStore::new(settings)?;
                (
                    Postures::Redis(redis.clone()),
                    Nonces::Redis(redis.clone()),
                    crate::store::Nac::Redis(redis),
                )
            }
        };
        let audit = crate::audit::Audit::start(
            &snapshot
                .server
                .as_ref()
                .map(|s| s.audit.clone())
                .unwrap_or_default(),
        )
        .map_err(GateError::Audit)?;
        let live = reload::build_live(snapshot, files, &fallback_secret).await?;
        let addr = live.settings.listen;
        let listener = listener::bind(addr).map_err(|source| GateError::Bind { addr, source })?;
        let forward = match &live.settings.forward_auth {
            Some(f) => Some(
                forward::bind(&f.listen, f.max_connections, f.tls.is_some()).map_err(|source| {
                    GateError::BindForwardAuth {
                        listen: f.listen.clone(),
                        source,
                    }
                })?,
            ),
            None => None,
        };
        let nac = match &live.settings.nac {
            Some(n) => Some(
                forward::bind(&n.listen, n.max_connections, n.tls.is_some()).map_err(|source| {
                    GateError::BindNac {
                        listen: n.listen.clone(),
                        source,
                    }
                })?,
            ),
            None => None,
        };
        let admin = match &live.settings.admin {
            Some(a) => Some(
                forward::bind(
                    &posture_core::config::snapshot::ForwardAuthListen::Tcp(a.listen),
                    a.max_connections,
                    false,
                )
                .map_err(|source| GateError::BindAdmin {
                    addr: a.listen,
                    source,
                })?,
            ),
            None => None,
        };
        let connections = Arc::new(Semaphore::new(live.settings.max_connections));
        let mut open = vec![admin::OpenConnections {
            listener: "front",
            limit: connections.clone(),
            max: live.settings.max_connections,
        }];
        for (listener, side) in [("forward_auth", &forward), ("nac", &nac), ("admin", &admin)] {
            if let Some(side) = side {
                open.push(admin::OpenConnections {
                    listener,
                    limit: side.connections(),
                    max: side.max_connections(),
                });
            }
        }
        let attest_limit = attest_limit::AttestLimit::new();
        let budget = live
            .settings
            .max_body_bytes_in_flight
            .min(Semaphore::MAX_PERMITS);
        let bodies = Semaphore::new(budget);
        let unknown_bodies = Semaphore::new((budget / 2).max(MAX_TOKEN_BYTES).min(budget));
        let shared = Arc::new(Shared {
            live: ArcSwap::from_pointee(live),
            config_path,
            postures,
            used_nonces,
            fallback_secret,
            reload_lock: Mutex::new(()),
            shutdown: watch::channel(false).0,
            bodies,
            unknown_bodies,
            proxy_refusals: Default::default(),
            denied: Default::default(),
            nac: nac_store,
            nac_lanes: Default::default(),
            open,
            serving: std::sync::atomic::AtomicBool::new(false),
            attest_limit,
            audit,
            hangup: Default::default(),
            refusals: Default::default(),
            notices: Default::default(),
            rejected_lines: Default::default(),
        });
        reload::record(&shared, posture_core::audit::ReloadTrigger::Start, None).await;
        // Signal handlers and the file watcher are set up here rather than
        // in `run`, so a SIGHUP or SIGTERM right after bind is handled.
        let signals = listener::Signals::new()?;
        let watchers = reload::spawn_watchers(shared.clone())?;
        Ok(Gate {
            shared,
            listener,
            forward,
            nac,
            admin,
            connections,
            signals,
            watchers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; fall back to the config.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.shared.live.load().settings.listen)
    }

    pub fn handle(&self) -> GateHandle {
        GateHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until SIGTERM, SIGINT or [`GateHandle::shutdown`], reloading
    /// on SIGHUP and on changes to the config file or the files it names;
    /// then drains in-flight requests for at most `shutdown_grace`.
    pub async fn run(self) -> Result<(), GateError> {
        // Forward-auth stops on the same shutdown signal as the front.
        let sides: Vec<_> = [
            (self.forward, forward::Side::ForwardAuth),
            (self.nac, forward::Side::Nac),
            (self.admin, forward::Side::Admin),
        ]
        .into_iter()
        .filter_map(|(l, side)| Some(tokio::spawn(forward::serve(l?, self.shared.clone(), side))))
        .collect();
        self.shared
            .serving
            .store(true, std::sync::atomic::Ordering::Relaxed);
        systemd::ready();
        let result = listener::serve(
            self.listener,
            self.shared.clone(),
            self.connections,
            self.signals,
        )
        .await;
        self.shared
            .serving
            .store(false, std::sync::atomic::Ordering::Relaxed);
        systemd::stopping();
        // The front stops on SIGTERM too, which forward-auth does not see.
        self.shared.shutdown.send_replace(true);
        for side in sides {
            let _ = side.await;
        }
        drop(self.watchers);
        // The last lines are on their way: wait for them (bounded).
        if !self
            .shared
            .audit
            .flush(std::time::Duration::from_secs(5))
            .await
        {
            tracing::error!("audit lines still queued at exit");
        }
        result
    }

    /// The forward-auth listener's TCP address, when it listens on TCP.
    pub fn forward_auth_addr(&self) -> Option<SocketAddr> {
        self.forward
            .as_ref()
            .and_then(forward::Listener::local_addr)
    }

    /// The admin listener's address, when `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(forward::Listener::local_addr)
    }

    /// The 802.1X decision listener's TCP address, when it listens on TCP.
    pub fn nac_addr(&self) -> Option<SocketAddr> {
        self.nac.as_ref().and_then(forward::Listener::local_addr)
    }
}

impl GateHandle {
    /// Reloads the config file now. On error the running config stays.
    pub async fn reload_now(&self) -> Result<(), ReloadError> {
        reload::reload(&self.shared).await
    }

    /// The audit log's state, for readiness and metrics.
    pub fn audit_health(&self) -> crate::audit::AuditHealth {
        self.shared.audit.health()
    }

    /// Waits until every audit line queued so far is written (and synced,
    /// unless `fsync = "never"`), at most `timeout`.
    pub async fn audit_flush(&self, timeout: std::time::Duration) -> bool {
        self.shared.audit.flush(timeout).await
    }

    /// Starts a graceful shutdown; `run` returns once drained.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// How many device postures are remembered in this process (for
    /// Redis: in the near cache), after pending evictions.
    pub fn posture_count(&self) -> u64 {
        self.shared.postures.count()
    }

    /// `Ok` when the posture store can be used now, else why not: what
    /// the readiness endpoint answers.
    pub async fn ready(&self) -> Result<(), String> {
        self.shared.postures.ready().await
    }

    /// Connections from `proxy_protocol_from` peers closed because their
    /// PROXY v2 header was missing, malformed, too long or too late.
    pub fn proxy_header_refusals(&self) -> u64 {
        self.shared.proxy_refusals.total()
    }

    /// The snapshot currently serving.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.live.load().snapshot.clone()
    }
}

/// Seconds since the Unix epoch; the clock all decisions use.
pub use posture_core::decision::unix_now;
