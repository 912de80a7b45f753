//! Headers the gate owns: the identity it asserts to upstreams, and the
//! hop-by-hop headers (RFC 9110 section 7.6.1) that never cross a proxy.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS};

/// The device's certificate SHA-256 fingerprint, lowercase hex.
pub const DEVICE_FINGERPRINT: HeaderName = HeaderName::from_static("x-posture-device-fingerprint");
/// The RFC 4514 subject of the device certificate, percent-encoded outside visible ASCII.
pub const DEVICE_SUBJECT: HeaderName = HeaderName::from_static("x-posture-device-subject");
/// The first O of the device certificate, percent-encoded.
pub const DEVICE_ORGANIZATION: HeaderName =
    HeaderName::from_static("x-posture-device-organization");
/// `allow` or `warn`: a denied request never reaches an upstream.
pub const DECISION: HeaderName = HeaderName::from_static("x-posture-decision");
/// Set on `warn`: the catalogue ids and unmet requirements behind the warning.
pub const POSTURE_WARNING: HeaderName = HeaderName::from_static("posture-warning");
/// The inline attestation of spec section 4; consumed by the gate, never forwarded.
pub const POSTURE_ATTESTATION: HeaderName = HeaderName::from_static("posture-attestation");

/// Every header the gate asserts. A client that sends one is trying to speak
/// for the gate: they are removed before anything is forwarded.
pub const GATE_OWNED: [HeaderName; 6] = [
    DEVICE_FINGERPRINT,
    DEVICE_SUBJECT,
    DEVICE_ORGANIZATION,
    DECISION,
    POSTURE_WARNING,
    POSTURE_ATTESTATION,
];

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Escapes everything outside visible ASCII, plus `%` itself so the encoding
/// is reversible. Subjects are RFC 4514 strings and may carry any UTF-8.
const HEADER_UNSAFE: &AsciiSet = &CONTROLS.add(b'%').add(b' ').add(b'"');

pub fn remove_gate_owned(headers: &mut HeaderMap) {
    for name in GATE_OWNED {
        headers.remove(name);
    }
}

/// Removes the hop-by-hop headers, including every header that
/// `Connection` names. With `keep_upgrade`, `Upgrade` and a
/// `Connection: upgrade` survive so an upgrade can be relayed.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Nearly every request and answer carries none of them: one pass over
    // the names costs less than the dozen removals below, each a hash and a
    // probe. A header that `Connection` names can only be there with it.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // One pass over the names present, matching `Connection`'s tokens as
    // they are (no HeaderName is built from them), then one removal each:
    // an upstream's `Connection: keep-alive` costs one removal, not a dozen.
    let doomed: Vec<HeaderName> = {
        let named: Vec<&str> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        headers
            .keys()
            .filter(|k| {
                is_hop_by_hop(k) || named.iter().any(|t| t.eq_ignore_ascii_case(k.as_str()))
            })
            .filter(|k| !(keep_upgrade && *k == header::UPGRADE))
            .cloned()
            .collect()
    };
    for name in doomed {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The fixed hop-by-hop headers, and every `Proxy-*` header.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == KEEP_ALIVE
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str().starts_with("proxy-")
}

/// Whether the request asks to switch protocols (`Connection: upgrade` plus
/// an `Upgrade` header), as HTTP/1.1 websockets do.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// A header value for any string: visible ASCII passes, everything else is
/// percent-encoded, so a certificate subject can never smuggle a line break
/// or an invalid byte into the upstream request.
pub fn encode_value(text: &str) -> HeaderValue {
    let encoded = percent_encoding::utf8_percent_encode(text, HEADER_UNSAFE).to_string();
    // Percent-encoding leaves only visible ASCII, which is always valid.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_and_fixed_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.append("x-secret", HeaderValue::from_static("2"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-foo", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn each_hop_header_alone_is_removed_and_other_headers_stay() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "proxy-authenticate",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
            remove_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 1, "{name}: {h:?}");
            assert!(h.contains_key(header::ACCEPT), "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        let before = h.clone();
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h, before);
    }

    #[test]
    fn upgrade_survives_when_relayed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(wants_upgrade(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn gate_owned_headers_are_removed_whatever_their_case() {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(b"X-Posture-Device-Fingerprint").unwrap(),
            HeaderValue::from_static("spoofed"),
        );
        h.insert("posture-attestation", HeaderValue::from_static("t"));
        remove_gate_owned(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn subjects_are_percent_encoded_to_visible_ascii() {
        let v = encode_value("CN=Jöhn\r\nX: 1,O=100%");
        assert_eq!(v, "CN=J%C3%B6hn%0D%0AX:%201,O=100%25");
    }
}
