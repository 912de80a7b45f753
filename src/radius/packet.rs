//! The RADIUS codec for Dynamic Authorization (RFC 5176): CoA-Request and
//! Disconnect-Request out, their ACK or NAK back.
//!
//! Packet layout (RFC 2865 §3): Code (1), Identifier (1), Length (2, the
//! whole packet, 20..=4096), Authenticator (16), then attributes as Type (1),
//! Length (1, including these two octets), Value.
//!
//! Authenticators (RFC 5176 §2.3 and §3.5):
//! - Message-Authenticator = HMAC-MD5(secret, packet), computed first, over
//!   the packet with the Authenticator field and its own value zeroed;
//! - Request Authenticator = MD5(Code‖Id‖Length‖16 zero octets‖Attributes‖secret),
//!   as for an Accounting-Request (RFC 2866), so it is computed, not random;
//! - a reply's Response Authenticator = MD5(Code‖Id‖Length‖Request
//!   Authenticator‖Attributes‖secret), and its Message-Authenticator is
//!   computed with the Request Authenticator in the Authenticator field.
//!
//! Every request carries a Message-Authenticator, as its first attribute:
//! it is the stronger of the two checks (HMAC rather than a keyed MD5 hash)
//! and placing it first is the BlastRADIUS advice (FreeRADIUS 3.2.5 and
//! later). A reply is believed only when its Response Authenticator, and its
//! Message-Authenticator when it has one, verify with the NAS's secret.
//!
//! Decoding never panics and never reads past the packet's Length field or
//! the datagram: every length is checked before it is used.

use std::net::{Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// RFC 2865 §3: the largest packet; a larger datagram is not RADIUS.
pub const MAX_PACKET_LEN: usize = 4096;
/// Code, Identifier, Length and Authenticator.
pub const HEADER_LEN: usize = 20;
const AUTH_LEN: usize = 16;
/// A Message-Authenticator attribute: type, length and the 16-octet HMAC.
const MESSAGE_AUTHENTICATOR_LEN: usize = 2 + AUTH_LEN;
/// An attribute's value is at most 253 octets (its Length octet counts the
/// two header octets too).
pub const MAX_VALUE_LEN: usize = 253;

/// Attribute type numbers (RFC 2865, 2866, 2868, 2869, 3162, 5176).
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const NAS_PORT: u8 = 5;
    pub const CALLING_STATION_ID: u8 = 31;
    pub const ACCT_SESSION_ID: u8 = 44;
    pub const EVENT_TIMESTAMP: u8 = 55;
    pub const TUNNEL_TYPE: u8 = 64;
    pub const TUNNEL_MEDIUM_TYPE: u8 = 65;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    pub const TUNNEL_PRIVATE_GROUP_ID: u8 = 81;
    pub const NAS_IPV6_ADDRESS: u8 = 95;
    pub const ERROR_CAUSE: u8 = 101;
}

/// Tunnel-Type VLAN (RFC 3580 §3.31).
pub const TUNNEL_TYPE_VLAN: u32 = 13;
/// Tunnel-Medium-Type IEEE-802 (RFC 2868 §3.2, "802").
pub const TUNNEL_MEDIUM_IEEE_802: u32 = 6;
/// The largest tag of a tagged attribute (RFC 2868 §3.1).
pub const MAX_TAG: u8 = 0x1f;

/// The two Dynamic Authorization requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestCode {
    /// Disconnect-Request (40): end the session; the device authenticates
    /// again and gets its VLAN from the new decision.
    Disconnect,
    /// CoA-Request (43): change the session's authorization in place.
    Coa,
}

impl RequestCode {
    pub const fn code(self) -> u8 {
        match self {
            RequestCode::Disconnect => 40,
            RequestCode::Coa => 43,
        }
    }

    /// Disconnect-ACK 41, CoA-ACK 44.
    pub const fn ack(self) -> u8 {
        self.code() + 1
    }

    /// Disconnect-NAK 42, CoA-NAK 45.
    pub const fn nak(self) -> u8 {
        self.code() + 2
    }
}

/// What the NAS answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    Ack,
    Nak,
}

/// The attributes the gate sends (and Error-Cause, which a NAS sends back).
/// Strings are sent as their UTF-8 octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    UserName(String),
    NasIpAddress(Ipv4Addr),
    NasIpv6Address(Ipv6Addr),
    NasPort(u32),
    CallingStationId(String),
    AcctSessionId(String),
    /// Seconds since 1970-01-01 UTC (RFC 2869 §5.3); RFC 5176 §3.5 uses it
    /// against replayed requests.
    EventTimestamp(u32),
    /// Tagged integer (RFC 2868 §3.1): the tag octet, then a 24-bit value.
    TunnelType {
        tag: u8,
        value: u32,
    },
    TunnelMediumType {
        tag: u8,
        value: u32,
    },
    /// Tagged string (RFC 2868 §3.6): the tag octet, then the string.
    TunnelPrivateGroupId {
        tag: u8,
        value: String,
    },
    ErrorCause(u32),
}

