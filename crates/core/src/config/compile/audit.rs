//! `[audit]`: where the audit log goes and what the gate does when it
//! cannot be written. The table as written ([`AuditConfig`]) and validated
//! ([`AuditSettings`]) both live here, so `model` and `snapshot` only name
//! them.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::super::duration::ConfigDuration;
use super::Context;

/// `[audit]` as written. Every key is optional; see [`AuditSettings`] for
/// the defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `"stdout"` (default), `"file"` or `"syslog"`.
    pub output: Option<Spanned<String>>,
    /// `file`: the log file; `syslog`: the socket (default `/dev/log`).
    pub path: Option<Spanned<PathBuf>>,
    /// Rotate before the file would exceed this: `"100MB"`, `"512KiB"`.
    pub rotate_size: Option<Spanned<String>>,
    /// Rotate also when the day (UTC) of the lines changes.
    pub rotate_daily: Option<bool>,
    /// Rotated files kept (`audit.jsonl.1` newest ... `.N`).
    pub keep: Option<Spanned<usize>>,
    /// `"batch"`, `"always"`, `"interval:1s"` or `"never"`.
    pub fsync: Option<Spanned<String>>,
    /// Lines that may wait for the writer.
    pub queue_lines: Option<Spanned<usize>>,
    /// How long a request waits for room in a full queue.
    pub max_wait: Option<Spanned<ConfigDuration>>,
    /// `"deny"` (default) or `"allow"`.
    pub on_audit_failure: Option<Spanned<String>>,
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutput {
    /// Standard output, for containers.
    Stdout,
    /// A file of its own, rotated by the gate.
    File(PathBuf),
    /// Datagrams to a syslog socket (RFC 3164 framing, facility `auth`).
    Syslog(PathBuf),
}

/// When a written line is forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every batch the writer writes (default).
    Batch,
    /// After every line.
    Always,
    /// At most once per interval, after a batch.
    Interval(Duration),
    /// Never: the kernel's page cache decides.
    Never,
}

/// What a decision does when its audit line cannot be queued in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAuditFailure {
    /// Refuse with 503 `audit_unavailable`: no decision without a record.
    Deny,
    /// Admit anyway and count the line as lost.
    Allow,
}

/// `[audit]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Where the lines go.
    pub output: AuditOutput,
    /// Rotate before the file would exceed this many bytes; `None`: never
    /// by size.
    pub rotate_size: Option<u64>,
    /// Rotate when the UTC day of the lines changes.
    pub rotate_daily: bool,
    /// Rotated files kept.
    pub keep: usize,
    /// When a line is forced to disk.
    pub fsync: Fsync,
    /// Lines that may wait for the writer (never zero).
    pub queue_lines: usize,
    /// How long an emitting request waits for room in a full queue.
    pub max_wait: Duration,
    /// What a decision does when its line cannot be queued in time.
    pub on_failure: OnAuditFailure,
}

/// The default `syslog` socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            output: AuditOutput::Stdout,
            rotate_size: Some(100_000_000),
            rotate_daily: false,
            keep: 30,
            fsync: Fsync::Batch,
            queue_lines: 65_536,
            max_wait: Duration::from_secs(2),
            on_failure: OnAuditFailure::Deny,
        }
    }
}

/// `"100MB"`, `"64KiB"`, `"4096"`: bytes. Decimal units are powers of
/// 1000, binary ones (`KiB`) of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad size {text:?}: write it like \"100MB\" or \"512KiB\""))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "bad size {text:?}: the unit must be B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// `"batch"`, `"always"`, `"never"`, `"interval:1s"`.
pub fn parse_fsync(text: &str) -> Result<Fsync, String> {
    match text {
        "batch" => Ok(Fsync::Batch),
        "always" => Ok(Fsync::Always),
        "never" => Ok(Fsync::Never),
        _ => match text.strip_prefix("interval:") {
            Some(d) => match super::super::duration::parse(d) {
                Ok(d) if !d.is_zero() => Ok(Fsync::Interval(d)),
                Ok(_) => Err(format!(
                    "fsync interval {d:?} is 0: write it like \"interval:1s\", or fsync = \"always\""
                )),
                Err(e) => Err(format!("bad fsync interval: {e}")),
            },
            None => Err(format!(
                "fsync {text:?} is none of \"batch\", \"always\", \"interval:<duration>\", \"never\""
            )),
        },
    }
}

