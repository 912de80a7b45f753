//! The security products of Linux and macOS (claim `security_products`),
//! which, unlike Windows, have no security centre to ask: each product is
//! recognised by what it installs (directories under `/opt`, launch daemons,
//! application bundles), and its state is read where the product or the OS
//! states it (ClamAV's database header, `mdatp health`, XProtect's bundle).
//!
//! The rule for state: `enabled` and `up_to_date` are set only where the
//! platform or the product says them; everything else stays unknown
//! (`None`), which a policy never counts as a working antivirus, so an agent
//! that does not know fails closed instead of guessing `true`.
//!
//! Third-party products: `enabled` is `true` when one of the product's
//! daemons is seen running (Linux), and unknown otherwise, because the list
//! of daemon names is not exhaustive and their absence proves nothing;
//! `up_to_date` is unknown (these products keep their update state in their
//! own consoles, not on disk in a documented form).
//!
//! Everything here reads a tree rooted at `root` (`/` for this machine, a
//! fixture in tests) and runs a command (`mdatp`) only when told to, with a
//! bounded runtime and output. Every file read is bounded in size, and a
//! directory listing in entries, so a hostile or odd file cannot hang the
//! agent or exhaust its memory.

use std::path::Path;
use std::time::{Duration, SystemTime};

use posture_core::attestation::claims::{Process, SecurityProduct, SecurityProductKind, Software};

use super::{clamav, mdatp, xprotect};

/// How `mdatp health` is obtained.
#[derive(Debug, Clone, Copy)]
pub enum Mdatp<'a> {
    /// Not at all: the tree is not this machine (a fixture, a mounted disk).
    Skip,
    /// Run `mdatp health --output json` on this machine.
    Run,
    /// This output of `mdatp health --output json` (tests, imports).
    Given(&'a str),
}

/// What the detection reads besides the files under `root`.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    pub root: &'a Path,
    pub now: SystemTime,
    /// The running processes, `None` when they could not be listed.
    pub processes: Option<&'a [Process]>,
    /// The installed software already collected (macOS: the app bundles,
    /// whose bundle ids name some products).
    pub software: &'a [Software],
    pub mdatp: Mdatp<'a>,
}

/// The products found, and what could not be read (each makes the
/// inventory incomplete).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub products: Vec<SecurityProduct>,
    pub warnings: Vec<String>,
}

/// How long `mdatp health` may take; it asks the Defender daemon, which
/// answers in about a second when it is well.
const MDATP_TIMEOUT: Duration = Duration::from_secs(20);
/// Its JSON is a few KiB.
const MDATP_MAX_OUTPUT: usize = 1024 * 1024;
/// A launch daemon's property list is a few hundred bytes.
const MAX_PLIST_BYTES: u64 = 256 * 1024;
/// `/Library/LaunchDaemons` holds some dozens; more is not a real system.
const MAX_LAUNCH_DAEMONS: usize = 2000;

/// A third-party product, recognised by launchd labels and bundle ids
/// (macOS) and install directories (Linux).
struct Known {
    name: &'static str,
    vendor: &'static str,
    kind: SecurityProductKind,
    /// Prefixes of launch daemon labels and app bundle ids.
    mac_ids: &'static [&'static str],
    /// Install directories under `root`, with the product name they mean.
    linux_dirs: &'static [(&'static str, &'static str)],
    /// Daemon process names on Linux (at most 15 bytes: the kernel's
    /// `comm` is cut there, so both the cut and the full name are listed).
    linux_daemons: &'static [&'static str],
}

use SecurityProductKind::{Antivirus, Edr};

