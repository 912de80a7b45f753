//! Which route a request belongs to: host plus longest path prefix on whole
//! segments, after the path has been normalised. Normalising first is what
//! stops `//`, `%2e%2e` or `%2F` from reaching one route's upstream under
//! another route's segment: the route is chosen on exactly the path the
//! upstream receives.
//!
//! Upstreams do not all read a path the same way, so what one of them would
//! read as another route's path is refused with a 400 (the gate's
//! bad-request page), never forwarded:
//!
//! - an encoded `/` (`%2F`), `\` (`%5C`) or NUL (`%00`), and a raw `\`,
//!   control character, space or non-ASCII byte;
//! - a broken escape (`%2`, `%zz`, IIS's `%u002e`), and escapes that do not
//!   decode to UTF-8: overlong forms such as `%C0%AE` (a `.` to old
//!   decoders), surrogates, truncated sequences;
//! - a dot segment with path parameters: `..;`, `..;x=1`, `.;`, `%2e%2e;`,
//!   `..%3B` (Tomcat, Spring and Jetty strip `;...` and then see `..`);
//! - a segment made of dots and encoded white space other than plain `.`
//!   and `..`: `..%20`, `.%09`, `%20..`, `...` (IIS and Windows trim
//!   trailing dots and spaces);
//! - `%25` followed by two hex digits or by `u` (a double-encoded escape:
//!   `%252e` is `%2e` to an upstream that decodes twice), unless the route
//!   sets `allow_encoded_percent = true`. A route is known only after
//!   routing, so [`normalise_path`] refuses and the caller retries with
//!   [`normalise_path_allowing_encoded_percent`] to find out whose it is.
//!
//! Path parameters on other segments are kept and forwarded (`;jsessionid=`
//! needs them), but routes are matched on the path as the servers most
//! likely to read it differently map it ([`route_view`]): every segment's
//! `;...` removed (servlet containers) and its trailing dots and encoded
//! white space trimmed (IIS), with prefixes compared whatever the case of
//! their letters (IIS, Windows). So `/financien;x=1/y`, `/financien./y`,
//! `/financien%20/y` and `/FINANCIEN/y` are all judged as `/financien/y`,
//! and the upstream gets them as sent. An upstream that reads them
//! literally sees a name that merely starts like the judged segment's
//! (`financien;x=1`), which only a resource so named can answer.
//! Dot segments themselves (`/kantine;x=1/../financien`) are resolved by
//! the gate, which forwards `/financien` under the `/financien` route.

use std::borrow::Cow;
use std::collections::HashMap;

use posture_core::config::snapshot::Route;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not in origin form")]
    NotOriginForm,
    #[error("the path has an encoded slash, backslash or NUL")]
    ForbiddenEncoding,
    #[error("the path has a broken percent-encoding")]
    BadEncoding,
    #[error("the path's percent-encoded bytes are not UTF-8")]
    InvalidUtf8,
    #[error("the path has a dot segment with parameters or white space")]
    AmbiguousDotSegment,
    #[error("the path has a double-encoded percent sign")]
    EncodedPercent,
}

/// Normalises a request path (without query): decodes percent-encoded
/// unreserved characters, refuses what the module docs list, uppercases
/// the remaining escapes, collapses empty segments and resolves `.` and
/// `..` (never above the root, as RFC 3986 section 5.2.4 does).
pub fn normalise_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    normalise(path, false)
}

/// [`normalise_path`] for a route with `allow_encoded_percent`: `%25xx`
/// passes as it is.
pub fn normalise_path_allowing_encoded_percent(path: &str) -> Result<Cow<'_, str>, PathError> {
    normalise(path, true)
}

fn normalise(path: &str, allow_encoded_percent: bool) -> Result<Cow<'_, str>, PathError> {
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
    let decoded = decode_unreserved(path, allow_encoded_percent)?;
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
                if is_ambiguous_dot_segment(s) {
                    return Err(PathError::AmbiguousDotSegment);
                }
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
/// segment, no dot segment and no segment that could pass for one.
fn is_clean(path: &str) -> bool {
    !path.contains('%')
        && !path.contains("//")
        && !path.split('/').any(|s| {
            let core = s.split(';').next().unwrap_or(s);
            !core.is_empty() && core.bytes().all(|b| b == b'.')
        })
}

/// A segment (decoded as far as [`decode_unreserved`] goes, escapes in
/// upper case) that is not `.` or `..` but that some upstream reads as one:
/// its part before the first `;` or `%3B` is made of dots and encoded white
/// space, with at least one dot, and it is not exactly `.` or `..` with
/// nothing after.
fn is_ambiguous_dot_segment(segment: &str) -> bool {
    let core_end = [segment.find(';'), segment.find("%3B")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(segment.len());
    let mut rest = &segment[..core_end];
    let mut dots = 0;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            dots += 1;
            rest = r;
        } else if let Some(r) = WHITE_SPACE_ESCAPES
            .iter()
            .find_map(|w| rest.strip_prefix(w))
        {
            rest = r;
        } else {
            return false;
        }
    }
    dots > 0 && !(matches!(segment, "." | ".."))
}

