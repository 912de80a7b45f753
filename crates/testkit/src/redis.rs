//! A real `redis-server` (Debian's package of that name) for the tests of
//! the shared store: started by the test on a free loopback port with its
//! own temporary directory, no persistence, never as a system service, and
//! killed when dropped. Stopped and started again on the same port for the
//! outage tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program the tests need; `scripts/test-all` installs its package.
pub const PROGRAM: &str = "redis-server";

/// TLS for the server: its certificate and key, and the CA (which also
/// verifies client certificates if a client offers one).
pub struct RedisTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// A running `redis-server`; see the module docs.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    tls: Option<RedisTls>,
    password: Option<String>,
}

/// A free loopback port: bound, read and released (the server binds it a
/// moment later; another test taking it in between is very unlikely).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl RedisServer {
    /// A plain server without a password.
    pub fn start() -> RedisServer {
        RedisServer::start_with(None, None)
    }

    /// A server with TLS only (no plain port) and/or a password for the
    /// `default` user.
    pub fn start_with(tls: Option<RedisTls>, password: Option<&str>) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            tls,
            password: password.map(str::to_string),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = self.dir.path().join("redis.log");
        let _ = std::fs::remove_file(&log);
        let port = self.port.to_string();
        let mut cmd = Command::new(PROGRAM);
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log);
        match &self.tls {
            None => {
                cmd.args(["--port", &port]);
            }
            Some(tls) => {
                cmd.args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca);
            }
        }
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {PROGRAM}: {e}. The shared-store tests need it: install the \
                     Debian package redis-server (scripts/test-all does)"
                )
            });
        self.child = Some(child);
        wait_ready(&log, self.child.as_mut().unwrap());
    }

    /// `redis://127.0.0.1:<port>` (or `rediss://localhost:<port>` with TLS,
    /// the name the test server certificate covers).
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://localhost:{}", self.port),
        }
    }

    /// Kills the server (as a crash or a network cut would look).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (no persistence).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// One command over a plain connection (not for a TLS server), in the
    /// protocol's own framing; the first line of the reply, e.g. `+OK`.
    pub fn command(&self, args: &[&[u8]]) -> String {
        assert!(self.tls.is_none(), "command() speaks plain TCP only");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut out = Vec::new();
        if let Some(p) = &self.password {
            encode(&mut out, &[b"AUTH", p.as_bytes()]);
        }
        encode(&mut out, args);
        stream.write_all(&out).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        if self.password.is_some() {
            reader.read_line(&mut line).unwrap();
            line.clear();
        }
        reader.read_line(&mut line).unwrap();
        // A bulk reply: the line after its length.
        if let Some(len) = line
            .strip_prefix('$')
            .and_then(|l| l.trim().parse::<usize>().ok())
        {
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body).unwrap();
            body.truncate(len);
            return String::from_utf8_lossy(&body).into_owned();
        }
        line.trim_end().to_string()
    }

    /// The server's log, for messages of a failing test.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn wait_ready(log: &Path, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if std::fs::read_to_string(log).is_ok_and(|l| l.contains("Ready to accept connections")) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{PROGRAM} exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{PROGRAM} not ready within 10 s: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