impl Context<'_> {
    pub(super) fn audit(&mut self, a: &AuditConfig) -> AuditSettings {
        let mut s = AuditSettings::default();
        let output = a.output.as_ref().map(|o| (o.get_ref().as_str(), o.span()));
        // Not `resolve`: that would make the reloader watch the log it writes.
        let path = a.path.as_ref().map(|p| self.base.join(p.get_ref()));
        s.output = match output {
            None | Some(("stdout", _)) => {
                if let (Some(p), None | Some(("stdout", _))) = (&a.path, output) {
                    self.c.at(
                        p.span(),
                        "path is for output = \"file\" or \"syslog\"; standard output needs none",
                    );
                }
                AuditOutput::Stdout
            }
            Some(("file", span)) => match path {
                Some(p) => AuditOutput::File(p),
                None => {
                    self.c.at(span, "output = \"file\" needs a path");
                    AuditOutput::Stdout
                }
            },
            Some(("syslog", _)) => {
                AuditOutput::Syslog(path.unwrap_or_else(|| PathBuf::from(SYSLOG_SOCKET)))
            }
            Some((other, span)) => {
                self.c.at(
                    span,
                    format!("output {other:?} is none of \"stdout\", \"file\", \"syslog\""),
                );
                AuditOutput::Stdout
            }
        };
        if let Some(size) = &a.rotate_size {
            match parse_size(size.get_ref()) {
                Ok(0) => self.c.at(size.span(), "rotate_size must be more than 0"),
                Ok(n) => s.rotate_size = Some(n),
                Err(e) => self.c.at(size.span(), e),
            }
        }
        s.rotate_daily = a.rotate_daily.unwrap_or(s.rotate_daily);
        if let Some(keep) = &a.keep {
            s.keep = *keep.get_ref();
        }
        if let Some(f) = &a.fsync {
            match parse_fsync(f.get_ref()) {
                Ok(f) => s.fsync = f,
                Err(e) => self.c.at(f.span(), e),
            }
        }
        if let Some(q) = &a.queue_lines {
            if *q.get_ref() == 0 {
                self.c.at(q.span(), "queue_lines must be more than 0");
            } else {
                s.queue_lines = *q.get_ref();
            }
        }
        if let Some(w) = &a.max_wait {
            s.max_wait = w.get_ref().0;
        }
        if let Some(f) = &a.on_audit_failure {
            s.on_failure = match f.get_ref().as_str() {
                "deny" => OnAuditFailure::Deny,
                "allow" => OnAuditFailure::Allow,
                other => {
                    self.c.at(
                        f.span(),
                        format!("on_audit_failure {other:?} is neither \"deny\" nor \"allow\""),
                    );
                    OnAuditFailure::Deny
                }
            };
        }
        s
    }

    /// `[audit]` without a `[server]`: nothing would write it.
    pub(super) fn audit_without_server(&mut self, span: Range<usize>) {
        self.c.at(
            span,
            "[audit] is part of the server: it needs a [server] section",
        );
    }
}

/// The `Audit log:` line of `check-config`.
pub(crate) fn summary(out: &mut String, a: &AuditSettings) {
    use std::fmt::Write as _;
    let output = match &a.output {
        AuditOutput::Stdout => "standard output".to_string(),
        AuditOutput::File(p) => {
            let size = a
                .rotate_size
                .map(|n| format!("at {n} bytes"))
                .unwrap_or_else(|| "not by size".into());
            let daily = if a.rotate_daily { " and daily" } else { "" };
            format!("{} (rotated {size}{daily}, {} kept)", p.display(), a.keep)
        }
        AuditOutput::Syslog(p) => format!("syslog {}", p.display()),
    };
    let fsync = match a.fsync {
        Fsync::Batch => "fsync per batch".to_string(),
        Fsync::Always => "fsync per line".to_string(),
        Fsync::Interval(d) => format!("fsync every {}", humantime::format_duration(d)),
        Fsync::Never => "no fsync".to_string(),
    };
    let failure = match a.on_failure {
        OnAuditFailure::Deny => "refuses (503)",
        OnAuditFailure::Allow => "admits and counts the line lost",
    };
    writeln!(
        out,
        "Audit log: {output}, {fsync}; a request that cannot be recorded within {} {failure}",
        humantime::format_duration(a.max_wait)
    )
    .ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("ten MB").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn fsync_policies_are_named() {
        assert_eq!(parse_fsync("batch"), Ok(Fsync::Batch));
        assert_eq!(
            parse_fsync("interval:1s"),
            Ok(Fsync::Interval(Duration::from_secs(1)))
        );
        assert!(parse_fsync("interval:0s").is_err());
        assert!(parse_fsync("sometimes").is_err());
    }
}
