//! The admin listener (`[admin]`, issue 18 point 3): `/metrics`,
//! `/healthz` and `/readyz` in plain HTTP, on a port of its own (the config
//! refuses the public one). It is a side listener like forward-auth's
//! (`forward::listen`: the same connection limit, header and idle timeouts),
//! with its own `max_connections` (default 16) so a flood of scrapes cannot
//! take places from devices, nor devices from the health check.
//!
//! - `/metrics`: OpenMetrics 1.0 text (`prometheus-client`'s encoder, ending
//!   `# EOF`), served as `application/openmetrics-text; version=1.0.0`,
//!   which Prometheus asks for first in its `Accept` and parses as such.
//!   The counters are the process's ([`crate::metrics`]); the readings of
//!   this gate (open connections per listener, postures held, posture
//!   lookups, days until the gate's own certificate and each CRL expire)
//!   are taken at the scrape, from the configuration serving then.
//! - `/healthz`: 200 `ok` while the process answers at all.
//! - `/readyz`: 200 when every check passes, else 503; one line per check,
//!   `<check>: ok` or `<check>: <why not>`: `config` (a configuration is
//!   serving), `listeners` (the gate's listeners accept), `store` (the
//!   posture store answers, as `/.well-known/posture-gate/ready`), `audit`
//!   (an audit writer is installed: until the audit writer tells its own
//!   health, that is all this process knows of it).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::respond::{page_response, Body};
use super::Shared;

pub const METRICS_PATH: &str = "/metrics";
pub const HEALTHZ_PATH: &str = "/healthz";
pub const READYZ_PATH: &str = "/readyz";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
/// The longest `/readyz` waits for the store before calling it down.
const STORE_CHECK: Duration = Duration::from_secs(2);

/// Set by the binary once its audit writer runs; the readiness check
/// `audit` reads it. (To be replaced by the audit writer's own health.)
static AUDIT_WRITER: AtomicBool = AtomicBool::new(false);

/// Tells readiness that an audit writer is installed and running.
pub fn note_audit_writer_installed() {
    AUDIT_WRITER.store(true, Ordering::Relaxed);
}

/// One listener's connection limit, for the open-connections gauge.
#[derive(Clone)]
pub(super) struct OpenConnections {
    /// `front`, `forward_auth`, `nac` or `admin`.
    pub listener: &'static str,
    pub limit: Arc<Semaphore>,
    pub max: usize,
}

impl OpenConnections {
    fn open(&self) -> i64 {
        i64::try_from(self.max.saturating_sub(self.limit.available_permits())).unwrap_or(i64::MAX)
    }
}

pub(super) async fn handle(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Body> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match (req.uri().path(), get) {
        (METRICS_PATH, true) => metrics(shared),
        (HEALTHZ_PATH, true) => page_response(StatusCode::OK, TEXT, Bytes::from_static(b"ok\n")),
        (READYZ_PATH, true) => ready(shared).await,
        (METRICS_PATH | HEALTHZ_PATH | READYZ_PATH, false) => {
            let mut response = page_response(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                Bytes::from_static(b"only GET\n"),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => page_response(
            StatusCode::NOT_FOUND,
            TEXT,
            Bytes::from_static(b"not found: /metrics, /healthz, /readyz\n"),
        ),
    }
}

fn metrics(shared: &Arc<Shared>) -> Response<Body> {
    let mut registry = Registry::default();
    crate::metrics::register(&mut registry);
    registry.register_collector(Box::new(Readings {
        shared: shared.clone(),
    }));
    let mut text = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!("cannot encode the metrics: {e}");
        return page_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            Bytes::from_static(b"cannot encode the metrics\n"),
        );
    }
    page_response(StatusCode::OK, OPENMETRICS, Bytes::from(text))
}

async fn ready(shared: &Arc<Shared>) -> Response<Body> {
    let mut checks: Vec<(&str, Result<(), String>)> = Vec::with_capacity(4);
    // A gate without a configuration does not exist (bind refuses), so this
    // names the one serving rather than ever failing today.
    checks.push(("config", Ok(())));
    let serving = shared.serving.load(Ordering::Relaxed) && !*shared.shutdown.borrow();
    checks.push((
        "listeners",
        if serving {
            Ok(())
        } else {
            Err("not accepting connections (starting or shutting down)".into())
        },
    ));
    let store = match tokio::time::timeout(STORE_CHECK, shared.postures.ready()).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {STORE_CHECK:?}")),
    };
    checks.push(("store", store));
    let health = shared.audit.health();
    checks.push((
        "audit",
        if !AUDIT_WRITER.load(Ordering::Relaxed) {
            Err("no audit writer is installed".into())
        } else if health.failing {
            Err(format!(
                "the audit log cannot be written now ({} write errors, {} lines queued of {}); \
                 on_audit_failure applies",
                health.write_errors, health.queue_depth, health.queue_capacity
            ))
        } else {
            Ok(())
        },
    ));
    let mut body = String::new();
    let mut all = true;
    for (name, result) in &checks {
        match result {
            Ok(()) => {
                let _ = writeln!(body, "{name}: ok");
            }
            Err(why) => {
                all = false;
                // One line per check, whatever the reason says.
                let why = why.replace(['\n', '\r'], " ");
                let _ = writeln!(body, "{name}: {why}");
            }
        }
    }
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    page_response(status, TEXT, Bytes::from(body))
}

