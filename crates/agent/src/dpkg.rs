//! The dpkg database, `/var/lib/dpkg/status`, read directly: it is what
//! `dpkg -l` reads, needs no tool and parses in a few milliseconds.
//!
//! The file is a sequence of RFC 822-style stanzas separated by blank lines;
//! a line starting with a space or tab continues the previous field.

use posture_core::attestation::claims::{Software, SoftwareSource};

use super::non_empty;

/// Why a status file could not be read whole. `partial` keeps the packages
/// parsed before the problem, so a report can still show them while it says
/// it is incomplete.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("dpkg status line {line}: {problem}")]
pub struct DpkgError {
    pub line: usize,
    pub problem: DpkgProblem,
    pub partial: Vec<Software>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpkgProblem {
    #[error("the file ends in the middle of a line (truncated?)")]
    Truncated,
    #[error("continuation line without a field before it")]
    OrphanContinuation,
    #[error("line is neither `Field: value` nor a continuation")]
    NotAField,
    #[error("stanza has no `{0}` field")]
    MissingField(&'static str),
    #[error("the `{0}` field is empty")]
    EmptyField(&'static str),
    #[error("`Status` is not three words: {0:?}")]
    BadStatus(String),
}

/// The fields of one stanza this agent uses.
#[derive(Default)]
struct Stanza<'a> {
    first_line: usize,
    package: Option<&'a str>,
    status: Option<&'a str>,
    version: Option<&'a str>,
    maintainer: Option<&'a str>,
}

/// Parses a dpkg status file into the packages whose files are on disk.
pub fn parse_dpkg_status(text: &str) -> Result<Vec<Software>, DpkgError> {
    // dpkg writes whole lines; a last line without its newline means the
    // file was cut, whatever the stanzas before it look like.
    let truncated = !text.is_empty() && !text.ends_with('\n');
    let last_line = text.lines().count();
    match parse_stanzas(text) {
        Ok(partial) if truncated => Err(DpkgError {
            line: last_line,
            problem: DpkgProblem::Truncated,
            partial,
        }),
        Ok(packages) => Ok(packages),
        Err((_, _, partial)) if truncated => Err(DpkgError {
            line: last_line,
            problem: DpkgProblem::Truncated,
            partial,
        }),
        Err((line, problem, partial)) => Err(DpkgError {
            line,
            problem,
            partial,
        }),
    }
}

type StanzaError = (usize, DpkgProblem, Vec<Software>);

fn parse_stanzas(text: &str) -> Result<Vec<Software>, StanzaError> {
    let mut out = Vec::new();
    let mut stanza: Option<Stanza> = None;
    let mut in_field = false;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            if let Some(s) = stanza.take() {
                finish(s, &mut out).map_err(|p| (number, p, std::mem::take(&mut out)))?;
            }
            in_field = false;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Continuations only carry descriptions and conffiles here.
            if !in_field {
                return Err((number, DpkgProblem::OrphanContinuation, out));
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err((number, DpkgProblem::NotAField, out));
        };
        let s = stanza.get_or_insert_with(|| Stanza {
            first_line: number,
            ..Stanza::default()
        });
        in_field = true;
        let value = value.trim();
        // Field names are case-insensitive (deb822).
        let slot = if name.eq_ignore_ascii_case("Package") {
            &mut s.package
        } else if name.eq_ignore_ascii_case("Status") {
            &mut s.status
        } else if name.eq_ignore_ascii_case("Version") {
            &mut s.version
        } else if name.eq_ignore_ascii_case("Maintainer") {
            &mut s.maintainer
        } else {
            continue;
        };
        *slot = Some(value);
    }
    if let Some(s) = stanza.take() {
        let line = s.first_line;
        finish(s, &mut out).map_err(|p| (line, p, std::mem::take(&mut out)))?;
    }
    Ok(out)
}

fn finish(s: Stanza, out: &mut Vec<Software>) -> Result<(), DpkgProblem> {
    let package = s.package.ok_or(DpkgProblem::MissingField("Package"))?;
    // Software has a name; a nameless package would be an item nothing can
    // match (found by fuzzing: `Package:` with no value).
    if package.is_empty() {
        return Err(DpkgProblem::EmptyField("Package"));
    }
    let status = s.status.ok_or(DpkgProblem::MissingField("Status"))?;
    if !files_on_disk(status)? {
        return Ok(());
    }
    let version = s.version.ok_or(DpkgProblem::MissingField("Version"))?;
    out.push(Software {
        name: package.to_string(),
        vendor: s.maintainer.and_then(maintainer_name),
        version: non_empty(version),
        id: Some(package.to_string()),
        signer: None,
        source: Some(SoftwareSource::Dpkg),
    });
    Ok(())
}

/// Whether a package in this `Status` ("want flag state") has its files on
/// disk. Only the state word matters: a package on `hold`, or selected for
/// removal (`deinstall ok installed`), is still installed, and one that is
/// `unpacked` or `half-configured` has its programs on disk even if its
/// configuration failed. Reporting those keeps a prohibited package from
/// hiding behind a broken or held install. `config-files` (removed, only
/// configuration left) and `not-installed` are not installed.
pub(crate) fn files_on_disk(status: &str) -> Result<bool, DpkgProblem> {
    let words: Vec<&str> = status.split_ascii_whitespace().collect();
    let [_want, _flag, state] = words[..] else {
        return Err(DpkgProblem::BadStatus(status.to_string()));
    };
    Ok(!matches!(state, "not-installed" | "config-files"))
}

/// The maintainer's name without the e-mail address, which would stop a
/// vendor such as "AO Kaspersky Lab" from matching as a whole name.
fn maintainer_name(maintainer: &str) -> Option<String> {
    let name = match maintainer.find('<') {
        Some(i) => maintainer[..i].trim(),
        None => maintainer.trim(),
    };
    non_empty(name).or_else(|| non_empty(maintainer))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "Package: kesl\nStatus: install ok installed\nVersion: 12.1.0-1234\n\
Maintainer: AO Kaspersky Lab <support@kaspersky.com>\nDescription: Kaspersky Endpoint Security\n \
for Linux\n .\n second paragraph\n\nPackage: old\nStatus: deinstall ok config-files\nVersion: 1\n\n";

    #[test]
    fn installed_packages_are_reported_with_vendor_without_email() {
        let p = parse_dpkg_status(TWO).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "kesl");
        assert_eq!(p[0].id.as_deref(), Some("kesl"));
        assert_eq!(p[0].version.as_deref(), Some("12.1.0-1234"));
        assert_eq!(p[0].vendor.as_deref(), Some("AO Kaspersky Lab"));
        assert_eq!(p[0].source, Some(SoftwareSource::Dpkg));
    }

