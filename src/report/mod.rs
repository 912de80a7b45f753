//! `posture-gate report`: where prohibited software is still in use, at
//! which organisation (the certificate's O: department, supplier or agency)
//! and unit, read from audit logs.
//!
//! One pass over any number of logs (plain, rotated, gzip'd; schema-1 JSON
//! Lines and the `<time>  INFO audit: <json>` lines of earlier gates), in
//! any order: every fact kept is a first/last time or a latest state, so the
//! newest-first order of `audit.jsonl audit.jsonl.1 ...` changes nothing.
//! Memory grows with the distinct devices and their findings, never with
//! the size of the logs: a line is parsed in a reused buffer into borrowed
//! fields and dropped.
//!
//! A finding (device, catalogue entry, product, version) is
//! - `in use` when no valid attestation of the device came after it was last
//!   seen (its latest attestation still reports it), unless
//! - `exempt`: every segment's latest record of it names an exemption that
//!   has not expired on the report's day;
//! - `cleaned` when a valid attestation of the device came after it was
//!   last seen: the device reported again without it.

mod parse;
mod render;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

pub use render::Format;

/// Longest line read; the rest of a longer one is skipped, so one line
/// without an end cannot take the memory.
pub const MAX_LINE: usize = 1 << 20;
/// How many skipped lines are named by file and number.
pub const SKIPPED_NAMED: usize = 5;

/// Errors of reading the logs.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A log could not be opened or read (a gzip'd one: or decompressed).
    #[error("{name}: {source}")]
    Read {
        /// The file as given, or `-` for standard input.
        name: String,
        /// What failed.
        source: io::Error,
    },
}

/// How findings are grouped in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The certificate's O: department, supplier or agency.
    Organisation,
    /// The certificate's OU; a device with several is under each.
    Unit,
    /// The catalogue entry (`kaspersky`).
    Catalogue,
    /// The device.
    Device,
}

impl GroupBy {
    /// The word of `--by` and of the JSON's `by`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Organisation => "organisation",
            GroupBy::Unit => "unit",
            GroupBy::Catalogue => "catalogue",
            GroupBy::Device => "device",
        }
    }
}

/// Where a finding stands at the end of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The device's latest report still has it, and no current exemption
    /// covers it everywhere.
    InUse,
    /// Still reported, but waived by an exemption that has not expired.
    Exempt,
    /// A later valid attestation of the device did not report it.
    Cleaned,
}

impl Status {
    /// `in use`, `exempt`, `cleaned`.
    pub fn label(self) -> &'static str {
        match self {
            Status::InUse => "in use",
            Status::Exempt => "exempt",
            Status::Cleaned => "cleaned",
        }
    }
}

#[derive(Debug)]
struct Identity {
    subject: Box<str>,
    organization: Option<Box<str>>,
    units: Box<[Box<str>]>,
}

#[derive(Debug)]
struct SegmentState {
    segment: Box<str>,
    /// When this segment's record of the finding was last written.
    seen: i64,
    action: Box<str>,
    exemption: Option<Box<str>>,
    exemption_expires: Option<Box<str>>,
}

#[derive(Debug)]
struct FindingState {
    catalog_id: Box<str>,
    product: Box<str>,
    version: Option<Box<str>>,
    vendor: Option<Box<str>>,
    category: Option<Box<str>>,
    first_seen: i64,
    last_seen: i64,
    segments: Vec<SegmentState>,
}

#[derive(Debug, Default)]
struct DeviceState {
    /// The latest valid attestation's time.
    latest_attestation: Option<i64>,
    /// From the latest event that had findings.
    identity: Option<(i64, Identity)>,
    findings: Vec<FindingState>,
}

/// The report being read: feed it logs, then [`Reader::finish`].
#[derive(Debug)]
pub struct Reader {
    since: Option<i64>,
    devices: HashMap<Box<str>, DeviceState>,
    files: Vec<String>,
    lines: u64,
    events: u64,
    old_format: u64,
    skipped: u64,
    skipped_named: Vec<(String, u64)>,
    buf: Vec<u8>,
}

impl Reader {
    /// A reader that keeps only events at or after `since` (unix
    /// microseconds).
    pub fn new(since: Option<i64>) -> Reader {
        Reader {
            since,
            devices: HashMap::new(),
            files: Vec::new(),
            lines: 0,
            events: 0,
            old_format: 0,
            skipped: 0,
            skipped_named: Vec::new(),
            buf: Vec::with_capacity(8192),
        }
    }

