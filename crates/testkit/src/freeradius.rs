//! The real 802.1X chain of issue 17 for the tests: Debian's FreeRADIUS 3.2
//! (packages `freeradius` and `freeradius-rest`) started by the test in the
//! foreground on free loopback ports, never as the system service;
//! `eapol_test` (package `eapoltest`) as the supplicant with a device
//! certificate; `radclient` (package `freeradius-utils`) as a NAS sending
//! accounting.
//!
//! The raddb is generated into a temp dir from the example files in
//! `config/freeradius/` (the rest module, the EAP-TLS module and the site),
//! with only the gate's URL, the ports and, when asked, the commented
//! quarantine alternative substituted. Each substitution must match the
//! example exactly as often as expected, so an example that drifts fails
//! the tests instead of being tested in a form nobody ships. Only
//! radiusd.conf and the RADIUS client (the NAS: eapol_test and radclient on
//! 127.0.0.1) are written here: they are the installation's, not ours.
//!
//! A missing program fails the test with the Debian package to install;
//! the tests never skip.

use std::convert::Infallible;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The RADIUS server; `freeradius-rest` adds its rlm_rest.
pub const PROGRAM: &str = "freeradius";
/// The supplicant, Debian package `eapoltest`.
pub const EAPOL_TEST: &str = "eapol_test";
/// The NAS stand-in for accounting, Debian package `freeradius-utils`.
pub const RADCLIENT: &str = "radclient";

/// The shared secret between FreeRADIUS and its one client (127.0.0.1).
pub const SECRET: &str = "testing123";

/// What the generated raddb is made of.
pub const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/freeradius");

/// How long FreeRADIUS may take to start, eapol_test to finish.
const GUARD: Duration = Duration::from_secs(30);

/// What the raddb is generated for.
pub struct RadiusSetup {
    /// The gate's NAC listener, e.g. `http://127.0.0.1:40123` (no path: the
    /// example's `/.well-known/posture-gate/nac` is kept).
    pub nac_url: String,
    /// A directory with `server.pem`, `server.key` and `ca.pem` (what
    /// `posture-gate pki init` and [`crate::TestPki`] write).
    pub pki_dir: PathBuf,
    /// `Some(vlan)`: the site's commented alternative is switched on, a
    /// gate that cannot be reached puts the device in this VLAN; `None`:
    /// the shipped default, reject.
    pub quarantine_on_failure: Option<u16>,
    /// `-X` (full debug, single-threaded: a useful log when a test fails)
    /// or `-f` (threads, no debug: for the benchmark).
    pub debug: bool,
    /// `Some`: the rest module's commented `tls` section is switched on
    /// with these files (for an `https://` NAC URL).
    pub rest_tls: Option<RestTls>,
}

/// The files of the rest module's `tls` section.
pub struct RestTls {
    /// The CA that issued the gate's NAC certificate.
    pub ca: PathBuf,
    /// FreeRADIUS's client certificate and key, for a gate that knows its
    /// RADIUS servers by certificate.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl RadiusSetup {
    pub fn new(nac_url: impl Into<String>, pki_dir: &Path) -> RadiusSetup {
        RadiusSetup {
            nac_url: nac_url.into(),
            pki_dir: pki_dir.to_path_buf(),
            quarantine_on_failure: None,
            debug: true,
            rest_tls: None,
        }
    }
}

/// A running `freeradius`; killed when dropped.
pub struct FreeRadius {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub auth_port: u16,
    pub acct_port: u16,
    runs: AtomicU32,
}

/// A free loopback UDP port: bound, read and released (FreeRADIUS binds it
/// a moment later).
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

