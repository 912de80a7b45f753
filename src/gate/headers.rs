//! Headers the gate owns: the identity it asserts to upstreams, the
//! hop-by-hop headers (RFC 9110 section 7.6.1) that never cross a proxy,
//! and the headers a client could use to speak for the gate or for another
//! proxy ([`remove_client_claims`]).
//!
//! Names are compared the way CGI, WSGI, PHP and Apache's `http2env` fold
//! them into variables: every character that is not a letter or digit reads
//! as `-` (they turn `-`, `_`, `.` and the rest into `_`). So
//! `X_Posture_Decision`, `x-posture_device-subject` and `X.Posture.Decision`
//! are all the gate's `X-Posture-Decision` to such an upstream, and all go.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS};

/// Whether `ip` (an IPv4-mapped IPv6 address read as IPv4) is in one of
/// `nets`: the test of `trusted_proxies` and `proxy_protocol_from`.
pub fn listed(nets: &[ipnet::IpNet], ip: std::net::IpAddr) -> bool {
    !nets.is_empty() && {
        let ip = ip.to_canonical();
        nets.iter().any(|net| net.contains(&ip))
    }
}

/// The device's certificate SHA-256 fingerprint, lowercase hex.
pub const DEVICE_FINGERPRINT: HeaderName = HeaderName::from_static("x-posture-device-fingerprint");
/// The RFC 4514 subject of the device certificate, percent-encoded by
/// `encode_value`: percent-decode it (UTF-8) to get the RFC 4514 string.
/// Its commas, the RDN separators, are encoded too (`%2C`), so the value is
/// never read as a list.
pub const DEVICE_SUBJECT: HeaderName = HeaderName::from_static("x-posture-device-subject");
/// The first O of the device certificate, percent-encoded by `encode_value`.
pub const DEVICE_ORGANIZATION: HeaderName =
    HeaderName::from_static("x-posture-device-organization");
/// `allow` or `warn`: a denied request never reaches an upstream.
/// The reference of a page the gate answers with: what the person quotes
/// to the service desk, for a proxy in front (nginx `auth_request_set`).
pub const REFERENCE: HeaderName = HeaderName::from_static("x-posture-reference");
/// The code of a refusal, on every page the gate answers with.
pub const REASON: HeaderName = HeaderName::from_static("x-posture-reason");
pub const DECISION: HeaderName = HeaderName::from_static("x-posture-decision");
/// Set on `warn`: the catalogue ids and unmet requirements behind the warning.
pub const POSTURE_WARNING: HeaderName = HeaderName::from_static("posture-warning");
/// The inline attestation of spec section 4; consumed by the gate, never forwarded.
pub const POSTURE_ATTESTATION: HeaderName = HeaderName::from_static("posture-attestation");

/// Every header the gate asserts. A client that sends one is trying to speak
/// for the gate: they are removed before anything is forwarded, in every
/// spelling that folds to one of them (`remove_client_claims`).
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
/// `,` is escaped so an identity is never split as a list (nor joined with
/// a client's value by a server that folds names), `<` and `>` so it cannot
/// be markup in an upstream page, `\` and `"` so it cannot end a quoted
/// string or start an escape in whatever the upstream embeds it in.
const IDENTITY_UNSAFE: &AsciiSet = &CONTROLS
    .add(b'%')
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b'<')
    .add(b'>')
    .add(b'\\');

/// For comma-separated lists the gate makes from its own config (catalogue
/// ids, requirement codes): the commas are the separators and stay.
const LIST_UNSAFE: &AsciiSet = &CONTROLS.add(b'%').add(b' ').add(b'"');

/// Names (lowercase, separators written as `-`) a client never gets to
/// send upstream in any spelling: claims of where the request came from or
/// which certificate it showed, which the gate states itself or not at all.
/// `proxy` is httpoxy: CGI turns it into `HTTP_PROXY`.
const CLAIMED_NAMES: [&[u8]; 17] = [
    b"forwarded",
    b"x-real-ip",
    b"x-client-ip",
    b"client-ip",
    b"true-client-ip",
    b"x-cluster-client-ip",
    b"x-originating-ip",
    b"cf-connecting-ip",
    b"fastly-client-ip",
    b"x-original-url",
    b"x-original-uri",
    b"x-original-host",
    b"x-rewrite-url",
    b"proxy",
    b"x-client-cert",
    b"x-ssl-cert",
    b"x-arr-clientcert",
];

/// Prefixes of the same (same spelling rule). `x-posture-` and `posture-`
/// hold every gate-owned name; `x-forwarded-` holds the port, prefix,
/// client-certificate (Envoy's XFCC, Traefik's) and the three the gate sets
/// itself; the rest are other proxies' client-certificate headers (nginx
/// and HAProxy setups, AWS ALB) and the `Proxy-*` family that CGI folds.
const CLAIMED_PREFIXES: [&[u8]; 7] = [
    b"x-posture-",
    b"posture-",
    b"x-forwarded-",
    b"x-ssl-client-",
    b"ssl-client-",
    b"x-amzn-mtls-clientcert",
    b"proxy-",
];

