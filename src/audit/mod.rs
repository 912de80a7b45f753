//! The audit log: where the core's typed events ([`posture_core::audit`])
//! go, one JSON object per line (schema 1):
//!
//! ```text
//! {"schema":1,"time":"2026-11-30T10:44:31.123456+00:00","event":"decision",...}
//! ```
//!
//! `schema` first, `time` second (RFC 3339, UTC, microseconds), then the
//! event as the core serialises it. Each gate has one [`Audit`], built from
//! `[audit]` at bind and fixed until restart (a reload reopens the file, see
//! [`Audit::reopen`]): a bounded queue and a writer thread ([`writer`]) in
//! front of a file, standard output or syslog. Diagnostics (tracing) never
//! go there.
//!
//! ## Lossless by construction
//! An event is queued or it is not; nothing is dropped once queued. When
//! the queue is full (the disk stalls or is full, and the writer keeps
//! retrying the batch it holds), the request that emits waits, as a tokio
//! task (no worker thread is blocked, so health checks and requests that
//! need no line go on), for at most `max_wait`. Then `on_audit_failure`:
//! `deny` refuses the request with a 503 (`audit_unavailable`) and nothing
//! is admitted; `allow` admits it and counts the line as lost. Every door
//! that decides asks [`Audit::emit`] (or, for the reverse proxy,
//! [`Audit::reserve`]) before it admits, and refuses when
//! [`Audit::refuses`] says so.
//!
//! ## The reverse proxy's access log
//! A proxied request's decision line also carries `method`, `path`,
//! `status`, `bytes` and `latency_ms`, written once the response body is
//! done. The queue slot is reserved before the judgement ([`Audit::reserve`],
//! one atomic operation when there is room), so a request is never admitted
//! without room for its line. The event is serialised once, at the decision,
//! into the one buffer the line is sent in, with its closing brace left off
//! ([`Pending`]); the response body counts bytes and, when it is dropped,
//! appends the five fields and sends the buffer through the reserved slot:
//! no second allocation, no lock, no wait at the end.
//!
//! ## Health
//! [`Audit::health`] (also `GateHandle::audit_health`) gives the queue
//! depth, lost and refused lines, write errors and whether the log is
//! failing now, for `/readyz` and `/metrics`.
//!
//! Without a configured output, in the library's own tests, `stdout` means
//! the `audit` tracing target (so `posture_testkit::audit::capture` sees the
//! lines); the binary calls [`use_stdout`] so that it means standard output.

pub mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use posture_core::audit::AuditEvent;
use posture_core::config::snapshot::{AuditOutput, AuditSettings, OnAuditFailure};

use writer::Message;

static STDOUT: AtomicBool = AtomicBool::new(false);

/// Makes `output = "stdout"` (the default) write to standard output; the
/// binary calls it. Without it, as in the library's tests, those lines go
/// to the `audit` tracing target.
pub fn use_stdout() {
    STDOUT.store(true, Ordering::Relaxed);
}

/// Counters shared by the emitting side and the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Lines not recorded and their request admitted anyway (`allow`).
    lost: AtomicU64,
    /// Requests refused because their line could not be queued (`deny`).
    refused: AtomicU64,
    /// Failed writes (each retried).
    write_errors: AtomicU64,
    /// Lines written.
    written: AtomicU64,
    /// Batches written (each with its fsync, by the policy).
    pub(crate) writes: AtomicU64,
    /// Microseconds spent writing (and syncing) them, in all.
    pub(crate) write_micros: AtomicU64,
    /// Microseconds the last batch took.
    pub(crate) last_write_micros: AtomicU64,
    /// The writer's last write failed and it is retrying.
    writer_failing: AtomicBool,
    /// The last emit found no room in time.
    queue_failing: AtomicBool,
}

/// The state of the audit log, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditHealth {
    /// Lines queued and not yet written.
    pub queue_depth: usize,
    /// `queue_lines`.
    pub queue_capacity: usize,
    /// Lines that could not be queued in `max_wait`: of requests admitted
    /// anyway (`on_audit_failure = "allow"`), and of events that admit no
    /// one (refusals, refused handshakes, reloads, CoA), whatever the
    /// policy.
    pub lost: u64,
    /// Requests refused with 503 because their line could not be queued
    /// (`on_audit_failure = "deny"`).
    pub refused: u64,
    /// Writes that failed (each is retried; nothing queued is dropped).
    pub write_errors: u64,
    /// Lines written to the output.
    pub written: u64,
    /// Batches written.
    pub writes: u64,
    /// Seconds spent writing (and syncing) batches, in all: with `writes`,
    /// the mean write latency.
    pub write_seconds: f64,
    /// Seconds the last batch took to write (and sync).
    pub last_write_seconds: f64,
    /// The output cannot be written now, or the last emit found the queue
    /// full: `on_audit_failure` is applying.
    pub failing: bool,
    /// `on_audit_failure = "deny"`.
    pub denies: bool,
}

