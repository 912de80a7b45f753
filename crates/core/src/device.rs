//! Who a device is: derived from its certificate only, never from claims.
//! Spec section 7, "Device identity".

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::x509::AttributeTypeAndValue;

use crate::dn::DistinguishedName;

/// A device as its certificate names it: the client certificate where one
/// was presented, otherwise the `x5c` leaf. Serialises as the `device`
/// object of the verdict (spec section 5); the byte fingerprint and the OUs
/// are left out.
///
/// It deserialises from that object too (for the agent reading a verdict):
/// the byte fingerprint is decoded from the hex one, which must be 64 hex
/// digits, and the OUs are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireDevice")]
pub struct DeviceIdentity {
    /// Lowercase hex SHA-256 of the certificate DER: for people, logs,
    /// headers and config.
    pub fingerprint_sha256: String,
    /// The same SHA-256 as bytes: what the gate keys postures by, so the
    /// request path compares 32 bytes instead of decoding hex each time.
    #[serde(skip)]
    pub fingerprint: [u8; 32],
    /// RFC 4514 string of the subject.
    pub subject: String,
    /// Value of the first O attribute of the subject, in DER order, that has
    /// a text form; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Every OU of the subject, for audit; not part of the wire verdict.
    #[serde(skip)]
    pub organizational_units: Vec<String>,
    /// The subject as exemptions by `device_subject` compare it (RDN order,
    /// case and spacing ignored; see [`crate::dn`]), made from the
    /// certificate's attributes. Read from the wire (no certificate at
    /// hand), it is parsed from `subject`, which this module renders
    /// losslessly; `None` when that does not parse: no subject exemption
    /// then applies. Not part of the wire verdict.
    #[serde(skip)]
    pub subject_name: Option<DistinguishedName>,
}

/// The `device` object as it is on the wire.
#[derive(Deserialize)]
struct WireDevice {
    fingerprint_sha256: String,
    subject: String,
    #[serde(default)]
    organization: Option<String>,
}

impl TryFrom<WireDevice> for DeviceIdentity {
    type Error = &'static str;

    fn try_from(w: WireDevice) -> Result<Self, Self::Error> {
        let mut fingerprint = [0u8; 32];
        hex::decode_to_slice(&w.fingerprint_sha256, &mut fingerprint)
            .map_err(|_| "fingerprint_sha256 is not 64 hex digits")?;
        Ok(DeviceIdentity {
            fingerprint_sha256: w.fingerprint_sha256,
            fingerprint,
            subject_name: DistinguishedName::parse(&w.subject).ok(),
            subject: w.subject,
            organization: w.organization,
            organizational_units: Vec::new(),
        })
    }
}

/// Why [`DeviceIdentity::from_der`] refused a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The bytes do not parse as an X.509 certificate.
    #[error("the device certificate is not DER-encoded X.509")]
    NotX509,
    /// A certificate parsed, but bytes follow it: the fingerprint would not
    /// be that certificate's alone.
    #[error("the device certificate has trailing bytes after its DER encoding")]
    TrailingData,
}

/// DER contents of the attribute type OIDs this module names.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_C: &[u8] = &[0x55, 0x04, 0x06];
const OID_L: &[u8] = &[0x55, 0x04, 0x07];
const OID_ST: &[u8] = &[0x55, 0x04, 0x08];
const OID_STREET: &[u8] = &[0x55, 0x04, 0x09];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
const OID_OU: &[u8] = &[0x55, 0x04, 0x0b];
const OID_DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];
const OID_UID: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01];

/// The short names of RFC 4514 section 3; any other type is written as a
/// dotted OID, which RFC 4514 section 2.4 pairs with a hex value.
const SHORT_NAMES: [(&[u8], &str); 9] = [
    (OID_CN, "CN"),
    (OID_L, "L"),
    (OID_ST, "ST"),
    (OID_O, "O"),
    (OID_OU, "OU"),
    (OID_C, "C"),
    (OID_STREET, "STREET"),
    (OID_DC, "DC"),
    (OID_UID, "UID"),
];

