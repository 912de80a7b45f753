//! # posture-testkit
//!
//! What the tests, benchmarks and examples of every crate share, and what the
//! product must never contain: a dev-dependency only.
//!
//! ## Map
//!
//! ```text
//! (this file)  TestGate: a config file, a running gate on loopback, and
//!              the Settings and routes a test may change
//! token        valid attestations and every kind of bad one: TokenBuilder
//!              with its forgers (`alg: none`, HMAC keyed with the public
//!              key, raw signatures), claims and inventories of a device
//! pki          the development PKI of posture-gate (re-exported) and
//!              TestPki: it written into a temp dir, with the test host
//!              names, device files, CRLs and tokens from JSON
//! client, conn an HTTPS client with client certificates; raw HTTP/1 and
//!              HTTP/2 connections for the tests of hostile peers
//! upstream     an echo upstream that reports what it was sent
//! audit        captures the audit events of a test
//! redis        a real redis-server for the shared-store tests
//! nginx, caddy real nginx and Caddy in front of the gate's forward-auth
//!              listener (program: free ports, readiness, example configs)
//! freeradius   the 802.1X chain: FreeRADIUS with a raddb generated from
//!              config/freeradius/, eapol_test, radclient, a NAC stand-in
//! ```
//!
//! Every file a test needs is made here, in a temp dir.

pub mod audit;
pub mod caddy;
pub mod client;
pub mod conn;
pub mod freeradius;
pub mod nginx;
pub mod pki;
pub mod program;
pub mod redis;
pub mod token;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::Full;
use posture_gate::gate::{Gate, GateError, GateHandle};
use tokio::task::JoinHandle;

pub use client::{request, Answer, Client, Proto};
pub use pki::{claims, Device, TestPki};

/// One route of the test config.
pub struct RouteSpec {
    pub host: &'static str,
    pub prefix: &'static str,
    pub upstream: String,
    pub segment: &'static str,
}

/// Settings a test may change; the rest of the config is fixed.
pub struct Settings {
    pub header_read_timeout: &'static str,
    pub idle_timeout: &'static str,
    pub upstream_timeout: &'static str,
    pub shutdown_grace: &'static str,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub crls: Vec<PathBuf>,
    pub require_nonce: bool,
    /// `[attestation] max_age`, when not the default.
    pub max_age: Option<&'static str>,
    /// More `[server]` lines, e.g. `"body_timeout = \"1s\"\n"`.
    pub server_extra: String,
    /// More lines for every `[[route]]`, e.g. `"upgrades = [\"echo\"]\n"`.
    pub route_extra: String,
    /// Tables appended after the routes, e.g. a `[store]`.
    pub extra: String,
    /// `vlan` of the segments finance, office and open (802.1X).
    pub vlans: [Option<u16>; 3],
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header_read_timeout: "2s",
            idle_timeout: "30s",
            upstream_timeout: "2s",
            shutdown_grace: "5s",
            max_connections: 100,
            max_header_bytes: 65536,
            crls: Vec::new(),
            require_nonce: true,
            max_age: None,
            server_extra: String::new(),
            route_extra: String::new(),
            extra: String::new(),
            vlans: [None; 3],
        }
    }
}

/// The config text: three segments guarded by a policy that denies
/// Kaspersky (`finance`), one that warns (`office`) and one without rules
/// (`open`).
pub fn config_text(routes: &[RouteSpec], s: &Settings) -> String {
    let crls = s
        .crls
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        r#"[server]
listen = "127.0.0.1:0"
cert = "server.pem"
key = "server.key"
client_ca = "device-ca.pem"
crls = [{crls}]
max_connections = {max_connections}
header_read_timeout = "{header_read_timeout}"
idle_timeout = "{idle_timeout}"
max_header_bytes = {max_header_bytes}
upstream_timeout = "{upstream_timeout}"
shutdown_grace = "{shutdown_grace}"
{server_extra}
[attestation]
trust_anchors = ["device-ca.pem"]
require_nonce = {require_nonce}
nonce_secret_file = "nonce.key"
{max_age}

[[policy]]
name = "strict"
rule = [{{ catalogue = "kaspersky", action = "deny" }}]

[[policy]]
name = "lenient"
rule = [{{ catalogue = "kaspersky", action = "warn" }}]

[[policy]]
name = "open"

[[segment]]
name = "finance"
sensitivity = "high"
policy = "strict"
{vlan_finance}
[[segment]]
name = "office"
sensitivity = "low"
policy = "lenient"
{vlan_office}
[[segment]]
name = "open"
sensitivity = "low"
policy = "open"
{vlan_open}"#,
        max_connections = s.max_connections,
        header_read_timeout = s.header_read_timeout,
        idle_timeout = s.idle_timeout,
        max_header_bytes = s.max_header_bytes,
        upstream_timeout = s.upstream_timeout,
        shutdown_grace = s.shutdown_grace,
        require_nonce = s.require_nonce,
        server_extra = s.server_extra,
        vlan_finance = vlan_line(s.vlans[0]),
        vlan_office = vlan_line(s.vlans[1]),
        vlan_open = vlan_line(s.vlans[2]),
        max_age = s
            .max_age
            .map(|m| format!("max_age = \"{m}\"\n"))
            .unwrap_or_default(),
    );
    for r in routes {
        text.push_str(&format!(
            "\n[[route]]\nhost = \"{}\"\npath_prefix = \"{}\"\nupstream = \"{}\"\nsegment = \"{}\"\n{}",
            r.host, r.prefix, r.upstream, r.segment, s.route_extra
        ));
    }
    text.push('\n');
    text.push_str(&s.extra);
    text
}

