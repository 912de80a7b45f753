//! Flatpak applications and runtimes, from
//! `flatpak list --columns=application,name,version,origin`, which prints
//! tab-separated rows when its output is not a terminal.

use posture_core::attestation::claims::{Software, SoftwareSource};

use super::{non_empty, LineError};

/// The arguments whose output [`parse_flatpak_list`] reads.
pub const LIST_ARGS: [&str; 2] = ["list", "--columns=application,name,version,origin"];

/// Parses the output of `flatpak` with [`LIST_ARGS`]. The origin (a remote
/// such as `flathub`) is read but not reported: it names where a package came
/// from, not who made it.
pub fn parse_flatpak_list(output: &str) -> Result<Vec<Software>, LineError> {
    let mut apps = Vec::new();
    for (i, line) in output.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let application = fields.next().and_then(non_empty);
        let name = fields.next().and_then(non_empty);
        let version = fields.next().and_then(non_empty);
        let (Some(application), Some(_origin)) = (application, fields.next()) else {
            return Err(LineError {
                line: i + 1,
                problem: "expected application, name, version and origin columns".into(),
            });
        };
        apps.push(Software {
            name: name.unwrap_or_else(|| application.clone()),
            vendor: None,
            version,
            id: Some(application),
            signer: None,
            source: Some(SoftwareSource::Flatpak),
        });
    }
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_apps_named_by_their_display_name() {
        let out = "org.mozilla.firefox\tFirefox\t128.0.3\tflathub\n\
                   org.freedesktop.Platform\tFreedesktop Platform\t23.08.20\tflathub\n\
                   com.example.NoName\t\t\tlocal\n";
        let p = parse_flatpak_list(out).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "Firefox");
        assert_eq!(p[0].id.as_deref(), Some("org.mozilla.firefox"));
        assert_eq!(p[0].version.as_deref(), Some("128.0.3"));
        assert_eq!(p[2].name, "com.example.NoName");
        assert_eq!(p[2].version, None);
    }

    #[test]
    fn output_without_columns_is_an_error() {
        let e = parse_flatpak_list("Firefox org.mozilla.firefox 128.0 stable\n").unwrap_err();
        assert_eq!(e.line, 1);
    }
}
