//! The device certificate a proxy forwards: decoded in the proxy's
//! encoding, verified as the gate's own TLS front verifies the certificates
//! it is shown, and remembered per proxy by its exact header bytes.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cert_header::{self, CertHeaderError, HeaderFormat};
use crate::gate::tls::{self, DeviceVerifier, TlsError};
use posture_core::certificate::{CertProblem as Problem, RejectedCert};
use posture_core::config::model::ProxyKind;
use posture_core::config::snapshot::{ForwardAuthSettings, TrustedProxy};
use posture_core::device::DeviceIdentity;
use posture_core::revocation::CertId;

/// Verified certificates kept per proxy; a device asks again on every
/// request, so the verification (one or more signature checks) is done
/// once per certificate rather than per request.
const VERIFIED_CAPACITY: u64 = 10_000;
/// A verified certificate is checked again at least this often, so a
/// verifier with a changed notion of "valid" is never far behind. (A reload
/// starts with empty caches; CRLs are checked on every request anyway.)
const VERIFIED_TTL: Duration = Duration::from_secs(600);

/// A device certificate a proxy forwarded, verified.
pub(in crate::gate) struct ForwardedCert {
    pub identity: DeviceIdentity,
    pub der: CertificateDer<'static>,
    /// Issuer and serial of the leaf and the intermediates sent with it,
    /// for the CRL check on every request.
    pub cert_ids: Vec<CertId>,
    /// The leaf's notAfter, Unix seconds: past it, the remembered
    /// verification no longer holds.
    not_after: i64,
}

/// Why a forwarded certificate is refused. A header the gate cannot take
/// is the proxy's fault as much as the device's (`cert_untrusted`); a
/// certificate that does not verify or read is the device's, and is judged
/// as at the TLS front: no identity, the problem named (`Rejected`).
#[derive(Debug, thiserror::Error)]
pub(in crate::gate) enum CertProblem {
    #[error("the certificate header {0} was sent more than once")]
    Repeated(http::HeaderName),
    #[error("the certificate header does not decode: {0}")]
    Header(#[from] CertHeaderError),
    #[error("the certificate is refused ({}): {why}", rejected.code())]
    Rejected {
        rejected: Arc<RejectedCert>,
        why: String,
    },
}

impl CertProblem {
    /// The certificate refused as the TLS front would refuse it, if that
    /// is the problem.
    pub fn rejected(&self) -> Option<&Arc<RejectedCert>> {
        match self {
            CertProblem::Rejected { rejected, .. } => Some(rejected),
            _ => None,
        }
    }

    fn rejected_as(problem: Problem, leaf: &[u8], why: impl ToString) -> CertProblem {
        CertProblem::Rejected {
            rejected: Arc::new(RejectedCert::of(problem, leaf)),
            why: why.to_string(),
        }
    }
}

/// The forward-auth side of one config (a reload builds new ones).
pub(in crate::gate) struct Doors {
    /// The listener's mutual TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The TLS front's verifier of device certificates.
    devices: Arc<DeviceVerifier>,
    /// One cache per proxy, same index as `ForwardAuthSettings::proxies`:
    /// the same bytes mean different certificates in different encodings.
    verified: Vec<moka::sync::Cache<Box<[u8]>, Arc<ForwardedCert>>>,
}

impl Doors {
    pub fn new(
        settings: &ForwardAuthSettings,
        devices: Arc<DeviceVerifier>,
    ) -> Result<Doors, TlsError> {
        let tls = settings
            .tls
            .as_ref()
            .map(tls::proxy_server_config)
            .transpose()?;
        let verified = settings
            .proxies
            .iter()
            .map(|_| {
                moka::sync::Cache::builder()
                    .max_capacity(VERIFIED_CAPACITY)
                    .time_to_live(VERIFIED_TTL)
                    .build()
            })
            .collect();
        Ok(Doors {
            tls,
            devices,
            verified,
        })
    }

    /// The device certificate in the request from proxy number `index`:
    /// `Ok(None)` when there is none (the header absent or empty).
    pub fn device(
        &self,
        index: usize,
        proxy: &TrustedProxy,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Option<Arc<ForwardedCert>>, CertProblem> {
        let mut values = headers.get_all(&proxy.certificate_header).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        // Two copies: one may be the client's own, whichever the proxy
        // meant; neither is taken.
        if values.next().is_some() {
            return Err(CertProblem::Repeated(proxy.certificate_header.clone()));
        }
        let bytes = value.as_bytes();
        let cache = self.verified.get(index);
        if let Some(hit) = cache.and_then(|c| c.get(bytes)) {
            if now < hit.not_after {
                return Ok(Some(hit));
            }
        }
        // An empty list is no certificate: a rejected one would be named
        // by the fingerprint of nothing on the page and in the audit line.
        let Some(chain) =
            cert_header::decode(format_of(proxy.kind), bytes)?.filter(|chain| !chain.is_empty())
        else {
            return Ok(None);
        };
        let verified = Arc::new(self.verify(&chain, now)?);
        if let Some(cache) = cache {
            cache.insert(bytes.into(), verified.clone());
        }
        Ok(Some(verified))
    }

    fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        now: i64,
    ) -> Result<ForwardedCert, CertProblem> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(CertProblem::rejected_as(
                Problem::Unreadable,
                &[],
                "no certificate",
            ));
        };
        let at = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));
        self.devices
            .verify(leaf, intermediates, at)
            .map_err(|e| CertProblem::rejected_as(tls::classify(&e), leaf, e))?;
        let unreadable =
            |e: &dyn std::fmt::Display| CertProblem::rejected_as(Problem::Unreadable, leaf, e);
        let identity = DeviceIdentity::from_der(leaf).map_err(|e| unreadable(&e))?;
        let not_after = X509Certificate::from_der(leaf.as_ref())
            .map(|(_, c)| c.validity().not_after.timestamp())
            .map_err(|e| unreadable(&e))?;
        // As at the handshake: a certificate whose issuer and serial cannot
        // be read ends the list, and with CRLs configured is refused.
        let cert_ids = chain.iter().map_while(CertId::of).collect();
        Ok(ForwardedCert {
            identity,
            der: leaf.clone(),
            cert_ids,
            not_after,
        })
    }
}

/// Each kind's encoding; chosen by the configuration, never by the bytes.
pub(in crate::gate) fn format_of(kind: ProxyKind) -> HeaderFormat {
    match kind {
        ProxyKind::Nginx => HeaderFormat::EscapedPem,
        ProxyKind::Caddy | ProxyKind::Traefik => HeaderFormat::Base64Der,
        ProxyKind::Envoy => HeaderFormat::Xfcc,
    }
}

/// The SHA-256 of the leaf in a certificate header, without verifying it:
/// enough to tell whether a page request comes from the device that was
/// refused. `None` when the header is absent, empty or does not decode.
pub(in crate::gate) fn leaf_fingerprint(
    proxy: &TrustedProxy,
    headers: &HeaderMap,
) -> Option<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let value = headers.get(&proxy.certificate_header)?;
    let chain = cert_header::decode(format_of(proxy.kind), value.as_bytes()).ok()??;
    Some(Sha256::digest(chain.first()?.as_ref()).into())
}
