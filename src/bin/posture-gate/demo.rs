//! `posture-gate demo`: the embedded default. A throwaway PKI, a small
//! upstream app on loopback, two demo devices (one clean, one running
//! Kaspersky) with signed attestations, and the gate in front, so a new user
//! sees both outcomes within a minute of cloning the repo.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use posture_core::attestation::claims::{
    Claims, Os, OsFamily, Process, SecurityProduct, SecurityProductKind, Software, SoftwareSource,
    PROFILE_V1,
};
use posture_core::attestation::sign::{sign_token, SigningKey};
use posture_gate::pki::{DeviceCredentials, Pki};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("demo PKI: {0}")]
    Pki(#[from] posture_gate::pki::PkiError),
    #[error("signing a demo attestation: {0}")]
    Sign(#[from] posture_core::attestation::sign::SignError),
    #[error("{0}")]
    Refused(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Io { what, source }
}

/// One demo device on disk.
pub struct DemoDevice {
    pub name: &'static str,
    pub dir: PathBuf,
    credentials: DeviceCredentials,
    inventory: fn(i64) -> Claims,
}

impl DemoDevice {
    /// Signs a fresh attestation (no nonce) and writes it to `attestation.jwt`.
    pub fn refresh_attestation(&self, now: i64) -> Result<(), DemoError> {
        let key = SigningKey::from_pem(&self.credentials.key_pem)?;
        let token = sign_token(&(self.inventory)(now), &self.credentials.chain, &key)?;
        let path = self.dir.join("attestation.jwt");
        // Write then rename, so a curl running at that moment never reads half a token.
        let tmp = self.dir.join(".attestation.jwt.tmp");
        // A new file, never one that is there (or a link planted there).
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("remove {}", tmp.display()))(e));
            }
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(format!("create {}", tmp.display())))?;
        std::io::Write::write_all(&mut file, token.as_bytes())
            .map_err(io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("write {}", path.display())))
    }
}

/// Everything `demo` writes into its directory.
pub struct DemoFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub devices: Vec<DemoDevice>,
}

/// Writes the PKI, the devices and `gate.toml` for a gate on `port` in front
/// of an upstream on `upstream`.
///
/// A directory that already holds a demo's files (from an earlier run) is
/// reused: its CA, server certificate and devices stay, so certificates
/// handed out before still verify; only `gate.toml` (the ports change) and
/// the attestations are written again. Anything else in it (another
/// program's files, or a demo's half-written ones) is refused before a
/// single file is changed.
pub fn prepare(dir: &Path, port: u16, upstream: SocketAddr) -> Result<DemoFiles, DemoError> {
    let reuse = match existing(dir)? {
        Existing::Nothing => false,
        Existing::Demo => {
            check_demo(dir)?;
            true
        }
    };
    let pki = if reuse {
        Pki::load(&dir.join("pki"))?
    } else {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let pki = Pki::generate()?;
        // Never over a key: two demos started at once on one empty
        // directory must not end with one's CA under the other's devices.
        pki.write_new(&dir.join("pki"))?;
        std::fs::copy(dir.join("pki/ca.pem"), dir.join("ca.pem"))
            .map_err(io(format!("write {}", dir.join("ca.pem").display())))?;
        let secret: [u8; 32] = rand::random();
        let secret_file = dir.join("pki/nonce.key");
        write_private(&secret_file, &secret)?;
        pki
    };

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut devices = Vec::new();
    for (name, org, inventory) in DEVICES {
        let ddir = dir.join("devices").join(name);
        let credentials = if reuse {
            DeviceCredentials::read(&ddir)?
        } else {
            let credentials = pki.issue_device(&format!("demo-{name}"), org, Some("Demo"))?;
            credentials.write(&ddir)?;
            credentials
        };
        let device = DemoDevice {
            name,
            dir: ddir,
            credentials,
            inventory,
        };
        device.refresh_attestation(now)?;
        devices.push(device);
    }
    let config = dir.join("gate.toml");
    // The pages' "check again" command names this file for `--ca`, so it
    // works as written from any directory.
    let ca = std::fs::canonicalize(dir)
        .map_err(io(format!("resolve {}", dir.display())))?
        .join("ca.pem");
    std::fs::write(&config, demo_config(port, upstream, &ca))
        .map_err(io(format!("write {}", config.display())))?;
    Ok(DemoFiles {
        dir: dir.to_path_buf(),
        config,
        devices,
    })
}