/// Kaspersky is reported like any other product: the catalogue then matches
/// it by its vendor, `AO Kaspersky Lab`.
const KNOWN: &[Known] = &[
    Known {
        name: "CrowdStrike Falcon",
        vendor: "CrowdStrike, Inc.",
        kind: Edr,
        mac_ids: &["com.crowdstrike.falcon"],
        linux_dirs: &[("opt/CrowdStrike", "CrowdStrike Falcon")],
        linux_daemons: &["falcon-sensor", "falcond"],
    },
    Known {
        name: "SentinelOne",
        vendor: "SentinelOne, Inc.",
        kind: Edr,
        mac_ids: &["com.sentinelone."],
        linux_dirs: &[("opt/sentinelone", "SentinelOne")],
        linux_daemons: &["s1-agent"],
    },
    Known {
        name: "Sophos",
        vendor: "Sophos Limited",
        kind: Antivirus,
        mac_ids: &["com.sophos."],
        linux_dirs: &[
            ("opt/sophos-spl", "Sophos Protection for Linux"),
            ("opt/sophos-av", "Sophos Anti-Virus for Linux"),
        ],
        linux_daemons: &["sophos_watchdog", "sophos_watchdo", "savd"],
    },
    Known {
        name: "Elastic Endpoint",
        vendor: "Elasticsearch B.V.",
        kind: Edr,
        mac_ids: &["co.elastic.endpoint"],
        linux_dirs: &[("opt/Elastic/Endpoint", "Elastic Endpoint")],
        linux_daemons: &["elastic-endpoint", "elastic-endpoin"],
    },
    Known {
        name: "ESET",
        vendor: "ESET, spol. s r.o.",
        kind: Antivirus,
        mac_ids: &["com.eset."],
        linux_dirs: &[("opt/eset", "ESET")],
        linux_daemons: &[],
    },
    Known {
        name: "Kaspersky",
        vendor: "AO Kaspersky Lab",
        kind: Antivirus,
        mac_ids: &["com.kaspersky."],
        linux_dirs: &[(
            "opt/kaspersky/kesl",
            "Kaspersky Endpoint Security for Linux",
        )],
        linux_daemons: &["kesl"],
    },
    Known {
        name: "Malwarebytes",
        vendor: "Malwarebytes Inc.",
        kind: Antivirus,
        mac_ids: &["com.malwarebytes."],
        linux_dirs: &[],
        linux_daemons: &[],
    },
    Known {
        name: "Bitdefender",
        vendor: "Bitdefender SRL",
        kind: Antivirus,
        mac_ids: &["com.bitdefender."],
        linux_dirs: &[(
            "opt/bitdefender-security-tools",
            "Bitdefender Endpoint Security Tools",
        )],
        linux_daemons: &["bdsecd"],
    },
    Known {
        name: "Norton",
        vendor: "Gen Digital Inc.",
        kind: Antivirus,
        mac_ids: &["com.norton."],
        linux_dirs: &[],
        linux_daemons: &[],
    },
    Known {
        name: "Symantec Endpoint Protection",
        vendor: "Broadcom Inc.",
        kind: Antivirus,
        mac_ids: &["com.symantec."],
        linux_dirs: &[],
        linux_daemons: &[],
    },
    Known {
        name: "Avast",
        vendor: "Avast Software s.r.o.",
        kind: Antivirus,
        mac_ids: &["com.avast."],
        linux_dirs: &[],
        linux_daemons: &[],
    },
    Known {
        name: "Trend Micro",
        vendor: "Trend Micro Incorporated",
        kind: Antivirus,
        mac_ids: &["com.trendmicro."],
        linux_dirs: &[("opt/ds_agent", "Trend Micro Deep Security Agent")],
        linux_daemons: &["ds_agent"],
    },
    Known {
        name: "Cisco Secure Endpoint",
        vendor: "Cisco Systems, Inc.",
        kind: Edr,
        mac_ids: &["com.cisco.amp."],
        linux_dirs: &[("opt/cisco/amp", "Cisco Secure Endpoint")],
        linux_daemons: &["ampdaemon"],
    },
    Known {
        name: "Cortex XDR",
        vendor: "Palo Alto Networks, Inc.",
        kind: Edr,
        mac_ids: &["com.paloaltonetworks.cortex."],
        linux_dirs: &[("opt/traps", "Cortex XDR")],
        linux_daemons: &["pmd"],
    },
    Known {
        name: "Jamf Protect",
        vendor: "Jamf",
        kind: Edr,
        mac_ids: &["com.jamf.protect."],
        linux_dirs: &[],
        linux_daemons: &[],
    },
];

/// Where Defender for Endpoint installs `mdatp` on Linux.
const MDATP_LINUX: [&str; 2] = ["opt/microsoft/mdatp", "usr/bin/mdatp"];
/// Its applications on macOS (the older name first shipped as "ATP").
const MDATP_MAC_APPS: [&str; 2] = [
    "Applications/Microsoft Defender.app",
    "Applications/Microsoft Defender ATP.app",
];
const MDATP_MAC_BUNDLE_ID: &str = "com.microsoft.wdav";

/// The security products of a Linux tree.
pub fn linux_products(scan: &Scan<'_>) -> Found {
    let mut found = Found::default();
    if let Some(p) = clamav::detect(scan.root, scan.now, scan.processes, &mut found.warnings) {
        found.products.push(p);
    }
    if MDATP_LINUX.iter().any(|p| exists(&scan.root.join(p))) {
        let p = defender(scan, "/usr/bin/mdatp", &mut found.warnings);
        found.products.push(p);
    }
    for k in KNOWN {
        let Some((_, name)) = k
            .linux_dirs
            .iter()
            .find(|(dir, _)| scan.root.join(dir).is_dir())
        else {
            continue;
        };
        let running = scan.processes.and_then(|ps| {
            ps.iter()
                .any(|p| k.linux_daemons.contains(&process_base_name(p)))
                .then_some(true)
        });
        found.products.push(SecurityProduct {
            name: (*name).into(),
            vendor: Some(k.vendor.into()),
            kind: Some(k.kind),
            enabled: running,
            up_to_date: None,
        });
    }
    found
}

