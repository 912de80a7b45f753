//! Upgraded connections (websockets): which `Upgrade` a route carries, and
//! the tunnel after the 101.
//!
//! Once bytes are spliced, no request passes through the gate any more, so
//! the tunnel is judged again on its own: it is closed when no byte moved
//! either way for `idle_timeout`, when the posture it was admitted with
//! reaches its `valid_until` (unless the device has reported again and the
//! decision still admits it), and when a reload changes the decision for
//! its route (route gone, upgrade no longer carried, or a deny).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::conn::ConnInfo;
use super::{unix_now, Live, Shared};
use posture_core::decision::{self, Outcome};
use posture_core::store::PostureStore;

/// The upgrade a request asks for, narrowed to what its route carries.
pub(super) struct Offer {
    /// The `Upgrade` value sent upstream: the client's tokens the route allows.
    pub value: HeaderValue,
    /// Their protocol names, lowercase, without version.
    names: Vec<String>,
}

/// The protocol name of an `Upgrade` token (`websocket`, `IRC/6.9`).
fn protocol_name(token: &str) -> &str {
    token.split('/').next().unwrap_or_default().trim()
}

/// The tokens of the request's `Upgrade` header(s) that the route allows;
/// `None` when none is, and the request then goes on without upgrading.
pub(super) fn offer(headers: &HeaderMap, allowed: &[String]) -> Option<Offer> {
    let mut kept: Vec<&str> = Vec::new();
    let mut names = Vec::new();
    for token in headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        let name = protocol_name(token);
        if let Some(a) = allowed.iter().find(|a| a.eq_ignore_ascii_case(name)) {
            kept.push(token);
            names.push(a.clone());
        }
    }
    if kept.is_empty() {
        return None;
    }
    let value = HeaderValue::from_str(&kept.join(", ")).ok()?;
    Some(Offer { value, names })
}

impl Offer {
    /// The protocol the upstream switched to, if it is one that was offered.
    pub(super) fn chosen(&self, response: &HeaderMap) -> Option<String> {
        let switched = response.get(header::UPGRADE)?.to_str().ok()?;
        let name = protocol_name(switched.split(',').next().unwrap_or_default());
        self.names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .cloned()
    }
}

/// What the tunnel was admitted with, to judge it again later.
pub(super) struct Admission {
    pub conn: Arc<ConnInfo>,
    pub shared: Arc<Shared>,
    /// The configuration the decision was made under.
    pub live: Arc<Live>,
    pub host: String,
    pub path: String,
    pub protocol: String,
    pub valid_until: i64,
}

/// Splices the two sides once both have switched, in a task of its own.
pub(super) fn spawn(client: OnUpgrade, upstream: OnUpgrade, admission: Admission) {
    tokio::spawn(async move {
        if let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) {
            run(TokioIo::new(client), TokioIo::new(upstream), admission).await;
        }
    });
}

async fn run<C, U>(client: C, upstream: U, mut admission: Admission)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Stamped {
        inner: client,
        start,
        last: last.clone(),
    };
    let mut upstream = Stamped {
        inner: upstream,
        start,
        last: last.clone(),
    };
    let peer = admission.conn.peer;
    let mut idle = admission.live.settings.idle_timeout;
    let mut tick = tokio::time::interval(check_interval(idle));
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            _ = &mut copy => return,
            _ = tick.tick() => {
                let moved = Duration::from_millis(last.load(Ordering::Relaxed));
                if start.elapsed().saturating_sub(moved) >= idle {
                    tracing::debug!(peer = %peer, host = %admission.host, "idle tunnel closed");
                    return;
                }
                let now = unix_now();
                let current = admission.shared.live.load_full();
                if now < admission.valid_until && Arc::ptr_eq(&current, &admission.live) {
                    continue;
                }
                match judge(&admission, &current, now).await {
                    Ok(valid_until) => {
                        admission.valid_until = valid_until;
                        idle = current.settings.idle_timeout;
                        if !Arc::ptr_eq(&current, &admission.live) {
                            tick = tokio::time::interval(check_interval(idle));
                        }
                        admission.live = current;
                    }
                    Err(why) => {
                        tracing::info!(peer = %peer, host = %admission.host, path = %admission.path, "tunnel closed: {why}");
                        return;
                    }
                }
            }
        }
    }
}

/// Often enough to close an idle tunnel within a quarter of the timeout
/// late, and to act on a reload or an expired posture within a second.
fn check_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// The decision for the tunnel's route under `live`, with the device's
/// posture as the gate remembers it now: `Ok` with how long it holds.
async fn judge(admission: &Admission, live: &Live, now: i64) -> Result<i64, String> {
    let Some(index) = live.routes.lookup(&admission.host, &admission.path) else {
        return Err("no route any more".into());
    };
    let route = &live.snapshot.routes[index];
    if !route.upgrades.contains(&admission.protocol) {
        return Err(format!(
            "the route no longer carries {:?}",
            admission.protocol
        ));
    }
    // A certificate revoked since the upgrade closes the tunnel, as the
    // enforcement step would refuse a new request.
    let seen = admission.conn.client(&live.revocations, now);
    if let Some(denial) = seen.refused() {
        return Err(format!("denied ({})", denial.code()));
    }
    let client = admission.conn.client.as_ref();
    let posture = match client {
        Some(c) => admission
            .shared
            .postures
            .get(&c.fingerprint)
            .await
            .map_err(|e| format!("posture store: {e}"))?,
        None => None,
    };
    match decision::decide(
        &live.snapshot,
        client,
        posture.as_deref(),
        route.segment,
        now,
    ) {
        Outcome::Allow | Outcome::Warn(_) => Ok(posture.map_or(now, |p| p.valid_until)),
        Outcome::Deny(denial) => Err(format!("denied ({})", denial.code())),
    }
}

/// Stamps the time of every byte moved, for the idle timeout.
struct Stamped<T> {
    inner: T,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Stamped<T> {
    fn stamp(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stamped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.stamp();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stamped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.stamp();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(upgrade: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
        h
    }

    #[test]
    fn only_the_route_s_protocols_are_offered() {
        let allowed = vec!["websocket".to_string()];
        assert!(offer(&headers("h2c"), &allowed).is_none());
        assert!(offer(&headers("foo, h2c"), &allowed).is_none());
        let o = offer(&headers("h2c, WebSocket"), &allowed).unwrap();
        assert_eq!(o.value, "WebSocket");
        assert!(offer(&headers("websocket"), &[]).is_none());
    }

    #[test]
    fn the_switch_must_be_to_an_offered_protocol() {
        let allowed = vec!["websocket".to_string(), "irc".to_string()];
        let o = offer(&headers("IRC/6.9"), &allowed).unwrap();
        assert_eq!(o.chosen(&headers("irc/6.9")).as_deref(), Some("irc"));
        assert_eq!(o.chosen(&headers("websocket")), None);
        assert_eq!(o.chosen(&HeaderMap::new()), None);
    }
}
