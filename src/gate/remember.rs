//! What the gate remembers per device for its pages, beyond postures: the
//! last refusal of a device's report (so "not checked yet" can say why),
//! until when its last accepted report was valid (the posture stores drop
//! a posture when it ages out, so without this an aged-out device would be
//! told it was never checked), and when it was last shown the warning
//! notice of a segment.
//!
//! Both are bounded in-memory caches of this process, keyed by the SHA-256
//! fingerprint of the device certificate. They are local to each replica:
//! behind a load balancer a device may be told of its refusal only by the
//! replica that refused it, and may see the warning notice once per replica
//! per period. Losing them costs a plainer page or one more notice, never an
//! admission: nothing here is consulted for a decision.

use std::time::Duration;

use posture_core::attestation::Reason;
use posture_core::decision::Posture;
use posture_core::enforce::Refusal;
use posture_core::verdict::Verdict;

/// How an attestation ended, as `enforce::Attestation` has it.
type Attested = Result<(std::sync::Arc<Posture>, Verdict), Refusal>;

/// Devices whose last refusal is remembered at most.
const REFUSALS: u64 = 10_000;
/// How long a refusal is told after it happened.
const REFUSAL_TTL: Duration = Duration::from_secs(3600);
/// Devices whose last posture's end is remembered at most.
const LAPSES: u64 = 100_000;
/// How long after an accepted report its end is told: a device not seen
/// for longer is simply "not checked".
const LAPSE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Device and segment pairs whose last notice is remembered at most.
const NOTICES: u64 = 100_000;

/// Per device: its last refused report, when (Unix seconds) and why; and
/// until when its last accepted report was valid.
pub(super) struct Refusals {
    refusals: moka::sync::Cache<[u8; 32], (i64, Reason)>,
    lapses: moka::sync::Cache<[u8; 32], i64>,
}

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            refusals: moka::sync::Cache::builder()
                .max_capacity(REFUSALS)
                .time_to_live(REFUSAL_TTL)
                .build(),
            lapses: moka::sync::Cache::builder()
                .max_capacity(LAPSES)
                .time_to_live(LAPSE_TTL)
                .build(),
        }
    }
}

impl Refusals {
    /// A report of this device was refused for `reason` at `now`.
    pub fn refused(&self, fingerprint: [u8; 32], now: i64, reason: Reason) {
        self.refusals.insert(fingerprint, (now, reason));
    }

    /// A report of this device was accepted, valid until `valid_until`:
    /// its old refusal is history.
    pub fn accepted(&self, fingerprint: &[u8; 32], valid_until: i64) {
        self.refusals.invalidate(fingerprint);
        self.lapses.insert(*fingerprint, valid_until);
    }

    /// When the device's last accepted report aged out, if it has by `now`.
    pub fn aged_out(&self, fingerprint: &[u8; 32], now: i64) -> Option<i64> {
        self.lapses.get(fingerprint).filter(|end| *end <= now)
    }

    /// Notes how an attestation of the device with `fingerprint` ended. A
    /// refusal that is the gate's (`retry_later`) is not the device's.
    pub fn note(&self, fingerprint: Option<[u8; 32]>, result: &Attested, now: i64) {
        let Some(fingerprint) = fingerprint else {
            return;
        };
        match result {
            Ok((posture, _)) => self.accepted(&fingerprint, posture.valid_until),
            Err(Refusal {
                reason,
                retry_later: false,
            }) => self.refused(fingerprint, now, *reason),
            Err(_) => {}
        }
    }

    /// The device's last refusal, if it came after its last acceptance.
    pub fn last(&self, fingerprint: &[u8; 32]) -> Option<(i64, Reason)> {
        self.refusals.get(fingerprint)
    }
}

/// When each device was last shown each segment's warning notice.
pub(super) struct Notices(moka::sync::Cache<([u8; 32], Box<str>), i64>);

impl Default for Notices {
    fn default() -> Self {
        Notices(moka::sync::Cache::builder().max_capacity(NOTICES).build())
    }
}

impl Notices {
    /// Whether the notice is due for this device and segment at `now`,
    /// with `every` between notices (zero: never); when it is, it is
    /// counted as shown. Two requests at once may both be told "due": one
    /// notice more, never one fewer.
    pub fn due(&self, fingerprint: [u8; 32], segment: &str, now: i64, every: Duration) -> bool {
        if every.is_zero() {
            return false;
        }
        let key = (fingerprint, Box::from(segment));
        let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
        match self.0.get(&key) {
            Some(at) if now.saturating_sub(at) < every => false,
            _ => {
                self.0.insert(key, now);
                true
            }
        }
    }
}

/// How many (certificate, address) pairs the audit dedupe keeps.
const REJECTED_LINES: u64 = 10_000;
/// One `tls_refused` line per certificate and address per this period.
const REJECTED_LINE_EVERY: Duration = Duration::from_secs(60);

/// Which refused client certificates were audited lately, per source
/// address. A bad certificate now completes its handshake (its page names
/// the problem), so any client can cause a `tls_refused` line per
/// connection (or, behind forward-auth, per request); these lines share the
/// audit queue with decisions, and with `on_audit_failure = "deny"` a flood
/// of them could get real requests refused. So the same certificate from
/// the same address is audited once a minute; the lines left out are
/// counted (`posture_gate_tls_refused_unaudited_total`). Each connection's
/// decisions are still audited as always.
pub(super) struct RejectedLines(moka::sync::Cache<(String, std::net::IpAddr), ()>);

impl Default for RejectedLines {
    fn default() -> Self {
        RejectedLines(
            moka::sync::Cache::builder()
                .max_capacity(REJECTED_LINES)
                .time_to_live(REJECTED_LINE_EVERY)
                .build(),
        )
    }
}

impl RejectedLines {
    /// Whether a line for this certificate (hex fingerprint) from this
    /// address is due now; records it when it is.
    pub fn due(&self, fingerprint_sha256: &str, source: std::net::IpAddr) -> bool {
        let entry = self
            .0
            .entry((fingerprint_sha256.to_owned(), source))
            .or_insert(());
        entry.is_fresh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_due_once_per_period_per_segment() {
        let n = Notices::default();
        let day = Duration::from_secs(86_400);
        assert!(n.due([1; 32], "office", 1000, day));
        assert!(!n.due([1; 32], "office", 1001, day));
        assert!(n.due([1; 32], "lab", 1001, day));
        assert!(n.due([2; 32], "office", 1001, day));
        assert!(n.due([1; 32], "office", 1000 + 86_400, day));
        assert!(!n.due([3; 32], "office", 0, Duration::ZERO));
    }

    #[test]
    fn an_accepted_report_forgets_the_refusal() {
        let r = Refusals::default();
        r.refused([1; 32], 5, Reason::KeyMismatch);
        assert_eq!(r.last(&[1; 32]), Some((5, Reason::KeyMismatch)));
        r.accepted(&[1; 32], 100);
        assert_eq!(r.last(&[1; 32]), None);
        assert_eq!(r.aged_out(&[1; 32], 99), None);
        assert_eq!(r.aged_out(&[1; 32], 100), Some(100));
    }
}
