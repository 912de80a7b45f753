//! `[nac]`: the 802.1X decision API for RADIUS servers and the NASes it
//! sends CoA to. The listener follows the rules of `[forward_auth]`; the
//! NAS secrets come from files, never from the config itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::super::files;
use super::super::model::{NacConfig, SegmentConfig};
use super::super::snapshot::{ForwardAuthListen, NacSettings, Nas};
use super::{Context, VLAN_RANGE};

impl Context<'_> {
    pub(super) fn nac(
        &mut self,
        n: &NacConfig,
        segments: &[SegmentConfig],
        client_cas: &[rustls_pki_types::CertificateDer<'static>],
    ) -> NacSettings {
        // FreeRADIUS names a device certificate's issuer by its name alone:
        // two client CAs with one name would make one CA's serial 5 the
        // other's.
        if let Some(name) = crate::nac::Issuers::duplicate_name(client_cas) {
            self.c.at(
                n.listen.span(),
                format!(
                    "two certificates of client_ca have the name {name}: 802.1X names a \
                     device certificate by its issuer's name and serial, so it could not tell \
                     their devices apart; give each CA its own name"
                ),
            );
        }
        let listen = self.forward_auth_listen(&n.listen);
        let tls = self.side_tls(
            n.listen.span(),
            [&n.tls_certificate, &n.tls_key, &n.radius_ca],
            "radius_ca",
        );
        if let (Some(ForwardAuthListen::Tcp(addr)), None) = (&listen, &tls) {
            if !addr.ip().is_loopback() {
                self.c.at(
                    n.listen.span(),
                    format!(
                        "the NAC API on {addr} would be plain HTTP beyond this machine: listen on a \
                         loopback address or a unix: socket, or give tls_certificate, tls_key and \
                         radius_ca for mutual TLS with the RADIUS servers"
                    ),
                );
            }
        }
        let unix = matches!(listen, Some(ForwardAuthListen::Unix(_)));
        if unix && tls.is_some() {
            self.c.at(
                n.listen.span(),
                "a unix: socket is not spoken to over TLS: leave out tls_certificate, tls_key and radius_ca",
            );
        }
        if *n.max_connections.get_ref() == 0 {
            self.c.at(
                n.max_connections.span(),
                "max_connections must be more than 0",
            );
        }
        if n.radius.is_empty() {
            self.c.at(
                n.listen.span(),
                "[nac] needs at least one [[nac.radius]]: nobody else may ask",
            );
        }
        if unix && n.radius.len() > 1 {
            self.c.at(
                n.radius[1].name.span(),
                "a unix: socket cannot tell RADIUS servers apart: give it exactly one [[nac.radius]]",
            );
        }
        let radius = n
            .radius
            .iter()
            .map(|r| self.trusted_peer(&r.name, &r.from, &r.certificate_name, unix, tls.is_some()))
            .collect();
        if let Some(q) = &n.quarantine_vlan {
            if !VLAN_RANGE.contains(q.get_ref()) {
                self.c.at(
                    q.span(),
                    format!("quarantine_vlan {} is outside 1..=4094", q.get_ref()),
                );
            } else if let Some(s) = segments
                .iter()
                .find(|s| s.vlan.as_ref().map(|v| *v.get_ref()) == Some(*q.get_ref()))
            {
                self.c.at(
                    q.span(),
                    format!(
                        "quarantine_vlan {} is also the VLAN of segment {:?}: a device without an \
                         allowed posture would land in that segment",
                        q.get_ref(),
                        s.name.get_ref()
                    ),
                );
            }
        }
        if !segments.iter().any(|s| s.vlan.is_some()) {
            self.c.at(
                n.listen.span(),
                "[nac] places devices in the VLANs of segments, but no [[segment]] has a vlan",
            );
        }
        let mut nas: Vec<Nas> = Vec::with_capacity(n.nas.len());
        for c in &n.nas {
            let Ok(address) = c.address.get_ref().parse::<IpAddr>() else {
                self.c.at(
                    c.address.span(),
                    format!("address {:?} is not an IP address", c.address.get_ref()),
                );
                continue;
            };
            if nas.iter().any(|other| other.address == address) {
                self.c.at(
                    c.address.span(),
                    format!("another [[nac.nas]] already has address {address}"),
                );
            }
            let path = self.resolve(&c.secret_file);
            let secret = self
                .read(&c.secret_file, &path, files::radius_secret)
                .unwrap_or_default();
            nas.push(Nas {
                name: c.name.get_ref().clone(),
                address,
                coa: SocketAddr::new(address, c.coa_port),
                secret: Arc::from(secret.into_bytes()),
                change: c.change,
            });
        }
        NacSettings {
            listen: listen.unwrap_or(ForwardAuthListen::Tcp(SocketAddr::from((
                [127, 0, 0, 1],
                0,
            )))),
            tls,
            max_connections: *n.max_connections.get_ref(),
            quarantine_vlan: n.quarantine_vlan.as_ref().map(|q| *q.get_ref()),
            radius,
            nas,
        }
    }
}
