//! XProtect, the antivirus built into macOS.
//!
//! Its definitions are a bundle, `XProtect.bundle`, that Apple updates on
//! its own schedule apart from macOS updates:
//! - `/Library/Apple/System/Library/CoreServices/XProtect.bundle` (macOS 11
//!   and later, written by Software Update's "Install Security Responses and
//!   system files");
//! - `/System/Library/CoreServices/XProtect.bundle` (macOS 10.15 and older);
//! - `/private/var/protected/xprotect/XProtect.bundle` (macOS 15 and later,
//!   where the `xprotect` tool installs updates it fetches itself; the copy
//!   in `/Library/Apple` can then be older).
//!
//! The newest of these by `CFBundleShortVersionString` (a plain number that
//! Apple raises with every release, e.g. `5287`) is the one in use.
//!
//! The rules:
//! - **enabled**: always, when a bundle is present: macOS has no setting to
//!   switch XProtect off, and its files are protected by System Integrity
//!   Protection;
//! - **up to date**: the definitions are at most [`MAX_AGE`] old, judged by
//!   the modification time of `Contents/Resources/XProtect.meta.plist`
//!   (or `Contents/Info.plist`), which an update rewrites. Apple released
//!   XProtect updates every one to four weeks in 2023-2025, so a Mac that
//!   installs them automatically is never more than one release (about six
//!   weeks at worst) behind; definitions older than that mean automatic
//!   updates are off or failing. The version number alone cannot say this
//!   without a list of Apple's releases that would itself go stale, and
//!   XProtect Remediator's version moves on a schedule of its own.
//!   Definitions dated more than a day in the future, or whose time cannot
//!   be read: unknown.

use std::path::Path;
use std::time::{Duration, SystemTime};

use posture_core::attestation::claims::{SecurityProduct, SecurityProductKind};

use super::security::read_bounded;

/// Older definitions are out of date.
pub const MAX_AGE: Duration = Duration::from_secs(45 * 24 * 3600);

const FUTURE_SLACK: Duration = Duration::from_secs(24 * 3600);

/// An Info.plist is a few KiB.
const MAX_PLIST_BYTES: u64 = 256 * 1024;

/// The bundle locations, newest scheme first (see the module docs).
pub const BUNDLES: [&str; 3] = [
    "private/var/protected/xprotect/XProtect.bundle",
    "Library/Apple/System/Library/CoreServices/XProtect.bundle",
    "System/Library/CoreServices/XProtect.bundle",
];

/// One installed copy of the definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definitions {
    /// `CFBundleShortVersionString` (or `CFBundleVersion`) as a number.
    pub version: Option<u64>,
    /// When the definitions were last written.
    pub modified: Option<SystemTime>,
}

/// The version in an XProtect `Info.plist` (XML or binary).
pub fn parse_version(info_plist: &[u8]) -> Option<u64> {
    let value: plist::Value = plist::from_bytes(info_plist).ok()?;
    let dict = value.as_dictionary()?;
    ["CFBundleShortVersionString", "CFBundleVersion"]
        .iter()
        .filter_map(|k| dict.get(k)?.as_string())
        .find_map(|v| v.trim().parse::<u64>().ok())
}

fn read_definitions(bundle: &Path) -> Definitions {
    let info = bundle.join("Contents/Info.plist");
    let version = read_bounded(&info, MAX_PLIST_BYTES).and_then(|b| parse_version(&b));
    let meta = bundle.join("Contents/Resources/XProtect.meta.plist");
    let modified = [meta, info]
        .iter()
        .find_map(|p| std::fs::metadata(p).ok()?.modified().ok());
    Definitions { version, modified }
}

/// XProtect under `root`, or `None` when no bundle is there (not macOS).
pub fn detect(root: &Path, now: SystemTime, warnings: &mut Vec<String>) -> Option<SecurityProduct> {
    let installed: Vec<Definitions> = BUNDLES
        .iter()
        .map(|b| root.join(b))
        .filter(|b| b.is_dir())
        .map(|b| read_definitions(&b))
        .collect();
    // The highest version; a copy whose version cannot be read only when
    // nothing better is there. Ties go to the newer copy.
    let current = installed.iter().max_by_key(|d| (d.version, d.modified))?;
    let up_to_date = match current.modified {
        None => {
            warnings.push("cannot read the date of XProtect's definitions".into());
            None
        }
        Some(m) => match now.duration_since(m) {
            Ok(age) => Some(age <= MAX_AGE),
            Err(ahead) if ahead.duration() <= FUTURE_SLACK => Some(true),
            Err(_) => {
                warnings.push("XProtect's definitions are dated in the future".into());
                None
            }
        },
    };
    Some(SecurityProduct {
        name: "XProtect".into(),
        vendor: Some("Apple Inc.".into()),
        kind: Some(SecurityProductKind::Antivirus),
        enabled: Some(true),
        up_to_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_short_version_or_bundle_version() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>CFBundleIdentifier</key><string>com.apple.xprotectframework.PluginService</string>
<key>CFBundleShortVersionString</key><string>5287</string>
</dict></plist>"#;
        assert_eq!(parse_version(xml), Some(5287));
        let only_bundle = b"<plist version=\"1.0\"><dict><key>CFBundleShortVersionString</key><string>x</string><key>CFBundleVersion</key><string>2193</string></dict></plist>";
        assert_eq!(parse_version(only_bundle), Some(2193));
        assert_eq!(parse_version(b"not a plist"), None);
    }
}
