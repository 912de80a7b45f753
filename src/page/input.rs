//! What the gate hands the page: the problem to explain and the request's
//! negotiated format and language. A leaf: it imports nothing of the page.

use posture_core::attestation::claims::{Os, OsFamily};
use posture_core::attestation::Reason;
use posture_core::certificate::{CertProblem, RejectedCert};
use posture_core::code::Code;
use posture_core::config::Snapshot;
use posture_core::decision::{Denial, SegmentResult};
use posture_core::lang::Lang;
use posture_core::verdict::Decision;

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
    /// 403: the certificate a proxy forwarded does not verify against the
    /// client-CA bundle (forward-auth only), when the gate cannot say why:
    /// a certificate header sent twice or not decodable. A certificate it
    /// can judge gets [`Problem::CertificateRejected`].
    CertificateUntrusted,
    /// 403: a client certificate was presented but failed verification
    /// (expired, not yet valid, unknown issuer, revoked, wrong usage,
    /// unreadable): the connection is one without a certificate, and the
    /// page names the problem, the certificate and what to do.
    CertificateRejected(&'a RejectedCert),
    /// 403: no posture known for this device; run the agent.
    NoPosture,
    /// 403: no posture known for this device, and its last report (at
    /// `at`, Unix seconds) was refused for `reason`: the page says so
    /// instead of "not checked yet" (code `no_posture`, as the decision's).
    ReportRefused { at: i64, reason: Reason },
    /// 403: the posture aged out (at `aged_out`, Unix seconds, when the
    /// gate still knows it); run the agent again.
    StalePosture { aged_out: Option<i64> },
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
    /// 503: the posture store is out of reach, so the gate cannot judge the
    /// device now (it was not admitted); try again shortly.
    StoreUnavailable,
    /// 503: the audit log cannot record the decision now, and the gate
    /// admits no one without a record; try again shortly.
    AuditUnavailable,
    /// 504
    UpstreamTimeout,
    /// 413
    PayloadTooLarge,
    /// 400, e.g. a path with an encoded slash.
    BadRequest,
}

impl<'a> Problem<'a> {
    /// The page for a denial. `segment` is the segment's name, `os` the OS
    /// the device reported (for the removal steps of a `prohibited` page).
    pub fn of_denial(denial: &'a Denial, segment: &'a str, os: Option<&'a Os>) -> Problem<'a> {
        match denial {
            Denial::Prohibited(result) => Problem::Prohibited {
                segment,
                result,
                os,
            },
            Denial::CertificateRejected(rejected) => Problem::CertificateRejected(rejected),
            Denial::StalePosture { valid_until } => Problem::StalePosture {
                aged_out: Some(*valid_until),
            },
            // Only `prohibited` has no page of its code alone.
            other => Problem::of_code(other.code()).unwrap_or(Problem::NoPosture),
        }
    }

    /// The page of a code, for every code but `prohibited` (whose page
    /// shows the findings, see [`Problem::of_denial`]).
    pub fn of_code(code: Code) -> Option<Problem<'static>> {
        Some(match code {
            Code::NoCertificate => Problem::NoCertificate,
            // The page does not tell the two apart; the audit log does.
            Code::CertRevoked | Code::RevocationUnknown => Problem::CertificateRefused,
            Code::CertUntrusted => Problem::CertificateUntrusted,
            // Without the certificate's details (they come with a denial).
            Code::CertExpired => Problem::CertificateRejected(&BARE_EXPIRED),
            Code::UntrustedChain => Problem::CertificateRejected(&BARE_UNTRUSTED),
            Code::CertWrongUsage => Problem::CertificateRejected(&BARE_WRONG_USAGE),
            Code::CertInvalid => Problem::CertificateRejected(&BARE_INVALID),
            Code::NoPosture => Problem::NoPosture,
            Code::StalePosture => Problem::StalePosture { aged_out: None },
            Code::CatalogueChanged => Problem::CatalogueChanged,
            Code::Attestation(reason) => Problem::InvalidAttestation(reason),
            // A store out of reach is a service that is not available.
            Code::PostureStoreUnavailable | Code::NonceNotRecorded => Problem::StoreUnavailable,
            Code::AuditUnavailable => Problem::AuditUnavailable,
            Code::UpstreamUnavailable => Problem::UpstreamUnavailable,
            Code::UpstreamTimeout => Problem::UpstreamTimeout,
            Code::PayloadTooLarge => Problem::PayloadTooLarge,
            Code::BadRequest => Problem::BadRequest,
            Code::UnknownHost => Problem::UnknownHost,
            // A stranger on the forward-auth listener gets no page.
            Code::Prohibited | Code::UntrustedProxy => return None,
        })
    }

