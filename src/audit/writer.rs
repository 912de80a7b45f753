//! The audit writer of the binaries: a request hands its event line to a
//! bounded queue, without a lock and without waking anyone, and one thread
//! writes whatever has gathered in one `write` every few milliseconds.
//!
//! Why not the tracing formatter: it escapes a message character by
//! character and writes each line with its own system call, which made the
//! audit line over a quarter of the gate's instructions per request.
//!
//! Lossless, as far as this process goes: a full queue makes the request
//! that emits wait for the writer (never drops a line), and the guard that
//! [`install`] returns writes out everything queued when the process ends.
//! Durability beyond the write (fsync policy, rotation, a file of its own) is
//! for the operations work.

use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, SystemTime};

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Lines that may wait for the writer before an emitting request waits too.
/// At 50,000 decisions a second that is over a second of slack.
pub const QUEUE_LINES: usize = 65_536;

/// While lines keep coming the writer sleeps this long between writes, so
/// they gather into one `write` and no request pays for a wake-up.
const GATHER: Duration = Duration::from_millis(5);

/// A batch is written out at this size even while the queue still holds more.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// How long the guard waits for the last lines at exit.
const EXIT_FLUSH: Duration = Duration::from_secs(5);

/// The same shape as tracing's own timestamps, so audit lines and other log
/// lines sort together.
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

enum Message {
    /// The time of the decision and its event as JSON.
    Line(SystemTime, Vec<u8>),
    /// Answered once every line queued before it has been written.
    Flush(SyncSender<()>),
}

/// The sending side; cheap to share, `Send + Sync`.
pub struct AuditWriter {
    queue: SyncSender<Message>,
}

impl AuditWriter {
    /// Starts the writer thread over `out` with room for `capacity` lines.
    pub fn start<W: Write + Send + 'static>(
        out: W,
        capacity: usize,
    ) -> std::io::Result<AuditWriter> {
        let (queue, lines) = mpsc::sync_channel(capacity.max(1));
        thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(lines, out))?;
        Ok(AuditWriter { queue })
    }

    /// Queues one event line; waits while the queue is full.
    pub fn write(&self, at: SystemTime, json: Vec<u8>) {
        // The writer thread only ends when every sender is gone, so this
        // cannot fail while `self` exists.
        let _ = self.queue.send(Message::Line(at, json));
    }

    /// Waits until every line queued so far has been written, at most
    /// `timeout`; false if that did not happen in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = mpsc::sync_channel(1);
        self.queue.send(Message::Flush(ack)).is_ok() && done.recv_timeout(timeout).is_ok()
    }
}

static INSTALLED: OnceLock<AuditWriter> = OnceLock::new();

/// Makes [`crate::audit::emit`] write through a writer over `out` for the
/// rest of the process. Keep the guard until the process ends: dropping it
/// writes out what is still queued.
pub fn install<W: Write + Send + 'static>(out: W) -> std::io::Result<FlushOnDrop> {
    let writer = AuditWriter::start(out, QUEUE_LINES)?;
    if INSTALLED.set(writer).is_err() {
        return Err(std::io::Error::other(
            "an audit writer is already installed",
        ));
    }
    Ok(FlushOnDrop(()))
}

pub(super) fn installed() -> Option<&'static AuditWriter> {
    INSTALLED.get()
}

/// Returned by [`install`].
#[must_use = "dropping it at once would flush at once, not at exit"]
pub struct FlushOnDrop(());

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Some(writer) = INSTALLED.get() {
            if !writer.flush(EXIT_FLUSH) {
                eprintln!("posture-gate: audit lines still queued after {EXIT_FLUSH:?} at exit");
            }
        }
    }
}

fn run<W: Write>(lines: Receiver<Message>, mut out: W) {
    let mut batch = Vec::with_capacity(MAX_BATCH_BYTES);
    let mut failed = false;
    // Idle: block until a line comes (that one send wakes this thread).
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        // Busy: take what has gathered, write it, sleep, until a pause.
        while let Some(message) = next {
            take(message, &mut batch, &mut out, &mut failed);
            loop {
                match lines.try_recv() {
                    Ok(message) => take(message, &mut batch, &mut out, &mut failed),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        write_out(&mut out, &mut batch, &mut failed);
                        return;
                    }
                }
                if batch.len() >= MAX_BATCH_BYTES {
                    write_out(&mut out, &mut batch, &mut failed);
                }
            }
            write_out(&mut out, &mut batch, &mut failed);
            thread::sleep(GATHER);
            next = lines.try_recv().ok();
        }
    }
    write_out(&mut out, &mut batch, &mut failed);
}

