//! One forward-auth request, top to bottom in [`handle`]: which proxy is
//! asking, which endpoint, then for `authz` the original request's target,
//! its route, the device's certificate, the judgement (the same step as
//! the reverse proxy's, `proxy::judge`), and the answer the proxy needs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use super::device;
use super::listen::ProxyPeer;
use super::pages::{DeniedPage, Why};
use super::{AUTHZ_PATH, DENIED_PREFIX};
use crate::audit;
use crate::gate::conn::ConnInfo;
use crate::gate::headers::{self, REFERENCE};
use crate::gate::posture::{self, ATTEST_PATH, CHALLENGE_PATH, READY_PATH};
use crate::gate::proxy::{self, Target};
use crate::gate::respond::{page_response, Body, GateAddr, Pager};
use crate::gate::routing::{normalise_host, PathError};
use crate::gate::{unix_now, Live, Shared};
use crate::page::{self, PageInput, Problem};
use posture_core::audit::{AuditEvent, Enforcement, RefusedEvent, TlsRefusedEvent};
use posture_core::code::Code;
use posture_core::config::model::ProxyKind;
use posture_core::config::snapshot::{ForwardAuthListen, ForwardAuthSettings, TrustedProxy};
use posture_core::decision::{self, Denial, Outcome, Posture};

/// The code of a refusal (the audit event's `reason`): the same header as
/// on the gate's own pages.
pub use crate::gate::headers::REASON;
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

pub(super) async fn handle(
    req: Request<Incoming>,
    peer: &ProxyPeer,
    shared: &Arc<Shared>,
) -> Response<Body> {
    // One snapshot for the whole request.
    let live = shared.live.load_full();
    let Some(fa) = live.settings.forward_auth.as_ref() else {
        // `[forward_auth]` was removed by a reload; the listener stays
        // until a restart but speaks for no one.
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "forward-auth is not configured\n",
        );
    };

    // A socket bound as Unix (or TCP) stays so until a restart; a reload
    // that changed `listen` must not make its peers someone else.
    if peer.addr.is_none() != matches!(fa.listen, ForwardAuthListen::Unix(_)) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "[forward_auth] listen changed: restart the gate\n",
        );
    }

    // 1. Which proxy: by address, certificate or socket, never by header.
    let Some((index, proxy)) = proxy_of(fa, peer) else {
        return stranger(&shared.audit, peer, &req, Enforcement::ForwardAuth);
    };
    let via = Via {
        live: &live,
        shared,
        index,
        proxy,
    };

    // 2. Which endpoint.
    let path = req.uri().path();
    if path == AUTHZ_PATH || (proxy.kind == ProxyKind::Envoy && envoy_target(path).is_some()) {
        return authz(&req, &via).await;
    }
    if let Some(reference) = path.strip_prefix(DENIED_PREFIX) {
        return denied_page(&req, &via, reference);
    }
    if matches!(path, CHALLENGE_PATH | ATTEST_PATH | READY_PATH) {
        let path = path.to_string();
        return posture_endpoint(req, &path, &via).await;
    }
    text(StatusCode::NOT_FOUND, "not a forward-auth endpoint\n")
}

/// The request's proxy and the current config.
struct Via<'a> {
    live: &'a Arc<Live>,
    shared: &'a Arc<Shared>,
    /// Index into `[[forward_auth.proxy]]`.
    index: usize,
    proxy: &'a TrustedProxy,
}

/// The first configured proxy this connection can be.
fn proxy_of<'a>(
    fa: &'a ForwardAuthSettings,
    peer: &ProxyPeer,
) -> Option<(usize, &'a TrustedProxy)> {
    fa.proxies
        .iter()
        .enumerate()
        .find(|(_, p)| peer.is(&p.from, p.certificate_name.as_deref()))
}

/// 403 for a peer that is no configured proxy, with an audit event; its
/// headers are not read, and the connection closes after the answer.
pub(in crate::gate) fn stranger<B>(
    audit: &audit::Audit,
    peer: &ProxyPeer,
    req: &Request<B>,
    enforcement: Enforcement,
) -> Response<Body> {
    let uri = req.uri();
    let reference = decision::new_reference();
    let source = peer.addr.unwrap_or(UNKNOWN_SOURCE);
    tracing::warn!(peer = %source, reference, ?enforcement, path = uri.path(), "request from a peer that is none of the configured proxies or RADIUS servers, refused");
    audit.emit_detached(&AuditEvent::Refused(RefusedEvent {
        reference: &reference,
        enforcement,
        device: None,
        source,
        proxy: None,
        route_host: None,
        route_prefix: None,
        segment: None,
        reason: Code::UntrustedProxy,
    }));
    let mut response = text(StatusCode::FORBIDDEN, "not a proxy this gate answers\n");
    let h = response.headers_mut();
    // HTTP/1: the connection ends with this answer. (HTTP/2 forbids the
    // header; a stream error there would hide the answer itself.)
    if req.version() < http::Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(v) = HeaderValue::from_str(&reference) {
        h.insert(REFERENCE, v);
    }
    h.insert(
        REASON,
        HeaderValue::from_static(Code::UntrustedProxy.as_str()),
    );
    response
}

