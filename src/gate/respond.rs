//! The gate's own answers: the response body type, the pages (denials,
//! 400, 404, 502, 504) with the headers every page carries, and the audit
//! record of every page that shows a reference. A leaf: the proxy and the
//! posture endpoints answer through it.

use std::fmt;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::conn::ConnInfo;
use super::Live;
use crate::audit;
use crate::page::{self, Format, Lang, PageInput, Problem};
use posture_core::attestation::claims::OsFamily;
use posture_core::audit::{AuditEvent, Enforcement, RefusedEvent};
use posture_core::code::Code;
use posture_core::config::snapshot::Route;
use posture_core::decision;

/// Upstream bodies stream through; the gate's own answers are small and whole.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Renders the gate's own pages for one request.
pub(super) struct Pager<'a> {
    pub live: &'a Live,
    pub conn: &'a ConnInfo,
    pub format: Format,
    pub lang: Lang,
    /// The request target, for the retry and language links.
    pub path_and_query: &'a str,
    /// The door, for the audit events of refusals.
    pub enforcement: Enforcement,
    /// Forward-auth: the name of the proxy that asked.
    pub proxy: Option<&'a str>,
    /// The gate's audit log.
    pub audit: &'a audit::Audit,
    /// Where the request reached this gate (the route's host and the
    /// port), for the agent command on pages; `None` until known. Kept as
    /// parts so an admitted request never formats it.
    pub gate: Option<GateAddr<'a>>,
    /// The OS family the device last reported, once judged.
    pub os_family: Option<OsFamily>,
}

/// The host (a configured route's) and port a request reached the gate on.
#[derive(Clone, Copy)]
pub(super) struct GateAddr<'a> {
    pub host: &'a str,
    pub port: u16,
}

impl GateAddr<'_> {
    /// `https://HOST:PORT`, as the agent takes it.
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.host, self.port)
    }
}

impl Pager<'_> {
    /// `https://HOST:PORT` for the agent command, when known.
    pub fn gate_url(&self) -> Option<String> {
        self.gate.map(|g| g.url())
    }

    /// The page of `problem`, showing `reference`.
    pub fn page(&self, problem: Problem<'_>, reference: &str) -> Response<Body> {
        // The code in a header too, as forward-auth answers carry it: a
        // script or a load balancer's log sees why without the body.
        let code = problem.code();
        let rendered = page::render(&PageInput {
            problem,
            reference,
            format: self.format,
            lang: self.lang,
            snapshot: &self.live.snapshot,
            organization: self
                .conn
                .client
                .as_ref()
                .and_then(|c| c.organization.as_deref()),
            path_and_query: self.path_and_query,
            gate_url: self.gate_url().as_deref(),
            os_family: self.os_family,
        });
        let mut response = page_response(rendered.status, rendered.content_type, rendered.body);
        let h = response.headers_mut();
        if !reference.is_empty() {
            if let Ok(v) = HeaderValue::from_str(reference) {
                h.insert(super::headers::REFERENCE, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(code.as_str()) {
            h.insert(super::headers::REASON, v);
        }
        response
    }

    /// The page of a request that could not be served (400, 404, 502,
    /// 504), after the audit event that carries its reference, so the
    /// service desk finds every reference a person was shown. `route` is
    /// the route, once one was found; `why` goes to the diagnostic log
    /// (a warning when the fault is the gate's side, 5xx).
    pub fn refuse(
        &self,
        problem: Problem<'_>,
        route: Option<&Route>,
        why: &dyn fmt::Display,
    ) -> Response<Body> {
        let reference = &decision::new_reference();
        let reason = problem.code();
        let (peer, host) = (self.conn.peer, route.map(|r| r.host.as_str()));
        match reason {
            Code::UpstreamUnavailable | Code::UpstreamTimeout => {
                let upstream = route.map(|r| r.upstream.to_string());
                tracing::warn!(%peer, reference, %reason, route_host = host, upstream, "upstream failed: {why}");
            }
            _ => tracing::debug!(%peer, reference, %reason, route_host = host, "refused: {why}"),
        }
        let segment = route.and_then(|r| self.live.snapshot.segments.get(r.segment));
        self.audit.emit_detached(&AuditEvent::Refused(RefusedEvent {
            reference,
            enforcement: self.enforcement,
            device: self.conn.client.as_ref().map(Into::into),
            source: self.conn.peer,
            proxy: self.proxy,
            route_host: route.map(|r| r.host.as_str()),
            route_prefix: route.map(|r| r.path_prefix.as_str()),
            segment: segment.map(|s| s.name.as_str()),
            reason,
        }));
        self.page(problem, reference)
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
