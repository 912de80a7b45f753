//! The request path, top to bottom in [`handle`]: target, posture
//! endpoints, route, inline attestation, decision, audit, then either the
//! denial page or the upstream.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::headers;
use super::listener::ConnInfo;
use super::posture::{self, ATTEST_PATH, CHALLENGE_PATH};
use super::routing::{normalise_host, normalise_path};
use super::{unix_now, Live, Shared};
use crate::attestation::Reason;
use crate::audit::{self, AttestationEvent, AuditEvent, DecisionEvent, Enforcement};
use crate::config::snapshot::Route;
use crate::decision::{self, Denial, Outcome, Posture, SegmentResult};
use crate::page::{self, Format, Lang, PageInput, Problem};
use crate::verdict::{Decision, Finding};

/// Upstream bodies stream through; the gate's own answers are small and whole.
pub type Body = Either<Incoming, Full<Bytes>>;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub(super) async fn handle(
    req: Request<Incoming>,
    conn: &ConnInfo,
    shared: &Shared,
) -> Response<Body> {
    // One snapshot for the whole request, however long it takes.
    let live = shared.live.load_full();
    let now = unix_now();
    let (format, lang) = negotiate(&req);
    let organization = conn.client.as_ref().and_then(|c| c.organization.as_deref());

    // 1. Which host and which path, normalised before anything looks at them.
    let target = match Target::of(&req, conn) {
        Ok(target) => target,
        Err(why) => {
            tracing::debug!(peer = %conn.peer, uri = %req.uri(), "bad request: {why}");
            let pager = Pager {
                live: &live,
                format,
                lang,
                organization,
                path_and_query: "/",
            };
            return pager.page(Problem::BadRequest, &decision::new_reference());
        }
    };
    let pager = Pager {
        live: &live,
        format,
        lang,
        organization,
        path_and_query: &target.path_and_query,
    };

    // 2. The posture endpoints answer on every host.
    if matches!(target.path(), CHALLENGE_PATH | ATTEST_PATH) {
        return posture::endpoint(req, target.path(), conn, &live, shared, &pager).await;
    }

    // 3. The route: host plus longest whole-segment prefix.
    let Some(index) = live.routes.lookup(&target.host, target.path()) else {
        tracing::debug!(peer = %conn.peer, host = %target.host, "no route for host");
        return pager.page(Problem::UnknownHost, &decision::new_reference());
    };
    let route = &live.snapshot.routes[index];
    let segment = live
        .snapshot
        .segments
        .get(route.segment)
        .map_or("", |s| s.name.as_str());

    // 4. The remembered posture, or a fresh one from an inline attestation.
    let mut posture = conn
        .client
        .as_ref()
        .and_then(|c| shared.postures.get(&c.fingerprint));
    let mut invalid = None;
    if let Some(token) = req.headers().get(&headers::POSTURE_ATTESTATION) {
        match posture::verify_and_remember(token.as_bytes(), conn, &live, shared, now) {
            Ok((fresh, _)) => posture = Some(fresh),
            Err(reason) => invalid = Some(reason),
        }
    }

    // 5. The decision, shared with every other enforcement point.
    let outcome = match invalid {
        Some(reason) => Outcome::Deny(Denial::InvalidAttestation(reason)),
        None => decision::decide(
            &live.snapshot,
            conn.client.as_ref(),
            posture.as_deref(),
            route.segment,
            now,
        ),
    };

    // 6. Audit, then act on it.
    let at = AuditRoute { route, segment };
    match outcome {
        Outcome::Allow => {
            audit(conn, &at, None, Decision::Allow, None, None);
            forward(
                req,
                conn,
                &live,
                index,
                &target,
                Decision::Allow,
                None,
                &pager,
            )
            .await
        }
        Outcome::Warn(result) => {
            let reference = decision::new_reference();
            audit(
                conn,
                &at,
                Some(&reference),
                Decision::Warn,
                Some(&result),
                None,
            );
            let warning = warning_value(&result);
            forward(
                req,
                conn,
                &live,
                index,
                &target,
                Decision::Warn,
                Some(warning),
                &pager,
            )
            .await
        }
        Outcome::Deny(denial) => {
            let reference = decision::new_reference();
            let os = posture.as_deref().map(Posture::os);
            let problem = match &denial {
                Denial::NoCertificate => Problem::NoCertificate,
                Denial::NoPosture => Problem::NoPosture,
                Denial::StalePosture { .. } => Problem::StalePosture,
                Denial::CatalogueChanged => Problem::CatalogueChanged,
                Denial::InvalidAttestation(reason) => Problem::InvalidAttestation(*reason),
                Denial::Prohibited(result) => Problem::Prohibited {
                    segment,
                    result,
                    os,
                },
            };
            let (result, reason) = match &denial {
                Denial::Prohibited(result) => (Some(result), None),
                other => (None, Some(other.code())),
            };
            audit(conn, &at, Some(&reference), Decision::Deny, result, reason);
            pager.page(problem, &reference)
        }
    }
}

