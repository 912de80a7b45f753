//! `posture-gate report` as an operator runs it: the real binary over audit
//! logs written as the contract says (schema-1 JSON Lines, rotated, gzip'd,
//! and the `INFO audit:` lines of earlier gates), and once over the events a
//! real gate emitted.

use crate::support as common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use posture_core::verdict::{Decision, Finding, FindingItem, ItemKind};
use serde_json::{json, Value};

use common::{Proto, RouteSpec, Settings, TestGate};

fn report(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .arg("report")
        .args(args)
        .output()
        .expect("the posture-gate binary runs")
}

fn report_paths(paths: &[&Path], extra: &[&str]) -> Output {
    let mut args: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend_from_slice(extra);
    report(&args)
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn text(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

/// A device as the audit events name it.
struct Dev {
    fingerprint: String,
    subject: String,
    organization: Option<&'static str>,
    units: Vec<&'static str>,
}

fn dev(n: u8, subject: &str, organization: Option<&'static str>, units: &[&'static str]) -> Dev {
    Dev {
        fingerprint: format!("{n:02x}").repeat(32),
        subject: subject.to_owned(),
        organization,
        units: units.to_vec(),
    }
}

impl Dev {
    fn json(&self) -> Value {
        let mut d = json!({
            "fingerprint_sha256": self.fingerprint,
            "subject": self.subject,
        });
        if let Some(o) = self.organization {
            d["organization"] = json!(o);
        }
        if !self.units.is_empty() {
            d["organizational_units"] = json!(self.units);
        }
        d
    }
}

/// A finding as the core serialises it.
fn kaspersky(
    segment: &str,
    action: Decision,
    version: &str,
    exemption: Option<(&str, &str)>,
) -> Value {
    serde_json::to_value(Finding {
        catalog_id: "kaspersky".into(),
        segment: segment.into(),
        action,
        item: FindingItem {
            kind: ItemKind::Software,
            name: "Kaspersky Endpoint Security".into(),
            vendor: Some("AO Kaspersky Lab".into()),
            version: Some(version.into()),
            id: None,
        },
        category: "antivirus".into(),
        exemption: exemption.map(|(r, _)| r.to_owned()),
        exemption_expires: exemption.map(|(_, e)| e.to_owned()),
        deny_from: None,
    })
    .unwrap()
}

/// An event's JSON as one schema-1 line: `schema` and `time` first, then
/// the event's own fields, as the contract writes it.
fn line(time: &str, event: &Value) -> String {
    let mut text = format!("{{\"schema\":1,\"time\":{}", json!(time));
    for (k, v) in event.as_object().expect("an event is an object") {
        // A captured line has its own; the one given here replaces it.
        if k == "schema" || k == "time" {
            continue;
        }
        text.push_str(&format!(",{}:{}", json!(k), v));
    }
    text.push_str("}\n");
    text
}

fn attestation(d: &Dev, findings: &[Value]) -> Value {
    let mut e = json!({
        "event": "attestation",
        "device": d.json(),
        "source": "10.1.2.3:50000",
        "valid": true,
        "valid_until": 1_900_000_000,
        "remembered": true,
    });
    if !findings.is_empty() {
        e["findings"] = json!(findings);
    }
    e
}

fn decision(d: &Dev, segment: &str, verdict: &str, findings: &[Value]) -> Value {
    let mut e = json!({
        "event": "decision",
        "reference": "PG-7K2M-Q9XD",
        "enforcement": "proxy",
        "device": d.json(),
        "source": "10.1.2.3:50000",
        "route_host": "app.example",
        "route_prefix": "/",
        "segment": segment,
        "decision": verdict,
        "method": "GET",
        "path": "/pay",
        "status": 403,
        "bytes": 1234,
        "latency_ms": 1.5,
    });
    if !findings.is_empty() {
        e["findings"] = json!(findings);
    }
    e
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.concat()).unwrap();
    path
}

fn write_gz(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    gz.write_all(lines.concat().as_bytes()).unwrap();
    gz.finish().unwrap();
    path
}

