//! The request path, top to bottom in [`handle`]: target, posture
//! endpoints, route, judgement (the core's one enforcement step), then
//! either the upstream or the denial page.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::conn::ConnInfo;
use super::headers;
use super::posture::{self, ATTEST_PATH, CHALLENGE_PATH, READY_PATH};
use super::respond::{page_response, Body, GateAddr, Pager};
use super::routing::{
    normalise_host, normalise_path, normalise_path_allowing_encoded_percent, route_view, PathError,
};
use super::tunnel;
use super::{unix_now, Live, Shared};
use crate::audit;
use crate::page::{self, Format, Lang, Problem};
use posture_core::audit::Enforcement;
use posture_core::config::snapshot::{Route, ServerSettings};
use posture_core::decision::{Denial, Outcome, Posture, SegmentResult};
use posture_core::enforce::{self, Attestor, Case, Door, Judgement};
use posture_core::verdict::Decision;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// `access` gets the proxied request's decision line, which the response
/// body finishes and sends (see the audit module).
pub(super) async fn handle(
    req: Request<Incoming>,
    conn: &Arc<ConnInfo>,
    shared: &Arc<Shared>,
    access: &mut Option<audit::Pending>,
    start: std::time::Instant,
) -> Response<Body> {
    // One snapshot for the whole request, however long it takes.
    let live = shared.live.load_full();
    let now = unix_now();
    let (format, lang) = negotiate(&req);
    let mut pager = Pager {
        live: &live,
        conn,
        format,
        lang,
        path_and_query: "/",
        enforcement: Enforcement::Proxy,
        proxy: None,
        audit: &shared.audit,
        gate: None,
        os_family: None,
    };

    // 1. Which host and which path, normalised before anything looks at them.
    let target = match Target::of(&req, conn, &live.settings) {
        Ok(target) => target,
        Err(why) => {
            let why = format_args!("{why}: {}", req.uri());
            return pager.refuse(Problem::BadRequest, None, &why);
        }
    };
    pager.path_and_query = &target.path_and_query;

    // 2. The posture endpoints (and readiness) answer on every host.
    if matches!(target.path(), CHALLENGE_PATH | ATTEST_PATH | READY_PATH) {
        return posture::endpoint(req, target.path(), conn, &live, shared, &pager).await;
    }

    // 3. The route: host plus longest whole-segment prefix, on the path as
    //    servlet containers and IIS map it (see the routing module).
    let Some(index) = live.routes.lookup(&target.host, target.route_path()) else {
        let why = format_args!("no route for host {}", target.host);
        return pager.refuse(Problem::UnknownHost, None, &why);
    };
    let route = &live.snapshot.routes[index];
    pager.gate = Some(GateAddr {
        host: &route.host,
        port: request_port(&req),
    });
    if target.encoded_percent && !route.allow_encoded_percent {
        let why = format_args!("{}: {}", PathError::EncodedPercent, req.uri());
        return pager.refuse(Problem::BadRequest, Some(route), &why);
    }

    // 4. The judgement, the same at every door (see `judge`), with room
    //    for its audit line taken first: no decision without a record.
    let reservation = shared.audit.reserve().await;
    if matches!(reservation, audit::Reservation::Refused) {
        return posture::audit_unavailable(&pager);
    }
    let token = req.headers().get(&headers::POSTURE_ATTESTATION).cloned();
    let line = Line::Defer;
    let (mut judgement, recorded) = judge(
        &live,
        shared,
        conn,
        route,
        token.as_ref(),
        now,
        &pager,
        line,
    )
    .await;
    if !recorded && shared.audit.refuses() {
        return posture::audit_unavailable(&pager);
    }
    lapsed(&mut judgement, conn, shared, now);
    *access = Some(audit::Pending::new(
        reservation,
        &judgement.decision_event(),
        req.method().as_str(),
        &target.path_and_query,
        start,
    ));

    pager.os_family = judgement.posture.as_deref().map(|p| p.os().family);

    // 5. Forward (after the warning notice, when one is due), or the
    //    denial page.
    let Outcome::Deny(denial) = &judgement.outcome else {
        let browser_warning = match &judgement.outcome {
            Outcome::Warn(result) => warning_header(judgement.segment(), result),
            _ => None,
        };
        if let (Outcome::Warn(result), Some(device)) = (&judgement.outcome, &conn.client) {
            let every = live.snapshot.remediation.warning_notice_every;
            if is_navigation(&req)
                && shared
                    .notices
                    .due(device.fingerprint, judgement.segment(), now, every)
            {
                let rendered = page::render_notice(&page::NoticeInput {
                    reference: judgement.reference.as_deref().unwrap_or_default(),
                    lang: pager.lang,
                    snapshot: &live.snapshot,
                    organization: device.organization.as_deref(),
                    segment: judgement.segment(),
                    result,
                    os: judgement.posture.as_deref().map(Posture::os),
                    path_and_query: &target.path_and_query,
                    gate_url: pager.gate_url().as_deref(),
                });
                let mut response =
                    page_response(rendered.status, rendered.content_type, rendered.body);
                let h = response.headers_mut();
                if let Some(v) = browser_warning {
                    h.insert(headers::POSTURE_WARNING, v);
                }
                if let Some(v) = judgement
                    .reference
                    .as_deref()
                    .and_then(|r| HeaderValue::from_str(r).ok())
                {
                    h.insert(headers::REFERENCE, v);
                }
                return response;
            }
        }
        let warning = judgement.warning().map(|w| headers::encode_list(&w));
        let (decision, valid_until) = (judgement.outcome.decision(), judgement.valid_until());
        let mut response = forward(Forward {
            req,
            conn,
            shared,
            live: &live,
            index,
            target: &target,
            decision,
            warning,
            pager: &pager,
            valid_until,
        })
        .await;
        if let Some(v) = browser_warning {
            response.headers_mut().insert(headers::POSTURE_WARNING, v);
        }
        return response;
    };
    let os = judgement.posture.as_deref().map(Posture::os);
    let problem = remembered_problem(denial, conn, shared, judgement.segment(), os);
    pager.page(problem, judgement.reference.as_deref().unwrap_or_default())
}

