//! Checks and normalisation of single values. Each returns the normalised
//! value or a message; the caller knows where in the file the value was.

use crate::attestation::claims::OsFamily;

/// A route host as the gate compares it: lowercase, no port. Upper case is
/// accepted and folded, because DNS names are case-insensitive and a
/// network team copies names from many places; a port is refused, because
/// the gate routes by name and a port here would silently never match.
pub fn normalise_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if let Some(inner) = host.strip_prefix('[') {
        // An IPv6 literal: anything after the closing bracket is a port.
        return match inner.strip_suffix(']') {
            Some(addr) if addr.parse::<std::net::Ipv6Addr>().is_ok() => {
                Ok(host.to_ascii_lowercase())
            }
            _ => Err(format!(
                "host {host:?} is not a bracketed IPv6 address without a port"
            )),
        };
    }
    if host.contains(':') {
        return Err(format!(
            "host {host:?} has a port; give the name only (routes match the name the client asked for, whatever the port)"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
    if let Some(bad) = host.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "host {host:?} contains {bad:?}; a host is a DNS name or IP address"
        ));
    }
    Ok(host.to_ascii_lowercase())
}

/// One `trusted_proxies` entry: an IP address (one host) or a CIDR block
/// whose host bits are zero, so a typo such as `10.0.0.1/8` is caught
/// rather than silently trusting the whole `/8`.
pub fn trusted_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    address_block("trusted proxy", text)
}

/// One `proxy_protocol_from` entry, checked as a `trusted_proxies` entry:
/// a host bit set by mistake would let a whole block claim any client
/// address.
pub fn proxy_protocol_peer(text: &str) -> Result<ipnet::IpNet, String> {
    address_block("proxy_protocol_from entry", text)
}

fn address_block(what: &str, text: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    let net = text.parse::<ipnet::IpNet>().map_err(|_| {
        format!(
            "{what} {text:?} is not an IP address or CIDR block, like \"10.0.0.0/8\" or \"2001:db8::/32\""
        )
    })?;
    if net.trunc() != net {
        return Err(format!(
            "{what} {text:?} has host bits set; did you mean \"{}\"?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// A path prefix: starts with `/`; a trailing `/` is dropped (except for
/// `/` itself) because prefixes match whole path segments, so `/financien`
/// and `/financien/` are the same route and must count as duplicates.
pub fn normalise_path_prefix(prefix: &str) -> Result<String, String> {
    if !prefix.starts_with('/') {
        return Err(format!("path_prefix {prefix:?} must start with \"/\""));
    }
    if let Some(bad) = prefix
        .chars()
        .find(|c| matches!(c, '?' | '#') || c.is_whitespace())
    {
        return Err(format!(
            "path_prefix {prefix:?} contains {bad:?}; give a path only"
        ));
    }
    let trimmed = prefix.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    })
}

/// An absolute `http://` or `https://` URL with a host.
pub fn parse_upstream(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("upstream {text:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(format!(
                "upstream {text:?} has scheme {other:?}; use http:// or https://"
            ))
        }
        None => {
            return Err(format!(
                "upstream {text:?} must start with http:// or https://"
            ))
        }
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(uri),
        _ => Err(format!("upstream {text:?} has no host")),
    }
}

/// A SHA-256 certificate fingerprint: 64 hex digits in either case.
/// Colons are allowed because that is how `openssl x509 -fingerprint`
/// prints it.
/// A Redis URL: `redis://host[:port][/db]` or `rediss://...`; `Ok(true)`
/// for `rediss://`. A password in the URL is refused (it would show in
/// every copy of the config): `password_file` holds it.
pub fn redis_url(text: &str) -> Result<bool, String> {
    let (tls, rest) = if let Some(rest) = text.strip_prefix("rediss://") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("redis://") {
        (false, rest)
    } else {
        return Err(format!(
            "store url {text:?} must start with redis:// or rediss://"
        ));
    };
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(format!(
            "store url {text:?} holds a user or password: write username = \"...\" and \
             password_file = \"...\" instead"
        ));
    }
    if authority.is_empty() || authority.contains(['?', '#', ' ']) {
        return Err(format!(
            "store url {text:?} has no host, or more than host, port and db"
        ));
    }
    let port = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((_, "")) => None,
            Some((_, after)) => Some(after.strip_prefix(':').unwrap_or("")),
            None => Some(""),
        },
        None => authority.split_once(':').map(|(_, p)| p),
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(format!("store url {text:?} has a port that is not 1-65535"));
    }
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(format!(
            "store url {text:?}: the path must be a database number"
        ));
    }
    Ok(tls)
}

