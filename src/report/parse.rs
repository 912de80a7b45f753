//! One audit line to the few fields the report needs, borrowed from the
//! line buffer: no `serde_json::Value`, no allocation for a line whose
//! strings carry no escapes.

use std::borrow::Cow;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The device of an event, as `posture_core::audit::Device` serialises.
#[derive(Debug, Deserialize)]
pub(super) struct DeviceRef<'a> {
    #[serde(borrow)]
    pub fingerprint_sha256: Cow<'a, str>,
    #[serde(borrow)]
    pub subject: Cow<'a, str>,
    #[serde(borrow, default)]
    pub organization: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub organizational_units: Vec<Cow<'a, str>>,
}

/// The reported item of a finding (`posture_core::verdict::FindingItem`).
#[derive(Debug, Deserialize)]
pub(super) struct ItemRef<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub vendor: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub version: Option<Cow<'a, str>>,
}

/// One finding (`posture_core::verdict::Finding`).
#[derive(Debug, Deserialize)]
pub(super) struct FindingRef<'a> {
    #[serde(borrow)]
    pub catalog_id: Cow<'a, str>,
    #[serde(borrow)]
    pub segment: Cow<'a, str>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(borrow)]
    pub item: ItemRef<'a>,
    #[serde(borrow, default)]
    pub category: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub exemption: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub exemption_expires: Option<Cow<'a, str>>,
}

/// The fields of an audit line the report reads; every other field (and
/// there are many: source, route, status, latency) is skipped unparsed.
#[derive(Debug, Deserialize)]
pub(super) struct Line<'a> {
    #[serde(default)]
    pub schema: Option<u64>,
    #[serde(borrow, default)]
    pub time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub device: Option<DeviceRef<'a>>,
    #[serde(default)]
    pub valid: Option<bool>,
    #[serde(borrow, default)]
    pub findings: Vec<FindingRef<'a>>,
}

/// A line that is an audit event, with its time in unix microseconds.
pub(super) struct Event<'a> {
    pub at: i64,
    pub line: Line<'a>,
    /// The line was in the format gates wrote before schema 1:
    /// `<time>  INFO audit: <event JSON>`.
    pub old_format: bool,
}

/// What the tracing formatter put between the time and the event JSON.
const OLD_MARKER: &[u8] = b" INFO audit: ";

/// The event on one line, or `None` when the line is no audit event: not
/// JSON, not an object, another schema, no or an unreadable time, no event
/// kind; in the old format, any diagnostic that is not an audit message.
pub(super) fn event(bytes: &[u8]) -> Option<Event<'_>> {
    let bytes = trim_ascii(bytes);
    if bytes.first() == Some(&b'{') {
        let line: Line<'_> = serde_json::from_slice(bytes).ok()?;
        if line.schema != Some(1) || line.event.is_none() {
            return None;
        }
        let at = parse_time(line.time.as_deref()?)?;
        return Some(Event {
            at,
            line,
            old_format: false,
        });
    }
    // `2026-11-23T13:30:49.123456Z  INFO audit: {...}`
    let space = memchr::memchr(b' ', bytes)?;
    let time = std::str::from_utf8(&bytes[..space]).ok()?;
    let rest = &bytes[space..];
    let marker = memchr::memmem::find(rest, OLD_MARKER)?;
    // Only spaces between the time and the level: the level is padded.
    if rest[..marker].iter().any(|b| *b != b' ') {
        return None;
    }
    let json = &rest[marker + OLD_MARKER.len()..];
    let line: Line<'_> = serde_json::from_slice(json).ok()?;
    // An old line has no schema of its own; one that names another schema
    // is no line of this reader.
    if line.schema.is_some_and(|s| s != 1) || line.event.is_none() {
        return None;
    }
    let at = parse_time(time)?;
    Some(Event {
        at,
        line,
        old_format: true,
    })
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// RFC 3339 with an offset to unix microseconds.
pub(super) fn parse_time(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

/// Unix microseconds as RFC 3339 in UTC (`2026-11-30T10:44:31.123456Z`).
pub(super) fn format_time(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| micros.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_1_line_reads_with_its_time() {
        let e = event(br#"{"schema":1,"time":"2026-11-30T10:44:31.5+01:00","event":"attestation","valid":true}"#)
            .unwrap();
        assert_eq!(e.at, parse_time("2026-11-30T09:44:31.5Z").unwrap());
        assert_eq!(e.line.valid, Some(true));
        assert!(!e.old_format);
    }

    #[test]
    fn an_old_line_takes_its_time_from_the_prefix() {
        let e = event(
            br#"2026-11-23T13:30:49.123456Z  INFO audit: {"event":"decision","findings":[]}"#,
        )
        .unwrap();
        assert_eq!(e.at, parse_time("2026-11-23T13:30:49.123456Z").unwrap());
        assert!(e.old_format);
    }

    #[test]
    fn other_schemas_diagnostics_and_garbage_are_no_events() {
        for line in [
            &br#"{"schema":2,"time":"2026-11-30T10:44:31Z","event":"decision"}"#[..],
            br#"{"schema":1,"event":"decision"}"#,
            br#"{"schema":1,"time":"yesterday","event":"decision"}"#,
            br#"{"schema":1,"time":"2026-11-30T10:44:31Z"}"#,
            br#"[1,2]"#,
            b"2026-11-23T13:30:49Z  WARN posture_gate::gate: reload failed",
            b"2026-11-23T13:30:49Z  INFO audit: not json",
            b"",
            b"\xff\xfe{",
        ] {
            assert!(event(line).is_none(), "{}", String::from_utf8_lossy(line));
        }
    }
}