/// The page's problem for a denial, told with what this replica remembers:
/// a refused report is never stored, so for a device without a posture the
/// last refusal tells the person why (the audit line keeps the core's
/// `no_posture`, which is still true). Shared by the reverse proxy and
/// forward-auth, so both doors say the same.
pub(super) fn remembered_problem<'a>(
    denial: &'a Denial,
    conn: &ConnInfo,
    shared: &Shared,
    segment: &'a str,
    os: Option<&'a posture_core::attestation::claims::Os>,
) -> Problem<'a> {
    let refused = match (denial, &conn.client) {
        (Denial::NoPosture, Some(c)) => shared.refusals.last(&c.fingerprint),
        _ => None,
    };
    match refused {
        Some((at, reason)) => Problem::ReportRefused { at, reason },
        None => Problem::of_denial(denial, segment, os),
    }
}

/// The posture stores forget a posture the moment it ages out, so the core
/// sees none and denies `no_posture`. When this replica accepted the
/// device's last report and it has aged out since (with no refusal after
/// it), the denial is what it really is: `stale_posture` at that moment,
/// for the page and the audit line alike.
pub(super) fn lapsed(judgement: &mut Judgement<'_>, conn: &ConnInfo, shared: &Shared, now: i64) {
    let (Outcome::Deny(Denial::NoPosture), Some(client)) = (&judgement.outcome, &conn.client)
    else {
        return;
    };
    let Some(end) = shared.refusals.aged_out(&client.fingerprint, now) else {
        return;
    };
    let refused_since = shared
        .refusals
        .last(&client.fingerprint)
        .is_some_and(|(at, _)| at >= end);
    if !refused_since {
        judgement.outcome = Outcome::Deny(Denial::StalePosture { valid_until: end });
    }
}

/// The port the client named in its request, for the agent command: the
/// route's configured host (never the client's Host text) goes with it.
/// Parsed as a number; absent: 443, the port a browser leaves out. Behind
/// port forwarding this is the port the device used, not the listener's.
fn request_port(req: &Request<Incoming>) -> u16 {
    req.uri()
        .authority()
        .and_then(|a| a.port_u16())
        .or_else(|| {
            let host = req.headers().get(header::HOST)?.to_str().ok()?;
            host.parse::<http::uri::Authority>().ok()?.port_u16()
        })
        .unwrap_or(443)
}

/// `Posture-Warning` on the answer to a warned request: one element per
/// cause (a catalogue id or a requirement code), sorted, each with the
/// segment and, for a staged rule, the first day it denies:
/// `kaspersky;segment=office;deny-from=2027-01-15, min_os_version;segment=office`.
fn warning_header(segment: &str, result: &SegmentResult) -> Option<HeaderValue> {
    let mut causes: Vec<(&str, Option<&str>)> = Vec::new();
    for f in result
        .findings
        .iter()
        .filter(|f| f.action == Decision::Warn)
    {
        let deny_from = f.deny_from.as_deref();
        match causes.iter_mut().find(|(c, _)| *c == f.catalog_id) {
            Some((_, d)) => *d = (*d).into_iter().chain(deny_from).min(),
            None => causes.push((&f.catalog_id, deny_from)),
        }
    }
    for u in &result.unmet {
        if !causes.iter().any(|(c, _)| *c == u.requirement.code()) {
            causes.push((u.requirement.code(), None));
        }
    }
    if causes.is_empty() {
        return None;
    }
    causes.sort_unstable();
    // Each element percent-encoded on its own (names come from the config
    // and the catalogue, never from the device), joined as a list.
    let text = causes
        .iter()
        .map(|(cause, deny_from)| {
            let mut element = format!("{cause};segment={segment}");
            if let Some(d) = deny_from {
                element.push_str(";deny-from=");
                element.push_str(d);
            }
            element
        })
        .map(|e| headers::encode_list(&e))
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&text).ok()
}

