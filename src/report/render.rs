//! The report as a table for a person (100 columns), CSV for a spreadsheet
//! (RFC 4180) or one JSON document for a program.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use serde::Serialize;

use super::{parse, GroupBy, Input, Report, Row, Status};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Fixed columns, readable in a 100-column terminal.
    Table,
    /// RFC 4180: CRLF line ends, fields quoted where needed.
    Csv,
    /// One JSON document.
    Json,
}

/// The group a row belongs to; one per OU with `--by unit`.
fn keys(row: &Row, by: GroupBy) -> Vec<String> {
    match by {
        GroupBy::Organisation => vec![row
            .organization
            .clone()
            .unwrap_or_else(|| "(no organisation)".to_owned())],
        GroupBy::Unit if row.organizational_units.is_empty() => vec!["(no unit)".to_owned()],
        GroupBy::Unit => row.organizational_units.clone(),
        GroupBy::Catalogue => vec![row.catalog_id.clone()],
        GroupBy::Device => vec![format!("{} ({})", row.subject, row.fingerprint_sha256)],
    }
}

#[derive(Serialize)]
struct Group<'a> {
    key: String,
    devices: usize,
    in_use: usize,
    exempt: usize,
    cleaned: usize,
    findings: Vec<&'a Row>,
}

/// A device counts once per group, under its most urgent status.
fn counts<'a>(rows: impl Iterator<Item = &'a Row>) -> (usize, [usize; 3]) {
    let mut worst: BTreeMap<&str, Status> = BTreeMap::new();
    for r in rows {
        let s = worst.entry(&r.fingerprint_sha256).or_insert(r.status);
        *s = (*s).min(r.status);
    }
    let mut by_status = [0; 3];
    for s in worst.values() {
        by_status[*s as usize] += 1;
    }
    (worst.len(), by_status)
}

fn groups(report: &Report, by: GroupBy) -> Vec<Group<'_>> {
    let mut map: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for row in &report.rows {
        for key in keys(row, by) {
            map.entry(key).or_default().push(row);
        }
    }
    map.into_iter()
        .map(|(key, findings)| {
            let (devices, [in_use, exempt, cleaned]) = counts(findings.iter().copied());
            Group {
                key,
                devices,
                in_use,
                exempt,
                cleaned,
                findings,
            }
        })
        .collect()
}

#[derive(Serialize)]
struct Totals {
    devices: usize,
    organisations: usize,
    in_use: usize,
    exempt: usize,
    cleaned: usize,
}

fn totals(report: &Report) -> Totals {
    let (devices, [in_use, exempt, cleaned]) = counts(report.rows.iter());
    let organisations = report
        .rows
        .iter()
        .map(|r| r.organization.as_deref())
        .collect::<BTreeSet<_>>()
        .len();
    Totals {
        devices,
        organisations,
        in_use,
        exempt,
        cleaned,
    }
}

impl Report {
    /// Writes the report grouped `by` in `format`.
    pub fn write(&self, by: GroupBy, format: Format, out: &mut dyn Write) -> io::Result<()> {
        match format {
            Format::Table => self.table(by, out),
            Format::Csv => self.csv(by, out),
            Format::Json => self.json(by, out),
        }
    }

    /// A line about lines that were skipped, for standard error beside CSV;
    /// `None` when none were.
    pub fn skipped_note(&self) -> Option<String> {
        skipped_note(&self.input)
    }

