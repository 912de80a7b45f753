//! The PROXY protocol v2 header an L4 balancer puts before the client's
//! bytes (HAProxy's proxy-protocol.txt, section 2.2), read only from the
//! peers of `[server] proxy_protocol_from`, before the TLS handshake.
//!
//! The header is read in two exact reads, the fixed 16 bytes and then the
//! length they announce, so not one byte of the TLS ClientHello behind it
//! is taken from the socket. The fixed part is checked (signature,
//! version 2, command, family, protocol) before the rest is read, and the
//! rest may hold the address block of its family and at most
//! [`MAX_TLV_BYTES`] of TLVs: the gate needs only the source address, so a
//! balancer cannot make it buffer the 64 KiB the length field allows.
//!
//! What counts: a `PROXY` command over TCP (IPv4 or IPv6) names the client;
//! a `LOCAL` command (the balancer's own health check) keeps the balancer's
//! address. Everything else is refused: a v1 text header, no header, a
//! header cut short, a `PROXY` command without an IP source (UNSPEC, UNIX,
//! UDP), malformed TLVs. The spec lets a receiver use the real endpoints
//! for `PROXY` + UNSPEC; the gate refuses instead, so a misconfigured
//! balancer shows up as refused connections, never as every client sharing
//! the balancer's address. TLV contents (ALPN, authority, CRC32C, ...) are
//! not used; their framing must be sound. A connection closed before its
//! first byte (a balancer's plain TCP health check) is [`HeaderError::Closed`],
//! which the listener does not count as a refusal.

use std::net::SocketAddr;