fn hex_value(pair: &[u8]) -> Option<u8> {
    std::str::from_utf8(pair)
        .ok()
        .and_then(|h| u8::from_str_radix(h, 16).ok())
}

fn decode_unreserved(path: &str, allow_encoded_percent: bool) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    // Every byte the escapes stand for, in order, to check they are UTF-8:
    // raw bytes are ASCII (checked by the caller), so only escapes can
    // make the path's text invalid.
    let mut escaped: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let value = bytes
            .get(i + 1..i + 3)
            .and_then(hex_value)
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
        // A run of escapes is checked as a whole when it ends.
        if value >= 0x80 {
            escaped.push(value);
        } else if !escaped.is_empty() {
            check_utf8(&mut escaped)?;
        }
        i += 3;
        if !escaped.is_empty() && bytes.get(i) != Some(&b'%') {
            check_utf8(&mut escaped)?;
        }
    }
    check_utf8(&mut escaped)?;
    // Judged on the decoded form, which is what the upstream gets: in
    // `%251%65` the `%65` becomes `e` only here, and `%251e` is an escape
    // to an upstream that decodes twice (found by the normalise fuzzer).
    if !allow_encoded_percent && has_encoded_escape(&out) {
        return Err(PathError::EncodedPercent);
    }
    Ok(out)
}

/// Whether a `%25` in `decoded` is followed by what makes it an escape.
fn has_encoded_escape(decoded: &str) -> bool {
    let bytes = decoded.as_bytes();
    bytes
        .windows(3)
        .enumerate()
        .any(|(i, w)| w == b"%25" && encodes_an_escape(&bytes[i + 3..]))
}

/// Whether what follows a `%25` makes it an escape once decoded: two hex
/// digits, or IIS's `u` form.
fn encodes_an_escape(after: &[u8]) -> bool {
    match after {
        [b'u' | b'U', ..] => true,
        [a, b, ..] => a.is_ascii_hexdigit() && b.is_ascii_hexdigit(),
        _ => false,
    }
}

fn check_utf8(bytes: &mut Vec<u8>) -> Result<(), PathError> {
    let ok = std::str::from_utf8(bytes).is_ok();
    bytes.clear();
    if ok {
        Ok(())
    } else {
        Err(PathError::InvalidUtf8)
    }
}

/// The path routes are matched on: a normalised path with each segment's
/// `;` parameters and trailing dots and encoded white space removed, and
/// the segments that leaves empty dropped. Borrowed when there are none,
/// which is nearly always.
pub fn route_view(path: &str) -> Cow<'_, str> {
    if !path.split('/').any(|s| view_of(s).len() != s.len()) {
        return Cow::Borrowed(path);
    }
    let mut view = String::with_capacity(path.len());
    for segment in path.split('/') {
        let core = view_of(segment);
        if !core.is_empty() {
            view.push('/');
            view.push_str(core);
        }
    }
    if view.is_empty() || path.ends_with('/') {
        view.push('/');
    }
    Cow::Owned(view)
}

/// One segment as a servlet container (parameters stripped) and IIS
/// (trailing dots and white space trimmed) map it.
fn view_of(segment: &str) -> &str {
    let mut core = segment.split(';').next().unwrap_or(segment);
    loop {
        let trimmed = core.strip_suffix('.').or_else(|| {
            WHITE_SPACE_ESCAPES
                .iter()
                .find_map(|w| core.strip_suffix(w))
        });
        match trimmed {
            Some(t) => core = t,
            None => return core,
        }
    }
}

/// Encoded white space as [`decode_unreserved`] leaves it (upper case).
const WHITE_SPACE_ESCAPES: [&str; 6] = ["%20", "%09", "%0A", "%0B", "%0C", "%0D"];