impl Attribute {
    /// The three attributes of a VLAN assignment (RFC 3580 §3.31), tag 0:
    /// "where it is only desired to specify the VLANID, the tag field SHOULD
    /// be set to zero (0x00) in all tunnel attributes". The tag octet is
    /// still written for the string, so that the VLAN's first digit can
    /// never be read as a tag. FreeRADIUS decodes this as
    /// `Tunnel-Private-Group-Id:0 = "<vlan>"` (tests/it/radius_coa.rs).
    pub fn vlan(vlan: u16) -> [Attribute; 3] {
        [
            Attribute::TunnelType {
                tag: 0,
                value: TUNNEL_TYPE_VLAN,
            },
            Attribute::TunnelMediumType {
                tag: 0,
                value: TUNNEL_MEDIUM_IEEE_802,
            },
            Attribute::TunnelPrivateGroupId {
                tag: 0,
                value: vlan.to_string(),
            },
        ]
    }

    pub fn type_number(&self) -> u8 {
        match self {
            Attribute::UserName(_) => attr::USER_NAME,
            Attribute::NasIpAddress(_) => attr::NAS_IP_ADDRESS,
            Attribute::NasIpv6Address(_) => attr::NAS_IPV6_ADDRESS,
            Attribute::NasPort(_) => attr::NAS_PORT,
            Attribute::CallingStationId(_) => attr::CALLING_STATION_ID,
            Attribute::AcctSessionId(_) => attr::ACCT_SESSION_ID,
            Attribute::EventTimestamp(_) => attr::EVENT_TIMESTAMP,
            Attribute::TunnelType { .. } => attr::TUNNEL_TYPE,
            Attribute::TunnelMediumType { .. } => attr::TUNNEL_MEDIUM_TYPE,
            Attribute::TunnelPrivateGroupId { .. } => attr::TUNNEL_PRIVATE_GROUP_ID,
            Attribute::ErrorCause(_) => attr::ERROR_CAUSE,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let kind = self.type_number();
        let start = out.len();
        out.extend_from_slice(&[kind, 0]);
        match self {
            Attribute::UserName(s)
            | Attribute::CallingStationId(s)
            | Attribute::AcctSessionId(s) => {
                // RFC 2865 §5: a string is at least one octet.
                if s.is_empty() {
                    return Err(EncodeError::EmptyString { kind });
                }
                out.extend_from_slice(s.as_bytes());
            }
            Attribute::NasIpAddress(ip) => out.extend_from_slice(&ip.octets()),
            Attribute::NasIpv6Address(ip) => out.extend_from_slice(&ip.octets()),
            Attribute::NasPort(n) | Attribute::EventTimestamp(n) | Attribute::ErrorCause(n) => {
                out.extend_from_slice(&n.to_be_bytes())
            }
            Attribute::TunnelType { tag, value } | Attribute::TunnelMediumType { tag, value } => {
                check_tag(kind, *tag)?;
                if *value > 0x00ff_ffff {
                    return Err(EncodeError::TaggedValueTooLarge {
                        kind,
                        value: *value,
                    });
                }
                let v = value.to_be_bytes();
                out.extend_from_slice(&[*tag, v[1], v[2], v[3]]);
            }
            Attribute::TunnelPrivateGroupId { tag, value } => {
                check_tag(kind, *tag)?;
                if value.is_empty() {
                    return Err(EncodeError::EmptyString { kind });
                }
                out.push(*tag);
                out.extend_from_slice(value.as_bytes());
            }
        }
        let len = out.len() - start;
        if len - 2 > MAX_VALUE_LEN {
            return Err(EncodeError::ValueTooLong { kind, len: len - 2 });
        }
        // Fits: 2 + 253 = 255.
        out[start + 1] = len as u8;
        Ok(())
    }
}

fn check_tag(kind: u8, tag: u8) -> Result<(), EncodeError> {
    if tag > MAX_TAG {
        return Err(EncodeError::BadTag { kind, tag });
    }
    Ok(())
}

/// Why a packet could not be built. These are the caller's mistakes (a
/// value that does not fit RADIUS), never something a peer sent.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("the RADIUS shared secret is empty")]
    EmptySecret,
    #[error("attribute {kind} would be an empty string, which RADIUS does not allow")]
    EmptyString { kind: u8 },
    #[error(
        "attribute {kind} is {len} octets, more than the {MAX_VALUE_LEN} a RADIUS attribute holds"
    )]
    ValueTooLong { kind: u8, len: usize },
    #[error("attribute {kind} has tag {tag}, above the largest tag {MAX_TAG}")]
    BadTag { kind: u8, tag: u8 },
    #[error("attribute {kind} has value {value}, more than a tagged integer's 24 bits")]
    TaggedValueTooLarge { kind: u8, value: u32 },
    #[error("the packet would be {len} octets, more than the {MAX_PACKET_LEN} RADIUS allows")]
    PacketTooLong { len: usize },
}

