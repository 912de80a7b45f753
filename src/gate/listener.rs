//! Accepting connections: the connection limits (in all and per client
//! address), the PROXY protocol v2 header of a listed balancer, the TLS
//! handshake with its timeout, the HTTP/1.1 + HTTP/2
//! server with its header limits (and tighter HTTP/2 limits for a peer
//! without a client certificate), the idle timeout, and the graceful drain
//! on shutdown.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::conn::{conn_info, PerIp, Slot};
use super::proxy_header::{self, HeaderError, Origin};
use super::respond;
use super::{proxy, GateError, Live, Shared};
use posture_core::audit::{AuditEvent, TlsRefusedEvent};

/// hyper refuses an HTTP/1 read buffer smaller than this.
pub(super) const MIN_H1_BUFFER: usize = 8192;

/// HTTP/2 flow-control windows for a connection without a client
/// certificate: the protocol's own initial stream window, and room for four
/// such streams on the connection. hyper's defaults (1 MiB each) let one
/// unknown peer park megabytes in the gate before any check.
const UNKNOWN_PEER_STREAM_WINDOW: u32 = 65_535;
const UNKNOWN_PEER_CONNECTION_WINDOW: u32 = 4 * 65_535;
/// What hyper may queue per stream towards such a peer: the gate's own
/// pages, which are small.
const UNKNOWN_PEER_SEND_BUFFER: usize = 64 * 1024;

/// Connections the kernel may queue before the gate accepts them (capped
/// by `net.core.somaxconn`). The std and mio default, 128, is overrun by a
/// burst of new connections within milliseconds; every SYN past it is
/// dropped and retried a second later, so a flood would slow down the
/// clean clients too, and even its own refusal.
const LISTEN_BACKLOG: u32 = 4096;

