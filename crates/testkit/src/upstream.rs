//! A small upstream app on 127.0.0.1:0 that answers with what it received
//! as JSON, so tests can see exactly what the gate forwarded.
//!
//! - `/slow...`: waits 30 s before answering (the gate must time out first).
//! - `/sleep-ms/N`: waits N milliseconds before answering.
//! - `Upgrade: <any>` (`websocket`, `echo`, ...): switches to that protocol
//!   and echoes every byte back.
//! - `/stream...`: echoes the request body back.
//! - `/cached...`: answers with its own `Cache-Control: public, max-age=60`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct Upstream {
    pub addr: SocketAddr,
    pub name: &'static str,
    task: JoinHandle<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting; the port then refuses connections.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(name: &'static str) -> Upstream {
    start_with(name, None).await
}

/// An `https://` upstream with the `server.pem` and `server.key` that
/// [`super::TestPki::new`] wrote into `dir` (valid for `localhost`).
pub async fn start_tls(name: &'static str, dir: &std::path::Path) -> Upstream {
    use rustls_pki_types::pem::PemObject;
    let chain = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    start_with(name, Some(acceptor)).await
}

async fn start_with(name: &'static str, tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let tls = tls.clone();
            conns.spawn(async move {
                let service = service_fn(move |req| answer(name, req));
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = match tls {
                    None => {
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await
                    }
                    Some(tls) => {
                        let Ok(stream) = tls.accept(stream).await else {
                            return;
                        };
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await
                    }
                };
            });
        }
    });
    Upstream { addr, name, task }
}

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if let Some(ms) = path.strip_prefix("/sleep-ms/").and_then(|n| n.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(protocol) = req.headers().get("upgrade").cloned() {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", protocol)
            .header("connection", "upgrade")
            .body(Full::default())
            .unwrap();
        return Ok(response);
    }
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let entry = headers.entry(k.as_str()).or_insert_with(|| json!([]));
        entry
            .as_array_mut()
            .unwrap()
            .push(json!(String::from_utf8_lossy(v.as_bytes())));
    }
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = json!({
        "upstream": name,
        "method": method,
        "path": path,
        "version": version,
        "headers": headers,
        "body_len": body.len(),
    });
    let mut response = Response::builder();
    if path.starts_with("/cached") {
        response = response.header("cache-control", "public, max-age=60");
    }
    Ok(response
        .header("content-type", "application/json")
        .header("connection", "x-upstream-hop")
        .header("x-upstream-hop", "must not reach the client")
        .body(Full::new(Bytes::from(reply.to_string())))
        .unwrap())
}
