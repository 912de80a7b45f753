//! Security products on Linux and macOS: ClamAV from the files Debian's own
//! packages install, Defender for Endpoint's `mdatp health` output, EDRs by
//! their install directories, XProtect, launch daemons and apps of a macOS
//! tree; what a policy makes of them; hostile files; and the
//! `posture-agent` binary reporting them, to a real gate on loopback.
//! Fixture provenance: tests/fixtures/README.md.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::{
    agent, attest, clamav_root, copy_tree, cvd_header, fixture, macos_root, s, AgentGate,
};
use posture_agent::macos::scan_applications;
use posture_agent::mdatp::{parse_health_json, MdatpError};
use posture_agent::security::{linux_products, macos_products, Found, Mdatp, Scan};
use posture_agent::{collect_from, collect_linux_from, procfs, Inventory};
use posture_core::attestation::claims::{
    Claims, OsFamily, Process, SecurityProduct, SecurityProductKind, Software,
};
use posture_core::catalogue::{Catalogue, Matcher};
use posture_core::policy::{assess, Assessment};
use posture_core::verdict::ItemKind;
use posture_testkit::pki::DeviceKeyType;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The build time written in tests/fixtures/debian-clamav's daily.cvd.
fn fixture_build_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_766_400)
}

fn product<'a>(products: &'a [SecurityProduct], name: &str) -> &'a SecurityProduct {
    products
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} not in {products:?}"))
}

fn state(p: &SecurityProduct) -> (Option<bool>, Option<bool>) {
    (p.enabled, p.up_to_date)
}

/// What the gate's policy code makes of these products (built-in
/// catalogue), on an OS of `family`.
fn assessment(family: OsFamily, products: Vec<SecurityProduct>) -> Assessment {
    let mut inv = Inventory::empty(family);
    inv.security_products = products;
    let claims: Claims = inv.into_claims(1_750_000_000, None, None);
    let matcher = Matcher::new(&Catalogue::builtin().unwrap());
    assess(&matcher, &claims)
}

fn kaspersky_matched_as_security_product(a: &Assessment) -> bool {
    a.matches.iter().any(|m| {
        m.item.kind == ItemKind::SecurityProduct
            && m.item.vendor.as_deref() == Some("AO Kaspersky Lab")
    })
}

fn linux_scan<'a>(root: &'a Path, now: SystemTime, ps: Option<&'a [Process]>) -> Scan<'a> {
    Scan {
        root,
        now,
        processes: ps,
        software: &[],
        mdatp: Mdatp::Skip,
    }
}

fn processes_of(root: &Path) -> Vec<Process> {
    procfs::read_processes(&root.join("proc")).unwrap()
}

// ---- Debian: clean, and with ClamAV ------------------------------------

#[cfg(unix)]
#[test]
fn a_clean_debian_root_has_no_security_product_and_no_working_antivirus() {
    let inv = collect_linux_from(&fixture("debian-clean"));
    assert!(inv.complete, "{:?}", inv.warnings);
    assert!(inv.software.len() > 250, "the real dpkg status is read");
    assert_eq!(inv.security_products, vec![]);
    assert!(!assessment(OsFamily::Linux, inv.security_products).working_antivirus);
}

