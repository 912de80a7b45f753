//! The writer thread: takes lines from the bounded queue, writes whatever
//! has gathered in one `write` every few milliseconds, rotates the file and
//! forces it to disk by the `fsync` policy.
//!
//! When a line is on disk: with `fsync = "batch"` (default), when the batch
//! it was written in has been `fdatasync`ed, at most [`GATHER`] plus one
//! write and sync after it was queued; with `"always"`, each line is synced
//! on its own before the next is written; with `"interval:<d>"`, within `d`
//! after its batch; with `"never"`, when the kernel writes the page cache
//! back. A line that is queued is never dropped.
//!
//! A write that fails (a full disk, an I/O error) is retried every
//! [`RETRY`] until it succeeds, holding the batch: the file is first cut
//! back to its last whole line, so a reader never sees half a line. Meanwhile
//! the queue fills and emitting requests meet `on_audit_failure` (see the
//! module above). When space returns, the held batch is written first, in
//! order.
//!
//! Throughput (`examples/audit_throughput.rs`, release build on the shared
//! 2-core machine, four emitting tasks, decision lines of about 450 bytes,
//! ext4, 2026-11-30): 805,000-827,000 lines/s with `fsync = "batch"`
//! (369-378 MiB/s; one `write` and one `fdatasync` per batch), about 7,200
//! lines/s with `fsync = "always"` (one `fdatasync` per line). A debug
//! build manages about 38,000 lines/s, its serialisation being the limit.
//!
//! Rotation (a file output only): before a line would take the file past
//! `rotate_size`, and before the first line of a new UTC day with
//! `rotate_daily`, the file is renamed to `<path>.1` (`.1` to `.2` and so
//! on first, `.keep` deleted; `keep = 0` keeps none) and a new one is opened.
//! Every file holds whole lines only. `reopen` (SIGHUP, any reload) opens
//! `path` again: logrotate's rename-then-signal works without
//! `copytruncate`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use tokio::sync::mpsc::{self, error::TryRecvError, Receiver, Sender};

use posture_core::config::snapshot::{AuditOutput, AuditSettings, Fsync};

use super::Stats;

/// While lines keep coming the writer sleeps this long between writes, so
/// they gather into one `write` and no request pays for a wake-up.
pub const GATHER: Duration = Duration::from_millis(5);

/// A batch is written out at this size even while the queue holds more.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// How often a failed write is tried again.
pub const RETRY: Duration = Duration::from_millis(200);

/// RFC 3339 in UTC with microseconds; the writer formats every time in UTC.
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00");

pub enum Message {
    /// The time of the event and its JSON (`{"event":...}`).
    Line(SystemTime, Vec<u8>),
    /// Answered once every line queued before it has been written.
    Flush(tokio::sync::oneshot::Sender<()>),
    /// Open the file again (logrotate moved it).
    Reopen,
}

/// Starts the thread over the configured output.
pub(super) fn start(settings: &AuditSettings, stats: Arc<Stats>) -> io::Result<Sender<Message>> {
    let output = Output::open(&settings.output)?;
    let (tx, rx) = mpsc::channel(settings.queue_lines.max(1));
    let mut w = Writer {
        output,
        settings: settings.clone(),
        stats,
        batch: Vec::with_capacity(MAX_BATCH_BYTES),
        batch_lines: 0,
        last_sync: Instant::now(),
        day: None,
    };
    w.day = w.output.day();
    thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || w.run(rx))?;
    Ok(tx)
}

/// `{"schema":1,"time":"…",` then the event's own fields, and `\n`.
pub fn append_line(batch: &mut Vec<u8>, at: SystemTime, json: &[u8]) {
    batch.extend_from_slice(b"{\"schema\":1,\"time\":\"");
    if OffsetDateTime::from(at)
        .format_into(batch, TIMESTAMP)
        .is_err()
    {
        // Only a date beyond year 9999 gets here; the line still counts.
        batch.extend_from_slice(b"0000-00-00T00:00:00.000000+00:00");
    }
    batch.push(b'"');
    if json.len() > 2 && json[0] == b'{' {
        batch.push(b',');
        batch.extend_from_slice(&json[1..]);
    } else {
        batch.push(b'}');
    }
    batch.push(b'\n');
}