/// A `[forward_auth]` table for [`Settings::extra`], listening on a port of
/// loopback chosen by the system, with one proxy of `kind` (`nginx`,
/// `caddy`, ...) named `<kind>-test`, trusted from the addresses `from`.
pub fn forward_auth_table(kind: &str, from: &[&str]) -> String {
    let from = from
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[forward_auth]\nlisten = \"127.0.0.1:0\"\n\n[[forward_auth.proxy]]\nname = \"{kind}-test\"\n\
         kind = \"{kind}\"\nfrom = [{from}]\n"
    )
}

fn vlan_line(vlan: Option<u16>) -> String {
    vlan.map(|v| format!("vlan = {v}\n")).unwrap_or_default()
}

pub struct TestGate {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub config: PathBuf,
    pub addr: SocketAddr,
    /// The forward-auth listener's address, when `Settings::extra` has a
    /// `[forward_auth]` on TCP.
    pub forward_addr: Option<SocketAddr>,
    /// The 802.1X decision listener's address, when `Settings::extra` has
    /// a `[nac]` on TCP.
    pub nac_addr: Option<SocketAddr>,
    pub handle: GateHandle,
    pub task: JoinHandle<Result<(), GateError>>,
}

impl TestGate {
    /// Makes the PKI and config in a temp dir and starts a gate on port 0.
    pub async fn start(routes: &[RouteSpec], settings: &Settings) -> TestGate {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path());
        std::fs::write(dir.path().join("nonce.key"), [7u8; 32]).unwrap();
        let config = dir.path().join("gate.toml");
        std::fs::write(&config, config_text(routes, settings)).unwrap();
        let gate = Gate::bind(config.clone())
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = gate.local_addr();
        let forward_addr = gate.forward_auth_addr();
        let nac_addr = gate.nac_addr();
        let handle = gate.handle();
        let task = tokio::spawn(gate.run());
        TestGate {
            dir,
            pki,
            config,
            addr,
            forward_addr,
            nac_addr,
            handle,
            task,
        }
    }

    pub fn client(&self, device: Option<&Device>, proto: Proto) -> Client {
        Client::new(self.addr, &self.pki.ca_der, device, proto)
    }

    /// Another gate in the same directory (same PKI, so the same devices
    /// and nonce secret), with its own config file `name`: a replica.
    pub async fn replica(&self, name: &str, routes: &[RouteSpec], settings: &Settings) -> Replica {
        let config = self.dir.path().join(name);
        std::fs::write(&config, config_text(routes, settings)).unwrap();
        let gate = Gate::bind(config.clone())
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = gate.local_addr();
        let nac_addr = gate.nac_addr();
        let handle = gate.handle();
        let task = tokio::spawn(gate.run());
        Replica {
            config,
            addr,
            nac_addr,
            handle,
            task,
        }
    }

    /// Fetches a challenge, signs a report with the device's key and posts
    /// it over the device's own TLS connection.
    pub async fn attest(&self, device: &Device, kaspersky: bool) -> Answer {
        let client = self.client(Some(device), Proto::H1);
        let token = self.fresh_token(device, kaspersky).await;
        post_token(&client, "public.test", &token).await
    }

    pub async fn fresh_token(&self, device: &Device, kaspersky: bool) -> String {
        let client = self.client(Some(device), Proto::H1);
        let nonce = challenge(&client).await;
        device.token(&claims(Some(&nonce), kaspersky))
    }
}

/// A second gate beside a [`TestGate`] (see [`TestGate::replica`]).
pub struct Replica {
    pub config: PathBuf,
    pub addr: SocketAddr,
    /// Its 802.1X decision listener, when the settings have a `[nac]`.
    pub nac_addr: Option<SocketAddr>,
    pub handle: GateHandle,
    pub task: JoinHandle<Result<(), GateError>>,
}

impl Replica {
    /// A client of this replica, trusting `of`'s PKI.
    pub fn client(&self, of: &TestGate, device: Option<&Device>, proto: Proto) -> Client {
        Client::new(self.addr, &of.pki.ca_der, device, proto)
    }
}

pub async fn challenge(client: &Client) -> String {
    let answer = client
        .get("public.test", "/.well-known/posture-gate/challenge")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["nonce"].as_str().unwrap().to_string()
}

pub async fn post_token(client: &Client, host: &str, token: &str) -> Answer {
    let req = request(
        "POST",
        host,
        "/.well-known/posture-gate/attest",
        client.proto,
    )
    .header("content-type", "application/eat+jwt")
    .body(Full::new(Bytes::from(token.to_string())))
    .unwrap();
    client.send(req).await
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The headers the upstream received, from the echo upstream's answer.
pub fn upstream_header(answer: &Answer, name: &str) -> Option<Vec<String>> {
    answer.json()["headers"][name].as_array().map(|a| {
        a.iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    })
}
