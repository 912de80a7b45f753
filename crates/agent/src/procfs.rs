//! Running processes from a `proc` file system: the name from
//! `/proc/PID/comm`, the executable from the `/proc/PID/exe` link.
//!
//! Processes come and go while the directory is read; a PID that vanished
//! between listing and reading is skipped, never an error.

use std::io;
use std::path::Path;

use posture_core::attestation::claims::Process;

/// The user processes under `proc_dir`. Fails only when the directory itself
/// cannot be listed.
///
/// Kernel threads (and zombies) have no executable: their `exe` link reads
/// as "not found", and they are left out because they are not software. An
/// `exe` of another user's process that this user may not read keeps the
/// process, without a path.
pub fn read_processes(proc_dir: &Path) -> io::Result<Vec<Process>> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir(proc_dir)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let is_pid = file_name
            .to_str()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_pid {
            if let Some(p) = read_process(&entry.path()) {
                processes.push(p);
            }
        }
    }
    Ok(processes)
}

fn read_process(dir: &Path) -> Option<Process> {
    let comm = std::fs::read(dir.join("comm")).ok()?;
    let name = String::from_utf8_lossy(&comm)
        .trim_end_matches('\n')
        .to_string();
    let path = match std::fs::read_link(dir.join("exe")) {
        Ok(target) => Some(exe_path(&target.to_string_lossy())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(_) => None,
    };
    (!name.is_empty()).then_some(Process { name, path })
}

/// The executable's path; the kernel marks a replaced or removed binary
/// with " (deleted)", which is not part of the path.
fn exe_path(target: &str) -> String {
    target
        .strip_suffix(" (deleted)")
        .unwrap_or(target)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_marker_is_removed() {
        assert_eq!(exe_path("/usr/bin/kesl (deleted)"), "/usr/bin/kesl");
        assert_eq!(exe_path("/usr/bin/bash"), "/usr/bin/bash");
    }

    #[cfg(unix)]
    #[test]
    fn pids_with_comm_and_exe_are_read_and_others_skipped() {
        let proc_dir = tempfile::tempdir().unwrap();
        let pid = |n: &str| {
            let d = proc_dir.path().join(n);
            std::fs::create_dir(&d).unwrap();
            d
        };
        let d = pid("100");
        std::fs::write(d.join("comm"), "kesl\n").unwrap();
        std::os::unix::fs::symlink("/opt/kaspersky/kesl/libexec/kesl", d.join("exe")).unwrap();
        // A kernel thread: comm, but no exe link.
        std::fs::write(pid("2").join("comm"), "kthreadd\n").unwrap();
        // A pid that vanished: an empty directory.
        pid("300");
        std::fs::create_dir(proc_dir.path().join("sys")).unwrap();
        let ps = read_processes(proc_dir.path()).unwrap();
        assert_eq!(
            ps,
            vec![Process {
                name: "kesl".into(),
                path: Some("/opt/kaspersky/kesl/libexec/kesl".into())
            }]
        );
    }

    #[test]
    fn a_missing_proc_directory_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        assert!(read_processes(&root.path().join("proc")).is_err());
    }
}