impl FreeRadius {
    /// Generates the raddb and starts FreeRADIUS on two free UDP ports.
    pub fn start(setup: &RadiusSetup) -> FreeRadius {
        let dir = tempfile::tempdir().unwrap();
        let (auth_port, acct_port) = (free_udp_port(), free_udp_port());
        write_raddb(dir.path(), setup, auth_port, acct_port);
        let log = std::fs::File::create(dir.path().join("radiusd.log")).unwrap();
        let mut cmd = Command::new(PROGRAM);
        cmd.arg(if setup.debug { "-X" } else { "-f" });
        if !setup.debug {
            cmd.args(["-l", "stdout"]);
        }
        let child = cmd
            .arg("-d")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {PROGRAM}: {e}. The 802.1X tests need Debian's FreeRADIUS: \
                     install the packages freeradius and freeradius-rest (scripts/test-all does)"
                )
            });
        let mut radius = FreeRadius {
            child: Some(child),
            dir,
            auth_port,
            acct_port,
            runs: AtomicU32::new(0),
        };
        radius.wait_ready();
        radius
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < GUARD {
            if self.log().contains("Ready to process requests") {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = self.log();
                let hint = if log.contains("rlm_rest") {
                    " (rlm_rest is in the Debian package freeradius-rest)"
                } else {
                    ""
                };
                panic!("{PROGRAM} exited with {status}{hint}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{PROGRAM} not ready within {GUARD:?}:\n{}", self.log());
    }

    /// The generated configuration directory.
    pub fn raddb(&self) -> &Path {
        self.dir.path()
    }

    /// FreeRADIUS's output so far, for the messages of a failing test.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radiusd.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn next_run(&self) -> u32 {
        self.runs.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes radiusd.conf and the example files, substituted, into `dir`.
pub fn write_raddb(dir: &Path, setup: &RadiusSetup, auth_port: u16, acct_port: u16) {
    for sub in ["mods-enabled", "sites-enabled", "certs", "run", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    // The eap module names its files ${certdir}/posture-gate/…, as installed.
    std::os::unix::fs::symlink(&setup.pki_dir, dir.join("certs/posture-gate")).unwrap();
    std::fs::write(dir.join("radiusd.conf"), radiusd_conf(dir)).unwrap();

    let rest = example("mods-available/posture-gate");
    let base = setup.nac_url.trim_end_matches('/');
    let rest = replace_exact(
        &rest,
        "mods-available/posture-gate",
        "posture_gate_url = \"http://127.0.0.1:9091/",
        &format!("posture_gate_url = \"{base}/"),
        1,
    );
    let rest = match &setup.rest_tls {
        None => rest,
        Some(tls) => rest_tls_section(&rest, tls),
    };
    std::fs::write(dir.join("mods-enabled/posture-gate"), rest).unwrap();

    let eap = example("mods-available/posture-gate-eap");
    std::fs::write(dir.join("mods-enabled/posture-gate-eap"), eap).unwrap();

    std::fs::write(
        dir.join("sites-enabled/posture-gate"),
        site_text(setup, auth_port, acct_port),
    )
    .unwrap();
}

/// The example site with loopback, the test's ports and, when asked, the
/// quarantine alternative in place of the plain call.
pub fn site_text(setup: &RadiusSetup, auth_port: u16, acct_port: u16) -> String {
    const FILE: &str = "sites-available/posture-gate";
    let site = example(FILE);
    let site = replace_exact(&site, FILE, "ipaddr = *", "ipaddr = 127.0.0.1", 2);
    let site = replace_exact(
        &site,
        FILE,
        "port = 1812\n",
        &format!("port = {auth_port}\n"),
        1,
    );
    let site = replace_exact(
        &site,
        FILE,
        "port = 1813\n",
        &format!("port = {acct_port}\n"),
        1,
    );
    match setup.quarantine_on_failure {
        None => site,
        Some(vlan) => quarantine_alternative(&site, vlan),
    }
}

/// The rest module with its commented `tls` lines switched on, pointing at
/// the test's files.
fn rest_tls_section(rest: &str, tls: &RestTls) -> String {
    const FILE: &str = "mods-available/posture-gate";
    let lines = [
        (
            "#\t\tca_info_file = ${certdir}/posture-gate/ca.pem\n",
            format!("\t\tca_info_file = {}\n", tls.ca.display()),
        ),
        (
            "#\t\tcertificate_file = ${certdir}/posture-gate/radius-client.pem\n",
            format!("\t\tcertificate_file = {}\n", tls.cert.display()),
        ),
        (
            "#\t\tprivate_key_file = ${certdir}/posture-gate/radius-client.key\n",
            format!("\t\tprivate_key_file = {}\n", tls.key.display()),
        ),
        (
            "#\t\tcheck_cert = yes\n",
            "\t\tcheck_cert = yes\n".to_owned(),
        ),
        (
            "#\t\tcheck_cert_cn = yes\n",
            "\t\tcheck_cert_cn = yes\n".to_owned(),
        ),
    ];
    lines.iter().fold(rest.to_owned(), |text, (from, to)| {
        replace_exact(&text, FILE, from, to, 1)
    })
}

/// Removes post-auth's plain `posture_gate` call and uncomments the block
/// the site shows for quarantine on failure, with this VLAN.
fn quarantine_alternative(site: &str, vlan: u16) -> String {
    const FILE: &str = "sites-available/posture-gate";
    let post_auth = site
        .find("\tpost-auth {\n")
        .unwrap_or_else(|| panic!("config/freeradius/{FILE}: no post-auth section"));
    let call = "\n\t\tposture_gate\n";
    let call_at = post_auth
        + site[post_auth..].find(call).unwrap_or_else(|| {
            panic!("config/freeradius/{FILE}: post-auth does not call posture_gate")
        });
    let start_marker = "#\t\tposture_gate {\n";
    let start = site[call_at..]
        .find(start_marker)
        .map(|i| call_at + i)
        .unwrap_or_else(|| {
            panic!("config/freeradius/{FILE}: the commented quarantine alternative is gone")
        });
    let block_end = site[start..]
        .find("\n\n")
        .map(|i| start + i)
        .unwrap_or(site.len());
    let block = &site[start..block_end];
    let uncommented: String = block
        .lines()
        .map(|l| {
            l.strip_prefix('#').unwrap_or_else(|| {
                panic!("config/freeradius/{FILE}: the quarantine alternative has an uncommented line {l:?}")
            })
        })
        .collect::<Vec<_>>()
        .join("\n");
    let uncommented = replace_exact(
        &uncommented,
        FILE,
        "Tunnel-Private-Group-Id := \"999\"",
        &format!("Tunnel-Private-Group-Id := \"{vlan}\""),
        1,
    );
    format!(
        "{}\n{}{}{}",
        &site[..call_at],
        &site[call_at + call.len()..start],
        uncommented,
        &site[block_end..]
    )
}

fn example(name: &str) -> String {
    let path = Path::new(EXAMPLES).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced, which must occur exactly `count` times.
fn replace_exact(text: &str, file: &str, from: &str, to: &str, count: usize) -> String {
    let found = text.matches(from).count();
    assert_eq!(
        found, count,
        "config/freeradius/{file}: expected {from:?} {count} time(s), found it {found} time(s); \
         the example and the tests' raddb generator (posture-testkit freeradius.rs) disagree"
    );
    text.replace(from, to)
}

/// The installation's part: paths into the temp dir, logging to stdout,
/// the one client, the modules the site's `reject`/`ok` need.
fn radiusd_conf(dir: &Path) -> String {
    format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
raddbdir = {dir}
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
certdir = ${{confdir}}/certs
cadir = ${{confdir}}/certs
logdir = ${{raddbdir}}/log
radacctdir = ${{logdir}}/radacct
run_dir = ${{raddbdir}}/run
db_dir = ${{raddbdir}}
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/radiusd.pid
name = freeradius
correct_escapes = true
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
hostname_lookups = no
log {{
	destination = stdout
	colourise = no
	stripped_names = no
	auth = no
}}
security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}}
# As in Debian's radiusd.conf; with "no" every request carries a
# Module-Failure-Message about proxying into the gate's body.
proxy_requests = yes
proxy server {{
	default_fallback = no
}}
client localhost {{
	ipaddr = 127.0.0.1
	secret = {SECRET}
	require_message_authenticator = yes
	nas_type = other
}}
thread pool {{
	start_servers = 4
	max_servers = 16
	min_spare_servers = 2
	max_spare_servers = 8
}}
modules {{
	always ok {{
		rcode = ok
	}}
	always reject {{
		rcode = reject
	}}
	$INCLUDE mods-enabled/
}}
$INCLUDE sites-enabled/
"#,
        dir = dir.display()
    )
}