fn take<W: Write>(message: Message, batch: &mut Vec<u8>, out: &mut W, failed: &mut bool) {
    match message {
        Message::Line(at, json) => append_line(batch, at, &json),
        Message::Flush(ack) => {
            write_out(out, batch, failed);
            let _ = ack.send(());
        }
    }
}

/// `<timestamp>  INFO audit: <event JSON>`: the line tracing wrote before
/// this writer existed, so what reads the log needs no change.
fn append_line(batch: &mut Vec<u8>, at: SystemTime, json: &[u8]) {
    let when = OffsetDateTime::from(at);
    if when.format_into(batch, TIMESTAMP).is_err() {
        // Only a date beyond year 9999 gets here; the line still counts.
        batch.extend_from_slice(b"0000-00-00T00:00:00.000000Z");
    }
    batch.extend_from_slice(b"  INFO audit: ");
    batch.extend_from_slice(json);
    batch.push(b'\n');
}

fn write_out<W: Write>(out: &mut W, batch: &mut Vec<u8>, failed: &mut bool) {
    if batch.is_empty() {
        return;
    }
    let result = out.write_all(batch).and_then(|()| out.flush());
    batch.clear();
    match result {
        Err(e) if !*failed => {
            // Said once, not per batch; the audit output itself is what failed.
            *failed = true;
            tracing::error!("the audit log cannot be written, lines are being lost: {e}");
        }
        Err(_) => {}
        Ok(()) if *failed => {
            *failed = false;
            tracing::warn!("the audit log is written again");
        }
        Ok(()) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An output that keeps what was written and counts the writes.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut m = self.0.lock().unwrap();
            m.0.extend_from_slice(buf);
            m.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Memory {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
        }
        fn writes(&self) -> usize {
            self.0.lock().unwrap().1
        }
    }

    #[test]
    fn a_line_is_the_timestamp_the_level_the_target_and_the_event() {
        let out = Memory::default();
        let writer = AuditWriter::start(out.clone(), 8).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_440_649_123_456);
        writer.write(at, br#"{"event":"decision"}"#.to_vec());
        assert!(writer.flush(Duration::from_secs(10)));
        assert_eq!(
            out.text(),
            "2026-11-23T13:30:49.123456Z  INFO audit: {\"event\":\"decision\"}\n"
        );
    }

    #[test]
    fn a_full_queue_makes_senders_wait_and_no_line_is_lost_or_reordered() {
        // A queue of 4 lines against 4 threads of 5,000 lines each: nearly
        // every send meets a full queue.
        let out = Memory::default();
        let writer = Arc::new(AuditWriter::start(out.clone(), 4).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = Arc::clone(&writer);
                thread::spawn(move || {
                    for i in 0..5_000 {
                        writer.write(
                            SystemTime::now(),
                            format!("{{\"t\":{t},\"i\":{i}}}").into_bytes(),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(writer.flush(Duration::from_secs(30)));
        let text = out.text();
        let mut next = [0u64; 4];
        for line in text.lines() {
            let json = line.split_once("  INFO audit: ").unwrap().1;
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let t = v["t"].as_u64().unwrap() as usize;
            assert_eq!(v["i"].as_u64().unwrap(), next[t], "thread {t} out of order");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4], "every line of every thread");
    }

    #[test]
    fn lines_that_arrive_together_go_out_in_fewer_writes() {
        let out = Memory::default();
        let writer = AuditWriter::start(out.clone(), QUEUE_LINES).unwrap();
        for i in 0..1_000 {
            writer.write(SystemTime::now(), format!("{{\"i\":{i}}}").into_bytes());
        }
        assert!(writer.flush(Duration::from_secs(10)));
        assert_eq!(out.text().lines().count(), 1_000);
        assert!(
            out.writes() < 1_000,
            "{} writes for 1,000 lines",
            out.writes()
        );
    }

    #[test]
    fn the_thread_writes_what_is_queued_when_the_last_sender_goes() {
        let out = Memory::default();
        let writer = AuditWriter::start(out.clone(), 16).unwrap();
        for i in 0..10 {
            writer.write(SystemTime::now(), format!("{{\"i\":{i}}}").into_bytes());
        }
        drop(writer);
        // The thread is not joined; wait for it to finish on its own.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.text().lines().count() < 10 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(out.text().lines().count(), 10);
    }
}