#[cfg(unix)]
#[test]
fn clamav_from_the_debian_packages_with_its_daemon_running() {
    let root = fixture("debian-clamav");
    let ps = processes_of(&root);
    let found = linux_products(&linux_scan(
        &root,
        fixture_build_time() + 6 * DAY,
        Some(&ps),
    ));
    assert_eq!(found.warnings, Vec::<String>::new());
    let clam = product(&found.products, "ClamAV");
    assert_eq!(clam.kind, Some(SecurityProductKind::Antivirus));
    assert_eq!(clam.vendor.as_deref(), Some("Cisco Talos"));
    assert_eq!(state(clam), (Some(true), Some(true)));
    assert_eq!(found.products.len(), 1, "{:?}", found.products);

    // A week and a day later the same database is out of date.
    let later = linux_products(&linux_scan(
        &root,
        fixture_build_time() + 8 * DAY,
        Some(&ps),
    ));
    assert_eq!(
        state(product(&later.products, "ClamAV")),
        (Some(true), Some(false))
    );

    // Without clamd (or clamonacc) running, nothing scans on its own.
    let no_daemon: Vec<Process> = ps.into_iter().filter(|p| p.name != "clamd").collect();
    let idle = linux_products(&linux_scan(&root, fixture_build_time(), Some(&no_daemon)));
    assert_eq!(
        state(product(&idle.products, "ClamAV")),
        (Some(false), Some(true))
    );
    // And when the process list could not be read, nobody knows.
    let unknown = linux_products(&linux_scan(&root, fixture_build_time(), None));
    assert_eq!(product(&unknown.products, "ClamAV").enabled, None);
}

#[cfg(unix)]
#[test]
fn fresh_clamav_signatures_are_a_working_antivirus_and_30_day_old_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = collect_linux_from(&clamav_root(dir.path(), DAY));
    assert!(fresh.complete, "{:?}", fresh.warnings);
    assert_eq!(
        state(product(&fresh.security_products, "ClamAV")),
        (Some(true), Some(true))
    );
    assert!(assessment(OsFamily::Linux, fresh.security_products).working_antivirus);

    let old = collect_linux_from(&clamav_root(dir.path(), 30 * DAY));
    assert!(old.complete, "{:?}", old.warnings);
    assert_eq!(
        state(product(&old.security_products, "ClamAV")),
        (Some(true), Some(false))
    );
    assert!(!assessment(OsFamily::Linux, old.security_products).working_antivirus);
}

#[cfg(unix)]
#[test]
fn clamav_databases_missing_broken_incremental_or_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let root = clamav_root(dir.path(), DAY);
    let db = root.join("var/lib/clamav");
    let now = SystemTime::now();
    let ps = processes_of(&root);
    let clam = |root: &Path| {
        let found = linux_products(&linux_scan(root, now, Some(&ps)));
        (product(&found.products, "ClamAV").clone(), found.warnings)
    };

    // A daily.cld (after an incremental update) newer than the .cvd wins.
    std::fs::write(db.join("daily.cvd"), cvd_header(now - 20 * DAY)).unwrap();
    std::fs::write(db.join("daily.cld"), cvd_header(now - DAY)).unwrap();
    assert_eq!(clam(&root).0.up_to_date, Some(true));

    // No database at all (freshclam never ran): not up to date.
    std::fs::remove_file(db.join("daily.cvd")).unwrap();
    std::fs::remove_file(db.join("daily.cld")).unwrap();
    let (p, warnings) = clam(&root);
    assert_eq!((p.up_to_date, warnings.len()), (Some(false), 0));

    // A file that is not a database: unknown, and said.
    std::fs::write(db.join("daily.cvd"), b"<html>captive portal</html>").unwrap();
    let (p, warnings) = clam(&root);
    assert_eq!(p.up_to_date, None);
    assert!(
        warnings[0].contains("not a ClamAV database header"),
        "{warnings:?}"
    );
    let inv = collect_linux_from(&root);
    assert!(!inv.complete);
    assert!(inv
        .warnings
        .iter()
        .any(|w| w.collector == "security-products"));

    // DatabaseDirectory from freshclam.conf is followed (inside the root).
    std::fs::remove_file(db.join("daily.cvd")).unwrap();
    let conf = root.join("etc/clamav/freshclam.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace(
            "DatabaseDirectory /var/lib/clamav",
            "DatabaseDirectory /srv/clamav-db",
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("srv/clamav-db")).unwrap();
    std::fs::write(
        root.join("srv/clamav-db/daily.cld"),
        cvd_header(now - 2 * DAY),
    )
    .unwrap();
    assert_eq!(clam(&root).0.up_to_date, Some(true));
}

