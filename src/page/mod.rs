//! The denial page: what a person (or an API client) sees when the gate
//! refuses a request, in Dutch or English, as HTML or RFC 9457
//! problem+json.
//!
//! This module renders; it never decides. The gate hands it a [`Problem`]
//! that the decision already produced, plus the snapshot for catalogue texts
//! and the service desk. Everything that came from the device (product
//! names, versions, OS names) is escaped by askama, and nothing about
//! upstreams or files is ever read from the snapshot.

mod csp;
mod html;
mod links;
mod negotiate;
mod problem_json;
mod steps;
mod view;

use posture_core::attestation::claims::Os;
use posture_core::attestation::Reason;
use posture_core::config::Snapshot;
use posture_core::decision::SegmentResult;

pub use csp::CONTENT_SECURITY_POLICY;
pub use posture_core::lang::Lang;
pub use posture_core::reasons;
pub use negotiate::negotiate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Html,
    ProblemJson,
}

/// Why a request was refused or could not be served. (No `Debug`: it would
/// require one of `SegmentResult`, which this module does not own.)
#[derive(Clone, Copy)]
pub enum Problem<'a> {
    /// 403: no client certificate; the page explains how to enrol.
    NoCertificate,
    /// 403: the device certificate is revoked, or its revocation status is
    /// not known to the gate now; the service desk must renew it.
    CertificateRefused,
    /// 403: no posture known for this device; run the agent.
    NoPosture,
    /// 403: the posture aged out; run the agent again.
    StalePosture,
    /// 403: the catalogue of prohibited software changed since the device
    /// last reported; run the agent again to be checked against it.
    CatalogueChanged,
    /// 403: the attestation was refused, for this reason.
    InvalidAttestation(Reason),
    /// 403: the segment's policy denies this device.
    Prohibited {
        segment: &'a str,
        result: &'a SegmentResult,
        os: Option<&'a Os>,
    },
    /// 404: no route for this host.
    UnknownHost,
    /// 502
    UpstreamUnavailable,
    /// 504
    UpstreamTimeout,
    /// 413
    PayloadTooLarge,
    /// 400, e.g. a path with an encoded slash.
    BadRequest,
}

pub struct PageInput<'a> {
    pub problem: Problem<'a>,
    /// The short code that ties this page to the audit log.
    pub reference: &'a str,
    pub format: Format,
    pub lang: Lang,
    pub snapshot: &'a Snapshot,
    /// The organisation (O) of the client certificate, when there was one.
    pub organization: Option<&'a str>,
    /// The request target, for the retry and language links.
    pub path_and_query: &'a str,
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub status: http::StatusCode,
    pub content_type: &'static str,
    pub body: bytes::Bytes,
}

impl Rendered {
    /// Every header a denial should be sent with: its content type, the
    /// strict CSP, and no caching or sniffing, since the page depends on the
    /// device's state and on `Accept` / `Accept-Language`.
    pub fn headers(&self) -> [(http::HeaderName, http::HeaderValue); 6] {
        use http::header;
        use http::HeaderValue as V;
        [
            (header::CONTENT_TYPE, V::from_static(self.content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                V::from_static(CONTENT_SECURITY_POLICY),
            ),
            (header::CACHE_CONTROL, V::from_static("no-store")),
            (header::X_CONTENT_TYPE_OPTIONS, V::from_static("nosniff")),
            (header::REFERRER_POLICY, V::from_static("no-referrer")),
            (header::VARY, V::from_static("Accept, Accept-Language")),
        ]
    }
}

pub const CONTENT_TYPE_HTML: &str = "text/html; charset=utf-8";
pub const CONTENT_TYPE_PROBLEM_JSON: &str = "application/problem+json";

/// Renders a problem in the negotiated format and language.
pub fn render(input: &PageInput<'_>) -> Rendered {
    let view = view::build(input);
    match input.format {
        Format::Html => Rendered {
            status: view.status,
            content_type: CONTENT_TYPE_HTML,
            body: html::render(&view),
        },
        Format::ProblemJson => Rendered {
            status: view.status,
            content_type: CONTENT_TYPE_PROBLEM_JSON,
            body: problem_json::render(&view),
        },
    }
}