/// A browser's top-level page load: GET, asking for HTML, and (when the
/// browser says) a navigation to a document. Scripts, images, API calls
/// and form posts never get the notice in their place.
fn is_navigation(req: &Request<Incoming>) -> bool {
    is_navigation_of(req.method() == http::Method::GET, req.headers())
}

/// [`is_navigation`] from its parts, for forward-auth, where the original
/// method comes from the proxy's header and the rest are the browser's
/// headers as the proxy passed them on.
pub(super) fn is_navigation_of(get: bool, h: &http::HeaderMap) -> bool {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let html = text("accept").is_some_and(|a| {
        a.split(',').any(|range| {
            let range = range.split(';').next().unwrap_or_default().trim();
            range.eq_ignore_ascii_case("text/html")
        })
    });
    let mode = text("sec-fetch-mode").is_none_or(|m| m.eq_ignore_ascii_case("navigate"));
    let dest = text("sec-fetch-dest").is_none_or(|d| d.eq_ignore_ascii_case("document"));
    get && html && mode && dest && !headers::wants_upgrade(h)
}

/// Where `judge` puts the decision event.
pub(super) enum Line {
    /// Emitted by `judge`.
    Emit,
    /// Left to the caller (the reverse proxy's access line).
    Defer,
}

/// The core's enforcement step for a request on `route`, with this
/// gate's stores, and its audit events: revocation by the CRLs of this
/// snapshot (a keep-alive connection outlives a CRL update), an inline
/// attestation or the remembered posture, the segment's policy. The door
/// (reverse proxy or forward-auth, and which proxy) is the pager's. The
/// flag: every audit line was recorded (else see `on_audit_failure`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn judge<'a>(
    live: &'a Arc<Live>,
    shared: &'a Arc<Shared>,
    conn: &'a ConnInfo,
    route: &'a Route,
    token: Option<&'a HeaderValue>,
    now: i64,
    pager: &Pager<'a>,
    line: Line,
) -> (Judgement<'a>, bool) {
    let judgement = enforce::enforce(Case {
        snapshot: &live.snapshot,
        postures: &shared.postures,
        client: conn.client(&live.revocations, now),
        door: Door {
            enforcement: pager.enforcement,
            source: conn.peer,
            proxy: pager.proxy,
            route_host: &route.host,
            route_prefix: &route.path_prefix,
        },
        segment: route.segment,
        token: token.map(HeaderValue::as_bytes),
        attestor: Attestor {
            verifier: &live.verifier,
            issuer: &live.nonces,
            nonces: &shared.used_nonces,
        },
        now,
    })
    .await;
    let mut recorded = true;
    if let Some(event) = judgement.attestation_event() {
        recorded &= shared.audit.emit(&event).await;
    }
    if let Some(attestation) = &judgement.attestation {
        let fingerprint = conn.client.as_ref().map(|c| c.fingerprint);
        shared.refusals.note(fingerprint, &attestation.result, now);
    }
    if let (Some(attestation), Some(identity), Some(der)) = (
        &judgement.attestation,
        conn.client.as_ref(),
        &conn.client_der,
    ) {
        if let (Ok((posture, _)), true) = (&attestation.result, attestation.remembered) {
            super::nac::after_attestation(shared, live, identity, der, posture, now).await;
        }
    }
    if let Line::Emit = line {
        recorded &= shared.audit.emit(&judgement.decision_event()).await;
    }
    (judgement, recorded)
}

/// A request the judgement let through, and what forwarding it needs.
struct Forward<'a> {
    req: Request<Incoming>,
    conn: &'a Arc<ConnInfo>,
    shared: &'a Arc<Shared>,
    live: &'a Arc<Live>,
    /// Index into `live.snapshot.routes` and `live.upstreams`.
    index: usize,
    target: &'a Target,
    /// Allow or warn, for `X-Posture-Decision`.
    decision: Decision,
    /// `Posture-Warning`, encoded.
    warning: Option<HeaderValue>,
    pager: &'a Pager<'a>,
    valid_until: i64,
}