    fn json(&self, by: GroupBy, out: &mut dyn Write) -> io::Result<()> {
        #[derive(Serialize)]
        struct Document<'a> {
            report: &'static str,
            by: &'static str,
            since: Option<String>,
            today: &'a str,
            still_in_use: bool,
            totals: Totals,
            input: &'a Input,
            groups: Vec<Group<'a>>,
        }
        let doc = Document {
            report: "prohibited_software",
            by: by.as_str(),
            since: self.since.map(parse::format_time),
            today: &self.today,
            still_in_use: self.still_in_use(),
            totals: totals(self),
            input: &self.input,
            groups: groups(self, by),
        };
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        out.write_all(b"\n")
    }

    fn csv(&self, by: GroupBy, out: &mut dyn Write) -> io::Result<()> {
        const HEADER: [&str; 18] = [
            "group",
            "status",
            "organisation",
            "units",
            "subject",
            "fingerprint_sha256",
            "catalog_id",
            "product",
            "vendor",
            "version",
            "category",
            "segments",
            "action",
            "first_seen",
            "last_seen",
            "latest_attestation",
            "exemption",
            "exemption_expires",
        ];
        csv_record(out, HEADER.iter().copied())?;
        for group in groups(self, by) {
            for r in &group.findings {
                let units = r.organizational_units.join(";");
                let segments = r
                    .segments
                    .iter()
                    .map(|s| s.segment.as_str())
                    .collect::<Vec<_>>()
                    .join(";");
                csv_record(
                    out,
                    [
                        group.key.as_str(),
                        r.status.label(),
                        r.organization.as_deref().unwrap_or(""),
                        &units,
                        &r.subject,
                        &r.fingerprint_sha256,
                        &r.catalog_id,
                        &r.product,
                        r.vendor.as_deref().unwrap_or(""),
                        r.version.as_deref().unwrap_or(""),
                        r.category.as_deref().unwrap_or(""),
                        &segments,
                        &r.action,
                        &r.first_seen,
                        &r.last_seen,
                        r.latest_attestation.as_deref().unwrap_or(""),
                        r.exemption.as_deref().unwrap_or(""),
                        r.exemption_expires.as_deref().unwrap_or(""),
                    ]
                    .into_iter(),
                )?;
            }
        }
        Ok(())
    }

    fn table(&self, by: GroupBy, out: &mut dyn Write) -> io::Result<()> {
        let t = totals(self);
        let since = self
            .since
            .map(|s| format!(" since {}", parse::format_time(s)))
            .unwrap_or_default();
        if t.devices == 0 {
            writeln!(out, "No prohibited software reported{since}.")?;
        } else {
            writeln!(
                out,
                "Prohibited software reported{since} by {} at {}:\n  {} still in use, {} exempt, {} cleaned.",
                plural(t.devices, "device"),
                plural(t.organisations, "organisation"),
                plural(t.in_use, "device"),
                t.exempt,
                t.cleaned,
            )?;
        }
        let title = match by {
            GroupBy::Organisation => "Organisation",
            GroupBy::Unit => "Unit",
            GroupBy::Catalogue => "Catalogue",
            GroupBy::Device => "Device",
        };
        for g in groups(self, by) {
            writeln!(out)?;
            writeln!(
                out,
                "{}",
                fit(
                    &format!(
                        "{title}: {} - {}: {} in use, {} exempt, {} cleaned",
                        g.key,
                        plural(g.devices, "device"),
                        g.in_use,
                        g.exempt,
                        g.cleaned
                    ),
                    100
                )
            )?;
            writeln!(
                out,
                "{:<7}  {:<26}  {:<14}  {:<16}  {:<10}  LAST",
                "STATUS", "DEVICE", "CATALOGUE", "VERSION", "FIRST"
            )?;
            for r in &g.findings {
                writeln!(
                    out,
                    "{:<7}  {:<26}  {:<14}  {:<16}  {:<10}  {}",
                    r.status.label(),
                    fit(device_name(&r.subject), 26),
                    fit(&r.catalog_id, 14),
                    fit(r.version.as_deref().unwrap_or("-"), 16),
                    day(&r.first_seen),
                    day(&r.last_seen),
                )?;
                let segments = r
                    .segments
                    .iter()
                    .map(|s| format!("{} {}", s.segment, s.action))
                    .collect::<Vec<_>>()
                    .join(", ");
                writeln!(
                    out,
                    "{}",
                    fit(&format!("         {}; {segments}", r.product), 100)
                )?;
                if let Some(reference) = &r.exemption {
                    let until = r.exemption_expires.as_deref().unwrap_or("an unknown day");
                    writeln!(
                        out,
                        "{}",
                        fit(
                            &format!("         exemption {reference} until {until}"),
                            100
                        )
                    )?;
                }
                if r.status == Status::Cleaned {
                    if let Some(at) = &r.latest_attestation {
                        writeln!(out, "         attested without it on {at}")?;
                    }
                }
            }
        }
        writeln!(out)?;
        writeln!(
            out,
            "Read {} from {}: {} audit events{}.",
            plural_u64(self.input.lines, "line"),
            plural(self.input.files.len(), "file"),
            self.input.events,
            if self.input.old_format > 0 {
                format!(
                    " ({} in the old `INFO audit:` format)",
                    self.input.old_format
                )
            } else {
                String::new()
            }
        )?;
        if let Some(note) = self.skipped_note() {
            writeln!(out, "{note}")?;
        }
        Ok(())
    }
}