/// The rows (findings) of a JSON report, over every group.
fn rows(doc: &Value) -> Vec<Value> {
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["findings"].as_array().unwrap().clone())
        .collect()
}

fn row_of<'a>(rows: &'a [Value], d: &Dev) -> &'a Value {
    rows.iter()
        .find(|r| r["fingerprint_sha256"] == d.fingerprint.as_str())
        .unwrap_or_else(|| panic!("no row of {} in {rows:#?}", d.subject))
}

/// Device a still reports Kaspersky (and is denied with it after its
/// attestation); device b reported it and then attested clean; device c
/// never reported it.
fn two_devices_log(dir: &Path) -> (PathBuf, Dev, Dev) {
    let a = dev(
        0xa1,
        "CN=lt-1,OU=Financiën,O=Leverancier BV",
        Some("Leverancier BV"),
        &["Financiën"],
    );
    let b = dev(
        0xb2,
        "CN=lt-2,OU=HR,O=Belastingdienst",
        Some("Belastingdienst"),
        &["HR"],
    );
    let c = dev(
        0xc3,
        "CN=lt-3,O=Belastingdienst",
        Some("Belastingdienst"),
        &[],
    );
    let k = |seg| kaspersky(seg, Decision::Deny, "11.1.0", None);
    let log = write(
        dir,
        "audit.jsonl",
        &[
            line(
                "2026-11-02T08:00:00+00:00",
                &attestation(&a, &[k("finance")]),
            ),
            line(
                "2026-11-02T08:05:00+00:00",
                &attestation(&b, &[k("finance")]),
            ),
            line("2026-11-02T08:06:00+00:00", &attestation(&c, &[])),
            line(
                "2026-11-03T09:00:00+00:00",
                &decision(&b, "finance", "deny", &[k("finance")]),
            ),
            line("2026-11-04T10:00:00+00:00", &attestation(&b, &[])),
            line(
                "2026-11-05T11:30:00+01:00",
                &decision(&a, "finance", "deny", &[k("finance")]),
            ),
            line(
                "2026-11-05T12:00:00+00:00",
                &decision(&c, "finance", "allow", &[]),
            ),
        ],
    );
    (log, a, b)
}

#[test]
fn a_device_still_reporting_it_is_in_use_and_one_that_attested_clean_since_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let (log, a, b) = two_devices_log(dir.path());
    let out = report_paths(&[&log], &["--format", "json"]);
    assert_eq!(code(&out), 3, "something is still in use: {}", text(&out));
    let doc = json_of(&out);
    let rows = rows(&doc);
    assert_eq!(rows.len(), 2, "the clean device has no row: {rows:#?}");

    let in_use = row_of(&rows, &a);
    assert_eq!(in_use["status"], "in_use");
    assert_eq!(in_use["catalog_id"], "kaspersky");
    assert_eq!(in_use["product"], "Kaspersky Endpoint Security");
    assert_eq!(in_use["version"], "11.1.0");
    assert_eq!(in_use["organization"], "Leverancier BV");
    assert_eq!(in_use["segments"][0]["segment"], "finance");
    assert_eq!(in_use["action"], "deny");
    assert_eq!(in_use["first_seen"], "2026-11-02T08:00:00Z");
    // The decision's time with its offset, in UTC.
    assert_eq!(in_use["last_seen"], "2026-11-05T10:30:00Z");

    let cleaned = row_of(&rows, &b);
    assert_eq!(cleaned["status"], "cleaned");
    assert_eq!(cleaned["last_seen"], "2026-11-03T09:00:00Z");
    assert_eq!(cleaned["latest_attestation"], "2026-11-04T10:00:00Z");
    assert_eq!(doc["totals"]["in_use"], 1);
    assert_eq!(doc["totals"]["cleaned"], 1);
    assert_eq!(doc["still_in_use"], true);

    let table = report_paths(&[&log], &[]);
    assert_eq!(code(&table), 3);
    let t = text(&table);
    assert!(t.contains("in use   lt-1"), "{t}");
    assert!(t.contains("cleaned  lt-2"), "{t}");
    assert!(
        t.contains("attested without it on 2026-11-04T10:00:00Z"),
        "{t}"
    );
    assert!(
        t.lines().all(|l| l.chars().count() <= 100),
        "wider than 100 columns:\n{t}"
    );
}

