//! The TLS front: rustls with the aws-lc-rs provider passed explicitly, TLS
//! 1.2 and 1.3, ALPN for HTTP/2 and HTTP/1.1, and a client certificate that
//! is requested but optional, so a device without one gets a page that says
//! so instead of a TLS alert nobody can read. A certificate that is presented
//! must chain to the client-CA bundle and pass the CRLs when configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::snapshot::ServerSettings;

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

pub const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Builds the server config from files; called at start and on each reload,
/// because CRLs and CAs are fixed once a verifier is built.
pub fn server_config(settings: &ServerSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
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
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
/// (see `gate::revocation`); the same reading as the verifier's.
pub fn read_crl_files(
    paths: &[PathBuf],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        crls.extend(read_crls(path)?);
    }
    Ok(crls)
}
