//! The request path, top to bottom in [`handle`]: target, posture
//! endpoints, route, inline attestation, decision, audit, then either the
//! denial page or the upstream.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::headers;
use super::listener::ConnInfo;
use super::posture::{self, ATTEST_PATH, CHALLENGE_PATH};
use super::routing::{
    normalise_host, normalise_path, normalise_path_allowing_encoded_percent, route_view, PathError,
};
use super::tunnel;
use super::{unix_now, Live, Shared};
use crate::audit;
use crate::page::{self, Format, Lang, PageInput, Problem};
use posture_core::attestation::Reason;
use posture_core::audit::{AttestationEvent, AuditEvent, DecisionEvent, Enforcement};
use posture_core::config::snapshot::{Route, ServerSettings};
use posture_core::decision::{self, Denial, Outcome, Posture, SegmentResult};
use posture_core::verdict::{Decision, Finding};

/// Upstream bodies stream through; the gate's own answers are small and whole.
pub type Body = Either<Incoming, Full<Bytes>>;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub(super) async fn handle(
    req: Request<Incoming>,
    conn: &Arc<ConnInfo>,
    shared: &Arc<Shared>,
) -> Response<Body> {
    // One snapshot for the whole request, however long it takes.
    let live = shared.live.load_full();
    let now = unix_now();
    let (format, lang) = negotiate(&req);
    let organization = conn.client.as_ref().and_then(|c| c.organization.as_deref());

    // 1. Which host and which path, normalised before anything looks at them.
    let target = match Target::of(&req, conn, &live.settings) {
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

    // 3. The route: host plus longest whole-segment prefix, on the path as
    //    servlet containers and IIS map it (see the routing module).
    let Some(index) = live.routes.lookup(&target.host, target.route_path()) else {
        tracing::debug!(peer = %conn.peer, host = %target.host, "no route for host");
        return pager.page(Problem::UnknownHost, &decision::new_reference());
    };
    let route = &live.snapshot.routes[index];
    if target.encoded_percent && !route.allow_encoded_percent {
        tracing::debug!(peer = %conn.peer, uri = %req.uri(), "bad request: {}", PathError::EncodedPercent);
        return pager.page(Problem::BadRequest, &decision::new_reference());
    }
    let segment = live
        .snapshot
        .segments
        .get(route.segment)
        .map_or("", |s| s.name.as_str());

    // 4. Revocation by the CRLs of this snapshot, whatever the handshake
    //    found: a keep-alive or HTTP/2 connection outlives a CRL update.
    let revoked = posture::revocation_denial(conn, &live, now);

    // 5. The remembered posture, or a fresh one from an inline attestation.
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

    // 6. The decision, shared with every other enforcement point.
    let outcome = match (revoked, invalid) {
        (Some(denial), _) => Outcome::Deny(denial),
        (None, Some(reason)) => Outcome::Deny(Denial::InvalidAttestation(reason)),
        (None, None) => decision::decide(
            &live.snapshot,
            conn.client.as_ref(),
            posture.as_deref(),
            route.segment,
            now,
        ),
    };

    // 7. Audit, then act on it.
    let at = AuditRoute { route, segment };
    // What an upgraded connection is judged by until it is judged again.
    let valid_until = posture.as_ref().map_or(now, |p| p.valid_until);
    match outcome {
        Outcome::Allow => {
            audit(conn, &at, None, Decision::Allow, None, None);
            forward(
                req,
                conn,
                shared,
                &live,
                index,
                &target,
                Decision::Allow,
                None,
                &pager,
                valid_until,
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
                shared,
                &live,
                index,
                &target,
                Decision::Warn,
                Some(warning),
                &pager,
                valid_until,
            )
            .await
        }
        Outcome::Deny(denial) => {
            let reference = decision::new_reference();
            let os = posture.as_deref().map(Posture::os);
            let problem = match &denial {
                Denial::NoCertificate => Problem::NoCertificate,
                Denial::CertificateRevoked | Denial::RevocationUnknown => {
                    Problem::CertificateRefused
                }
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
/// relays an `Upgrade` the route carries (websockets) by splicing the two
/// connections into a tunnel valid until `valid_until` (see [`tunnel`]).
#[allow(clippy::too_many_arguments)]
async fn forward(
    mut req: Request<Incoming>,
    conn: &Arc<ConnInfo>,
    shared: &Arc<Shared>,
    live: &Arc<Live>,
    index: usize,
    target: &Target,
    decision: Decision,
    warning: Option<HeaderValue>,
    pager: &Pager<'_>,
    valid_until: i64,
) -> Response<Body> {
    let route = &live.snapshot.routes[index];
    // Any other `Upgrade` token is dropped with the hop-by-hop headers, and
    // the request goes on as a plain one.
    let offer = if req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers()) {
        tunnel::offer(req.headers(), &route.upgrades)
    } else {
        None
    };
    let upgrade = offer.is_some();
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
    if let Some(offer) = &offer {
        parts.headers.insert(header::UPGRADE, offer.value.clone());
    }
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
        let (Some(client_side), Some(offer)) = (client_side, &offer) else {
            return upstream_failed(
                pager,
                route,
                Problem::UpstreamUnavailable,
                "unasked protocol switch",
            );
        };
        let Some(protocol) = offer.chosen(response.headers()) else {
            return upstream_failed(
                pager,
                route,
                Problem::UpstreamUnavailable,
                "switch to a protocol that was not asked for",
            );
        };
        let upstream_side = hyper::upgrade::on(&mut response);
        // The tunnel holds the connection's info, and with it its places
        // under the connection limits.
        tunnel::spawn(
            client_side,
            upstream_side,
            tunnel::Admission {
                conn: conn.clone(),
                shared: shared.clone(),
                live: live.clone(),
                host: target.host.clone(),
                path: target.path().to_string(),
                protocol,
                valid_until,
            },
        );
        let (mut parts, _) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers, true);
        return Response::from_parts(parts, Either::Right(Full::new(Bytes::new())));
    }
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, false);
    headers::default_to_private(&mut parts.headers);
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

/// What the upstream sees: no hop-by-hop headers, nothing a client made up
/// in the gate's or another proxy's name (in any spelling, see
/// [`headers::remove_client_claims`]), the forwarding headers, and the
/// identity and decision of the gate.
fn upstream_headers(
    h: &mut HeaderMap,
    conn: &ConnInfo,
    target: &Target,
    decision: Decision,
    warning: Option<HeaderValue>,
    upgrade: bool,
) {
    headers::remove_hop_by_hop(h, upgrade);
    // Only a trusted proxy's chain is worth passing on; anyone else's is
    // their own say-so, and the chain starts at the peer the gate sees.
    let earlier = if target.trusted_peer {
        let chain: Vec<&str> = h
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!chain.is_empty()).then(|| chain.join(", "))
    } else {
        None
    };
    // X-Forwarded-For included: it is set again below.
    headers::remove_client_claims(h);
    // The client sets Host from the upstream URI.
    h.remove(header::HOST);
    let values = &conn.upstream_values;
    let xff = match (&values.peer_ip, earlier) {
        (Some(peer), None) => Some(peer.clone()),
        (Some(peer), Some(earlier)) => peer
            .to_str()
            .ok()
            .and_then(|peer| HeaderValue::from_str(&format!("{earlier}, {peer}")).ok()),
        (None, _) => None,
    };
    // Without a value the gate could vouch for, there is none at all.
    if let Some(v) = xff {
        h.insert(X_FORWARDED_FOR, v);
    }
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
    headers::encode_list(&causes.join(", "))
}

/// The host and normalised path of a request.
pub(super) struct Target {
    pub host: String,
    /// Normalised path, then `?query` when there is one.
    pub path_and_query: String,
    path_len: usize,
    /// [`route_view`] of the path when it differs: what routes match.
    route_path: Option<String>,
    /// The path carries `%25` and hex, which only a route with
    /// `allow_encoded_percent` takes.
    pub encoded_percent: bool,
    /// The peer is one of `trusted_proxies`: its `X-Forwarded-For` is kept.
    pub trusted_peer: bool,
}

impl Target {
    fn of(
        req: &Request<Incoming>,
        conn: &ConnInfo,
        settings: &ServerSettings,
    ) -> Result<Target, &'static str> {
        let uri = req.uri();
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let first_host = hosts.next();
        // Two Hosts mean two possible routes: one for the gate, maybe the
        // other for whatever reads the request after it.
        if hosts.next().is_some() {
            return Err("more than one Host header");
        }
        let header_host = match first_host {
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
        // `%25xx` depends on the route, which depends on the path: take it
        // for now, and let the route decide (`encoded_percent`).
        let (path, encoded_percent) = match normalise_path(uri.path()) {
            Ok(path) => (path, false),
            Err(PathError::EncodedPercent) => (
                normalise_path_allowing_encoded_percent(uri.path()).map_err(|_| "bad path")?,
                true,
            ),
            Err(_) => return Err("bad path"),
        };
        let route_path = match route_view(&path) {
            Cow::Borrowed(_) => None,
            Cow::Owned(view) => Some(view),
        };
        let mut path_and_query = path.into_owned();
        let path_len = path_and_query.len();
        if let Some(query) = uri.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        let trusted_peer = !settings.trusted_proxies.is_empty() && {
            let ip = conn.peer.ip().to_canonical();
            settings.trusted_proxies.iter().any(|net| net.contains(&ip))
        };
        Ok(Target {
            host,
            path_and_query,
            path_len,
            route_path,
            encoded_percent,
            trusted_peer,
        })
    }

    pub fn path(&self) -> &str {
        &self.path_and_query[..self.path_len]
    }

    /// The path routes are matched on.
    pub fn route_path(&self) -> &str {
        self.route_path.as_deref().unwrap_or(self.path())
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