    /// Reads a log file, or standard input for `-`; gzip'd content (by its
    /// magic bytes, whatever the name) is decompressed on the way.
    pub fn read_path(&mut self, path: &Path) -> Result<(), ReportError> {
        let name = path.display().to_string();
        let err = |source| ReportError::Read {
            name: name.clone(),
            source,
        };
        if path.as_os_str() == "-" {
            let stdin = io::stdin();
            return self.read(&name, stdin.lock());
        }
        let file = std::fs::File::open(path).map_err(err)?;
        self.read(&name, file)
    }

    /// Reads one log from `input` (plain or gzip'd), named `name` in
    /// messages.
    pub fn read<R: Read>(&mut self, name: &str, input: R) -> Result<(), ReportError> {
        let err = |source| ReportError::Read {
            name: name.to_owned(),
            source,
        };
        let mut input = BufReader::with_capacity(256 * 1024, input);
        let gzip = input.fill_buf().map_err(err)?.starts_with(&[0x1f, 0x8b]);
        self.files.push(name.to_owned());
        if gzip {
            let decoder = flate2::bufread::MultiGzDecoder::new(input);
            self.read_lines(name, BufReader::with_capacity(256 * 1024, decoder))
        } else {
            self.read_lines(name, input)
        }
        .map_err(err)
    }

    fn read_lines<R: BufRead>(&mut self, name: &str, mut input: R) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let mut number = 0u64;
        let result = loop {
            match read_line(&mut input, &mut buf) {
                Ok(None) => break Ok(()),
                Ok(Some(complete)) => {
                    number += 1;
                    self.lines += 1;
                    if !complete || !self.line(&buf) {
                        self.skip(name, number);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.buf = buf;
        result
    }

    fn skip(&mut self, name: &str, number: u64) {
        self.skipped += 1;
        if self.skipped_named.len() < SKIPPED_NAMED {
            self.skipped_named.push((name.to_owned(), number));
        }
    }

    /// Takes one line; `false` when it is no audit event.
    fn line(&mut self, bytes: &[u8]) -> bool {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // Blank lines (a final newline twice) are neither events nor
            // worth a warning.
            return true;
        }
        let Some(event) = parse::event(bytes) else {
            return false;
        };
        self.events += 1;
        if event.old_format {
            self.old_format += 1;
        }
        if self.since.is_some_and(|since| event.at < since) {
            return true;
        }
        let at = event.at;
        let line = event.line;
        let Some(device) = line.device else {
            return true;
        };
        let attestation = match line.event.as_deref() {
            Some("attestation") => {
                if line.valid != Some(true) {
                    return true;
                }
                true
            }
            Some("decision") => false,
            // Refused requests, changes, TLS refusals and reloads say
            // nothing about what a device runs.
            _ => return true,
        };
        if !attestation && line.findings.is_empty() {
            return true;
        }
        let state = match self.devices.get_mut(device.fingerprint_sha256.as_ref()) {
            Some(s) => s,
            None => self
                .devices
                .entry(device.fingerprint_sha256.as_ref().into())
                .or_default(),
        };
        if attestation {
            state.latest_attestation = Some(state.latest_attestation.map_or(at, |t| t.max(at)));
        }
        if line.findings.is_empty() {
            return true;
        }
        if state.identity.as_ref().is_none_or(|(t, _)| *t <= at) {
            state.identity = Some((
                at,
                Identity {
                    subject: device.subject.as_ref().into(),
                    organization: device.organization.as_deref().map(Into::into),
                    units: device
                        .organizational_units
                        .iter()
                        .map(|u| u.as_ref().into())
                        .collect(),
                },
            ));
        }
        for f in &line.findings {
            record(state, at, f);
        }
        true
    }

    /// The report as of `today` (`YYYY-MM-DD`, UTC: exemptions that expired
    /// before it no longer count).
    pub fn finish(self, today: time::Date) -> Report {
        let today = today.to_string();
        let mut rows = Vec::new();
        for (fingerprint, device) in self.devices {
            let Some((_, identity)) = device.identity else {
                continue;
            };
            for f in device.findings {
                rows.push(row(
                    &fingerprint,
                    &identity,
                    device.latest_attestation,
                    f,
                    &today,
                ));
            }
        }
        rows.sort_by(|a, b| {
            (
                a.status,
                &a.subject,
                &a.fingerprint_sha256,
                &a.catalog_id,
                &a.product,
                &a.version,
            )
                .cmp(&(
                    b.status,
                    &b.subject,
                    &b.fingerprint_sha256,
                    &b.catalog_id,
                    &b.product,
                    &b.version,
                ))
        });
        Report {
            rows,
            input: Input {
                files: self.files,
                lines: self.lines,
                events: self.events,
                old_format: self.old_format,
                skipped: self.skipped,
                skipped_lines: self
                    .skipped_named
                    .into_iter()
                    .map(|(file, line)| SkippedLine { file, line })
                    .collect(),
            },
            since: self.since,
            today,
        }
    }
}

/// Reads a line into `buf` without its end; `Some(false)` when it was
/// longer than [`MAX_LINE`] (the rest is read and dropped), `None` at the
/// end of the input.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let mut complete = true;
    let mut any = false;
    loop {
        let available = match input.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(complete));
        }
        any = true;
        let (part, used, end) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if complete && buf.len() + part.len() <= MAX_LINE {
            buf.extend_from_slice(part);
        } else {
            complete = false;
            buf.clear();
        }
        input.consume(used);
        if end {
            return Ok(Some(complete));
        }
    }
}