#[cfg(unix)]
#[test]
fn hostile_clamav_files_are_read_bounded_and_never_block() {
    let dir = tempfile::tempdir().unwrap();
    let root = clamav_root(dir.path(), DAY);
    let db = root.join("var/lib/clamav");
    let now = SystemTime::now();
    // A 64 GiB (sparse) database: only its 512-byte header is read.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(db.join("daily.cvd"))
        .unwrap();
    f.set_len(64 << 30).unwrap();
    drop(f);
    // A 64 GiB clamd.conf is not read at all (freshclam.conf still names
    // the directory).
    let f = std::fs::File::create(root.join("etc/clamav/clamd.conf")).unwrap();
    f.set_len(64 << 30).unwrap();
    drop(f);
    // A FIFO where the incremental database belongs would block a reader
    // forever.
    let made = std::process::Command::new("mkfifo")
        .arg(db.join("daily.cld"))
        .status()
        .unwrap();
    assert!(made.success());
    let found = linux_products(&linux_scan(&root, now, None));
    assert_eq!(product(&found.products, "ClamAV").up_to_date, Some(true));
    assert!(
        found
            .warnings
            .iter()
            .any(|w| w.contains("daily.cld") && w.contains("not a regular file")),
        "{:?}",
        found.warnings
    );
}

// ---- Defender for Endpoint (mdatp) -------------------------------------

fn mdatp_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(&format!("mdatp/{name}"))).unwrap()
}

#[test]
fn mdatp_health_json_in_its_documented_and_managed_shapes() {
    for name in ["health-linux-healthy.json", "health-macos-managed.json"] {
        let h = parse_health_json(&mdatp_fixture(name)).unwrap();
        let p = posture_agent::mdatp::product(Some(&h));
        assert_eq!(state(&p), (Some(true), Some(true)), "{name}");
        assert_eq!(p.name, "Microsoft Defender for Endpoint");
    }
    let failed = parse_health_json(&mdatp_fixture("health-update-failed.json")).unwrap();
    assert_eq!(
        state(&posture_agent::mdatp::product(Some(&failed))),
        (Some(false), Some(false))
    );
    let passive = parse_health_json(&mdatp_fixture("health-passive.json")).unwrap();
    assert_eq!(
        state(&posture_agent::mdatp::product(Some(&passive))),
        (Some(false), Some(true))
    );
}

#[test]
fn malformed_mdatp_output_is_an_error_not_a_panic() {
    assert!(matches!(
        parse_health_json(&mdatp_fixture("health-truncated.json")),
        Err(MdatpError::NotJson(_))
    ));
    assert!(matches!(
        parse_health_json(&mdatp_fixture("health-not-json.txt")),
        Err(MdatpError::NotJson(_))
    ));
    for junk in [
        "null",
        "42",
        "\"healthy\"",
        "[{\"healthy\": true}]",
        "\u{feff}{",
        "{\"healthy\": {\"value\": {\"value\": true}}}",
    ] {
        // Whatever it is, it never reads as healthy.
        if let Ok(h) = parse_health_json(junk) {
            assert_eq!(h.enabled(), None, "{junk}");
        }
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_health_json(&deep).is_err());
}

