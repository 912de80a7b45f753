//! Development PKI: a root CA, a device CA issued by it (the gate's
//! client-CA bundle and attestation trust anchor), a server certificate for
//! localhost (extended key usage serverAuth, issued by the root, which
//! clients trust as `ca.pem`), and device certificates (extended key usage
//! clientAuth, issued by the device CA). The gate's client CA is the device
//! CA alone, so the root's other certificates are never client
//! certificates. All keys P-256 unless a test asks for another. For demos
//! and tests (the test kit builds its socket-test PKI on this one, with more
//! server names and CRLs from the device CA); production uses the
//! organisation's own PKI.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use posture_core::attestation::sign::{SignError, SigningKey};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} already exists; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    #[error("{path}: no usable {what} in PEM")]
    BadPem { path: PathBuf, what: &'static str },
    #[error("{path}: the CA certificate's subject cannot be reproduced for issuing: {why}")]
    UnsupportedCa { path: PathBuf, why: &'static str },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("device key: {0}")]
    Key(#[from] SignError),
    #[error("certificate request: {0}")]
    Csr(String),
}

/// Where [`Pki::write`] put its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub device_ca_cert: PathBuf,
    pub device_ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl PkiPaths {
    /// Where [`Pki::write`] and [`Pki::write_new`] put the files in `dir`.
    pub fn in_dir(dir: &Path) -> PkiPaths {
        PkiPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            device_ca_cert: dir.join("device-ca.pem"),
            device_ca_key: dir.join("device-ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// Where [`DeviceCredentials::write`] put its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePaths {
    pub dir: PathBuf,
    /// Leaf followed by the device CA.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA: what rcgen needs to issue, and its certificate.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

impl Ca {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

pub struct Pki {
    root: Ca,
    device_ca: Ca,
    server_der: CertificateDer<'static>,
    server_key: KeyPair,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pki { .. }")
    }
}

/// Key type of a test device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKeyType {
    P256,
    /// Signs ES384; the gate may accept it (spec §1).
    P384,
    Ed25519,
}

/// The leaf's keyUsage extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKeyUsage {
    DigitalSignature,
    /// keyEncipherment only: the leaf is not for signing.
    WithoutDigitalSignature,
    Absent,
}

/// Who signs a device certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceIssuer {
    DeviceCa,
    Root,
    SelfSigned,
}

/// Everything a test may vary about a device certificate.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub name: String,
    /// `None`: a subject without O, which the gate must still handle.
    pub org: Option<String>,
    pub ou: Option<String>,
    pub key: DeviceKeyType,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub key_usage: LeafKeyUsage,
    pub client_auth_eku: bool,
    pub issuer: DeviceIssuer,
}

impl DeviceSpec {
    /// The defaults of [`Pki::issue_device`]: P-256, valid from an hour ago
    /// for a year, digitalSignature, clientAuth, issued by the device CA.
    pub fn new(name: &str, org: &str) -> DeviceSpec {
        let now = OffsetDateTime::now_utc();
        DeviceSpec {
            name: name.to_owned(),
            org: Some(org.to_owned()),
            ou: None,
            key: DeviceKeyType::P256,
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(365),
            key_usage: LeafKeyUsage::DigitalSignature,
            client_auth_eku: true,
            issuer: DeviceIssuer::DeviceCa,
        }
    }
}

/// A device's certificate and key.
#[derive(Clone)]
pub struct DeviceCredentials {
    pub cert_der: CertificateDer<'static>,
    /// `[leaf, device CA]`, or `[leaf]` when not issued by the device CA.
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pem: String,
    key: Arc<SigningKey>,
    serial: SerialNumber,
}

impl fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("chain_len", &self.chain.len())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl DeviceCredentials {
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The certificate's serial number: the bytes of the DER INTEGER, as a
    /// CRL entry names it.
    pub fn serial(&self) -> &[u8] {
        self.serial.as_ref()
    }

    /// Reads what [`DeviceCredentials::write`] wrote in `dir`.
    pub fn read(dir: &Path) -> Result<DeviceCredentials, PkiError> {
        let cert_path = dir.join("cert.pem");
        let text = read_to_string(&cert_path)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| PkiError::BadPem {
                path: cert_path.clone(),
                what: "certificate",
            })?;
        let bad_cert = || PkiError::BadPem {
            path: cert_path.clone(),
            what: "X.509 certificate",
        };
        let cert_der = chain.first().cloned().ok_or_else(bad_cert)?;
        let (_, parsed) = X509Certificate::from_der(cert_der.as_ref()).map_err(|_| bad_cert())?;
        let serial = SerialNumber::from_slice(parsed.raw_serial());
        let key_pem = read_to_string(&dir.join("key.pem"))?;
        let key = Arc::new(SigningKey::from_pem(&key_pem)?);
        Ok(DeviceCredentials {
            cert_der,
            chain,
            key_pem,
            key,
            serial,
        })
    }

    /// `cert.pem` (leaf, then the device CA, so `curl --cert cert.pem --key
    /// key.pem` presents the chain) and `key.pem` (0600). Refuses to replace
    /// an existing key.
    pub fn write(&self, dir: &Path) -> Result<DevicePaths, PkiError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let paths = DevicePaths {
            dir: dir.to_owned(),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        write_file(&paths.key, self.key_pem.as_bytes(), Secret::NewOnly)?;
        write_file(&paths.cert, pem_chain(&self.chain).as_bytes(), Secret::No)?;
        Ok(paths)
    }
}