fn record(state: &mut DeviceState, at: i64, f: &parse::FindingRef<'_>) {
    let version = f.item.version.as_deref();
    let found = state.findings.iter_mut().find(|s| {
        *s.catalog_id == *f.catalog_id
            && *s.product == *f.item.name
            && s.version.as_deref() == version
    });
    let finding = match found {
        Some(s) => s,
        None => {
            state.findings.push(FindingState {
                catalog_id: f.catalog_id.as_ref().into(),
                product: f.item.name.as_ref().into(),
                version: version.map(Into::into),
                vendor: f.item.vendor.as_deref().map(Into::into),
                category: f.category.as_deref().map(Into::into),
                first_seen: at,
                last_seen: at,
                segments: Vec::new(),
            });
            let last = state.findings.len() - 1;
            &mut state.findings[last]
        }
    };
    finding.first_seen = finding.first_seen.min(at);
    finding.last_seen = finding.last_seen.max(at);
    let segment = match finding
        .segments
        .iter_mut()
        .position(|s| *s.segment == *f.segment)
    {
        Some(i) => &mut finding.segments[i],
        None => {
            finding.segments.push(SegmentState {
                segment: f.segment.as_ref().into(),
                seen: i64::MIN,
                action: "".into(),
                exemption: None,
                exemption_expires: None,
            });
            let last = finding.segments.len() - 1;
            &mut finding.segments[last]
        }
    };
    if at >= segment.seen {
        segment.seen = at;
        if *segment.action != *f.action {
            segment.action = f.action.as_ref().into();
        }
        if segment.exemption.as_deref() != f.exemption.as_deref() {
            segment.exemption = f.exemption.as_deref().map(Into::into);
        }
        if segment.exemption_expires.as_deref() != f.exemption_expires.as_deref() {
            segment.exemption_expires = f.exemption_expires.as_deref().map(Into::into);
        }
    }
}

fn row(
    fingerprint: &str,
    identity: &Identity,
    latest_attestation: Option<i64>,
    f: FindingState,
    today: &str,
) -> Row {
    let cleaned = latest_attestation.is_some_and(|t| t > f.last_seen);
    // The segments of the posture in force: recorded at or after the latest
    // attestation (decisions judge the posture it left).
    let from = latest_attestation.unwrap_or(i64::MIN).min(f.last_seen);
    let mut segments: Vec<SegmentRow> = f
        .segments
        .into_iter()
        .filter(|s| cleaned || s.seen >= from)
        .map(|s| SegmentRow {
            segment: s.segment.into(),
            action: s.action.into(),
            exemption: s.exemption.map(Into::into),
            exemption_expires: s.exemption_expires.map(Into::into),
        })
        .collect();
    segments.sort_by(|a, b| a.segment.cmp(&b.segment));
    let exempt = !segments.is_empty()
        && segments.iter().all(|s| {
            s.exemption.is_some()
                && s.exemption_expires
                    .as_deref()
                    // An exemption logged without its expiry (gates before
                    // this report) waived the finding as far as is known.
                    .is_none_or(|day| day >= today)
        });
    let status = if cleaned {
        Status::Cleaned
    } else if exempt {
        Status::Exempt
    } else {
        Status::InUse
    };
    let action = ["deny", "warn", "allow"]
        .into_iter()
        .find(|a| segments.iter().any(|s| s.action == *a))
        .or_else(|| segments.first().map(|s| s.action.as_str()))
        .unwrap_or("")
        .to_owned();
    let exemption = segments.iter().find(|s| s.exemption.is_some());
    Row {
        status,
        fingerprint_sha256: fingerprint.to_owned(),
        subject: identity.subject.as_ref().to_owned(),
        organization: identity.organization.as_deref().map(str::to_owned),
        organizational_units: identity
            .units
            .iter()
            .map(|u| u.as_ref().to_owned())
            .collect(),
        catalog_id: f.catalog_id.into(),
        product: f.product.into(),
        vendor: f.vendor.map(Into::into),
        version: f.version.map(Into::into),
        category: f.category.map(Into::into),
        action,
        exemption: exemption.and_then(|s| s.exemption.clone()),
        exemption_expires: exemption.and_then(|s| s.exemption_expires.clone()),
        first_seen: parse::format_time(f.first_seen),
        last_seen: parse::format_time(f.last_seen),
        latest_attestation: latest_attestation.map(parse::format_time),
        segments,
    }
}