/// Sends the request to the route's upstream and streams the answer back;
/// relays an `Upgrade` (websockets) by splicing the two connections.
#[allow(clippy::too_many_arguments)]
async fn forward(
    mut req: Request<Incoming>,
    conn: &ConnInfo,
    live: &Live,
    index: usize,
    target: &Target,
    decision: Decision,
    warning: Option<HeaderValue>,
    pager: &Pager<'_>,
) -> Response<Body> {
    let route = &live.snapshot.routes[index];
    let upgrade = req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers());
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));
    let Ok(uri) = upstream_uri(&route.upstream, &target.path_and_query) else {
        return upstream_failed(
            pager,
            route,
            Problem::UpstreamUnavailable,
            "bad upstream URI",
        );
    };
    let (mut parts, body) = req.into_parts();
    upstream_headers(&mut parts.headers, conn, target, decision, warning, upgrade);
    parts.uri = uri;
    // Upstreams are spoken to in HTTP/1.1, whatever the client used.
    parts.version = Version::HTTP_11;
    let request = live.upstreams[index].request(Request::from_parts(parts, body));
    let mut response = match tokio::time::timeout(live.settings.upstream_timeout, request).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            return upstream_failed(pager, route, Problem::UpstreamUnavailable, &e.to_string())
        }
        Err(_) => return upstream_failed(pager, route, Problem::UpstreamTimeout, "timed out"),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_side) = client_side else {
            return upstream_failed(
                pager,
                route,
                Problem::UpstreamUnavailable,
                "unasked protocol switch",
            );
        };
        let upstream_side = hyper::upgrade::on(&mut response);
        let slot = conn.slot.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let (Ok(client), Ok(upstream)) = tokio::join!(client_side, upstream_side) {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(upstream),
                )
                .await;
            }
        });
        let (mut parts, _) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers, true);
        return Response::from_parts(parts, Either::Right(Full::new(Bytes::new())));
    }
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(parts, Either::Left(body))
}

fn upstream_failed(
    pager: &Pager<'_>,
    route: &Route,
    problem: Problem<'_>,
    why: &str,
) -> Response<Body> {
    let reference = decision::new_reference();
    tracing::warn!(reference, upstream = %route.upstream, route_host = %route.host, "upstream failed: {why}");
    pager.page(problem, &reference)
}

/// What the upstream sees: no hop-by-hop headers, no identity a client made
/// up, the forwarding headers, and the identity and decision of the gate.
fn upstream_headers(
    h: &mut HeaderMap,
    conn: &ConnInfo,
    target: &Target,
    decision: Decision,
    warning: Option<HeaderValue>,
    upgrade: bool,
) {
    headers::remove_hop_by_hop(h, upgrade);
    headers::remove_gate_owned(h);
    // The client sets Host from the upstream URI.
    h.remove(header::HOST);
    let values = &conn.upstream_values;
    let earlier: Vec<&str> = h
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let xff = match (&values.peer_ip, earlier.is_empty()) {
        (Some(peer), true) => Some(peer.clone()),
        (Some(peer), false) => peer.to_str().ok().and_then(|peer| {
            HeaderValue::from_str(&format!("{}, {peer}", earlier.join(", "))).ok()
        }),
        (None, _) => None,
    };
    match xff {
        Some(v) => h.insert(X_FORWARDED_FOR, v),
        // Never pass on a chain the gate could not add its own hop to.
        None => h.remove(X_FORWARDED_FOR),
    };
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    match HeaderValue::from_str(&target.host) {
        Ok(v) => h.insert(X_FORWARDED_HOST, v),
        Err(_) => h.remove(X_FORWARDED_HOST),
    };
    if let Some(device) = &values.device {
        h.insert(headers::DEVICE_FINGERPRINT, device.fingerprint.clone());
        h.insert(headers::DEVICE_SUBJECT, device.subject.clone());
        if let Some(o) = &device.organization {
            h.insert(headers::DEVICE_ORGANIZATION, o.clone());
        }
    }
    h.insert(
        headers::DECISION,
        HeaderValue::from_static(decision.as_str()),
    );
    if let Some(warning) = warning {
        h.insert(headers::POSTURE_WARNING, warning);
    }
}

/// The route's upstream with the request's (normalised) path appended to
/// the upstream's own base path.
fn upstream_uri(base: &Uri, path_and_query: &str) -> Result<Uri, http::Error> {
    let base_path = base.path().trim_end_matches('/');
    let pq: Cow<'_, str> = if base_path.is_empty() {
        Cow::Borrowed(path_and_query)
    } else {
        Cow::Owned(format!("{base_path}{path_and_query}"))
    };
    let mut builder = Uri::builder().path_and_query(pq.as_ref());
    if let Some(scheme) = base.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = base.authority() {
        builder = builder.authority(authority.clone());
    }
    builder.build()
}

