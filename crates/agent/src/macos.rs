//! macOS: application bundles, running processes and the OS version.
//!
//! Applications are the `.app` bundles in `/Applications` (and the folders
//! directly in it, where vendors group their apps, such as `Utilities`) and
//! `~/Applications`, each described by its `Contents/Info.plist`, which may
//! be an XML or a binary property list.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use posture_core::attestation::claims::{Os, OsFamily, Process, Software, SoftwareSource};

use super::non_empty;

#[derive(Debug, thiserror::Error)]
pub enum InfoPlistError {
    #[error("not a property list: {0}")]
    NotAPlist(#[from] plist::Error),
    #[error("the property list is not a dictionary")]
    NotADictionary,
}

/// The application an `Info.plist` describes. `bundle_name` (the folder name
/// without `.app`) names it when the plist has no `CFBundleDisplayName` or
/// `CFBundleName`.
pub fn parse_info_plist(bytes: &[u8], bundle_name: &str) -> Result<Software, InfoPlistError> {
    let value: plist::Value = plist::from_bytes(bytes)?;
    let dict = value
        .as_dictionary()
        .ok_or(InfoPlistError::NotADictionary)?;
    let get = |key: &str| {
        dict.get(key)
            .and_then(plist::Value::as_string)
            .and_then(non_empty)
    };
    Ok(Software {
        name: get("CFBundleDisplayName")
            .or_else(|| get("CFBundleName"))
            .unwrap_or_else(|| bundle_name.to_string()),
        vendor: None,
        version: get("CFBundleShortVersionString"),
        id: get("CFBundleIdentifier"),
        signer: None,
        source: Some(SoftwareSource::MacosApp),
    })
}

/// One application bundle found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct AppBundle {
    pub path: PathBuf,
    pub software: Software,
}

/// The bundles under `dirs`, and the directories that could not be listed
/// (a missing directory is simply empty).
///
/// A bundle whose `Info.plist` is missing or broken is still reported, by its
/// folder name: it is on disk, and a damaged plist must not hide it.
pub fn scan_applications(dirs: &[PathBuf]) -> (Vec<AppBundle>, Vec<String>) {
    let mut seen = HashSet::new();
    let mut apps = Vec::new();
    let mut failures = Vec::new();
    for dir in dirs {
        if let Err(e) = scan_dir(dir, true, &mut seen, &mut apps) {
            failures.push(format!("cannot list {}: {e}", dir.display()));
        }
    }
    apps.sort_by(|a, b| a.path.cmp(&b.path));
    (apps, failures)
}

fn scan_dir(
    dir: &Path,
    descend: bool,
    seen: &mut HashSet<PathBuf>,
    apps: &mut Vec<AppBundle>,
) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries.flatten() {
        if apps.len() >= MAX_BUNDLES {
            return Err(io::Error::other(format!(
                "more than {MAX_BUNDLES} application bundles; the rest were not read"
            )));
        }
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(bundle_name) = file_name.strip_suffix(".app") {
            if seen.insert(path.clone()) {
                let software = read_bundle(&path, bundle_name);
                apps.push(AppBundle { path, software });
            }
        } else if descend {
            // A vendor folder; one that cannot be read is not the whole scan.
            let _ = scan_dir(&path, false, seen, apps);
        }
    }
    Ok(())
}

/// The spec's limit on the `software` array: more bundles than this cannot
/// be reported anyway, and reading them would only cost time.
const MAX_BUNDLES: usize = 10_000;

/// An Info.plist is a few KiB; a larger one is treated as broken.
const MAX_INFO_PLIST_BYTES: u64 = 1024 * 1024;

fn read_bundle(path: &Path, bundle_name: &str) -> Software {
    super::security::read_bounded(&path.join("Contents/Info.plist"), MAX_INFO_PLIST_BYTES)
        .and_then(|bytes| parse_info_plist(&bytes, bundle_name).ok())
        .unwrap_or_else(|| Software {
            name: bundle_name.to_string(),
            source: Some(SoftwareSource::MacosApp),
            ..Software::default()
        })
}

/// The Team ID in `codesign -dv` output (written to stderr), or `None` for
/// unsigned and ad-hoc signed code ("TeamIdentifier=not set").
pub fn parse_codesign_team_id(output: &str) -> Option<String> {
    let value = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("TeamIdentifier="))?;
    non_empty(value).filter(|v| v != "not set")
}

