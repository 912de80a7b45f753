//! Accepting connections: the connection limit, the TLS handshake with its
//! timeout, the HTTP/1.1 + HTTP/2 server with its header limits, the idle
//! timeout, and the graceful drain on shutdown.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::revocation::CertId;
use super::{headers, proxy, GateError, Live, Shared};
use crate::device::DeviceIdentity;

/// hyper refuses an HTTP/1 read buffer smaller than this.
const MIN_H1_BUFFER: usize = 8192;

/// What the gate knows about a connection, fixed at the handshake.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The validated client certificate's identity, if one was presented.
    pub client: Option<DeviceIdentity>,
    pub client_der: Option<CertificateDer<'static>>,
    /// Issuer and serial of each presented certificate, leaf first, for the
    /// revocation check on every request (see `gate::revocation`).
    pub(super) cert_ids: Vec<CertId>,
    /// The TLS server name the client asked for, lowercased.
    pub sni: Option<String>,
    /// This connection's place under `max_connections`; an upgraded
    /// connection takes a share along so it keeps counting.
    pub(super) slot: Arc<OwnedSemaphorePermit>,
    /// The header values the upstream gets about this connection, encoded
    /// once here instead of on every request it carries.
    pub(super) upstream_values: UpstreamValues,
}

/// See [`ConnInfo::upstream_values`]. Cloning a `HeaderValue` shares its
/// bytes, so each request costs no encoding and no copy.
pub(super) struct UpstreamValues {
    pub peer_ip: Option<HeaderValue>,
    /// Fingerprint, subject and organisation of the client certificate.
    pub device: Option<DeviceValues>,
}

pub(super) struct DeviceValues {
    pub fingerprint: HeaderValue,
    pub subject: HeaderValue,
    pub organization: Option<HeaderValue>,
}

impl UpstreamValues {
    fn new(peer: SocketAddr, client: Option<&DeviceIdentity>) -> UpstreamValues {
        UpstreamValues {
            peer_ip: HeaderValue::from_str(&peer.ip().to_string()).ok(),
            device: client.map(|c| DeviceValues {
                fingerprint: headers::encode_value(&c.fingerprint_sha256),
                subject: headers::encode_value(&c.subject),
                organization: c.organization.as_deref().map(headers::encode_value),
            }),
        }
    }
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            // Over the limit: close at once rather than queue a client that
            // would time out anyway.
            tracing::warn!(peer = %peer, "connection limit reached, closing");
            drop(stream);
            continue;
        };
        let live = shared.live.load_full();
        connections.spawn(connection(
            stream,
            peer,
            live,
            shared.clone(),
            graceful.watcher(),
            permit,
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
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it right here.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    live: Arc<Live>,
    shared: Arc<Shared>,
    watcher: Watcher,
    permit: OwnedSemaphorePermit,
) {
    let settings = &live.settings;
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = Tracked {
        inner: stream,
        activity: activity.clone(),
    };
    let acceptor = TlsAcceptor::from(live.tls.clone());
    let tls = match tokio::time::timeout(settings.header_read_timeout, acceptor.accept(io)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            return;
        }
    };
    let conn = Arc::new(conn_info(peer, tls.get_ref().1, permit));
    let busy = activity.clone();
    let service = service_fn(move |req| {
        let conn = conn.clone();
        let shared = shared.clone();
        let busy = busy.clone();
        async move {
            let _working = Working::start(&busy);
            Ok::<_, Infallible>(proxy::handle(req, &conn, &shared).await)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(MIN_H1_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
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
                // No request being handled and no bytes either way for the
                // idle timeout: close. A response that is still streaming
                // moves bytes, so it is not idle.
                if activity.in_flight.load(Ordering::Relaxed) == 0 && activity.idle_for() >= idle {
                    tracing::debug!(peer = %peer, "idle connection closed");
                    return;
                }
            }
        }
    }
}

fn conn_info(
    peer: SocketAddr,
    session: &rustls::ServerConnection,
    permit: OwnedSemaphorePermit,
) -> ConnInfo {
    let client_der = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.clone().into_owned());
    // rustls validated the certificate; one x509-parser cannot read is
    // treated as no certificate at all, which is denied.
    let client = client_der
        .as_ref()
        .and_then(|der| match DeviceIdentity::from_der(der) {
            Ok(identity) => Some(identity),
            Err(e) => {
                tracing::warn!(peer = %peer, "unreadable client certificate: {e}");
                None
            }
        });
    // A certificate whose issuer and serial cannot be read cannot be looked
    // up: with CRLs configured that is an unknown status, refused.
    let cert_ids = session
        .peer_certificates()
        .map(|chain| chain.iter().map_while(CertId::of).collect())
        .unwrap_or_default();
    ConnInfo {
        cert_ids,
        upstream_values: UpstreamValues::new(peer, client.as_ref()),
        peer,
        client,
        client_der,
        sni: session.server_name().map(str::to_ascii_lowercase),
        slot: Arc::new(permit),
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

/// When the connection last moved a byte, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last: AtomicU64,
    /// Requests whose handler has not returned yet (waiting on an upstream).
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
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

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Counts a request as in flight for as long as it lives.
struct Working<'a>(&'a Activity);

impl<'a> Working<'a> {
    fn start(activity: &'a Activity) -> Working<'a> {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Working(activity)
    }
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A TCP stream that records activity for the idle timeout.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
