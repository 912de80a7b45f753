//! # posture-agent
//!
//! The endpoint agent: collects what this machine runs, signs it as a posture
//! attestation (spec `shared/spec/attestation-v1.md`) with the device key,
//! and reports it to the gate over mutual TLS. Shares only the wire types
//! (claims, verdict, reason codes) with the gate side, through `posture-core`.
//!
//! ## Map
//!
//! ```text
//! (this file)  Inventory and the collection of this platform
//! linux, macos, windows, dpkg, rpm, snap, flatpak, os_release, procfs,
//! osquery      collectors; every parser is OS-independent and tested with
//!              fixtures on every OS
//! security     security products of Linux and macOS (clamav, mdatp,
//!              xprotect, third-party products by install location)
//! attest       the attest client: challenge, sign, post, read the verdict
//! render       the inventory as a table (Dutch or English) or JSON, and
//!              the one line saying whether anything prohibited is there
//! report       the gate's verdict in words (Dutch or English), exit codes
//! config       agent.toml: where it is found, what it may say
//! i18n         the locale's language; errors and service triggers in words
//! main.rs      the posture-agent command (collect, attest, token)
//! ```
//!
//! The inventory is what this machine reports in the claims of
//! spec section 3 (`os`, `software`, `processes`, `security_products`).
//!
//! Every platform has a collector behind `cfg`, but all parsing lives in
//! OS-independent functions (`dpkg`, `rpm`, `snap`, `flatpak`, `os_release`,
//! `procfs`, `macos`, `windows`, `osquery`) so it is tested on every OS with
//! fixtures.
//!
//! Failure rule: a collector that fails (permission, missing database, a tool
//! that errors) adds a [`CollectorWarning`] naming it and clears
//! [`Inventory::complete`]; a partial inventory is never reported as complete.
//! A missing *optional* source (no rpm, snap or flatpak on this machine) is not
//! a failure.

pub mod attest;
pub mod clamav;
mod command;
pub mod config;
pub mod dpkg;
pub mod flatpak;
pub mod i18n;
mod linux;
pub mod macos;
pub mod mdatp;
pub mod os_release;
pub mod osquery;
pub mod procfs;
mod render;
pub mod report;
pub mod rpm;
pub mod security;
pub mod snap;
pub mod windows;
pub mod xprotect;

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;

use posture_core::attestation::claims::{
    Claims, Os, OsFamily, Process, SecurityProduct, Software, MAX_STRING_BYTES, PROFILE_V1,
};

pub use osquery::{from_osquery, OsqueryError};
pub use render::{prohibited_line, render_json, render_table, render_table_in};

/// What one collection run found, and whether it is the whole truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub os: Os,
    pub software: Vec<Software>,
    pub processes: Vec<Process>,
    pub security_products: Vec<SecurityProduct>,
    pub warnings: Vec<CollectorWarning>,
    /// False as soon as any collector failed.
    pub complete: bool,
}

/// A collector that failed, by its name (`dpkg`, `rpm`, `processes`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectorWarning {
    pub collector: &'static str,
    pub message: String,
}

impl Inventory {
    /// An empty, complete inventory for `family`, to be filled by collectors.
    pub fn empty(family: OsFamily) -> Self {
        Inventory {
            os: Os {
                family,
                name: None,
                version: None,
            },
            software: Vec::new(),
            processes: Vec::new(),
            security_products: Vec::new(),
            warnings: Vec::new(),
            complete: true,
        }
    }

    /// Records a failed collector; the inventory is incomplete from now on.
    pub fn warn(&mut self, collector: &'static str, message: impl Into<String>) {
        self.warnings.push(CollectorWarning {
            collector,
            message: message.into(),
        });
        self.complete = false;
    }

    /// The claims this inventory reports (spec section 3), with
    /// `eat_profile` set to [`PROFILE_V1`]. Strings longer than the spec's
    /// 1 KiB limit are cut at a character boundary, because one pathological
    /// package description must not make the whole report `too_large`.
    pub fn into_claims(self, iat: i64, nonce: Option<String>, sub: Option<String>) -> Claims {
        let mut claims = Claims {
            eat_profile: Some(PROFILE_V1.to_string()),
            iat,
            exp: None,
            eat_nonce: nonce,
            sub,
            os: self.os,
            software: self.software,
            processes: self.processes,
            security_products: self.security_products,
        };
        clamp_strings(&mut claims);
        claims
    }
}

