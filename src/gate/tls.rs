//! The TLS front: rustls with the aws-lc-rs provider passed explicitly, TLS
//! 1.2 and 1.3, ALPN for HTTP/2 and HTTP/1.1, and a client certificate that
//! is requested but optional, so a device without one gets a page that says
//! so instead of a TLS alert nobody can read.
//!
//! A certificate that is presented gets a page too when it fails (issue 19
//! point 2): the handshake verifier ([`AnyClientCert`]) lets every
//! certificate through the handshake, still checking that the client holds
//! its key (CertificateVerify), and the connection is then judged by
//! [`DeviceVerifier`] alone, on the chain the handshake left
//! (`conn::conn_info`). rustls takes a verifier's `Ok` for "authenticated",
//! so nothing may take an identity from `peer_certificates()` without that
//! second verdict; it is also what makes a resumed session (which rustls
//! restores without asking any verifier) verified against the current CAs
//! and CRLs. A certificate that fails leaves the connection without any
//! identity: judged as one without a certificate, pages only, under the
//! same tight limits, with a page naming the problem ([`classify`]) and one
//! `tls_refused` audit line.
//!
//! [`DeviceVerifier`] is webpki's verifier (the client-CA bundle, the CRLs)
//! plus the gate's own rules: a presented certificate must carry the
//! clientAuth extended key usage (webpki accepts a leaf without any EKU
//! extension, RFC 5280's reading; a device certificate always has one, so a
//! leaf without it is not a device certificate), and the client may send at
//! most [`MAX_CLIENT_INTERMEDIATES`] intermediates. Forward-auth verifies
//! the certificates proxies forward with the very same verifier and
//! [`classify`].
//!
//! The server picks the cipher suite, in the order of the Dutch NCSC's TLS
//! guidelines (security level "good"): see [`server_provider`].

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::aws_lc_rs::cipher_suite;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, SignatureScheme, SupportedCipherSuite,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use posture_core::certificate::{CertProblem, RejectedCert};
use posture_core::config::snapshot::{ForwardAuthTls, ServerSettings};

/// The TLS material loaded and checked with the config, refused by rustls
/// all the same; each names the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: a client CA certificate is not usable: {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("{} with {}: the certificate and private key cannot be used together: {reason}", cert.display(), key.display())]
    CertifiedKey {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("client certificate verifier (client CA {}, CRLs {crls}): {reason}", client_ca.display())]
    Verifier {
        client_ca: PathBuf,
        /// The CRL files, comma-separated.
        crls: String,
        reason: String,
    },
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

/// The server config of the TLS front, and its client-certificate
/// verifier on its own: every connection's certificate is judged by it
/// after the handshake, and forward-auth checks the certificates proxies
/// forward with the very same rules.
pub struct Front {
    pub config: Arc<ServerConfig>,
    pub devices: Arc<DeviceVerifier>,
}

