//! Who a device is: derived from its certificate only, never from claims.
//! Spec section 7, "Device identity".

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceIdentity {
    /// Lowercase hex SHA-256 of the certificate DER.
    pub fingerprint_sha256: String,
    /// RFC 4514 string of the subject.
    pub subject: String,
    /// First O attribute of the subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Every OU of the subject, for audit; not part of the wire verdict.
    #[serde(skip)]
    pub organizational_units: Vec<String>,
}