impl Pki {
    pub fn generate() -> Result<Pki, PkiError> {
        Self::generate_with_server_names(&[])
    }

    /// A PKI whose server certificate also covers these DNS names (beside
    /// localhost and the loopback addresses), for tests that route by host.
    pub fn generate_with_server_names(names: &[&str]) -> Result<Pki, PkiError> {
        let now = OffsetDateTime::now_utc();
        Self::generate_inner(
            now - Duration::hours(1),
            now + Duration::days(5 * 365),
            names,
        )
    }

    /// For tests of an expired or not-yet-valid intermediate.
    pub fn generate_with_device_ca_validity(
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Pki, PkiError> {
        Self::generate_inner(not_before, not_after, &[])
    }

    fn generate_inner(
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        server_names: &[&str],
    ) -> Result<Pki, PkiError> {
        let now = OffsetDateTime::now_utc();
        let mut root_params = ca_params("posture-gate development root CA", 1);
        root_params.not_before = now - Duration::hours(1);
        root_params.not_after = now + Duration::days(10 * 365);
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let root_der = root_params.self_signed(&root_key)?.der().clone();
        let root = Ca {
            params: root_params,
            key: root_key,
            der: root_der,
        };

        let mut device_params = ca_params("posture-gate development device CA", 0);
        device_params.not_before = not_before;
        device_params.not_after = not_after;
        device_params.use_authority_key_identifier_extension = true;
        let device_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let device_der = device_params
            .signed_by(&device_key, &root.issuer())?
            .der()
            .clone();
        let device_ca = Ca {
            params: device_params,
            key: device_key,
            der: device_der,
        };

        let (server_der, server_key) = server_cert(&root, server_names)?;
        Ok(Pki {
            root,
            device_ca,
            server_der,
            server_key,
        })
    }

    /// A new server certificate and key (PEM) from the same root, for
    /// localhost and `names`: what a certificate rotation delivers. The
    /// PKI's own server certificate stays as it is.
    pub fn issue_server_pem(&self, names: &[&str]) -> Result<(String, String), PkiError> {
        let (der, key) = server_cert(&self.root, names)?;
        Ok((pem("CERTIFICATE", &der), key.serialize_pem()))
    }

    pub fn root_cert_der(&self) -> &CertificateDer<'static> {
        &self.root.der
    }