/// Refused connections are logged at most this often, with a count, so a
/// flood does not become a flood of log lines.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Binds the listening socket with [`LISTEN_BACKLOG`].
pub(super) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As std and mio do: a restarted gate can bind while old connections
    // of the previous process linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut signals: Signals,
) -> Result<(), GateError> {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = shared.shutdown.subscribe();
    let per_ip = Arc::new(PerIp::default());
    let mut refusals = Refusals::new();
    loop {
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
            _ = signals.recv() => break,
        };
        let live = shared.live.load_full();
        if behind_a_balancer(&live.settings.proxy_protocol_from, peer) {
            // The balancer's address stands for every client behind it, so
            // it is not counted per address; the client's address is, once
            // the header has named it.
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                refusals.note(peer, "max_connections");
                drop(stream);
                continue;
            };
            connections.spawn(from_balancer(
                stream,
                peer,
                permit,
                per_ip.clone(),
                live,
                shared.clone(),
                graceful.watcher(),
            ));
            continue;
        }
        // Over a limit: close at once rather than queue a client that would
        // time out anyway. The address is checked first, so one address
        // cannot take the last free places from everybody else.
        let Some(ip_slot) = per_ip.try_acquire(peer.ip(), live.settings.max_connections_per_ip)
        else {
            refusals.note(peer, "max_connections_per_ip");
            drop(stream);
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            refusals.note(peer, "max_connections");
            drop(stream);
            continue;
        };
        let slot = Slot {
            _all: permit,
            _ip: ip_slot,
        };
        let deadline = Instant::now() + live.settings.header_read_timeout;
        connections.spawn(connection(
            stream,
            peer,
            deadline,
            live,
            shared.clone(),
            graceful.watcher(),
            slot,
        ));
    }
    drop(listener);
    let grace = shared.live.load().settings.shutdown_grace;
    tracing::info!(
        connections = graceful.count(),
        "shutting down, draining for at most {grace:?}"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace over, closing the remaining connections");
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Resolves once shutdown is asked for (or nobody can ask any more).
pub(super) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it right here.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

fn behind_a_balancer(balancers: &[ipnet::IpNet], peer: SocketAddr) -> bool {
    super::headers::listed(balancers, peer.ip())
}

/// A connection from a `proxy_protocol_from` peer: its PROXY v2 header,
/// within the time the TLS handshake has too (one deadline for both), then
/// the client's place under the per-address limit, then the connection as
/// the client's.
async fn from_balancer(
    mut stream: TcpStream,
    balancer: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    per_ip: Arc<PerIp>,
    live: Arc<Live>,
    shared: Arc<Shared>,
    watcher: Watcher,
) {
    let deadline = Instant::now() + live.settings.header_read_timeout;
    let origin = match tokio::time::timeout_at(deadline, proxy_header::read(&mut stream)).await {
        Ok(Ok(origin)) => origin,
        Ok(Err(HeaderError::Closed)) => {
            // A plain TCP health check of the balancer: not a refusal.
            tracing::debug!(balancer = %balancer, "closed before its PROXY header");
            return;
        }
        Ok(Err(e)) => {
            shared.proxy_refusals.note(balancer, &e);
            return;
        }
        Err(_) => {
            shared
                .proxy_refusals
                .note(balancer, &"no whole PROXY v2 header in time");
            return;
        }
    };
    let peer = match origin {
        Origin::Client(client) => client,
        Origin::Local => balancer,
    };
    tracing::debug!(balancer = %balancer, peer = %peer, "PROXY v2 header read");
    let Some(ip_slot) = per_ip.try_acquire(peer.ip(), live.settings.max_connections_per_ip) else {
        tracing::debug!(peer = %peer, balancer = %balancer, "max_connections_per_ip reached, closing");
        return;
    };
    let slot = Slot {
        _all: permit,
        _ip: ip_slot,
    };
    connection(stream, peer, deadline, live, shared, watcher, slot).await;
}

/// Connections from `proxy_protocol_from` peers closed for their header:
/// counted, and logged at most once a second with the count, since a
/// misconfigured balancer would otherwise log every connection.
#[derive(Default)]
pub(super) struct ProxyRefusals {
    total: AtomicU64,
    /// Milliseconds since `EPOCH` of the last warning, plus one (0: never).
    logged: AtomicU64,
}

impl ProxyRefusals {
    pub(super) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn note(&self, balancer: SocketAddr, why: &dyn std::fmt::Display) {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let now = epoch().elapsed().as_millis() as u64 + 1;
        let last = self.logged.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= REFUSAL_LOG_INTERVAL.as_millis() as u64;
        if due
            && self
                .logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                balancer = %balancer,
                refused = total,
                "connection from a proxy_protocol_from peer closed: {why}"
            );
        } else {
            tracing::debug!(balancer = %balancer, "PROXY header refused: {why}");
        }
    }
}

