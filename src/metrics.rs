//! The counters behind the admin listener's `/metrics` (issue 18 point 3),
//! in the Prometheus org's `prometheus-client`.
//!
//! Decisions, attestations and CoA changes are counted in one place: from
//! the audit event, as [`crate::audit::emit`] records it ([`observe`]), so
//! every door (reverse proxy, forward-auth, 802.1X) is counted alike and a
//! decision that is counted is one that was audited. Counters live for the
//! process (they outlive reloads, as Prometheus expects of a counter); what
//! is a reading of the current state (open connections, postures held,
//! days until a certificate or CRL expires) is taken at each scrape by the
//! admin listener's collector (`gate::admin`).
//!
//! Per request: a label set of `&'static str` (segment names, which come
//! from the config, are interned once, so no request allocates), a read
//! lock on the family's map and an atomic add.

use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use posture_core::audit::AuditEvent;

/// `posture_gate_decisions_total`: one per decision of any door, and one
/// per request refused before a decision (`decision="deny"` with its code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// `proxy`, `forward_auth` or `nac`.
    enforcement: &'static str,
    /// The segment, `none` when the request was refused before routing.
    segment: &'static str,
    /// `allow`, `warn` or `deny`.
    decision: &'static str,
    /// The reason code of a warning or denial (`prohibited` when told by
    /// findings or unmet requirements); `none` for a plain allow.
    code: &'static str,
}

/// `posture_gate_attestations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttestationLabels {
    /// `valid` or `invalid`.
    result: &'static str,
    /// The spec's reason code of an invalid token; `none` when valid.
    reason: &'static str,
}

/// `posture_gate_coa_changes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    /// `ack`, `nak`, `timeout`, `error`, `no_nas` (anything else: `other`).
    result: &'static str,
}

/// `posture_gate_tls_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    /// `expired`, `unknown_issuer`, `revoked`, ...
    reason: &'static str,
}

/// `posture_gate_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `ok` or `failed`.
    result: &'static str,
}

struct Metrics {
    tls_refused: Family<ReasonLabel, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    attestations: Family<AttestationLabels, Counter>,
    changes: Family<ChangeLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    /// Seconds from sending a request upstream to its response head.
    upstream_seconds: Histogram,
    /// Refused client certificates left out of the audit log (the same
    /// certificate from the same address within a minute).
    tls_refused_unaudited: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = Metrics {
        tls_refused: Family::default(),
        decisions: Family::default(),
        attestations: Family::default(),
        changes: Family::default(),
        reloads: Family::default(),
        // 1 ms to about 33 s, doubling: an upstream timeout (default 30 s)
        // still lands in a bucket of its own.
        upstream_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        tls_refused_unaudited: Counter::default(),
    };
    // Both results exist from the start, so a rate over reload failures
    // is 0 rather than absent before the first failure.
    for result in ["ok", "failed"] {
        metrics
            .reloads
            .get_or_create_owned(&ReloadLabels { result });
    }
    metrics
});

/// Adds the process's counters to `registry` (they are shared, not
/// copied: a family clone is the same family).
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    registry.register(
        "posture_gate_tls_refused",
        "Client certificates refused and audited (one tls_refused line per certificate and address a minute), by reason",
        m.tls_refused.clone(),
    );
    registry.register(
        "posture_gate_decisions",
        "Decisions of every door, and requests refused before one, by door (enforcement), segment, decision and reason code",
        m.decisions.clone(),
    );
    registry.register(
        "posture_gate_attestations",
        "Attestation tokens verified, by result and the reason an invalid one was refused",
        m.attestations.clone(),
    );
    registry.register(
        "posture_gate_coa_changes",
        "RADIUS CoA or Disconnect requests sent to NASes after an attestation, by result",
        m.changes.clone(),
    );
    registry.register(
        "posture_gate_reloads",
        "Configuration reloads, by result (a failed one keeps the running configuration)",
        m.reloads.clone(),
    );
    registry.register(
        "posture_gate_tls_refused_unaudited",
        "Refused client certificates not written to the audit log because the same certificate from the same address was, less than a minute before",
        m.tls_refused_unaudited.clone(),
    );
    registry.register(
        "posture_gate_upstream_latency_seconds",
        "Time from sending a proxied request to the upstream until its response head",
        m.upstream_seconds.clone(),
    );
}

