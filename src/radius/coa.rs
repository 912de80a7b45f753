//! Sending one CoA-Request or Disconnect-Request to a NAS and waiting for
//! its answer (RFC 5176).
//!
//! Each call has a UDP socket of its own on an ephemeral port, so that a
//! reply can only be for this request, and concurrent calls never read each
//! other's replies. The same datagram (same Identifier, same Event-Timestamp,
//! same authenticators, RFC 5176 §2.3) is sent up to `attempts` times, each
//! followed by up to `timeout` of listening. While listening, a datagram
//! that is not from the NAS's address and port, or that does not verify as
//! the reply to this request with the NAS's secret, is dropped and the wait
//! goes on: a stray or forged datagram must neither end the exchange nor
//! make it fail early, or anyone on the path could suppress a CoA.
//!
//! The caller (the gate, after an attestation) decides what to do with the
//! result; this module never blocks anything but its own future, and every
//! wait is bounded by `attempts × timeout`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::packet::{self, Attribute, DecodeError, RequestCode, ResponseKind};

/// A switch, access point or WLC that takes CoA/Disconnect-Requests.
#[derive(Clone)]
pub struct Nas {
    /// The configured name, for logs and audit.
    pub name: String,
    /// Where CoA goes: the NAS's address and its CoA port (3799 by default).
    pub addr: SocketAddr,
    /// The shared secret this NAS and the gate hold.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Nas {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nas")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What to ask the NAS for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// CoA-Request; with a VLAN, the three tunnel attributes that assign it
    /// (RFC 3580 §3.31).
    Coa { vlan: Option<u16> },
    /// Disconnect-Request: the device authenticates again and gets the
    /// current decision.
    Disconnect,
}

/// The session the request names (RFC 5176 §3: the NAS acts on every
/// session that matches all of them, and NAKs when none does). Taken from
/// the NAS's accounting; `None` fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub user_name: Option<String>,
    pub acct_session_id: Option<String>,
    pub calling_station_id: Option<String>,
    /// Sent as NAS-IP-Address, or NAS-IPv6-Address for an IPv6 address.
    pub nas_ip: Option<IpAddr>,
    pub nas_port: Option<u32>,
}

/// The NAS's answer, verified with its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// CoA-ACK or Disconnect-ACK.
    Ack,
    /// CoA-NAK or Disconnect-NAK, with its Error-Cause (RFC 5176 §3.6, e.g.
    /// 503 Session Context Not Found) when it gave one.
    Nak { error_cause: Option<u32> },
}

#[derive(thiserror::Error, Debug)]
pub enum CoaError {
    /// No verified answer after `attempts` transmissions.
    #[error("no verified answer from the NAS after {attempts} attempts")]
    Timeout { attempts: u32 },
    #[error("CoA socket: {0}")]
    Io(#[from] std::io::Error),
    /// The NAS answered, signed with its secret, but the answer is not one
    /// the gate can accept (a code that does not answer the request, a
    /// malformed attribute).
    #[error("the NAS's answer is not acceptable: {0}")]
    BadResponse(DecodeError),
    /// The request cannot be built from this session and secret (a value
    /// too long for RADIUS, an empty secret).
    #[error("the request cannot be encoded: {0}")]
    Encode(#[from] packet::EncodeError),
    /// A request that names no session would be the NAS's to interpret;
    /// it is never sent.
    #[error("the session has no attribute that identifies it")]
    NoSession,
}

/// A reply is at most 4096 octets; one more shows a datagram that was too
/// long (the kernel truncates to the buffer).
const RECV_BUFFER: usize = packet::MAX_PACKET_LEN + 1;

/// Sends `change` for `session` to `nas` and returns its verified answer.
/// `attempts` is at least 1; the whole call takes at most
/// `attempts × timeout` (plus the time to send).
pub async fn send(
    nas: &Nas,
    change: &Change,
    session: &Session,
    attempts: u32,
    timeout: Duration,
) -> Result<Outcome, CoaError> {
    let attempts = attempts.max(1);
    let (code, attributes) = attributes(change, session, event_timestamp())?;
    let request = packet::encode_request(code, rand::random(), &attributes, &nas.secret)?;

    let local: SocketAddr = match nas.addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    let mut buf = vec![0u8; RECV_BUFFER];
    for attempt in 1..=attempts {
        socket.send_to(request.bytes(), nas.addr).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let (len, from) =
                match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
                    Err(_elapsed) => break,
                    Ok(received) => received?,
                };
            // The IP and port, not the whole SocketAddr: an IPv6 source
            // carries no flow label or scope the configuration would match.
            if from.ip() != nas.addr.ip() || from.port() != nas.addr.port() {
                tracing::debug!(nas = %nas.name, %from, "CoA: datagram from another address ignored");
                continue;
            }
            match packet::decode_response(&buf[..len], &request, &nas.secret) {
                Ok(response) => {
                    return Ok(match response.kind {
                        ResponseKind::Ack => Outcome::Ack,
                        ResponseKind::Nak => Outcome::Nak {
                            error_cause: response.error_cause,
                        },
                    })
                }
                Err(e) if e.is_authenticated() => return Err(CoaError::BadResponse(e)),
                Err(e) => {
                    tracing::debug!(nas = %nas.name, attempt, error = %e, "CoA: unverified datagram ignored");
                }
            }
        }
        tracing::debug!(nas = %nas.name, attempt, attempts, "CoA: no answer, retransmitting");
    }
    Err(CoaError::Timeout { attempts })
}