/// One finding of one device.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// In use, exempt or cleaned.
    pub status: Status,
    /// The device certificate's SHA-256 (hex).
    pub fingerprint_sha256: String,
    /// Its RFC 4514 subject.
    pub subject: String,
    /// Its O.
    pub organization: Option<String>,
    /// Its OUs.
    pub organizational_units: Vec<String>,
    /// The catalogue entry (`kaspersky`).
    pub catalog_id: String,
    /// The product as reported.
    pub product: String,
    /// Its vendor as reported.
    pub vendor: Option<String>,
    /// Its version as reported.
    pub version: Option<String>,
    /// The catalogue category it matched.
    pub category: Option<String>,
    /// The strictest action of the segments (`deny`, `warn`, `allow`).
    pub action: String,
    /// The exemption that waived it in some segment.
    pub exemption: Option<String>,
    /// The last day that exemption applies.
    pub exemption_expires: Option<String>,
    /// First time it was reported (RFC 3339, UTC).
    pub first_seen: String,
    /// Last time it was reported or acted on.
    pub last_seen: String,
    /// The device's latest valid attestation.
    pub latest_attestation: Option<String>,
    /// The segments whose policies act on it, as last recorded.
    pub segments: Vec<SegmentRow>,
}

/// One segment's latest record of a finding.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentRow {
    /// The segment.
    pub segment: String,
    /// Its action.
    pub action: String,
    /// The exemption that waived it there.
    pub exemption: Option<String>,
    /// The last day of that exemption.
    pub exemption_expires: Option<String>,
}

/// What was read.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    /// The logs, as named.
    pub files: Vec<String>,
    /// Lines read.
    pub lines: u64,
    /// Of those, audit events.
    pub events: u64,
    /// Of those, in the old `<time>  INFO audit: <json>` format.
    pub old_format: u64,
    /// Lines that were no audit events.
    pub skipped: u64,
    /// The first few of them.
    pub skipped_lines: Vec<SkippedLine>,
}

/// A line that was skipped.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedLine {
    /// The log.
    pub file: String,
    /// The line number, from 1.
    pub line: u64,
}

/// The finished report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every finding of every device, most urgent first.
    pub rows: Vec<Row>,
    /// What was read.
    pub input: Input,
    since: Option<i64>,
    today: String,
}

impl Report {
    /// Whether some prohibited software is still in use (not cleaned, not
    /// under a current exemption): what exit code 3 tells cron.
    pub fn still_in_use(&self) -> bool {
        self.rows.iter().any(|r| r.status == Status::InUse)
    }
}

/// Parses `--since`: RFC 3339, or a day (`YYYY-MM-DD`, from its midnight
/// UTC); unix microseconds.
pub fn parse_since(s: &str) -> Option<i64> {
    if let Some(t) = parse::parse_time(s) {
        return Some(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(s, &format).ok()?;
    let t = day.midnight().assume_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_longer_than_the_limit_is_dropped_and_the_next_one_reads() {
        let mut text = vec![b'x'; MAX_LINE + 10];
        text.extend_from_slice(b"\nnext\nlast");
        let mut input = BufReader::with_capacity(4096, &text[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut input, &mut buf).unwrap(), Some(false));
        assert_eq!(read_line(&mut input, &mut buf).unwrap(), Some(true));
        assert_eq!(buf, b"next");
        assert_eq!(read_line(&mut input, &mut buf).unwrap(), Some(true));
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut input, &mut buf).unwrap(), None);
    }

    #[test]
    fn since_takes_a_day_or_a_time() {
        assert_eq!(parse_since("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_since("1970-01-01T00:00:01+00:00"), Some(1_000_000));
        assert_eq!(parse_since("yesterday"), None);
    }
}