    /// The last part of the problem type URN (`urn:posture-gate:problem:…`),
    /// derived from the problem's [`Code`]. `prohibited` has three pages:
    /// prohibited software (a finding that denies, or findings alone),
    /// requirements not met (unmet requirements without such findings), or
    /// plain access denied.
    pub fn slug(&self) -> &'static str {
        match self.code() {
            Code::NoCertificate => "no-certificate",
            Code::CertRevoked | Code::RevocationUnknown => "certificate-refused",
            Code::CertUntrusted => "certificate-untrusted",
            Code::CertExpired => "certificate-expired",
            Code::UntrustedChain => "certificate-untrusted-chain",
            Code::CertWrongUsage => "certificate-wrong-usage",
            Code::CertInvalid => "certificate-invalid",
            Code::UntrustedProxy => "untrusted-proxy",
            Code::NoPosture => "no-attestation",
            Code::StalePosture => "stale-attestation",
            Code::CatalogueChanged => "catalogue-changed",
            Code::Attestation(_) => "invalid-attestation",
            Code::UnknownHost => "unknown-host",
            Code::UpstreamUnavailable => "upstream-unavailable",
            Code::PostureStoreUnavailable | Code::NonceNotRecorded => "store-unavailable",
            Code::AuditUnavailable => "audit-unavailable",
            Code::UpstreamTimeout => "upstream-timeout",
            Code::PayloadTooLarge => "payload-too-large",
            Code::BadRequest => "bad-request",
            Code::Prohibited => match self {
                Problem::Prohibited { result, .. } => ProhibitedPage::of(result).slug(),
                _ => ProhibitedPage::AccessDenied.slug(),
            },
        }
    }

    /// The code of this problem: the audit event's `reason` for the page.
    pub fn code(&self) -> Code {
        match self {
            Problem::NoCertificate => Code::NoCertificate,
            // The page does not tell the two apart; the audit log does.
            Problem::CertificateRefused => Code::CertRevoked,
            Problem::CertificateUntrusted => Code::CertUntrusted,
            Problem::CertificateRejected(rejected) => rejected.code(),
            Problem::NoPosture | Problem::ReportRefused { .. } => Code::NoPosture,
            Problem::StalePosture { .. } => Code::StalePosture,
            Problem::CatalogueChanged => Code::CatalogueChanged,
            Problem::InvalidAttestation(reason) => Code::Attestation(*reason),
            Problem::Prohibited { .. } => Code::Prohibited,
            Problem::UnknownHost => Code::UnknownHost,
            Problem::UpstreamUnavailable => Code::UpstreamUnavailable,
            Problem::StoreUnavailable => Code::PostureStoreUnavailable,
            Problem::AuditUnavailable => Code::AuditUnavailable,
            Problem::UpstreamTimeout => Code::UpstreamTimeout,
            Problem::PayloadTooLarge => Code::PayloadTooLarge,
            Problem::BadRequest => Code::BadRequest,
        }
    }
}

static BARE_EXPIRED: RejectedCert = RejectedCert::bare(CertProblem::Expired);
static BARE_UNTRUSTED: RejectedCert = RejectedCert::bare(CertProblem::UnknownIssuer);
static BARE_WRONG_USAGE: RejectedCert = RejectedCert::bare(CertProblem::BadPurpose);
static BARE_INVALID: RejectedCert = RejectedCert::bare(CertProblem::Other);

/// The three pages of a `prohibited` denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProhibitedPage {
    /// A finding that denies, or findings alone: `prohibited-software`.
    ProhibitedSoftware,
    /// Unmet requirements without a finding that denies:
    /// `requirements-not-met`.
    RequirementsNotMet,
    /// Neither (a policy that denies without either): `access-denied`.
    AccessDenied,
}

impl ProhibitedPage {
    /// The page for this segment result.
    pub fn of(result: &SegmentResult) -> ProhibitedPage {
        let mut findings = result
            .findings
            .iter()
            .filter(|f| f.action != Decision::Allow);
        let any_finding = findings.clone().next().is_some();
        if findings.any(|f| f.action == Decision::Deny) || (result.unmet.is_empty() && any_finding)
        {
            ProhibitedPage::ProhibitedSoftware
        } else if !result.unmet.is_empty() {
            ProhibitedPage::RequirementsNotMet
        } else {
            ProhibitedPage::AccessDenied
        }
    }

    fn slug(self) -> &'static str {
        match self {
            ProhibitedPage::ProhibitedSoftware => "prohibited-software",
            ProhibitedPage::RequirementsNotMet => "requirements-not-met",
            ProhibitedPage::AccessDenied => "access-denied",
        }
    }
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
    /// Where the agent reaches this gate, `https://HOST:PORT`, for the
    /// command on the page; `None` when not known (the page then says to
    /// use the name in the address bar).
    pub gate_url: Option<&'a str>,
    /// The OS family the device last reported, when known: the page then
    /// shows that OS's steps only.
    pub os_family: Option<OsFamily>,
}

/// What the warning notice is made of: a device the segment's policy lets
/// in with a warning, shown before the app once per
/// `[remediation] warning_notice_every`.
pub struct NoticeInput<'a> {
    /// The reference of the (warn) decision, as in its audit line.
    pub reference: &'a str,
    pub lang: Lang,
    pub snapshot: &'a Snapshot,
    pub organization: Option<&'a str>,
    /// The segment's name.
    pub segment: &'a str,
    /// The findings and unmet requirements behind the warning.
    pub result: &'a SegmentResult,
    pub os: Option<&'a Os>,
    /// The request target: the continue link goes there, on this host.
    pub path_and_query: &'a str,
    /// See [`PageInput::gate_url`].
    pub gate_url: Option<&'a str>,
}