use ppp::v2::{self, Addresses, Command, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Signature (12 bytes), version and command, family and protocol, and the
/// big-endian length of what follows.
const FIXED_BYTES: usize = 16;

/// TLV bytes accepted after the address block. Balancers send a few
/// (AWS: the endpoint id, 30-odd bytes; HAProxy: ALPN, authority, SSL
/// details), far below this.
pub(super) const MAX_TLV_BYTES: usize = 4096;

/// Who the connection is from, by the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A `PROXY` command: the client's address and port.
    Client(SocketAddr),
    /// A `LOCAL` command: the balancer itself, keep its address.
    Local,
}

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum HeaderError {
    /// Closed before its first byte: what a balancer's plain TCP health
    /// check does. Nothing was sent, so nothing was refused.
    #[error("closed before sending anything")]
    Closed,
    #[error("the connection ended or failed before a whole PROXY v2 header: {0}")]
    Read(#[source] std::io::Error),
    #[error("a PROXY protocol v1 (text) header; only v2 is accepted")]
    Version1,
    #[error("no PROXY protocol v2 header (the connection does not start with its signature)")]
    Missing,
    #[error("the PROXY v2 header announces {0} bytes after its fixed part, more than its address block and {MAX_TLV_BYTES} bytes of TLVs")]
    TooLong(usize),
    #[error("malformed PROXY v2 header: {0}")]
    Malformed(v2::ParseError),
    #[error("a PROXY command without a TCP source address ({0})")]
    NoClient(&'static str),
}

/// Reads one PROXY v2 header from the start of `io` and nothing beyond it.
/// The caller bounds the time.
pub(super) async fn read<R: AsyncRead + Unpin>(io: &mut R) -> Result<Origin, HeaderError> {
    let mut fixed = [0u8; FIXED_BYTES];
    let first = io.read(&mut fixed).await.map_err(HeaderError::Read)?;
    if first == 0 {
        return Err(HeaderError::Closed);
    }
    io.read_exact(&mut fixed[first..])
        .await
        .map_err(HeaderError::Read)?;
    if fixed[..v2::PROTOCOL_PREFIX.len()] != *v2::PROTOCOL_PREFIX {
        return Err(if fixed.starts_with(b"PROXY ") {
            HeaderError::Version1
        } else {
            HeaderError::Missing
        });
    }
    // ppp checks version, command, family and protocol on the fixed part
    // alone; all that may be missing then is the announced rest.
    match v2::Header::try_from(&fixed[..]) {
        Ok(_) | Err(v2::ParseError::Partial(..)) => {}
        Err(e) => return Err(HeaderError::Malformed(e)),
    }
    let length = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let address_bytes = match fixed[13] >> 4 {
        0x1 => 12,
        0x2 => 36,
        0x3 => 216,
        _ => 0,
    };
    if length > address_bytes + MAX_TLV_BYTES {
        return Err(HeaderError::TooLong(length));
    }
    let mut header = Vec::with_capacity(FIXED_BYTES + length);
    header.extend_from_slice(&fixed);
    header.resize(FIXED_BYTES + length, 0);
    io.read_exact(&mut header[FIXED_BYTES..])
        .await
        .map_err(HeaderError::Read)?;
    let parsed = v2::Header::try_from(&header[..]).map_err(HeaderError::Malformed)?;
    if let Some(Err(e)) = parsed.tlvs().find(Result::is_err) {
        return Err(HeaderError::Malformed(e));
    }
    origin(&parsed)
}

fn origin(header: &v2::Header<'_>) -> Result<Origin, HeaderError> {
    if header.command == Command::Local {
        // The spec: a receiver ignores the address block of LOCAL.
        return Ok(Origin::Local);
    }
    if header.protocol != Protocol::Stream {
        return Err(HeaderError::NoClient("not TCP"));
    }
    match header.addresses {
        Addresses::IPv4(a) => Ok(Origin::Client(SocketAddr::from((
            a.source_address,
            a.source_port,
        )))),
        Addresses::IPv6(a) => Ok(Origin::Client(SocketAddr::from((
            a.source_address,
            a.source_port,
        )))),
        Addresses::Unspecified => Err(HeaderError::NoClient("family UNSPEC")),
        Addresses::Unix(_) => Err(HeaderError::NoClient("family UNIX")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

    /// A header by hand (not with ppp's builder, so the tests do not take
    /// the parser's word for the format).
    fn header(version_command: u8, family_protocol: u8, body: &[u8]) -> Vec<u8> {
        let mut h = SIG.to_vec();
        h.push(version_command);
        h.push(family_protocol);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn ipv4_body(tlvs: &[u8]) -> Vec<u8> {
        let mut b = vec![203, 0, 113, 7, 192, 0, 2, 1];
        b.extend_from_slice(&4242u16.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b.extend_from_slice(tlvs);
        b
    }

    async fn parse(bytes: &[u8]) -> (Result<Origin, HeaderError>, usize) {
        let mut rest = bytes;
        let result = read(&mut rest).await;
        (result, bytes.len() - rest.len())
    }

    #[tokio::test]
    async fn a_proxy_command_names_the_client_and_nothing_after_it_is_read() {
        let mut bytes = header(0x21, 0x11, &ipv4_body(&[]));
        let len = bytes.len();
        bytes.extend_from_slice(b"\x16\x03\x01 the ClientHello");
        let (result, used) = parse(&bytes).await;
        assert_eq!(
            result.unwrap(),
            Origin::Client("203.0.113.7:4242".parse().unwrap())
        );
        assert_eq!(used, len);

        let mut body = Vec::new();
        body.extend_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        body.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        body.extend_from_slice(&[0x10, 0x92, 0x01, 0xbb]);
        // A NOOP TLV and an AWS-style one (type 0xEA).
        body.extend_from_slice(&[0x04, 0x00, 0x01, 0x00, 0xea, 0x00, 0x02, 0x01, 0x78]);
        let (result, _) = parse(&header(0x21, 0x21, &body)).await;
        assert_eq!(
            result.unwrap(),
            Origin::Client("[2001:db8::7]:4242".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn a_local_command_keeps_the_balancer() {
        let (result, used) = parse(&header(0x20, 0x00, &[])).await;
        assert_eq!(result.unwrap(), Origin::Local);
        assert_eq!(used, 16);
        // Its address block, if any, is ignored.
        let (result, _) = parse(&header(0x20, 0x11, &ipv4_body(&[]))).await;
        assert_eq!(result.unwrap(), Origin::Local);
    }

    #[tokio::test]
    async fn bad_headers_are_refused() {
        let good = header(0x21, 0x11, &ipv4_body(&[]));
        type Expected = fn(&HeaderError) -> bool;
        let cases: Vec<(&str, Vec<u8>, Expected)> = vec![
            (
                "TLS without header",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 random...".to_vec(),
                |e| matches!(e, HeaderError::Missing),
            ),
            (
                "v1 text",
                b"PROXY TCP4 203.0.113.7 192.0.2.1 4242 443\r\n".to_vec(),
                |e| matches!(e, HeaderError::Version1),
            ),
            ("nothing at all", Vec::new(), |e| {
                matches!(e, HeaderError::Closed)
            }),
            ("one byte", SIG[..1].to_vec(), |e| {
                matches!(e, HeaderError::Read(_))
            }),
            ("cut in the signature", good[..7].to_vec(), |e| {
                matches!(e, HeaderError::Read(_))
            }),
            ("cut in the addresses", good[..20].to_vec(), |e| {
                matches!(e, HeaderError::Read(_))
            }),
            (
                "version 1 in the binary form",
                header(0x11, 0x11, &ipv4_body(&[])),
                |e| matches!(e, HeaderError::Malformed(_)),
            ),
            ("version 3", header(0x31, 0x11, &ipv4_body(&[])), |e| {
                matches!(e, HeaderError::Malformed(_))
            }),
            ("command 2", header(0x22, 0x11, &ipv4_body(&[])), |e| {
                matches!(e, HeaderError::Malformed(_))
            }),
            ("family 4", header(0x21, 0x41, &ipv4_body(&[])), |e| {
                matches!(e, HeaderError::Malformed(_))
            }),
            ("protocol 3", header(0x21, 0x13, &ipv4_body(&[])), |e| {
                matches!(e, HeaderError::Malformed(_))
            }),
            (
                "length below the IPv4 block",
                header(0x21, 0x11, &[1, 2, 3, 4]),
                |e| matches!(e, HeaderError::Malformed(_)),
            ),
            (
                "length below the IPv6 block",
                header(0x21, 0x21, &ipv4_body(&[])),
                |e| matches!(e, HeaderError::Malformed(_)),
            ),
            (
                "a TLV longer than the header",
                header(0x21, 0x11, &ipv4_body(&[0x04, 0x00, 0x09, 0])),
                |e| matches!(e, HeaderError::Malformed(_)),
            ),
            (
                "a TLV cut in its own header",
                header(0x21, 0x11, &ipv4_body(&[0x04, 0x00])),
                |e| matches!(e, HeaderError::Malformed(_)),
            ),
            ("UDP", header(0x21, 0x12, &ipv4_body(&[])), |e| {
                matches!(e, HeaderError::NoClient(_))
            }),
            ("PROXY with UNSPEC", header(0x21, 0x00, &[]), |e| {
                matches!(e, HeaderError::NoClient(_))
            }),
            ("PROXY over UNIX", header(0x21, 0x31, &[0; 216]), |e| {
                matches!(e, HeaderError::NoClient(_))
            }),
        ];
        for (name, bytes, expected) in cases {
            let (result, _) = parse(&bytes).await;
            match result {
                Err(e) if expected(&e) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_rest_is_bounded_before_it_is_read() {
        // At the cap: accepted.
        let mut tlvs = vec![0x04];
        tlvs.extend_from_slice(&((MAX_TLV_BYTES - 3) as u16).to_be_bytes());
        tlvs.resize(MAX_TLV_BYTES, 0);
        let (result, _) = parse(&header(0x21, 0x11, &ipv4_body(&tlvs))).await;
        assert!(result.is_ok(), "{result:?}");
        // One byte beyond: refused from the fixed part alone, though the
        // bytes were never sent.
        let mut fixed = header(0x21, 0x11, &[]);
        fixed[14..16].copy_from_slice(&((12 + MAX_TLV_BYTES + 1) as u16).to_be_bytes());
        let (result, used) = parse(&fixed).await;
        assert!(matches!(result, Err(HeaderError::TooLong(_))), "{result:?}");
        assert_eq!(used, 16);
        fixed[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        let (result, _) = parse(&fixed).await;
        assert!(
            matches!(result, Err(HeaderError::TooLong(65535))),
            "{result:?}"
        );
    }

    /// Fuzz-like: every prefix and every single-byte change of valid
    /// headers, and a run of pseudo-random inputs, give an answer, never a
    /// panic, and never read past what the header announced.
    #[tokio::test]
    async fn any_input_gets_an_answer() {
        let mut valid = vec![
            header(0x21, 0x11, &ipv4_body(&[0x04, 0x00, 0x01, 0x00])),
            header(0x20, 0x00, &[]),
        ];
        let mut v6 = vec![0u8; 36];
        v6[0] = 0x20;
        valid.push(header(0x21, 0x21, &v6));
        for h in &valid {
            for cut in 0..h.len() {
                let (result, _) = parse(&h[..cut]).await;
                match result {
                    Err(HeaderError::Closed) => assert_eq!(cut, 0),
                    Err(_) => {}
                    Ok(origin) => panic!("prefix of {cut} bytes accepted: {origin:?}"),
                }
            }
            for i in 0..h.len() {
                for bit in 0..8 {
                    let mut changed = h.clone();
                    changed[i] ^= 1 << bit;
                    changed.extend_from_slice(b"tail");
                    let (result, used) = parse(&changed).await;
                    if result.is_ok() {
                        let announced =
                            16 + usize::from(u16::from_be_bytes([changed[14], changed[15]]));
                        assert_eq!(used, announced);
                    }
                }
            }
        }
        // xorshift: reproducible, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = SIG.to_vec();
            bytes.extend((0..len).map(|_| next() as u8));
            let (result, used) = parse(&bytes).await;
            assert!(used <= bytes.len());
            if let Ok(Origin::Client(_)) = result {
                assert_eq!(bytes[12] & 0x0f, 1);
            }
        }
    }
}