/// A fixed instant for [`ProxyRefusals`], which keeps its times as numbers.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    live: Arc<Live>,
    shared: Arc<Shared>,
    watcher: Watcher,
    slot: Slot,
) {
    let settings = &live.settings;
    let _ = stream.set_nodelay(true);
    let acceptor = TlsAcceptor::from(live.tls.clone());
    let tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // Certificates are judged after the handshake, so what fails
            // here is the TLS itself, or a client certificate so broken
            // that its CertificateVerify cannot be checked: no page can be
            // sent, and nothing is audited (as for any failed handshake).
            tracing::debug!(peer = %peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            return;
        }
    };
    let conn = Arc::new(conn_info(peer, tls.get_ref().1, &live.devices, slot));
    if let Some(r) = &conn.rejected {
        // One line per connection, in this connection's task: a client that
        // opens many gets as many lines as handshakes it completes (each a
        // full handshake, under the per-address connection limit), and a
        // flood waits here, each holding its connection slot, never the
        // gate's workers.
        tracing::debug!(peer = %peer, code = %r.code(), "client certificate refused");
        if shared.rejected_lines.due(&r.fingerprint_sha256, peer.ip()) {
            let event = AuditEvent::TlsRefused(TlsRefusedEvent::of(peer, r, None));
            shared.audit.emit_record(&event).await;
        } else {
            crate::metrics::tls_refused_unaudited();
        }
    }
    // A certificate that failed verification is no certificate here either.
    let known = conn.client_der.is_some();
    let activity = Arc::new(Activity::new());
    let busy = activity.clone();
    let service = service_fn(move |req| {
        let conn = conn.clone();
        let shared = shared.clone();
        // In flight from the request head until its response body has
        // been sent (or dropped): a long download is not idle.
        let working = Working::start(busy.clone());
        let start = std::time::Instant::now();
        async move {
            let mut access = None;
            let response = proxy::handle(req, &conn, &shared, &mut access, start).await;
            if let Some(access) = &mut access {
                access.status(response.status().as_u16());
            }
            Ok::<_, Infallible>(response.map(|body| Guarded {
                inner: body,
                _working: working,
                access,
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(MIN_H1_BUFFER));
    let mut h2 = builder.http2();
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    if !known {
        // A peer that showed no certificate can only be answered by the
        // gate itself: give it few streams and small windows, so the memory
        // it can make the gate hold stays small.
        h2.max_concurrent_streams(settings.max_streams_without_certificate)
            .initial_stream_window_size(UNKNOWN_PEER_STREAM_WINDOW)
            .initial_connection_window_size(UNKNOWN_PEER_CONNECTION_WINDOW)
            .max_send_buf_size(UNKNOWN_PEER_SEND_BUFFER);
    }
    let serving = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    let mut serving = pin!(watcher.watch(serving.into_owned()));
    let idle = settings.idle_timeout;
    let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            result = &mut serving => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, "connection ended: {e}");
                }
                return;
            }
            _ = tick.tick() => {
                // Idle means no request: none in flight (a slow upstream or
                // a streaming response counts as in flight) and none started
                // for the idle timeout. Bytes alone (HTTP/2 PINGs, a
                // half-sent request head) do not keep a connection open.
                if activity.in_flight.load(Ordering::Relaxed) == 0 && activity.idle_for() >= idle {
                    tracing::debug!(peer = %peer, "idle connection closed");
                    return;
                }
            }
        }
    }
}

/// SIGTERM and SIGINT, for a graceful shutdown. Registered at bind, so a
/// signal that arrives before `run` is polled is not lost (or fatal).
pub(super) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Where a connection stands for the idle timeout.
pub(super) struct Activity {
    start: Instant,
    /// When a request last started or finished, in milliseconds since `start`.
    last: AtomicU64,
    /// Requests started whose response has not been sent in full yet.
    pub(super) in_flight: AtomicUsize,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    pub(super) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Counts a request as in flight for as long as it lives.
pub(super) struct Working(Arc<Activity>);

impl Working {
    pub(super) fn start(activity: Arc<Activity>) -> Working {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Working(activity)
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until it is done.
/// Its drop also sends the proxied request's access line (`access`),
/// with the bytes counted here.
pub(super) struct Guarded {
    pub(super) inner: respond::Body,
    pub(super) _working: Working,
    pub(super) access: Option<crate::audit::Pending>,
}

impl Body for Guarded {
    type Data = Bytes;
    type Error = <respond::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        // Both halves of `respond::Body` are Unpin.
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(access)) = (&poll, &mut self.access) {
            if let Some(data) = frame.data_ref() {
                access.count(data.len());
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts refused connections between log lines.
struct Refusals {
    since: Instant,
    count: u64,
}

impl Refusals {
    fn new() -> Refusals {
        Refusals {
            since: Instant::now(),
            count: 0,
        }
    }

    fn note(&mut self, peer: SocketAddr, limit: &'static str) {
        self.count += 1;
        if self.since.elapsed() >= REFUSAL_LOG_INTERVAL {
            tracing::warn!(
                peer = %peer,
                refused = self.count,
                "connection limit reached ({limit}), closing new connections"
            );
            self.since = Instant::now();
            self.count = 0;
        } else {
            tracing::debug!(peer = %peer, "{limit} reached, closing");
        }
    }
}
