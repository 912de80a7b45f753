//! Snap packages, read from snapd's own files rather than `snap list`: the
//! command needs a running snapd and fails in containers and early boot,
//! while the files are always there. `/var/lib/snapd/snaps/NAME_REV.snap` is
//! the squashfs image of every installed revision; the version comes from
//! the mounted `/snap/NAME/current/meta/snap.yaml` when it is mounted.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use posture_core::attestation::claims::{Software, SoftwareSource};

use super::non_empty;

/// The snap (or parallel-install instance) name of a `NAME_REV.snap` file,
/// or `None` for anything else in the directory (`partial/`, downloads).
fn snap_name_from_file(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".snap")?;
    let (name, revision) = stem.rsplit_once('_')?;
    // Revisions are numbers; local installs are `x1`, `x2`, ...
    let revision = revision.strip_prefix('x').unwrap_or(revision);
    let numeric = !revision.is_empty() && revision.bytes().all(|b| b.is_ascii_digit());
    (numeric && !name.is_empty()).then_some(name)
}

/// The top-level `version:` of a `snap.yaml`, unquoted.
fn parse_snap_yaml_version(yaml: &str) -> Option<String> {
    let line = yaml.lines().find(|l| l.starts_with("version:"))?;
    let value = line["version:".len()..].trim();
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
        .unwrap_or(value);
    non_empty(value)
}

/// The snaps installed in the tree under `root`. `Ok(None)` when snapd is
/// not installed there.
pub fn read_snaps(root: &Path) -> io::Result<Option<Vec<Software>>> {
    let dir = root.join("var/lib/snapd/snaps");
    let entries = match std::fs::read_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    // Several revisions of one snap are kept for rollback: one entry each.
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str().and_then(snap_name_from_file) {
            names.insert(name.to_string());
        }
    }
    let snaps = names
        .into_iter()
        .map(|name| {
            let yaml = root.join("snap").join(&name).join("current/meta/snap.yaml");
            let version = std::fs::read_to_string(yaml)
                .ok()
                .and_then(|y| parse_snap_yaml_version(&y));
            Software {
                id: Some(name.clone()),
                name,
                vendor: None,
                version,
                signer: None,
                source: Some(SoftwareSource::Snap),
            }
        })
        .collect();
    Ok(Some(snaps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_file_names_give_the_snap_name() {
        assert_eq!(snap_name_from_file("core22_1122.snap"), Some("core22"));
        assert_eq!(
            snap_name_from_file("firefox_beta_4090.snap"),
            Some("firefox_beta")
        );
        assert_eq!(snap_name_from_file("hello_x1.snap"), Some("hello"));
        assert_eq!(snap_name_from_file("partial"), None);
        assert_eq!(snap_name_from_file("core22_abc.snap"), None);
        assert_eq!(snap_name_from_file("_12.snap"), None);
    }

    #[test]
    fn the_version_is_read_quoted_or_not() {
        assert_eq!(
            parse_snap_yaml_version("name: firefox\nversion: '128.0-2'\n"),
            Some("128.0-2".into())
        );
        assert_eq!(
            parse_snap_yaml_version("version: 1.2\n"),
            Some("1.2".into())
        );
        assert_eq!(parse_snap_yaml_version("name: x\n"), None);
    }

    #[test]
    fn revisions_of_one_snap_are_one_package() {
        let root = tempfile::tempdir().unwrap();
        let snaps = root.path().join("var/lib/snapd/snaps");
        std::fs::create_dir_all(snaps.join("partial")).unwrap();
        for f in ["firefox_4090.snap", "firefox_4173.snap", "core22_1122.snap"] {
            std::fs::write(snaps.join(f), b"").unwrap();
        }
        let meta = root.path().join("snap/firefox/current/meta");
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(meta.join("snap.yaml"), "name: firefox\nversion: 128.0-2\n").unwrap();
        let found = read_snaps(root.path()).unwrap().unwrap();
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["core22", "firefox"]);
        assert_eq!(found[1].version.as_deref(), Some("128.0-2"));
        assert_eq!(found[0].version, None);
    }

    #[test]
    fn no_snapd_directory_means_no_snap_source() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(read_snaps(root.path()).unwrap(), None);
    }
}