/// The host a request is for: port stripped, lowercased, a trailing dot
/// dropped. `None` unless it is a DNS name or IP address (letters, digits,
/// `-`, `.`, `_`, or a bracketed IPv6 literal) with at most one port of at
/// most five digits: `host:443:443`, `user@host` and `host:x` are refused.
pub fn normalise_host(authority: &str) -> Option<String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            // An IPv6 literal keeps its brackets; the port follows `]`.
            let end = rest.find(']')?;
            let literal = &rest[..end];
            if literal.is_empty()
                || !literal
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return None;
            }
            (&authority[..end + 2], &rest[end + 1..])
        }
        None => match authority.find(':') {
            Some(colon) => (&authority[..colon], &authority[colon..]),
            None => (authority, ""),
        },
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(':')?;
        if digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    // A second trailing dot is an empty label, not a host (`..`, `a..`).
    if host.is_empty()
        || host.ends_with('.')
        || !(host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')))
    {
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
/// Letters match whatever their case: IIS and other servers on Windows
/// serve `/APP/x` as `/app/x`, so it is judged as `/app/x`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => {
            let rest = &path[prefix.len()..];
            rest.is_empty() || rest.starts_with('/')
        }
        _ => false,
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
        assert_eq!(normalise_host("a.test:"), Some("a.test".into()));
        assert_eq!(normalise_host("[::1]"), Some("[::1]".into()));
        for bad in [
            "a.test:443:443",
            "a.test:x",
            "a.test:443x",
            "a.test:123456",
            "[::1]:443:443",
            "[::1]x",
            "[]",
            "[x]",
            "a%2etest",
            "a test",
        ] {
            assert_eq!(normalise_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn dot_segments_with_parameters_or_white_space_are_refused() {
        for p in [
            "/kantine/..;/financien/",
            "/kantine/..;x=1/financien",
            "/kantine/%2e%2e;/financien",
            "/kantine/%2E%2E;x/financien",
            "/kantine/.;/financien",
            "/kantine/..%3b/financien",
            "/kantine/..%20/financien",
            "/kantine/..%09/financien",
            "/kantine/%20../financien",
            "/kantine/.%20/financien",
            "/kantine/.../financien",
            "/kantine/..%20",
        ] {
            assert_eq!(norm(p), Err(PathError::AmbiguousDotSegment), "{p}");
        }
        // Parameters elsewhere and ordinary dots are fine.
        assert_eq!(norm("/kantine;x=1/../financien").unwrap(), "/financien");
        assert_eq!(norm("/app;jsessionid=1").unwrap(), "/app;jsessionid=1");
        assert_eq!(norm("/.well-known/x").unwrap(), "/.well-known/x");
        assert_eq!(norm("/a/..b/c.").unwrap(), "/a/..b/c.");
        assert_eq!(norm("/a/%20/b").unwrap(), "/a/%20/b");
    }

    #[test]
    fn double_encoded_percent_is_refused_unless_allowed() {
        for p in [
            "/kantine/%252e%252e/financien",
            "/a%2541",
            "/a%25u002e",
            "/a%252F",
        ] {
            assert_eq!(norm(p), Err(PathError::EncodedPercent), "{p}");
            assert_eq!(
                normalise_path_allowing_encoded_percent(p).map(Cow::into_owned),
                Ok(p.to_string()),
                "{p}"
            );
        }
        assert_eq!(norm("/100%25").unwrap(), "/100%25");
        assert_eq!(norm("/100%25zz").unwrap(), "/100%25zz");
        assert_eq!(norm("/100%25a").unwrap(), "/100%25a");
    }

    #[test]
    fn escapes_must_decode_to_utf8() {
        for p in [
            "/a/%C0%AE%C0%AE/b",
            "/a%c0%af",
            "/a%e0%80%ae",
            "/a%ED%A0%80",
            "/a%C3",
            "/a%C3a",
            "/a%C3%41",
            "/a%FF",
        ] {
            assert_eq!(norm(p), Err(PathError::InvalidUtf8), "{p}");
        }
        assert_eq!(norm("/%c3%a9%e2%82%ac").unwrap(), "/%C3%A9%E2%82%AC");
        assert_eq!(norm("/a%u002e"), Err(PathError::BadEncoding));
        assert_eq!(norm("/a\u{e9}"), Err(PathError::ForbiddenEncoding));
    }

    #[test]
    fn routes_see_the_path_without_parameters() {
        assert!(matches!(route_view("/a/b"), Cow::Borrowed("/a/b")));
        assert_eq!(route_view("/financien;x=1/y"), "/financien/y");
        assert_eq!(route_view("/;x/financien"), "/financien");
        assert_eq!(route_view("/app;jsessionid=1"), "/app");
        assert_eq!(route_view("/a;b/"), "/a/");
        assert_eq!(route_view("/;x"), "/");
        assert_eq!(route_view("/financien./y"), "/financien/y");
        assert_eq!(route_view("/financien%20/y"), "/financien/y");
        assert_eq!(route_view("/financien.%20.;x/y"), "/financien/y");
        assert_eq!(route_view("/a/b.txt"), "/a/b.txt");
        assert!(matches!(route_view("/a/.well-known/b.c"), Cow::Borrowed(_)));
    }

    #[test]
    fn prefixes_match_whatever_the_case() {
        let t = RouteTable::new(&[
            route("intra.example", "/"),
            route("intra.example", "/Financien"),
        ]);
        assert_eq!(t.lookup("intra.example", "/financien/x"), Some(1));
        assert_eq!(t.lookup("intra.example", "/FINANCIEN"), Some(1));
        assert_eq!(t.lookup("intra.example", "/financienx"), Some(0));
        assert_eq!(t.lookup("intra.example", "/fin"), Some(0));
        // A multi-byte character where the prefix would end: no panic.
        assert_eq!(t.lookup("intra.example", "/financie\u{e9}x"), Some(0));
    }

    fn route(host: &str, prefix: &str) -> Route {
        Route {
            host: host.into(),
            path_prefix: prefix.into(),
            upstream: "http://127.0.0.1:1".parse().unwrap(),
            upstream_ca: None,
            segment: 0,
            allow_encoded_percent: false,
            upgrades: Vec::new(),
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