/// An encoded CoA-Request or Disconnect-Request, ready to send (and to be
/// sent again unchanged on retransmission, RFC 5176 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    code: RequestCode,
    bytes: Vec<u8>,
}

impl Request {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn code(&self) -> RequestCode {
        self.code
    }

    pub fn identifier(&self) -> u8 {
        self.bytes[1]
    }

    /// The Request Authenticator, which the reply's authenticators cover.
    pub fn authenticator(&self) -> [u8; AUTH_LEN] {
        let mut auth = [0; AUTH_LEN];
        auth.copy_from_slice(&self.bytes[4..HEADER_LEN]);
        auth
    }
}

impl Request {
    /// The attributes but the Message-Authenticator, as (type, value), in
    /// order. A `Request` only exists with well-formed attributes.
    pub fn attributes(&self) -> impl Iterator<Item = (u8, &[u8])> {
        Attributes::new(&self.bytes)
            .map_while(Result::ok)
            .filter(|(_, kind, _)| *kind != attr::MESSAGE_AUTHENTICATOR)
            .map(|(_, kind, value)| (kind, value))
    }
}

/// Checks `datagram` as a CoA-Request or Disconnect-Request signed with
/// `secret`, as a NAS does (the tests' stand-in NAS uses it): framing, code,
/// Request Authenticator, attributes and the Message-Authenticator, which a
/// request must carry here since every request the gate sends has one.
pub fn decode_request(datagram: &[u8], secret: &[u8]) -> Result<Request, DecodeError> {
    let packet = framed(datagram)?;
    let code = match packet[0] {
        40 => RequestCode::Disconnect,
        43 => RequestCode::Coa,
        code => return Err(DecodeError::NotARequest { code }),
    };
    let mut zeroed = packet.to_vec();
    zeroed[4..HEADER_LEN].fill(0);
    if !constant_time_eq(&md5_with_secret(&zeroed, secret), &packet[4..HEADER_LEN]) {
        return Err(DecodeError::BadAuthenticator);
    }
    let (message_authenticator, _) = scan(packet)?;
    let at = message_authenticator.ok_or(DecodeError::NoMessageAuthenticator)?;
    zeroed[at..at + AUTH_LEN].fill(0);
    if !constant_time_eq(&hmac_md5(secret, &zeroed), &packet[at..at + AUTH_LEN]) {
        return Err(DecodeError::BadMessageAuthenticator);
    }
    Ok(Request {
        code,
        bytes: packet.to_vec(),
    })
}

/// Builds a request: header, a Message-Authenticator first, then
/// `attributes` in order; then both authenticators with `secret`.
pub fn encode_request(
    code: RequestCode,
    identifier: u8,
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<Request, EncodeError> {
    let bytes = encode(code.code(), identifier, &[0; AUTH_LEN], attributes, secret)?;
    Ok(Request { code, bytes })
}

/// Builds the NAS's answer to `request` (what a NAS or a stand-in for one
/// sends): a Message-Authenticator first, then `attributes`, signed with the
/// Request Authenticator and `secret`.
pub fn encode_response(
    request: &Request,
    kind: ResponseKind,
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let code = match kind {
        ResponseKind::Ack => request.code.ack(),
        ResponseKind::Nak => request.code.nak(),
    };
    encode(
        code,
        request.identifier(),
        &request.authenticator(),
        attributes,
        secret,
    )
}

/// `auth_input` is what both authenticators are computed over in the
/// Authenticator field: zeros for a request, the Request Authenticator for
/// a reply.
fn encode(
    code: u8,
    identifier: u8,
    auth_input: &[u8; AUTH_LEN],
    attributes: &[Attribute],
    secret: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    if secret.is_empty() {
        return Err(EncodeError::EmptySecret);
    }
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&[code, identifier, 0, 0]);
    out.extend_from_slice(auth_input);
    out.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, MESSAGE_AUTHENTICATOR_LEN as u8]);
    out.extend_from_slice(&[0; AUTH_LEN]);
    for attribute in attributes {
        attribute.encode(&mut out)?;
        if out.len() > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong { len: out.len() });
        }
    }
    let len = out.len() as u16; // ≤ 4096, checked above
    out[2..4].copy_from_slice(&len.to_be_bytes());

    let ma_value = HEADER_LEN + 2..HEADER_LEN + MESSAGE_AUTHENTICATOR_LEN;
    let ma = hmac_md5(secret, &out);
    out[ma_value].copy_from_slice(&ma);

    let auth = md5_with_secret(&out, secret);
    out[4..HEADER_LEN].copy_from_slice(&auth);
    Ok(out)
}