#[test]
fn defender_on_linux_is_reported_with_the_state_its_health_gives_or_unknown() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("opt/microsoft/mdatp")).unwrap();
    let now = SystemTime::now();
    let with = |mdatp: Mdatp<'_>| -> Found {
        linux_products(&Scan {
            mdatp,
            ..linux_scan(root.path(), now, Some(&[]))
        })
    };
    let healthy = mdatp_fixture("health-linux-healthy.json");
    let found = with(Mdatp::Given(&healthy));
    let p = product(&found.products, "Microsoft Defender for Endpoint");
    assert_eq!(state(p), (Some(true), Some(true)));
    assert_eq!(p.vendor.as_deref(), Some("Microsoft Corporation"));
    assert!(assessment(OsFamily::Linux, found.products).working_antivirus);

    // Malformed output: still reported (it is installed), state unknown,
    // the inventory says why, and it does not count as working.
    let truncated = mdatp_fixture("health-truncated.json");
    let found = with(Mdatp::Given(&truncated));
    assert_eq!(
        state(product(&found.products, "Microsoft Defender for Endpoint")),
        (None, None)
    );
    assert!(
        found.warnings[0].contains("did not print JSON"),
        "{:?}",
        found.warnings
    );
    assert!(!assessment(OsFamily::Linux, found.products).working_antivirus);

    // A tree that is not this machine: mdatp is not run.
    let found = with(Mdatp::Skip);
    assert_eq!(
        state(product(&found.products, "Microsoft Defender for Endpoint")),
        (None, None)
    );
    assert!(found.warnings.is_empty());
}

// ---- EDRs and Kaspersky on Linux ---------------------------------------

#[cfg(unix)]
#[test]
fn edrs_and_kaspersky_by_their_install_directories() {
    let root = tempfile::tempdir().unwrap();
    for d in [
        "opt/CrowdStrike",
        "opt/sentinelone/bin",
        "opt/sophos-spl/base",
        "opt/Elastic/Endpoint",
        "opt/eset/eea",
        "opt/kaspersky/kesl/bin",
    ] {
        std::fs::create_dir_all(root.path().join(d)).unwrap();
    }
    // A file where a directory belongs is not an install.
    std::fs::create_dir_all(root.path().join("opt/cisco")).unwrap();
    std::fs::write(root.path().join("opt/cisco/amp"), "").unwrap();
    let ps = vec![
        Process {
            name: "falcon-sensor".into(),
            path: Some("/opt/CrowdStrike/falcon-sensor".into()),
        },
        // Linux cuts `comm` at 15 bytes; the path has the whole name.
        Process {
            name: "elastic-endpoin".into(),
            path: Some("/opt/Elastic/Endpoint/elastic-endpoint".into()),
        },
    ];
    let found = linux_products(&linux_scan(root.path(), SystemTime::now(), Some(&ps)));
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    let mut names: Vec<&str> = found.products.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "CrowdStrike Falcon",
            "ESET",
            "Elastic Endpoint",
            "Kaspersky Endpoint Security for Linux",
            "SentinelOne",
            "Sophos Protection for Linux"
        ]
    );
    let falcon = product(&found.products, "CrowdStrike Falcon");
    assert_eq!(falcon.kind, Some(SecurityProductKind::Edr));
    assert_eq!(falcon.vendor.as_deref(), Some("CrowdStrike, Inc."));
    // Running, but nothing on disk says whether its content is current.
    assert_eq!(state(falcon), (Some(true), None));
    assert_eq!(
        state(product(&found.products, "Elastic Endpoint")),
        (Some(true), None)
    );
    assert_eq!(state(product(&found.products, "SentinelOne")), (None, None));

    let a = assessment(OsFamily::Linux, found.products);
    assert!(kaspersky_matched_as_security_product(&a), "{:?}", a.matches);
    assert_eq!(
        a.matches.len(),
        1,
        "only Kaspersky is prohibited: {:?}",
        a.matches
    );
    assert!(
        !a.working_antivirus,
        "no product's signatures are known to be current"
    );
}

#[cfg(unix)]
#[test]
fn the_kesl_fixture_reports_kaspersky_as_a_security_product_too() {
    let inv = collect_linux_from(&fixture("linux-root"));
    assert!(inv.complete, "{:?}", inv.warnings);
    let kesl = product(
        &inv.security_products,
        "Kaspersky Endpoint Security for Linux",
    );
    assert_eq!(kesl.vendor.as_deref(), Some("AO Kaspersky Lab"));
    // Its process runs (see linux-root/proc/842).
    assert_eq!(kesl.enabled, Some(true));
    assert!(kaspersky_matched_as_security_product(&assessment(
        OsFamily::Linux,
        inv.security_products
    )));
}