/// Removes every request header that claims to be the gate's or another
/// proxy's, in every spelling a CGI-style upstream reads as the same name
/// (see the module docs). The caller sets the gate's own afterwards.
///
/// One pass over the names, a byte compare or two for each; no allocation
/// unless a claimed header is there. Hop-by-hop headers must already be
/// gone (the `Proxy-*` ones in their proper spelling are among them).
pub fn remove_client_claims(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| is_claimed(k.as_str().as_bytes())) {
        return;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_claimed(k.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// See [`remove_client_claims`]. `name` is lowercase (http folds case).
fn is_claimed(name: &[u8]) -> bool {
    // Every claimed name starts with one of these letters; most header
    // names do not, and cost this one compare.
    if !matches!(name.first(), Some(b'x' | b'p' | b'f' | b'c' | b't' | b's')) {
        return false;
    }
    CLAIMED_PREFIXES
        .iter()
        .any(|p| name.len() >= p.len() && folds_to(&name[..p.len()], p))
        || CLAIMED_NAMES
            .iter()
            .any(|n| name.len() == n.len() && folds_to(name, n))
}

/// Whether `name` reads as `pattern` once every character that is not a
/// letter or digit is read as `-`. Equal lengths assumed.
fn folds_to(name: &[u8], pattern: &[u8]) -> bool {
    name.iter()
        .zip(pattern)
        .all(|(&n, &p)| n == p || (p == b'-' && !n.is_ascii_alphanumeric()))
}

/// `Cache-Control: private` on an upstream answer that says nothing about
/// caching: the answer was made for one device's identity and decision,
/// so no shared cache may hand it to another. An upstream that sets its own
/// `Cache-Control` has decided, and keeps its choice.
pub fn default_to_private(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
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

/// An identity header value for any string: visible ASCII passes except
/// `%`, `"`, `,`, `<`, `>` and `\`; those, space and everything else are
/// percent-encoded (UTF-8), so a certificate subject can never smuggle a
/// line break, an invalid byte, a list separator or markup into the
/// upstream request. Percent-decoding gives back the text exactly.
pub fn encode_value(text: &str) -> HeaderValue {
    encode(text, IDENTITY_UNSAFE)
}

/// Like [`encode_value`], but commas stay: for lists the gate makes itself.
pub fn encode_list(text: &str) -> HeaderValue {
    encode(text, LIST_UNSAFE)
}

fn encode(text: &str, unsafe_set: &'static AsciiSet) -> HeaderValue {
    let encoded = percent_encoding::utf8_percent_encode(text, unsafe_set).to_string();
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
    fn gate_owned_headers_are_removed_in_every_folded_spelling() {
        let mut h = HeaderMap::new();
        for name in [
            "X-Posture-Device-Fingerprint",
            "x_posture_decision",
            "X_Posture_Device_Subject",
            "x-posture_device-subject",
            "X.Posture.Device.Organization",
            "x-posture-anything-new",
            "Posture_Warning",
            "posture-attestation",
            "forwarded",
            "X-Real-IP",
            "x_real_ip",
            "X-Forwarded-Port",
            "X-Forwarded-Prefix",
            "x_forwarded_for",
            "X-Forwarded-Client-Cert",
            "X-Forwarded-Tls-Client-Cert",
            "X-SSL-Client-Cert",
            "x-ssl-client-s-dn",
            "X-Original-URL",
            "X-Rewrite-URL",
            "Proxy",
            "proxy_authorization",
            "True-Client-IP",
            "X-Amzn-Mtls-Clientcert-Leaf",
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("spoofed"),
            );
        }
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.insert(header::COOKIE, HeaderValue::from_static("a=1"));
        for kept in [
            "x-postured",
            "xposture-decision",
            "x-forwardedfor",
            "proxyish",
            "x-request-id",
        ] {
            h.insert(HeaderName::from_static(kept), HeaderValue::from_static("1"));
        }
        remove_client_claims(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "accept",
                "cookie",
                "proxyish",
                "x-forwardedfor",
                "x-postured",
                "x-request-id",
                "xposture-decision"
            ]
        );
        for name in GATE_OWNED {
            assert!(is_claimed(name.as_str().as_bytes()), "{name}");
        }
    }

    #[test]
    fn an_upstream_cache_control_is_kept_and_none_becomes_private() {
        let mut h = HeaderMap::new();
        default_to_private(&mut h);
        assert_eq!(h[header::CACHE_CONTROL], "private");
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        default_to_private(&mut h);
        assert_eq!(h[header::CACHE_CONTROL], "public, max-age=60");
    }

    #[test]
    fn subjects_are_percent_encoded_to_visible_ascii() {
        let v = encode_value("CN=Jöhn\r\nX: 1,O=100%");
        assert_eq!(v, "CN=J%C3%B6hn%0D%0AX:%201%2CO=100%25");
        let v = encode_value(r#"CN=<b>\,"x""#);
        assert_eq!(v, "CN=%3Cb%3E%5C%2C%22x%22");
        assert_eq!(
            encode_list("kaspersky, min_os_version"),
            "kaspersky,%20min_os_version"
        );
    }
}