    #[test]
    fn states_with_files_on_disk_count_as_installed() {
        for (status, installed) in [
            ("install ok installed", true),
            ("hold ok installed", true),
            ("deinstall ok installed", true),
            ("install reinstreq half-installed", true),
            ("install ok unpacked", true),
            ("install ok half-configured", true),
            ("install ok triggers-pending", true),
            ("deinstall ok config-files", false),
            ("purge ok not-installed", false),
        ] {
            assert_eq!(files_on_disk(status), Ok(installed), "{status}");
        }
        assert!(files_on_disk("installed").is_err());
    }

    #[test]
    fn a_truncated_file_is_an_error_that_keeps_the_complete_stanzas() {
        let cut = &TWO[..TWO.find("Package: old").unwrap() + 10];
        let e = parse_dpkg_status(cut).unwrap_err();
        assert_eq!(e.problem, DpkgProblem::Truncated);
        assert_eq!(e.partial.len(), 1);
    }

    #[test]
    fn a_stanza_cut_between_lines_is_missing_a_field() {
        let e = parse_dpkg_status("Package: kesl\nStatus: install ok installed\n").unwrap_err();
        assert_eq!(e.problem, DpkgProblem::MissingField("Version"));
        let e = parse_dpkg_status("Package: kesl\n").unwrap_err();
        assert_eq!(e.problem, DpkgProblem::MissingField("Status"));
    }

    #[test]
    fn garbage_lines_are_errors_with_their_line_number() {
        let e = parse_dpkg_status(" orphan\n").unwrap_err();
        assert_eq!((e.line, e.problem), (1, DpkgProblem::OrphanContinuation));
        let e = parse_dpkg_status("Package: a\nno colon here\n").unwrap_err();
        assert_eq!((e.line, e.problem), (2, DpkgProblem::NotAField));
    }

    #[test]
    fn an_empty_package_name_is_an_error() {
        // Minimised from a cargo-fuzz crash (fuzz/README.md, target dpkg).
        let e = parse_dpkg_status("Package:\nStatus: i o installed\nVersion: 1\n").unwrap_err();
        assert_eq!((e.line, e.problem), (1, DpkgProblem::EmptyField("Package")));
        let e = parse_dpkg_status("Package:\n\t\0\nStatus: a b c\nVersion:\n\n").unwrap_err();
        assert_eq!((e.line, e.problem), (5, DpkgProblem::EmptyField("Package")));
    }

    #[test]
    fn an_empty_file_has_no_packages() {
        assert_eq!(parse_dpkg_status(""), Ok(vec![]));
    }
}