// ---- macOS ---------------------------------------------------------------

fn xprotect_meta(root: &Path) -> std::path::PathBuf {
    root.join("Library/Apple/System/Library/CoreServices/XProtect.bundle/Contents/Resources/XProtect.meta.plist")
}

fn definitions_time(root: &Path) -> SystemTime {
    std::fs::metadata(xprotect_meta(root))
        .unwrap()
        .modified()
        .unwrap()
}

fn mac_scan<'a>(
    root: &'a Path,
    now: SystemTime,
    software: &'a [Software],
    mdatp: Mdatp<'a>,
) -> Scan<'a> {
    Scan {
        root,
        now,
        processes: None,
        software,
        mdatp,
    }
}

#[test]
fn a_clean_mac_has_xprotect_which_counts_while_its_definitions_are_current() {
    let root = fixture("macos-clean");
    let written = definitions_time(&root);
    let found = macos_products(&mac_scan(&root, written + 10 * DAY, &[], Mdatp::Skip));
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    assert_eq!(found.products.len(), 1);
    let xp = product(&found.products, "XProtect");
    assert_eq!(xp.vendor.as_deref(), Some("Apple Inc."));
    assert_eq!(xp.kind, Some(SecurityProductKind::Antivirus));
    assert_eq!(state(xp), (Some(true), Some(true)));
    assert!(assessment(OsFamily::Macos, found.products).working_antivirus);

    let outdated = macos_products(&mac_scan(&root, written + 60 * DAY, &[], Mdatp::Skip));
    assert_eq!(
        state(product(&outdated.products, "XProtect")),
        (Some(true), Some(false))
    );
    assert!(!assessment(OsFamily::Macos, outdated.products).working_antivirus);
}

#[test]
fn xprotect_updated_by_the_xprotect_tool_counts_over_an_older_copy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_tree(&fixture("macos-clean"), root);
    let now = SystemTime::now();
    // The copy Software Update wrote is three months old ...
    let old = std::fs::File::options()
        .write(true)
        .open(xprotect_meta(root))
        .unwrap();
    old.set_modified(now - 90 * DAY).unwrap();
    drop(old);
    let stale = macos_products(&mac_scan(root, now, &[], Mdatp::Skip));
    assert_eq!(product(&stale.products, "XProtect").up_to_date, Some(false));
    // ... and macOS 15's `xprotect` installed a newer release elsewhere.
    let newer = root.join("private/var/protected/xprotect/XProtect.bundle");
    copy_tree(
        &fixture("macos-clean/Library/Apple/System/Library/CoreServices/XProtect.bundle"),
        &newer,
    );
    let info = newer.join("Contents/Info.plist");
    let text = std::fs::read_to_string(&info).unwrap();
    std::fs::write(&info, text.replace("5287", "5290")).unwrap();
    let found = macos_products(&mac_scan(root, now, &[], Mdatp::Skip));
    assert_eq!(found.products.len(), 1, "one XProtect, not one per copy");
    assert_eq!(
        state(product(&found.products, "XProtect")),
        (Some(true), Some(true))
    );
}

