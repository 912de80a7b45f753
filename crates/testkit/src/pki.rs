//! A throwaway PKI for socket tests: one CA that issues the gate's server
//! certificate, device (client) certificates and attestation chains, and
//! ES256 posture tokens signed with a device's own key.

use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};

/// Host names the gate's server certificate covers.
pub const SERVER_NAMES: &[&str] = &[
    "localhost",
    "finance.test",
    "office.test",
    "public.test",
    "other.test",
];

pub struct Pki {
    pub dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    pub ca_der: CertificateDer<'static>,
    next_serial: std::cell::Cell<u64>,
}

pub struct Device {
    pub cert_der: CertificateDer<'static>,
    pub ca_der: CertificateDer<'static>,
    key: KeyPair,
    pub serial: u64,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Pki {
    /// Writes `ca.pem`, `server.pem` and `server-key.pem` into `dir`.
    pub fn new(dir: &Path) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "posture-gate test CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Test");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let pki = Pki {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, ca_key),
            ca_der: ca.der().clone(),
            next_serial: std::cell::Cell::new(100),
        };
        let server_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(
            SERVER_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "gate.test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let server = params.signed_by(&server_key, &pki.issuer).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem() + &ca.pem()).unwrap();
        std::fs::write(dir.join("server-key.pem"), server_key.serialize_pem()).unwrap();
        pki
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A device certificate (clientAuth, digitalSignature) with this CN and
    /// O, written as `<cn>.pem` and `<cn>-key.pem`.
    pub fn device(&self, cn: &str, org: &str) -> Device {
        self.device_with(cn, Some(org))
    }

    /// A device certificate whose subject has no O at all.
    pub fn device_without_organization(&self, cn: &str) -> Device {
        self.device_with(cn, None)
    }

    fn device_with(&self, cn: &str, org: Option<&str>) -> Device {
        let key = KeyPair::generate().unwrap();
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "Laptops");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_path = self.dir.join(format!("{cn}.pem"));
        let key_path = self.dir.join(format!("{cn}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Device {
            cert_der: cert.der().clone(),
            ca_der: self.ca_der.clone(),
            key,
            serial,
            cert_path,
            key_path,
        }
    }

    /// A CRL revoking these devices, valid for an hour, written as PEM.
    pub fn crl(&self, revoked: &[&Device], name: &str) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::hours(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|d| RevokedCertParams {
                    serial_number: SerialNumber::from(d.serial),
                    revocation_time: now - time::Duration::minutes(1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).unwrap();
        let path = self.dir.join(name);
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }
}

impl Device {
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.cert_der.as_ref()))
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// An ES256 posture token with these claims, `x5c` = [device, CA].
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({
            "alg": "ES256",
            "typ": "eat+jwt",
            "x5c": [STANDARD.encode(self.cert_der.as_ref()), STANDARD.encode(self.ca_der.as_ref())],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, self.key.serialized_der())
                .unwrap();
        let signature = key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .unwrap();
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

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
