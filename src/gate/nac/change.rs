//! What an attestation means for 802.1X: the gate learns the device's
//! certificate by issuer and serial (so RADIUS can name it), and, when the
//! VLAN its new posture allows differs from the one a NAS gave one of its
//! sessions, tells that NAS (RFC 5176): a CoA-Request with the new VLAN or
//! a Disconnect-Request, as `[[nac.nas]] change` says, with that NAS's
//! secret, sent up to [`ATTEMPTS`] times. This runs in a task of its own:
//! the attestation's answer never waits for a NAS. Each request sent (or
//! not sendable) is one audit event (`"event": "change"`).

use std::sync::Arc;
use std::time::Duration;

use super::super::{Live, Shared};
use crate::radius::coa::{self, Change, CoaError, Outcome};
use posture_core::audit::{AuditEvent, ChangeEvent};
use posture_core::config::model::NasChange;
use posture_core::config::snapshot::{NacSettings, Nas};
use posture_core::decision::{self, Outcome as Decided, Posture};
use posture_core::device::DeviceIdentity;
use posture_core::nac::{pending_key, vlan_segments, CertKey, NasSession};
use posture_core::revocation::CertId;
use posture_core::store::NacStore;

/// How long the gate remembers which certificate has which issuer and
/// serial, after its last attestation.
const KNOWN_FOR: i64 = 30 * 24 * 3600;
/// Transmissions of one request before the NAS is given up on.
const ATTEMPTS: u32 = 3;
/// How long each transmission waits for the answer (RFC 5176 leaves it to
/// the client; RADIUS clients commonly wait 1-5 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// After an attestation of `identity` (certificate `der`) that was
/// remembered: learn its issuer and serial, and change its sessions' VLAN.
pub(in crate::gate) async fn after_attestation(
    shared: &Arc<Shared>,
    live: &Arc<Live>,
    identity: &DeviceIdentity,
    der: &[u8],
    posture: &Arc<Posture>,
    now: i64,
) {
    let Some(settings) = live.settings.nac.as_ref() else {
        return;
    };
    let Some(id) = CertId::of(&rustls_pki_types::CertificateDer::from(der)) else {
        return;
    };
    // Awaited: a RADIUS request right after the attestation must find it.
    let key = CertKey::of(&id);
    if let Err(e) = shared.nac.learn(&key, identity, now + KNOWN_FOR).await {
        tracing::warn!(
            device = identity.fingerprint_sha256,
            "802.1X cannot learn this certificate: {e}"
        );
    }
    adopt_pending(shared, &key, identity, now).await;
    let vlan = allowed_vlan(live, settings, identity, posture, now);
    // One device's changes go out one at a time, in the order of its
    // attestations, and only the newest is acted on: otherwise a clean
    // report's CoA still being retransmitted could land after a Kaspersky
    // report's (which saw the old VLAN recorded and sent nothing).
    let lane = shared.nac_lanes.of(&identity.fingerprint);
    let generation = lane.newer();
    let (shared, identity) = (shared.clone(), identity.clone());
    let settings = settings.clone();
    tokio::spawn(async move {
        let _turn = lane.turn.lock().await;
        if !lane.is_newest(generation) {
            // A later attestation of this device decides.
            return;
        }
        let sessions = match shared.nac.sessions(&identity.fingerprint, now).await {
            Ok(sessions) => sessions,
            Err(e) => {
                tracing::warn!(
                    device = identity.fingerprint_sha256,
                    "802.1X sessions unreadable, no CoA: {e}"
                );
                return;
            }
        };
        for session in sessions.into_iter().filter(|s| s.vlan != vlan) {
            tell(&shared, &settings, &identity, session, vlan).await;
        }
    });
}

/// The VLAN this posture allows now: the most sensitive segment with a
/// VLAN it may enter, else the quarantine VLAN (`None`: reject). The same
/// order as post-auth's `enforce::place`; the device has just attested,
/// so its certificate is not refused.
fn allowed_vlan(
    live: &Live,
    settings: &NacSettings,
    identity: &DeviceIdentity,
    posture: &Posture,
    now: i64,
) -> Option<u16> {
    let snapshot = &live.snapshot;
    vlan_segments(snapshot)
        .into_iter()
        .find(|&segment| {
            !matches!(
                decision::decide(snapshot, Some(identity), Some(posture), segment, now),
                Decided::Deny(_)
            )
        })
        .and_then(|segment| snapshot.segments[segment].vlan)
        .or(settings.quarantine_vlan)
}