/// Processes from `ps -axo comm=`, which on macOS prints the executable's
/// full path (or a bare name for a few system processes).
pub fn parse_ps_comm(output: &str) -> Vec<Process> {
    output
        .lines()
        .filter_map(non_empty)
        .map(|comm| {
            if comm.starts_with('/') {
                let name = comm.rsplit('/').next().unwrap_or(&comm).to_string();
                Process {
                    name,
                    path: Some(comm),
                }
            } else {
                Process {
                    name: comm,
                    path: None,
                }
            }
        })
        .collect()
}

/// The OS from `sw_vers` ("ProductName:\tmacOS", "ProductVersion:\t14.4.1").
pub fn parse_sw_vers(output: &str) -> Os {
    let field = |key: &str| {
        output.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| non_empty(v)).flatten()
        })
    };
    Os {
        family: OsFamily::Macos,
        name: field("ProductName"),
        version: field("ProductVersion"),
    }
}

/// The OS from `System/Library/CoreServices/SystemVersion.plist`, the file
/// `sw_vers` itself reads (`ProductName`, `ProductVersion`).
pub fn parse_system_version_plist(bytes: &[u8]) -> Option<Os> {
    let value: plist::Value = plist::from_bytes(bytes).ok()?;
    let dict = value.as_dictionary()?;
    let get = |key: &str| dict.get(key)?.as_string().and_then(non_empty);
    Some(Os {
        family: OsFamily::Macos,
        name: get("ProductName"),
        version: get("ProductVersion"),
    })
}

/// Where a macOS tree says its version.
pub const SYSTEM_VERSION_PLIST: &str = "System/Library/CoreServices/SystemVersion.plist";

/// Whether the tree under `root` is a macOS system (it has the file
/// `sw_vers` reads).
pub fn is_macos_tree(root: &Path) -> bool {
    root.join(SYSTEM_VERSION_PLIST).is_file()
}

/// Collects a macOS inventory from the tree under `root` (a mounted disk, a
/// fixture): its version, the application bundles in `Applications` and
/// `Applications/Utilities`, and its security products. A tree that is not
/// running has no processes, so the inventory says it is incomplete; no
/// command (`codesign`, `mdatp`) is run against it.
pub fn collect_from(root: &Path, now: std::time::SystemTime) -> super::Inventory {
    use super::security::{self, Mdatp, Scan};
    let mut inv = super::Inventory::empty(OsFamily::Macos);
    match super::security::read_bounded(&root.join(SYSTEM_VERSION_PLIST), 256 * 1024)
        .and_then(|b| parse_system_version_plist(&b))
    {
        Some(os) => inv.os = os,
        None => inv.warn("os", format!("cannot read {SYSTEM_VERSION_PLIST}")),
    }
    let dirs = [
        root.join("Applications"),
        root.join("Applications/Utilities"),
    ];
    let (apps, failures) = scan_applications(&dirs);
    for f in failures {
        inv.warn("macos-apps", f);
    }
    inv.software.extend(apps.into_iter().map(|a| a.software));
    inv.warn(
        "processes",
        "a macOS tree that is not running has no process list",
    );
    let found = security::macos_products(&Scan {
        root,
        now,
        processes: None,
        software: &inv.software,
        mdatp: Mdatp::Skip,
    });
    inv.security_products.extend(found.products);
    for w in found.warnings {
        inv.warn("security-products", w);
    }
    inv
}

#[cfg(target_os = "macos")]
pub use live::collect;

#[cfg(target_os = "macos")]
mod live {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::SystemTime;

    use super::super::command::{self, Ran};
    use super::super::security::{self, Mdatp, Scan};
    use super::super::{dedup_processes, Inventory};
    use super::*;

    /// How many `codesign` processes run at once.
    const CODESIGN_BATCH: usize = 8;

