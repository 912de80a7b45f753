//! The audit writer: where the core's typed events ([`posture_core::audit`])
//! go. The binaries install a dedicated [`writer`] (a bounded queue and a
//! thread that writes in batches); without one, as in the library's own
//! tests, an event is a message on the `audit` tracing target. Either way the
//! line reads `<timestamp>  INFO audit: <event JSON>`.

pub mod writer;

use std::time::SystemTime;

use posture_core::audit::AuditEvent;

/// Records one event: through the installed [`writer`], else as a message on
/// the `audit` tracing target. With the writer, the level filter of the
/// other logs (`RUST_LOG`) does not apply: the audit log is never filtered.
pub fn emit(event: &AuditEvent<'_>) {
    crate::metrics::observe(event);
    match writer::installed() {
        Some(writer) => writer.write(SystemTime::now(), event.to_json_bytes()),
        None => tracing::info!(target: "audit", "{}", event.to_json()),
    }
}