/// Sends one session's NAS the change, records the new VLAN on an ACK,
/// and audits the result.
async fn tell(
    shared: &Shared,
    settings: &NacSettings,
    identity: &DeviceIdentity,
    session: NasSession,
    vlan: Option<u16>,
) {
    let nas = settings.nas.iter().find(|n| n.address == session.nas);
    let change = nas.map_or(NasChange::Coa, |n| n.change);
    let (result, error_cause, attempts) = match nas {
        None => {
            tracing::warn!(
                nas = %session.nas,
                device = identity.fingerprint_sha256,
                "no [[nac.nas]] has this NAS's address: its session cannot be told of the new VLAN"
            );
            ("no_nas", None, None)
        }
        Some(nas) => match send(nas, &session, vlan).await {
            Ok(Outcome::Ack) => {
                let updated = NasSession {
                    vlan,
                    ..session.clone()
                };
                let until = decision::unix_now() + 24 * 3600;
                if let Err(e) = shared
                    .nac
                    .put_session(&identity.fingerprint, updated, until)
                    .await
                {
                    tracing::warn!(
                        nas = nas.name,
                        "the changed session could not be recorded: {e}"
                    );
                }
                ("ack", None, None)
            }
            Ok(Outcome::Nak { error_cause }) => ("nak", error_cause, None),
            Err(CoaError::Timeout { attempts }) => ("timeout", None, Some(attempts)),
            Err(e) => {
                tracing::warn!(nas = nas.name, "CoA not sent: {e}");
                ("error", None, None)
            }
        },
    };
    shared.audit.emit_detached(&AuditEvent::Change(ChangeEvent {
        device: identity.into(),
        nas: nas.map(|n| n.name.as_str()),
        nas_address: session.nas,
        acct_session_id: session.acct_session_id.as_deref(),
        calling_station_id: session.calling_station_id.as_deref(),
        change,
        vlan_before: session.vlan,
        vlan_after: vlan,
        result,
        error_cause,
        attempts,
    }));
}

async fn send(nas: &Nas, session: &NasSession, vlan: Option<u16>) -> Result<Outcome, CoaError> {
    let change = match (nas.change, vlan) {
        (NasChange::Coa, Some(vlan)) => Change::Coa { vlan: Some(vlan) },
        // No VLAN to move to (a reject): only a disconnect ends the session.
        (NasChange::Coa, None) | (NasChange::Disconnect, _) => Change::Disconnect,
    };
    let target = coa::Nas {
        name: nas.name.clone(),
        addr: nas.coa,
        secret: nas.secret.to_vec(),
    };
    let session = coa::Session {
        user_name: session.user_name.clone(),
        acct_session_id: session.acct_session_id.clone(),
        calling_station_id: session.calling_station_id.clone(),
        nas_ip: Some(session.nas),
        nas_port: session.nas_port,
    };
    coa::send(&target, &change, &session, ATTEMPTS, ANSWER_WITHIN).await
}

/// The sessions this certificate had before it ever attested (quarantined
/// as unknown) become the device's, so the change below reaches them too.
async fn adopt_pending(shared: &Shared, key: &CertKey, identity: &DeviceIdentity, now: i64) {
    let pending = pending_key(key);
    let Ok(waiting) = shared.nac.sessions(&pending, now).await else {
        return;
    };
    for session in waiting {
        let until = now + 24 * 3600;
        let moved = shared
            .nac
            .put_session(&identity.fingerprint, session.clone(), until)
            .await;
        if moved.is_ok() {
            let _ = shared.nac.end_session(&pending, &session).await;
        }
    }
}

/// The order of one device's changes: see `after_attestation`.
pub(in crate::gate) struct Lane {
    generation: std::sync::atomic::AtomicU64,
    turn: tokio::sync::Mutex<()>,
}

impl Lane {
    /// A new change for this device: its generation.
    fn newer(&self) -> u64 {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    fn is_newest(&self, generation: u64) -> bool {
        self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation
    }
}

/// The lanes of the devices that attested lately; a lane outlives any
/// change in flight (at most `ATTEMPTS` x `ANSWER_WITHIN` per session) by
/// far, and an evicted one is only dropped once its tasks are done.
pub(in crate::gate) struct Lanes(moka::sync::Cache<posture_core::store::Fingerprint, Arc<Lane>>);

impl Default for Lanes {
    fn default() -> Self {
        Lanes(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
        )
    }
}

impl Lanes {
    fn of(&self, fingerprint: &posture_core::store::Fingerprint) -> Arc<Lane> {
        self.0.get_with(*fingerprint, || {
            Arc::new(Lane {
                generation: std::sync::atomic::AtomicU64::new(0),
                turn: tokio::sync::Mutex::new(()),
            })
        })
    }
}