/// A verified reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub kind: ResponseKind,
    /// Error-Cause (RFC 5176 §3.6), e.g. 503 Session Context Not Found.
    pub error_cause: Option<u32>,
    /// Whether the reply carried a (verified) Message-Authenticator.
    pub message_authenticator: bool,
}

/// Why a datagram is not the reply to a request. The first group means it
/// cannot be shown to come from the NAS at all (a stray or forged datagram,
/// or one for another request): the sender ignores those and keeps waiting.
/// The rest were signed with the NAS's secret but are still not a reply the
/// gate can accept.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the datagram is {len} octets, fewer than a RADIUS header")]
    TooShort { len: usize },
    #[error("the datagram is {len} octets, more than the {MAX_PACKET_LEN} RADIUS allows")]
    TooLong { len: usize },
    #[error("the Length field says {field} octets but the datagram has {len}")]
    BadLength { field: usize, len: usize },
    #[error("identifier {got} is not the request's {expected}")]
    WrongIdentifier { expected: u8, got: u8 },
    #[error("the Response Authenticator does not verify with the shared secret")]
    BadAuthenticator,
    #[error("the Message-Authenticator does not verify with the shared secret")]
    BadMessageAuthenticator,
    // Signed with the secret, but wrong:
    #[error("an attribute at octet {offset} runs past the packet or is shorter than its header")]
    BadAttribute { offset: usize },
    #[error("attribute {kind} appears more than once")]
    Duplicate { kind: u8 },
    #[error("attribute {kind} has length {len}, not the fixed length of its kind")]
    BadAttributeLength { kind: u8, len: usize },
    #[error("code {code} is no answer to a request of code {request}")]
    UnexpectedCode { code: u8, request: u8 },
    #[error("code {code} is neither a CoA-Request nor a Disconnect-Request")]
    NotARequest { code: u8 },
    #[error("the request has no Message-Authenticator")]
    NoMessageAuthenticator,
}

impl DecodeError {
    /// Whether the datagram was shown to be signed with the shared secret.
    /// A sender waits on for a reply when this is false.
    pub fn is_authenticated(&self) -> bool {
        !matches!(
            self,
            DecodeError::TooShort { .. }
                | DecodeError::TooLong { .. }
                | DecodeError::BadLength { .. }
                | DecodeError::WrongIdentifier { .. }
                | DecodeError::NotARequest { .. }
                | DecodeError::BadAuthenticator
                | DecodeError::BadMessageAuthenticator
        )
    }
}

/// Checks `datagram` as the reply to `request`: framing, identifier,
/// Response Authenticator, attributes, Message-Authenticator (when present),
/// then the code, in that order, so that nothing but the framing is read
/// from a datagram before it has been shown to carry the secret.
pub fn decode_response(
    datagram: &[u8],
    request: &Request,
    secret: &[u8],
) -> Result<Response, DecodeError> {
    let packet = framed(datagram)?;
    let (code, identifier) = (packet[0], packet[1]);
    if identifier != request.identifier() {
        return Err(DecodeError::WrongIdentifier {
            expected: request.identifier(),
            got: identifier,
        });
    }
    let request_auth = request.authenticator();
    let mut hash = Md5::new();
    hash.update(&packet[..4]);
    hash.update(request_auth);
    hash.update(&packet[HEADER_LEN..]);
    hash.update(secret);
    if !constant_time_eq(&hash.finalize(), &packet[4..HEADER_LEN]) {
        return Err(DecodeError::BadAuthenticator);
    }

    let (message_authenticator, error_cause) = scan(packet)?;
    if let Some(at) = message_authenticator {
        let mut copy = packet.to_vec();
        copy[4..HEADER_LEN].copy_from_slice(&request_auth);
        copy[at..at + AUTH_LEN].fill(0);
        if !constant_time_eq(&hmac_md5(secret, &copy), &packet[at..at + AUTH_LEN]) {
            return Err(DecodeError::BadMessageAuthenticator);
        }
    }
    let kind = if code == request.code.ack() {
        ResponseKind::Ack
    } else if code == request.code.nak() {
        ResponseKind::Nak
    } else {
        return Err(DecodeError::UnexpectedCode {
            code,
            request: request.code.code(),
        });
    };
    Ok(Response {
        kind,
        error_cause,
        message_authenticator: message_authenticator.is_some(),
    })
}