/// `Posture-Warning` for a warned request: the catalogue ids and unmet
/// requirements behind it, comma-separated, e.g. `kaspersky, min_os_version`.
fn warning_value(result: &SegmentResult) -> HeaderValue {
    let mut causes: Vec<&str> = result
        .findings
        .iter()
        .map(|f| f.catalog_id.as_str())
        .collect();
    causes.extend(result.unmet.iter().map(|u| u.requirement.code()));
    causes.sort_unstable();
    causes.dedup();
    headers::encode_value(&causes.join(", "))
}

/// The host and normalised path of a request.
pub(super) struct Target {
    pub host: String,
    /// Normalised path, then `?query` when there is one.
    pub path_and_query: String,
    path_len: usize,
}

impl Target {
    fn of(req: &Request<Incoming>, conn: &ConnInfo) -> Result<Target, &'static str> {
        let uri = req.uri();
        let header_host = match req.headers().get(header::HOST) {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(normalise_host)
                    .ok_or("bad Host header")?,
            ),
            None => None,
        };
        let authority_host = match uri.authority() {
            Some(a) => Some(normalise_host(a.as_str()).ok_or("bad authority")?),
            None => None,
        };
        if let (Some(a), Some(h)) = (&authority_host, &header_host) {
            if a != h {
                return Err("the request target and Host disagree");
            }
        }
        // An HTTP/1 absolute-form target must name the host this TLS
        // session was opened for. (HTTP/2 may coalesce hosts on one
        // connection, so :authority is not compared with SNI.)
        if req.version() < Version::HTTP_2 {
            if let (Some(a), Some(sni)) = (&authority_host, &conn.sni) {
                if a != sni {
                    return Err("the request target and SNI disagree");
                }
            }
        }
        let host = authority_host.or(header_host).ok_or("no host")?;
        let path = normalise_path(uri.path()).map_err(|_| "bad path")?;
        let mut path_and_query = path.into_owned();
        let path_len = path_and_query.len();
        if let Some(query) = uri.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Ok(Target {
            host,
            path_and_query,
            path_len,
        })
    }

    pub fn path(&self) -> &str {
        &self.path_and_query[..self.path_len]
    }
}

fn negotiate(req: &Request<Incoming>) -> (Format, Lang) {
    let h = req.headers();
    page::negotiate(
        h.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        h.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
        req.uri().query(),
    )
}

/// Renders the gate's own pages for one request.
pub(super) struct Pager<'a> {
    live: &'a Live,
    format: Format,
    lang: Lang,
    organization: Option<&'a str>,
    path_and_query: &'a str,
}

impl Pager<'_> {
    pub fn page(&self, problem: Problem<'_>, reference: &str) -> Response<Body> {
        let rendered = page::render(&PageInput {
            problem,
            reference,
            format: self.format,
            lang: self.lang,
            snapshot: &self.live.snapshot,
            organization: self.organization,
            path_and_query: self.path_and_query,
        });
        page_response(rendered.status, rendered.content_type, rendered.body)
    }
}

/// A response of the gate itself, with the headers every page carries.
pub(super) fn page_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(page::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The gate speaks only HTTPS: browsers must never try its names in
    // plain HTTP (one year, as testssl.sh and the NCSC expect). Not for
    // subdomains: the gate does not know what else runs under its names.
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Pages depend on content and language negotiation.
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Language"),
    );
    response
}

struct AuditRoute<'a> {
    route: &'a Route,
    segment: &'a str,
}

/// One typed audit event per decision.
fn audit(
    conn: &ConnInfo,
    at: &AuditRoute<'_>,
    reference: Option<&str>,
    decision: Decision,
    result: Option<&SegmentResult>,
    reason: Option<&str>,
) {
    audit::emit(&AuditEvent::Decision(DecisionEvent {
        reference,
        enforcement: Enforcement::Proxy,
        device: conn.client.as_ref().map(Into::into),
        source: conn.peer,
        route_host: &at.route.host,
        route_prefix: &at.route.path_prefix,
        segment: at.segment,
        decision,
        reason,
        findings: result.map_or(&[][..], |r| &r.findings[..]),
        unmet: result.map_or(&[][..], |r| &r.unmet[..]),
    }));
}

/// The audit event of an attestation (posted or inline).
pub(super) fn audit_attestation(conn: &ConnInfo, result: Result<(&Posture, &[Finding]), Reason>) {
    let (reason, valid_until, findings) = match result {
        Ok((posture, findings)) => (None, Some(posture.valid_until), findings),
        Err(reason) => (Some(reason), None, &[][..]),
    };
    audit::emit(&AuditEvent::Attestation(AttestationEvent {
        device: conn.client.as_ref().map(Into::into),
        source: conn.peer,
        valid: reason.is_none(),
        reason,
        valid_until,
        remembered: reason.is_none() && conn.client.is_some(),
        findings,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_joins_base_path_and_request_path() {
        let base: Uri = "http://127.0.0.1:9000".parse().unwrap();
        assert_eq!(
            upstream_uri(&base, "/a?b=1").unwrap(),
            "http://127.0.0.1:9000/a?b=1"
        );
        let base: Uri = "https://app.internal/base/".parse().unwrap();
        assert_eq!(
            upstream_uri(&base, "/a").unwrap(),
            "https://app.internal/base/a"
        );
    }
}