#[test]
fn exit_code_0_when_every_device_that_reported_it_has_attested_clean_since() {
    let dir = tempfile::tempdir().unwrap();
    let b = dev(
        0xb2,
        "CN=lt-2,O=Belastingdienst",
        Some("Belastingdienst"),
        &[],
    );
    let k = kaspersky("finance", Decision::Deny, "11.1.0", None);
    let log = write(
        dir.path(),
        "audit.jsonl",
        &[
            line("2026-11-02T08:05:00Z", &attestation(&b, &[k])),
            line("2026-11-04T10:00:00Z", &attestation(&b, &[])),
        ],
    );
    let out = report_paths(&[&log], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("0 devices still in use, 0 exempt, 1 cleaned"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_exemption_is_shown_with_its_expiry_and_an_expired_one_counts_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let waived = dev(
        0xd4,
        "CN=lt-4,O=Rijkswaterstaat",
        Some("Rijkswaterstaat"),
        &[],
    );
    let lapsed = dev(
        0xe5,
        "CN=lt-5,O=Rijkswaterstaat",
        Some("Rijkswaterstaat"),
        &[],
    );
    let current = Some(("RA-7", "2999-12-31"));
    let expired = Some(("RA-3", "2020-01-31"));
    let only_current = write(
        dir.path(),
        "current.jsonl",
        &[line(
            "2026-11-02T08:00:00Z",
            &attestation(
                &waived,
                &[
                    kaspersky("finance", Decision::Allow, "12.0", current),
                    kaspersky("office", Decision::Allow, "12.0", current),
                ],
            ),
        )],
    );
    let out = report_paths(&[&only_current], &["--format", "json"]);
    assert_eq!(
        code(&out),
        0,
        "a current exemption is no alert: {}",
        text(&out)
    );
    let doc = json_of(&out);
    let row = row_of(&rows(&doc), &waived).clone();
    assert_eq!(row["status"], "exempt");
    assert_eq!(row["exemption"], "RA-7");
    assert_eq!(row["exemption_expires"], "2999-12-31");
    assert_eq!(row["segments"][1]["exemption_expires"], "2999-12-31");
    let table = text(&report_paths(&[&only_current], &[]));
    assert!(table.contains("exempt   lt-4"), "{table}");
    assert!(table.contains("exemption RA-7 until 2999-12-31"), "{table}");

    let both = write(
        dir.path(),
        "both.jsonl",
        &[line(
            "2026-11-02T08:00:00Z",
            &attestation(
                &lapsed,
                &[kaspersky("finance", Decision::Allow, "12.0", expired)],
            ),
        )],
    );
    let out = report_paths(&[&only_current, &both], &["--format", "json"]);
    assert_eq!(code(&out), 3, "an expired exemption waives nothing today");
    let rows = rows(&json_of(&out));
    assert_eq!(row_of(&rows, &lapsed)["status"], "in_use");
    assert_eq!(row_of(&rows, &lapsed)["exemption_expires"], "2020-01-31");
    assert_eq!(row_of(&rows, &waived)["status"], "exempt");
}

#[test]
fn findings_group_by_organisation_unit_catalogue_and_device() {
    let dir = tempfile::tempdir().unwrap();
    let a = dev(
        0x01,
        "CN=lt-a,OU=Beheer,OU=Extern,O=Leverancier BV",
        Some("Leverancier BV"),
        &["Beheer", "Extern"],
    );
    let b = dev(
        0x02,
        "CN=lt-b,OU=Beheer,O=Logius",
        Some("Logius"),
        &["Beheer"],
    );
    let c = dev(0x03, "CN=lt-c,O=Logius", Some("Logius"), &[]);
    let k = |v| kaspersky("finance", Decision::Deny, v, None);
    let log = write(
        dir.path(),
        "audit.jsonl",
        &[
            line("2026-11-02T08:00:00Z", &attestation(&a, &[k("11")])),
            line("2026-11-02T08:01:00Z", &attestation(&b, &[k("12")])),
            line("2026-11-02T08:02:00Z", &attestation(&c, &[k("12")])),
            line("2026-11-03T08:02:00Z", &attestation(&c, &[])),
        ],
    );
    let groups = |by: &str| -> Vec<(String, u64, u64, u64)> {
        let out = report_paths(&[&log], &["--by", by, "--format", "json"]);
        assert_eq!(code(&out), 3);
        let doc = json_of(&out);
        assert_eq!(doc["by"], by);
        doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["key"].as_str().unwrap().to_owned(),
                    g["devices"].as_u64().unwrap(),
                    g["in_use"].as_u64().unwrap(),
                    g["cleaned"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        groups("organisation"),
        [
            ("Leverancier BV".into(), 1, 1, 0),
            ("Logius".into(), 2, 1, 1)
        ]
    );
    assert_eq!(
        groups("unit"),
        [
            ("(no unit)".into(), 1, 0, 1),
            ("Beheer".into(), 2, 2, 0),
            ("Extern".into(), 1, 1, 0)
        ]
    );
    assert_eq!(groups("catalogue"), [("kaspersky".into(), 3, 2, 1)]);
    let by_device = groups("device");
    assert_eq!(by_device.len(), 3);
    assert!(by_device[0].0.starts_with("CN=lt-a,"), "{by_device:?}");

    let table = text(&report_paths(&[&log], &["--by", "unit"]));
    assert!(
        table.contains("Unit: Beheer - 2 devices: 2 in use, 0 exempt, 0 cleaned"),
        "{table}"
    );
    let table = text(&report_paths(&[&log], &["--by", "organisation"]));
    assert!(
        table.contains("Organisation: Logius - 2 devices: 1 in use, 0 exempt, 1 cleaned"),
        "{table}"
    );
}

#[test]
fn since_leaves_out_what_happened_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let old = dev(0x11, "CN=lt-old,O=Logius", Some("Logius"), &[]);
    let new = dev(0x12, "CN=lt-new,O=Logius", Some("Logius"), &[]);
    let k = kaspersky("finance", Decision::Deny, "11", None);
    let log = write(
        dir.path(),
        "audit.jsonl",
        &[
            line(
                "2026-10-30T23:59:59Z",
                &attestation(&old, std::slice::from_ref(&k)),
            ),
            line(
                "2026-11-01T00:00:00Z",
                &attestation(&new, std::slice::from_ref(&k)),
            ),
            line(
                "2026-11-01T12:00:00Z",
                &decision(&new, "finance", "deny", &[k]),
            ),
        ],
    );
    let everything = rows(&json_of(&report_paths(&[&log], &["--format", "json"])));
    assert_eq!(everything.len(), 2);
    for since in ["2026-11-01", "2026-11-01T01:00:00+01:00"] {
        let out = report_paths(&[&log], &["--since", since, "--format", "json"]);
        let doc = json_of(&out);
        let rows = rows(&doc);
        assert_eq!(rows.len(), 1, "--since {since}: {rows:#?}");
        assert_eq!(rows[0]["subject"], "CN=lt-new,O=Logius");
        assert_eq!(doc["since"], "2026-11-01T00:00:00Z");
    }
    let later = report_paths(
        &[&log],
        &["--since", "2026-11-01T12:00:00Z", "--format", "json"],
    );
    let rows = rows(&json_of(&later));
    assert_eq!(
        rows[0]["first_seen"], "2026-11-01T12:00:00Z",
        "only the decision counts"
    );
    let nothing = report_paths(&[&log], &["--since", "2026-12-01"]);
    assert_eq!(code(&nothing), 0);
    assert!(text(&nothing).starts_with("No prohibited software reported since 2026-12-01"));
}

/// A minimal RFC 4180 reader: what a spreadsheet does with the output.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(field.is_empty(), "a quote inside an unquoted field: {text}");
                quoted = true;
            }
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            '\n' => panic!("a record ended by LF alone: {text:?}"),
            c => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last record lacks CRLF"
    );
    records
}