/// The packet inside `datagram`: at least a header, at most 4096 octets,
/// up to its Length field. Octets past Length are padding and ignored
/// (RFC 2865 §3); a Length beyond the datagram means a truncated packet.
fn framed(datagram: &[u8]) -> Result<&[u8], DecodeError> {
    if datagram.len() < HEADER_LEN {
        return Err(DecodeError::TooShort {
            len: datagram.len(),
        });
    }
    if datagram.len() > MAX_PACKET_LEN {
        return Err(DecodeError::TooLong {
            len: datagram.len(),
        });
    }
    let field = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if !(HEADER_LEN..=datagram.len()).contains(&field) {
        return Err(DecodeError::BadLength {
            field,
            len: datagram.len(),
        });
    }
    Ok(&datagram[..field])
}

/// Checks every attribute's framing and returns the offset of the
/// Message-Authenticator's value and the Error-Cause, each at most once and
/// of its fixed length.
fn scan(packet: &[u8]) -> Result<(Option<usize>, Option<u32>), DecodeError> {
    let mut message_authenticator = None;
    let mut error_cause = None;
    for item in Attributes::new(packet) {
        let (offset, kind, value) = item?;
        let fixed = match kind {
            attr::MESSAGE_AUTHENTICATOR => AUTH_LEN,
            attr::ERROR_CAUSE => 4,
            _ => continue,
        };
        if value.len() != fixed {
            return Err(DecodeError::BadAttributeLength {
                kind,
                len: value.len() + 2,
            });
        }
        let seen = match kind {
            attr::MESSAGE_AUTHENTICATOR => message_authenticator.replace(offset + 2).is_some(),
            _ => error_cause
                .replace(u32::from_be_bytes([value[0], value[1], value[2], value[3]]))
                .is_some(),
        };
        if seen {
            return Err(DecodeError::Duplicate { kind });
        }
    }
    Ok((message_authenticator, error_cause))
}

/// The attributes of a packet whose Length has been checked: yields
/// (offset, type, value) or the offset of the first malformed attribute,
/// then stops.
struct Attributes<'a> {
    packet: &'a [u8],
    at: usize,
}

