//! systemd's `Type=notify` protocol (sd_notify(3)): `READY=1` once every
//! listener is bound and the gate accepts, `RELOADING=1` with
//! `MONOTONIC_USEC` when a reload starts (systemd 253 and later fail the
//! reload without the timestamp) and `READY=1` again when it is done
//! (applied or refused: either way the gate serves), `STOPPING=1` at
//! shutdown. Without `NOTIFY_SOCKET` (not under systemd) each is a no-op.

use sd_notify::NotifyState;

pub(super) fn ready() {
    send(&[NotifyState::Ready]);
}

pub(super) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        // Without the clock, RELOADING=1 alone would fail the reload on a
        // recent systemd; say nothing and let the reload be a plain one.
        Err(e) => tracing::debug!("no monotonic clock for RELOADING=1: {e}"),
    }
}

pub(super) fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}