/// The request's code and attributes, in the order RFC 5176 §3 lists them:
/// session identification, then the new authorization, then
/// Event-Timestamp. (The codec puts the Message-Authenticator first.)
fn attributes(
    change: &Change,
    session: &Session,
    now: u32,
) -> Result<(RequestCode, Vec<Attribute>), CoaError> {
    let mut attributes = Vec::with_capacity(10);
    if let Some(v) = &session.user_name {
        attributes.push(Attribute::UserName(v.clone()));
    }
    if let Some(v) = &session.acct_session_id {
        attributes.push(Attribute::AcctSessionId(v.clone()));
    }
    if let Some(v) = &session.calling_station_id {
        attributes.push(Attribute::CallingStationId(v.clone()));
    }
    match session.nas_ip {
        Some(IpAddr::V4(ip)) => attributes.push(Attribute::NasIpAddress(ip)),
        Some(IpAddr::V6(ip)) => attributes.push(Attribute::NasIpv6Address(ip)),
        None => {}
    }
    if let Some(port) = session.nas_port {
        attributes.push(Attribute::NasPort(port));
    }
    // NAS identification alone does not name a session.
    let identifies = session.user_name.is_some()
        || session.acct_session_id.is_some()
        || session.calling_station_id.is_some()
        || session.nas_port.is_some();
    if !identifies {
        return Err(CoaError::NoSession);
    }
    let code = match change {
        Change::Coa { vlan } => {
            if let Some(vlan) = vlan {
                attributes.extend(Attribute::vlan(*vlan));
            }
            RequestCode::Coa
        }
        Change::Disconnect => RequestCode::Disconnect,
    };
    attributes.push(Attribute::EventTimestamp(now));
    Ok((code, attributes))
}

