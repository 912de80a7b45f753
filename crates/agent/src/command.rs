//! Running the platform's own listing tools (`rpm`, `flatpak`, `sw_vers`,
//! PowerShell, ...). The distinction that matters to the inventory is between
//! a tool that is not installed, which is an absent optional source, and a tool
//! that ran and failed, which makes the inventory incomplete.

use std::io::{ErrorKind, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What running a listing tool gave.
#[derive(Debug)]
pub enum Ran {
    /// The program is not installed: the source it lists does not exist here.
    Absent,
    /// It ran and exited with success.
    Output { stdout: String },
    /// It could not be started for another reason, or exited with failure.
    Failed(String),
}

/// Runs `program args`, with stdin closed, and classifies the outcome.
pub fn run(program: &str, args: &[&str]) -> Ran {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output();
    match output {
        Err(e) if e.kind() == ErrorKind::NotFound => Ran::Absent,
        Err(e) => Ran::Failed(format!("cannot run `{program}`: {e}")),
        Ok(out) => {
            // Tools print names in the user's locale; a stray invalid byte
            // must not lose the whole listing.
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() {
                Ran::Output { stdout }
            } else {
                Ran::Failed(format!(
                    "`{program}` exited with {}: {}",
                    out.status,
                    first_line(&String::from_utf8_lossy(&out.stderr))
                ))
            }
        }
    }
}

/// Runs `program args` like [`run`], but for a tool that may hang or babble
/// (a security product's health query talks to its daemon, which may be
/// wedged): the child is killed once `timeout` has passed, and at most
/// `max_output` bytes of its standard output are kept (the rest is drained
/// so the child cannot block on a full pipe, and the result is `Failed`).
pub fn run_bounded(program: &str, args: &[&str], timeout: Duration, max_output: usize) -> Ran {
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ran::Absent,
        Err(e) => return Ran::Failed(format!("cannot run `{program}`: {e}")),
        Ok(c) => c,
    };
    let stdout = child.stdout.take().map(|s| drain_bounded(s, max_output));
    let stderr = child.stderr.take().map(|s| drain_bounded(s, 4096));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                // Kill, then reap, so no zombie outlives the collection.
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "`{program}` did not finish within {}s and was stopped",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("cannot wait for `{program}`: {e}"));
            }
        }
    };
    // The readers end once the child (and anything it left holding the
    // pipes) is gone; a grandchild keeping a pipe open must not hold us, so
    // a reader that is not done shortly after the child is abandoned.
    let out = stdout.map(Drain::finish);
    let (err, _) = stderr.and_then(Drain::finish).unwrap_or_default();
    let status = match status {
        Ok(s) => s,
        Err(m) => return Ran::Failed(m),
    };
    let Some((out, out_overflow)) = out.unwrap_or_else(|| Some(Default::default())) else {
        return Ran::Failed(format!(
            "`{program}` ended, but something it started still holds its output open; its output was not used"
        ));
    };
    if !status.success() {
        return Ran::Failed(format!(
            "`{program}` exited with {status}: {}",
            first_line(&String::from_utf8_lossy(&err))
        ));
    }
    if out_overflow {
        return Ran::Failed(format!(
            "`{program}` printed more than {max_output} bytes; its output was not used"
        ));
    }
    Ran::Output {
        stdout: String::from_utf8_lossy(&out).into_owned(),
    }
}

/// A pipe read on its own thread, keeping at most `limit` bytes.
struct Drain {
    rx: std::sync::mpsc::Receiver<(Vec<u8>, bool)>,
}

impl Drain {
    /// What the pipe gave, and whether it gave more than the limit; `None`
    /// when the reader is still blocked a second after the child ended (a
    /// grandchild holds the pipe): the output is then not whole, and must
    /// not be read as if it were.
    fn finish(self) -> Option<(Vec<u8>, bool)> {
        self.rx.recv_timeout(Duration::from_secs(1)).ok()
    }
}

fn drain_bounded(mut pipe: impl Read + Send + 'static, limit: usize) -> Drain {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut overflow = false;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len());
                    if n > room {
                        overflow = true;
                    }
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        let _ = tx.send((kept, overflow));
    });
    Drain { rx }
}

/// The first non-empty line of a tool's error output, bounded, for a warning.
pub fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.unwrap_or("(no error output)");
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_absent_not_failed() {
        assert!(matches!(
            run("posture-agent-no-such-program-xyz", &[]),
            Ran::Absent
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_program_is_failed_with_its_error() {
        match run("sh", &["-c", "echo 'database locked' >&2; exit 3"]) {
            Ran::Failed(m) => assert!(m.contains("database locked"), "{m}"),
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_succeeding_program_gives_its_output() {
        match run("sh", &["-c", "printf 'a\\tb\\n'"]) {
            Ran::Output { stdout, .. } => assert_eq!(stdout, "a\tb\n"),
            other => panic!("expected output, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_hanging_program_is_stopped_after_the_timeout() {
        let started = Instant::now();
        match run_bounded(
            "sh",
            &["-c", "exec sleep 30"],
            Duration::from_millis(300),
            1024,
        ) {
            Ran::Failed(m) => assert!(m.contains("did not finish"), "{m}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        // A guard, not a measurement: the child was not waited for.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[cfg(unix)]
    #[test]
    fn too_much_output_is_refused_and_bounded_output_kept() {
        match run_bounded(
            "sh",
            &["-c", "head -c 100000 /dev/zero"],
            Duration::from_secs(20),
            1000,
        ) {
            Ran::Failed(m) => assert!(m.contains("more than 1000 bytes"), "{m}"),
            other => panic!("expected refusal, got {other:?}"),
        }
        match run_bounded("sh", &["-c", "printf '{}'"], Duration::from_secs(20), 1000) {
            Ran::Output { stdout } => assert_eq!(stdout, "{}"),
            other => panic!("expected output, got {other:?}"),
        }
        assert!(matches!(
            run_bounded(
                "posture-agent-no-such-program-xyz",
                &[],
                Duration::from_secs(1),
                10
            ),
            Ran::Absent
        ));
    }

    #[cfg(unix)]
    #[test]
    fn output_held_open_by_a_grandchild_is_not_taken_as_whole() {
        // The child prints half a JSON and exits 0; the sleep it left
        // behind keeps stdout open, so the reader never sees the end.
        match run_bounded(
            "sh",
            &["-c", "printf '{\"healthy\"'; sleep 3 & exit 0"],
            Duration::from_secs(20),
            1000,
        ) {
            Ran::Failed(m) => assert!(m.contains("holds its output open"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
