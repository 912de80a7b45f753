//! What the gate remembers per device for its pages, beyond postures: the
//! last refusal of a device's report (so "not checked yet" can say why),
//! and when a device was last shown the warning notice of a segment.
//!
//! Both are bounded in-memory caches of this process, keyed by the SHA-256
//! fingerprint of the device certificate. They are local to each replica:
//! behind a load balancer a device may be told of its refusal only by the
//! replica that refused it, and may see the warning notice once per replica
//! per period. Losing them costs a plainer page or one more notice, never an
//! admission: nothing here is consulted for a decision.

use std::time::Duration;

use posture_core::attestation::Reason;
use posture_core::enforce::Refusal;

/// Devices whose last refusal is remembered at most.
const REFUSALS: u64 = 10_000;
/// How long a refusal is told after it happened.
const REFUSAL_TTL: Duration = Duration::from_secs(3600);
/// Device and segment pairs whose last notice is remembered at most.
const NOTICES: u64 = 100_000;

/// The last refused report per device: when (Unix seconds) and why.
pub(super) struct Refusals(moka::sync::Cache<[u8; 32], (i64, Reason)>);

impl Default for Refusals {
    fn default() -> Self {
        Refusals(
            moka::sync::Cache::builder()
                .max_capacity(REFUSALS)
                .time_to_live(REFUSAL_TTL)
                .build(),
        )
    }
}

impl Refusals {
    /// A report of this device was refused for `reason` at `now`.
    pub fn refused(&self, fingerprint: [u8; 32], now: i64, reason: Reason) {
        self.0.insert(fingerprint, (now, reason));
    }

    /// A report of this device was accepted: its old refusal is history.
    pub fn accepted(&self, fingerprint: &[u8; 32]) {
        self.0.invalidate(fingerprint);
    }

    /// Notes how an attestation of the device with `fingerprint` ended. A
    /// refusal that is the gate's (`retry_later`) is not the device's.
    pub fn note<T>(&self, fingerprint: Option<[u8; 32]>, result: &Result<T, Refusal>, now: i64) {
        let Some(fingerprint) = fingerprint else {
            return;
        };
        match result {
            Ok(_) => self.accepted(&fingerprint),
            Err(Refusal {
                reason,
                retry_later: false,
            }) => self.refused(fingerprint, now, *reason),
            Err(_) => {}
        }
    }

    /// The device's last refusal, if it came after its last acceptance.
    pub fn last(&self, fingerprint: &[u8; 32]) -> Option<(i64, Reason)> {
        self.0.get(fingerprint)
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
        r.accepted(&[1; 32]);
        assert_eq!(r.last(&[1; 32]), None);
    }
}
