//! What the gate hands the page: the problem to explain and the request's
//! negotiated format and language. A leaf: it imports nothing of the page.

use posture_core::attestation::claims::Os;
use posture_core::attestation::Reason;
use posture_core::config::Snapshot;
use posture_core::decision::SegmentResult;
use posture_core::lang::Lang;

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
    /// The organization (O) of the client certificate, when there was one.
    pub organization: Option<&'a str>,
    /// The request target, for the retry and language links.
    pub path_and_query: &'a str,
}
