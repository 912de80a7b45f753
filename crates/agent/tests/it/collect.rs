//! The agent's collectors and parsers on shipped fixtures (a real Debian
//! dpkg status file, a fixture Linux tree with Kaspersky's `kesl`, macOS
//! `.app` bundles with XML and binary plists, a UTF-16 `reg export` of the
//! Windows uninstall keys, Security Center JSON, osquery exports), on broken
//! variants of them, and on this machine itself.

use std::path::{Path, PathBuf};

use crate::support::reg::{parse_reg_export, RegError};
use posture_agent::dpkg::{parse_dpkg_status, DpkgProblem};
use posture_agent::macos::{parse_info_plist, scan_applications};
use posture_agent::windows::parse_security_center_json;
// Some of these serve only the tests of a Linux tree, which need unix links.
#[cfg_attr(not(unix), allow(unused_imports))]
use posture_agent::{
    collect_linux_from, from_osquery, render_json, render_table, Inventory, OsqueryError,
};
#[cfg_attr(not(unix), allow(unused_imports))]
use posture_core::attestation::claims::{Claims, OsFamily, Software, SoftwareSource, PROFILE_V1};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap()
}

fn find<'a>(sw: &'a [Software], name: &str) -> Option<&'a Software> {
    sw.iter().find(|s| s.name == name)
}

fn names(sw: &[Software]) -> Vec<&str> {
    sw.iter().map(|s| s.name.as_str()).collect()
}

// ---- dpkg ----------------------------------------------------------------

#[test]
fn real_dpkg_status_gives_every_installed_package() {
    let text = String::from_utf8(read("dpkg-status")).unwrap();
    let packages = parse_dpkg_status(&text).unwrap();
    assert_eq!(packages.len(), text.matches("\nPackage: ").count() + 1);
    let adduser = find(&packages, "adduser").unwrap();
    assert_eq!(adduser.vendor.as_deref(), Some("Debian Adduser Developers"));
    assert_eq!(adduser.id.as_deref(), Some("adduser"));
    assert_eq!(adduser.source, Some(SoftwareSource::Dpkg));
    assert!(packages.iter().all(|p| p.version.is_some()));
}

#[test]
fn truncated_dpkg_status_is_an_error_keeping_what_parsed() {
    let text = String::from_utf8(read("dpkg-status")).unwrap();
    let cut = text.len() / 2;
    let cut = (cut..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap();
    let e = parse_dpkg_status(&text[..cut + 3]).unwrap_err();
    assert_eq!(e.problem, DpkgProblem::Truncated);
    assert!(!e.partial.is_empty() && e.partial.len() < 300);
}

// ---- Linux tree ----------------------------------------------------------

#[cfg(unix)]
#[test]
fn fixture_tree_with_kesl_reports_kesl_and_its_process() {
    let inv = collect_linux_from(&fixture("linux-root"));
    assert!(inv.complete, "{:?}", inv.warnings);
    assert_eq!(inv.os.family, OsFamily::Linux);
    assert_eq!(
        inv.os.name.as_deref(),
        Some("Debian GNU/Linux 12 (bookworm)")
    );
    assert_eq!(inv.os.version.as_deref(), Some("12"));

    let kesl = find(&inv.software, "kesl").unwrap();
    assert_eq!(kesl.vendor.as_deref(), Some("AO Kaspersky Lab"));
    assert_eq!(kesl.version.as_deref(), Some("12.1.0-1297"));

    let ps = &inv.processes;
    let kesl_process = ps.iter().find(|p| p.name == "kesl").unwrap();
    assert_eq!(
        kesl_process.path.as_deref(),
        Some("/opt/kaspersky/kesl/libexec/kesl")
    );
    assert!(ps.iter().any(|p| p.name == "systemd"));
    assert!(!ps.iter().any(|p| p.name == "kthreadd"), "kernel thread");

    let firefox = find(&inv.software, "firefox").unwrap();
    assert_eq!(firefox.source, Some(SoftwareSource::Snap));
    assert_eq!(firefox.version.as_deref(), Some("128.0.3-1"));
    assert_eq!(
        inv.software.iter().filter(|s| s.name == "firefox").count(),
        1
    );
}

#[cfg(unix)]
#[test]
fn fixture_tree_package_states() {
    let inv = collect_linux_from(&fixture("linux-root"));
    let sw = names(&inv.software);
    // Removed, only configuration left / never installed: not reported.
    assert!(!sw.contains(&"klnagent64"));
    assert!(!sw.contains(&"kaspersky-old-tool"));
    assert!(!sw.contains(&"alsa-ucm-conf"));
    // On hold, half-configured, selected for removal: still on disk.
    for present in ["apt", "at-spi2-core", "avahi-daemon", "adduser"] {
        assert!(sw.contains(&present), "{present}");
    }
}

#[cfg(unix)]
fn tree_without_dpkg_status() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::copy(
        fixture("linux-root/etc/os-release"),
        root.path().join("etc/os-release"),
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("proc/1")).unwrap();
    std::fs::write(root.path().join("proc/1/comm"), "init\n").unwrap();
    std::os::unix::fs::symlink("/sbin/init", root.path().join("proc/1/exe")).unwrap();
    root
}