/// What is read at each scrape rather than counted.
#[derive(Debug)]
struct Readings {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrlLabel {
    /// The file the CRL was read from.
    file: String,
    /// The CRL's issuer (RFC 4514).
    issuer: String,
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shared = &self.shared;
        {
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(
                "posture_gate_open_connections",
                "Connections open now, by listener",
                None,
                gauge.metric_type(),
            )?;
            for l in &shared.open {
                let labels = ListenerLabel {
                    listener: l.listener,
                };
                ConstGauge::new(l.open()).encode(family.encode_family(&labels)?)?;
            }
        }
        let postures = i64::try_from(shared.postures.count()).unwrap_or(i64::MAX);
        let gauge = ConstGauge::new(postures);
        gauge.encode(encoder.encode_descriptor(
            "posture_gate_postures",
            "Device postures held in this process (the memory store, or Redis' near cache)",
            None,
            gauge.metric_type(),
        )?)?;
        {
            let lookups = &crate::store::LOOKUPS;
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "posture_gate_posture_lookups",
                "Posture lookups by result: hit (a remembered posture), miss (none), error (store unreachable)",
                None,
                counter.metric_type(),
            )?;
            for (result, n) in [
                ("hit", &lookups.hits),
                ("miss", &lookups.misses),
                ("error", &lookups.errors),
            ] {
                ConstCounter::new(n.load(Ordering::Relaxed))
                    .encode(family.encode_family(&ResultLabel { result })?)?;
            }
        }
        let up = ConstGauge::new(i64::from(shared.postures.is_up()));
        up.encode(encoder.encode_descriptor(
            "posture_gate_store_up",
            "1 when the posture store answered its last call (always 1 for the memory store)",
            None,
            up.metric_type(),
        )?)?;
        let live = shared.live.load();
        let now = crate::gate::unix_now();
        if let Some(not_after) = live
            .settings
            .cert_chain
            .first()
            .and_then(|der| X509Certificate::from_der(der.as_ref()).ok())
            .map(|(_, cert)| cert.validity().not_after.timestamp())
        {
            let gauge = ConstGauge::new(days(not_after - now));
            gauge.encode(encoder.encode_descriptor(
                "posture_gate_certificate_expiry_days",
                "Days until the gate's own TLS certificate expires (negative: expired)",
                None,
                gauge.metric_type(),
            )?)?;
        }
        let crls = crl_expiry(&live.settings, now);
        if !crls.is_empty() {
            let gauge = ConstGauge::new(0.0f64);
            let mut family = encoder.encode_descriptor(
                "posture_gate_crl_next_update_days",
                "Days until each CRL's nextUpdate (negative: out of date, and devices it covers are refused)",
                None,
                gauge.metric_type(),
            )?;
            for (labels, days) in &crls {
                ConstGauge::new(*days).encode(family.encode_family(labels)?)?;
            }
        }
        let gauge = ConstGauge::new(i64::from(AUDIT_WRITER.load(Ordering::Relaxed)));
        gauge.encode(encoder.encode_descriptor(
            "posture_gate_audit_writer_installed",
            "1 when the audit writer runs (audit lines go to it), else 0",
            None,
            gauge.metric_type(),
        )?)?;
        let health = shared.audit.health();
        for (name, help, value) in [
            (
                "posture_gate_audit_queue_depth",
                "Audit lines queued and not yet written",
                health.queue_depth as i64,
            ),
            (
                "posture_gate_audit_failing",
                "1 while the audit log cannot be written (on_audit_failure applies)",
                i64::from(health.failing),
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        for (name, help, value) in [
            (
                "posture_gate_audit_lost",
                "Audit lines not recorded: of requests admitted anyway (allow) and of events that admit no one",
                health.lost,
            ),
            (
                "posture_gate_audit_refused",
                "Requests refused (503) because their audit line could not be recorded (deny)",
                health.refused,
            ),
            (
                "posture_gate_audit_write_errors",
                "Failed writes of the audit log (each retried)",
                health.write_errors,
            ),
            (
                "posture_gate_audit_written",
                "Audit lines written",
                health.written,
            ),
            (
                "posture_gate_audit_writes",
                "Batches of audit lines written (each synced by the fsync policy)",
                health.writes,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        let seconds = ConstCounter::new(health.write_seconds);
        seconds.encode(encoder.encode_descriptor(
            "posture_gate_audit_write_seconds",
            "Seconds spent writing (and syncing) audit batches; divided by posture_gate_audit_writes_total, the mean write latency",
            None,
            seconds.metric_type(),
        )?)?;
        let last = ConstGauge::new(health.last_write_seconds);
        last.encode(encoder.encode_descriptor(
            "posture_gate_audit_last_write_seconds",
            "Seconds the last audit batch took to write (and sync)",
            None,
            last.metric_type(),
        )?)?;
        Ok(())
    }
}

fn days(seconds: i64) -> f64 {
    // Whole seconds, as a fraction of a day; precise enough for alerts.
    seconds as f64 / 86_400.0
}

/// Days until the nextUpdate of each CRL, by file and issuer; a CRL
/// without a nextUpdate is never out of date by its own word and is left
/// out.
fn crl_expiry(
    settings: &posture_core::config::snapshot::ServerSettings,
    now: i64,
) -> Vec<(CrlLabel, f64)> {
    settings
        .crl_validity
        .iter()
        .filter_map(|crl| {
            let next = crl.next_update?;
            let label = CrlLabel {
                file: crl.file.display().to_string(),
                issuer: crl.issuer.clone(),
            };
            Some((label, days(next - now)))
        })
        .collect()
}
