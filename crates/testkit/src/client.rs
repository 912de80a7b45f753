//! A small HTTPS client over rustls for the socket tests: one connection per
//! call, an optional client certificate, HTTP/1.1 or HTTP/2 by ALPN.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::pki::Device;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proto {
    H1,
    H2,
}

pub fn tls_config(
    ca: &CertificateDer<'static>,
    device: Option<&Device>,
    proto: Proto,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match device {
        Some(d) => builder
            .with_client_auth_cert(vec![d.cert_der.clone()], d.private_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match proto {
        Proto::H1 => vec![b"http/1.1".to_vec()],
        Proto::H2 => vec![b"h2".to_vec()],
    };
    Arc::new(config)
}

/// Opens TCP + TLS to the gate with this SNI.
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The gate as a client sees it: address, CA, and which device (if any).
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub config: Arc<ClientConfig>,
    pub proto: Proto,
}

impl Client {
    pub fn new(
        addr: SocketAddr,
        ca: &CertificateDer<'static>,
        device: Option<&Device>,
        proto: Proto,
    ) -> Client {
        Client {
            addr,
            config: tls_config(ca, device, proto),
            proto,
        }
    }

    /// Sends one request on a fresh connection, SNI = the request's host.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Answer {
        self.try_send(req).await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn try_get(&self, host: &str, path: &str) -> Result<Answer, String> {
        self.try_send(
            request("GET", host, path, self.proto)
                .body(Full::default())
                .unwrap(),
        )
        .await
    }

    /// Like `send`, but a failed handshake or request is an error value.
    pub async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Answer, String> {
        let host = req
            .uri()
            .host()
            .map(str::to_string)
            .or_else(|| {
                req.headers()
                    .get("host")
                    .map(|h| h.to_str().unwrap().split(':').next().unwrap().to_string())
            })
            .expect("request needs a host");
        let tls = connect(self.addr, &host, self.config.clone())
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let response = match self.proto {
            Proto::H1 => {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP/1 handshake: {e}"))?;
                tokio::spawn(conn.with_upgrades());
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("request: {e}"))?
            }
            Proto::H2 => {
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await
                        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
                tokio::spawn(conn);
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("request: {e}"))?
            }
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("body: {e}"))?;
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&self, host: &str, path: &str) -> Answer {
        self.send(
            request("GET", host, path, self.proto)
                .body(Full::default())
                .unwrap(),
        )
        .await
    }
}

/// A request builder with the host in the right place for the protocol:
/// Host for HTTP/1.1 (origin-form target), the URI authority for HTTP/2.
pub fn request(method: &str, host: &str, path: &str, proto: Proto) -> http::request::Builder {
    match proto {
        Proto::H1 => Request::builder()
            .method(method)
            .uri(path)
            .header("host", host),
        Proto::H2 => Request::builder()
            .method(method)
            .version(http::Version::HTTP_2)
            .uri(format!("https://{host}{path}")),
    }
}

pub type Resp = Response<hyper::body::Incoming>;