/// One gate's audit log; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    sink: Sink,
    max_wait: std::time::Duration,
    on_failure: OnAuditFailure,
    stats: Arc<Stats>,
}

#[derive(Clone)]
enum Sink {
    /// The `audit` tracing target (library tests).
    Tracing,
    Queue {
        tx: mpsc::Sender<Message>,
        capacity: usize,
    },
}

/// A slot in the queue, taken before a decision (see the module docs).
pub enum Reservation {
    /// Room for one line.
    Slot(mpsc::OwnedPermit<Message>),
    /// No writer: the line goes to tracing.
    Tracing,
    /// No room in time, and `on_audit_failure = "allow"`: counted lost.
    Lost,
    /// No room in time, and `on_audit_failure = "deny"`: refuse.
    Refused,
}

impl Reservation {
    /// Sends `event` through the slot (at once, never waiting); a `Lost`
    /// or `Refused` reservation has nowhere to send it.
    pub fn send(self, event: &AuditEvent<'_>) {
        let at = SystemTime::now();
        let json = serialise(event);
        match self {
            Reservation::Slot(permit) => {
                permit.send(Message::Line(at, json));
            }
            Reservation::Tracing => tracing_line(at, &json),
            Reservation::Lost | Reservation::Refused => {}
        }
    }
}

impl Audit {
    /// Starts the writer for `settings`.
    pub fn start(settings: &AuditSettings) -> std::io::Result<Audit> {
        let stats = Arc::new(Stats::default());
        let sink = if settings.output == AuditOutput::Stdout && !STDOUT.load(Ordering::Relaxed) {
            Sink::Tracing
        } else {
            let tx = writer::start(settings, stats.clone())?;
            Sink::Queue {
                tx,
                capacity: settings.queue_lines,
            }
        };
        Ok(Audit {
            sink,
            max_wait: settings.max_wait,
            on_failure: settings.on_failure,
            stats,
        })
    }

    /// Records one event: true once it is queued (the writer will write
    /// it, retrying until it can). False: not in `max_wait`; counted as
    /// lost or refused by `on_audit_failure` (see [`Audit::refuses`]).
    pub async fn emit(&self, event: &AuditEvent<'_>) -> bool {
        let recorded = self.queue(event).await;
        self.note(recorded);
        recorded
    }

    /// Records an event that admits no one (a refused handshake, a
    /// reload): as [`Audit::emit`], but a line that cannot be queued is
    /// counted as lost whatever `on_audit_failure` says, since there is
    /// nothing to refuse.
    pub async fn emit_record(&self, event: &AuditEvent<'_>) -> bool {
        let recorded = self.queue(event).await;
        self.note_record(recorded);
        recorded
    }