#[cfg(unix)]
fn assert_incomplete_naming(inv: &Inventory, collector: &str) {
    assert!(!inv.complete);
    assert!(
        inv.warnings.iter().any(|w| w.collector == collector),
        "{:?}",
        inv.warnings
    );
}

#[cfg(unix)]
#[test]
fn missing_dpkg_status_makes_the_inventory_incomplete() {
    let root = tree_without_dpkg_status();
    std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
    let inv = collect_linux_from(root.path());
    assert_incomplete_naming(&inv, "dpkg");
    assert_eq!(inv.processes.len(), 1);
}

#[cfg(unix)]
#[test]
fn unreadable_dpkg_status_makes_the_inventory_incomplete() {
    let root = tree_without_dpkg_status();
    // A directory where the file belongs: reading fails whoever we run as.
    std::fs::create_dir_all(root.path().join("var/lib/dpkg/status")).unwrap();
    let inv = collect_linux_from(root.path());
    assert_incomplete_naming(&inv, "dpkg");
}

#[cfg(unix)]
#[test]
fn truncated_dpkg_status_in_a_tree_is_incomplete_but_keeps_packages() {
    let root = tree_without_dpkg_status();
    let dpkg = root.path().join("var/lib/dpkg");
    std::fs::create_dir_all(&dpkg).unwrap();
    let text = read("linux-root/var/lib/dpkg/status");
    let at = text.len() - 40;
    std::fs::write(dpkg.join("status"), &text[..at]).unwrap();
    let inv = collect_linux_from(root.path());
    assert_incomplete_naming(&inv, "dpkg");
    assert!(find(&inv.software, "kesl").is_some());
}

#[cfg(unix)]
#[test]
fn no_package_database_at_all_is_incomplete() {
    let root = tree_without_dpkg_status();
    let inv = collect_linux_from(root.path());
    assert_incomplete_naming(&inv, "packages");
}

#[cfg(unix)]
#[test]
fn missing_proc_is_incomplete() {
    let root = tempfile::tempdir().unwrap();
    let dpkg = root.path().join("var/lib/dpkg");
    std::fs::create_dir_all(&dpkg).unwrap();
    std::fs::write(dpkg.join("status"), "").unwrap();
    let inv = collect_linux_from(root.path());
    assert_incomplete_naming(&inv, "processes");
    assert_incomplete_naming(&inv, "os-release");
}

#[cfg(target_os = "linux")]
#[test]
fn this_machine_has_dpkg_packages_and_processes() {
    let inv = posture_agent::collect();
    assert_eq!(inv.os.family, OsFamily::Linux);
    assert!(
        inv.software
            .iter()
            .any(|s| s.source == Some(SoftwareSource::Dpkg)),
        "{:?}",
        inv.warnings
    );
    assert!(!inv.processes.is_empty());
}

// ---- rendering and claims ------------------------------------------------

#[cfg(unix)]
#[test]
fn the_tree_renders_as_table_and_json_and_becomes_valid_claims() {
    let inv = collect_linux_from(&fixture("linux-root"));
    let table = render_table(&inv);
    assert!(table.contains("Inventory: complete"));
    assert!(table
        .lines()
        .any(|l| l.contains("kesl") && l.contains("AO Kaspersky Lab")));
    let json: serde_json::Value = serde_json::from_str(&render_json(&inv)).unwrap();
    assert_eq!(json["complete"], true);
    assert!(json["software"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == "kesl"));

    let claims = inv.into_claims(
        1_750_000_000,
        Some("nonce-1".into()),
        Some("laptop-42".into()),
    );
    assert_eq!(claims.eat_profile.as_deref(), Some(PROFILE_V1));
    let wire = serde_json::to_string(&claims).unwrap();
    let back: Claims = serde_json::from_str(&wire).unwrap();
    assert_eq!(back, claims);
    assert_eq!(back.check_limits(), Ok(()));
}

// ---- macOS ---------------------------------------------------------------

