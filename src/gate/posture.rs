//! The posture endpoints of spec section 4. The attestation itself is the
//! core's (`enforce::attest`), with the stores of `Shared`.
//!
//! A posture is remembered under the SHA-256 fingerprint of the TLS client
//! certificate it was bound to, until its `valid_until`. A token verified on
//! a connection without a client certificate is answered but not
//! remembered: nothing would recognise the device on its next request.
//!
//! The token posted to `attest` is the one request body the gate reads
//! itself, from peers it may not know at all. Before a byte is buffered,
//! its size (declared, else the largest token) is taken from the budget of
//! `max_body_bytes_in_flight` (peers without a client certificate share
//! half of it), or the answer is 503; then it must arrive
//! within `body_timeout` and at `body_min_rate` at least, or the answer is
//! 408 and an HTTP/1 connection is closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use tokio::sync::SemaphorePermit;

use super::conn::ConnInfo;
use super::respond::{page_response, Body, Pager};
use super::{unix_now, Live, Shared};
use crate::audit;
use crate::page::Problem;
use posture_core::enforce::{self, Attestor, Refusal};
use posture_core::store::NonceStore;
use posture_core::verdict::Invalid;

pub const CHALLENGE_PATH: &str = "/.well-known/posture-gate/challenge";
pub const ATTEST_PATH: &str = "/.well-known/posture-gate/attest";
/// Readiness, for load balancers and Kubernetes: 200 `ready` when the
/// posture store can be used (always, for the memory store), else 503 with
/// the reason in a line of plain text. Answered on every host, with or
/// without a client certificate; it says nothing about any device.
pub const READY_PATH: &str = "/.well-known/posture-gate/ready";
/// Spec section 4: the body limit of `attest` is the token limit.
pub const MAX_TOKEN_BYTES: usize = 1024 * 1024;
const TOKEN_MEDIA_TYPE: &str = "application/eat+jwt";
/// `body_min_rate` applies from this long after the body starts, so the
/// first round trips of a slow but honest link do not count against it.
const MIN_RATE_GRACE: Duration = Duration::from_secs(2);
/// Seconds a client told "busy" should wait before posting again.
const RETRY_AFTER: &str = "5";

/// Answers the well-known endpoints; `path` is already normalised.
pub(super) async fn endpoint(
    req: Request<Incoming>,
    path: &str,
    conn: &ConnInfo,
    live: &Arc<Live>,
    shared: &Arc<Shared>,
    pager: &Pager<'_>,
) -> Response<Body> {
    let now = unix_now();
    match (path, req.method()) {
        (CHALLENGE_PATH, &Method::GET) => challenge(live, shared, now).await,
        (ATTEST_PATH, &Method::POST) => attest(req, conn, live, shared, pager, now).await,
        (READY_PATH, &Method::GET | &Method::HEAD) => ready(shared).await,
        (READY_PATH, _) => not_allowed("GET"),
        (CHALLENGE_PATH, _) => not_allowed("GET"),
        (ATTEST_PATH, _) => not_allowed("POST"),
        _ => pager.page(Problem::UnknownHost, ""),
    }
}