/// The security products of a macOS tree: XProtect, Defender for Endpoint,
/// and the third-party products whose launch daemons or apps are installed.
pub fn macos_products(scan: &Scan<'_>) -> Found {
    let mut found = Found::default();
    if let Some(p) = xprotect::detect(scan.root, scan.now, &mut found.warnings) {
        found.products.push(p);
    }
    let defender_app = MDATP_MAC_APPS.iter().any(|a| scan.root.join(a).is_dir())
        || scan
            .software
            .iter()
            .any(|s| s.id.as_deref() == Some(MDATP_MAC_BUNDLE_ID));
    if defender_app {
        let p = defender(scan, "/usr/local/bin/mdatp", &mut found.warnings);
        found.products.push(p);
    }
    let labels = launch_daemon_labels(
        &scan.root.join("Library/LaunchDaemons"),
        &mut found.warnings,
    );
    for k in KNOWN {
        let has = |id: &str| {
            k.mac_ids.iter().any(|prefix| {
                id.len() >= prefix.len()
                    && id.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            })
        };
        let app = scan
            .software
            .iter()
            .find(|s| s.id.as_deref().is_some_and(has));
        if app.is_none() && !labels.iter().any(|l| has(l)) {
            continue;
        }
        found.products.push(SecurityProduct {
            name: app.map_or(k.name, |a| a.name.as_str()).to_string(),
            vendor: Some(k.vendor.into()),
            kind: Some(k.kind),
            enabled: None,
            up_to_date: None,
        });
    }
    found
}

/// Defender for Endpoint with the state `mdatp health` gives.
fn defender(scan: &Scan<'_>, live_binary: &str, warnings: &mut Vec<String>) -> SecurityProduct {
    let output = match scan.mdatp {
        Mdatp::Skip => return mdatp::product(None),
        Mdatp::Given(text) => text.to_string(),
        Mdatp::Run => {
            use super::command::{run_bounded, Ran};
            let args = ["health", "--output", "json"];
            match run_bounded(live_binary, &args, MDATP_TIMEOUT, MDATP_MAX_OUTPUT) {
                Ran::Output { stdout } => stdout,
                Ran::Absent => {
                    warnings.push(format!(
                        "Defender for Endpoint is installed but {live_binary} is missing"
                    ));
                    return mdatp::product(None);
                }
                Ran::Failed(m) => {
                    warnings.push(m);
                    return mdatp::product(None);
                }
            }
        }
    };
    match mdatp::parse_health_json(&output) {
        Ok(h) => mdatp::product(Some(&h)),
        Err(e) => {
            warnings.push(e.to_string());
            mdatp::product(None)
        }
    }
}

/// The `Label` of every property list in `dir` (the file name without
/// `.plist` when the plist has none or cannot be read: a broken plist must
/// not hide a product), at most [`MAX_LAUNCH_DAEMONS`] of them.
pub fn launch_daemon_labels(dir: &Path, warnings: &mut Vec<String>) -> Vec<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            warnings.push(format!("cannot list {}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut labels = Vec::new();
    for (i, entry) in entries.flatten().enumerate() {
        if i >= MAX_LAUNCH_DAEMONS {
            warnings.push(format!(
                "{} holds more than {MAX_LAUNCH_DAEMONS} entries; the rest were not read",
                dir.display()
            ));
            break;
        }
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file_name.strip_suffix(".plist") else {
            continue;
        };
        let label = read_bounded(&entry.path(), MAX_PLIST_BYTES)
            .and_then(|bytes| plist::from_bytes::<plist::Value>(&bytes).ok())
            .and_then(|v| {
                v.as_dictionary()?
                    .get("Label")?
                    .as_string()
                    .map(str::to_string)
            });
        labels.push(label.unwrap_or_else(|| stem.to_string()));
    }
    labels
}

/// A regular file of at most `limit` bytes; `None` when missing, not a
/// regular file (a FIFO would block), unreadable or larger.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > limit {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= limit).then_some(bytes)
}

/// A process's program name: the last part of its executable's path when
/// known (not cut at 15 bytes as Linux's `comm` is), else its name.
pub(crate) fn process_base_name(p: &Process) -> &str {
    p.path
        .as_deref()
        .and_then(|path| path.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(&p.name)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names_come_from_the_path_when_there_is_one() {
        let p = Process {
            name: "elastic-endpoin".into(),
            path: Some("/opt/Elastic/Endpoint/elastic-endpoint".into()),
        };
        assert_eq!(process_base_name(&p), "elastic-endpoint");
        let bare = Process {
            name: "clamd".into(),
            path: None,
        };
        assert_eq!(process_base_name(&bare), "clamd");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_an_oversized_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.plist");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert_eq!(read_bounded(&big, 1024), None);
        assert_eq!(read_bounded(&big, 4096).map(|b| b.len()), Some(2048));
        let fifo = dir.path().join("fifo.plist");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert_eq!(read_bounded(&fifo, 1024), None);
    }
}