enum Output {
    File { path: PathBuf, file: File, len: u64 },
    Stdout,
    Syslog { socket: UnixDatagram, path: PathBuf },
}

impl Output {
    fn open(output: &AuditOutput) -> io::Result<Output> {
        Ok(match output {
            AuditOutput::Stdout => Output::Stdout,
            AuditOutput::File(path) => {
                let file = open_append(path)?;
                let len = file.metadata()?.len();
                Output::File {
                    path: path.clone(),
                    file,
                    len,
                }
            }
            AuditOutput::Syslog(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.connect(path).map_err(|e| {
                    io::Error::new(e.kind(), format!("syslog socket {}: {e}", path.display()))
                })?;
                Output::Syslog {
                    socket,
                    path: path.clone(),
                }
            }
        })
    }

    /// The UTC day of the file's last change, for daily rotation.
    fn day(&self) -> Option<time::Date> {
        match self {
            Output::File { file, len, .. } if *len > 0 => file
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| OffsetDateTime::from(t).date()),
            _ => None,
        }
    }

    /// Writes whole lines; on error nothing of `lines` stays in the file.
    fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        match self {
            Output::File { file, len, .. } => match file.write_all(lines) {
                Ok(()) => {
                    *len += lines.len() as u64;
                    Ok(())
                }
                Err(e) => {
                    // Cut back to the last whole line written before.
                    let _ = file.set_len(*len);
                    Err(e)
                }
            },
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(lines).and_then(|()| out.flush())
            }
            Output::Syslog { socket, .. } => {
                // One datagram per line: <38> is facility auth, severity info.
                let mut message = Vec::with_capacity(1024);
                for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    message.clear();
                    message.extend_from_slice(b"<38>posture-gate-audit: ");
                    message.extend_from_slice(line);
                    socket.send(&message)?;
                }
                Ok(())
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self {
            Output::File { file, .. } => file.sync_data(),
            _ => Ok(()),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Output::File { len, .. } => *len,
            _ => 0,
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        match self {
            Output::File { path, .. } => {
                *self = Output::open(&AuditOutput::File(path.clone()))?;
            }
            Output::Syslog { path, .. } => {
                *self = Output::open(&AuditOutput::Syslog(path.clone()))?;
            }
            Output::Stdout => {}
        }
        Ok(())
    }

    fn rotate(&mut self, keep: usize) -> io::Result<()> {
        let Output::File { path, .. } = self else {
            return Ok(());
        };
        let path = path.clone();
        let numbered = |n: usize| -> PathBuf {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if keep == 0 {
            std::fs::remove_file(&path)?;
        } else {
            match std::fs::remove_file(numbered(keep)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            for n in (1..keep).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&path, numbered(1))?;
        }
        *self = Output::open(&AuditOutput::File(path))?;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("audit log {}: {e}", path.display())))
}

struct Writer {
    output: Output,
    settings: AuditSettings,
    stats: Arc<Stats>,
    batch: Vec<u8>,
    batch_lines: u64,
    last_sync: Instant,
    /// The UTC day of the lines in the current file.
    day: Option<time::Date>,
}