#[test]
fn csv_quotes_a_subject_with_commas_and_quotes_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let tricky = dev(
        0x21,
        r#"CN=lt-9,O=Van Dijk\, Jansen & "Partners""#,
        Some(r#"Van Dijk, Jansen & "Partners""#),
        &["Beheer", "Extern"],
    );
    let log = write(
        dir.path(),
        "audit.jsonl",
        &[line(
            "2026-11-02T08:00:00Z",
            &attestation(
                &tricky,
                &[kaspersky("finance", Decision::Deny, "11.1", None)],
            ),
        )],
    );
    let out = report_paths(&[&log], &["--format", "csv"]);
    assert_eq!(code(&out), 3);
    let t = text(&out);
    assert!(
        t.contains(r#""CN=lt-9,O=Van Dijk\, Jansen & ""Partners""""#),
        "{t}"
    );
    let records = read_csv(&t);
    assert_eq!(records.len(), 2, "{records:?}");
    let header = &records[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let r = &records[1];
    assert_eq!(r.len(), header.len());
    assert_eq!(r[col("subject")], tricky.subject);
    assert_eq!(r[col("organisation")], r#"Van Dijk, Jansen & "Partners""#);
    assert_eq!(r[col("group")], r#"Van Dijk, Jansen & "Partners""#);
    assert_eq!(r[col("units")], "Beheer;Extern");
    assert_eq!(r[col("status")], "in use");
    assert_eq!(r[col("catalog_id")], "kaspersky");
    assert_eq!(r[col("version")], "11.1");
    assert_eq!(r[col("first_seen")], "2026-11-02T08:00:00Z");
}

#[test]
fn the_json_document_reads_back_with_totals_input_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (log, a, _) = two_devices_log(dir.path());
    let out = report_paths(&[&log], &["--format", "json", "--by", "device"]);
    let doc = json_of(&out);
    assert_eq!(doc["report"], "prohibited_software");
    assert_eq!(doc["input"]["files"], json!([log.to_str().unwrap()]));
    assert_eq!(doc["input"]["lines"], 7);
    assert_eq!(doc["input"]["events"], 7);
    assert_eq!(doc["input"]["skipped"], 0);
    assert_eq!(doc["totals"]["devices"], 2);
    assert_eq!(doc["totals"]["organisations"], 2);
    assert_eq!(doc["groups"].as_array().unwrap().len(), 2);
    let first = &doc["groups"][0];
    assert_eq!(first["key"], format!("{} ({})", a.subject, a.fingerprint));
    assert_eq!(
        first["findings"][0]["organizational_units"],
        json!(["Financiën"])
    );
}

#[test]
fn a_gzipped_rotated_file_and_the_plain_current_one_read_together_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dev(0x31, "CN=lt-31,O=Logius", Some("Logius"), &[]);
    let e = dev(0x32, "CN=lt-32,O=Logius", Some("Logius"), &[]);
    let k = kaspersky("finance", Decision::Deny, "11", None);
    // Older lines, rotated and compressed: both devices reported it.
    let rotated = write_gz(
        dir.path(),
        "audit.jsonl.1.gz",
        &[
            line(
                "2026-11-01T08:00:00Z",
                &attestation(&d, std::slice::from_ref(&k)),
            ),
            line(
                "2026-11-01T08:00:01Z",
                &attestation(&e, std::slice::from_ref(&k)),
            ),
        ],
    );
    assert_eq!(std::fs::read(&rotated).unwrap()[..2], [0x1f, 0x8b]);
    // The current file: d attested clean, e still has it.
    let current = write(
        dir.path(),
        "audit.jsonl",
        &[
            line("2026-11-02T08:00:00Z", &attestation(&d, &[])),
            line(
                "2026-11-02T09:00:00Z",
                &decision(&e, "finance", "deny", &[k]),
            ),
        ],
    );
    // The shell's order of audit.jsonl* is newest first.
    for order in [[&current, &rotated], [&rotated, &current]] {
        let out = report_paths(&[order[0], order[1]], &["--format", "json"]);
        assert_eq!(code(&out), 3);
        let doc = json_of(&out);
        assert_eq!(doc["input"]["lines"], 4);
        let rows = rows(&doc);
        assert_eq!(row_of(&rows, &d)["status"], "cleaned");
        let still = row_of(&rows, &e);
        assert_eq!(still["status"], "in_use");
        assert_eq!(still["first_seen"], "2026-11-01T08:00:01Z");
        assert_eq!(still["last_seen"], "2026-11-02T09:00:00Z");
    }
}

#[test]
fn lines_that_are_no_schema_1_events_are_skipped_counted_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dev(0x41, "CN=lt-41,O=Logius", Some("Logius"), &[]);
    let k = kaspersky("finance", Decision::Deny, "11", None);
    let good = line("2026-11-01T08:00:00Z", &attestation(&d, &[k]));
    let log = write(
        dir.path(),
        "audit.jsonl",
        &[
            "this is not json\n".to_owned(),
            good,
            "{\"schema\":2,\"time\":\"2026-11-01T08:00:00Z\",\"event\":\"decision\"}\n".to_owned(),
            "[1,2,3]\n".to_owned(),
            "{\"schema\":1,\"time\":\"2026-11-01T08:00:00Z\",\"event\":\"attes\n".to_owned(),
            "\n".to_owned(),
            "{\"schema\":1,\"event\":\"decision\"}\n".to_owned(),
        ],
    );
    let out = report_paths(&[&log], &["--format", "json"]);
    assert_eq!(code(&out), 3, "skipped lines are not fatal");
    let doc = json_of(&out);
    assert_eq!(doc["input"]["lines"], 7);
    assert_eq!(doc["input"]["events"], 1);
    assert_eq!(doc["input"]["skipped"], 5);
    let numbers: Vec<u64> = doc["input"]["skipped_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 3, 4, 5, 7]);
    assert_eq!(rows(&doc).len(), 1);

    let table = text(&report_paths(&[&log], &[]));
    let path = log.display();
    assert!(
        table.contains(&format!(
            "Skipped 5 lines that are no schema-1 audit event: {path}:1, {path}:3, {path}:4, {path}:5, {path}:7"
        )),
        "{table}"
    );
    let csv = report_paths(&[&log], &["--format", "csv"]);
    assert!(
        String::from_utf8_lossy(&csv.stderr).contains("Skipped 5 lines"),
        "CSV stays clean; the note goes to stderr"
    );
    assert!(!text(&csv).contains("Skipped"));
}

#[test]
fn the_info_audit_lines_of_earlier_gates_read_with_the_time_of_their_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dev(0x51, "CN=lt-51,O=Logius", Some("Logius"), &[]);
    let k = kaspersky("finance", Decision::Deny, "11", None);
    let old = |time: &str, event: &Value| format!("{time}  INFO audit: {event}\n");
    let log = write(
        dir.path(),
        "gate.log",
        &[
            "2026-11-20T07:59:59.000001Z  INFO posture_gate::gate: listening on 0.0.0.0:8443\n"
                .to_owned(),
            old(
                "2026-11-20T08:00:00.123456Z",
                &attestation(&d, std::slice::from_ref(&k)),
            ),
            old(
                "2026-11-21T09:00:00.000000Z",
                &decision(&d, "finance", "deny", &[k]),
            ),
        ],
    );
    let out = report_paths(&[&log], &["--format", "json"]);
    assert_eq!(code(&out), 3);
    let doc = json_of(&out);
    assert_eq!(doc["input"]["events"], 2);
    assert_eq!(doc["input"]["old_format"], 2);
    assert_eq!(doc["input"]["skipped"], 1, "the diagnostic line");
    let rows = rows(&doc);
    let r = row_of(&rows, &d);
    assert_eq!(r["first_seen"], "2026-11-20T08:00:00.123456Z");
    assert_eq!(r["last_seen"], "2026-11-21T09:00:00Z");
}

#[test]
fn standard_input_is_read_for_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = two_devices_log(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .args(["report", "-", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&log).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 3);
    let doc = json_of(&out);
    assert_eq!(doc["input"]["files"], json!(["-"]));
    assert_eq!(rows(&doc).len(), 2);
}

#[test]
fn usage_errors_and_unreadable_logs_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = two_devices_log(dir.path());
    let log = log.to_str().unwrap();
    let missing = dir.path().join("nope.jsonl");
    for (args, says) in [
        (vec![], "required"),
        (vec![log, "--by", "colour"], "invalid value 'colour'"),
        (vec![log, "--format", "xml"], "invalid value 'xml'"),
        (
            vec![log, "--since", "last tuesday"],
            "--since \"last tuesday\"",
        ),
        (vec![log, missing.to_str().unwrap()], "nope.jsonl"),
        (vec!["-", "-"], "standard input (-) can be read only once"),
    ] {
        let out = report(&args);
        assert_eq!(code(&out), 2, "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: no report on an error");
    }
}