/// A device asking through `eapol_test`, as a switch port would carry it.
pub struct Eapol {
    pub identity: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// What the supplicant trusts for FreeRADIUS's server certificate.
    pub ca: PathBuf,
    /// Calling-Station-Id, as `02:00:00:00:00:01`.
    pub mac: String,
    pub nas_port: Option<u32>,
    pub nas_identifier: Option<String>,
    pub nas_port_id: Option<String>,
}

impl Eapol {
    pub fn new(identity: &str, cert: &Path, key: &Path, ca: &Path) -> Eapol {
        Eapol {
            identity: identity.to_owned(),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            ca: ca.to_path_buf(),
            mac: "02:00:00:00:00:01".to_owned(),
            nas_port: Some(7),
            nas_identifier: Some("switch-1".to_owned()),
            nas_port_id: Some("GigabitEthernet1/0/7".to_owned()),
        }
    }

    /// Runs one EAP-TLS authentication against `radius`.
    pub async fn run(&self, radius: &FreeRadius) -> EapolOutcome {
        let conf = radius
            .raddb()
            .join(format!("eapol-{}.conf", radius.next_run()));
        std::fs::write(
            &conf,
            format!(
                "network={{\n\tkey_mgmt=IEEE8021X\n\teap=TLS\n\teapol_flags=0\n\
                 \tidentity={identity:?}\n\tca_cert={ca:?}\n\tclient_cert={cert:?}\n\
                 \tprivate_key={key:?}\n}}\n",
                identity = self.identity,
                ca = self.ca.display().to_string(),
                cert = self.cert.display().to_string(),
                key = self.key.display().to_string(),
            ),
        )
        .unwrap();
        let mut cmd = tokio::process::Command::new(EAPOL_TEST);
        cmd.arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", &radius.auth_port.to_string()])
            .args(["-s", SECRET, "-t", "10", "-M", &self.mac]);
        if let Some(port) = self.nas_port {
            cmd.arg(format!("-N5:d:{port}"));
        }
        if let Some(id) = &self.nas_identifier {
            cmd.arg(format!("-N32:s:{id}"));
        }
        if let Some(id) = &self.nas_port_id {
            cmd.arg(format!("-N87:s:{id}"));
        }
        let output = run_guarded(cmd, EAPOL_TEST, "eapoltest", None).await;
        EapolOutcome::parse(output.0, output.1)
    }
}