/// Sends the request to the route's upstream and streams the answer back;
/// relays an `Upgrade` the route carries (websockets) by splicing the two
/// connections into a tunnel valid until `valid_until` (see [`tunnel`]).
async fn forward(f: Forward<'_>) -> Response<Body> {
    let Forward {
        mut req,
        conn,
        shared,
        live,
        index,
        target,
        decision,
        warning,
        pager,
        valid_until,
    } = f;
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
    let failed = |problem: Problem<'static>, why: &str| pager.refuse(problem, Some(route), &why);
    let Ok(uri) = upstream_uri(&route.upstream, &target.path_and_query) else {
        return failed(Problem::UpstreamUnavailable, "bad upstream URI");
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
    let sent = std::time::Instant::now();
    let mut response = match tokio::time::timeout(live.settings.upstream_timeout, request).await {
        Ok(Ok(response)) => {
            crate::metrics::upstream_latency(sent.elapsed());
            response
        }
        Ok(Err(e)) => return failed(Problem::UpstreamUnavailable, &e.to_string()),
        Err(_) => return failed(Problem::UpstreamTimeout, "timed out"),
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let (Some(client_side), Some(offer)) = (client_side, &offer) else {
            return failed(Problem::UpstreamUnavailable, "unasked protocol switch");
        };
        let Some(protocol) = offer.chosen(response.headers()) else {
            return failed(
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
                // The path the request was routed on, so a re-check judges
                // the same route.
                path: target.route_path().to_string(),
                protocol,
                valid_until,
            },
        );
        let (mut parts, _) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers, true);
        return Response::from_parts(parts, Either::Right(Full::new(bytes::Bytes::new())));
    }
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, false);
    headers::default_to_private(&mut parts.headers);
    Response::from_parts(parts, Either::Left(body))
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
        let trusted_peer = headers::listed(&settings.trusted_proxies, conn.peer.ip());
        Target::at(host, uri.path(), uri.query(), trusted_peer)
    }

    /// The target of `path` (and `query`) on `host` (already normalised):
    /// the path normalised as routes see it. Forward-auth builds the
    /// original request's target with this too, so an encoded `..` is read
    /// alike behind either door.
    pub(super) fn at(
        host: String,
        path: &str,
        query: Option<&str>,
        trusted_peer: bool,
    ) -> Result<Target, &'static str> {
        // `%25xx` depends on the route, which depends on the path: take it
        // for now, and let the route decide (`encoded_percent`).
        let (path, encoded_percent) = match normalise_path(path) {
            Ok(path) => (path, false),
            Err(PathError::EncodedPercent) => (
                normalise_path_allowing_encoded_percent(path).map_err(|_| "bad path")?,
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
        if let Some(query) = query {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
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

pub(super) fn negotiate(req: &Request<Incoming>) -> (Format, Lang) {
    let h = req.headers();
    page::negotiate(
        h.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        h.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
        req.uri().query(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(
        id: &str,
        action: Decision,
        deny_from: Option<&str>,
    ) -> posture_core::verdict::Finding {
        posture_core::verdict::Finding {
            catalog_id: id.into(),
            segment: "office".into(),
            action,
            item: posture_core::verdict::FindingItem {
                kind: posture_core::verdict::ItemKind::Process,
                name: "avp.exe".into(),
                vendor: None,
                version: None,
                id: None,
            },
            category: "antivirus".into(),
            exemption: None,
            exemption_expires: None,
            deny_from: deny_from.map(str::to_string),
        }
    }

    #[test]
    fn the_warning_header_names_each_cause_its_segment_and_staged_date() {
        let result = SegmentResult {
            decision: Decision::Warn,
            findings: vec![
                finding("kaspersky", Decision::Warn, Some("2027-02-01")),
                finding("kaspersky", Decision::Warn, Some("2027-01-15")),
                finding("anydesk", Decision::Warn, None),
                finding("waived", Decision::Allow, None),
            ],
            unmet: vec![posture_core::verdict::Unmet {
                requirement: posture_core::verdict::Requirement::MinOsVersion,
                segment: "office".into(),
                action: Decision::Deny,
                detail: String::new(),
            }],
        };
        assert_eq!(
            warning_header("office", &result).unwrap(),
            "anydesk;segment=office, kaspersky;segment=office;deny-from=2027-01-15, min_os_version;segment=office"
        );
        let clean = SegmentResult {
            decision: Decision::Allow,
            findings: Vec::new(),
            unmet: Vec::new(),
        };
        assert!(warning_header("office", &clean).is_none());
    }

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