pub fn fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let mut bytes = [0u8; 32];
    match hex::decode_to_slice(&hex, &mut bytes) {
        Ok(()) => Ok(bytes),
        Err(_) => Err(format!(
            "device_fingerprint {text:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
        )),
    }
}

pub fn os_family(name: &str) -> Result<OsFamily, String> {
    OsFamily::ALL
        .iter()
        .copied()
        .find(|f| f.as_str() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = OsFamily::ALL.iter().map(|f| f.as_str()).collect();
            format!(
                "min_os_version key {name:?} is not an OS family (one of: {})",
                names.join(", ")
            )
        })
}

/// The `expires` of an exemption: a TOML local date, nothing else, so
/// nobody has to wonder in which time zone a time of day was meant.
pub fn expires_date(value: &toml::value::Datetime) -> Result<time::Date, String> {
    let date = match (value.date, value.time, value.offset) {
        (Some(date), None, None) => date,
        _ => {
            return Err(format!(
                "expires = {value} is not a date; write the last day it applies, like expires = 2026-12-31"
            ))
        }
    };
    let month = time::Month::try_from(date.month)
        .map_err(|_| format!("expires = {value}: month out of range"))?;
    time::Date::from_calendar_date(i32::from(date.year), month, date.day)
        .map_err(|e| format!("expires = {value}: {e}"))
}

/// The `deny_from` of a policy rule: a TOML local date, like `expires`.
pub fn deny_from_date(value: &toml::value::Datetime) -> Result<time::Date, String> {
    let date = match (value.date, value.time, value.offset) {
        (Some(date), None, None) => date,
        _ => {
            return Err(format!(
                "deny_from = {value} is not a date; write the first day (UTC) the rule denies, \
                 like deny_from = 2027-01-15"
            ))
        }
    };
    let month = time::Month::try_from(date.month)
        .map_err(|_| format!("deny_from = {value}: month out of range"))?;
    time::Date::from_calendar_date(i32::from(date.year), month, date.day)
        .map_err(|e| format!("deny_from = {value}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_lowercased_and_ports_refused() {
        assert_eq!(
            normalise_host("Financien.Intern.NL").unwrap(),
            "financien.intern.nl"
        );
        assert!(normalise_host("a.nl:443")
            .unwrap_err()
            .contains("has a port"));
        assert!(normalise_host("[::1]:443").is_err());
        assert_eq!(normalise_host("[::1]").unwrap(), "[::1]");
        assert!(normalise_host("").is_err());
        assert!(normalise_host("a/b").is_err());
    }

    #[test]
    fn path_prefixes_drop_trailing_slash() {
        assert_eq!(normalise_path_prefix("/").unwrap(), "/");
        assert_eq!(normalise_path_prefix("/fin/").unwrap(), "/fin");
        assert_eq!(normalise_path_prefix("//").unwrap(), "/");
        assert!(normalise_path_prefix("fin").is_err());
        assert!(normalise_path_prefix("/a?b").is_err());
    }

    #[test]
    fn upstreams_need_http_or_https_and_a_host() {
        assert!(parse_upstream("http://10.1.2.3:8080").is_ok());
        assert!(parse_upstream("https://app.intern/base").is_ok());
        assert!(parse_upstream("ftp://x").unwrap_err().contains("scheme"));
        assert!(parse_upstream("/relative").is_err());
        assert!(parse_upstream("http://exa mple").is_err());
    }

    #[test]
    fn fingerprints_become_bytes() {
        let colons = "AB:".repeat(31) + "AB";
        assert_eq!(fingerprint(&colons).unwrap(), [0xab; 32]);
        assert_eq!(fingerprint(&"0f".repeat(32)).unwrap(), [0x0f; 32]);
        for bad in [
            "abcd".to_string(),
            "zz".repeat(32),
            "ab".repeat(33),
            "é".repeat(64),
        ] {
            let err = fingerprint(&bad).unwrap_err();
            assert!(err.contains("is not a SHA-256 fingerprint"), "{err}");
        }
    }

    #[test]
    fn os_families_are_named() {
        assert_eq!(os_family("macos").unwrap(), OsFamily::Macos);
        assert!(os_family("win").is_err());
    }

    #[test]
    fn expires_must_be_a_local_date() {
        let d: toml::value::Datetime = "2026-12-31".parse().unwrap();
        assert_eq!(
            expires_date(&d).unwrap(),
            time::macros::date!(2026 - 12 - 31)
        );
        for bad in ["2026-12-31T10:00:00", "2026-12-31T10:00:00Z", "10:00:00"] {
            let d: toml::value::Datetime = bad.parse().unwrap();
            assert!(
                expires_date(&d).unwrap_err().contains("is not a date"),
                "{bad}"
            );
        }
    }
}