/// Runs `cmd` under [`GUARD`], with `stdin` if given; exit success and
/// stdout plus stderr.
async fn run_guarded(
    mut cmd: tokio::process::Command,
    program: &str,
    package: &str,
    stdin: Option<String>,
) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {program}: {e}. The 802.1X tests need it: install the Debian package \
             {package} (scripts/test-all does)"
        )
    });
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    let output = tokio::time::timeout(GUARD, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within {GUARD:?}"))
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// One attribute of the last RADIUS packet eapol_test received.
#[derive(Debug, Clone)]
pub struct ReplyAttribute {
    pub number: u8,
    pub name: String,
    pub value: Vec<u8>,
}

/// What eapol_test reported.
#[derive(Debug)]
pub struct EapolOutcome {
    /// Exit status 0: eapol_test's "SUCCESS" (EAP-Success in an
    /// Access-Accept, keys matching).
    pub success: bool,
    /// The code of the last packet received: 2 Access-Accept, 3 Reject.
    pub code: Option<u8>,
    pub attributes: Vec<ReplyAttribute>,
    pub output: String,
}

impl EapolOutcome {
    /// Reads the dump of the last received packet:
    /// `RADIUS message: code=2 (Access-Accept) ...`, then per attribute
    /// `   Attribute 81 (Tunnel-Private-Group-Id) length=4` and
    /// `      Value: 3432` (hex) or `      Value: 'text'`.
    pub fn parse(success: bool, output: String) -> EapolOutcome {
        let mut code = None;
        let mut attributes = Vec::new();
        if let Some(at) = output.rfind("Received RADIUS message") {
            let mut lines = output[at..].lines().skip(1).peekable();
            if let Some(header) = lines.next() {
                code = header
                    .split("code=")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|c| c.parse().ok());
            }
            while let Some(line) = lines.next() {
                let Some(rest) = line.trim_start().strip_prefix("Attribute ") else {
                    break;
                };
                let number = rest.split(' ').next().and_then(|n| n.parse().ok());
                let name = rest
                    .split_once('(')
                    .and_then(|(_, r)| r.split_once(')'))
                    .map(|(n, _)| n.to_owned())
                    .unwrap_or_default();
                let value = match lines.peek() {
                    Some(v) if v.trim_start().starts_with("Value: ") => {
                        let v = lines.next().unwrap_or_default();
                        decode_value(v.trim_start().trim_start_matches("Value: "))
                    }
                    _ => Vec::new(),
                };
                if let Some(number) = number {
                    attributes.push(ReplyAttribute {
                        number,
                        name,
                        value,
                    });
                }
            }
        }
        EapolOutcome {
            success,
            code,
            attributes,
            output,
        }
    }

    pub fn accepted(&self) -> bool {
        self.success && self.code == Some(2)
    }

    pub fn rejected(&self) -> bool {
        !self.success && self.code == Some(3)
    }

    pub fn attribute(&self, number: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|a| a.number == number)
            .map(|a| a.value.as_slice())
    }

    /// Tunnel-Private-Group-Id (81), without a tag byte.
    pub fn vlan(&self) -> Option<String> {
        self.attribute(81)
            .map(|v| String::from_utf8_lossy(untagged(v)).into_owned())
    }

    /// Tunnel-Type (64): 13 is VLAN.
    pub fn tunnel_type(&self) -> Option<u32> {
        self.attribute(64).and_then(tagged_integer)
    }

    /// Tunnel-Medium-Type (65): 6 is IEEE-802.
    pub fn tunnel_medium_type(&self) -> Option<u32> {
        self.attribute(65).and_then(tagged_integer)
    }

    pub fn reply_message(&self) -> Option<String> {
        self.attribute(18)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn class(&self) -> Option<Vec<u8>> {
        self.attribute(25).map(<[u8]>::to_vec)
    }

    /// The EAP code in EAP-Message (79): 3 Success, 4 Failure.
    pub fn eap_code(&self) -> Option<u8> {
        self.attribute(79).and_then(|v| v.first().copied())
    }

    /// MS-MPPE-Send-Key or -Recv-Key (Vendor-Specific, Microsoft 311).
    pub fn has_mppe_keys(&self) -> bool {
        self.attributes
            .iter()
            .any(|a| a.number == 26 && a.value.starts_with(&[0, 0, 1, 0x37]))
    }
}

