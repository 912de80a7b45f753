//! ClamAV on Linux: whether it is installed, whether its scanning daemon
//! runs, and how old its signatures are.
//!
//! The age comes from the header of the `daily` database (`daily.cvd` as
//! downloaded, `daily.cld` after an incremental update): a text line of at
//! most 512 bytes, `ClamAV-VDB:<build time>:<version>:<signatures>:<level>:
//! <md5>:<digital signature>:<builder>:<build time in seconds>`, where the
//! first build time is written as `27 Nov 2026 08-00 +0000` (a hyphen, since
//! `:` separates the fields) and the last one, present since ClamAV 0.9x, is
//! the same instant in seconds since the epoch. Only those 512 bytes are read,
//! whatever the size of the file.
//!
//! The rules (ClamAV has no "security centre" that says them):
//! - **present**: `clamscan` or `clamd` is installed (`freshclam` alone
//!   scans nothing);
//! - **enabled**: the scanning daemon `clamd` (or the on-access scanner
//!   `clamonacc`, which needs it) is running. `clamscan` only scans when a
//!   person or a cron job starts it, which is not protection that is
//!   switched on. Unknown (`None`) when the process list could not be read;
//! - **up to date**: the daily database was built at most
//!   [`MAX_SIGNATURE_AGE`] ago. ClamAV publishes it every day and freshclam
//!   checks up to 24 times a day, so a week-old database means updating has
//!   stopped. No database at all: not up to date. A database whose header
//!   cannot be read, or that claims to be built more than a day in the
//!   future (a wrong clock): unknown.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use posture_core::attestation::claims::{Process, SecurityProduct, SecurityProductKind};

/// Older daily signatures are out of date.
pub const MAX_SIGNATURE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A header claiming a build time further ahead than this is not believed.
const FUTURE_SLACK: Duration = Duration::from_secs(24 * 3600);

/// The header is one fixed-size block.
const HEADER_BYTES: usize = 512;

/// Configuration files are small; a larger one is not read at all.
const MAX_CONF_BYTES: u64 = 256 * 1024;

/// Where the binaries live on distributions (and in a source install).
const SCANNERS: [&str; 4] = [
    "usr/bin/clamscan",
    "usr/sbin/clamd",
    "usr/local/bin/clamscan",
    "usr/local/sbin/clamd",
];

/// The configuration files that may name `DatabaseDirectory`: Debian's,
/// Fedora/RHEL's, and a source install's.
const CONFS: [&str; 5] = [
    "etc/clamav/freshclam.conf",
    "etc/freshclam.conf",
    "etc/clamav/clamd.conf",
    "etc/clamd.d/scan.conf",
    "usr/local/etc/freshclam.conf",
];

/// The database directory when no configuration names one.
const DEFAULT_DB_DIRS: [&str; 2] = ["var/lib/clamav", "usr/local/share/clamav"];

/// The processes that mean ClamAV scans without being asked.
const DAEMONS: [&str; 2] = ["clamd", "clamonacc"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvdError {
    #[error("not a ClamAV database header (no `ClamAV-VDB:` at the start)")]
    NotAHeader,
    #[error("the header has no build time that can be read")]
    NoBuildTime,
}

/// The build time in a database header (the first bytes of a `.cvd` or
/// `.cld` file; anything after the first 512 bytes is ignored).
pub fn parse_cvd_header(bytes: &[u8]) -> Result<SystemTime, CvdError> {
    let header = &bytes[..bytes.len().min(HEADER_BYTES)];
    let text = String::from_utf8_lossy(header);
    let text = text
        .strip_prefix("ClamAV-VDB:")
        .ok_or(CvdError::NotAHeader)?;
    let fields: Vec<&str> = text
        .trim_end_matches([' ', '\0', '\n'])
        .split(':')
        .collect();
    // The seconds field (the 8th after the tag) is exact; the text date of
    // the first field has minute precision and serves older databases.
    if let Some(secs) = fields.get(7).and_then(|f| f.trim().parse::<u64>().ok()) {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    }
    fields
        .first()
        .and_then(|f| parse_text_build_time(f))
        .ok_or(CvdError::NoBuildTime)
}

/// `27 Nov 2026 08-00 +0000`, as `sigtool` writes it.
fn parse_text_build_time(text: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:short] [year] [hour]-[minute] [offset_hour sign:mandatory][offset_minute]"
    );
    let t = time::OffsetDateTime::parse(text.trim(), &format).ok()?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// `DatabaseDirectory` in a clamd/freshclam configuration file (the last
/// one wins, as in ClamAV's own parser; `#` starts a comment).
pub fn database_directory(conf: &str) -> Option<String> {
    conf.lines()
        .rev()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("DatabaseDirectory")?;
            rest.starts_with([' ', '\t'])
                .then(|| rest.trim().to_string())
        })
        .find(|d| !d.is_empty())
}