fn clamp_strings(c: &mut Claims) {
    fn opt(v: &mut Option<String>) {
        if let Some(s) = v {
            clamp(s);
        }
    }
    opt(&mut c.os.name);
    opt(&mut c.os.version);
    for s in &mut c.software {
        clamp(&mut s.name);
        opt(&mut s.vendor);
        opt(&mut s.version);
        opt(&mut s.id);
        opt(&mut s.signer);
    }
    for p in &mut c.processes {
        clamp(&mut p.name);
        opt(&mut p.path);
    }
    for p in &mut c.security_products {
        clamp(&mut p.name);
        opt(&mut p.vendor);
    }
}

/// Cuts `s` to at most [`MAX_STRING_BYTES`] bytes without splitting a char.
fn clamp(s: &mut String) {
    if s.len() <= MAX_STRING_BYTES {
        return;
    }
    let mut end = MAX_STRING_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

/// Drops repeated processes (many workers of one program) and sorts them, so
/// reports stay small and stable.
pub(crate) fn dedup_processes(processes: &mut Vec<Process>) {
    let mut seen = HashSet::new();
    processes.retain(|p| seen.insert((p.name.clone(), p.path.clone())));
    processes.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.path.cmp(&b.path)));
}

/// A line of a tool's output or of a file that does not have the expected
/// shape; the collector that met it fails rather than guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct LineError {
    pub line: usize,
    pub problem: String,
}

/// Trims a value and turns an empty one into `None`.
pub(crate) fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// Collects the inventory of this machine with the collectors of its OS.
pub fn collect() -> Inventory {
    #[cfg(target_os = "linux")]
    {
        linux::collect(Path::new("/"), true)
    }
    #[cfg(target_os = "macos")]
    {
        macos::collect()
    }
    #[cfg(windows)]
    {
        windows::collect()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        let mut inv = Inventory::empty(OsFamily::Other);
        inv.warn("platform", "no collectors for this operating system");
        inv
    }
}

/// Collects a Linux inventory from the tree under `root`: its dpkg status
/// file, os-release, `proc` and snap directories, and the security products
/// installed under it (see [`security`]). The tools that query a live
/// database (`rpm`, `flatpak`) run only when `root` is `/`, except that rpm is
/// pointed at `root` with `--root` when `root` holds an rpm database, so a
/// fixture tree gives the same answer on every machine.
pub fn collect_linux_from(root: &Path) -> Inventory {
    linux::collect(root, root == Path::new("/"))
}

/// Collects the inventory of the tree under `root`: a macOS tree (one with
/// `System/Library/CoreServices/SystemVersion.plist`) as
/// [`macos::collect_from`] does, anything else as a Linux tree
/// ([`collect_linux_from`]).
pub fn collect_from(root: &Path) -> Inventory {
    if macos::is_macos_tree(root) {
        macos::collect_from(root, std::time::SystemTime::now())
    } else {
        collect_linux_from(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_makes_the_inventory_incomplete() {
        let mut inv = Inventory::empty(OsFamily::Linux);
        assert!(inv.complete);
        inv.warn("dpkg", "cannot read status");
        assert!(!inv.complete);
        assert_eq!(inv.warnings[0].collector, "dpkg");
    }

    #[test]
    fn into_claims_sets_the_profile_and_clamps_long_strings() {
        let mut inv = Inventory::empty(OsFamily::Linux);
        inv.software.push(Software {
            name: "é".repeat(600),
            ..Software::default()
        });
        let claims = inv.into_claims(1_700_000_000, Some("n".into()), None);
        assert_eq!(claims.eat_profile.as_deref(), Some(PROFILE_V1));
        assert_eq!(claims.iat, 1_700_000_000);
        assert_eq!(claims.eat_nonce.as_deref(), Some("n"));
        assert_eq!(claims.software[0].name.len(), 1024);
        assert_eq!(claims.check_limits(), Ok(()));
    }

    #[test]
    fn repeated_processes_are_reported_once() {
        let p = |n: &str| Process {
            name: n.into(),
            path: Some(format!("/usr/bin/{n}")),
        };
        let mut ps = vec![p("sshd"), p("bash"), p("sshd")];
        dedup_processes(&mut ps);
        assert_eq!(ps, vec![p("bash"), p("sshd")]);
    }
}
