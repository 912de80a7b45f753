//! A real Caddy (Debian's package of that name, 2.6 in Debian 12,
//! `/usr/bin/caddy`) started by a test: `caddy run` in the foreground with a
//! Caddyfile, its HOME, XDG data and config directories and its storage in a
//! temp dir of its own, no admin endpoint, no automatic HTTPS (no ACME, no
//! port 80 redirects), listening on loopback only, HTTP/1.1 and HTTP/2 (no
//! UDP), on a free port, and killed when dropped. Never the system service.
//!
//! The test gives the site blocks (e.g. `config/forward-auth/Caddyfile`
//! with its addresses replaced); the global options block is made here.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::program::{self, Program};

/// The program the tests start; `scripts/test-all` installs its package.
pub const PROGRAM: &str = "/usr/bin/caddy";

const CADDY: Program = Program {
    path: PROGRAM,
    package: "caddy",
    needed_by: "The forward-auth tests with Caddy",
};

/// A running Caddy; see the module docs.
pub struct Caddy {
    child: Option<Child>,
    /// The port the site blocks listen on (on 127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Caddy {
    /// Starts Caddy with `site(port)` after its global options; the site
    /// listens on `<host>:<port>`. Returns once Caddy serves there.
    pub fn start(site: impl Fn(u16) -> String) -> Caddy {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let log = root.join("caddy.log");
        let (child, port) = CADDY.start_on_free_port(
            |port| {
                let caddyfile = root.join("Caddyfile");
                std::fs::write(&caddyfile, format!("{}\n{}", global(&root), site(port)))
                    .expect("write Caddyfile");
                let out = std::fs::File::create(&log).expect("create caddy.log");
                let err = out.try_clone().expect("clone caddy.log");
                Command::new(PROGRAM)
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&caddyfile)
                    .current_dir(&root)
                    .env("HOME", root.join("home"))
                    .env("XDG_DATA_HOME", root.join("home/data"))
                    .env("XDG_CONFIG_HOME", root.join("home/config"))
                    .stdin(Stdio::null())
                    .stdout(out)
                    .stderr(err)
                    .spawn()
            },
            // Logged once every listener is bound and the config is in use.
            |_| {
                std::fs::read_to_string(&log)
                    .is_ok_and(|l| l.contains("\"msg\":\"serving initial configuration\""))
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        Caddy {
            child: Some(child),
            port,
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Caddy's log (JSON lines), for the messages of a failing test.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default()
    }

    /// The directory of this Caddy's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The global options: nothing outside `root`, nothing but loopback TCP.
fn global(root: &Path) -> String {
    format!(
        "{{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n\tstorage file_system {}\n\
         \tservers {{\n\t\tprotocols h1 h2\n\t}}\n}}\n",
        root.join("data").display()
    )
}

impl Drop for Caddy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            program::stop(&mut child);
        }
    }
}
