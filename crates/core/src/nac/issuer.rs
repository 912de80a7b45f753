//! Which client CA a RADIUS server's `TLS-Client-Cert-Issuer` names.
//! FreeRADIUS writes a certificate's names as OpenSSL's `X509_NAME_oneline`
//! does (`/C=NL/O=Rijk/CN=Device CA`, a `/` in a value as `\/`, other
//! bytes outside printable ASCII as `\xHH`: seen from Debian's FreeRADIUS
//! 3.2.1 with OpenSSL 3); the gate writes the subject of each
//! of its client CAs the same way once, at load, and takes the issuer of a
//! device certificate to be the CA whose name matches exactly. An issuer
//! that is none of them is no device the gate knows.

use std::collections::HashMap;

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::revocation::CertId;

/// The client CAs by their name as OpenSSL writes it.
#[derive(Debug, Clone, Default)]
pub struct Issuers {
    by_oneline: HashMap<String, Box<[u8]>>,
}

/// Why a RADIUS request's certificate is not one the gate can know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// The issuer is none of the client CAs.
    #[error("the certificate's issuer {0:?} is none of the client CAs")]
    UnknownIssuer(String),
    /// The serial is not hex.
    #[error("the certificate serial {0:?} is not hexadecimal")]
    BadSerial(String),
}

impl Issuers {
    /// The names of `cas` (those that parse).
    pub fn from_cas(cas: &[CertificateDer<'_>]) -> Issuers {
        let by_oneline = cas
            .iter()
            .filter_map(|der| X509Certificate::from_der(der.as_ref()).ok())
            .map(|(_, ca)| (oneline(ca.subject()), ca.subject().as_raw().into()))
            .collect();
        Issuers { by_oneline }
    }

    /// A name (as OpenSSL writes it) that two of `cas` share, if any.
    pub fn duplicate_name(cas: &[CertificateDer<'_>]) -> Option<String> {
        let mut seen = std::collections::HashSet::new();
        cas.iter()
            .filter_map(|der| X509Certificate::from_der(der.as_ref()).ok())
            .map(|(_, ca)| oneline(ca.subject()))
            .find(|name| !seen.insert(name.clone()))
    }

    /// The certificate `issuer` (OpenSSL's one-line form) and `serial`
    /// (hex, as FreeRADIUS writes it: `0x` and `:` allowed) name.
    pub fn cert_id(&self, issuer: &str, serial: &str) -> Result<CertId, IssuerError> {
        let der = self
            .by_oneline
            .get(issuer)
            .ok_or_else(|| IssuerError::UnknownIssuer(issuer.chars().take(200).collect()))?;
        let digits: String = serial
            .trim()
            .trim_start_matches("0x")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let bad = || IssuerError::BadSerial(serial.chars().take(80).collect());
        if digits.is_empty() || digits.len() > 80 {
            return Err(bad());
        }
        // An odd count of digits has an implied leading zero.
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let magnitude = hex::decode(padded).map_err(|_| bad())?;
        Ok(CertId::from_parts(der, &magnitude))
    }
}

/// A name as OpenSSL's `X509_NAME_oneline` writes it: `/` before each
/// attribute, OpenSSL's short name (the dotted OID for one it has none
/// for), `=`, and the value with `/` as `\/` and every byte outside
/// printable ASCII as `\xHH`.
pub fn oneline(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter() {
        for atv in rdn.iter() {
            out.push('/');
            let oid = atv.attr_type().to_id_string();
            out.push_str(short_name(&oid).unwrap_or(&oid));
            out.push('=');
            let value = atv.attr_value();
            let bytes: Vec<u8> = match value.header.tag().0 {
                // BMPString: OpenSSL keeps the low byte where every high
                // byte is zero (its `gs_doit`), as for plain ASCII names.
                30 if value.data.chunks(2).all(|c| c.len() == 2 && c[0] == 0) => {
                    value.data.chunks(2).map(|c| c[1]).collect()
                }
                _ => value.data.to_vec(),
            };
            for b in bytes {
                if b == b'/' {
                    out.push_str("\\/");
                } else if (b' '..=b'~').contains(&b) {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("\\x{b:02X}"));
                }
            }
        }
    }
    out
}

/// OpenSSL's short names of the attributes device CAs use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(params: rcgen::CertificateParams) -> (CertificateDer<'static>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().clone(), key)
    }

    #[test]
    fn names_are_written_as_openssl_writes_them() {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CountryName, "NL");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Ministère \"A/B\", Ü");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Device CA");
        let (der, _) = ca(p);
        let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
        // As FreeRADIUS 3.2.1 wrote this name (tests/fixtures/nac).
        assert_eq!(
            oneline(cert.subject()),
            "/C=NL/O=Minist\\xC3\\xA8re \"A\\/B\", \\xC3\\x9C/CN=Device CA"
        );
    }

    #[test]
    fn a_serial_names_the_certificate_as_its_crl_entry_would() {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Device CA");
        let (der, _) = ca(p);
        let issuers = Issuers::from_cas(std::slice::from_ref(&der));
        let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
        let id = issuers.cert_id("/CN=Device CA", "8f01").unwrap();
        assert_eq!(id.issuer(), cert.subject().as_raw());
        // 0x8f has its high bit set: the INTEGER's content starts with 0.
        assert_eq!(id.serial(), &[0x00, 0x8f, 0x01]);
        // `0x`, `:` and an odd count of digits: 0x07f is 0x7f.
        assert_eq!(
            issuers.cert_id("/CN=Device CA", "0x0:7f").unwrap().serial(),
            &[0x7f]
        );
        // The same name twice is found.
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Device CA");
        let (twin, _) = ca(p);
        assert_eq!(
            Issuers::duplicate_name(&[der.clone(), twin]).as_deref(),
            Some("/CN=Device CA")
        );
        assert_eq!(Issuers::duplicate_name(std::slice::from_ref(&der)), None);
        assert!(matches!(
            issuers.cert_id("/CN=Other CA", "01"),
            Err(IssuerError::UnknownIssuer(_))
        ));
        assert!(matches!(
            issuers.cert_id("/CN=Device CA", "zz"),
            Err(IssuerError::BadSerial(_))
        ));
    }
}
