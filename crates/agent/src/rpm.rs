//! rpm packages, listed by `rpm -qa` with a tab-separated query format (the
//! rpm database is a Berkeley DB, NDB or SQLite file depending on the
//! distribution; the tool is the one stable interface to it).

use posture_core::attestation::claims::{Software, SoftwareSource};

use super::{non_empty, LineError};

/// The `--queryformat` whose output [`parse_rpm_qa`] reads.
pub const QUERY_FORMAT: &str = "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{VENDOR}\\n";

/// Parses `rpm -qa --queryformat QUERY_FORMAT` output.
pub fn parse_rpm_qa(output: &str) -> Result<Vec<Software>, LineError> {
    let mut packages = Vec::new();
    for (i, line) in output.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, version, vendor] = fields[..] else {
            return Err(LineError {
                line: i + 1,
                problem: format!("expected 3 tab-separated fields, got {}", fields.len()),
            });
        };
        let Some(name) = non_empty(name) else {
            return Err(LineError {
                line: i + 1,
                problem: "empty package name".into(),
            });
        };
        // The imported signing keys show up as packages; they are not software.
        if name == "gpg-pubkey" {
            continue;
        }
        packages.push(Software {
            id: Some(name.clone()),
            name,
            vendor: non_empty(vendor).filter(|v| v != "(none)"),
            version: non_empty(version),
            signer: None,
            source: Some(SoftwareSource::Rpm),
        });
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_packages_and_none_vendor_is_dropped() {
        let out = "bash\t5.2.26-3.fc40\tFedora Project\n\
                   gpg-pubkey\ta15b79cc-63d04c2c\t(none)\n\
                   kesl\t12.1.0-1234\tAO Kaspersky Lab\n\
                   local-tool\t1.0-1\t(none)\n";
        let p = parse_rpm_qa(out).unwrap();
        let names: Vec<&str> = p.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bash", "kesl", "local-tool"]);
        assert_eq!(p[1].vendor.as_deref(), Some("AO Kaspersky Lab"));
        assert_eq!(p[1].version.as_deref(), Some("12.1.0-1234"));
        assert_eq!(p[2].vendor, None);
        assert_eq!(p[0].source, Some(SoftwareSource::Rpm));
    }

    #[test]
    fn a_line_of_another_shape_is_an_error() {
        let e = parse_rpm_qa("bash\t5.2\tFedora\nerror: rpmdb open failed\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
