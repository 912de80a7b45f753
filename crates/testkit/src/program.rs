//! What the harnesses of real servers (nginx, Caddy) share: a free loopback
//! port, waiting until the program serves, a clear failure when it is not
//! installed, and configs made from the example files in `config/`.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a program may take to serve before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a lost race for a port is retried with another port.
const PORT_ATTEMPTS: usize = 5;

/// A free loopback port: bound on port 0, read and released. The program
/// binds it a moment later; if something else took it in between, the
/// program fails to bind and [`start_on_free_port`] tries another one.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A program that a test starts, for the messages of a failing start.
pub(crate) struct Program {
    /// The executable, e.g. `/usr/sbin/nginx`.
    pub path: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
    /// What needs it, e.g. "the forward-auth tests with nginx".
    pub needed_by: &'static str,
}

/// What a start attempt came to.
pub(crate) enum Attempt {
    /// Serving on the port.
    Serving(Child),
    /// The port was taken before the program bound it: try another.
    PortTaken,
}

impl Program {
    /// Starts the program on a free port (`spawn(port)`), retrying with
    /// another port when it lost the port to someone else, until `ready`
    /// says it serves and the port accepts connections. Panics with the
    /// program's log (`log()`) when it exits or does not serve in time.
    pub fn start_on_free_port(
        &self,
        mut spawn: impl FnMut(u16) -> std::io::Result<Child>,
        ready: impl Fn(&Child) -> bool,
        log: impl Fn() -> String,
    ) -> (Child, u16) {
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let child = spawn(port).unwrap_or_else(|e| self.missing(e));
            match self.wait_serving(child, port, &ready, &log) {
                Attempt::Serving(child) => return (child, port),
                Attempt::PortTaken => continue,
            }
        }
        panic!(
            "{}: no free port in {PORT_ATTEMPTS} attempts: {}",
            self.path,
            log()
        );
    }

    fn missing(&self, e: std::io::Error) -> ! {
        if e.kind() == std::io::ErrorKind::NotFound {
            panic!(
                "cannot start {}: {e}. {} need it: install the Debian package {} \
                 (scripts/test-all does)",
                self.path, self.needed_by, self.package
            );
        }
        panic!("cannot start {}: {e}", self.path);
    }

    fn wait_serving(
        &self,
        mut child: Child,
        port: u16,
        ready: &impl Fn(&Child) -> bool,
        log: &impl Fn() -> String,
    ) -> Attempt {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = child.try_wait() {
                let log = log();
                if log.to_ascii_lowercase().contains("address already in use") {
                    return Attempt::PortTaken;
                }
                panic!("{} exited with {status} before serving: {log}", self.path);
            }
            // `ready` first: the port may accept connections of another
            // process that took it, while this one fails to bind.
            if ready(&child)
                && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            {
                return Attempt::Serving(child);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{} did not serve on {addr} within {} s: {}",
            self.path,
            START_TIMEOUT.as_secs(),
            log()
        );
    }
}

/// Stops a child: SIGTERM (through `/bin/sh`'s `kill`, so that a master
/// process stops its workers), then SIGKILL if it has not exited within
/// five seconds.
pub(crate) fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", child.id()))
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The text of an example config file with some literals replaced, e.g.
/// the example's listen address by a test's port. Every literal must be
/// in the file: an example that drifts from what the test replaces fails
/// the test instead of being run half-adapted.
pub fn from_example(path: &Path, replacements: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the example {}: {e}", path.display()));
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "the example {} no longer contains {from:?}, which the test replaces; \
             change the test with the example",
            path.display()
        );
        text = text.replace(from, to);
    }
    text
}

/// The example config files of the repository (`config/` at its root).
pub fn example_path(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(relative)
}