/// What a demo device reports at a given time.
type Inventory = fn(i64) -> Claims;

/// The demo devices: directory name, organisation, inventory.
const DEVICES: [(&str, &str, Inventory); 2] = [
    ("clean", "Ministerie van Voorbeeldzaken", clean_inventory),
    ("kaspersky", "Leverancier Extern BV", kaspersky_inventory),
];

/// The first line of the demo's `gate.toml`: how a config the demo may
/// rewrite is told from one a person wrote.
const CONFIG_MARK: &str = "# Written by `posture-gate demo`";

/// Every file a demo directory holds, relative to it.
fn demo_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [
        "gate.toml",
        "ca.pem",
        "pki/ca.pem",
        "pki/ca.key",
        "pki/device-ca.pem",
        "pki/device-ca.key",
        "pki/server.pem",
        "pki/server.key",
        "pki/nonce.key",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    for (name, _, _) in DEVICES {
        for file in ["cert.pem", "key.pem", "attestation.jwt"] {
            files.push(Path::new("devices").join(name).join(file));
        }
    }
    files
}

enum Existing {
    /// No directory, or an empty one.
    Nothing,
    /// Exactly the files of a demo (checked further by [`check_demo`]).
    Demo,
}

/// What is in `dir`, read without changing anything.
fn existing(dir: &Path) -> Result<Existing, DemoError> {
    let mut found = Vec::new();
    match list_files(dir, Path::new(""), &mut found) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(io(format!("read {}", dir.display()))(e)),
    }
    if found.is_empty() {
        return Ok(Existing::Nothing);
    }
    // A token being replaced when the last demo stopped is no reason to refuse.
    found.retain(|f| f.file_name() != Some(std::ffi::OsStr::new(".attestation.jwt.tmp")));
    let expected = demo_files();
    let foreign: Vec<&PathBuf> = found.iter().filter(|f| !expected.contains(f)).collect();
    let missing: Vec<&PathBuf> = expected.iter().filter(|f| !found.contains(f)).collect();
    let show = |files: &[&PathBuf]| {
        let mut names: Vec<String> = files
            .iter()
            .take(5)
            .map(|f| f.display().to_string())
            .collect();
        if files.len() > 5 {
            names.push(format!("and {} more", files.len() - 5));
        }
        names.join(", ")
    };
    if !foreign.is_empty() {
        return Err(DemoError::Refused(format!(
            "{} is not empty and holds files a demo does not write ({}); nothing was changed. \
             Give --dir a new or empty directory, or the directory of an earlier demo to reuse it",
            dir.display(),
            show(&foreign)
        )));
    }
    if !missing.is_empty() {
        return Err(DemoError::Refused(format!(
            "{} holds part of a demo: {} missing; nothing was changed. Remove the directory \
             (rm -r {}) for a new demo, or give --dir another one",
            dir.display(),
            show(&missing),
            dir.display()
        )));
    }
    Ok(Existing::Demo)
}

/// Relative paths of every file under `dir` (at most a few hundred: a
/// demo has 15, so more is refused as foreign anyway).
fn list_files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir.join(rel))? {
        let entry = entry?;
        let path = rel.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            // Never a file a demo writes: writing through it would change
            // whatever it points at. Listed under a name no demo file has,
            // so the directory is refused as foreign.
            let mut shown = path.into_os_string();
            shown.push(" (a symbolic link)");
            out.push(PathBuf::from(shown));
        } else if kind.is_dir() {
            list_files(dir, &path, out)?;
        } else {
            out.push(path);
        }
        if out.len() > 256 {
            return Ok(());
        }
    }
    Ok(())
}

