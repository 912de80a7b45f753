//! Captures the gate's audit events in a test. The runtime must be
//! current-thread, so every task of the gate runs on the thread whose
//! subscriber this installs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// Every audit event so far, oldest first: the typed event each audit
    /// record carries as its JSON message.
    pub fn audit_events(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .map(|v| {
                serde_json::from_str(v["fields"]["message"].as_str().expect("message"))
                    .expect("the audit message is one JSON event")
            })
            .collect()
    }

    /// The `decision` events so far, oldest first.
    pub fn decisions(&self) -> Vec<Value> {
        self.audit_events()
            .into_iter()
            .filter(|e| e["event"] == "decision")
            .collect()
    }
}

/// Logs of this thread go to the returned `Captured` until the guard drops.
pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_target(true)
        .with_writer(captured.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}
