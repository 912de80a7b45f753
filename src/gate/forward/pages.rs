//! The pages of recent refusals, by reference. nginx drops the body of an
//! `auth_request` answer, so its `error_page` asks for the page again by
//! the reference the gate put in `X-Posture-Reference`; the page must be
//! the one the decision made (its findings, its segment), not a second
//! judgement with another reference.
//!
//! Kept in this process's memory for [`PAGE_TTL`], at most
//! [`PAGE_CAPACITY`] of them: with several gate replicas behind one nginx,
//! nginx must send a device's page request to the replica that refused it
//! (`hash $ssl_client_escaped_cert consistent;` in its `upstream`, see
//! config/forward-auth/nginx.conf).
//! A page is shown only to the device that was refused (the same leaf
//! certificate, or none when there was none), so a reference seen on a
//! screen does not show that device's findings to anyone else.

use std::sync::Arc;
use std::time::Duration;

use posture_core::attestation::claims::Os;
use posture_core::code::Code;
use posture_core::config::Snapshot;
use posture_core::decision::Denial;

use crate::page::Problem;

/// How long a page can be asked for: far longer than nginx takes to ask.
const PAGE_TTL: Duration = Duration::from_secs(15 * 60);
/// Pages kept at most; the oldest go first.
const PAGE_CAPACITY: u64 = 10_000;

/// What a refusal's page is made of.
pub(in crate::gate) struct DeniedPage {
    /// The config that judged, for the page's texts.
    pub snapshot: Arc<Snapshot>,
    pub why: Why,
    /// The O of the device certificate.
    pub organization: Option<String>,
    /// The device it was shown to (leaf SHA-256), `None` without one.
    pub fingerprint: Option<[u8; 32]>,
    /// The original request target, for the page's links.
    pub path_and_query: String,
    /// 401 or 403, as the authorisation answer had it.
    pub status: http::StatusCode,
    /// The gate's address for the agent command, as the page had it.
    pub gate_url: Option<String>,
}

/// The reason behind a page.
pub(in crate::gate) enum Why {
    /// A decision's denial, on a segment (index), with the device's OS.
    Denial {
        denial: Denial,
        segment: usize,
        os: Option<Os>,
        /// The device's last refused report (time, reason), when the page
        /// told it instead of "not checked yet".
        refused: Option<(i64, posture_core::attestation::Reason)>,
    },
    /// A refusal before any decision (bad request, unknown host, a
    /// certificate that does not verify).
    Refused(Code),
    /// Not a refusal: the warning notice a warned device sees once per
    /// period before it goes on (the proxy must not forward this request,
    /// so forward-auth answers 403 and nginx shows this page as 200).
    Notice {
        segment: usize,
        result: posture_core::decision::SegmentResult,
        os: Option<Os>,
    },
}

impl DeniedPage {
    /// The OS family the device reported, for the page's steps.
    pub fn os_family(&self) -> Option<posture_core::attestation::claims::OsFamily> {
        match &self.why {
            Why::Denial { os, .. } | Why::Notice { os, .. } => os.as_ref().map(|o| o.family),
            Why::Refused(_) => None,
        }
    }

    /// The page's problem, borrowed from the page.
    pub fn problem(&self) -> Problem<'_> {
        match &self.why {
            Why::Denial {
                refused: Some((at, reason)),
                ..
            } => Problem::ReportRefused {
                at: *at,
                reason: *reason,
            },
            Why::Denial {
                denial,
                segment,
                os,
                refused: None,
            } => {
                let name = self
                    .snapshot
                    .segments
                    .get(*segment)
                    .map_or("", |s| s.name.as_str());
                Problem::of_denial(denial, name, os.as_ref())
            }
            Why::Refused(code) => Problem::of_code(*code).unwrap_or(Problem::BadRequest),
            // Rendered as a notice, never as a problem (see `denied_page`).
            Why::Notice { .. } => Problem::BadRequest,
        }
    }
}

/// The pages by reference.
pub(in crate::gate) struct DeniedPages {
    pages: moka::sync::Cache<String, Arc<DeniedPage>>,
}

impl Default for DeniedPages {
    fn default() -> Self {
        DeniedPages {
            pages: moka::sync::Cache::builder()
                .max_capacity(PAGE_CAPACITY)
                .time_to_live(PAGE_TTL)
                .build(),
        }
    }
}

impl DeniedPages {
    pub fn keep(&self, reference: &str, page: DeniedPage) {
        self.pages.insert(reference.to_string(), Arc::new(page));
    }

    /// The page of `reference`, if it is still kept and was shown to the
    /// device `fingerprint` (or to no device, for `None`).
    pub fn get(&self, reference: &str, fingerprint: Option<[u8; 32]>) -> Option<Arc<DeniedPage>> {
        self.pages
            .get(reference)
            .filter(|page| page.fingerprint == fingerprint)
    }
}
