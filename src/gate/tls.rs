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

use posture_core::audit::TlsRefusal;
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
/// verifier on its own: forward-auth checks the certificates proxies
/// forward with the very same rules.
pub struct Front {
    pub config: Arc<ServerConfig>,
    pub devices: Arc<dyn ClientCertVerifier>,
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
    let verifier: Arc<dyn ClientCertVerifier> = Arc::new(DeviceCertVerifier { inner: verifier });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier.clone())
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
        devices: verifier,
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
/// parsed a second time.
#[derive(Debug)]
struct DeviceCertVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl DeviceCertVerifier {
    fn verify(
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
        let result = self.verify(end_entity, intermediates, now);
        if let Err(e) = &result {
            note_refusal(end_entity, e);
        }
        result
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

/// A client certificate the front refused at the handshake, for the
/// `tls_refused` audit line. The verifier is shared by every connection
/// and has no context of its own, so it leaves the refusal in a
/// thread-local: rustls calls it inside the poll of the handshake that then
/// fails, on the same thread, and [`watch_handshake`] takes it out after
/// exactly that poll (and clears it before every poll, so nothing of
/// another connection is ever taken).
#[derive(Debug, Clone)]
pub(super) struct Refused {
    pub reason: TlsRefusal,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub serial: Option<String>,
}

thread_local! {
    static REFUSED: std::cell::RefCell<Option<Refused>> = const { std::cell::RefCell::new(None) };
}

/// Polls a TLS handshake; when it fails because the verifier refused the
/// client's certificate, `refused` gets the refusal.
pub(super) async fn watch_handshake<F, T>(
    handshake: F,
    refused: &mut Option<Refused>,
) -> std::io::Result<T>
where
    F: std::future::Future<Output = std::io::Result<T>>,
{
    let mut handshake = std::pin::pin!(handshake);
    std::future::poll_fn(|cx| {
        REFUSED.with(|r| r.borrow_mut().take());
        let poll = handshake.as_mut().poll(cx);
        if let std::task::Poll::Ready(Err(_)) = &poll {
            *refused = REFUSED.with(|r| r.borrow_mut().take());
        }
        poll
    })
    .await
}

/// The audit reason of a verifier's error.
fn refusal_reason(error: &rustls::Error) -> TlsRefusal {
    let rustls::Error::InvalidCertificate(e) = error else {
        return TlsRefusal::Other;
    };
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsRefusal::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsRefusal::NotYetValid
        }
        CertificateError::UnknownIssuer => TlsRefusal::UnknownIssuer,
        CertificateError::Revoked => TlsRefusal::Revoked,
        CertificateError::UnknownRevocationStatus
        | CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => TlsRefusal::RevocationUnknown,
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            TlsRefusal::BadPurpose
        }
        CertificateError::BadSignature => TlsRefusal::BadSignature,
        CertificateError::Other(OtherError(inner)) if inner.is::<ChainTooLong>() => {
            TlsRefusal::ChainTooLong
        }
        _ => TlsRefusal::Other,
    }
}

/// Leaves the refusal for [`watch_handshake`]; the leaf is parsed only
/// here, for a refused certificate.
fn note_refusal(end_entity: &CertificateDer<'_>, error: &rustls::Error) {
    let parsed = X509Certificate::from_der(end_entity.as_ref()).ok();
    let (subject, issuer, serial) = match &parsed {
        Some((_, c)) => (
            Some(c.subject().to_string()),
            Some(c.issuer().to_string()),
            Some(hex::encode(c.raw_serial())),
        ),
        None => (None, None, None),
    };
    let refused = Refused {
        reason: refusal_reason(error),
        subject,
        issuer,
        serial,
    };
    REFUSED.with(|r| *r.borrow_mut() = Some(refused));
}
