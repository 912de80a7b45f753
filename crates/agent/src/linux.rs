//! The Linux collectors, reading a tree rooted at `root` (`/` for this
//! machine, a fixture tree in tests).

use std::io;
use std::path::Path;
use std::time::SystemTime;

use posture_core::attestation::claims::OsFamily;

use super::command::{self, Ran};
use super::security::{self, Mdatp, Scan};
use super::{dedup_processes, dpkg, flatpak, os_release, procfs, rpm, snap, Inventory};

/// Where rpm keeps its database, old and new (rpm >= 4.16 on Fedora, SUSE).
const RPM_DB_DIRS: [&str; 2] = ["var/lib/rpm", "usr/lib/sysimage/rpm"];

pub fn collect(root: &Path, live: bool) -> Inventory {
    let mut inv = Inventory::empty(OsFamily::Linux);
    os(root, &mut inv);
    let dpkg_found = dpkg_packages(root, &mut inv);
    let rpm_found = rpm_packages(root, live, &mut inv);
    if !dpkg_found && !rpm_found {
        inv.warn(
            "packages",
            format!(
                "no package database under {}: neither var/lib/dpkg nor an rpm database",
                root.display()
            ),
        );
    }
    snaps(root, &mut inv);
    if live {
        flatpaks(&mut inv);
    }
    let processes_read = processes(root, &mut inv);
    security_products(root, live, processes_read, &mut inv);
    inv
}

/// ClamAV, Defender for Endpoint and the EDRs installed under `root`;
/// `mdatp health` runs only for this machine.
fn security_products(root: &Path, live: bool, processes_read: bool, inv: &mut Inventory) {
    let found = security::linux_products(&Scan {
        root,
        now: SystemTime::now(),
        processes: processes_read.then_some(inv.processes.as_slice()),
        software: &inv.software,
        mdatp: if live { Mdatp::Run } else { Mdatp::Skip },
    });
    inv.security_products.extend(found.products);
    for w in found.warnings {
        inv.warn("security-products", w);
    }
}

fn os(root: &Path, inv: &mut Inventory) {
    // os-release(5): /etc/os-release, falling back to /usr/lib/os-release.
    let text = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")));
    match text {
        Ok(text) => inv.os = os_release::parse_os_release(&text),
        Err(e) => inv.warn("os-release", format!("cannot read os-release: {e}")),
    }
}

/// Reads the dpkg database; true when this is a dpkg system at all.
fn dpkg_packages(root: &Path, inv: &mut Inventory) -> bool {
    let admin_dir = root.join("var/lib/dpkg");
    let status = admin_dir.join("status");
    let bytes = match std::fs::read(&status) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !admin_dir.exists() => return false,
        Err(e) => {
            inv.warn("dpkg", format!("cannot read {}: {e}", status.display()));
            return true;
        }
    };
    // Old packages may carry Latin-1 maintainer names: never lose the file
    // over one byte.
    match dpkg::parse_dpkg_status(&String::from_utf8_lossy(&bytes)) {
        Ok(packages) => inv.software.extend(packages),
        Err(e) => {
            inv.warn("dpkg", format!("{}: {e}", status.display()));
            inv.software.extend(e.partial);
        }
    }
    true
}

/// Lists rpm packages; true when this tree has an rpm database.
fn rpm_packages(root: &Path, live: bool, inv: &mut Inventory) -> bool {
    if !RPM_DB_DIRS.iter().any(|d| root.join(d).is_dir()) {
        return false;
    }
    let root_arg = root.to_string_lossy();
    let mut args = vec!["-qa", "--queryformat", rpm::QUERY_FORMAT];
    if !live {
        args.splice(0..0, ["--root", root_arg.as_ref()]);
    }
    match command::run("rpm", &args) {
        Ran::Absent => inv.warn("rpm", "an rpm database exists but the rpm tool is missing"),
        Ran::Failed(m) => inv.warn("rpm", m),
        Ran::Output { stdout, .. } => match rpm::parse_rpm_qa(&stdout) {
            Ok(p) => inv.software.extend(p),
            Err(e) => inv.warn("rpm", format!("unexpected `rpm -qa` output, {e}")),
        },
    }
    true
}

fn snaps(root: &Path, inv: &mut Inventory) {
    match snap::read_snaps(root) {
        Ok(Some(s)) => inv.software.extend(s),
        Ok(None) => {}
        Err(e) => inv.warn("snap", format!("cannot list var/lib/snapd/snaps: {e}")),
    }
}

fn flatpaks(inv: &mut Inventory) {
    match command::run("flatpak", &flatpak::LIST_ARGS) {
        Ran::Absent => {}
        Ran::Failed(m) => inv.warn("flatpak", m),
        Ran::Output { stdout, .. } => match flatpak::parse_flatpak_list(&stdout) {
            Ok(p) => inv.software.extend(p),
            Err(e) => inv.warn("flatpak", format!("unexpected `flatpak list` output, {e}")),
        },
    }
}

/// Lists the processes; false when they could not be listed.
fn processes(root: &Path, inv: &mut Inventory) -> bool {
    let proc_dir = root.join("proc");
    match procfs::read_processes(&proc_dir) {
        Ok(mut ps) => {
            dedup_processes(&mut ps);
            inv.processes = ps;
            true
        }
        Err(e) => {
            inv.warn(
                "processes",
                format!("cannot list {}: {e}", proc_dir.display()),
            );
            false
        }
    }
}