    pub fn device_ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.device_ca.der
    }

    /// The server certificate for localhost, 127.0.0.1 and ::1, issued by the
    /// root (which clients trust as `ca.pem`), so its chain is the leaf alone.
    pub fn server_cert_der(&self) -> &CertificateDer<'static> {
        &self.server_der
    }

    pub fn server_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.server_key.serialize_der().into())
    }

    /// ca.pem, ca.key, device-ca.pem, device-ca.key, server.pem, server.key;
    /// keys 0600. Replaces existing files (see [`Pki::write_new`] for the
    /// careful one).
    pub fn write(&self, dir: &Path) -> Result<PkiPaths, PkiError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let paths = PkiPaths::in_dir(dir);
        self.write_to(&paths, Secret::Replace)?;
        Ok(paths)
    }

    /// The same files, but never over an existing key: a CA key that is
    /// already there stays, and the write fails with
    /// [`PkiError::AlreadyExists`] (what `posture-gate pki init` promises).
    pub fn write_new(&self, dir: &Path) -> Result<PkiPaths, PkiError> {
        let paths = PkiPaths::in_dir(dir);
        if paths.ca_key.exists() {
            return Err(PkiError::AlreadyExists(paths.ca_key));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        // create_new on every key closes the race with a second writer.
        self.write_to(&paths, Secret::NewOnly)?;
        Ok(paths)
    }

    fn write_to(&self, paths: &PkiPaths, secret: Secret) -> Result<(), PkiError> {
        write_file(
            &paths.ca_key,
            self.root.key.serialize_pem().as_bytes(),
            secret,
        )?;
        write_file(
            &paths.ca_cert,
            pem("CERTIFICATE", &self.root.der).as_bytes(),
            Secret::No,
        )?;
        let dk = self.device_ca.key.serialize_pem();
        write_file(&paths.device_ca_key, dk.as_bytes(), secret)?;
        let dc = pem("CERTIFICATE", &self.device_ca.der);
        write_file(&paths.device_ca_cert, dc.as_bytes(), Secret::No)?;
        let sk = self.server_key.serialize_pem();
        write_file(&paths.server_key, sk.as_bytes(), secret)?;
        let sc = pem("CERTIFICATE", &self.server_der);
        write_file(&paths.server_cert, sc.as_bytes(), Secret::No)
    }

    /// Reads a PKI written by [`Pki::write`], to issue more devices.
    pub fn load(dir: &Path) -> Result<Pki, PkiError> {
        let root = load_ca(&dir.join("ca.pem"), &dir.join("ca.key"))?;
        let device_ca = load_ca(&dir.join("device-ca.pem"), &dir.join("device-ca.key"))?;
        let server_path = dir.join("server.pem");
        let server_der = read_cert(&server_path)?;
        let server_key = read_key(&dir.join("server.key"))?;
        Ok(Pki {
            root,
            device_ca,
            server_der,
            server_key,
        })
    }

    /// P-256 key, CN=name, O=org[, OU=ou], clientAuth, digitalSignature,
    /// valid for a year, issued by the device CA.
    pub fn issue_device(
        &self,
        name: &str,
        org: &str,
        ou: Option<&str>,
    ) -> Result<DeviceCredentials, PkiError> {
        let mut spec = DeviceSpec::new(name, org);
        spec.ou = ou.map(str::to_owned);
        self.issue_device_with(spec)
    }

    pub fn issue_device_with(&self, spec: DeviceSpec) -> Result<DeviceCredentials, PkiError> {
        let alg = match spec.key {
            DeviceKeyType::P256 => &PKCS_ECDSA_P256_SHA256,
            DeviceKeyType::P384 => &PKCS_ECDSA_P384_SHA384,
            DeviceKeyType::Ed25519 => &PKCS_ED25519,
        };
        let key = KeyPair::generate_for(alg)?;
        let serial = random_serial();
        let params = device_params(&spec, serial.clone());
        let (cert, chain_tail) = match spec.issuer {
            DeviceIssuer::DeviceCa => (
                params.signed_by(&key, &self.device_ca.issuer())?,
                vec![self.device_ca.der.clone()],
            ),
            DeviceIssuer::Root => (params.signed_by(&key, &self.root.issuer())?, vec![]),
            DeviceIssuer::SelfSigned => (params.self_signed(&key)?, vec![]),
        };
        let cert_der = cert.der().clone();
        let key_pem = key.serialize_pem();
        let signing_key = SigningKey::from_pem(&key_pem)?;
        let mut chain = vec![cert_der.clone()];
        chain.extend(chain_tail);
        Ok(DeviceCredentials {
            cert_der,
            chain,
            key_pem,
            key: Arc::new(signing_key),
            serial,
        })
    }

    /// A device certificate for the key of a verified request, with
    /// what [`Pki::issue_device_with`] would put in for `spec` (subject,
    /// validity, keyUsage, clientAuth), issued by the device CA: nothing
    /// the request asked for besides its key reaches the certificate.
    /// Returns `[leaf, device CA]`.
    pub fn issue_for_request(
        &self,
        request: &DeviceRequest,
        spec: &DeviceSpec,
    ) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        let params = device_params(spec, random_serial());
        let cert = params.signed_by(&request.key, &self.device_ca.issuer())?;
        Ok(vec![cert.der().clone(), self.device_ca.der.clone()])
    }

    /// A CRL of the device CA revoking these devices (reason keyCompromise),
    /// valid from a minute ago for an hour. The devices are named by serial
    /// alone, so list only devices the device CA issued.
    pub fn device_crl(
        &self,
        revoked: &[&DeviceCredentials],
    ) -> Result<CertificateRevocationListDer<'static>, PkiError> {
        let now = OffsetDateTime::now_utc();
        self.device_crl_valid(
            revoked,
            now - Duration::minutes(1),
            now + Duration::hours(1),
        )
    }

    /// [`Pki::device_crl`] with the given thisUpdate and nextUpdate: a CRL
    /// about to go, or already gone, out of date.
    pub fn device_crl_valid(
        &self,
        revoked: &[&DeviceCredentials],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<CertificateRevocationListDer<'static>, PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|d| RevokedCertParams {
                    serial_number: d.serial.clone(),
                    revocation_time: now - Duration::minutes(1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.device_ca.issuer())?;
        Ok(crl.der().clone())
    }
}

