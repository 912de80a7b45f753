//! Revocation after the handshake, the same at every door.
//!
//! rustls checks the CRLs once, at the handshake. A keep-alive or HTTP/2
//! connection opened before a device was revoked would otherwise be served
//! on the old verdict for as long as the client keeps it open, and could
//! even attest again on it. So the CRLs of the current configuration are
//! also compiled, at load, into a set of revoked (issuer, serial) pairs, and
//! every request and every attestation is checked against the set that is
//! current at that moment: one hash lookup per certificate.
//!
//! Only the status of certificates is taken from here; whether a CRL is
//! genuine is rustls' job at the handshake, and the files are the
//! operator's own configuration. An entry from a CRL that rustls would not
//! trust can only make the gate refuse more, never admit more.

use std::collections::{HashMap, HashSet};

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::decision::Denial;

/// One certificate as a CRL names it: the DER of its issuer's name and its
/// serial number (the bytes of the INTEGER, as in the CRL entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertId {
    issuer: Box<[u8]>,
    serial: Box<[u8]>,
}

impl CertId {
    /// A certificate known only by the DER of its issuer's name and its
    /// serial number as unsigned big-endian bytes (what 802.1X tells): the
    /// serial is written as a DER INTEGER's content, as a CRL has it.
    pub fn from_parts(issuer: &[u8], serial_magnitude: &[u8]) -> CertId {
        let digits: &[u8] = match serial_magnitude.iter().position(|b| *b != 0) {
            Some(first) => &serial_magnitude[first..],
            None => &[],
        };
        let mut serial = Vec::with_capacity(digits.len() + 1);
        if digits.first().is_none_or(|b| b & 0x80 != 0) {
            serial.push(0);
        }
        serial.extend_from_slice(digits);
        CertId {
            issuer: issuer.into(),
            serial: serial.into(),
        }
    }

    /// The DER of the issuer's name.
    pub fn issuer(&self) -> &[u8] {
        &self.issuer
    }

    /// The serial as a DER INTEGER's content bytes.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The issuer and serial of a certificate; `None` when it does not parse.
    pub fn of(der: &CertificateDer<'_>) -> Option<CertId> {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        Some(CertId {
            issuer: cert.issuer().as_raw().into(),
            serial: cert.raw_serial().into(),
        })
    }
}

/// What the current CRLs say about a connection's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not revoked, and a current CRL speaks for it (or no CRLs are
    /// configured, or no certificate was presented).
    Good,
    /// A certificate of the chain is on a CRL of its issuer.
    Revoked,
    /// CRLs are configured but none of them speaks for the device
    /// certificate's issuer, or the one that does is past its nextUpdate:
    /// what the handshake would refuse now, refused here as well.
    Unknown,
}

#[derive(Debug, Default)]
struct IssuerList {
    serials: HashSet<Box<[u8]>>,
    /// The latest nextUpdate of this issuer's CRLs; `None` when a CRL has
    /// none (then it never goes out of date).
    next_update: Option<i64>,
    never_expires: bool,
}

/// The revoked certificates of every configured CRL, by issuer.
#[derive(Debug, Default)]
pub struct Revocations {
    by_issuer: HashMap<Box<[u8]>, IssuerList>,
}

/// A configured CRL that is not a CRL.
#[derive(Debug, thiserror::Error)]
#[error("a CRL does not parse")]
pub struct CrlParseError;

impl Status {
    /// The denial this status means for a request, if any.
    pub fn denial(self) -> Option<Denial> {
        match self {
            Status::Good => None,
            Status::Revoked => Some(Denial::CertificateRevoked),
            Status::Unknown => Some(Denial::RevocationUnknown),
        }
    }
}

impl Revocations {
    /// Compiles the revoked serials of every CRL, by issuer.
    pub fn from_crls(
        crls: &[CertificateRevocationListDer<'_>],
    ) -> Result<Revocations, CrlParseError> {
        let mut by_issuer: HashMap<Box<[u8]>, IssuerList> = HashMap::new();
        for der in crls {
            let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|_| CrlParseError)?;
            let list = by_issuer.entry(crl.issuer().as_raw().into()).or_default();
            for revoked in crl.iter_revoked_certificates() {
                list.serials.insert(revoked.raw_serial().into());
            }
            match crl.next_update() {
                Some(t) => {
                    let t = t.timestamp();
                    list.next_update = Some(list.next_update.map_or(t, |n| n.max(t)));
                }
                None => list.never_expires = true,
            }
        }
        Ok(Revocations { by_issuer })
    }

    /// The status of a presented chain, leaf first. Every certificate is
    /// looked up as revoked; freshness is required for the leaf only,
    /// because which of the other presented certificates lie on the path
    /// rustls built is not known here.
    pub fn status(&self, chain: &[CertId], now: i64) -> Status {
        if self.by_issuer.is_empty() {
            return Status::Good;
        }
        let Some(leaf) = chain.first() else {
            return Status::Unknown;
        };
        for id in chain {
            if let Some(list) = self.by_issuer.get(&id.issuer) {
                if list.serials.contains(&id.serial) {
                    return Status::Revoked;
                }
            }
        }
        match self.by_issuer.get(&leaf.issuer) {
            Some(list) if list.never_expires => Status::Good,
            Some(list) if list.next_update.is_some_and(|n| now < n) => Status::Good,
            _ => Status::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(cn: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(ca: &Ca, serial: u64) -> CertId {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        CertId::of(cert.der()).unwrap()
    }

    fn crl(ca: &Ca, serials: &[u64], next_update_in: i64) -> CertificateRevocationListDer<'static> {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(10),
            next_update: now + time::Duration::seconds(next_update_in),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&ca.issuer).unwrap().der().clone()
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_revoked_serial_of_that_issuer_is_revoked_and_no_other() {
        let (a, b) = (ca("a"), ca("b"));
        let r = Revocations::from_crls(&[crl(&a, &[7], 3600), crl(&b, &[], 3600)]).unwrap();
        assert_eq!(r.status(&[leaf(&a, 7)], now()), Status::Revoked);
        assert_eq!(r.status(&[leaf(&a, 8)], now()), Status::Good);
        // The same serial from another issuer is another certificate.
        assert_eq!(r.status(&[leaf(&b, 7)], now()), Status::Good);
    }

    #[test]
    fn no_crl_for_the_issuer_or_an_out_of_date_one_is_unknown() {
        let (a, b) = (ca("a"), ca("b"));
        let r = Revocations::from_crls(&[crl(&a, &[], 60)]).unwrap();
        assert_eq!(r.status(&[leaf(&b, 1)], now()), Status::Unknown);
        assert_eq!(r.status(&[leaf(&a, 1)], now() + 120), Status::Unknown);
        assert_eq!(r.status(&[], now()), Status::Unknown);
    }

    #[test]
    fn without_crls_nothing_is_checked() {
        let a = ca("a");
        assert_eq!(
            Revocations::default().status(&[leaf(&a, 1)], now()),
            Status::Good
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let bad = CertificateRevocationListDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(Revocations::from_crls(&[bad]).is_err());
    }
}
