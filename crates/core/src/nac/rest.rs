//! The request FreeRADIUS 3.2's `rlm_rest` posts with `body = 'json'`: the
//! request's attributes as `{"Name": {"type": "...", "value": [...]}}`
//! (doors-and-ops.md section 3). Only the attributes the decision and the
//! sessions need are read; the rest is ignored. A body that is not this
//! shape is refused whole, never read in part.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

/// The largest body read: a post-auth request with its certificate
/// attributes is about 2 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most attributes one request may carry.
const MAX_ATTRIBUTES: usize = 512;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// Larger than [`MAX_BODY_BYTES`].
    #[error("the request body is {0} bytes, more than {MAX_BODY_BYTES}")]
    TooLarge(usize),
    /// Not rlm_rest's JSON.
    #[error("the request body is not rlm_rest JSON: {0}")]
    Malformed(String),
    /// More than [`MAX_ATTRIBUTES`] attributes.
    #[error("the request has more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
    /// An attribute the gate reads has a value of the wrong form.
    #[error("attribute {0} has a value of the wrong form")]
    BadValue(&'static str),
}

/// What an accounting request reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctStatus {
    /// The session began.
    Start,
    /// The session goes on.
    InterimUpdate,
    /// The session ended.
    Stop,
    /// Accounting-On/Off and the like: no one session.
    Other,
}

/// The attributes of one RADIUS request the gate reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NacRequest {
    /// User-Name (the EAP identity).
    pub user_name: Option<String>,
    /// TLS-Client-Cert-Serial: hex.
    pub cert_serial: Option<String>,
    /// TLS-Client-Cert-Issuer: OpenSSL's one-line form.
    pub cert_issuer: Option<String>,
    /// TLS-Client-Cert-Subject: OpenSSL's one-line form.
    pub cert_subject: Option<String>,
    /// Calling-Station-Id: the device's MAC address.
    pub calling_station_id: Option<String>,
    /// NAS-IP-Address, else NAS-IPv6-Address.
    pub nas_ip: Option<IpAddr>,
    /// NAS-Identifier.
    pub nas_identifier: Option<String>,
    /// NAS-Port.
    pub nas_port: Option<u32>,
    /// Acct-Status-Type.
    pub acct_status: Option<AcctStatus>,
    /// Acct-Session-Id.
    pub acct_session_id: Option<String>,
    /// Class, as text.
    pub class: Option<String>,
}

#[derive(Deserialize)]
struct Attribute {
    #[serde(rename = "type", default)]
    _kind: Option<String>,
    value: Vec<serde_json::Value>,
}

/// Parses a body of `rlm_rest`.
pub fn parse(body: &[u8]) -> Result<NacRequest, RestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RestError::TooLarge(body.len()));
    }
    // JSON is UTF-8 throughout: serde_json checks the strings it keeps,
    // not those it skips (an attribute's unknown fields), so the whole body
    // is checked first (found by the fuzz target nac_rest).
    let text = std::str::from_utf8(body).map_err(|e| RestError::Malformed(e.to_string()))?;
    let attributes: HashMap<String, Attribute> =
        serde_json::from_str(text).map_err(|e| RestError::Malformed(e.to_string()))?;
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(RestError::TooManyAttributes);
    }
    let text = |name: &'static str| -> Result<Option<String>, RestError> {
        match attributes.get(name).and_then(|a| a.value.first()) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(RestError::BadValue(name)),
        }
    };
    let address = |name: &'static str| -> Result<Option<IpAddr>, RestError> {
        match text(name)? {
            Some(ip) => Ok(Some(ip.parse().map_err(|_| RestError::BadValue(name))?)),
            None => Ok(None),
        }
    };
    let nas_ip = match address("NAS-IP-Address")? {
        Some(ip) => Some(ip),
        None => address("NAS-IPv6-Address")?,
    };
    let nas_port = match text("NAS-Port")? {
        Some(port) => Some(
            port.parse::<u32>()
                .map_err(|_| RestError::BadValue("NAS-Port"))?,
        ),
        None => None,
    };
    let acct_status = text("Acct-Status-Type")?.map(|s| match s.as_str() {
        "Start" | "1" => AcctStatus::Start,
        "Interim-Update" | "Alive" | "3" => AcctStatus::InterimUpdate,
        "Stop" | "2" => AcctStatus::Stop,
        _ => AcctStatus::Other,
    });
    let class = match text("Class")? {
        Some(c) => Some(octets_as_text(&c).ok_or(RestError::BadValue("Class"))?),
        None => None,
    };
    Ok(NacRequest {
        user_name: text("User-Name")?,
        cert_serial: text("TLS-Client-Cert-Serial")?,
        cert_issuer: text("TLS-Client-Cert-Issuer")?,
        cert_subject: text("TLS-Client-Cert-Subject")?,
        calling_station_id: text("Calling-Station-Id")?,
        nas_ip,
        nas_identifier: text("NAS-Identifier")?,
        nas_port,
        acct_status,
        acct_session_id: text("Acct-Session-Id")?,
        class,
    })
}

