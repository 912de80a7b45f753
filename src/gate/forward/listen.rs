//! The forward-auth listener: TCP (plain on loopback, or mutual TLS) or a
//! Unix socket; its own connection limit; the same header timeout, header
//! size limit and idle timeout as the TLS front. Its peers are the
//! site's proxies, which keep connections open and send request after
//! request; anyone else is answered once and the connection closed.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::authz;
use crate::gate::listener::{self, Activity, Guarded, Working, MIN_H1_BUFFER};
use crate::gate::{Live, Shared};
use posture_core::config::snapshot::ForwardAuthListen;

/// Which side listener: the same transport, trust and limits, another
/// protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::gate) enum Side {
    /// `[forward_auth]`, for proxies.
    ForwardAuth,
    /// `[nac]`, for RADIUS servers.
    Nac,
    /// `[admin]`: metrics and health, plain HTTP, no TLS.
    Admin,
}

/// The bound listener, and its own limit on open connections.
pub(in crate::gate) struct Listener {
    socket: Socket,
    connections: Arc<Semaphore>,
    /// Bound for mutual TLS: a reload that drops the TLS settings must not
    /// turn this socket, maybe reachable from the network, into plain HTTP.
    tls_at_bind: bool,
    max_connections: usize,
}

enum Socket {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        /// The path is removed again when the listener is dropped.
        _remove: RemoveOnDrop,
    },
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Who is on the other side of a forward-auth connection, as far as the
/// transport tells: what `authz` matches against the configured proxies.
pub(in crate::gate) struct ProxyPeer {
    /// The TCP peer; `None` on a Unix socket.
    pub addr: Option<SocketAddr>,
    /// The connection is mutual TLS with a certificate of `proxy_ca`.
    pub tls: bool,
    /// The DNS names of that certificate, lowercase.
    pub names: Vec<String>,
}

impl ProxyPeer {
    /// Whether this connection is the peer configured with these
    /// addresses and certificate name: by address (plain HTTP needs one;
    /// mutual TLS may leave it open), by certificate name when one is
    /// given; on a Unix socket, whoever could open it.
    pub fn is(&self, from: &[ipnet::IpNet], certificate_name: Option<&str>) -> bool {
        let Some(addr) = self.addr else {
            return true;
        };
        let by_address = if from.is_empty() {
            self.tls
        } else {
            crate::gate::headers::listed(from, addr.ip())
        };
        let by_name =
            certificate_name.is_none_or(|name| self.tls && self.names.iter().any(|n| n == name));
        by_address && by_name
    }
}

impl Listener {
    /// Its connection limit, for the open-connections gauge.
    pub fn connections(&self) -> Arc<Semaphore> {
        self.connections.clone()
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(l) => l.local_addr().ok(),
            Socket::Unix { .. } => None,
        }
    }
}

/// Binds the configured address or socket. A Unix socket left behind by a
/// gate that did not stop cleanly is replaced; any other file at that path
/// is an error rather than deleted. The socket is made readable and
/// writable by its owner and group only: who may open it is a proxy.
pub(in crate::gate) fn bind(
    listen: &ForwardAuthListen,
    max_connections: usize,
    tls: bool,
) -> io::Result<Listener> {
    let socket = match listen {
        ForwardAuthListen::Tcp(addr) => Socket::Tcp(listener::bind(*addr)?),
        ForwardAuthListen::Unix(path) => {
            use std::os::unix::fs::{FileTypeExt, PermissionsExt};
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !meta.file_type().is_socket() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket", path.display()),
                    ));
                }
                std::fs::remove_file(path)?;
            }
            let listener = UnixListener::bind(path)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
            Socket::Unix {
                listener,
                _remove: RemoveOnDrop(path.clone()),
            }
        }
    };
    Ok(Listener {
        socket,
        connections: Arc::new(Semaphore::new(max_connections)),
        tls_at_bind: tls,
        max_connections,
    })
}