/// The events a real gate emitted: one device attests with Kaspersky and is
/// denied, one attests with it and then clean, one is exempt. The audit
/// writer to a file is another part of issue 18, so the events are taken
/// from the gate's capture and wrapped as schema-1 lines the way the
/// contract writes them (`schema`, `time`, then the event).
#[tokio::test(flavor = "current_thread")]
async fn a_real_gates_events_report_who_still_runs_it_who_cleaned_and_who_is_exempt() {
    let (captured, _guard) = common::audit::capture();
    let up = common::upstream::start("app").await;
    let routes = [
        RouteSpec {
            host: "public.test",
            prefix: "/",
            upstream: up.url(),
            segment: "open",
        },
        RouteSpec {
            host: "finance.test",
            prefix: "/",
            upstream: up.url(),
            segment: "finance",
        },
    ];
    let settings = Settings {
        extra: "[[exemption]]\ndevice_subject = \"CN=lt-e2e-3,OU=Laptops,O=Logius\"\n\
                catalogue = \"kaspersky\"\nexpires = 2999-12-31\nreference = \"RA-E2E\"\n"
            .to_owned(),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes, &settings).await;
    let still = gate.pki.device("lt-e2e-1", "Leverancier BV");
    let cleaned = gate.pki.device("lt-e2e-2", "Belastingdienst");
    let exempt = gate.pki.device("lt-e2e-3", "Logius");

    assert_eq!(gate.attest(&still, true).await.status, 200);
    let denied = gate
        .client(Some(&still), Proto::H1)
        .get("finance.test", "/")
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(gate.attest(&cleaned, true).await.status, 200);
    assert_eq!(gate.attest(&exempt, true).await.status, 200);
    let waived = gate
        .client(Some(&exempt), Proto::H1)
        .get("finance.test", "/")
        .await;
    assert_eq!(
        waived.status,
        200,
        "the exemption applies: {}",
        waived.text()
    );
    // Each event gets its own, later time, as the writer would stamp it.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(gate.attest(&cleaned, false).await.status, 200);

    let events = captured.audit_events();
    assert!(events.len() >= 6, "{events:#?}");
    let start = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let lines: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = start + time::Duration::seconds(i as i64);
            let at = at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            line(&at, e)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let log = write(dir.path(), "audit.jsonl", &lines);

    let out = report_paths(&[&log], &["--format", "json"]);
    assert_eq!(code(&out), 3, "{}", text(&out));
    let doc = json_of(&out);
    assert_eq!(doc["input"]["skipped"], 0);
    let rows = rows(&doc);
    let find = |fingerprint: String| {
        rows.iter()
            .find(|r| r["fingerprint_sha256"] == fingerprint.as_str())
            .unwrap_or_else(|| panic!("{fingerprint} not in {rows:#?}"))
            .clone()
    };
    let s = find(still.fingerprint());
    assert_eq!(s["status"], "in_use");
    assert_eq!(s["organization"], "Leverancier BV");
    assert_eq!(s["catalog_id"], "kaspersky");
    assert_eq!(find(cleaned.fingerprint())["status"], "cleaned");
    let e = find(exempt.fingerprint());
    assert_eq!(e["status"], "exempt", "{e:#}");
    assert_eq!(e["exemption"], "RA-E2E");
    assert_eq!(e["exemption_expires"], "2999-12-31");
    assert_eq!(rows.len(), 3, "{rows:#?}");
}
