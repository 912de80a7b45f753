//! Importing an inventory that osquery collected: `--from-osquery FILE`.
//!
//! The file is the JSON that `osqueryi --json` prints, in one of two shapes:
//!
//! - one array of rows from one query, e.g.
//!   `osqueryi --json 'select * from deb_packages' > file.json`; the table is
//!   recognised by its columns (`bundle_identifier`: apps;
//!   `identifying_number` or `uninstall_string`: programs; `pid`: processes;
//!   `release` and `vendor`: rpm_packages; `maintainer` or `revision`:
//!   deb_packages; `platform` and `major`: os_version);
//! - an object whose keys are table names and whose values are such arrays,
//!   e.g. `{"deb_packages": [...], "processes": [...]}`.
//!
//! Tables: `programs` (Windows), `deb_packages`, `rpm_packages`, `apps`
//! (macOS), `processes`, and `os_version` for the OS. Values may be strings
//! (osqueryi prints every column as a string) or numbers. Packages keep the
//! source they came from (`dpkg`, `rpm`, `macos-app`, `msi`/`registry`), so
//! an imported report looks like one the agent collected itself. An import
//! without any software table is incomplete.

use serde_json::{Map, Value};

use posture_core::attestation::claims::{Os, OsFamily, Process, Software, SoftwareSource};

use super::{dedup_processes, dpkg, non_empty, Inventory};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OsqueryError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("expected an array of rows or an object of tables, found {0}")]
    Shape(&'static str),
    #[error("unknown osquery table {0:?}")]
    UnknownTable(String),
    #[error("cannot tell the table from the columns ({0})")]
    UnknownColumns(String),
    #[error("table {table}: row {row} is not an object")]
    RowNotObject { table: String, row: usize },
    #[error("table {table}: row {row} has no `{column}`")]
    MissingColumn {
        table: &'static str,
        row: usize,
        column: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Programs,
    DebPackages,
    RpmPackages,
    Apps,
    Processes,
    OsVersion,
}

impl Table {
    fn from_name(name: &str) -> Option<Table> {
        Some(match name {
            "programs" => Table::Programs,
            "deb_packages" => Table::DebPackages,
            "rpm_packages" => Table::RpmPackages,
            "apps" => Table::Apps,
            "processes" => Table::Processes,
            "os_version" => Table::OsVersion,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Table::Programs => "programs",
            Table::DebPackages => "deb_packages",
            Table::RpmPackages => "rpm_packages",
            Table::Apps => "apps",
            Table::Processes => "processes",
            Table::OsVersion => "os_version",
        }
    }

    fn from_columns(row: &Map<String, Value>) -> Option<Table> {
        let has = |c: &str| row.contains_key(c);
        Some(if has("bundle_identifier") {
            Table::Apps
        } else if has("identifying_number") || has("uninstall_string") {
            Table::Programs
        } else if has("pid") {
            Table::Processes
        } else if has("platform") && has("major") {
            Table::OsVersion
        } else if has("release") && has("vendor") {
            Table::RpmPackages
        } else if has("maintainer") || has("revision") {
            Table::DebPackages
        } else {
            return None;
        })
    }

    /// The OS family a software table implies.
    fn family(self) -> Option<OsFamily> {
        match self {
            Table::Programs => Some(OsFamily::Windows),
            Table::Apps => Some(OsFamily::Macos),
            Table::DebPackages | Table::RpmPackages => Some(OsFamily::Linux),
            Table::Processes | Table::OsVersion => None,
        }
    }
}

/// Reads an osquery JSON export into an inventory.
pub fn from_osquery(json: &str) -> Result<Inventory, OsqueryError> {
    let value: Value = serde_json::from_str(json).map_err(|e| OsqueryError::Json(e.to_string()))?;
    let tables = match value {
        Value::Array(rows) => vec![(detect(&rows)?, rows)],
        Value::Object(map) => map
            .into_iter()
            .map(|(name, rows)| {
                let table = Table::from_name(&name).ok_or(OsqueryError::UnknownTable(name))?;
                match rows {
                    Value::Array(rows) => Ok((Some(table), rows)),
                    other => Err(OsqueryError::Shape(kind(&other))),
                }
            })
            .collect::<Result<_, _>>()?,
        other => return Err(OsqueryError::Shape(kind(&other))),
    };
    let mut inv = Inventory::empty(OsFamily::Other);
    let mut families = Vec::new();
    let mut os_row = None;
    let mut software_tables = 0;
    for (table, rows) in tables {
        // An empty array with no name says nothing, and is no error.
        let Some(table) = table else { continue };
        let rows = objects(table, &rows)?;
        families.extend(table.family());
        if table.family().is_some() {
            software_tables += 1;
        }
        match table {
            Table::Processes => inv.processes.extend(rows.iter().map(|r| process(r))),
            Table::OsVersion => os_row = rows.first().map(|r| os(r)),
            _ => {
                for (i, row) in rows.iter().enumerate() {
                    inv.software.extend(software(table, i, row)?);
                }
            }
        }
    }
    dedup_processes(&mut inv.processes);
    let family = match families.split_first() {
        Some((f, rest)) if rest.iter().all(|x| x == f) => *f,
        _ => OsFamily::Other,
    };
    inv.os = os_row.unwrap_or(Os {
        family,
        name: None,
        version: None,
    });
    if software_tables == 0 {
        inv.warn(
            "osquery",
            "the import has no software table (programs, deb_packages, rpm_packages, apps)",
        );
    }
    Ok(inv)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn detect(rows: &[Value]) -> Result<Option<Table>, OsqueryError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let row = first.as_object().ok_or(OsqueryError::RowNotObject {
        table: "(unnamed)".into(),
        row: 0,
    })?;
    let columns = || row.keys().cloned().collect::<Vec<_>>().join(", ");
    Table::from_columns(row)
        .map(Some)
        .ok_or_else(|| OsqueryError::UnknownColumns(columns()))
}

fn objects(table: Table, rows: &[Value]) -> Result<Vec<&Map<String, Value>>, OsqueryError> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_object().ok_or(OsqueryError::RowNotObject {
                table: table.name().into(),
                row: i,
            })
        })
        .collect()
}