#[test]
fn application_bundles_with_xml_binary_and_broken_plists() {
    let apps_dir = fixture("Applications");
    let dirs = [
        apps_dir.clone(),
        apps_dir.join("Utilities"),
        fixture("no-such-home/Applications"),
    ];
    let (apps, failures) = scan_applications(&dirs);
    assert!(failures.is_empty(), "{failures:?}");
    let sw: Vec<Software> = apps.into_iter().map(|a| a.software).collect();
    let mut got = names(&sw);
    got.sort();
    assert_eq!(
        got,
        [
            "Broken",
            "Firefox",
            "Kaspersky Endpoint Security for Mac",
            "Microsoft Word",
            "NoInfo",
            "Safari",
            "Terminal"
        ]
    );
    let kes = find(&sw, "Kaspersky Endpoint Security for Mac").unwrap();
    assert_eq!(kes.id.as_deref(), Some("com.kaspersky.kes.mac"));
    assert_eq!(kes.version.as_deref(), Some("12.1.0.557"));
    let safari = find(&sw, "Safari").unwrap();
    assert_eq!(safari.id.as_deref(), Some("com.apple.Safari"));
    assert!(sw
        .iter()
        .all(|s| s.source == Some(SoftwareSource::MacosApp)));
    assert_eq!(find(&sw, "Broken").unwrap().id, None);
}

#[test]
fn binary_and_xml_info_plists_parse_and_garbage_does_not() {
    let binary = read("Applications/Firefox.app/Contents/Info.plist");
    assert!(binary.starts_with(b"bplist00"));
    let firefox = parse_info_plist(&binary, "Firefox").unwrap();
    assert_eq!(firefox.id.as_deref(), Some("org.mozilla.firefox"));
    assert_eq!(firefox.version.as_deref(), Some("128.0.3"));
    let xml = read("Applications/Utilities/Terminal.app/Contents/Info.plist");
    assert!(xml.starts_with(b"<?xml"));
    assert_eq!(parse_info_plist(&xml, "T").unwrap().name, "Terminal");
    assert!(parse_info_plist(&read("Applications/Broken.app/Contents/Info.plist"), "B").is_err());
    assert!(parse_info_plist(&binary[..binary.len() / 2], "F").is_err());
}

// ---- Windows -------------------------------------------------------------

#[test]
fn reg_export_of_the_uninstall_keys() {
    let sw = parse_reg_export(&read("windows-uninstall.reg")).unwrap();
    let kes = find(&sw, "Kaspersky Endpoint Security for Windows").unwrap();
    assert_eq!(kes.vendor.as_deref(), Some("AO Kaspersky Lab"));
    assert_eq!(kes.version.as_deref(), Some("12.5.0.538"));
    assert_eq!(
        kes.id.as_deref(),
        Some("{7EB2A5B0-3F4C-4B5C-8E7E-0C5E3C8C2F11}")
    );
    assert_eq!(kes.source, Some(SoftwareSource::Msi));
    let zip = find(&sw, "7-Zip 24.08 (x64)").unwrap();
    assert_eq!(
        (zip.id.as_deref(), zip.source),
        (Some("7-Zip"), Some(SoftwareSource::Registry))
    );
    let got = names(&sw);
    for expected in [
        "Google Chrome",
        "Microsoft Edge",
        "Mozilla Firefox (x64 en-US)",
        "Microsoft Update Health Tools",
        "Microsoft Visual C++ 2022 X86 Additional Runtime - 14.40.33810",
        "Notepad++ (64-bit x64)",
        "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.40.33810",
        "VLC media player",
        "Zoom Workplace",
        "Microsoft Teams classic",
    ] {
        assert!(got.contains(&expected), "{expected} missing from {got:?}");
    }
    // Placeholders without a display name, and a sub-key of an entry.
    assert!(!sw.iter().any(|s| matches!(
        s.id.as_deref(),
        Some("AddressBook" | "Connection Manager" | "Extensions")
    )));
    assert_eq!(sw.len(), 12);
}

fn utf16(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    bytes
}

