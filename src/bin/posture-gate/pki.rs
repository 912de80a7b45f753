//! `posture-gate pki init` and `pki issue-device`: the development PKI as
//! commands. The certificates come from the engine in `posture_gate::pki`
//! (which the test kit shares); what is here is what a command promises the
//! person running it: `init` never overwrites a CA key, and a device name is
//! a safe directory name before anything is written.

use std::path::Path;

use anyhow::{bail, Result};
use posture_gate::pki::{DevicePaths, Pki, PkiPaths};

/// A fresh PKI in `dir`; refuses to overwrite a CA key.
pub fn init(dir: &Path) -> Result<PkiPaths> {
    Ok(Pki::generate()?.write_new(dir)?)
}

/// A device certificate and key from the PKI in `dir`, written to
/// `dir/devices/NAME/{cert.pem,key.pem}`; refuses to replace a device's key.
pub fn issue_device(dir: &Path, name: &str, org: &str, ou: Option<&str>) -> Result<DevicePaths> {
    validate_name(name)?;
    let pki = Pki::load(dir)?;
    let creds = pki.issue_device(name, org, ou)?;
    Ok(creds.write(&dir.join("devices").join(name))?)
}

/// A name becomes a directory: no separators, no `..`, no hidden files.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!("device name {name:?} must be 1 to 64 of A-Z a-z 0-9 . _ - and not start with '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_devices_dir_are_refused() {
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "x y", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["lt-042", "host.example", "A_1"] {
            assert!(validate_name(ok).is_ok(), "{ok:?}");
        }
    }
}
