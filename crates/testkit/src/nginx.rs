//! A real nginx (Debian's package of that name, `/usr/sbin/nginx`) started
//! by a test: in the foreground (`daemon off`), with its config, pid file,
//! logs and temp paths in a temp dir of its own, on a free loopback port,
//! one worker, and stopped when dropped. Never the system service.
//!
//! The test gives the part of the config that goes into `http {}` (server
//! and upstream blocks, e.g. `config/forward-auth/nginx.conf` with its
//! addresses replaced); the rest is made here.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::program::{self, Program};

/// The program the tests start; `scripts/test-all` installs its package.
pub const PROGRAM: &str = "/usr/sbin/nginx";

const NGINX: Program = Program {
    path: PROGRAM,
    package: "nginx",
    needed_by: "The forward-auth tests with nginx",
};

/// A running nginx; see the module docs.
pub struct Nginx {
    child: Option<Child>,
    /// The port of the server block's `listen` (on 127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `site(port)` included in `http {}`; the site
    /// listens on `127.0.0.1:<port>`. Returns once nginx serves there.
    pub fn start(site: impl Fn(u16) -> String) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let pid_file = root.join("nginx.pid");
        let log = root.join("error.log");
        // nginx makes the last level of its temp paths, not the ones above.
        std::fs::create_dir_all(root.join("tmp")).expect("create tmp");
        let (child, port) = NGINX.start_on_free_port(
            |port| {
                let _ = std::fs::remove_file(&pid_file);
                let _ = std::fs::remove_file(&log);
                std::fs::write(root.join("site.conf"), site(port)).expect("write site.conf");
                std::fs::write(root.join("nginx.conf"), main_conf(&root))
                    .expect("write nginx.conf");
                Command::new(PROGRAM)
                    .arg("-p")
                    .arg(&root)
                    .arg("-c")
                    .arg(root.join("nginx.conf"))
                    .args(["-g", "daemon off;"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(
                        std::fs::File::create(root.join("stderr.log")).expect("create stderr.log"),
                    )
                    .spawn()
            },
            // nginx writes its pid file once it has bound its ports.
            |child| {
                std::fs::read_to_string(&pid_file)
                    .is_ok_and(|pid| pid.trim() == child.id().to_string())
            },
            || logs(&root),
        );
        Nginx {
            child: Some(child),
            port,
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// nginx's error log and stderr, for the messages of a failing test.
    pub fn log(&self) -> String {
        logs(self.dir.path())
    }

    /// The access log (one line per request, nginx's `combined` format).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The directory of this nginx's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn logs(root: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
    format!(
        "error.log:\n{}\nstderr:\n{}",
        read("error.log"),
        read("stderr.log")
    )
}

/// The main config: everything nginx would otherwise take from /etc/nginx
/// or write under /var, in `root`.
fn main_conf(root: &Path) -> String {
    let p = |name: &str| -> PathBuf { root.join(name) };
    // As root, nginx runs its worker as `nobody`, who could not enter the
    // temp dir (mode 0700) for proxy temp files: run it as the owner.
    let user = match std::fs::metadata(root) {
        Ok(m) if m.uid() == 0 => "user root;\n",
        _ => "",
    };
    format!(
        r#"{user}worker_processes 1;
pid {pid};
error_log {error_log} info;
events {{
    worker_connections 512;
}}
http {{
    access_log {access_log};
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {site};
}}
"#,
        pid = p("nginx.pid").display(),
        error_log = p("error.log").display(),
        access_log = p("access.log").display(),
        tmp = p("tmp").display(),
        site = p("site.conf").display(),
    )
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            program::stop(&mut child);
        }
    }
}
