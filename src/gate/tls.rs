//! The TLS front: rustls with the aws-lc-rs provider passed explicitly, TLS
//! 1.2 and 1.3, ALPN for HTTP/2 and HTTP/1.1, and a client certificate that
//! is requested but optional, so a device without one gets a page that says
//! so instead of a TLS alert nobody can read. A certificate that is presented
//! must chain to the client-CA bundle and pass the CRLs when configured.
//!
//! On top of webpki's checks, a presented certificate must carry the
//! clientAuth extended key usage (webpki accepts a leaf without any EKU
//! extension, RFC 5280's reading; a device certificate always has one, so a
//! leaf without it is not a device certificate), and the client may send at
//! most [`MAX_CLIENT_INTERMEDIATES`] intermediates. A certificate that fails
//! any check fails the handshake with a TLS alert, like an untrusted one.
//!
//! The server picks the cipher suite, in the order of the Dutch NCSC's TLS
//! guidelines (security level "good"): see [`server_provider`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::aws_lc_rs::cipher_suite;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, SignatureScheme, SupportedCipherSuite,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use posture_core::config::snapshot::ServerSettings;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read certificates: {reason}", path.display())]
    Certificates { path: PathBuf, reason: String },
    #[error("{}: cannot read the private key: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("{}: cannot read the CRL: {reason}", path.display())]
    Crl { path: PathBuf, reason: String },
    #[error("{}: no certificate in the file", path.display())]
    Empty { path: PathBuf },
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The front's cipher suites, in the order of the NCSC's "IT Security
/// Guidelines for Transport Layer Security" (2025), security level "good":
/// TLS 1.3 AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM; TLS 1.2 only ECDHE
/// with AEAD ciphers, ECDSA before RSA, each AES-256-GCM, ChaCha20-Poly1305,
/// AES-128-GCM. With `ignore_client_order` the server chooses from this
/// list, so a client that prefers a weaker suite still gets the strongest
/// both support. (The upstream client keeps rustls' defaults: it must talk
/// to whatever the internal apps offer.)
pub const SERVER_CIPHER_SUITES: &[SupportedCipherSuite] = &[
    cipher_suite::TLS13_AES_256_GCM_SHA384,
    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS13_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// The provider of the TLS front: aws-lc-rs with [`SERVER_CIPHER_SUITES`].
pub fn server_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: SERVER_CIPHER_SUITES.to_vec(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    })
}

/// Most intermediate certificates a client may send with its own: the
/// bound the attestation spec puts on `x5c` (leaf first, 1 to 4 entries),
/// so a device that can attest can also connect. The client-CA bundle
/// should hold the CA that issues device certificates, so a device needs
/// none; three leave room for an organisation's hierarchy. webpki itself
/// builds paths of up to six intermediates and tries every certificate
/// sent; a peer that has not yet proven anything gets less.
pub const MAX_CLIENT_INTERMEDIATES: usize = 3;

pub const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Builds the server config from files; called at start and on each reload,
/// because CRLs and CAs are fixed once a verifier is built.
pub fn server_config(settings: &ServerSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = server_provider();
    let chain = read_certs(&settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| TlsError::Key {
        path: settings.key.clone(),
        reason: e.to_string(),
    })?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&settings.client_ca)? {
        roots.add(ca).map_err(|e| TlsError::Certificates {
            path: settings.client_ca.clone(),
            reason: e.to_string(),
        })?;
    }
    let mut crls = Vec::new();
    for path in &settings.crls {
        crls.extend(read_crls(path)?);
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        // An out-of-date CRL no longer says who is revoked: refuse rather
        // than trust a certificate on stale information.
        .enforce_revocation_expiration()
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = Arc::new(DeviceCertVerifier { inner: verifier });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's preference, not the client's (NCSC guideline; testssl.sh
    // reports its absence as "NOT a cipher order configured").
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// A client certificate chain with more intermediates than allowed.
#[derive(Debug, thiserror::Error)]
#[error("the client sent {sent} intermediate certificates; at most {MAX_CLIENT_INTERMEDIATES} are accepted")]
pub struct ChainTooLong {
    pub sent: usize,
}

/// webpki's client verifier with the gate's own rules on top (see the
/// module docs): a bounded chain before any work, and the clientAuth EKU
/// after webpki has verified the chain, so only a trusted certificate is
/// parsed a second time.
#[derive(Debug)]
struct DeviceCertVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeviceCertVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if intermediates.len() > MAX_CLIENT_INTERMEDIATES {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(ChainTooLong {
                    sent: intermediates.len(),
                })),
            )));
        }
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if !has_client_auth_eku(end_entity) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// Whether the certificate has an extended key usage extension that lists
/// clientAuth. Absent, unparsable or without clientAuth: no.
fn has_client_auth_eku(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(cert.as_ref()) else {
        return false;
    };
    matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth)
}

pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::Certificates {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A CRL file is PEM (one or more `X509 CRL` blocks) or a single DER CRL.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::Crl {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let pem = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Crl {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    // DER starts with an ASN.1 SEQUENCE tag; anything else is not a CRL.
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Err(TlsError::Crl {
        path: path.to_path_buf(),
        reason: "neither PEM nor DER".into(),
    })
}

/// Every CRL of these files, for the revocation check after the handshake
/// (see `posture_core::revocation`); the same reading as the verifier's.
pub fn read_crl_files(
    paths: &[PathBuf],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        crls.extend(read_crls(path)?);
    }
    Ok(crls)
}