impl Writer {
    fn run(mut self, mut rx: Receiver<Message>) {
        // Idle: block until a message comes.
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            // Busy: take what has gathered, write it, sleep, until a pause.
            while let Some(message) = next {
                self.take(message);
                loop {
                    match rx.try_recv() {
                        Ok(message) => self.take(message),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            self.write_out();
                            self.sync_now();
                            return;
                        }
                    }
                    if self.batch.len() >= MAX_BATCH_BYTES {
                        self.write_out();
                    }
                }
                self.write_out();
                thread::sleep(GATHER);
                next = rx.try_recv().ok();
            }
            self.sync_now();
        }
        self.write_out();
        self.sync_now();
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Line(at, json) => {
                let start = self.batch.len();
                append_line(&mut self.batch, at, &json);
                let line_len = (self.batch.len() - start) as u64;
                self.before_line(start, line_len, at);
                self.batch_lines += 1;
                if self.settings.fsync == Fsync::Always {
                    self.write_out();
                }
            }
            Message::Flush(ack) => {
                self.write_out();
                self.sync_now();
                let _ = ack.send(());
            }
            Message::Reopen => {
                self.write_out();
                self.sync_now();
                if let Err(e) = self.output.reopen() {
                    tracing::error!("cannot reopen the audit log, writing on to the old file: {e}");
                } else {
                    self.day = self.output.day();
                }
            }
        }
    }

    /// Rotates before the line appended at `start` if it would take the
    /// file past the size, or starts a new day.
    fn before_line(&mut self, start: usize, line_len: u64, at: SystemTime) {
        if !matches!(self.output, Output::File { .. }) {
            return;
        }
        let day = OffsetDateTime::from(at).date();
        let before = self.output.len() + start as u64;
        let by_size = self
            .settings
            .rotate_size
            .is_some_and(|max| before > 0 && before + line_len > max);
        let by_day = self.settings.rotate_daily && before > 0 && self.day.is_some_and(|d| d != day);
        if by_size || by_day {
            let line = self.batch.split_off(start);
            self.write_out();
            self.sync_now();
            if let Err(e) = self.output.rotate(self.settings.keep) {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!("cannot rotate the audit log, writing on to the same file: {e}");
            }
            self.batch = line;
        }
        self.day = Some(day);
    }

    /// Writes the batch, retrying until it is written: nothing queued is
    /// dropped.
    fn write_out(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let mut failing = false;
        loop {
            match self.output.write(&self.batch) {
                Ok(()) => break,
                Err(e) => {
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        failing = true;
                        self.stats.writer_failing.store(true, Ordering::Relaxed);
                        tracing::error!(
                            "the audit log cannot be written, retrying every {RETRY:?} (requests meet on_audit_failure once the queue is full): {e}"
                        );
                    }
                    thread::sleep(RETRY);
                }
            }
        }
        if failing {
            self.stats.writer_failing.store(false, Ordering::Relaxed);
            tracing::warn!("the audit log is written again");
        }
        self.stats
            .written
            .fetch_add(self.batch_lines, Ordering::Relaxed);
        self.batch.clear();
        self.batch_lines = 0;
        match self.settings.fsync {
            Fsync::Batch | Fsync::Always => self.sync_now(),
            Fsync::Interval(every) if self.last_sync.elapsed() >= every => self.sync_now(),
            _ => {}
        }
        // What a batch costs the writer, retries included: the write
        // latency the metrics show.
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.stats.write_micros.fetch_add(micros, Ordering::Relaxed);
        self.stats
            .last_write_micros
            .store(micros, Ordering::Relaxed);
    }

    fn sync_now(&mut self) {
        if self.settings.fsync == Fsync::Never {
            return;
        }
        if let Err(e) = self.output.sync() {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("the audit log cannot be synced to disk: {e}");
        }
        self.last_sync = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_schema_time_then_the_events_own_fields() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_440_649_123_456);
        let mut batch = Vec::new();
        append_line(
            &mut batch,
            at,
            br#"{"event":"decision","decision":"allow"}"#,
        );
        append_line(&mut batch, at, b"{}");
        assert_eq!(
            String::from_utf8(batch).unwrap(),
            "{\"schema\":1,\"time\":\"2026-11-23T13:30:49.123456+00:00\",\"event\":\"decision\",\"decision\":\"allow\"}\n\
             {\"schema\":1,\"time\":\"2026-11-23T13:30:49.123456+00:00\"}\n"
        );
    }
}
