//! What the gate knows about one connection, fixed at the handshake, and
//! its places under the connection limits. A leaf: the listener makes a
//! [`ConnInfo`], the proxy, the posture endpoints and tunnels read it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderValue;
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::sync::OwnedSemaphorePermit;

use super::headers;
use super::tls::DeviceVerifier;
use posture_core::certificate::{CertProblem, RejectedCert};
use posture_core::device::DeviceIdentity;
use posture_core::enforce::Client;
use posture_core::revocation::{CertId, Revocations};

/// What the gate knows about a connection, fixed at the handshake.
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The validated client certificate's identity, if one was presented.
    pub client: Option<DeviceIdentity>,
    pub client_der: Option<CertificateDer<'static>>,
    /// A certificate that was presented but failed verification (then
    /// `client`, `client_der` and `cert_ids` are empty: the connection is
    /// one without a certificate that gets a page naming the problem).
    pub rejected: Option<Arc<RejectedCert>>,
    /// Issuer and serial of each presented certificate, leaf first, for the
    /// revocation check on every request (see `posture_core::revocation`).
    pub(super) cert_ids: Vec<CertId>,
    /// The TLS server name the client asked for, lowercased.
    pub sni: Option<String>,
    /// This connection's place under `max_connections` and under
    /// `max_connections_per_ip`; an upgraded connection holds the
    /// `ConnInfo` so it keeps counting. `None` for a device behind a
    /// forward-auth proxy: its connection is the proxy's, counted there.
    _slot: Option<Slot>,
    /// The header values the upstream gets about this connection, encoded
    /// once here instead of on every request it carries.
    pub(super) upstream_values: UpstreamValues,
}

/// See [`ConnInfo::upstream_values`]. Cloning a `HeaderValue` shares its
/// bytes, so each request costs no encoding and no copy.
pub(super) struct UpstreamValues {
    pub peer_ip: Option<HeaderValue>,
    /// Fingerprint, subject and organisation of the client certificate.
    pub device: Option<DeviceValues>,
}

pub(super) struct DeviceValues {
    pub fingerprint: HeaderValue,
    pub subject: HeaderValue,
    pub organization: Option<HeaderValue>,
}

impl UpstreamValues {
    fn new(peer: SocketAddr, client: Option<&DeviceIdentity>) -> UpstreamValues {
        UpstreamValues {
            // As the per-address limit and the trusted-proxy check see it: an
            // IPv4 peer on a dual-stack socket is its IPv4 address, not ::ffff:.
            peer_ip: HeaderValue::from_str(&peer.ip().to_canonical().to_string()).ok(),
            device: client.map(|c| DeviceValues {
                fingerprint: headers::encode_value(&c.fingerprint_sha256),
                subject: headers::encode_value(&c.subject),
                organization: c.organization.as_deref().map(headers::encode_value),
            }),
        }
    }
}

/// The connection's identity: only what [`DeviceVerifier::judge`] says of
/// the chain the handshake left. The handshake's verifier lets any
/// certificate through (see the tls module), so `peer_certificates()` alone
/// proves nothing.
pub(super) fn conn_info(
    peer: SocketAddr,
    session: &rustls::ServerConnection,
    devices: &DeviceVerifier,
    slot: Slot,
) -> ConnInfo {
    let chain = session.peer_certificates().unwrap_or_default();
    let verdict = match chain.first() {
        None => Ok(None),
        Some(leaf) => devices.judge(chain, UnixTime::now()).and_then(|()| {
            match DeviceIdentity::from_der(leaf) {
                Ok(identity) => Ok(Some((identity, leaf.clone().into_owned()))),
                // Verified, yet x509-parser cannot read it: not an identity.
                Err(_) => Err(Arc::new(RejectedCert::of(
                    CertProblem::Unreadable,
                    leaf.as_ref(),
                ))),
            }
        }),
    };
    let (client, client_der, rejected) = match verdict {
        Ok(Some((identity, der))) => (Some(identity), Some(der), None),
        Ok(None) => (None, None, None),
        Err(rejected) => (None, None, Some(rejected)),
    };
    // A certificate whose issuer and serial cannot be read cannot be looked
    // up: with CRLs configured that is an unknown status, refused.
    let cert_ids = match &client_der {
        Some(_) => chain.iter().map_while(CertId::of).collect(),
        None => Vec::new(),
    };
    ConnInfo {
        cert_ids,
        upstream_values: UpstreamValues::new(peer, client.as_ref()),
        peer,
        client,
        client_der,
        rejected,
        sni: session.server_name().map(str::to_ascii_lowercase),
        _slot: Some(slot),
    }
}

impl ConnInfo {
    /// A device behind a forward-auth proxy: its address as the proxy
    /// tells it, and the certificate the proxy forwarded, verified by the
    /// gate (see `forward::device`). Nothing is forwarded upstream by the
    /// gate itself, so there are no upstream values.
    pub(super) fn forwarded(
        peer: SocketAddr,
        device: Option<&super::forward::ForwardedCert>,
        rejected: Option<Arc<RejectedCert>>,
    ) -> ConnInfo {
        ConnInfo {
            peer,
            client: device.map(|d| d.identity.clone()),
            client_der: device.map(|d| d.der.clone()),
            rejected: device.is_none().then_some(rejected).flatten(),
            cert_ids: device.map(|d| d.cert_ids.clone()).unwrap_or_default(),
            sni: None,
            _slot: None,
            upstream_values: UpstreamValues {
                peer_ip: None,
                device: None,
            },
        }
    }
}

/// A connection's places under both limits, released together when the
/// connection (or the tunnel it became) ends.
pub(super) struct Slot {
    pub(super) _all: OwnedSemaphorePermit,
    pub(super) _ip: IpSlot,
}

/// Connections held per client address. Touched only at accept and when a
/// connection ends, never per request.
#[derive(Default)]
pub(super) struct PerIp {
    counts: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    pub(super) fn try_acquire(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

pub(super) struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl ConnInfo {
    /// What the enforcement step is told about the client: its identity,
    /// its certificate, and what `revocations` (the current CRLs) say about
    /// it now. Cheap: one hash lookup per presented certificate, none
    /// without a certificate.
    pub(super) fn client(&self, revocations: &Revocations, now: i64) -> Client<'_> {
        let Some(der) = &self.client_der else {
            return Client {
                rejected: self.rejected.as_ref(),
                ..Client::NONE
            };
        };
        Client {
            identity: self.client.as_ref(),
            certificate: Some(der.as_ref()),
            revocation: revocations.status(&self.cert_ids, now),
            rejected: None,
        }
    }
}