/// RFC 2868 tunnel attributes may start with a tag (0x01-0x1f).
fn untagged(v: &[u8]) -> &[u8] {
    match v.first() {
        Some(t) if *t < 0x20 => &v[1..],
        _ => v,
    }
}

/// A tagged integer: one tag octet and three value octets.
fn tagged_integer(v: &[u8]) -> Option<u32> {
    (v.len() == 4).then(|| u32::from_be_bytes([0, v[1], v[2], v[3]]))
}

/// eapol_test prints text quoted (with `\xNN`, `\\`, `\"`, `\n`, `\r`,
/// `\t`, `\e` escapes) and everything else as hex.
fn decode_value(v: &str) -> Vec<u8> {
    if let Some(text) = v.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                let (byte, used) = match bytes[i + 1] {
                    b'n' => (b'\n', 2),
                    b'r' => (b'\r', 2),
                    b't' => (b'\t', 2),
                    b'e' => (0x1b, 2),
                    b'x' if i + 3 < bytes.len() => (
                        std::str::from_utf8(&bytes[i + 2..i + 4])
                            .ok()
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                            .unwrap_or(b'?'),
                        4,
                    ),
                    other => (other, 2),
                };
                out.push(byte);
                i += used;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        return out;
    }
    hex::decode(v).unwrap_or_else(|_| v.as_bytes().to_vec())
}