#[test]
fn a_mac_with_defender_crowdstrike_and_kaspersky() {
    let root = fixture("macos-root");
    let (apps, failures) = scan_applications(&[root.join("Applications")]);
    assert!(failures.is_empty(), "{failures:?}");
    let software: Vec<Software> = apps.into_iter().map(|a| a.software).collect();
    let healthy = mdatp_fixture("health-macos-managed.json");
    let now = definitions_time(&root) + DAY;
    let found = macos_products(&mac_scan(&root, now, &software, Mdatp::Given(&healthy)));
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    let mut names: Vec<&str> = found.products.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    // Falcon by its app (whose name it takes) and launch daemon, Kaspersky
    // by a binary launchd plist, SentinelOne by the file name of a plist
    // that does not parse; VLC's helper is no security product.
    assert_eq!(
        names,
        [
            "Falcon",
            "Kaspersky",
            "Microsoft Defender for Endpoint",
            "SentinelOne",
            "XProtect"
        ]
    );
    let defender = product(&found.products, "Microsoft Defender for Endpoint");
    assert_eq!(state(defender), (Some(true), Some(true)));
    let falcon = product(&found.products, "Falcon");
    assert_eq!(falcon.vendor.as_deref(), Some("CrowdStrike, Inc."));
    assert_eq!(
        (falcon.kind, state(falcon)),
        (Some(SecurityProductKind::Edr), (None, None))
    );
    let kaspersky = product(&found.products, "Kaspersky");
    assert_eq!(kaspersky.vendor.as_deref(), Some("AO Kaspersky Lab"));

    let a = assessment(OsFamily::Macos, found.products);
    assert!(kaspersky_matched_as_security_product(&a), "{:?}", a.matches);
    assert!(a.working_antivirus, "XProtect and Defender are current");

    // Defender whose health cannot be read is there, but does not count.
    let found = macos_products(&mac_scan(&root, now, &software, Mdatp::Given("")));
    assert_eq!(
        state(product(&found.products, "Microsoft Defender for Endpoint")),
        (None, None)
    );
    assert_eq!(found.warnings.len(), 1);
}

#[cfg(unix)]
#[test]
fn hostile_launch_daemons_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let daemons = dir.path().join("Library/LaunchDaemons");
    std::fs::create_dir_all(&daemons).unwrap();
    // An oversized plist is not parsed (its label comes from its name), a
    // FIFO is not opened.
    let big = std::fs::File::create(daemons.join("com.eset.big.plist")).unwrap();
    big.set_len(64 << 30).unwrap();
    drop(big);
    let made = std::process::Command::new("mkfifo")
        .arg(daemons.join("com.sophos.fifo.plist"))
        .status()
        .unwrap();
    assert!(made.success());
    let found = macos_products(&mac_scan(dir.path(), SystemTime::now(), &[], Mdatp::Skip));
    let mut names: Vec<&str> = found.products.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["ESET", "Sophos"]);

    // Thousands of entries: the listing stops, and says so.
    for i in 0..2100 {
        std::fs::write(daemons.join(format!("org.example.d{i}.plist")), "").unwrap();
    }
    let found = macos_products(&mac_scan(dir.path(), SystemTime::now(), &[], Mdatp::Skip));
    assert!(
        found
            .warnings
            .iter()
            .any(|w| w.contains("more than 2000 entries")),
        "{:?}",
        found.warnings
    );
}