impl<'a> Attributes<'a> {
    fn new(packet: &'a [u8]) -> Self {
        Attributes {
            packet,
            at: HEADER_LEN,
        }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(usize, u8, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.at;
        let rest = self.packet.get(offset..)?;
        if rest.is_empty() {
            return None;
        }
        let bad = DecodeError::BadAttribute { offset };
        let (kind, len) = match rest {
            [kind, len, ..] => (*kind, usize::from(*len)),
            _ => {
                self.at = self.packet.len();
                return Some(Err(bad));
            }
        };
        if len < 2 || len > rest.len() {
            self.at = self.packet.len();
            return Some(Err(bad));
        }
        self.at += len;
        Some(Ok((offset, kind, &rest[2..len])))
    }
}

fn hmac_md5(secret: &[u8], data: &[u8]) -> [u8; AUTH_LEN] {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Md5>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn md5_with_secret(packet: &[u8], secret: &[u8]) -> [u8; AUTH_LEN] {
    let mut hash = Md5::new();
    hash.update(packet);
    hash.update(secret);
    hash.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const SECRET: &[u8] = b"s3cr3t-nas";

    // RFC 5176 has no test vectors. These were computed independently of
    // this module, from the RFC formulas, with python3's hashlib and hmac:
    //
    //   def a(t, v): return bytes([t, len(v) + 2]) + v
    //   def req(code, ident, attrs):     # Message-Authenticator first
    //       body = a(80, bytes(16)) + attrs
    //       pkt = bytes([code, ident]) + struct.pack(">H", 20 + len(body)) + bytes(16) + body
    //       pkt = pkt[:22] + hmac.new(secret, pkt, hashlib.md5).digest() + pkt[38:]
    //       return pkt[:4] + hashlib.md5(pkt + secret).digest() + pkt[20:]
    //   def resp(code, request, attrs, with_ma):
    //       body = (a(80, bytes(16)) if with_ma else b"") + attrs
    //       pkt = bytes([code, request[1]]) + struct.pack(">H", 20 + len(body)) + request[4:20] + body
    //       if with_ma: pkt = pkt[:22] + hmac.new(secret, pkt, hashlib.md5).digest() + pkt[38:]
    //       return pkt[:4] + hashlib.md5(pkt + secret).digest() + pkt[20:]
    //
    // with secret = b"s3cr3t-nas" and the attributes of coa_attributes()
    // (tunnel attributes tag 0: a(64, b"\0\0\0\x0d"), a(65, b"\0\0\0\x06"),
    // a(81, b"\0" + b"100")); the Disconnect-Request has User-Name and
    // Acct-Session-Id only.
    const COA_VECTOR: &str = "2b2a0072bf51f6a879ebe4827ee07f68f77c628f5012511c8f0a7fee99018f14\
        c874e9afb053010b6465766963652d31372c0a30303030303032411f1330322d\
        30302d30302d30302d30302d30310406c000020a050600000007370669\
        55b90040060000000d410600000006510600313030";
    const DISCONNECT_VECTOR: &str =
        "2807003b6b64bae8ab335811a4d5565b462c937250127880a69a96c5b41f1b\
        ab5bab9a319671010b6465766963652d31372c0a3030303030303241";
    // Replies to COA_VECTOR: a CoA-NAK with a Message-Authenticator and
    // Error-Cause 503, and a bare CoA-ACK.
    const NAK_VECTOR: &str = "2d2a002ce052099df1204d4c97ebcfb1498294685012c236a1529133e37c88fb\
        eb677f567d3f6506000001f7";
    const ACK_VECTOR: &str = "2c2a00148a452606996541372812d957c37be493";

    fn coa_attributes() -> Vec<Attribute> {
        let mut attributes = vec![
            Attribute::UserName("device-17".into()),
            Attribute::AcctSessionId("0000002A".into()),
            Attribute::CallingStationId("02-00-00-00-00-01".into()),
            Attribute::NasIpAddress(Ipv4Addr::new(192, 0, 2, 10)),
            Attribute::NasPort(7),
            Attribute::EventTimestamp(1_767_225_600),
        ];
        attributes.extend(Attribute::vlan(100));
        attributes
    }

    fn coa_request() -> Request {
        encode_request(RequestCode::Coa, 0x2a, &coa_attributes(), SECRET).unwrap()
    }

    fn bytes(vector: &str) -> Vec<u8> {
        hex::decode(vector.replace(char::is_whitespace, "")).unwrap()
    }

    /// Signs `packet` as a reply to `request`: sets Length, then the
    /// Response Authenticator (not the Message-Authenticator), so that
    /// malformed replies can still carry a valid signature.
    fn sign_reply(mut packet: Vec<u8>, request: &Request) -> Vec<u8> {
        let len = packet.len() as u16;
        packet[2..4].copy_from_slice(&len.to_be_bytes());
        packet[4..20].copy_from_slice(&request.authenticator());
        let auth = md5_with_secret(&packet, SECRET);
        packet[4..20].copy_from_slice(&auth);
        packet
    }

    #[test]
    fn coa_request_matches_the_independent_vector() {
        let request = coa_request();
        assert_eq!(hex::encode(request.bytes()), hex::encode(bytes(COA_VECTOR)));
        assert_eq!(request.identifier(), 0x2a);
        assert_eq!(request.authenticator()[..], bytes(COA_VECTOR)[4..20]);
    }

    #[test]
    fn the_vector_decodes_as_a_request_with_its_attributes() {
        let request = decode_request(&bytes(COA_VECTOR), SECRET).unwrap();
        assert_eq!(request, coa_request());
        let attributes: Vec<(u8, Vec<u8>)> = request
            .attributes()
            .map(|(kind, value)| (kind, value.to_vec()))
            .collect();
        assert_eq!(attributes[0], (attr::USER_NAME, b"device-17".to_vec()));
        assert_eq!(
            attributes[8],
            (attr::TUNNEL_PRIVATE_GROUP_ID, b"\x00100".to_vec())
        );
        assert_eq!(attributes.len(), 9);
        assert_eq!(
            decode_request(&bytes(COA_VECTOR), b"another secret"),
            Err(DecodeError::BadAuthenticator)
        );
        assert_eq!(
            decode_request(&bytes(NAK_VECTOR), SECRET),
            Err(DecodeError::NotARequest { code: 45 })
        );
    }

    #[test]
    fn disconnect_request_matches_the_independent_vector() {
        let request = encode_request(
            RequestCode::Disconnect,
            7,
            &[
                Attribute::UserName("device-17".into()),
                Attribute::AcctSessionId("0000002A".into()),
            ],
            SECRET,
        )
        .unwrap();
        assert_eq!(
            hex::encode(request.bytes()),
            hex::encode(bytes(DISCONNECT_VECTOR))
        );
    }

    #[test]
    fn a_nak_with_error_cause_and_message_authenticator_decodes() {
        let response = decode_response(&bytes(NAK_VECTOR), &coa_request(), SECRET).unwrap();
        assert_eq!(
            response,
            Response {
                kind: ResponseKind::Nak,
                error_cause: Some(503),
                message_authenticator: true,
            }
        );
    }

    #[test]
    fn an_ack_without_message_authenticator_decodes_and_padding_is_ignored() {
        let mut ack = bytes(ACK_VECTOR);
        let expected = Response {
            kind: ResponseKind::Ack,
            error_cause: None,
            message_authenticator: false,
        };
        assert_eq!(
            decode_response(&ack, &coa_request(), SECRET),
            Ok(expected.clone())
        );
        ack.extend_from_slice(&[0xff; 7]);
        assert_eq!(decode_response(&ack, &coa_request(), SECRET), Ok(expected));
    }

    #[test]
    fn our_own_replies_round_trip() {
        let request = coa_request();
        for (kind, attributes) in [
            (ResponseKind::Ack, vec![]),
            (ResponseKind::Nak, vec![Attribute::ErrorCause(404)]),
        ] {
            let reply = encode_response(&request, kind, &attributes, SECRET).unwrap();
            let response = decode_response(&reply, &request, SECRET).unwrap();
            assert_eq!(response.kind, kind);
            assert_eq!(
                response.error_cause,
                attributes.first().map(|_| 404),
                "{kind:?}"
            );
            assert!(response.message_authenticator);
        }
        // The NAK vector is what encode_response builds too.
        let nak = encode_response(
            &request,
            ResponseKind::Nak,
            &[Attribute::ErrorCause(503)],
            SECRET,
        )
        .unwrap();
        assert_eq!(hex::encode(nak), hex::encode(bytes(NAK_VECTOR)));
    }

    #[test]
    fn a_wrong_secret_or_identifier_is_not_authenticated() {
        let request = coa_request();
        let err = decode_response(&bytes(NAK_VECTOR), &request, b"another secret").unwrap_err();
        assert_eq!(err, DecodeError::BadAuthenticator);
        assert!(!err.is_authenticated());

        let other = encode_request(RequestCode::Coa, 0x2b, &coa_attributes(), SECRET).unwrap();
        let err = decode_response(&bytes(NAK_VECTOR), &other, SECRET).unwrap_err();
        assert_eq!(
            err,
            DecodeError::WrongIdentifier {
                expected: 0x2b,
                got: 0x2a
            }
        );
        assert!(!err.is_authenticated());
    }

    #[test]
    fn every_flipped_bit_of_a_reply_is_refused() {
        let request = coa_request();
        let nak = bytes(NAK_VECTOR);
        for i in 0..nak.len() * 8 {
            let mut bad = nak.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let result = decode_response(&bad, &request, SECRET);
            assert!(result.is_err(), "bit {i} flipped: {result:?}");
        }
    }

    #[test]
    fn every_truncation_of_a_reply_is_refused() {
        let request = coa_request();
        let nak = bytes(NAK_VECTOR);
        for len in 0..nak.len() {
            let err = decode_response(&nak[..len], &request, SECRET).unwrap_err();
            assert!(!err.is_authenticated(), "{len}: {err:?}");
        }
    }

    #[test]
    fn length_field_and_datagram_size_are_bounded() {
        let request = coa_request();
        let mut nak = bytes(NAK_VECTOR);
        nak[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            decode_response(&nak, &request, SECRET),
            Err(DecodeError::BadLength { field: 19, len: 44 })
        );
        let huge = vec![0; MAX_PACKET_LEN + 1];
        assert_eq!(
            decode_response(&huge, &request, SECRET),
            Err(DecodeError::TooLong { len: 4097 })
        );
    }

    #[test]
    fn a_wrong_message_authenticator_under_a_valid_response_authenticator_is_refused() {
        let request = coa_request();
        let mut nak = bytes(NAK_VECTOR);
        nak[22] ^= 1;
        let nak = sign_reply(nak, &request);
        let err = decode_response(&nak, &request, SECRET).unwrap_err();
        assert_eq!(err, DecodeError::BadMessageAuthenticator);
        assert!(!err.is_authenticated());
    }

    #[test]
    fn signed_but_malformed_replies_are_refused_as_authenticated() {
        let request = coa_request();
        let with = |code: u8, attributes: &[u8]| {
            let mut packet = vec![code, 0x2a, 0, 0];
            packet.extend_from_slice(&[0; 16]);
            packet.extend_from_slice(attributes);
            packet
        };
        let mut short_ma = vec![80, 17];
        short_ma.extend_from_slice(&[0; 15]);
        let cases: Vec<(Vec<u8>, DecodeError)> = vec![
            // An attribute of length 1 (would loop forever if accepted).
            (with(44, &[18, 1]), DecodeError::BadAttribute { offset: 20 }),
            // An attribute running past Length.
            (
                with(44, &[18, 9, b'x']),
                DecodeError::BadAttribute { offset: 20 },
            ),
            // A lone type octet.
            (with(44, &[18]), DecodeError::BadAttribute { offset: 20 }),
            (
                with(44, &[101, 5, 0, 1, 247]),
                DecodeError::BadAttributeLength {
                    kind: attr::ERROR_CAUSE,
                    len: 5,
                },
            ),
            (
                with(44, &[101, 6, 0, 0, 1, 247, 101, 6, 0, 0, 1, 148]),
                DecodeError::Duplicate {
                    kind: attr::ERROR_CAUSE,
                },
            ),
            (
                with(44, &short_ma),
                DecodeError::BadAttributeLength {
                    kind: attr::MESSAGE_AUTHENTICATOR,
                    len: 17,
                },
            ),
            // Access-Accept is no answer to a CoA-Request.
            (
                with(2, &[]),
                DecodeError::UnexpectedCode {
                    code: 2,
                    request: 43,
                },
            ),
            // Nor is a Disconnect-ACK.
            (
                with(41, &[]),
                DecodeError::UnexpectedCode {
                    code: 41,
                    request: 43,
                },
            ),
        ];
        for (packet, expected) in cases {
            let packet = sign_reply(packet, &request);
            let err = decode_response(&packet, &request, SECRET).unwrap_err();
            assert_eq!(err, expected, "{}", hex::encode(&packet));
            assert!(err.is_authenticated(), "{err:?}");
        }
    }

    #[test]
    fn two_message_authenticators_are_refused() {
        let request = coa_request();
        let mut reply = encode_response(&request, ResponseKind::Ack, &[], SECRET).unwrap();
        let ma = reply[20..38].to_vec();
        reply.extend_from_slice(&ma);
        let reply = sign_reply(reply, &request);
        assert_eq!(
            decode_response(&reply, &request, SECRET),
            Err(DecodeError::Duplicate {
                kind: attr::MESSAGE_AUTHENTICATOR
            })
        );
    }

    #[test]
    fn random_datagrams_never_panic_and_never_pass() {
        let request = coa_request();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5176);
        let nak = bytes(NAK_VECTOR);
        for _ in 0..20_000 {
            let len = rng.random_range(0..300);
            let mut datagram: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Half of them start like the real reply so the parser goes deeper.
            if rng.random() && datagram.len() >= 4 {
                datagram[..4].copy_from_slice(&nak[..4]);
                let field = (datagram.len() as u16).min(rng.random_range(0..300));
                datagram[2..4].copy_from_slice(&field.to_be_bytes());
            }
            assert!(decode_response(&datagram, &request, SECRET).is_err());
        }
    }

    #[test]
    fn values_that_do_not_fit_radius_are_refused() {
        let encode = |attributes: &[Attribute]| {
            encode_request(RequestCode::Coa, 1, attributes, SECRET).unwrap_err()
        };
        assert_eq!(
            encode_request(RequestCode::Coa, 1, &[], b""),
            Err(EncodeError::EmptySecret)
        );
        assert_eq!(
            encode(&[Attribute::UserName(String::new())]),
            EncodeError::EmptyString { kind: 1 }
        );
        assert_eq!(
            encode(&[Attribute::AcctSessionId("x".repeat(254))]),
            EncodeError::ValueTooLong { kind: 44, len: 254 }
        );
        // 253 octets fit; with the tag octet, a 253-octet group id does not.
        assert!(encode_request(
            RequestCode::Coa,
            1,
            &[Attribute::AcctSessionId("x".repeat(253))],
            SECRET
        )
        .is_ok());
        assert_eq!(
            encode(&[Attribute::TunnelPrivateGroupId {
                tag: 0,
                value: "1".repeat(253)
            }]),
            EncodeError::ValueTooLong { kind: 81, len: 254 }
        );
        assert_eq!(
            encode(&[Attribute::TunnelType {
                tag: 0x20,
                value: 13
            }]),
            EncodeError::BadTag {
                kind: 64,
                tag: 0x20
            }
        );
        assert_eq!(
            encode(&[Attribute::TunnelMediumType {
                tag: 1,
                value: 1 << 24
            }]),
            EncodeError::TaggedValueTooLarge {
                kind: 65,
                value: 1 << 24
            }
        );
        let many = vec![Attribute::UserName("u".repeat(253)); 17];
        assert!(matches!(encode(&many), EncodeError::PacketTooLong { .. }));
    }
}