async fn ready(shared: &Shared) -> Response<Body> {
    match shared.postures.ready().await {
        Ok(()) => text(StatusCode::OK, "ready\n", []),
        Err(why) => {
            let mut response = page_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                Bytes::from(format!("not ready: {why}\n")),
            );
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

async fn challenge(live: &Live, shared: &Shared, now: i64) -> Response<Body> {
    // A nonce handed out now could not be recorded when redeemed. A store
    // that cannot say is treated as full: fail closed, retry soon.
    let full = shared.used_nonces.full_for(now).await.unwrap_or(Some(1));
    if let Some(retry_after) = full {
        tracing::warn!(
            retry_after,
            "the used-nonce memory is full of live nonces: challenges refused for now"
        );
        return nonce_memory_full(retry_after);
    }
    let issued = live.nonces.issue(now);
    let expires_at = time::OffsetDateTime::from_unix_timestamp(issued.expires_at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    json(
        StatusCode::OK,
        &serde_json::json!({ "nonce": issued.nonce, "expires_at": expires_at }),
    )
}

async fn attest(
    req: Request<Incoming>,
    conn: &ConnInfo,
    live: &Arc<Live>,
    shared: &Arc<Shared>,
    pager: &Pager<'_>,
    now: i64,
) -> Response<Body> {
    if !is_token_media_type(req.headers().get(header::CONTENT_TYPE)) {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/eat+jwt\n",
            [(header::ACCEPT, HeaderValue::from_static(TOKEN_MEDIA_TYPE))],
        );
    }
    let http1 = req.version() < Version::HTTP_2;
    if conn.client_der.is_none() {
        let per_minute = live.settings.attest_without_certificate_per_minute;
        if let Err(wait) = shared.attest_limit.take(conn.peer.ip(), per_minute) {
            tracing::debug!(peer = %conn.peer, "attest without a certificate over {per_minute} a minute, 429");
            let mut response = text(
                StatusCode::TOO_MANY_REQUESTS,
                "too many attestations without a client certificate from this address; retry later\n",
                [(header::RETRY_AFTER, HeaderValue::from(wait))],
            );
            // The unread body cannot be skipped over: the connection ends.
            close_if(http1, &mut response);
            return response;
        }
    }
    let body = req.into_body();
    // Refuse a declared oversize body before reading any of it.
    if body.size_hint().lower() > MAX_TOKEN_BYTES as u64 {
        return pager.page(Problem::PayloadTooLarge, "");
    }
    // A body of unknown length may be as large as the largest token.
    let reserve = body
        .size_hint()
        .exact()
        .map_or(MAX_TOKEN_BYTES, |n| n as usize);
    let Some(_budget) = take_budget(shared, reserve, conn.client_der.is_some()) else {
        tracing::warn!(peer = %conn.peer, "max_body_bytes_in_flight spent, attest refused with 503");
        return busy(http1);
    };
    let limits = BodyLimits {
        max: reserve,
        timeout: live.settings.body_timeout,
        min_rate: live.settings.body_min_rate,
    };
    let token = match read_body(body, &limits).await {
        Ok(token) => token,
        Err(BodyError::TooLarge) => return pager.page(Problem::PayloadTooLarge, ""),
        Err(BodyError::TooSlow) => {
            tracing::debug!(peer = %conn.peer, "attest body too slow, closing");
            return too_slow(http1);
        }
        Err(BodyError::Broken) => return pager.page(Problem::BadRequest, ""),
    };
    // Tools that post a token from a file often add a final newline.
    let token = trim_ascii_whitespace(&token);
    let attestor = Attestor {
        verifier: &live.verifier,
        issuer: &live.nonces,
        nonces: &shared.used_nonces,
    };
    // Room for the attestation's audit line first: a posture is never
    // remembered without its record (`on_audit_failure = "deny"`).
    let reservation = shared.audit.reserve().await;
    if matches!(reservation, audit::Reservation::Refused) {
        return audit_unavailable(pager);
    }
    let client = conn.client(&live.revocations, now);
    let attestation = enforce::attest(
        &live.snapshot,
        &attestor,
        &shared.postures,
        client,
        token,
        now,
    )
    .await;
    // One reference for the answer and its audit line: the agent prints it,
    // the service desk finds the line by it.
    let reference = posture_core::decision::Reference::new();
    let mut event = attestation.event(client.identity, conn.peer);
    if let posture_core::audit::AuditEvent::Attestation(e) = &mut event {
        e.reference = Some(&reference);
    }
    reservation.send(&event);
    shared.refusals.note(
        client.identity.map(|i| i.fingerprint),
        &attestation.result,
        now,
    );
    if let (Ok((posture, _)), true, Some(identity), Some(der)) = (
        &attestation.result,
        attestation.remembered,
        client.identity,
        client.certificate,
    ) {
        super::nac::after_attestation(shared, live, identity, der, posture, now).await;
    }
    if let Some(e) = &attestation.store_error {
        tracing::warn!(peer = %conn.peer, "attestation: {e}");
    }
    let with_reference = |mut response: Response<Body>| {
        if let Ok(v) = HeaderValue::from_str(&reference) {
            response.headers_mut().insert(super::headers::REFERENCE, v);
        }
        response
    };
    match &attestation.result {
        // A verdict the gate could not remember would not admit the device:
        // the agent is told to retry rather than that all is well.
        Ok(_) if attestation.store_error.is_some() => nonce_memory_full(1),
        Ok((_, verdict)) => with_reference(json(StatusCode::OK, verdict)),
        Err(Refusal {
            retry_later: true, ..
        }) => {
            let retry_after = shared.used_nonces.full_for(now).await;
            nonce_memory_full(retry_after.ok().flatten().unwrap_or(1))
        }
        Err(Refusal { reason, .. }) => {
            with_reference(json(StatusCode::BAD_REQUEST, &Invalid::new(*reason)))
        }
    }
}

/// 503: the token may be fine, but its nonce cannot be recorded as used
/// now, and accepting it unrecorded would let it be replayed (or its
/// posture could not be remembered).
fn nonce_memory_full(retry_after: u64) -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the gate cannot take more attestations right now; retry later\n",
        [(header::RETRY_AFTER, HeaderValue::from(retry_after))],
    )
}