impl DeviceIdentity {
    /// The identity of one DER certificate, e.g. the TLS client certificate.
    /// Its validity and chain are not checked here.
    pub fn from_der(der: &[u8]) -> Result<DeviceIdentity, DeviceError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|_| DeviceError::NotX509)?;
        if !rest.is_empty() {
            return Err(DeviceError::TrailingData);
        }
        Ok(Self::from_parsed(der, &cert))
    }

    /// For callers that already parsed `der` (the verifier parses each
    /// certificate once).
    pub(crate) fn from_parsed(der: &[u8], cert: &X509Certificate<'_>) -> DeviceIdentity {
        let subject = cert.subject();
        let fingerprint: [u8; 32] = Sha256::digest(der).into();
        DeviceIdentity {
            fingerprint_sha256: hex::encode(fingerprint),
            fingerprint,
            subject: rfc4514(subject),
            organization: attribute_values(subject, OID_O).next(),
            organizational_units: attribute_values(subject, OID_OU).collect(),
            subject_name: Some(DistinguishedName::from_x509(subject)),
        }
    }
}

/// Values of one attribute type in DER order; values without a text form are
/// skipped rather than guessed.
fn attribute_values<'a>(
    name: &'a X509Name<'_>,
    oid: &'static [u8],
) -> impl Iterator<Item = String> + 'a {
    name.iter_attributes()
        .filter(move |a| a.attr_type().as_bytes() == oid)
        .filter_map(attribute_text)
}

/// RFC 4514: RDNs in reverse order of the DER sequence, multi-valued RDNs
/// joined with `+`.
fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_attribute(&mut out, atv);
        }
    }
    out
}

fn push_attribute(out: &mut String, atv: &AttributeTypeAndValue<'_>) {
    let oid = atv.attr_type().as_bytes();
    let short = SHORT_NAMES.iter().find(|(o, _)| *o == oid).map(|(_, n)| *n);
    match (short, attribute_text(atv)) {
        (Some(short), Some(text)) => {
            out.push_str(short);
            out.push('=');
            escape_value(out, &text);
        }
        (short, _) => {
            match short {
                Some(s) => out.push_str(s),
                None => out.push_str(&atv.attr_type().to_id_string()),
            }
            out.push_str("=#");
            out.push_str(&hex::encode(value_der(atv)));
        }
    }
}

