//! Running the platform's own listing tools (`rpm`, `flatpak`, `sw_vers`,
//! PowerShell, ...). The distinction that matters to the inventory is between
//! a tool that is not installed, which is an absent optional source, and a tool
//! that ran and failed, which makes the inventory incomplete.

use std::io::ErrorKind;
use std::process::Command;

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
        .stdin(std::process::Stdio::null())
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
}