/// A column as text: osqueryi prints strings, newer builds some numbers.
fn col(row: &Map<String, Value>, column: &str) -> Option<String> {
    match row.get(column)? {
        Value::String(s) => non_empty(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn software(
    table: Table,
    i: usize,
    row: &Map<String, Value>,
) -> Result<Option<Software>, OsqueryError> {
    let missing = |column| OsqueryError::MissingColumn {
        table: table.name(),
        row: i,
        column,
    };
    let s = match table {
        Table::DebPackages => {
            let installed =
                col(row, "status").is_none_or(|s| dpkg::files_on_disk(&s).unwrap_or(true));
            if !installed {
                return Ok(None);
            }
            let name = col(row, "name").ok_or_else(|| missing("name"))?;
            package(
                name,
                col(row, "version"),
                col(row, "maintainer"),
                SoftwareSource::Dpkg,
            )
        }
        Table::RpmPackages => {
            let name = col(row, "name").ok_or_else(|| missing("name"))?;
            let version = match (col(row, "version"), col(row, "release")) {
                (Some(v), Some(r)) => Some(format!("{v}-{r}")),
                (v, _) => v,
            };
            package(name, version, col(row, "vendor"), SoftwareSource::Rpm)
        }
        Table::Apps => {
            let name = col(row, "display_name")
                .or_else(|| col(row, "bundle_name"))
                // A folder called just `.app` has no name left; it is missing.
                .or_else(|| col(row, "name").and_then(|n| non_empty(n.trim_end_matches(".app"))))
                .ok_or_else(|| missing("name"))?;
            Software {
                name,
                vendor: None,
                version: col(row, "bundle_short_version"),
                id: col(row, "bundle_identifier"),
                signer: None,
                source: Some(SoftwareSource::MacosApp),
            }
        }
        Table::Programs => {
            let name = col(row, "name").ok_or_else(|| missing("name"))?;
            let id = col(row, "identifying_number");
            let msi = id.as_deref().is_some_and(|i| i.starts_with('{'));
            Software {
                name,
                vendor: col(row, "publisher"),
                version: col(row, "version"),
                id,
                signer: None,
                source: Some(if msi {
                    SoftwareSource::Msi
                } else {
                    SoftwareSource::Registry
                }),
            }
        }
        Table::Processes | Table::OsVersion => return Ok(None),
    };
    Ok(Some(s))
}

fn package(
    name: String,
    version: Option<String>,
    vendor: Option<String>,
    source: SoftwareSource,
) -> Software {
    // Maintainers carry an e-mail address, as in the dpkg collector.
    let vendor = vendor.map(|v| match v.find('<') {
        Some(i) if i > 0 => v[..i].trim().to_string(),
        _ => v,
    });
    Software {
        id: Some(name.clone()),
        name,
        vendor,
        version,
        signer: None,
        source: Some(source),
    }
}

fn process(row: &Map<String, Value>) -> Process {
    let path = col(row, "path");
    let name = col(row, "name")
        .or_else(|| {
            path.as_deref()
                .and_then(|p| p.rsplit(['/', '\\']).next())
                .and_then(non_empty)
        })
        .unwrap_or_else(|| "(unnamed)".to_string());
    Process { name, path }
}

fn os(row: &Map<String, Value>) -> Os {
    let platform = col(row, "platform").unwrap_or_default();
    let family = match platform.as_str() {
        "windows" => OsFamily::Windows,
        "darwin" => OsFamily::Macos,
        "" | "freebsd" => OsFamily::Other,
        _ => OsFamily::Linux,
    };
    Os {
        family,
        name: col(row, "name"),
        version: col(row, "version"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_array_is_recognised_by_its_columns() {
        let inv = from_osquery(
            r#"[{"name":"kesl","version":"12.1.0-1234","source":"","size":"1","arch":"amd64",
                 "revision":"","status":"install ok installed","maintainer":"AO Kaspersky Lab <s@k.com>"}]"#,
        )
        .unwrap();
        assert_eq!(inv.os.family, OsFamily::Linux);
        assert_eq!(inv.software[0].name, "kesl");
        assert_eq!(inv.software[0].vendor.as_deref(), Some("AO Kaspersky Lab"));
        assert_eq!(inv.software[0].source, Some(SoftwareSource::Dpkg));
        assert!(inv.complete);
    }

    #[test]
    fn removed_deb_packages_are_skipped() {
        let inv = from_osquery(
            r#"{"deb_packages":[{"name":"old","version":"1","status":"deinstall ok config-files"}]}"#,
        )
        .unwrap();
        assert!(inv.software.is_empty());
    }

    #[test]
    fn processes_alone_make_an_incomplete_import() {
        let inv = from_osquery(r#"[{"pid":"1","name":"init","path":"/sbin/init"}]"#).unwrap();
        assert_eq!(inv.processes.len(), 1);
        assert!(!inv.complete);
        assert_eq!(inv.warnings[0].collector, "osquery");
    }

    #[test]
    fn wrong_shapes_are_errors() {
        assert!(matches!(from_osquery("{"), Err(OsqueryError::Json(_))));
        assert!(matches!(from_osquery("42"), Err(OsqueryError::Shape(_))));
        assert!(matches!(
            from_osquery(r#"{"users":[]}"#),
            Err(OsqueryError::UnknownTable(_))
        ));
        assert!(matches!(
            from_osquery(r#"{"apps":{}}"#),
            Err(OsqueryError::Shape(_))
        ));
        assert!(matches!(
            from_osquery(r#"[{"uid":"0"}]"#),
            Err(OsqueryError::UnknownColumns(_))
        ));
        assert!(matches!(
            from_osquery(r#"["kesl"]"#),
            Err(OsqueryError::RowNotObject { .. })
        ));
        assert!(matches!(
            from_osquery(r#"{"programs":[{"version":"1"}]}"#),
            Err(OsqueryError::MissingColumn { column: "name", .. })
        ));
    }

    #[test]
    fn an_app_named_only_dot_app_has_no_name() {
        // Found while writing the osquery fuzz target's invariant (no
        // software without a name): `.app` trimmed to "".
        assert!(matches!(
            from_osquery(r#"[{"bundle_identifier":"x","name":".app"}]"#),
            Err(OsqueryError::MissingColumn { column: "name", .. })
        ));
        let inv = from_osquery(r#"[{"bundle_identifier":"x","name":"Kaspersky.app"}]"#).unwrap();
        assert_eq!(inv.software[0].name, "Kaspersky");
    }
}
