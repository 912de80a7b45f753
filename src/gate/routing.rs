//! Which route a request belongs to: host plus longest path prefix on whole
//! segments, after the path has been normalised. Normalising first is what
//! stops `//`, `%2e%2e` or `%2F` from reaching one route's upstream under
//! another route's segment: the route is chosen on exactly the path the
//! upstream receives.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::config::snapshot::Route;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not in origin form")]
    NotOriginForm,
    #[error("the path has an encoded slash, backslash or NUL")]
    ForbiddenEncoding,
    #[error("the path has a broken percent-encoding")]
    BadEncoding,
}

/// Normalises a request path (without query): decodes percent-encoded
/// unreserved characters, refuses encoded `/`, `\` and NUL (they would make
/// one path mean two things to gate and upstream), uppercases the remaining
/// escapes, collapses empty segments and resolves `.` and `..` (never above
/// the root, as RFC 3986 section 5.2.4 does).
pub fn normalise_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    // Non-ASCII too (RFC 3986 paths are ASCII): decoding works on bytes.
    if path
        .bytes()
        .any(|b| b == b'\\' || !(0x21..0x7f).contains(&b))
    {
        return Err(PathError::ForbiddenEncoding);
    }
    if is_clean(path) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = decoded.ends_with('/');
    for segment in decoded.split('/') {
        match segment {
            "" => {}
            "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            s => {
                out.push(s);
                trailing_slash = decoded.ends_with('/');
            }
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        result.push('/');
    }
    Ok(Cow::Owned(result))
}

/// The common case, checked without allocating: nothing to decode, no empty
/// segment and no dot segment.
fn is_clean(path: &str) -> bool {
    !path.contains('%') && !path.contains("//") && !path.split('/').any(|s| s == "." || s == "..")
}

fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
        let value = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or(PathError::BadEncoding)?;
        match value {
            b'/' | b'\\' | 0 => return Err(PathError::ForbiddenEncoding),
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                out.push(b as char)
            }
            b => {
                out.push('%');
                out.push_str(&format!("{b:02X}"));
            }
        }
        i += 3;
    }
    Ok(out)
}

/// The host a request is for: port stripped, lowercased, a trailing dot
/// dropped. `None` when it is empty or not a plausible host.
pub fn normalise_host(authority: &str) -> Option<String> {
    let host = if authority.starts_with('[') {
        // An IPv6 literal keeps its brackets; the port follows `]`.
        &authority[..=authority.find(']')?]
    } else {
        authority.split(':').next()?
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    // A second trailing dot is an empty label, not a host (`..`, `a..`).
    if host.is_empty() || host.ends_with('.') || host.contains(['@', '/', ' ']) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Routes by host, each host's prefixes longest first.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_host: HashMap<String, Vec<(String, usize)>>,
}

impl RouteTable {
    pub fn new(routes: &[Route]) -> RouteTable {
        let mut by_host: HashMap<String, Vec<(String, usize)>> = HashMap::new();
        for (index, route) in routes.iter().enumerate() {
            let prefix = route.path_prefix.trim_end_matches('/').to_string();
            by_host
                .entry(route.host.to_ascii_lowercase())
                .or_default()
                .push((prefix, index));
        }
        for prefixes in by_host.values_mut() {
            prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        }
        RouteTable { by_host }
    }

    /// The index of the route for a normalised host and path.
    pub fn lookup(&self, host: &str, path: &str) -> Option<usize> {
        self.by_host
            .get(host)?
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(_, index)| *index)
    }
}

/// `/app` matches `/app` and `/app/x`, never `/apple`. The prefix is stored
/// without a trailing slash, so the root prefix is the empty string.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalise_path(p).map(|c| c.into_owned())
    }

    #[test]
    fn clean_paths_are_borrowed() {
        assert!(matches!(
            normalise_path("/a/b.txt").unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(matches!(normalise_path("/").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn empty_and_dot_segments_are_resolved() {
        assert_eq!(norm("//finance/x").unwrap(), "/finance/x");
        assert_eq!(norm("/public/../finance/x").unwrap(), "/finance/x");
        assert_eq!(norm("/public/%2e%2e/finance").unwrap(), "/finance");
        assert_eq!(norm("/public/%2E%2e/").unwrap(), "/");
        assert_eq!(norm("/../../etc").unwrap(), "/etc");
        assert_eq!(norm("/a/./b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/a/b/").unwrap(), "/a/b/");
        assert_eq!(norm("/a/..").unwrap(), "/");
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_kept_uppercase() {
        assert_eq!(norm("/%61pp/%7euser").unwrap(), "/app/~user");
        assert_eq!(norm("/a%20b/%c3%a9").unwrap(), "/a%20b/%C3%A9");
        assert_eq!(norm("/100%25").unwrap(), "/100%25");
    }

    #[test]
    fn encoded_slash_backslash_and_nul_are_refused() {
        for p in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%5cb", "/a%00", "/a\\b"] {
            assert_eq!(norm(p), Err(PathError::ForbiddenEncoding), "{p}");
        }
        assert_eq!(norm("/a%2"), Err(PathError::BadEncoding));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(norm("*"), Err(PathError::NotOriginForm));
    }

    #[test]
    fn hosts_lose_port_case_and_trailing_dot() {
        assert_eq!(
            normalise_host("Finance.Example:8443").as_deref(),
            Some("finance.example")
        );
        assert_eq!(
            normalise_host("finance.example.").as_deref(),
            Some("finance.example")
        );
        assert_eq!(normalise_host("[::1]:443").as_deref(), Some("[::1]"));
        assert_eq!(normalise_host(""), None);
        assert_eq!(normalise_host("a@b"), None);
    }

    fn route(host: &str, prefix: &str) -> Route {
        Route {
            host: host.into(),
            path_prefix: prefix.into(),
            upstream: "http://127.0.0.1:1".parse().unwrap(),
            upstream_ca: None,
            segment: 0,
        }
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let t = RouteTable::new(&[
            route("intra.example", "/"),
            route("intra.example", "/app"),
            route("intra.example", "/app/admin/"),
            route("other.example", "/x"),
        ]);
        assert_eq!(t.lookup("intra.example", "/"), Some(0));
        assert_eq!(t.lookup("intra.example", "/apple"), Some(0));
        assert_eq!(t.lookup("intra.example", "/app"), Some(1));
        assert_eq!(t.lookup("intra.example", "/app/x"), Some(1));
        assert_eq!(t.lookup("intra.example", "/app/admin"), Some(2));
        assert_eq!(t.lookup("intra.example", "/app/admin/users"), Some(2));
        assert_eq!(t.lookup("other.example", "/"), None);
        assert_eq!(t.lookup("other.example", "/x/y"), Some(3));
        assert_eq!(t.lookup("unknown.example", "/"), None);
    }
}