    async fn queue(&self, event: &AuditEvent<'_>) -> bool {
        let at = SystemTime::now();
        match &self.sink {
            Sink::Tracing => {
                tracing_line(at, &serialise(event));
                true
            }
            Sink::Queue { tx, .. } => {
                let message = Message::Line(at, serialise(event));
                let sent = match tx.try_send(message) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(message)) => {
                        tx.send_timeout(message, self.max_wait).await.is_ok()
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                };
                sent
            }
        }
    }

    /// Records an event that admits nothing (a refusal, a CoA sent), from
    /// code that cannot wait: queued at once when there is room, else by a
    /// task that waits `max_wait` like [`Audit::emit`] (and counts a line it
    /// could not queue).
    pub fn emit_detached(&self, event: &AuditEvent<'_>) {
        let at = SystemTime::now();
        match &self.sink {
            Sink::Tracing => tracing_line(at, &serialise(event)),
            Sink::Queue { tx, .. } => {
                let message = Message::Line(at, serialise(event));
                match tx.try_send(message) {
                    Ok(()) => self.note_record(true),
                    Err(mpsc::error::TrySendError::Full(message)) => {
                        let audit = self.clone();
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let sent = tx.send_timeout(message, audit.max_wait).await.is_ok();
                            audit.note_record(sent);
                        });
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => self.note_record(false),
                }
            }
        }
    }

    /// Whether a request whose line was not recorded must be refused
    /// (`on_audit_failure = "deny"`).
    pub fn refuses(&self) -> bool {
        self.on_failure == OnAuditFailure::Deny
    }

    /// Takes a slot for a line written later ([`Pending`]), waiting for
    /// room at most `max_wait`.
    pub async fn reserve(&self) -> Reservation {
        let Sink::Queue { tx, .. } = &self.sink else {
            return Reservation::Tracing;
        };
        let permit = match tx.clone().try_reserve_owned() {
            Ok(permit) => Some(permit),
            Err(mpsc::error::TrySendError::Full(tx)) => {
                match tokio::time::timeout(self.max_wait, tx.reserve_owned()).await {
                    Ok(Ok(permit)) => Some(permit),
                    _ => None,
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        };
        self.note(permit.is_some());
        match permit {
            Some(permit) => Reservation::Slot(permit),
            None if self.refuses() => Reservation::Refused,
            None => Reservation::Lost,
        }
    }

    fn note_record(&self, recorded: bool) {
        self.stats.queue_failing.store(!recorded, Ordering::Relaxed);
        if !recorded {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn note(&self, recorded: bool) {
        self.stats.queue_failing.store(!recorded, Ordering::Relaxed);
        if !recorded {
            let counter = match self.on_failure {
                OnAuditFailure::Deny => &self.stats.refused,
                OnAuditFailure::Allow => &self.stats.lost,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes and opens the file again (after logrotate moved it), once
    /// every line queued before has been written. Not waited for.
    pub fn reopen(&self) {
        if let Sink::Queue { tx, .. } = &self.sink {
            // A full queue: the reopen waits in a task of its own.
            if let Err(mpsc::error::TrySendError::Full(m)) = tx.try_send(Message::Reopen) {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(m).await;
                });
            }
        }
    }

    /// Waits until every line queued so far is written, at most `timeout`.
    pub async fn flush(&self, timeout: std::time::Duration) -> bool {
        let Sink::Queue { tx, .. } = &self.sink else {
            return true;
        };
        let (ack, done) = tokio::sync::oneshot::channel();
        tokio::time::timeout(timeout, async {
            tx.send(Message::Flush(ack)).await.is_ok() && done.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// The state of the log now.
    pub fn health(&self) -> AuditHealth {
        let (queue_depth, queue_capacity) = match &self.sink {
            Sink::Tracing => (0, 0),
            Sink::Queue { tx, capacity } => (capacity.saturating_sub(tx.capacity()), *capacity),
        };
        let s = &self.stats;
        AuditHealth {
            queue_depth,
            queue_capacity,
            lost: s.lost.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            writes: s.writes.load(Ordering::Relaxed),
            write_seconds: s.write_micros.load(Ordering::Relaxed) as f64 / 1e6,
            last_write_seconds: s.last_write_micros.load(Ordering::Relaxed) as f64 / 1e6,
            failing: s.writer_failing.load(Ordering::Relaxed)
                || s.queue_failing.load(Ordering::Relaxed),
            denies: self.refuses(),
        }
    }
}

/// The one entry point of every door: [`Audit::emit`].
pub async fn emit(audit: &Audit, event: &AuditEvent<'_>) -> bool {
    audit.emit(event).await
}

/// A proxied request's decision line, waiting for its response to finish
/// (see the module docs).
pub struct Pending {
    slot: Option<mpsc::OwnedPermit<Message>>,
    at: SystemTime,
    start: Instant,
    /// The event with `method` and `path`, without its closing brace.
    json: Vec<u8>,
    status: u16,
    bytes: u64,
}

impl Pending {
    /// `reservation` must be a `Slot` or `Tracing` (`Lost` makes a line
    /// that is never sent). `start`: when the request head arrived.
    pub fn new(
        reservation: Reservation,
        event: &AuditEvent<'_>,
        method: &str,
        path: &str,
        start: Instant,
    ) -> Pending {
        let at = SystemTime::now();
        let mut json = serialise(event);
        let slot = match reservation {
            Reservation::Slot(permit) => Some(permit),
            Reservation::Tracing => None,
            // Nowhere to send it: counted lost already.
            Reservation::Lost | Reservation::Refused => {
                json.clear();
                None
            }
        };
        if json.last() == Some(&b'}') {
            json.pop();
            json.extend_from_slice(b",\"method\":");
            push_json_str(&mut json, method);
            json.extend_from_slice(b",\"path\":");
            push_json_str(&mut json, path);
        } else {
            json.clear();
        }
        Pending {
            slot,
            at,
            start,
            json,
            status: 0,
            bytes: 0,
        }
    }

    /// The response's status.
    pub fn status(&mut self, status: u16) {
        self.status = status;
    }

    /// Bytes of response body sent.
    pub fn count(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.json.is_empty() {
            return;
        }
        let mut json = std::mem::take(&mut self.json);
        let latency = self.start.elapsed().as_secs_f64() * 1000.0;
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(
            json,
            ",\"status\":{},\"bytes\":{},\"latency_ms\":{:.3}}}",
            self.status, self.bytes, latency
        );
        match self.slot.take() {
            Some(permit) => {
                permit.send(Message::Line(self.at, json));
            }
            None => tracing_line(self.at, &json),
        }
    }
}

/// Every event of every door passes through here, once, on its way to
/// the log: the one place to observe them all (metrics).
fn serialise(event: &AuditEvent<'_>) -> Vec<u8> {
    // Every event of every door passes here once: the metrics count it.
    crate::metrics::observe(event);
    event.to_json_bytes()
}

/// `s` as a JSON string.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly as the rest of the line.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

fn tracing_line(at: SystemTime, json: &[u8]) {
    let mut line = Vec::with_capacity(json.len() + 64);
    writer::append_line(&mut line, at, json);
    line.pop();
    tracing::info!(target: "audit", "{}", String::from_utf8_lossy(&line));
}
