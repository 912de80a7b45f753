//! `posture-agent attest`: over mutual TLS with the device certificate, fetch
//! a challenge, sign the inventory with the nonce, post it, and read the
//! verdict. One TLS connection carries both requests, so the gate sees the
//! same client certificate for the challenge and the attestation.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

use posture_core::attestation::claims::Claims;
use posture_core::attestation::sign::{key_matches_certificate, sign_token, SigningKey};
use posture_core::attestation::Reason;
use posture_core::verdict::Verdict;

/// The largest answer the agent reads from a gate.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("cannot read {path}: {message}")]
    File { path: String, message: String },
    /// The device key exists but this user may not read it: on an installed
    /// device only the service account may (the caller tells the person to
    /// trigger the service instead).
    #[error("cannot read {0}: permission denied")]
    KeyNotReadable(String),
    #[error("the private key in {0} does not belong to the certificate")]
    KeyMismatch(String),
    #[error("{0}")]
    Key(String),
    #[error("bad gate URL {0:?}: use https://host[:port]")]
    Url(String),
    #[error("cannot reach the gate at {addr}: {message}")]
    Unreachable {
        addr: String,
        message: String,
        /// Nothing listens there (connection refused): a wrong port, or
        /// the gate is not running.
        refused: bool,
    },
    #[error("TLS with the gate failed: {0}")]
    Tls(String),
    /// The gate's server certificate does not chain to a trusted root:
    /// `ca` is the `--ca` file used, `None` for the system's roots.
    #[error("TLS with the gate failed: {detail} ({})", match ca {
        Some(ca) => format!("the gate's server certificate is not issued by a CA in {ca}"),
        None => "the gate's server certificate is not trusted by this system; pass the CA that issued it with --ca, or set ca in the configuration file".to_owned(),
    })]
    UntrustedServer { detail: String, ca: Option<String> },
    /// The gate ended the TLS session with an alert after the handshake:
    /// in TLS 1.3 that is how it rejects the client certificate.
    #[error("HTTP exchange with the gate failed: {0} (the gate rejected this device certificate: is it issued by the gate's client CA, valid now and not revoked?)")]
    CertRejected(String),
    #[error("HTTP exchange with the gate failed: {0}")]
    Http(String),
    #[error("the gate answered {status} to {what}: {body}")]
    Status {
        what: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("the gate refused the attestation: {reason}")]
    Refused {
        reason: Reason,
        /// The gate's `X-Posture-Reference`, the key to its audit event.
        reference: Option<String>,
    },
    #[error("could not sign the attestation: {0}")]
    Sign(String),
}

/// The device's credentials, checked to belong together.
pub struct Credentials {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: SigningKey,
    key_der: PrivateKeyDer<'static>,
}

impl Credentials {
    pub fn load(cert: &Path, key: &Path) -> Result<Credentials, AttestError> {
        let file_err = |p: &Path, m: String| AttestError::File {
            path: p.display().to_string(),
            message: m,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| file_err(cert, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| file_err(cert, e.to_string()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| file_err(cert, "no certificate in the file".into()))?;
        let pem = std::fs::read_to_string(key).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                AttestError::KeyNotReadable(key.display().to_string())
            } else {
                file_err(key, e.to_string())
            }
        })?;
        let signing = SigningKey::from_pem(&pem)
            .map_err(|e| AttestError::Key(format!("{}: {e}", key.display())))?;
        match key_matches_certificate(&signing, leaf) {
            Ok(true) => {}
            Ok(false) => return Err(AttestError::KeyMismatch(key.display().to_string())),
            Err(e) => return Err(AttestError::Key(format!("{}: {e}", cert.display()))),
        }
        let key_der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| AttestError::Key(format!("{}: {e}", key.display())))?;
        Ok(Credentials {
            chain,
            key: signing,
            key_der,
        })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, AttestError> {
        sign_token(claims, &self.chain, &self.key).map_err(|e| AttestError::Sign(e.to_string()))
    }
}

/// What the gate said.
#[derive(Debug, Clone)]
pub struct GateAnswer {
    /// The verdict of spec section 5, as the core's type.
    pub verdict: Verdict,
    /// The gate's `X-Posture-Reference`, the key to its audit event.
    pub reference: Option<String>,
}

#[derive(Deserialize)]
struct Challenge {
    nonce: String,
}

#[derive(Deserialize)]
struct Refusal {
    reason: Reason,
}