/// Serves until shutdown, then drains for the front's `shutdown_grace`.
pub(in crate::gate) async fn serve(listener: Listener, shared: Arc<Shared>, side: Side) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = shared.shutdown.subscribe();
    let mut refused_at: Option<Instant> = None;
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = accept(&listener.socket) => accepted,
            _ = listener::stopped(&mut shutdown) => break,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("forward-auth accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = listener.connections.clone().try_acquire_owned() else {
            if refused_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(peer = ?addr, ?side, "side listener max_connections reached, closing new connections");
                refused_at = Some(Instant::now());
            }
            continue;
        };
        let live = shared.live.load_full();
        connections.spawn(connection(
            stream,
            addr,
            live,
            shared.clone(),
            graceful.watcher(),
            permit,
            Bound {
                side,
                tls: listener.tls_at_bind,
            },
        ));
    }
    drop(listener);
    let grace = shared.live.load().settings.shutdown_grace;
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// What a connection's listener is, as it was bound.
#[derive(Clone, Copy)]
struct Bound {
    side: Side,
    /// Bound for mutual TLS.
    tls: bool,
}

/// A stream of either kind.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

async fn accept(socket: &Socket) -> io::Result<(Box<dyn Stream>, Option<SocketAddr>)> {
    match socket {
        Socket::Tcp(l) => {
            let (stream, addr) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok((Box::new(stream), Some(addr)))
        }
        Socket::Unix { listener, .. } => {
            let (stream, _) = listener.accept().await?;
            Ok((Box::new(stream), None))
        }
    }
}

async fn connection(
    stream: Box<dyn Stream>,
    addr: Option<SocketAddr>,
    live: Arc<Live>,
    shared: Arc<Shared>,
    watcher: Watcher,
    _permit: OwnedSemaphorePermit,
    bound: Bound,
) {
    let Bound {
        side,
        tls: tls_at_bind,
    } = bound;
    let settings = &live.settings;
    let tls = match side {
        Side::ForwardAuth => live.forward.as_ref().and_then(|d| d.tls.clone()),
        Side::Nac => live.nac.as_ref().and_then(|n| n.tls.clone()),
        Side::Admin => None,
    };
    if tls_at_bind && tls.is_none() {
        tracing::warn!(
            peer = ?addr,
            ?side,
            "this listener was bound for mutual TLS and the config now has none: connection \
             closed until a restart"
        );
        return;
    }
    let (stream, peer): (Box<dyn Stream>, ProxyPeer) = match (tls, addr) {
        (Some(config), Some(_)) => {
            let deadline = Instant::now() + settings.header_read_timeout;
            let accepted =
                tokio::time::timeout_at(deadline, TlsAcceptor::from(config).accept(stream));
            let tls = match accepted.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(peer = ?addr, "forward-auth TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = ?addr, "forward-auth TLS handshake timed out");
                    return;
                }
            };
            let names = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| dns_names(leaf.as_ref()))
                .unwrap_or_default();
            let peer = ProxyPeer {
                addr,
                tls: true,
                names,
            };
            (Box::new(tls), peer)
        }
        (_, addr) => {
            let peer = ProxyPeer {
                addr,
                tls: false,
                names: Vec::new(),
            };
            (stream, peer)
        }
    };
    let peer = Arc::new(peer);
    let activity = Arc::new(Activity::new());
    let busy = activity.clone();
    let service = service_fn(move |req| {
        let peer = peer.clone();
        let shared = shared.clone();
        let working = Working::start(busy.clone());
        async move {
            let response = match side {
                Side::ForwardAuth => authz::handle(req, &peer, &shared).await,
                Side::Nac => crate::gate::nac::handle(req, &peer, &shared).await,
                Side::Admin => crate::gate::admin::handle(req, &shared).await,
            };
            Ok::<_, Infallible>(response.map(|body| Guarded {
                inner: body,
                _working: working,
                access: None,
            }))
        }
    });
    // HTTP/1.1 only, also for a peer that starts with the HTTP/2 preface
    // (prior knowledge): the proxies and RADIUS servers keep HTTP/1.1 pools,
    // and the requests read `Host` as HTTP/1.1 has it.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(MIN_H1_BUFFER));
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    let mut serving = pin!(watcher.watch(serving.into_owned()));
    let idle = settings.idle_timeout;
    let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            result = &mut serving => {
                if let Err(e) = result {
                    tracing::debug!(peer = ?addr, "forward-auth connection ended: {e}");
                }
                return;
            }
            _ = tick.tick() => {
                if activity.in_flight.load(Ordering::Relaxed) == 0 && activity.idle_for() >= idle {
                    return;
                }
            }
        }
    }
}

/// The DNS names of a proxy certificate, lowercase, without a final dot.
fn dns_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}
