//! One TLS connection that carries many requests (HTTP/1.1 keep-alive or
//! HTTP/2 streams), for what must hold for a connection's whole life.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::CertificateDer;

use super::client::{connect, request, tls_config, Answer, Proto};
use super::pki::Device;
use super::TestGate;

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

pub struct Conn {
    sender: Sender,
    pub proto: Proto,
}

impl Conn {
    /// Opens TCP + TLS (SNI `sni`) with the device's certificate.
    pub async fn open(gate: &TestGate, device: &Device, proto: Proto, sni: &str) -> Conn {
        Self::try_open(gate, device, proto, sni)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn try_open(
        gate: &TestGate,
        device: &Device,
        proto: Proto,
        sni: &str,
    ) -> Result<Conn, String> {
        Self::try_open_at(gate.addr, &gate.pki.ca_der, device, proto, sni).await
    }

    /// As [`Conn::try_open`], for tasks that cannot share the `TestGate`.
    pub async fn try_open_at(
        addr: SocketAddr,
        ca: &CertificateDer<'static>,
        device: &Device,
        proto: Proto,
        sni: &str,
    ) -> Result<Conn, String> {
        let config = tls_config(ca, Some(device), proto);
        let tls = connect(addr, sni, config)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let sender = match proto {
            Proto::H1 => {
                let (sender, conn) = http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP/1 handshake: {e}"))?;
                tokio::spawn(conn);
                Sender::H1(sender)
            }
            Proto::H2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
                tokio::spawn(conn);
                Sender::H2(sender)
            }
        };
        Ok(Conn { sender, proto })
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, String> {
        let response = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| format!("not ready: {e}"))?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| format!("not ready: {e}"))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
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

    pub async fn get(&mut self, host: &str, path: &str) -> Answer {
        let req = request("GET", host, path, self.proto)
            .body(Full::default())
            .unwrap();
        self.send(req).await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn post_token(&mut self, host: &str, token: &str) -> Answer {
        let req = request("POST", host, "/.well-known/posture-gate/attest", self.proto)
            .header("content-type", "application/eat+jwt")
            .body(Full::new(Bytes::from(token.to_string())))
            .unwrap();
        self.send(req).await.unwrap_or_else(|e| panic!("{e}"))
    }
}