/// Attests once: challenge, sign `claims_for(nonce)`, post.
pub async fn attest_once(
    gate: &str,
    ca: Option<&Path>,
    creds: &Credentials,
    claims_for: impl FnOnce(String) -> Claims,
    timeout: Duration,
) -> Result<GateAnswer, AttestError> {
    tokio::time::timeout(timeout, attest_inner(gate, ca, creds, claims_for))
        .await
        .map_err(|_| AttestError::Unreachable {
            addr: gate.to_owned(),
            message: format!("no answer within {timeout:?}"),
            refused: false,
        })?
}

async fn attest_inner(
    gate: &str,
    ca: Option<&Path>,
    creds: &Credentials,
    claims_for: impl FnOnce(String) -> Claims,
) -> Result<GateAnswer, AttestError> {
    let uri: Uri = gate
        .parse()
        .map_err(|_| AttestError::Url(gate.to_owned()))?;
    if uri.scheme_str() != Some("https") {
        return Err(AttestError::Url(gate.to_owned()));
    }
    let host = uri
        .host()
        .ok_or_else(|| AttestError::Url(gate.to_owned()))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| host.clone());

    let tls = client_config(ca, creds)?;
    let addr = format!(
        "{}:{port}",
        host.trim_start_matches('[').trim_end_matches(']')
    );
    let tcp =
        tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| AttestError::Unreachable {
                addr: addr.clone(),
                message: e.to_string(),
                refused: e.kind() == std::io::ErrorKind::ConnectionRefused,
            })?;
    let name = ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|_| AttestError::Url(gate.to_owned()))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(&e, ca))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AttestError::Http(e.to_string()))?;
    tokio::spawn(conn);

    let req = Request::builder()
        .method(Method::GET)
        .uri("/.well-known/posture-gate/challenge")
        .header("host", &authority)
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| AttestError::Http(e.to_string()))?;
    let (status, body, _) = send(&mut sender, req).await?;
    if status != StatusCode::OK {
        return Err(AttestError::Status {
            what: "the challenge",
            status,
            body: lossy(&body),
        });
    }
    let challenge: Challenge = serde_json::from_slice(&body)
        .map_err(|e| AttestError::Http(format!("challenge is not JSON with a nonce: {e}")))?;

    let token = creds.sign(&claims_for(challenge.nonce))?;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/.well-known/posture-gate/attest")
        .header("host", &authority)
        .header("content-type", "application/eat+jwt")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(token)))
        .map_err(|e| AttestError::Http(e.to_string()))?;
    let (status, body, reference) = send(&mut sender, req).await?;
    match status {
        StatusCode::OK => {
            let verdict = serde_json::from_slice(&body).map_err(|e| {
                AttestError::Http(format!("the gate's verdict cannot be read: {e}"))
            })?;
            Ok(GateAnswer { verdict, reference })
        }
        StatusCode::BAD_REQUEST => match serde_json::from_slice::<Refusal>(&body) {
            Ok(r) => Err(AttestError::Refused {
                reason: r.reason,
                reference,
            }),
            Err(_) => Err(AttestError::Status {
                what: "the attestation",
                status,
                body: lossy(&body),
            }),
        },
        _ => Err(AttestError::Status {
            what: "the attestation",
            status,
            body: lossy(&body),
        }),
    }
}

fn tls_error(e: &std::io::Error, ca: Option<&Path>) -> AttestError {
    let detail = e.to_string();
    if !detail.contains("invalid peer certificate") {
        return AttestError::Tls(detail);
    }
    AttestError::UntrustedServer {
        detail,
        ca: ca.map(|p| p.display().to_string()),
    }
}

/// Status, body and the `X-Posture-Reference` of one exchange.
async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes, Option<String>), AttestError> {
    let resp = sender.send_request(req).await.map_err(|e| http_error(&e))?;
    let status = resp.status();
    // Shown to a person: printable ASCII of a sane length only.
    let reference = resp
        .headers()
        .get("x-posture-reference")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| AttestError::Http(e.to_string()))?
        .to_bytes();
    Ok((status, body, reference))
}

/// hyper's own message ("connection error") hides the cause; in TLS 1.3 a
/// gate that rejects the client certificate says so only with an alert on
/// the first read, which arrives here.
fn http_error(e: &hyper::Error) -> AttestError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if text.contains("received fatal alert") {
        AttestError::CertRejected(text)
    } else {
        AttestError::Http(text)
    }
}

fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(500).collect()
}

fn client_config(
    ca: Option<&Path>,
    creds: &Credentials,
) -> Result<rustls::ClientConfig, AttestError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| AttestError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            for c in certs {
                let c = c.map_err(|e| AttestError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                roots.add(c).map_err(|e| AttestError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A broken system root is skipped, as every TLS client does.
                let _ = roots.add(c);
            }
        }
    }
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| AttestError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(creds.chain.clone(), creds.key_der.clone_key())
        .map_err(|e| AttestError::Tls(e.to_string()))
}