/// The bytes of one body, from the budget of all bodies and, for a peer
/// without a certificate, from its half as well; `None` when spent.
fn take_budget(
    shared: &Shared,
    bytes: usize,
    known: bool,
) -> Option<(SemaphorePermit<'_>, Option<SemaphorePermit<'_>>)> {
    let n = u32::try_from(bytes).ok()?;
    let unknown = match known {
        true => None,
        false => Some(shared.unknown_bodies.try_acquire_many(n).ok()?),
    };
    let all = shared.bodies.try_acquire_many(n).ok()?;
    Some((all, unknown))
}

struct BodyLimits {
    /// Bytes, never more than the budget taken for the body.
    max: usize,
    timeout: Duration,
    /// Bytes per second; never zero (validated).
    min_rate: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    TooLarge,
    /// Not complete within the timeout, or below the minimum rate.
    TooSlow,
    Broken,
}

/// Reads a whole body under `limits`. Each frame is awaited only until the
/// earlier of the total deadline and the moment the bytes so far would
/// fall below the minimum rate.
async fn read_body<B>(mut body: B, limits: &BodyLimits) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let start = tokio::time::Instant::now();
    let end = start + limits.timeout;
    let declared = body.size_hint().exact().map_or(0, |n| n as usize);
    let mut buf = BytesMut::with_capacity(declared.min(limits.max));
    loop {
        let earned =
            Duration::from_millis((buf.len() as u64).saturating_mul(1000) / limits.min_rate.max(1));
        let due = (start + MIN_RATE_GRACE + earned).min(end);
        let frame = match tokio::time::timeout_at(due, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limits.max {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// 503 when the body budget is spent: nothing was read or buffered.
fn busy(http1: bool) -> Response<Body> {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the gate is busy receiving other reports; retry later\n",
        [(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER))],
    );
    // The unread body cannot be skipped over: the connection ends.
    close_if(http1, &mut response);
    response
}

/// 408 for a body that came too slowly; an HTTP/1 connection is closed.
fn too_slow(http1: bool) -> Response<Body> {
    let mut response = text(
        StatusCode::REQUEST_TIMEOUT,
        "the request body came too slowly\n",
        [],
    );
    close_if(http1, &mut response);
    response
}

fn is_token_media_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(TOKEN_MEDIA_TYPE)
}

fn trim_ascii_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed\n",
        [(header::ALLOW, HeaderValue::from_static(allow))],
    )
}

