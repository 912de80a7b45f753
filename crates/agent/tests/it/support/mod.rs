//! Helpers shared by the agent's socket tests: the real gate on loopback
//! with the development PKI of `posture_testkit::pki`, fixture roots with and
//! without Kaspersky, and a runner for the `posture-agent` binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use posture_gate::gate::{Gate, GateHandle};
use posture_testkit::pki::{DeviceCredentials, DeviceKeyType, DevicePaths, DeviceSpec, Pki};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use posture_testkit as common;
use posture_testkit::{Client, Proto};

pub mod reg;

/// A dpkg system whose status file lists `kesl` (Kaspersky Endpoint
/// Security for Linux) as installed, with its process running.
pub fn kesl_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linux-root")
}

/// The same tree without Kaspersky: the fixture copied into a temp dir with
/// the `kesl` stanza and the kesl process left out.
pub fn clean_root(dir: &Path) -> PathBuf {
    let root = dir.join("clean-root");
    copy_tree(&kesl_root(), &root);
    let status_path = root.join("var/lib/dpkg/status");
    let status = std::fs::read_to_string(&status_path).unwrap();
    let kept: Vec<&str> = status
        .split("\n\n")
        .filter(|stanza| !stanza.lines().any(|l| l == "Package: kesl"))
        .collect();
    std::fs::write(&status_path, kept.join("\n\n")).unwrap();
    std::fs::remove_dir_all(root.join("opt/kaspersky")).unwrap();
    for entry in std::fs::read_dir(root.join("proc")).unwrap() {
        let dir = entry.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim().starts_with("kesl") || comm.trim().starts_with("wdserver") {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    root
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            // The Linux tree these tests copy (/proc's links) only exists
            // on Linux; elsewhere a link is copied as what it points to.
            #[cfg(unix)]
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
            #[cfg(not(unix))]
            std::fs::copy(entry.path(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A file or tree under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A ClamAV database header built at `built`, in the format `sigtool`
/// writes (see tests/fixtures/README.md), padded to its 512 bytes.
pub fn cvd_header(built: std::time::SystemTime) -> Vec<u8> {
    let secs = built
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
    let format =
        time::macros::format_description!("[day] [month repr:short] [year] [hour]-[minute] +0000");
    let text = format!(
        "ClamAV-VDB:{}:27835:2077123:90:{}:{}:posture-gate-test:{secs}",
        t.format(&format).unwrap(),
        "0".repeat(32),
        "A".repeat(86)
    );
    format!("{text:<512}").into_bytes()
}

/// The Debian-with-ClamAV fixture copied under `dir`, its daily signatures
/// built `age` before now.
pub fn clamav_root(dir: &Path, age: std::time::Duration) -> PathBuf {
    let root = dir.join(format!("clamav-root-{}", age.as_secs()));
    copy_tree(&fixture("debian-clamav"), &root);
    std::fs::write(
        root.join("var/lib/clamav/daily.cvd"),
        cvd_header(std::time::SystemTime::now() - age),
    )
    .unwrap();
    root
}

/// A macOS fixture tree (`macos-clean`, `macos-root`) copied under `dir`,
/// its XProtect definitions written `age` before now (git keeps no
/// modification times, so the checkout's would say nothing).
pub fn macos_root(dir: &Path, name: &str, age: std::time::Duration) -> PathBuf {
    let root = dir.join(format!("{name}-{}", age.as_secs()));
    copy_tree(&fixture(name), &root);
    let meta = root.join(
        "Library/Apple/System/Library/CoreServices/XProtect.bundle/Contents/Resources/XProtect.meta.plist",
    );
    let file = std::fs::File::options().write(true).open(meta).unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
    root
}

/// A running gate with the development PKI of `posture_testkit::pki` (root CA,
/// device CA, a server certificate for localhost) in a temp dir.
pub struct AgentGate {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub addr: SocketAddr,
    pub handle: GateHandle,
}

impl AgentGate {
    pub async fn start() -> AgentGate {
        Self::start_with(|text| text).await
    }

    /// Starts a gate whose config text went through `edit`.
    pub async fn start_with(edit: impl FnOnce(String) -> String) -> AgentGate {
        common::init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate().unwrap();
        pki.write(dir.path()).unwrap();
        std::fs::write(dir.path().join("nonce.key"), [9u8; 32]).unwrap();
        let text = common::config_text(&[], &common::Settings::default());
        let config = dir.path().join("gate.toml");
        std::fs::write(&config, edit(text)).unwrap();
        let gate = Gate::bind(config).await.unwrap_or_else(|e| panic!("{e}"));
        let addr = gate.local_addr();
        let handle = gate.handle();
        tokio::spawn(gate.run());
        AgentGate {
            dir,
            pki,
            addr,
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn device(&self, name: &str, key: DeviceKeyType) -> (DeviceCredentials, DevicePaths) {
        let mut spec = DeviceSpec::new(name, "Leverancier BV");
        spec.key = key;
        let creds = self.pki.issue_device_with(spec).unwrap();
        let paths = creds
            .write(&self.dir.path().join("devices").join(name))
            .unwrap();
        (creds, paths)
    }

    /// An HTTPS client that presents this device's certificate.
    pub fn client(&self, device: &DeviceCredentials) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.pki.root_cert_der().clone()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(device.key_pem.as_bytes()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(device.chain.clone(), key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client {
            addr: self.addr,
            config: Arc::new(config),
            proto: Proto::H1,
        }
    }
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

pub async fn agent(args: &[&str]) -> Run {
    agent_env(args, &[]).await
}

/// Runs the agent in an English locale without a configuration file from
/// the environment, with `env` set on top.
pub async fn agent_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_posture-agent"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("POSTURE_AGENT_CONFIG")
        .env("LANG", "C.UTF-8");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().await.unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub async fn attest(gate: &AgentGate, device: &DevicePaths, extra: &[&str]) -> Run {
    let url = gate.url();
    let ca = gate.ca();
    let mut args = vec![
        "attest",
        "--gate",
        &url,
        "--cert",
        s(&device.cert),
        "--key",
        s(&device.key),
        "--ca",
        s(&ca),
    ];
    args.extend_from_slice(extra);
    agent(&args).await
}

pub fn header_of(token: &str) -> serde_json::Value {
    let first = token.trim().split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap()
}