/// A CRL as PEM (`X509 CRL`), as the gate's `crls` setting reads it.
pub fn crl_pem(crl: &CertificateRevocationListDer<'_>) -> String {
    pem("X509 CRL", crl)
}

fn ca_params(cn: &str, path_len: u8) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "posture-gate development");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.serial_number = Some(random_serial());
    p
}

fn server_cert(
    root: &Ca,
    extra_names: &[&str],
) -> Result<(CertificateDer<'static>, KeyPair), PkiError> {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "posture-gate development");
    dn.push(DnType::CommonName, "localhost");
    p.distinguished_name = dn;
    p.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    for name in extra_names.iter().filter(|n| **n != "localhost") {
        // An address is an IP SAN: clients never match it against a DNS one.
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*name).try_into()?),
        };
        if !p.subject_alt_names.contains(&san) {
            p.subject_alt_names.push(san);
        }
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(365);
    p.use_authority_key_identifier_extension = true;
    p.serial_number = Some(random_serial());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let der = p.signed_by(&key, &root.issuer())?.der().clone();
    Ok((der, key))
}

/// Subject in DER order C, O, OU, CN, so RFC 4514 reads CN=…,OU=…,O=….
fn device_params(spec: &DeviceSpec, serial: SerialNumber) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(org) = &spec.org {
        dn.push(DnType::OrganizationName, org.as_str());
    }
    if let Some(ou) = &spec.ou {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    dn.push(DnType::CommonName, spec.name.as_str());
    p.distinguished_name = dn;
    p.not_before = spec.not_before;
    p.not_after = spec.not_after;
    p.key_usages = match spec.key_usage {
        LeafKeyUsage::DigitalSignature => vec![KeyUsagePurpose::DigitalSignature],
        LeafKeyUsage::WithoutDigitalSignature => vec![KeyUsagePurpose::KeyEncipherment],
        LeafKeyUsage::Absent => vec![],
    };
    if spec.client_auth_eku {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    p.use_authority_key_identifier_extension = spec.issuer != DeviceIssuer::SelfSigned;
    p.serial_number = Some(serial);
    p
}

/// 16 random bytes, positive and without a leading zero byte, so the DER
/// INTEGER is minimal.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn load_ca(cert_path: &Path, key_path: &Path) -> Result<Ca, PkiError> {
    let der = read_cert(cert_path)?;
    let key = read_key(key_path)?;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|_| PkiError::BadPem {
        path: cert_path.to_owned(),
        what: "X.509 certificate",
    })?;
    let mut params = ca_params("", 0);
    params.distinguished_name =
        reproduce_subject(&cert).map_err(|why| PkiError::UnsupportedCa {
            path: cert_path.to_owned(),
            why,
        })?;
    Ok(Ca { params, key, der })
}