/// The source of an audit event when neither the proxy nor the transport
/// names the client.
const UNKNOWN_SOURCE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// The authorisation answer for the original request.
async fn authz(req: &Request<Incoming>, via: &Via<'_>) -> Response<Body> {
    let Via {
        live,
        shared,
        index,
        proxy,
    } = via;
    let now = unix_now();
    let h = req.headers();
    let original = Original::of(req, proxy);
    let (format, lang) = page::negotiate(
        h.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        h.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
        original.as_ref().ok().and_then(|o| o.query.as_deref()),
    );
    let device = live
        .forward
        .as_ref()
        .map_or(Ok(None), |doors| doors.device(*index, proxy, h, now));
    let source = client_address(h);
    let conn = ConnInfo::forwarded(
        source,
        device.as_ref().ok().and_then(|d| d.as_deref()),
        device.as_ref().err().and_then(|p| p.rejected()).cloned(),
    );
    let mut pager = Pager {
        live,
        conn: &conn,
        format,
        lang,
        path_and_query: "/",
        enforcement: Enforcement::ForwardAuth,
        proxy: Some(&proxy.name),
        audit: &shared.audit,
        gate: None,
        os_family: None,
    };
    let fingerprint = conn.client.as_ref().map(|c| c.fingerprint);
    let refused =
        |pager: &Pager<'_>, problem: Problem<'static>, route, why: &dyn std::fmt::Display| {
            let response = pager.refuse(problem, route, why);
            keep_refusal(
                via,
                pager,
                response,
                Why::Refused(problem.code()),
                fingerprint,
            )
        };

    // 1. The original request's target, normalised as the reverse proxy
    //    normalises its own.
    let target = match original.and_then(|o| o.target()) {
        Ok(target) => target,
        Err(why) => return refused(&pager, Problem::BadRequest, None, &why),
    };
    pager.path_and_query = &target.path_and_query;

    // 2. The route.
    let Some(route_index) = live.routes.lookup(&target.host, target.route_path()) else {
        let why = format_args!("no route for host {}", target.host);
        return refused(&pager, Problem::UnknownHost, None, &why);
    };
    let route = &live.snapshot.routes[route_index];
    pager.gate = Some(GateAddr {
        host: &route.host,
        port: browser_port(h, proxy),
    });
    if target.encoded_percent && !route.allow_encoded_percent {
        return refused(
            &pager,
            Problem::BadRequest,
            Some(route),
            &PathError::EncodedPercent,
        );
    }

    // 3. The certificate the proxy forwarded: verified, or refused. One
    //    that does not verify is judged as none, its problem named (as at
    //    the TLS front); a header that cannot be taken is refused here.
    if let Err(problem) = &device {
        let Some(rejected) = &conn.rejected else {
            return refused(&pager, Problem::CertificateUntrusted, Some(route), problem);
        };
        tracing::debug!(peer = %source, proxy = %proxy.name, "forwarded certificate: {problem}");
        if shared
            .rejected_lines
            .due(&rejected.fingerprint_sha256, source.ip())
        {
            let event = TlsRefusedEvent::of(source, rejected, Some(&proxy.name));
            shared.audit.emit_detached(&AuditEvent::TlsRefused(event));
        } else {
            crate::metrics::tls_refused_unaudited();
        }
    }

    // 4. The judgement, the same at every door.
    let token = h.get(&headers::POSTURE_ATTESTATION);
    let line = proxy::Line::Emit;
    let (mut judgement, recorded) =
        proxy::judge(live, shared, &conn, route, token, now, &pager, line).await;
    if !recorded && shared.audit.refuses() {
        return posture::audit_unavailable(&pager);
    }
    // What this replica remembers of the device's last report, for the page
    // (the audit line is already written here, with the core's
    // `no_posture`; the reverse proxy writes its line after this step).
    proxy::lapsed(&mut judgement, &conn, shared, now);

    // 5. The answer.
    let Outcome::Deny(denial) = &judgement.outcome else {
        // A warned browser navigation sees the notice once per period
        // first, as at the gate's own door.
        if let (Outcome::Warn(result), Some(device)) = (&judgement.outcome, &conn.client) {
            let every = live.snapshot.remediation.warning_notice_every;
            let get = original_method(req, proxy).is_some_and(|m| m.eq_ignore_ascii_case("GET"));
            if proxy::is_navigation_of(get, h)
                && shared
                    .notices
                    .due(device.fingerprint, judgement.segment(), now, every)
            {
                let os = judgement.posture.as_deref().map(Posture::os);
                let reference = judgement.reference.as_deref().unwrap_or_default();
                let rendered = page::render_notice(&page::NoticeInput {
                    reference,
                    lang: pager.lang,
                    snapshot: &live.snapshot,
                    organization: device.organization.as_deref(),
                    segment: judgement.segment(),
                    result,
                    os,
                    path_and_query: pager.path_and_query,
                    gate_url: pager.gate_url().as_deref(),
                });
                let mut response =
                    page_response(rendered.status, rendered.content_type, rendered.body);
                if let Ok(v) = HeaderValue::from_str(reference) {
                    response.headers_mut().insert(REFERENCE, v);
                }
                let why = Why::Notice {
                    segment: route.segment,
                    result: result.clone(),
                    os: os.cloned(),
                };
                return keep_refusal(via, &pager, response, why, fingerprint);
            }
        }
        let warning = judgement.warning().map(|w| headers::encode_list(&w));
        // The proxy shows a reference only with a warning; an allowed
        // decision's own is in the audit line.
        let warned = matches!(judgement.outcome, Outcome::Warn(_));
        let reference = judgement.reference.as_deref().filter(|_| warned);
        return admitted(
            &conn,
            judgement.outcome.decision().as_str(),
            warning,
            reference,
        );
    };
    let os = judgement.posture.as_deref().map(Posture::os);
    pager.os_family = os.map(|o| o.family);
    let segment = judgement.segment();
    let problem = proxy::remembered_problem(denial, &conn, shared, segment, os);
    // nginx asks for the page again by reference: it must tell the same.
    let refused = match problem {
        Problem::ReportRefused { at, reason } => Some((at, reason)),
        _ => None,
    };
    let reference = judgement.reference.as_deref().unwrap_or_default();
    let response = pager.page(problem, reference);
    let why = Why::Denial {
        denial: denial.clone(),
        segment: route.segment,
        os: os.cloned(),
        refused,
    };
    keep_refusal(via, &pager, response, why, fingerprint)
}

