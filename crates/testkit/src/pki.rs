//! The PKI of the tests: the development PKI of posture-gate
//! (`posture_gate::pki`, the one place that makes certificates), re-exported
//! for tests that vary a device, and [`TestPki`], that PKI written into a
//! test's temp dir with what socket tests need on top: a server certificate
//! for the test host names, device files for curl, CRLs from the device CA,
//! and ES256 posture tokens from a `serde_json` value.
//!
//! The files are those of `posture-gate pki init` (`ca.pem`, `device-ca.pem`,
//! `server.pem`, `server.key`, ...): clients trust the root (`ca.pem`), which
//! issued the server certificate; the gate's client CA and attestation trust
//! anchor is the device CA (`device-ca.pem`), which issues the devices.

use std::cell::Cell;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use posture_core::attestation::sign::sign_parts;
pub use posture_gate::pki::{
    crl_pem, DeviceCredentials, DeviceIssuer, DeviceKeyType, DevicePaths, DeviceSpec, LeafKeyUsage,
    Pki, PkiError, PkiPaths,
};

/// Host names the gate's server certificate covers (besides localhost and
/// the loopback addresses).
pub const SERVER_NAMES: &[&str] = &[
    "localhost",
    "finance.test",
    "office.test",
    "public.test",
    "other.test",
];

/// A development PKI written into `dir`, for a gate configured by
/// [`crate::config_text`].
pub struct TestPki {
    pub dir: PathBuf,
    pki: Pki,
    pub paths: PkiPaths,
    /// The root: what clients trust for the gate's server certificate.
    pub ca_der: CertificateDer<'static>,
    devices: Cell<u32>,
}

/// A device issued by the device CA, its certificate chain and key also
/// written as files (`cert_path` holds the leaf then the device CA).
pub struct Device {
    creds: DeviceCredentials,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Deref for TestPki {
    type Target = Pki;

    fn deref(&self) -> &Pki {
        &self.pki
    }
}

impl TestPki {
    /// Generates the PKI and writes its files into `dir`.
    pub fn new(dir: &Path) -> TestPki {
        let pki = Pki::generate_with_server_names(SERVER_NAMES).unwrap();
        let paths = pki.write(dir).unwrap();
        TestPki {
            dir: dir.to_path_buf(),
            ca_der: pki.root_cert_der().clone(),
            pki,
            paths,
            devices: Cell::new(0),
        }
    }

    /// `ca.pem`: the root, which clients trust.
    pub fn ca_path(&self) -> PathBuf {
        self.paths.ca_cert.clone()
    }

    /// A device certificate (clientAuth, digitalSignature) with this CN, O
    /// and OU=Laptops.
    pub fn device(&self, cn: &str, org: &str) -> Device {
        let mut spec = DeviceSpec::new(cn, org);
        spec.ou = Some("Laptops".to_owned());
        self.device_from(spec)
    }

    /// A device certificate whose subject has no O at all.
    pub fn device_without_organization(&self, cn: &str) -> Device {
        let mut spec = DeviceSpec::new(cn, "");
        spec.org = None;
        spec.ou = Some("Laptops".to_owned());
        self.device_from(spec)
    }

    /// A device as `spec` says, its files written under `devices/`.
    pub fn device_from(&self, spec: DeviceSpec) -> Device {
        // A numbered directory each: tests may issue two devices of one name.
        let n = self.devices.get();
        self.devices.set(n + 1);
        let dir = self.dir.join("devices").join(format!("{n}-{}", spec.name));
        let creds = self.pki.issue_device_with(spec).unwrap();
        let paths = creds.write(&dir).unwrap();
        Device {
            creds,
            cert_path: paths.cert,
            key_path: paths.key,
        }
    }

    /// A CRL of the device CA revoking these devices, valid for an hour,
    /// written as PEM into `dir/name`.
    pub fn crl(&self, revoked: &[&Device], name: &str) -> PathBuf {
        let revoked: Vec<&DeviceCredentials> = revoked.iter().map(|d| &d.creds).collect();
        let crl = self.pki.device_crl(&revoked).unwrap();
        let path = self.dir.join(name);
        std::fs::write(&path, crl_pem(&crl)).unwrap();
        path
    }

    /// A CRL of the device CA revoking these devices with this thisUpdate
    /// and nextUpdate, as PEM (not written anywhere).
    pub fn crl_pem_valid(
        &self,
        revoked: &[&Device],
        this_update: time::OffsetDateTime,
        next_update: time::OffsetDateTime,
    ) -> String {
        let revoked: Vec<&DeviceCredentials> = revoked.iter().map(|d| &d.creds).collect();
        let crl = self
            .pki
            .device_crl_valid(&revoked, this_update, next_update)
            .unwrap();
        crl_pem(&crl)
    }
}

impl Deref for Device {
    type Target = DeviceCredentials;

    fn deref(&self) -> &DeviceCredentials {
        &self.creds
    }
}

impl Device {
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.creds.cert_der.as_ref()))
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.creds.key_pem.as_bytes()).unwrap()
    }

    /// A posture token with these claims, signed with the device's key
    /// (ES256 for the default P-256), `x5c` = [device, device CA].
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({
            "alg": self.creds.signing_key().alg(),
            "typ": "eat+jwt",
            "x5c": crate::token::x5c_value(&self.creds.chain),
        });
        sign_parts(
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
            self.creds.signing_key(),
        )
        .unwrap()
    }
}

pub use posture_core::decision::unix_now;

/// A clean Linux inventory, with Kaspersky Endpoint Security for Linux
/// added when `kaspersky` is set.
pub fn claims(nonce: Option<&str>, kaspersky: bool) -> Value {
    let mut software = vec![
        json!({"name": "firefox", "vendor": "Mozilla", "version": "128.0", "id": "firefox", "source": "dpkg"}),
    ];
    if kaspersky {
        software.push(json!({
            "name": "kesl", "vendor": "AO Kaspersky Lab", "version": "12.1.0.1297",
            "id": "kesl", "source": "dpkg"
        }));
    }
    let mut c = json!({
        "eat_profile": "urn:posture-gate:attestation:v1",
        "iat": unix_now(),
        "sub": "test laptop",
        "os": {"family": "linux", "name": "Debian GNU/Linux", "version": "12"},
        "software": software,
    });
    if let Some(n) = nonce {
        c["eat_nonce"] = json!(n);
    }
    c
}
