//! 802.1X (issue 17): the decision a RADIUS server asks for after EAP-TLS,
//! without sockets. FreeRADIUS knows the device certificate by issuer and
//! serial, not by its DER, so the gate learns which certificate has which
//! issuer and serial when the device attests ([`CertKey`], kept in a
//! [`crate::store::NacStore`]); the request is then judged by the core's
//! one enforcement step for every segment with a VLAN, most sensitive
//! first ([`crate::enforce::place`]), and the device is placed in the VLAN
//! of the first segment it may enter, or quarantined.
//!
//! The sessions a NAS reports (accounting) are kept per device, so that
//! when an attestation changes the VLAN a device may have, the NAS of each
//! session can be told (RFC 5176 CoA, sent by the gate).

mod issuer;
pub mod rest;

pub use issuer::{oneline, Issuers};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Snapshot;
use crate::revocation::CertId;
use crate::store::Fingerprint;

/// A device certificate as 802.1X names it, as a store key: the SHA-256 of
/// its issuer's DER name and its serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertKey(String);

impl CertKey {
    /// The key of the certificate `id` names.
    pub fn of(id: &CertId) -> CertKey {
        let issuer = Sha256::digest(id.issuer());
        CertKey(format!(
            "{}:{}",
            hex::encode(issuer),
            hex::encode(id.serial())
        ))
    }

    /// The key as text, for a store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One session of a device at a NAS (a switch port, a Wi-Fi association),
/// as the RADIUS server reported it: what a CoA-Request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NasSession {
    /// The NAS-IP-Address.
    pub nas: std::net::IpAddr,
    /// NAS-Port, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nas_port: Option<u32>,
    /// Acct-Session-Id, once accounting started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acct_session_id: Option<String>,
    /// Calling-Station-Id (the device's MAC address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_station_id: Option<String>,
    /// User-Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The VLAN the device was given; `None` when rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

impl NasSession {
    /// Whether `other` is the same session: the same NAS and the same
    /// accounting session, or the same device address at it.
    pub fn same(&self, other: &NasSession) -> bool {
        self.nas == other.nas
            && match (&self.acct_session_id, &other.acct_session_id) {
                (Some(a), Some(b)) => a == b,
                _ => {
                    self.calling_station_id.is_some()
                        && self.calling_station_id == other.calling_station_id
                }
            }
    }
}

/// The segments with a VLAN, most sensitive first (file order among
/// equals): the order 802.1X tries them in.
pub fn vlan_segments(snapshot: &Snapshot) -> Vec<usize> {
    let mut segments: Vec<usize> = (0..snapshot.segments.len())
        .filter(|&i| snapshot.segments[i].vlan.is_some())
        .collect();
    segments.sort_by_key(|&i| std::cmp::Reverse(snapshot.segments[i].sensitivity));
    segments
}

/// The `Class` attribute the Access-Accept carries and the NAS echoes in
/// its accounting (RFC 2865 section 5.25): which device the session is.
pub fn class_of(fingerprint: &Fingerprint) -> String {
    format!("{CLASS_PREFIX}{}", hex::encode(fingerprint))
}

/// The device a `Class` names, if it is one of the gate's.
pub fn fingerprint_of_class(class: &str) -> Option<Fingerprint> {
    let hex_part = class.strip_prefix(CLASS_PREFIX)?;
    let bytes = hex::decode(hex_part).ok()?;
    bytes.try_into().ok()
}

const CLASS_PREFIX: &str = "posture-gate:1:";

/// Where the sessions of a certificate that never attested are kept until
/// it does (then they move to its fingerprint, and the NAS is told the VLAN
/// it may have now): a key that no certificate's SHA-256 can be, since it
/// is the hash of a text, not of a certificate.
pub fn pending_key(key: &CertKey) -> Fingerprint {
    let mut hash = Sha256::new();
    hash.update(b"posture-gate 802.1X sessions of a certificate not attested yet\0");
    hash.update(key.as_str().as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_names_its_fingerprint_and_nothing_else_does() {
        let fp = [7u8; 32];
        assert_eq!(fingerprint_of_class(&class_of(&fp)), Some(fp));
        assert_eq!(fingerprint_of_class("posture-gate:1:0707"), None);
        assert_eq!(fingerprint_of_class("other"), None);
    }

    #[test]
    fn sessions_are_the_same_by_accounting_id_or_device_address_at_one_nas() {
        let s = |nas: &str, id: Option<&str>, mac: Option<&str>| NasSession {
            nas: nas.parse().unwrap(),
            nas_port: None,
            acct_session_id: id.map(str::to_string),
            calling_station_id: mac.map(str::to_string),
            user_name: None,
            vlan: None,
        };
        let a = s("10.0.0.1", Some("A"), Some("02-00"));
        assert!(a.same(&s("10.0.0.1", Some("A"), None)));
        assert!(!a.same(&s("10.0.0.1", Some("B"), Some("02-00"))));
        assert!(a.same(&s("10.0.0.1", None, Some("02-00"))));
        assert!(!a.same(&s("10.0.0.2", Some("A"), Some("02-00"))));
        assert!(!s("10.0.0.1", None, None).same(&s("10.0.0.1", None, None)));
    }
}
