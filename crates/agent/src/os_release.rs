//! `/etc/os-release` (os-release(5)): shell-style `KEY=value` lines whose
//! values may be double- or single-quoted, with backslash escapes inside
//! double quotes.

use posture_core::attestation::claims::{Os, OsFamily};

/// The OS an os-release file describes: name from `PRETTY_NAME`, else `NAME`;
/// version from `VERSION_ID`. Lines that are not assignments are ignored, as
/// os-release(5) asks of readers.
pub fn parse_os_release(text: &str) -> Os {
    let mut pretty = None;
    let mut name = None;
    let mut version = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let Some(value) = unquote(raw.trim()) else {
            continue;
        };
        let slot = match key.trim() {
            "PRETTY_NAME" => &mut pretty,
            "NAME" => &mut name,
            "VERSION_ID" => &mut version,
            _ => continue,
        };
        *slot = super::non_empty(&value);
    }
    Os {
        family: OsFamily::Linux,
        name: pretty.or(name),
        version,
    }
}

/// The value of a shell assignment, or `None` when its quoting is broken.
fn unquote(raw: &str) -> Option<String> {
    if let Some(inner) = raw.strip_prefix('\'') {
        return inner.strip_suffix('\'').map(str::to_string);
    }
    let Some(inner) = raw.strip_prefix('"') else {
        return Some(raw.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            // Inside double quotes a backslash escapes only these (sh rules).
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_name_and_version_id_are_used() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_ID=\"12\"\nID=debian\n",
        );
        assert_eq!(os.family, OsFamily::Linux);
        assert_eq!(os.name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(os.version.as_deref(), Some("12"));
    }

    #[test]
    fn name_is_the_fallback_and_quotes_and_escapes_are_undone() {
        let os = parse_os_release(
            "# comment\nNAME='Fedora Linux'\nVERSION_ID=40\nBROKEN\n\
             PRETTY_NAME=\"My \\\"Special\\\" \\$OS \\\\ 1\"\n",
        );
        assert_eq!(os.name.as_deref(), Some("My \"Special\" $OS \\ 1"));
        assert_eq!(os.version.as_deref(), Some("40"));
        let os = parse_os_release("NAME=Alpine\nPRETTY_NAME=\"unterminated\n");
        assert_eq!(os.name.as_deref(), Some("Alpine"));
    }

    #[test]
    fn an_empty_file_gives_only_the_family() {
        let os = parse_os_release("");
        assert_eq!(
            (os.family, os.name, os.version),
            (OsFamily::Linux, None, None)
        );
    }
}
