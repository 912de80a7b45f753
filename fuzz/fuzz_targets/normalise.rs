//! Path and host normalisation, with the invariants routing relies on: a
//! normalised path is in origin form, has no empty, `.` or `..` segment, no
//! percent-encoded unreserved character, no non-ASCII character the request
//! did not have, and normalising it again changes nothing; a normalised host
//! is lowercase and normalises to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_gate::gate::{normalise_host, normalise_path};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = normalise_path(text) {
        assert!(path.starts_with('/'), "{text:?} -> {path:?}");
        let inner = path.strip_prefix('/').unwrap_or(&path);
        let inner = inner.strip_suffix('/').unwrap_or(inner);
        if !inner.is_empty() {
            for segment in inner.split('/') {
                assert!(
                    !matches!(segment, "" | "." | ".."),
                    "{text:?} -> {path:?} has segment {segment:?}"
                );
            }
        }
        assert!(!path.contains("//"), "{text:?} -> {path:?}");
        assert!(
            !path.to_ascii_lowercase().contains("%2e"),
            "{text:?} -> {path:?} keeps an encoded dot"
        );
        // Decoding touches only ASCII: every non-ASCII character of the
        // result was in the request, in the same order.
        let mut from = text.chars().filter(|c| !c.is_ascii());
        for c in path.chars().filter(|c| !c.is_ascii()) {
            assert!(from.any(|f| f == c), "{text:?} -> {path:?} made up {c:?}");
        }
        match normalise_path(&path) {
            Ok(again) => assert_eq!(again, path, "not idempotent on {text:?}"),
            Err(e) => panic!("{text:?} -> {path:?} which is refused: {e}"),
        }
    }
    if let Some(host) = normalise_host(text) {
        assert!(!host.is_empty());
        assert_eq!(host, host.to_ascii_lowercase());
        assert!(!host.contains(['@', '/', ' ']), "{text:?} -> {host:?}");
        // A bracketed IPv6 literal keeps its colons; any other host lost its port.
        if !host.starts_with('[') {
            assert!(!host.contains(':'), "{text:?} -> {host:?}");
        }
        assert_eq!(
            normalise_host(&host).as_deref(),
            Some(host.as_str()),
            "host not idempotent on {text:?}"
        );
    }
});