/// The text of a DirectoryString-like value, or `None` when it has none we
/// can decode without guessing (TeletexString, binary types).
pub(crate) fn attribute_text(atv: &AttributeTypeAndValue<'_>) -> Option<String> {
    if let Ok(s) = atv.as_str() {
        return Some(s.to_owned());
    }
    let value = atv.attr_value();
    match value.header.tag().0 {
        // BMPString: UTF-16BE.
        30 => {
            let data = value.data;
            if data.len() % 2 != 0 {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        // UniversalString: UCS-4BE.
        28 => {
            let data = value.data;
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// The DER of an attribute value (tag, length, contents) for the `#hex` form.
pub(crate) fn value_der(atv: &AttributeTypeAndValue<'_>) -> Vec<u8> {
    let value = atv.attr_value();
    let header = &value.header;
    let data = value.data;
    let mut der = Vec::with_capacity(data.len() + 6);
    let class = (header.class() as u8) << 6;
    let constructed = if header.is_constructed() { 0x20 } else { 0 };
    let tag = header.tag().0;
    if tag < 31 {
        der.push(class | constructed | tag as u8);
    } else {
        der.push(class | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            der.push(if i + 1 < groups.len() { g | 0x80 } else { *g });
        }
    }
    let len = data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(data);
    der
}

/// RFC 4514 section 2.4 escaping.
fn escape_value(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_der_as_bytes_and_hex() {
        let der = cert_with(DistinguishedName::new());
        let id = DeviceIdentity::from_der(&der).unwrap();
        let digest: [u8; 32] = Sha256::digest(&der).into();
        assert_eq!(id.fingerprint, digest);
        assert_eq!(id.fingerprint_sha256, hex::encode(digest));
    }

    fn cert_with(dn: DistinguishedName) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_is_rfc4514_in_reverse_der_order() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "NL");
        dn.push(DnType::OrganizationName, "Supplier BV");
        dn.push(DnType::OrganizationalUnitName, "IT");
        // rcgen keeps one value per type: a custom type with the OU OID adds a second OU.
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 11]), "Field");
        dn.push(DnType::CommonName, "lt-042");
        let der = cert_with(dn);
        let id = DeviceIdentity::from_der(&der).unwrap();
        assert_eq!(id.subject, "CN=lt-042,OU=Field,OU=IT,O=Supplier BV,C=NL");
        assert_eq!(id.organization.as_deref(), Some("Supplier BV"));
        assert_eq!(
            id.organizational_units,
            vec!["IT".to_owned(), "Field".to_owned()]
        );
        assert_eq!(id.fingerprint_sha256, hex::encode(Sha256::digest(&der)));
        assert_eq!(id.fingerprint_sha256.len(), 64);
        assert!(id
            .fingerprint_sha256
            .chars()
            .all(|c| !c.is_ascii_uppercase()));
    }

    #[test]
    fn special_characters_are_escaped() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Smith, Jones + Co <\"x\">; a\\b ");
        dn.push(DnType::CommonName, "#lt 1");
        let id = DeviceIdentity::from_der(&cert_with(dn)).unwrap();
        assert_eq!(
            id.subject,
            "CN=\\#lt 1,O=Smith\\, Jones \\+ Co \\<\\\"x\\\"\\>\\; a\\\\b\\ "
        );
    }

    #[test]
    fn bmp_string_is_decoded_and_missing_o_is_none() {
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            DnValue::BmpString("Zoë".try_into().unwrap()),
        );
        let id = DeviceIdentity::from_der(&cert_with(dn)).unwrap();
        assert_eq!(id.subject, "CN=Zoë");
        assert_eq!(id.organization, None);
    }

    #[test]
    fn unknown_attribute_types_use_dotted_oid_and_hex() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CustomDnType(vec![1, 2, 3, 4]), "x");
        let id = DeviceIdentity::from_der(&cert_with(dn)).unwrap();
        // UTF8String (0x0c), length 1, "x".
        assert_eq!(id.subject, "1.2.3.4=#0c0178");
    }

    /// The name exemptions compare is made from the attributes; a device
    /// read from the wire has only the rendered subject and parses it. Both
    /// must give the same name, or an exemption would apply at one door and
    /// not at another.
    #[test]
    fn the_subject_name_from_attributes_is_the_parse_of_the_rendering() {
        let mut names = Vec::new();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "NL");
        dn.push(DnType::OrganizationName, "Supplier  BV");
        dn.push(DnType::OrganizationalUnitName, "IT");
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 11]), "Field");
        dn.push(DnType::CommonName, "LT-042");
        names.push(dn);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Smith, Jones + Co <\"x\">; a\\b ");
        dn.push(DnType::CommonName, "#lt 1");
        names.push(dn);
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            DnValue::BmpString("Zoë".try_into().unwrap()),
        );
        dn.push(DnType::CustomDnType(vec![1, 2, 3, 4]), "x");
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), "SN-1");
        names.push(dn);
        for dn in names {
            let id = DeviceIdentity::from_der(&cert_with(dn)).unwrap();
            let from_attributes = id.subject_name.clone().unwrap();
            let parsed = crate::dn::DistinguishedName::parse(&id.subject).unwrap();
            assert_eq!(from_attributes, parsed, "{}", id.subject);
            let wire: DeviceIdentity =
                serde_json::from_str(&serde_json::to_string(&id).unwrap()).unwrap();
            assert_eq!(wire.subject_name, id.subject_name);
        }
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        assert_eq!(DeviceIdentity::from_der(b"nope"), Err(DeviceError::NotX509));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "a");
        let mut der = cert_with(dn);
        der.push(0);
        assert_eq!(
            DeviceIdentity::from_der(&der),
            Err(DeviceError::TrailingData)
        );
    }
}