    pub fn collect() -> Inventory {
        let mut inv = Inventory::empty(OsFamily::Macos);
        match command::run("sw_vers", &[]) {
            Ran::Output { stdout, .. } => inv.os = parse_sw_vers(&stdout),
            Ran::Absent => inv.warn("sw_vers", "sw_vers is missing"),
            Ran::Failed(m) => inv.warn("sw_vers", m),
        }
        let mut dirs = vec![
            PathBuf::from("/Applications"),
            PathBuf::from("/Applications/Utilities"),
        ];
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(PathBuf::from(home).join("Applications"));
        }
        let (mut apps, failures) = scan_applications(&dirs);
        for f in failures {
            inv.warn("macos-apps", f);
        }
        add_team_ids(&mut apps);
        inv.software.extend(apps.into_iter().map(|a| a.software));
        let processes_read = match command::run("ps", &["-axo", "comm="]) {
            Ran::Output { stdout, .. } => {
                let mut ps = parse_ps_comm(&stdout);
                dedup_processes(&mut ps);
                inv.processes = ps;
                true
            }
            Ran::Absent => {
                inv.warn("processes", "ps is missing");
                false
            }
            Ran::Failed(m) => {
                inv.warn("processes", m);
                false
            }
        };
        let found = security::macos_products(&Scan {
            root: Path::new("/"),
            now: SystemTime::now(),
            processes: processes_read.then_some(inv.processes.as_slice()),
            software: &inv.software,
            mdatp: Mdatp::Run,
        });
        inv.security_products.extend(found.products);
        for w in found.warnings {
            inv.warn("security-products", w);
        }
        inv
    }

    /// The signer is optional: a bundle `codesign` cannot read keeps none.
    fn add_team_ids(apps: &mut [AppBundle]) {
        for batch in apps.chunks_mut(CODESIGN_BATCH) {
            let children: Vec<_> = batch
                .iter()
                .map(|a| {
                    Command::new("codesign")
                        .arg("-dv")
                        .arg(&a.path)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .ok()
                })
                .collect();
            for (app, child) in batch.iter_mut().zip(children) {
                let Some(out) = child.and_then(|c| c.wait_with_output().ok()) else {
                    continue;
                };
                app.software.signer = parse_codesign_team_id(&String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>CFBundleIdentifier</key><string>org.videolan.vlc</string>
<key>CFBundleName</key><string>VLC</string>
<key>CFBundleShortVersionString</key><string>3.0.21</string>
</dict></plist>"#;

    #[test]
    fn xml_info_plist_gives_id_name_and_version() {
        let s = parse_info_plist(XML.as_bytes(), "VLC").unwrap();
        assert_eq!(s.id.as_deref(), Some("org.videolan.vlc"));
        assert_eq!(s.name, "VLC");
        assert_eq!(s.version.as_deref(), Some("3.0.21"));
        assert_eq!(s.source, Some(SoftwareSource::MacosApp));
    }

    #[test]
    fn display_name_wins_and_folder_name_is_the_fallback() {
        let mut d = plist::Dictionary::new();
        d.insert("CFBundleName".into(), "KES".into());
        d.insert(
            "CFBundleDisplayName".into(),
            "Kaspersky Endpoint Security".into(),
        );
        let mut bin = Vec::new();
        plist::Value::Dictionary(d)
            .to_writer_binary(&mut bin)
            .unwrap();
        let s = parse_info_plist(&bin, "x").unwrap();
        assert_eq!(s.name, "Kaspersky Endpoint Security");
        let empty = b"<plist version=\"1.0\"><dict/></plist>";
        assert_eq!(parse_info_plist(empty, "Folder").unwrap().name, "Folder");
    }

    #[test]
    fn not_a_plist_or_not_a_dictionary_is_an_error() {
        assert!(matches!(
            parse_info_plist(b"this is not a plist", "x"),
            Err(InfoPlistError::NotAPlist(_))
        ));
        let array = b"<plist version=\"1.0\"><array/></plist>";
        assert!(matches!(
            parse_info_plist(array, "x"),
            Err(InfoPlistError::NotADictionary)
        ));
    }

    #[test]
    fn codesign_team_id_is_read_and_not_set_is_none() {
        let out = "Executable=/Applications/Kaspersky.app/Contents/MacOS/kav\n\
                   Identifier=com.kaspersky.kav\nTeamIdentifier=2Y8XE5CQ94\n";
        assert_eq!(parse_codesign_team_id(out), Some("2Y8XE5CQ94".into()));
        assert_eq!(parse_codesign_team_id("TeamIdentifier=not set\n"), None);
        assert_eq!(
            parse_codesign_team_id("code object is not signed at all\n"),
            None
        );
    }

    #[test]
    fn ps_paths_become_name_and_path() {
        let ps = parse_ps_comm("/sbin/launchd\n  \n/Library/Application Support/Kaspersky Lab/KAV/Binaries/kav\nkernel_task\n");
        assert_eq!(ps.len(), 3);
        assert_eq!(ps[1].name, "kav");
        assert_eq!(
            ps[1].path.as_deref(),
            Some("/Library/Application Support/Kaspersky Lab/KAV/Binaries/kav")
        );
        assert_eq!(ps[2].path, None);
    }

    #[test]
    fn sw_vers_gives_name_and_version() {
        let os = parse_sw_vers(
            "ProductName:\t\tmacOS\nProductVersion:\t\t14.4.1\nBuildVersion:\t\t23E224\n",
        );
        assert_eq!(os.family, OsFamily::Macos);
        assert_eq!(os.name.as_deref(), Some("macOS"));
        assert_eq!(os.version.as_deref(), Some("14.4.1"));
    }
}