/// ClamAV under `root`, or `None` when it is not installed. `processes` is
/// `None` when the process list could not be read. Problems reading the
/// database go to `warnings`.
pub fn detect(
    root: &Path,
    now: SystemTime,
    processes: Option<&[Process]>,
    warnings: &mut Vec<String>,
) -> Option<SecurityProduct> {
    if !SCANNERS.iter().any(|p| exists(&root.join(p))) {
        return None;
    }
    let enabled = processes.map(|ps| {
        ps.iter()
            .any(|p| DAEMONS.contains(&super::security::process_base_name(p)))
    });
    let up_to_date = match newest_daily(root, warnings) {
        Daily::Missing => Some(false),
        Daily::Unreadable => None,
        Daily::Built(built) => match now.duration_since(built) {
            Ok(age) => Some(age <= MAX_SIGNATURE_AGE),
            Err(ahead) if ahead.duration() <= FUTURE_SLACK => Some(true),
            Err(_) => {
                warnings.push("the ClamAV daily database claims a build time in the future".into());
                None
            }
        },
    };
    Some(SecurityProduct {
        name: "ClamAV".into(),
        vendor: Some("Cisco Talos".into()),
        kind: Some(SecurityProductKind::Antivirus),
        enabled,
        up_to_date,
    })
}

enum Daily {
    Missing,
    Unreadable,
    Built(SystemTime),
}

/// The newest of the `daily` databases in the configured directories.
fn newest_daily(root: &Path, warnings: &mut Vec<String>) -> Daily {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for conf in CONFS {
        let Some(text) = read_small(&root.join(conf), MAX_CONF_BYTES) else {
            continue;
        };
        if let Some(dir) = database_directory(&text) {
            let dir = root.join(dir.trim_start_matches('/'));
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    if dirs.is_empty() {
        dirs.extend(DEFAULT_DB_DIRS.iter().map(|d| root.join(d)));
    }
    let mut newest: Option<SystemTime> = None;
    let mut unreadable = false;
    for dir in &dirs {
        for name in ["daily.cld", "daily.cvd"] {
            let path = dir.join(name);
            match read_header(&path) {
                Ok(None) => {}
                Ok(Some(bytes)) => match parse_cvd_header(&bytes) {
                    Ok(t) => newest = Some(newest.map_or(t, |n| n.max(t))),
                    Err(e) => {
                        unreadable = true;
                        warnings.push(format!("{}: {e}", path.display()));
                    }
                },
                Err(e) => {
                    unreadable = true;
                    warnings.push(format!("cannot read {}: {e}", path.display()));
                }
            }
        }
    }
    match newest {
        Some(t) => Daily::Built(t),
        None if unreadable => Daily::Unreadable,
        None => Daily::Missing,
    }
}

/// The first [`HEADER_BYTES`] of a file, `None` when it does not exist.
fn read_header(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        // Opening a FIFO would block until someone writes to it.
        Ok(m) if !m.is_file() => {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok(_) => {}
    }
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES);
    file.take(HEADER_BYTES as u64).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// A configuration file of at most `limit` bytes, as text.
fn read_small(path: &Path, limit: u64) -> Option<String> {
    super::security::read_bounded(path, limit).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_seconds_field_wins_and_the_text_date_is_the_fallback() {
        let h = "ClamAV-VDB:27 Nov 2026 08-00 +0000:27835:2077123:90:00:AA:builder:1795766400";
        assert_eq!(parse_cvd_header(h.as_bytes()), Ok(at(1_795_766_400)));
        let old = "ClamAV-VDB:27 Nov 2026 08-00 +0000:27835:2077123:90";
        assert_eq!(parse_cvd_header(old.as_bytes()), Ok(at(1_795_766_400)));
        let offset = "ClamAV-VDB:27 Nov 2026 09-00 +0100:1:2:3";
        assert_eq!(parse_cvd_header(offset.as_bytes()), Ok(at(1_795_766_400)));
    }

    #[test]
    fn only_the_first_512_bytes_count() {
        let mut bytes = format!("{:<512}", "ClamAV-VDB:bad date:1:2:3").into_bytes();
        bytes.extend_from_slice(b":1795766400");
        assert_eq!(parse_cvd_header(&bytes), Err(CvdError::NoBuildTime));
        assert_eq!(
            parse_cvd_header(b"\x1f\x8b\x08garbage"),
            Err(CvdError::NotAHeader)
        );
        assert_eq!(parse_cvd_header(b""), Err(CvdError::NotAHeader));
    }

    #[test]
    fn database_directory_last_one_wins_and_comments_do_not_count() {
        let conf = "#DatabaseDirectory /nope\nDatabaseDirectory /var/lib/clamav\n\
                    DatabaseDirectoryX /no\nDatabaseDirectory\t/srv/clamav\n";
        assert_eq!(database_directory(conf).as_deref(), Some("/srv/clamav"));
        assert_eq!(database_directory("Checks 24\n"), None);
    }
}