/// Counts one audit event; called by [`crate::audit::emit`] for every
/// event, before it is written.
pub fn observe(event: &AuditEvent<'_>) {
    let m = &*METRICS;
    match event {
        AuditEvent::Decision(d) => {
            let labels = DecisionLabels {
                enforcement: door(d.enforcement),
                segment: intern(d.segment),
                decision: d.decision.as_str(),
                code: decision_code(d),
            };
            m.decisions.get_or_create_owned(&labels).inc();
        }
        AuditEvent::Refused(r) => {
            let labels = DecisionLabels {
                enforcement: door(r.enforcement),
                segment: r.segment.map_or("none", intern),
                decision: "deny",
                code: r.reason.as_str(),
            };
            m.decisions.get_or_create_owned(&labels).inc();
        }
        AuditEvent::Attestation(a) => {
            let labels = AttestationLabels {
                result: if a.valid { "valid" } else { "invalid" },
                reason: a.reason.map_or("none", |r| r.code()),
            };
            m.attestations.get_or_create_owned(&labels).inc();
        }
        AuditEvent::TlsRefused(t) => {
            // The reason's word, as the audit line writes it.
            let reason = match serde_json::to_value(t.reason) {
                Ok(serde_json::Value::String(word)) => intern(&word),
                _ => "other",
            };
            m.tls_refused
                .get_or_create_owned(&ReasonLabel { reason })
                .inc();
        }
        // Counted by `reload` when the reload is applied.
        AuditEvent::Reload(_) => {}
        AuditEvent::Change(c) => {
            let result = match c.result {
                "ack" => "ack",
                "nak" => "nak",
                "timeout" => "timeout",
                "error" => "error",
                "no_nas" => "no_nas",
                _ => "other",
            };
            m.changes
                .get_or_create_owned(&ChangeLabels { result })
                .inc();
        }
    }
}

/// Counts a refused client certificate whose audit line was left out.
pub fn tls_refused_unaudited() {
    METRICS.tls_refused_unaudited.inc();
}

/// Records how long an upstream took to answer (its response head).
pub fn upstream_latency(elapsed: Duration) {
    METRICS.upstream_seconds.observe(elapsed.as_secs_f64());
}

/// Counts a reload (by signal, file change or the handle).
pub fn reload(ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    METRICS
        .reloads
        .get_or_create_owned(&ReloadLabels { result })
        .inc();
}

/// The code of a decision as a client is told it: the event's reason, or
/// `prohibited` for a warning or denial told by findings or unmet
/// requirements (the event leaves that code out), `none` for a plain allow.
fn decision_code(d: &posture_core::audit::DecisionEvent<'_>) -> &'static str {
    match d.reason {
        Some(code) => code.as_str(),
        None if !d.findings.is_empty() || !d.unmet.is_empty() => {
            posture_core::code::Code::Prohibited.as_str()
        }
        None => "none",
    }
}

fn door(e: posture_core::audit::Enforcement) -> &'static str {
    use posture_core::audit::Enforcement;
    match e {
        Enforcement::Proxy => "proxy",
        Enforcement::ForwardAuth => "forward_auth",
        Enforcement::Nac => "nac",
    }
}

/// Segment names seen so far, each leaked once: they come from the config,
/// so there are few, and a label needs a `'static` name.
static NAMES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());
/// Beyond this many distinct names (a config reloaded with ever new
/// segment names), further ones are counted as `other`, so memory stays
/// bounded.
const MAX_NAMES: usize = 512;

fn intern(name: &str) -> &'static str {
    if let Ok(names) = NAMES.read() {
        if let Some(known) = names.iter().find(|n| **n == name) {
            return known;
        }
    }
    let Ok(mut names) = NAMES.write() else {
        return "other";
    };
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    if names.len() >= MAX_NAMES {
        return "other";
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}