/// An Accounting-Request as a NAS sends it.
pub struct Accounting {
    /// `Start`, `Interim-Update` or `Stop`.
    pub status: &'static str,
    pub session_id: String,
    pub nas_ip: String,
    pub nas_port: u32,
    pub calling_station_id: String,
    pub user_name: String,
    /// The Class of the Access-Accept, echoed (RFC 2865 §5.25).
    pub class: Option<Vec<u8>>,
}

impl Accounting {
    fn attribute_lines(&self) -> String {
        let mut text = format!(
            "Acct-Status-Type = {}\nAcct-Session-Id = {:?}\nNAS-IP-Address = {}\nNAS-Port = {}\n\
             Calling-Station-Id = {:?}\nUser-Name = {:?}\nNAS-Port-Type = Ethernet\n",
            self.status,
            self.session_id,
            self.nas_ip,
            self.nas_port,
            self.calling_station_id,
            self.user_name
        );
        if let Some(class) = &self.class {
            text.push_str(&format!("Class = 0x{}\n", hex::encode(class)));
        }
        if self.status == "Stop" {
            text.push_str("Acct-Session-Time = 60\nAcct-Terminate-Cause = User-Request\n");
        }
        text
    }

    /// Sends it with `radclient` (one try, 5 s); true when FreeRADIUS
    /// answered with an Accounting-Response (it does not answer when its
    /// accounting section fails, so the NAS would retry).
    pub async fn send(&self, radius: &FreeRadius) -> (bool, String) {
        let mut cmd = tokio::process::Command::new(RADCLIENT);
        cmd.args(["-x", "-r", "1", "-t", "5"])
            .arg(format!("127.0.0.1:{}", radius.acct_port))
            .args(["acct", SECRET]);
        run_guarded(
            cmd,
            RADCLIENT,
            "freeradius-utils",
            Some(self.attribute_lines()),
        )
        .await
    }
}

/// What a [`StandIn`] answers.
#[derive(Clone)]
pub struct StandInAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// One request a [`StandIn`] received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A scripted HTTP server in the gate's place on the NAC URL, for the tests
/// of the FreeRADIUS site itself (what it does with each kind of answer):
/// records each request, answers what it is told. Not the gate.
pub struct StandIn {
    pub addr: SocketAddr,
    answer: Arc<Mutex<StandInAnswer>>,
    received: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl StandIn {
    pub async fn start(answer: StandInAnswer) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (answer.clone(), received.clone());
        let task = tokio::spawn(async move {
            // Owned here, so stopping the task also drops every kept-alive
            // connection: FreeRADIUS pools them.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (a, r) = (a.clone(), r.clone());
                conns.spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (a, r) = (a.clone(), r.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            r.lock().unwrap().push(Received {
                                path: parts.uri.path().to_owned(),
                                headers: parts.headers,
                                body: body.unwrap_or_default(),
                            });
                            let answer = a.lock().unwrap().clone();
                            let mut response = Response::new(Full::new(Bytes::from(answer.body)));
                            *response.status_mut() = StatusCode::from_u16(answer.status).unwrap();
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static(answer.content_type),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        StandIn {
            addr,
            answer,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn answer(&self, answer: StandInAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Stops listening and drops every connection: the port refuses.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