/// The port for the agent command on a page, with the route's host (the
/// agent attests through the proxy, on the name the browser used): the
/// port the proxy says the browser used, in its original host header, else
/// `X-Forwarded-Port`, else 443. Only a number is taken.
fn browser_port(h: &HeaderMap, proxy: &TrustedProxy) -> u16 {
    let text = |name: &HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    text(&proxy.host_header)
        .and_then(|host| host.parse::<http::uri::Authority>().ok())
        .and_then(|a| a.port_u16())
        .or_else(|| {
            text(&HeaderName::from_static("x-forwarded-port"))?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(443)
}

/// 200: the proxy lets the request through, with the gate's headers for
/// the app. Every header is present, empty when it does not apply.
fn admitted(
    conn: &ConnInfo,
    decision: &'static str,
    warning: Option<HeaderValue>,
    reference: Option<&str>,
) -> Response<Body> {
    let mut response = text(StatusCode::OK, "");
    let h = response.headers_mut();
    let empty = || HeaderValue::from_static("");
    h.insert(headers::DECISION, HeaderValue::from_static(decision));
    let device = conn.client.as_ref();
    h.insert(
        headers::DEVICE_FINGERPRINT,
        device.map_or_else(empty, |d| headers::encode_value(&d.fingerprint_sha256)),
    );
    h.insert(
        headers::DEVICE_SUBJECT,
        device.map_or_else(empty, |d| headers::encode_value(&d.subject)),
    );
    h.insert(
        headers::DEVICE_ORGANIZATION,
        device
            .and_then(|d| d.organization.as_deref())
            .map_or_else(empty, headers::encode_value),
    );
    h.insert(headers::POSTURE_WARNING, warning.unwrap_or_else(empty));
    h.insert(
        REFERENCE,
        reference
            .and_then(|r| HeaderValue::from_str(r).ok())
            .unwrap_or_else(empty),
    );
    response
}

/// A refusal as the proxy needs it: 401 without a certificate, 403 for all
/// else (nginx reads any other status as its own error, Envoy any 5xx), the
/// reference and code in headers, and the page kept for nginx.
fn keep_refusal(
    via: &Via<'_>,
    pager: &Pager<'_>,
    mut response: Response<Body>,
    why: Why,
    fingerprint: Option<[u8; 32]>,
) -> Response<Body> {
    let no_certificate = matches!(
        why,
        Why::Denial {
            denial: Denial::NoCertificate,
            ..
        }
    );
    let (code, decision) = match &why {
        Why::Denial { denial, .. } => (denial.code().as_str(), "deny"),
        Why::Refused(code) => (code.as_str(), "deny"),
        Why::Notice { .. } => ("warning_notice", "warn"),
    };
    // nginx shows the kept page with its status: a notice is no error.
    let kept_status = match &why {
        Why::Notice { .. } => StatusCode::OK,
        _ if no_certificate => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    };
    let status = if no_certificate {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    };
    *response.status_mut() = status;
    let h = response.headers_mut();
    if no_certificate {
        // RFC 9110: a 401 names how to authenticate; here, by a client
        // certificate at the proxy.
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("TLS-Client-Certificate realm=\"posture-gate\""),
        );
    }
    h.insert(headers::DECISION, HeaderValue::from_static(decision));
    h.insert(REASON, HeaderValue::from_static(code));
    let reference = last_reference(h);
    // Only nginx asks for a page again; the others show this body.
    let kept = via.proxy.kind == ProxyKind::Nginx;
    if let Some(reference) = reference.filter(|_| kept) {
        via.shared.denied.keep(
            &reference,
            DeniedPage {
                snapshot: via.live.snapshot.clone(),
                why,
                organization: pager
                    .conn
                    .client
                    .as_ref()
                    .and_then(|c| c.organization.clone()),
                fingerprint,
                path_and_query: truncated(pager.path_and_query, MAX_KEPT_TARGET).to_string(),
                status: kept_status,
                gate_url: pager.gate_url(),
            },
        );
    }
    response
}

/// The most of a request target a kept page holds (for its links): a
/// page is kept for every refusal, so its size is bounded.
const MAX_KEPT_TARGET: usize = 2048;

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The reference a page shows, which `Pager` also puts in a header.
fn last_reference(h: &mut HeaderMap) -> Option<String> {
    h.get(&REFERENCE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `GET /.well-known/posture-gate/denied/<reference>`: the kept page, to
/// the device it was shown to.
fn denied_page(req: &Request<Incoming>, via: &Via<'_>, reference: &str) -> Response<Body> {
    let h = req.headers();
    let (format, lang) = page::negotiate(
        h.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
        h.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
        req.uri().query(),
    );
    let fingerprint = device::leaf_fingerprint(via.proxy, h);
    let Some(kept) = is_reference(reference)
        .then(|| via.shared.denied.get(reference, fingerprint))
        .flatten()
    else {
        return text(
            StatusCode::NOT_FOUND,
            "Deze pagina is niet (meer) beschikbaar. / This page is not (or no longer) available.\n",
        );
    };
    if let Why::Notice {
        segment,
        result,
        os,
    } = &kept.why
    {
        let name = kept
            .snapshot
            .segments
            .get(*segment)
            .map_or("", |s| s.name.as_str());
        let rendered = page::render_notice(&page::NoticeInput {
            reference,
            lang,
            snapshot: &kept.snapshot,
            organization: kept.organization.as_deref(),
            segment: name,
            result,
            os: os.as_ref(),
            path_and_query: &kept.path_and_query,
            gate_url: kept.gate_url.as_deref(),
        });
        let mut response = page_response(kept.status, rendered.content_type, rendered.body);
        if let Ok(v) = HeaderValue::from_str(reference) {
            response.headers_mut().insert(REFERENCE, v);
        }
        return response;
    }
    let rendered = page::render(&PageInput {
        problem: kept.problem(),
        reference,
        format,
        lang,
        snapshot: &kept.snapshot,
        organization: kept.organization.as_deref(),
        path_and_query: &kept.path_and_query,
        gate_url: kept.gate_url.as_deref(),
        os_family: kept.os_family(),
    });
    let mut response = page_response(kept.status, rendered.content_type, rendered.body);
    if let Ok(v) = HeaderValue::from_str(reference) {
        response.headers_mut().insert(REFERENCE, v);
    }
    response
}

/// `PG-` and two groups of four of the reference alphabet.
fn is_reference(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && s.starts_with("PG-")
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i < 3 || i == 7 || c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// The posture endpoints, for the device whose certificate the proxy
/// forwarded.
async fn posture_endpoint(req: Request<Incoming>, path: &str, via: &Via<'_>) -> Response<Body> {
    let Via {
        live,
        shared,
        index,
        proxy,
    } = via;
    let now = unix_now();
    let (format, lang) = proxy::negotiate(&req);
    let device = live.forward.as_ref().map_or(Ok(None), |doors| {
        doors.device(*index, proxy, req.headers(), now)
    });
    let source = client_address(req.headers());
    let conn = ConnInfo::forwarded(
        source,
        device.as_ref().ok().and_then(|d| d.as_deref()),
        device.as_ref().err().and_then(|p| p.rejected()).cloned(),
    );
    let pager = Pager {
        live,
        conn: &conn,
        format,
        lang,
        path_and_query: "/",
        enforcement: Enforcement::ForwardAuth,
        proxy: Some(&proxy.name),
        audit: &shared.audit,
        gate: None,
        os_family: None,
    };
    if let Err(problem) = &device {
        // Readiness says nothing about a device: it is answered anyway. A
        // certificate that does not verify is no certificate (an attest
        // is refused with the spec's code, see `enforce::attest`).
        if path != READY_PATH && conn.rejected.is_none() {
            return pager.refuse(Problem::CertificateUntrusted, None, problem);
        }
    }
    posture::endpoint(req, path, &conn, live, shared, &pager).await
}

/// The client's address as the proxy tells it: the last `X-Forwarded-For`
/// entry (the one the proxy itself added), else the proxy's own.
fn client_address(h: &HeaderMap) -> SocketAddr {
    h.get_all(&X_FORWARDED_FOR)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        .map_or(UNKNOWN_SOURCE, |ip| SocketAddr::new(ip.to_canonical(), 0))
}

/// The original request's method, as the proxy says it: nginx's example
/// config sends `X-Original-Method`, Caddy and Traefik `X-Forwarded-Method`,
/// and Envoy asks with the original method itself.
fn original_method<'r>(req: &'r Request<Incoming>, proxy: &TrustedProxy) -> Option<&'r str> {
    let named = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    match proxy.kind {
        ProxyKind::Nginx => named("x-original-method"),
        ProxyKind::Caddy | ProxyKind::Traefik => named("x-forwarded-method"),
        ProxyKind::Envoy => Some(req.method().as_str()),
    }
}

/// The original request, as the proxy describes it.
struct Original {
    host: String,
    path: String,
    query: Option<String>,
}

impl Original {
    fn of(req: &Request<Incoming>, proxy: &TrustedProxy) -> Result<Original, &'static str> {
        let h = req.headers();
        let host = single(h, &proxy.host_header)?
            .and_then(|v| v.to_str().ok())
            .ok_or("no original host")?;
        let host = normalise_host(host).ok_or("bad original host")?;
        let uri: Uri = match &proxy.uri_header {
            Some(name) => single(h, name)?
                .ok_or("no original request target")?
                .to_str()
                .map_err(|_| "bad original request target")?
                .parse()
                .map_err(|_| "bad original request target")?,
            None => {
                let path = envoy_target(req.uri().path()).ok_or("bad authorisation path")?;
                let target = match req.uri().query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path.to_string(),
                };
                target.parse().map_err(|_| "bad original request target")?
            }
        };
        // An absolute-form target must name the same host.
        if let Some(authority) = uri.authority() {
            if normalise_host(authority.as_str()).as_deref() != Some(host.as_str()) {
                return Err("the original request target and host disagree");
            }
        }
        if !uri.path().starts_with('/') {
            return Err("bad original request target");
        }
        Ok(Original {
            host,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
        })
    }

    fn target(self) -> Result<Target, &'static str> {
        Target::at(self.host, &self.path, self.query.as_deref(), false)
    }
}

/// The one value of a header the proxy sets; two are refused, since one of
/// them may be the client's own.
fn single<'h>(
    h: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h HeaderValue>, &'static str> {
    let mut values = h.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err("a header the proxy sets came more than once");
    }
    Ok(first)
}

/// The original path in Envoy's check request: what follows `/authz`.
fn envoy_target(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(AUTHZ_PATH)?;
    rest.starts_with('/').then_some(rest)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    page_response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}