fn skipped_note(input: &Input) -> Option<String> {
    if input.skipped == 0 {
        return None;
    }
    let named = input
        .skipped_lines
        .iter()
        .map(|s| format!("{}:{}", s.file, s.line))
        .collect::<Vec<_>>()
        .join(", ");
    let more = if input.skipped > input.skipped_lines.len() as u64 {
        ", ..."
    } else {
        ""
    };
    Some(format!(
        "Skipped {} that {} no schema-1 audit event: {named}{more}",
        plural_u64(input.skipped, "line"),
        if input.skipped == 1 { "is" } else { "are" },
    ))
}

fn plural(n: usize, word: &str) -> String {
    plural_u64(n as u64, word)
}

fn plural_u64(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The CN of an RFC 4514 subject (its first attribute when the CN leads, as
/// device certificates have it), else the whole subject.
fn device_name(subject: &str) -> &str {
    let Some(rest) = subject.strip_prefix("CN=") else {
        return subject;
    };
    // An escaped character (`\,`) is part of the value.
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return &rest[..i],
            _ => i += 1,
        }
    }
    rest
}

/// The date of an RFC 3339 time.
fn day(time: &str) -> &str {
    time.get(..10).unwrap_or(time)
}

/// At most `width` characters, the last one an ellipsis when cut; control
/// characters from a log (a subject can hold anything) are shown as `?` so
/// they cannot move the terminal's cursor.
fn fit(s: &str, width: usize) -> String {
    let clean = |c: char| if c.is_control() { '?' } else { c };
    if s.chars().count() <= width {
        return s.chars().map(clean).collect();
    }
    let mut out: String = s.chars().take(width - 1).map(clean).collect();
    out.push('…');
    out
}

/// One RFC 4180 record: a field with a comma, a quote, CR or LF is quoted,
/// its quotes doubled; CRLF ends the record.
fn csv_record<'a>(out: &mut dyn Write, fields: impl Iterator<Item = &'a str>) -> io::Result<()> {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.write_all(b"\"")?;
            out.write_all(field.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_commas_quotes_and_line_ends() {
        let mut out = Vec::new();
        csv_record(
            &mut out,
            ["plain", "a,b", "say \"hi\"", "two\nlines", ""].into_iter(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n"
        );
    }

    #[test]
    fn the_device_name_is_the_leading_cn() {
        assert_eq!(device_name("CN=lt-1,O=Org"), "lt-1");
        assert_eq!(device_name(r"CN=a\,b,O=Org"), r"a\,b");
        assert_eq!(device_name("O=Org,CN=x"), "O=Org,CN=x");
    }

    #[test]
    fn fit_cuts_with_an_ellipsis_and_hides_control_characters() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("a\x1b[2Jb", 10), "a?[2Jb");
    }
}