/// rcgen writes an issuer name from parameters: rebuild the CA's subject so
/// that issued certificates name it byte for byte as the CA encodes it.
fn reproduce_subject(cert: &X509Certificate<'_>) -> Result<DistinguishedName, &'static str> {
    let mut dn = DistinguishedName::new();
    for atv in cert.subject().iter_attributes() {
        let ty = match atv.attr_type().as_bytes() {
            [0x55, 0x04, 0x03] => DnType::CommonName,
            [0x55, 0x04, 0x06] => DnType::CountryName,
            [0x55, 0x04, 0x07] => DnType::LocalityName,
            [0x55, 0x04, 0x08] => DnType::StateOrProvinceName,
            [0x55, 0x04, 0x0a] => DnType::OrganizationName,
            [0x55, 0x04, 0x0b] => DnType::OrganizationalUnitName,
            _ => return Err("an attribute type other than CN, C, L, ST, O, OU"),
        };
        if dn.get(&ty).is_some() {
            return Err("a repeated attribute type");
        }
        let text = atv.as_str().map_err(|_| "an attribute that is not text")?;
        let value = match atv.attr_value().header.tag().0 {
            12 => DnValue::Utf8String(text.to_owned()),
            19 => {
                DnValue::PrintableString(text.try_into().map_err(|_| "an invalid PrintableString")?)
            }
            _ => return Err("a string type other than UTF8String or PrintableString"),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

fn read_to_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_err(path))
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let text = read_to_string(path)?;
    CertificateDer::from_pem_slice(text.as_bytes()).map_err(|_| PkiError::BadPem {
        path: path.to_owned(),
        what: "certificate",
    })
}

fn read_key(path: &Path) -> Result<KeyPair, PkiError> {
    let text = read_to_string(path)?;
    KeyPair::from_pem(&text).map_err(|_| PkiError::BadPem {
        path: path.to_owned(),
        what: "PKCS#8 private key",
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_chain(chain: &[CertificateDer<'_>]) -> String {
    chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Secret {
    /// A certificate: replaced, default mode.
    No,
    /// A key, replaced if present; 0600.
    Replace,
    /// A key that must not exist yet; 0600.
    NewOnly,
}

fn write_file(path: &Path, contents: &[u8], secret: Secret) -> Result<(), PkiError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    match secret {
        Secret::NewOnly => opts.create_new(true),
        _ => opts.create(true).truncate(true),
    };
    #[cfg(unix)]
    if secret != Secret::No {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::AlreadyExists(path.to_owned())
        } else {
            io_err(path)(e)
        }
    })?;
    // `mode` applies only on creation: tighten a replaced key file too.
    #[cfg(unix)]
    if secret != Secret::No {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(path))?;
    }
    file.write_all(contents).map_err(io_err(path))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A PKCS#10 certificate request whose self-signature verified, with a
/// key of a type the gate accepts for devices.
#[derive(Debug)]
pub struct DeviceRequest {
    /// The subject's CN, O and OU as the request wrote them (the first of
    /// each), for the caller to check before issuing.
    pub common_name: Option<String>,
    pub organization: Option<String>,
    pub unit: Option<String>,
    /// "P-256", "P-384" or "Ed25519".
    pub key_type: &'static str,
    key: RequestKey,
}

#[derive(Debug)]
struct RequestKey {
    alg: &'static rcgen::SignatureAlgorithm,
    bits: Vec<u8>,
}

impl rcgen::PublicKeyData for RequestKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// Reads a certificate request (PEM `CERTIFICATE REQUEST`, or DER) and
/// checks what issuing depends on: the signature by its own key (proof the
/// sender holds that key), a key type a device may have (P-256, P-384 or
/// Ed25519, as `issue-device`: the agent signs attestations with it and the
/// gate accepts ES256, ES384 and EdDSA only, so RSA is refused), and no
/// request to be a CA or to sign certificates or CRLs. Every other
/// requested extension (subjectAltName, extendedKeyUsage, ...) is ignored:
/// the certificate gets exactly what `issue-device` gives.
pub fn read_device_request(bytes: &[u8]) -> Result<DeviceRequest, PkiError> {
    use rustls_pki_types::CertificateSigningRequestDer;
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::cri_attributes::ParsedCriAttribute;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::oid_registry as oids;
    let bad = |why: &str| PkiError::Csr(why.to_string());
    let der: Vec<u8> = if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        // Windows certreq and Java keytool write the older label.
        let text = String::from_utf8_lossy(bytes)
            .replace(
                "-----BEGIN NEW CERTIFICATE REQUEST-----",
                "-----BEGIN CERTIFICATE REQUEST-----",
            )
            .replace(
                "-----END NEW CERTIFICATE REQUEST-----",
                "-----END CERTIFICATE REQUEST-----",
            );
        CertificateSigningRequestDer::from_pem_slice(text.as_bytes())
            .map_err(|e| bad(&format!("no PEM CERTIFICATE REQUEST in it ({e})")))?
            .as_ref()
            .to_vec()
    } else {
        bytes.to_vec()
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| bad(&format!("not a PKCS#10 certificate request: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the certificate request"));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let key_alg = &spki.algorithm.algorithm;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let bits = spki.subject_public_key.data.to_vec();
    use aws_lc_rs::signature as sig;
    let sig_alg = &csr.signature_algorithm.algorithm;
    let (key_type, alg, verify): (_, _, &'static dyn sig::VerificationAlgorithm) =
        if *key_alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY && curve == Some(oids::OID_EC_P256) {
            if *sig_alg != oids::OID_SIG_ECDSA_WITH_SHA256 {
                return Err(bad(
                    "a P-256 key must sign its request with ecdsa-with-SHA256",
                ));
            }
            (
                "P-256",
                &PKCS_ECDSA_P256_SHA256,
                &sig::ECDSA_P256_SHA256_ASN1,
            )
        } else if *key_alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY
            && curve == Some(oids::OID_NIST_EC_P384)
        {
            if *sig_alg != oids::OID_SIG_ECDSA_WITH_SHA384 {
                return Err(bad(
                    "a P-384 key must sign its request with ecdsa-with-SHA384",
                ));
            }
            (
                "P-384",
                &PKCS_ECDSA_P384_SHA384,
                &sig::ECDSA_P384_SHA384_ASN1,
            )
        } else if *key_alg == oids::OID_SIG_ED25519 {
            if *sig_alg != oids::OID_SIG_ED25519 {
                return Err(bad("an Ed25519 key must sign its request with Ed25519"));
            }
            ("Ed25519", &PKCS_ED25519, &sig::ED25519)
        } else if *key_alg == oids::OID_PKCS1_RSAENCRYPTION {
            return Err(bad(
                "the key is RSA; device keys are P-256, P-384 or Ed25519 (the gate accepts \
                 attestations signed ES256, ES384 or EdDSA only): make the request with \
                 openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256",
            ));
        } else {
            return Err(bad(
                "the key type is not one a device may have (P-256, P-384 or Ed25519)",
            ));
        };
    sig::UnparsedPublicKey::new(verify, &bits)
        .verify(info.raw, &csr.signature_value.data)
        .map_err(|_| {
            bad(
                "its signature does not verify with its own key: the request was altered or \
                 damaged on the way; ask for a new one",
            )
        })?;
    for attr in info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(req) = attr.parsed_attribute() else {
            continue;
        };
        for ext in &req.extensions {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) if bc.ca => {
                    return Err(bad(
                        "it asks to be a CA (basicConstraints CA:TRUE); a device certificate \
                         never is",
                    ))
                }
                ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
                    return Err(bad(
                        "it asks for keyCertSign or cRLSign; a device certificate signs \
                         neither certificates nor CRLs",
                    ))
                }
                _ => {}
            }
        }
    }
    let first = |attrs: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        attrs.and_then(|a| a.as_str().ok()).map(str::to_owned)
    };
    let common_name = first(info.subject.iter_common_name().next());
    let organization = first(info.subject.iter_organization().next());
    let unit = first(info.subject.iter_organizational_unit().next());
    Ok(DeviceRequest {
        common_name,
        organization,
        unit,
        key_type,
        key: RequestKey { alg, bits },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_lines_are_64_columns() {
        let p = pem("CERTIFICATE", &[0u8; 100]);
        assert!(p.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        let der = CertificateDer::from_pem_slice(p.as_bytes()).unwrap();
        assert_eq!(der.as_ref(), &[0u8; 100][..]);
    }
}