/// A short plain-text answer of the gate's own, with extra headers.
fn text<const N: usize>(
    status: StatusCode,
    body: &'static str,
    extra: [(header::HeaderName, HeaderValue); N],
) -> Response<Body> {
    let mut response = page_response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    );
    response.headers_mut().extend(extra);
    response
}

/// An HTTP/1 connection whose request body was not read to its end cannot
/// carry another request: say so, and hyper closes it after the answer.
fn close_if(http1: bool, response: &mut Response<Body>) {
    if http1 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    page_response(status, "application/json", Bytes::from(body))
}

/// 503 `audit_unavailable`: the audit log has no room for the line in
/// `max_wait` and `on_audit_failure = "deny"`.
pub(super) fn audit_unavailable(pager: &Pager<'_>) -> Response<Body> {
    let reference = posture_core::decision::new_reference();
    tracing::warn!(peer = %pager.conn.peer, reference, "refused: the audit log cannot record the decision");
    pager.page(crate::page::Problem::AuditUnavailable, &reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_media_type_ignores_case_and_parameters() {
        let ok = |v: &'static str| is_token_media_type(Some(&HeaderValue::from_static(v)));
        assert!(ok("application/eat+jwt"));
        assert!(ok("Application/EAT+JWT; charset=utf-8"));
        assert!(!ok("application/json"));
        assert!(!is_token_media_type(None));
    }

    fn limits(max: usize, timeout_ms: u64, min_rate: u64) -> BodyLimits {
        BodyLimits {
            max,
            timeout: Duration::from_millis(timeout_ms),
            min_rate,
        }
    }

    /// A body the test feeds through a channel; it ends when the sender goes.
    struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

    impl hyper::body::Body for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c))))
        }
    }

    fn fed() -> (tokio::sync::mpsc::Sender<Bytes>, Fed) {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        (tx, Fed(rx))
    }

    /// Guards the tests against a reader that never gives up.
    const GUARD: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_complete_body_is_read_whole() {
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"a.b")).await.unwrap();
        tx.send(Bytes::from_static(b".c")).await.unwrap();
        drop(tx);
        let read = read_body(body, &limits(16, 5_000, 1)).await;
        assert_eq!(read, Ok(Bytes::from_static(b"a.b.c")));
    }

    #[tokio::test]
    async fn a_body_beyond_the_limit_is_refused() {
        let (tx, body) = fed();
        tx.send(Bytes::from(vec![b'a'; 10])).await.unwrap();
        tx.send(Bytes::from(vec![b'a'; 10])).await.unwrap();
        let read = read_body(body, &limits(16, 5_000, 1)).await;
        assert_eq!(read, Err(BodyError::TooLarge));
    }

    #[tokio::test]
    async fn a_stalled_body_ends_at_the_timeout() {
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        // The sender stays: the body never ends by itself.
        let read = tokio::time::timeout(GUARD, read_body(body, &limits(16, 300, 1)))
            .await
            .expect("the reader gives up");
        assert_eq!(read, Err(BodyError::TooSlow));
        drop(tx);
    }

    #[tokio::test]
    async fn a_trickle_below_the_minimum_rate_ends_before_the_timeout() {
        let (tx, body) = fed();
        // 100 bytes at 1000 bytes/s buy 0.1 s after the grace; the total
        // timeout (an hour) is never reached.
        tx.send(Bytes::from(vec![b'a'; 100])).await.unwrap();
        let read = tokio::time::timeout(GUARD, read_body(body, &limits(1 << 20, 3_600_000, 1000)))
            .await
            .expect("the reader gives up long before the timeout");
        assert_eq!(read, Err(BodyError::TooSlow));
        drop(tx);
    }

    #[test]
    fn whitespace_around_a_token_is_dropped() {
        assert_eq!(trim_ascii_whitespace(b" a.b.c\r\n"), b"a.b.c");
        assert_eq!(trim_ascii_whitespace(b"\n"), b"");
    }
}