/// Seconds since the epoch, as Event-Timestamp carries them; a clock before
/// 1970 or after 2106 is sent as the nearest value that fits.
fn event_timestamp() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! Over real loopback sockets, against a stand-in NAS built on the
    //! codec's request decoder; tests/it/radius_coa.rs has FreeRADIUS.

    use super::*;
    use crate::radius::packet::{attr, decode_request, encode_response, Request};
    use md5::{Digest, Md5};

    const SECRET: &[u8] = b"nas secret";
    /// Only a guard: every exchange here is a few loopback datagrams.
    const GUARD: Duration = Duration::from_secs(5);

    async fn stand_in(ip: IpAddr) -> (UdpSocket, Nas) {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        let nas = Nas {
            name: "switch-1".into(),
            addr: socket.local_addr().unwrap(),
            secret: SECRET.to_vec(),
        };
        (socket, nas)
    }

    fn session() -> Session {
        Session {
            user_name: Some("device-17".into()),
            acct_session_id: Some("5A3F0001".into()),
            calling_station_id: Some("02-00-00-00-00-01".into()),
            nas_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
            nas_port: Some(12),
        }
    }

    async fn receive(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0; 4096];
        let (len, from) = tokio::time::timeout(GUARD, socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        buf.truncate(len);
        (buf, from)
    }

    fn attributes_of(request: &Request) -> Vec<(u8, Vec<u8>)> {
        request
            .attributes()
            .map(|(kind, value)| (kind, value.to_vec()))
            .collect()
    }

    #[tokio::test]
    async fn retransmits_the_same_request_until_answered() {
        let (socket, nas) = stand_in(Ipv4Addr::LOCALHOST.into()).await;
        let nas_side = tokio::spawn(async move {
            let (first, _) = receive(&socket).await;
            let (second, from) = receive(&socket).await;
            assert_eq!(first, second, "a retransmission is the same datagram");
            let request = decode_request(&second, SECRET).unwrap();
            let reply = encode_response(&request, ResponseKind::Ack, &[], SECRET).unwrap();
            socket.send_to(&reply, from).await.unwrap();
            request
        });
        let before = event_timestamp();
        let outcome = send(
            &nas,
            &Change::Coa { vlan: Some(100) },
            &session(),
            3,
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        assert_eq!(outcome, Outcome::Ack);

        let request = nas_side.await.unwrap();
        assert_eq!(request.code(), RequestCode::Coa);
        let attributes = attributes_of(&request);
        let (timestamp, rest) = attributes.split_last().unwrap();
        assert_eq!(
            rest,
            [
                (attr::USER_NAME, b"device-17".to_vec()),
                (attr::ACCT_SESSION_ID, b"5A3F0001".to_vec()),
                (attr::CALLING_STATION_ID, b"02-00-00-00-00-01".to_vec()),
                (attr::NAS_IP_ADDRESS, vec![192, 0, 2, 10]),
                (attr::NAS_PORT, vec![0, 0, 0, 12]),
                (attr::TUNNEL_TYPE, vec![0, 0, 0, 13]),
                (attr::TUNNEL_MEDIUM_TYPE, vec![0, 0, 0, 6]),
                (attr::TUNNEL_PRIVATE_GROUP_ID, b"\x00100".to_vec()),
            ]
        );
        assert_eq!(timestamp.0, attr::EVENT_TIMESTAMP);
        let sent = u32::from_be_bytes(timestamp.1[..].try_into().unwrap());
        assert!((before..=event_timestamp()).contains(&sent), "{sent}");
    }

    #[tokio::test]
    async fn gives_up_after_the_bounded_attempts() {
        let (socket, nas) = stand_in(Ipv4Addr::LOCALHOST.into()).await;
        let result = send(
            &nas,
            &Change::Disconnect,
            &session(),
            3,
            Duration::from_millis(100),
        )
        .await;
        assert!(
            matches!(result, Err(CoaError::Timeout { attempts: 3 })),
            "{result:?}"
        );
        let mut datagrams = Vec::new();
        let mut buf = vec![0; 4096];
        while let Ok((len, _)) = socket.try_recv_from(&mut buf) {
            datagrams.push(buf[..len].to_vec());
        }
        assert_eq!(datagrams.len(), 3, "exactly one datagram per attempt");
        assert!(datagrams.iter().all(|d| *d == datagrams[0]));
        let request = decode_request(&datagrams[0], SECRET).unwrap();
        assert_eq!(request.code(), RequestCode::Disconnect);
        assert!(
            !attributes_of(&request).iter().any(|(kind, _)| matches!(
                *kind,
                attr::TUNNEL_TYPE | attr::TUNNEL_MEDIUM_TYPE | attr::TUNNEL_PRIVATE_GROUP_ID
            )),
            "a Disconnect-Request carries no VLAN"
        );
    }

    #[tokio::test]
    async fn stray_forged_and_foreign_replies_are_ignored() {
        let (socket, nas) = stand_in(Ipv4Addr::LOCALHOST.into()).await;
        let nas_side = tokio::spawn(async move {
            let (datagram, from) = receive(&socket).await;
            let request = decode_request(&datagram, SECRET).unwrap();
            let ack = encode_response(&request, ResponseKind::Ack, &[], SECRET).unwrap();
            // A genuine ACK, but from another port than the NAS's.
            let elsewhere = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            elsewhere.send_to(&ack, from).await.unwrap();
            // The ACK for another identifier.
            let mut other_id = ack.clone();
            other_id[1] = other_id[1].wrapping_add(1);
            socket.send_to(&other_id, from).await.unwrap();
            // An ACK signed with another secret.
            let forged =
                encode_response(&request, ResponseKind::Ack, &[], b"guessed secret").unwrap();
            socket.send_to(&forged, from).await.unwrap();
            // Noise.
            socket.send_to(b"\x2c", from).await.unwrap();
            // Then the real answer.
            let nak = encode_response(
                &request,
                ResponseKind::Nak,
                &[Attribute::ErrorCause(503)],
                SECRET,
            )
            .unwrap();
            socket.send_to(&nak, from).await.unwrap();
        });
        let outcome = send(&nas, &Change::Coa { vlan: None }, &session(), 1, GUARD)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::Nak {
                error_cause: Some(503)
            }
        );
        nas_side.await.unwrap();
    }

    #[tokio::test]
    async fn a_signed_reply_that_answers_nothing_is_a_bad_response() {
        let (socket, nas) = stand_in(Ipv4Addr::LOCALHOST.into()).await;
        let nas_side = tokio::spawn(async move {
            let (datagram, from) = receive(&socket).await;
            let request = decode_request(&datagram, SECRET).unwrap();
            // An Access-Accept, correctly signed as a reply to this request.
            let mut reply = vec![2, request.identifier(), 0, 20];
            reply.extend_from_slice(&request.authenticator());
            let mut hash = Md5::new();
            hash.update(&reply);
            hash.update(SECRET);
            let auth: [u8; 16] = hash.finalize().into();
            reply[4..20].copy_from_slice(&auth);
            socket.send_to(&reply, from).await.unwrap();
        });
        let result = send(&nas, &Change::Disconnect, &session(), 1, GUARD).await;
        assert!(
            matches!(
                result,
                Err(CoaError::BadResponse(DecodeError::UnexpectedCode {
                    code: 2,
                    request: 40
                }))
            ),
            "{result:?}"
        );
        nas_side.await.unwrap();
    }

    #[tokio::test]
    async fn an_ipv6_nas_is_reached_from_an_ipv6_socket() {
        let (socket, nas) = stand_in(Ipv6Addr::LOCALHOST.into()).await;
        let nas_side = tokio::spawn(async move {
            let (datagram, from) = receive(&socket).await;
            let request = decode_request(&datagram, SECRET).unwrap();
            let reply = encode_response(&request, ResponseKind::Ack, &[], SECRET).unwrap();
            socket.send_to(&reply, from).await.unwrap();
            request
        });
        let session = Session {
            nas_ip: Some(Ipv6Addr::LOCALHOST.into()),
            ..session()
        };
        let outcome = send(&nas, &Change::Disconnect, &session, 1, GUARD)
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Ack);
        let request = nas_side.await.unwrap();
        assert!(attributes_of(&request).contains(&(
            attr::NAS_IPV6_ADDRESS,
            Ipv6Addr::LOCALHOST.octets().to_vec()
        )));
    }

    #[tokio::test]
    async fn a_request_that_names_no_session_is_never_sent() {
        let (socket, nas) = stand_in(Ipv4Addr::LOCALHOST.into()).await;
        let session = Session {
            nas_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ..Session::default()
        };
        let result = send(&nas, &Change::Disconnect, &session, 3, GUARD).await;
        assert!(matches!(result, Err(CoaError::NoSession)), "{result:?}");
        let mut buf = [0; 64];
        assert!(socket.try_recv_from(&mut buf).is_err(), "nothing was sent");
    }
}