/// That the files of an earlier demo still fit together: the CA, the
/// server certificate and key, the devices' certificates (verifying
/// against the device CA) and keys, and a `gate.toml` the demo wrote.
fn check_demo(dir: &Path) -> Result<(), DemoError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, UnixTime};
    let refuse = |what: String| {
        DemoError::Refused(format!(
            "{} holds the files of a demo, but {what}; nothing was changed. Remove the \
             directory (rm -r {}) for a new demo, or give --dir another one",
            dir.display(),
            dir.display()
        ))
    };
    let config = std::fs::read_to_string(dir.join("gate.toml")).unwrap_or_default();
    if !config.starts_with(CONFIG_MARK) {
        return Err(refuse("gate.toml was not written by the demo".into()));
    }
    // The demo writes its keys readable by their owner only; a copy that
    // others can read (cp without -p, a shared directory) is not reused.
    #[cfg(unix)]
    for file in demo_files() {
        use std::os::unix::fs::PermissionsExt;
        let is_key = file.extension().is_some_and(|e| e == "key")
            || file.file_name().is_some_and(|n| n == "key.pem");
        if !is_key {
            continue;
        }
        let path = dir.join(&file);
        let mode = std::fs::metadata(&path)
            .map_err(|e| refuse(format!("{} cannot be read ({e})", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(refuse(format!(
                "{} can be read by others (mode {:o}): a demo's keys are private",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let pki_dir = dir.join("pki");
    if std::fs::read(dir.join("ca.pem")).ok() != std::fs::read(pki_dir.join("ca.pem")).ok() {
        return Err(refuse("ca.pem is not pki/ca.pem".into()));
    }
    Pki::load(&pki_dir).map_err(|e| refuse(format!("its PKI does not load ({e})")))?;
    let cert = |path: &Path| -> Result<Vec<CertificateDer<'static>>, DemoError> {
        CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| refuse(format!("{} holds no certificate", path.display())))
    };
    let pair =
        |cert_path: &Path, key_path: &Path| -> Result<Vec<CertificateDer<'static>>, DemoError> {
            let chain = cert(cert_path)?;
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|_| refuse(format!("{} holds no private key", key_path.display())))?;
            let matches = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
                .ok()
                .map(|k| {
                    rustls::sign::CertifiedKey::new(chain.clone(), k)
                        .keys_match()
                        .is_ok()
                });
            if matches != Some(true) {
                return Err(refuse(format!(
                    "the key {} does not belong to {}",
                    key_path.display(),
                    cert_path.display()
                )));
            }
            Ok(chain)
        };
    let verifies = |chain: &[CertificateDer<'static>], anchor: &CertificateDer<'_>, usage| {
        let Ok(anchor) = webpki::anchor_from_trusted_cert(anchor) else {
            return false;
        };
        let Some(leaf) = chain.first() else {
            return false;
        };
        let Ok(leaf) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &chain[1..],
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .is_ok()
    };
    let root = cert(&pki_dir.join("ca.pem"))?;
    let server = pair(&pki_dir.join("server.pem"), &pki_dir.join("server.key"))?;
    if !verifies(&server, &root[0], webpki::KeyUsage::server_auth()) {
        return Err(refuse(
            "pki/server.pem does not verify against pki/ca.pem (or has expired)".into(),
        ));
    }
    let device_ca = cert(&pki_dir.join("device-ca.pem"))?;
    for (name, _, _) in DEVICES {
        let ddir = dir.join("devices").join(name);
        let chain = pair(&ddir.join("cert.pem"), &ddir.join("key.pem"))?;
        if !verifies(&chain, &device_ca[0], webpki::KeyUsage::client_auth()) {
            return Err(refuse(format!(
                "devices/{name}/cert.pem does not verify against pki/device-ca.pem (or has expired)"
            )));
        }
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DemoError> {
    std::fs::write(path, bytes).map_err(io(format!("write {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("chmod {}", path.display())))?;
    }
    Ok(())
}

fn demo_config(port: u16, upstream: SocketAddr, ca: &Path) -> String {
    // A TOML basic string: JSON's escapes are TOML's for a path's text.
    let agent_ca = serde_json::Value::String(ca.display().to_string());
    format!(
        r#"{CONFIG_MARK}: a throwaway configuration.
[server]
listen = "127.0.0.1:{port}"
cert = "pki/server.pem"
key = "pki/server.key"
# The device CA only: the root also issued the server certificate.
client_ca = "pki/device-ca.pem"
upstream_timeout = "10s"

[attestation]
trust_anchors = ["pki/device-ca.pem"]
max_age = "15m"
# The demo devices' attestation.jwt files carry no nonce, so curl can post them as they are.
require_nonce = false
nonce_secret_file = "pki/nonce.key"

[[segment]]
name = "financien"
description = "Financiële administratie (demo-app)"
description_en = "Financial administration (demo app)"
sensitivity = "high"
policy = "streng"
vlan = 120

[[segment]]
name = "kantine"
description = "Kantine-rooster"
description_en = "Canteen rota"
sensitivity = "low"
policy = "waarschuwen"
vlan = 10

[[route]]
host = "localhost"
path_prefix = "/kantine"
upstream = "http://{upstream}"
segment = "kantine"

[[route]]
host = "localhost"
path_prefix = "/"
upstream = "http://{upstream}"
segment = "financien"

[[policy]]
name = "streng"
description = "Geen verboden software"
rule = [{{ catalogue = "kaspersky", action = "deny" }}]

[[policy]]
name = "waarschuwen"
description = "Alleen waarschuwen"
rule = [{{ catalogue = "kaspersky", action = "warn" }}]

[remediation]
# The demo devices run no agent service: the pages show the command only.
agent = "manual"
agent_ca = {agent_ca}

[remediation.service_desk]
name = "Servicedesk (demo)"
phone = "+31 70 000 0000"
email = "servicedesk@example.invalid"
hours_nl = "Maandag t/m vrijdag 08:00-18:00"
hours_en = "Monday to Friday 08:00-18:00"
"#
    )
}

fn sw(name: &str, vendor: &str, version: &str, id: &str, source: SoftwareSource) -> Software {
    Software {
        name: name.into(),
        vendor: Some(vendor.into()),
        version: Some(version.into()),
        id: Some(id.into()),
        signer: None,
        source: Some(source),
    }
}

fn base_claims(now: i64, sub: &str, os: Os) -> Claims {
    Claims {
        eat_profile: Some(PROFILE_V1.to_owned()),
        iat: now,
        exp: None,
        eat_nonce: None,
        sub: Some(sub.to_owned()),
        os,
        software: Vec::new(),
        processes: Vec::new(),
        security_products: Vec::new(),
    }
}

fn clean_inventory(now: i64) -> Claims {
    let mut c = base_claims(
        now,
        "demo-clean",
        Os {
            family: OsFamily::Linux,
            name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            version: Some("12".into()),
        },
    );
    c.software = vec![
        sw(
            "firefox-esr",
            "Debian Mozilla Team",
            "128.5.0esr-1~deb12u1",
            "firefox-esr",
            SoftwareSource::Dpkg,
        ),
        sw(
            "libreoffice-writer",
            "Debian LibreOffice Maintainers",
            "4:7.4.7-1+deb12u5",
            "libreoffice-writer",
            SoftwareSource::Dpkg,
        ),
        sw(
            "openssh-client",
            "Debian OpenSSH Maintainers",
            "1:9.2p1-2+deb12u3",
            "openssh-client",
            SoftwareSource::Dpkg,
        ),
        sw(
            "clamav",
            "ClamAV Team",
            "1.0.7+dfsg-1~deb12u1",
            "clamav",
            SoftwareSource::Dpkg,
        ),
    ];
    c.processes = vec![Process {
        name: "firefox-esr".into(),
        path: Some("/usr/lib/firefox-esr/firefox-esr".into()),
    }];
    c
}

fn kaspersky_inventory(now: i64) -> Claims {
    let mut c = base_claims(
        now,
        "demo-kaspersky",
        Os {
            family: OsFamily::Windows,
            name: Some("Windows 11 Pro".into()),
            version: Some("10.0.22631".into()),
        },
    );
    c.software = vec![
        sw(
            "Microsoft Edge",
            "Microsoft Corporation",
            "131.0.2903.70",
            "Microsoft Edge",
            SoftwareSource::Registry,
        ),
        sw(
            "7-Zip 24.08 (x64)",
            "Igor Pavlov",
            "24.08",
            "7-Zip",
            SoftwareSource::Registry,
        ),
        sw(
            "Kaspersky Endpoint Security for Windows",
            "AO Kaspersky Lab",
            "12.3.0.493",
            "{6B5E4A2C-AB6C-4E9A-8DE6-1F2B0C8B2C4A}",
            SoftwareSource::Registry,
        ),
    ];
    c.processes = vec![Process {
        name: "avp.exe".into(),
        path: Some(r"C:\Program Files (x86)\Kaspersky Lab\KES.12.3.0\avp.exe".into()),
    }];
    c.security_products = vec![SecurityProduct {
        name: "Kaspersky Endpoint Security for Windows".into(),
        vendor: None,
        kind: Some(SecurityProductKind::Antivirus),
        enabled: Some(true),
        up_to_date: Some(true),
    }];
    c
}

/// The small app behind the gate: it shows who the gate said the device is.
pub async fn serve_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(upstream_page(&req))
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn upstream_page(req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let mut body = String::new();
    let _ = writeln!(body, "Demo app: you are in.");
    let _ = writeln!(body, "path:         {}", req.uri().path());
    for h in [
        "x-posture-device-subject",
        "x-posture-device-organization",
        "x-posture-device-fingerprint",
        "x-posture-decision",
        "posture-warning",
    ] {
        let _ = writeln!(body, "{h:<31} {}", header(h));
    }
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// What to try, printed when the demo is up.
pub fn instructions(files: &DemoFiles, port: u16) -> String {
    let d = files.dir.display();
    let url = format!("https://localhost:{port}");
    let dev = |n: &str| {
        format!("--cacert {d}/ca.pem --cert {d}/devices/{n}/cert.pem --key {d}/devices/{n}/key.pem")
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "posture-gate demo is running on {url}  (files in {d}; Ctrl-C stops it)\n"
    );
    for (n, what) in [
        ("clean", "a clean device"),
        ("kaspersky", "a device running Kaspersky"),
    ] {
        let _ = writeln!(s, "# {what}: attest, then open the app");
        let _ = writeln!(
            s,
            "curl {} -H 'Content-Type: application/eat+jwt' --data-binary @{d}/devices/{n}/attestation.jwt {url}/.well-known/posture-gate/attest",
            dev(n)
        );
        let _ = writeln!(s, "curl {} {url}/", dev(n));
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "# the Kaspersky device as an API client (application/problem+json), and in English:"
    );
    let _ = writeln!(
        s,
        "curl {} -H 'Accept: application/json' {url}/",
        dev("kaspersky")
    );
    let _ = writeln!(s, "curl {} -H 'Accept-Language: en' {url}/kantine/   # low-sensitivity segment: allowed with a warning\n", dev("kaspersky"));
    let _ = writeln!(
        s,
        "# the denial page in a browser: import the device certificate, then open {url}/"
    );
    let _ = writeln!(
        s,
        "openssl pkcs12 -export -in {d}/devices/kaspersky/cert.pem -inkey {d}/devices/kaspersky/key.pem -out {d}/devices/kaspersky/device.p12 -passout pass:demo"
    );
    let _ = writeln!(s, "#   (trust {d}/ca.pem in the browser, or accept the warning; without a certificate you see the enrolment page)");
    let _ = writeln!(s, "\nThe attestation.jwt files are signed again every 5 minutes, so they never go stale while the demo runs.");
    s
}

/// Re-signs the demo attestations well before they reach the 15-minute age limit.
pub async fn keep_attestations_fresh(devices: Vec<DemoDevice>) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for d in &devices {
            if let Err(e) = d.refresh_attestation(now) {
                tracing::warn!(device = d.name, error = %e, "could not refresh the demo attestation");
            }
        }
    }
}