// ---- the binary, and a gate that requires an antivirus -------------------

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn collect_json_of_debian_roots_shows_their_security_products() {
    let run = agent(&["collect", "--json", "--root", s(&fixture("debian-clean"))]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["complete"], true, "{}", run.all());
    assert_eq!(v["security_products"], serde_json::json!([]));

    let dir = tempfile::tempdir().unwrap();
    let root = clamav_root(dir.path(), DAY);
    let run = agent(&["collect", "--json", "--root", s(&root)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["security_products"],
        serde_json::json!([{
            "name": "ClamAV",
            "vendor": "Cisco Talos",
            "kind": "antivirus",
            "enabled": true,
            "up_to_date": true
        }])
    );
    let run = agent(&["collect", "--root", s(&root)]).await;
    assert!(run.stdout.contains("ClamAV"), "{}", run.all());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_requires_an_antivirus_admits_fresh_clamav_only() {
    let gate = AgentGate::start_with(|text| {
        text.replace(
            "name = \"strict\"\n",
            "name = \"strict\"\nrequire_antivirus = true\n",
        )
    })
    .await;
    let (_, device) = gate.device("lt-av", DeviceKeyType::P256);
    let fresh = clamav_root(gate.dir.path(), DAY);
    let run = attest(&gate, &device, &["--root", s(&fresh), "--json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let verdict: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(verdict["decisions"]["finance"], "allow", "{verdict}");

    let old = clamav_root(gate.dir.path(), 30 * DAY);
    let run = attest(&gate, &device, &["--root", s(&old), "--json"]).await;
    assert_eq!(run.code, Some(3), "{}", run.all());
    let verdict: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(verdict["decisions"]["finance"], "deny", "{verdict}");
    assert_eq!(verdict["decisions"]["open"], "allow", "{verdict}");

    let run = attest(
        &gate,
        &device,
        &["--root", s(&fixture("debian-clean")), "--json"],
    )
    .await;
    assert_eq!(run.code, Some(3), "{}", run.all());
}

#[test]
fn a_macos_tree_is_collected_as_macos() {
    let dir = tempfile::tempdir().unwrap();
    let root = macos_root(dir.path(), "macos-root", DAY);
    let inv = collect_from(&root);
    assert_eq!(inv.os.family, OsFamily::Macos);
    assert_eq!(
        (inv.os.name.as_deref(), inv.os.version.as_deref()),
        (Some("macOS"), Some("14.4.1"))
    );
    let mut apps: Vec<&str> = inv.software.iter().map(|s| s.name.as_str()).collect();
    apps.sort();
    assert_eq!(apps, ["Falcon", "Microsoft Defender"]);
    // A tree that is not running has no processes, and says so; nothing else
    // is missing.
    let collectors: Vec<&str> = inv.warnings.iter().map(|w| w.collector).collect();
    assert_eq!(collectors, ["processes"]);
    assert_eq!(
        state(product(&inv.security_products, "XProtect")),
        (Some(true), Some(true))
    );
    // mdatp is never run for a tree: Defender's state is unknown.
    assert_eq!(
        state(product(
            &inv.security_products,
            "Microsoft Defender for Endpoint"
        )),
        (None, None)
    );
    assert_eq!(inv.security_products.len(), 5);
    // A Linux tree is still read as Linux.
    assert_eq!(
        collect_from(&fixture("debian-clean")).os.family,
        OsFamily::Linux
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_requires_an_antivirus_admits_a_clean_mac_with_current_xprotect() {
    let gate = AgentGate::start_with(|text| {
        text.replace(
            "name = \"strict\"\n",
            "name = \"strict\"\nrequire_antivirus = true\n",
        )
    })
    .await;
    let (_, device) = gate.device("mac-001", DeviceKeyType::P256);
    let clean = macos_root(gate.dir.path(), "macos-clean", 3 * DAY);
    let run = agent(&["collect", "--json", "--root", s(&clean)]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["os"]["family"], "macos");
    assert_eq!(
        v["security_products"],
        serde_json::json!([{
            "name": "XProtect",
            "vendor": "Apple Inc.",
            "kind": "antivirus",
            "enabled": true,
            "up_to_date": true
        }])
    );
    let run = attest(&gate, &device, &["--root", s(&clean), "--json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.all());
    let verdict: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(verdict["decisions"]["finance"], "allow", "{verdict}");

    let outdated = macos_root(gate.dir.path(), "macos-clean", 60 * DAY);
    let run = attest(&gate, &device, &["--root", s(&outdated), "--json"]).await;
    assert_eq!(run.code, Some(3), "{}", run.all());
    let verdict: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(verdict["decisions"]["finance"], "deny", "{verdict}");

    // Current XProtect, but Kaspersky's launch daemon is installed.
    let kaspersky = macos_root(gate.dir.path(), "macos-root", DAY);
    let run = attest(&gate, &device, &["--root", s(&kaspersky), "--json"]).await;
    assert_eq!(run.code, Some(3), "{}", run.all());
    let verdict: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(verdict["decisions"]["finance"], "deny", "{verdict}");
    assert!(
        verdict["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["catalog_id"] == "kaspersky"
                && f["item"]["kind"] == "security_product"
                && f["item"]["vendor"] == "AO Kaspersky Lab"),
        "{verdict}"
    );
}
