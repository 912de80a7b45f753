//! The audit log on a file system that fills up under load (issue 18
//! point 1): a size-limited tmpfs (`mount -t tmpfs -o size=2m`, which works
//! as root in this sandbox; without mount permission these tests fail, they
//! do not skip) holds the audit file, a filler file takes nearly all of it,
//! and clients keep asking. Shown: every line in the file is whole and every
//! admitted request has its line; during the failure `deny` answers 503
//! without admitting and `allow` admits and counts the lines lost; once the
//! filler is deleted the writer catches up and new lines appear.

use crate::audit_log::{audit_table, read_lines, routes, Counting};
use crate::support as common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Proto, Settings, TestGate};
use posture_gate::audit::AuditHealth;

const BOUND: Duration = Duration::from_secs(60);

/// A tmpfs of `size` mounted on a new directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("audit-fs");
        std::fs::create_dir(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs on {} (these tests need root and mount permission): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a writer thread of a gate not yet gone may hold the file.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// Fills the file system with `filler` until it is full, then frees
/// `leave` bytes of it again.
fn fill(filler: &Path, leave: u64) {
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", filler.display()),
        }
    }
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
}

/// What the clients saw.
#[derive(Default, Debug)]
struct Seen {
    ok: usize,
    unavailable: usize,
    other: Vec<u16>,
}

/// Clients asking `public.test` in a loop until `stop`.
fn load(
    gate: &TestGate,
    device: &common::Device,
    stop: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..6)
        .map(|i| {
            let client = gate.client(Some(device), if i % 2 == 0 { Proto::H1 } else { Proto::H2 });
            let (stop, seen) = (stop.clone(), seen.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let answer = client.try_get("public.test", &format!("/c{i}/{n}")).await;
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    match answer {
                        Ok(a) if a.status == 200 => seen.ok += 1,
                        // The audit_unavailable page, in either language.
                        Ok(a)
                            if a.status == 503
                                && (a.text().contains("cannot be recorded")
                                    || a.text().contains("niet worden vastgelegd")) =>
                        {
                            seen.unavailable += 1
                        }
                        Ok(a) => seen.other.push(a.status.as_u16()),
                        Err(_) => seen.other.push(0),
                    }
                }
            })
        })
        .collect()
}

async fn until(
    what: &str,
    gate: &TestGate,
    done: impl Fn(&AuditHealth, &Seen) -> bool,
    seen: &Arc<Mutex<Seen>>,
) {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let health = gate.handle.audit_health();
        if done(&health, &seen.lock().unwrap()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {BOUND:?}; {health:?}, {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn full_disk(on_failure: &str) {
    let fs = Tmpfs::mount("2m");
    let up = Counting::start().await;
    let path = fs.dir.join("audit.jsonl");
    let settings = Settings {
        extra: audit_table(
            path.to_str().unwrap(),
            &format!(
                "queue_lines = 64\nmax_wait = \"200ms\"\non_audit_failure = \"{on_failure}\"\n"
            ),
        ),
        ..Settings::default()
    };
    let gate = TestGate::start(&routes(&up.url()), &settings).await;
    let device = gate.pki.device("lt-801", "Ministerie");
    assert_eq!(gate.attest(&device, false).await.status, 200);
    assert!(gate.handle.audit_flush(BOUND).await);
    let before = read_lines(&path).len();

    // Room for about a hundred lines, then full.
    let filler = fs.dir.join("filler");
    fill(&filler, 64 * 1024);
    let (stop, seen) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Seen::default())),
    );
    let clients = load(&gate, &device, &stop, &seen);

    // The disk fills: writes fail, the queue fills, on_audit_failure applies.
    until(
        "the audit log fails",
        &gate,
        |h, _| h.write_errors > 0 && h.failing,
        &seen,
    )
    .await;
    let at_failure = seen.lock().unwrap().ok;
    match on_failure {
        "deny" => {
            until(
                "503s while the disk is full",
                &gate,
                |h, s| s.unavailable >= 20 && h.refused >= 20,
                &seen,
            )
            .await;
        }
        _ => {
            until(
                "requests pass and lines are lost",
                &gate,
                |h, s| h.lost >= 20 && s.ok >= at_failure + 20,
                &seen,
            )
            .await;
        }
    }
    let during = gate.handle.audit_health();
    assert!(during.failing, "{during:?}");

    // Space returns: the writer catches up and lines follow again.
    std::fs::remove_file(&filler).unwrap();
    until(
        "the writer recovers",
        &gate,
        |h, _| !h.failing && h.queue_depth < 64,
        &seen,
    )
    .await;
    let written_at_recovery = gate.handle.audit_health().written;
    until(
        "new lines after recovery",
        &gate,
        |h, _| h.written >= written_at_recovery + 50,
        &seen,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    assert!(gate.handle.audit_flush(BOUND).await);

    let seen = seen.lock().unwrap();
    assert!(
        seen.other.is_empty(),
        "only 200 and the audit's 503: {:?}",
        seen.other
    );
    let lines = read_lines(&path);
    let decisions: Vec<_> = lines[before..]
        .iter()
        .filter(|l| l["event"] == "decision")
        .collect();
    assert!(decisions
        .iter()
        .all(|d| d["status"] == 200 && d["decision"] == "allow"));
    let health = gate.handle.audit_health();
    match on_failure {
        "deny" => {
            // Nothing admitted without its line, nothing queued lost.
            assert_eq!(
                up.count(),
                decisions.len(),
                "every admitted request has its line"
            );
            assert_eq!(seen.ok, decisions.len());
            assert!(seen.unavailable >= 20);
            // Each 503 is one refusal the health counts.
            assert_eq!(health.refused, seen.unavailable as u64, "{health:?}");
        }
        _ => {
            assert_eq!(seen.unavailable, 0, "allow refuses nothing");
            assert_eq!(up.count(), seen.ok);
            // Every admitted request has its line or is counted lost (a
            // reload line another test's SIGHUP caused may be lost too).
            assert!(health.lost >= 20, "{health:?}");
            assert!(
                decisions.len() + health.lost as usize >= up.count(),
                "{} lines, {health:?}, {} admitted",
                decisions.len(),
                up.count()
            );
            assert!(decisions.len() < up.count());
        }
    }
    drop(gate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_with_deny_refuses_with_503_admits_nothing_unrecorded_and_recovers() {
    full_disk("deny").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_with_allow_admits_counts_lost_lines_and_recovers() {
    full_disk("allow").await;
}
