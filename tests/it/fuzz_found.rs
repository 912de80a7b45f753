//! Inputs the fuzz targets of `fuzz/` (see fuzz/README.md) found, kept as
//! regular tests. Parser findings of the agent live next to their parsers.

use posture_gate::gate::{normalise_host, normalise_path, PathError};

/// Target `normalise`: decoding copied each byte of a UTF-8 sequence as its
/// own character, so `/é/%41` became `/Ã©/A`, a path the client never sent.
/// http's URI parser already refuses raw non-ASCII request targets, so the
/// gate never saw one; the function now refuses them itself.
#[test]
fn a_path_with_raw_non_ascii_is_refused_not_mangled() {
    assert_eq!(
        normalise_path("/\u{e9}/%41"),
        Err(PathError::ForbiddenEncoding)
    );
    assert_eq!(normalise_path("/\u{e9}"), Err(PathError::ForbiddenEncoding));
    // Percent-encoded UTF-8 is how a request carries it, and stays as sent.
    assert_eq!(normalise_path("/%C3%A9/%41").unwrap(), "/%C3%A9/A");
}

/// Target `normalise`: `..:` normalised to `.`, which normalises to nothing;
/// a host made of dots, or with an empty last label, is no host at all.
#[test]
fn a_host_of_dots_is_no_host() {
    assert_eq!(normalise_host("..:443"), None);
    assert_eq!(normalise_host(".."), None);
    assert_eq!(normalise_host("intranet.example.."), None);
    assert_eq!(
        normalise_host("Intranet.Example.:443").as_deref(),
        Some("intranet.example")
    );
}

/// Target `normalise`, on the merged routing of issue 13: the `%25` check
/// looked at the raw bytes after it, so in `%251%65` the `%65` (an `e`)
/// hid the second hex digit, and the normalised path `%251e` was an escape
/// to an upstream that decodes twice; normalising it again refused it.
#[test]
fn an_encoded_percent_whose_hex_is_itself_encoded_is_refused() {
    for path in [
        "/a/%251%65",
        "/a/%25%32%65",
        "/a/%25%75",
        "/kantine/%252%65%252%65/x",
    ] {
        assert_eq!(
            normalise_path(path),
            Err(PathError::EncodedPercent),
            "{path}"
        );
    }
    // A `%25` followed by what is not an escape stays allowed.
    assert_eq!(normalise_path("/a/%25zz").unwrap(), "/a/%25zz");
}