fn reg_text() -> String {
    let bytes = read("windows-uninstall.reg");
    let units: Vec<u16> = bytes[2..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

#[test]
fn broken_reg_exports_are_errors() {
    let bytes = read("windows-uninstall.reg");
    assert_eq!(parse_reg_export(&bytes[2..]), Err(RegError::NoBom));
    let text = reg_text();
    // A value line that is cut, and a hex continuation that never ends right.
    let broken = text.replacen(
        "\"DisplayVersion\"=\"24.08\"",
        "\"DisplayVersion\"=\"24.08",
        1,
    );
    let Err(RegError::BadLine(e)) = parse_reg_export(&utf16(&broken)) else {
        panic!("a broken line must be an error");
    };
    let expected = text.lines().position(|l| l.contains("\"24.08\"")).unwrap() + 1;
    assert_eq!(e.line, expected);
    let broken = text.replacen("4d,00,73,00", "4d,00,7g,00", 1);
    assert!(matches!(
        parse_reg_export(&utf16(&broken)),
        Err(RegError::BadLine(_))
    ));
    assert_eq!(
        parse_reg_export(&utf16(&text[text.find('[').unwrap()..])),
        Err(RegError::BadHeader)
    );
}

#[test]
fn security_center_products_and_their_state() {
    let json = String::from_utf8(read("securitycenter-antivirus.json")).unwrap();
    let products = parse_security_center_json(&json).unwrap();
    assert_eq!(products.len(), 2);
    let defender = &products[0];
    assert_eq!(defender.name, "Windows Defender");
    assert_eq!(
        (defender.enabled, defender.up_to_date),
        (Some(false), Some(true))
    );
    let kes = &products[1];
    assert_eq!(kes.name, "Kaspersky Endpoint Security for Windows");
    assert_eq!((kes.enabled, kes.up_to_date), (Some(true), Some(true)));
}

// ---- osquery -------------------------------------------------------------

fn osquery(rel: &str) -> Inventory {
    from_osquery(&String::from_utf8(read(rel)).unwrap()).unwrap()
}

#[test]
fn osquery_tables_are_recognised_by_their_columns() {
    let deb = osquery("osquery/deb_packages.json");
    assert_eq!(deb.os.family, OsFamily::Linux);
    assert_eq!(names(&deb.software), ["libc6", "kesl", "adduser"]);
    assert!(deb.complete);

    let rpm = osquery("osquery/rpm_packages.json");
    let kesl = find(&rpm.software, "kesl").unwrap();
    assert_eq!(kesl.version.as_deref(), Some("12.1.0-1297"));
    assert_eq!(kesl.vendor.as_deref(), Some("AO Kaspersky Lab"));
    assert_eq!(kesl.source, Some(SoftwareSource::Rpm));

    let programs = osquery("osquery/programs.json");
    assert_eq!(programs.os.family, OsFamily::Windows);
    let kes = find(
        &programs.software,
        "Kaspersky Endpoint Security for Windows",
    )
    .unwrap();
    assert_eq!(kes.source, Some(SoftwareSource::Msi));
    assert_eq!(kes.vendor.as_deref(), Some("AO Kaspersky Lab"));
    assert_eq!(find(&programs.software, "Google Chrome").unwrap().id, None);

    let apps = osquery("osquery/apps.json");
    assert_eq!(apps.os.family, OsFamily::Macos);
    assert_eq!(
        names(&apps.software),
        ["Safari", "Kaspersky Endpoint Security for Mac", "Tool"]
    );
    assert_eq!(
        apps.software[1].id.as_deref(),
        Some("com.kaspersky.kes.mac")
    );

    let ps = osquery("osquery/processes.json");
    assert!(!ps.complete, "processes alone are no software inventory");
    let got: Vec<&str> = ps.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(got, ["bash", "kesl", "kthreadd", "systemd"]);
}

#[test]
fn osquery_object_keyed_by_table() {
    let inv = osquery("osquery/combined.json");
    assert!(inv.complete);
    assert_eq!(inv.os.family, OsFamily::Linux);
    assert_eq!(inv.os.name.as_deref(), Some("Debian GNU/Linux"));
    assert!(find(&inv.software, "kesl").is_some());
    assert!(inv.processes.iter().any(|p| p.name == "kesl"));
}

#[test]
fn osquery_json_of_the_wrong_shape() {
    for (json, what) in [
        ("{\"rows\": 3}", "unknown table"),
        ("{\"processes\": {\"pid\": \"1\"}}", "table not an array"),
        (
            "[{\"username\": \"root\", \"uid\": \"0\"}]",
            "unknown columns",
        ),
        ("[[1, 2]]", "row not an object"),
        ("\"kesl\"", "a string"),
        ("[{\"name\": \"kesl\"", "cut JSON"),
    ] {
        assert!(from_osquery(json).is_err(), "{what}");
    }
    assert!(matches!(
        from_osquery("{\"deb_packages\": [{\"version\": \"1\", \"maintainer\": \"x\"}]}"),
        Err(OsqueryError::MissingColumn { column: "name", .. })
    ));
}