/// Builds the server config from the snapshot's DER (read once at load,
/// see `ServerSettings`); called at start and on each reload, because CRLs
/// and CAs are fixed once a verifier is built.
pub fn server_config(settings: &ServerSettings) -> Result<Front, TlsError> {
    let provider = server_provider();
    let mut roots = RootCertStore::empty();
    for ca in &settings.client_cas {
        roots.add(ca.clone()).map_err(|e| TlsError::ClientCa {
            path: settings.client_ca.clone(),
            reason: e.to_string(),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(settings.revocation_lists.iter().cloned())
        // An out-of-date CRL no longer says who is revoked: refuse rather
        // than trust a certificate on stale information.
        .enforce_revocation_expiration()
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier {
            client_ca: settings.client_ca.clone(),
            crls: settings
                .crls
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            reason: e.to_string(),
        })?;
    let devices = Arc::new(DeviceVerifier { inner: verifier });
    let handshake = Arc::new(AnyClientCert {
        devices: devices.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(handshake)
        .with_single_cert(
            settings.cert_chain.clone(),
            settings.private_key.clone_key(),
        )
        .map_err(|e| TlsError::CertifiedKey {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // The server's preference, not the client's (NCSC guideline; testssl.sh
    // reports its absence as "NOT a cipher order configured").
    config.ignore_client_order = true;
    Ok(Front {
        config: Arc::new(config),
        devices,
    })
}

/// The server config of the forward-auth listener with mutual TLS: a
/// proxy must show a certificate of `proxy_ca` (no page for anyone else,
/// just the TLS alert), HTTP/1.1 by ALPN, the front's suites.
pub fn proxy_server_config(tls: &ForwardAuthTls) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = server_provider();
    let mut roots = RootCertStore::empty();
    for ca in &tls.proxy_cas {
        roots.add(ca.clone()).map_err(|e| TlsError::ClientCa {
            path: tls.proxy_ca.clone(),
            reason: e.to_string(),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier {
            client_ca: tls.proxy_ca.clone(),
            crls: String::new(),
            reason: e.to_string(),
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls.cert_chain.clone(), tls.private_key.clone_key())
        .map_err(|e| TlsError::CertifiedKey {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            reason: e.to_string(),
        })?;
    // HTTP/1.1 only: the proxies and RADIUS servers that ask keep pools of
    // HTTP/1.1 connections anyway, and an HTTP/2 refusal of a request whose
    // body was not read ends in a stream reset that curl (FreeRADIUS'
    // rlm_rest) reports as a framing error instead of the gate's 403.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
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
/// parsed a second time. Not a handshake verifier itself: see
/// [`AnyClientCert`].
#[derive(Debug)]
pub struct DeviceVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl DeviceVerifier {
    /// Whether `end_entity` (sent with `intermediates`) is a device
    /// certificate of the client CA, valid and not revoked at `now`.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if intermediates.len() > MAX_CLIENT_INTERMEDIATES {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(ChainTooLong {
                    sent: intermediates.len(),
                })),
            )));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if !has_client_auth_eku(end_entity) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ));
        }
        Ok(())
    }

    /// The verdict on a chain as a client sent it (leaf first): `Ok` for a
    /// device certificate, else the problem and what the leaf says. An
    /// empty chain is no certificate, and not asked about.
    pub fn judge(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Arc<RejectedCert>> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Arc::new(RejectedCert::bare(CertProblem::Other)));
        };
        self.verify(leaf, intermediates, now)
            .map_err(|e| Arc::new(RejectedCert::of(classify(&e), leaf.as_ref())))
    }
}

/// The handshake's verifier: any certificate completes the handshake, so
/// a failing one gets a page rather than a TLS alert; everything else is
/// webpki's, CertificateVerify included, so a client still proves that it
/// holds the key of whatever it sent. Its `Ok` means nothing: the
/// connection's identity comes only from [`DeviceVerifier::judge`].
#[derive(Debug)]
struct AnyClientCert {
    devices: Arc<DeviceVerifier>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        self.devices.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.devices.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.devices.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Judged once the handshake is done (`conn::conn_info`), where the
        // verdict belongs to this connection; a verifier is shared.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.devices
            .inner
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.devices
            .inner
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.devices.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.devices.inner.requires_raw_public_keys()
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

/// The problem behind a verifier's error: the one classification of the
/// TLS front and forward-auth.
pub fn classify(error: &rustls::Error) -> CertProblem {
    let rustls::Error::InvalidCertificate(e) = error else {
        return CertProblem::Other;
    };
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => CertProblem::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            CertProblem::NotYetValid
        }
        CertificateError::UnknownIssuer => CertProblem::UnknownIssuer,
        CertificateError::Revoked => CertProblem::Revoked,
        CertificateError::UnknownRevocationStatus
        | CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => CertProblem::RevocationUnknown,
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            CertProblem::BadPurpose
        }
        CertificateError::BadSignature => CertProblem::BadSignature,
        CertificateError::BadEncoding => CertProblem::Unreadable,
        CertificateError::Other(OtherError(inner)) if inner.is::<ChainTooLong>() => {
            CertProblem::ChainTooLong
        }
        _ => CertProblem::Other,
    }
}