/// An `octets` attribute as FreeRADIUS prints it (`0x` and hex) or as
/// plain text, as UTF-8 text.
fn octets_as_text(value: &str) -> Option<String> {
    match value.strip_prefix("0x") {
        Some(digits) => String::from_utf8(hex::decode(digits).ok()?).ok(),
        None => Some(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attributes_the_gate_reads_are_read_and_the_rest_ignored() {
        let body = br#"{
            "User-Name": {"type": "string", "value": ["lt-1"]},
            "NAS-IP-Address": {"type": "ipaddr", "value": ["192.0.2.7"]},
            "NAS-Port": {"type": "integer", "value": [12]},
            "Calling-Station-Id": {"type": "string", "value": ["02-00-00-00-00-01"]},
            "TLS-Client-Cert-Serial": {"type": "string", "value": ["4f01"]},
            "TLS-Client-Cert-Issuer": {"type": "string", "value": ["/CN=Device CA"]},
            "Acct-Status-Type": {"type": "integer", "value": ["Start"]},
            "Class": {"type": "octets", "value": ["0x706700"]},
            "EAP-Message": {"type": "octets", "value": ["0x0201"], "attr_num": 79}
        }"#;
        let r = parse(body).unwrap();
        assert_eq!(r.user_name.as_deref(), Some("lt-1"));
        assert_eq!(r.nas_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(r.nas_port, Some(12));
        assert_eq!(r.cert_serial.as_deref(), Some("4f01"));
        assert_eq!(r.acct_status, Some(AcctStatus::Start));
        assert_eq!(r.class.as_deref(), Some("pg\0"));
        let v6 = parse(br#"{"NAS-IPv6-Address": {"type": "ipv6addr", "value": ["2001:db8::7"]}}"#)
            .unwrap();
        assert_eq!(v6.nas_ip, Some("2001:db8::7".parse().unwrap()));
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_even_in_a_field_not_read() {
        // What the fuzz target found: invalid UTF-8 in a skipped field.
        let body =
            b"{\"User-Name\":{\"type\":\"string\",\"pe\":\"int\xe5ger\",\"value\":[\"lt-1\"]}}";
        assert!(matches!(parse(body), Err(RestError::Malformed(_))));
    }

    #[test]
    fn anything_else_is_refused_whole() {
        assert!(matches!(parse(b"[]"), Err(RestError::Malformed(_))));
        assert!(matches!(
            parse(br#"{"User-Name": {"value": "x"}}"#),
            Err(RestError::Malformed(_))
        ));
        assert_eq!(
            parse(br#"{"NAS-IP-Address": {"value": ["not an address"]}}"#),
            Err(RestError::BadValue("NAS-IP-Address"))
        );
        assert_eq!(
            parse(br#"{"User-Name": {"value": [{"a": 1}]}}"#),
            Err(RestError::BadValue("User-Name"))
        );
        assert_eq!(
            parse(&vec![b' '; MAX_BODY_BYTES + 1]),
            Err(RestError::TooLarge(MAX_BODY_BYTES + 1))
        );
        let many: String = (0..=MAX_ATTRIBUTES)
            .map(|i| format!("\"A{i}\": {{\"value\": []}}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            parse(format!("{{{many}}}").as_bytes()),
            Err(RestError::TooManyAttributes)
        );
    }
}
