//! JWS Compact Serialization (RFC 7515) as profiled by spec section 1: the
//! three parts, the protected header and the algorithm allow-list.
//!
//! The header is read into loose JSON values and checked field by field, so
//! that `alg` is judged before anything else in it (spec section 7: a library
//! that cannot represent `none` must not turn it into `malformed`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::Reason;

/// Largest token accepted, in bytes of the compact serialization (spec §3).
pub const MAX_TOKEN_BYTES: usize = 1_048_576;

/// Most certificates `x5c` may carry (spec §1).
pub const MAX_X5C: usize = 4;

/// The allow-list of spec section 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// `ES256`: ECDSA over P-256 with SHA-256; must be accepted.
    Es256,
    /// `ES384`: ECDSA over P-384 with SHA-384; the spec allows it.
    Es384,
    /// `EdDSA`: Ed25519; must be accepted.
    EdDsa,
}

impl Alg {
    /// JWS `alg` names are case-sensitive (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "ES256" => Some(Alg::Es256),
            "ES384" => Some(Alg::Es384),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }

    /// The header name, e.g. `EdDSA`; inverse of [`Alg::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// The three parts of a compact token, borrowed from it.
#[derive(Debug)]
pub struct Compact<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a [u8],
    /// The first part, still base64url: input of [`parse_header`].
    pub header_b64: &'a [u8],
    /// The second part, still base64url: input of [`parse_payload`], which
    /// must wait until the signature has been checked.
    pub payload_b64: &'a [u8],
    /// The third part, base64url-decoded but otherwise unchecked until
    /// verification (ECDSA signatures are fixed-length r||s, RFC 7518
    /// section 3.4).
    pub signature: Vec<u8>,
}

/// The checked protected header.
#[derive(Debug)]
pub struct Header {
    /// The allow-listed `alg`; it must also fit the leaf's key type, which
    /// is checked with the signature.
    pub alg: Alg,
    /// DER of each `x5c` entry, leaf first.
    pub x5c: Vec<Vec<u8>>,
}

/// Splits a token into its parts and decodes the signature: both belong to
/// "compact form" in the order of spec section 7.
pub fn split(token: &[u8]) -> Result<Compact<'_>, Reason> {
    // Header and signature are short: find their dots from either end, then
    // make sure the long payload between them holds none (slice `contains`
    // is a word-at-a-time memchr).
    let (Some(first), Some(second)) = (
        token.iter().position(|b| *b == b'.'),
        token.iter().rposition(|b| *b == b'.'),
    ) else {
        return Err(Reason::Malformed);
    };
    if first == second || token[first + 1..second].contains(&b'.') {
        return Err(Reason::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(&token[second + 1..])
        .map_err(|_| Reason::Malformed)?;
    Ok(Compact {
        signing_input: &token[..second],
        header_b64: &token[..first],
        payload_b64: &token[first + 1..second],
        signature,
    })
}

/// Decodes and checks the protected header: `alg`, then `typ`, `crit` and
/// finally the `x5c` certificates (their DER is parsed with the chain).
pub fn parse_header(header_b64: &[u8]) -> Result<Header, Reason> {
    let json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| Reason::Malformed)?;
    let raw = parse_object::<RawHeader>(&json)?;
    let alg = check_alg(raw.alg)?;
    check_typ(raw.typ)?;
    if raw.crit.is_some() {
        return Err(Reason::Malformed);
    }
    let x5c = decode_x5c(raw.x5c)?;
    Ok(Header { alg, x5c })
}

/// Base64url-decodes the payload and parses it as claims. Run only after the
/// signature has been checked.
pub fn parse_payload<T: serde::de::DeserializeOwned>(payload_b64: &[u8]) -> Result<T, Reason> {
    // base64url without padding (RFC 7515 §2); base64-simd rejects padding,
    // foreign characters and non-canonical trailing bits, like the scalar engine.
    let json = base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(payload_b64)
        .map_err(|_| Reason::Malformed)?;
    parse_object(&json)
}

/// JSON text is UTF-8 (RFC 8259 §8.1). Checking it once for the whole text
/// and parsing from `str` spares serde_json a UTF-8 check per string, which
/// for an inventory of hundreds of items is a tenth of the verification.
fn json_text(json: &[u8]) -> Result<&str, Reason> {
    std::str::from_utf8(json).map_err(|_| Reason::Malformed)
}

/// serde also fills a struct from a JSON array; the header and the claims
/// must be JSON objects (RFC 7515 §4, RFC 7519 §7.2).
fn parse_object<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, Reason> {
    let first = json.iter().find(|b| !b" \t\r\n".contains(b));
    if first != Some(&b'{') {
        return Err(Reason::Malformed);
    }
    serde_json::from_str(json_text(json)?).map_err(|_| Reason::Malformed)
}

/// Header members as loose values, `Some` whenever the member is present,
/// even as `null`. serde's derive refuses duplicate members, which RFC 7515
/// §4 lets a verifier refuse.
#[derive(Deserialize)]
struct RawHeader {
    #[serde(default, deserialize_with = "present")]
    alg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    typ: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    x5c: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn check_alg(alg: Option<Value>) -> Result<Alg, Reason> {
    match alg {
        None => Err(Reason::Malformed),
        Some(Value::String(name)) => Alg::from_name(&name).ok_or(Reason::UnsupportedAlg),
        // Present but not a name on the allow-list.
        Some(_) => Err(Reason::UnsupportedAlg),
    }
}

/// `eat+jwt`, case-insensitive, with an optional `application/` prefix
/// (RFC 7515 §4.1.9). A missing `typ` is "anything else".
fn check_typ(typ: Option<Value>) -> Result<(), Reason> {
    let Some(Value::String(typ)) = typ else {
        return Err(Reason::Malformed);
    };
    let typ = typ.as_bytes();
    const PREFIX: &[u8] = b"application/";
    let bare = if typ.len() >= PREFIX.len() && typ[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        &typ[PREFIX.len()..]
    } else {
        typ
    };
    if bare.eq_ignore_ascii_case(b"eat+jwt") {
        Ok(())
    } else {
        Err(Reason::Malformed)
    }
}

/// Standard base64 with padding (RFC 7515 §4.1.6), not base64url.
fn decode_x5c(x5c: Option<Value>) -> Result<Vec<Vec<u8>>, Reason> {
    let Some(Value::Array(entries)) = x5c else {
        return Err(Reason::Malformed);
    };
    if entries.is_empty() || entries.len() > MAX_X5C {
        return Err(Reason::Malformed);
    }
    entries
        .iter()
        .map(|e| match e {
            Value::String(b64) => STANDARD.decode(b64).map_err(|_| Reason::Malformed),
            _ => Err(Reason::Malformed),
        })
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn payload_base64url_is_strict() {
        #[derive(serde::Deserialize)]
        struct P {}
        // `{}` is e30; with padding, standard-alphabet or non-canonical trailing bits it is refused.
        assert!(parse_payload::<P>(b"e30").is_ok());
        assert!(matches!(
            parse_payload::<P>(b"e30="),
            Err(Reason::Malformed)
        ));
        assert!(matches!(parse_payload::<P>(b"e31"), Err(Reason::Malformed)));
        assert!(matches!(parse_payload::<P>(b"e3+"), Err(Reason::Malformed)));
        assert!(matches!(
            parse_payload::<P>(b"e3 0"),
            Err(Reason::Malformed)
        ));
    }
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn header(json: &str) -> Result<Header, Reason> {
        parse_header(b64(json).as_bytes())
    }

    const CERT_B64: &str = "MAA="; // any standard base64; DER is judged later

    #[test]
    fn split_needs_exactly_three_parts() {
        assert_eq!(split(b"a.b").unwrap_err(), Reason::Malformed);
        assert_eq!(split(b"a.b.c.d").unwrap_err(), Reason::Malformed);
        let c = split(b"aGk.cGF5.").unwrap();
        assert_eq!(c.signing_input, b"aGk.cGF5");
        assert_eq!(c.header_b64, b"aGk");
        assert_eq!(c.payload_b64, b"cGF5");
        assert!(c.signature.is_empty());
        assert_eq!(split(b"a.b.!!").unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn alg_is_judged_first() {
        // No typ, no x5c: still unsupported_alg, not malformed.
        assert_eq!(
            header(r#"{"alg":"none"}"#).unwrap_err(),
            Reason::UnsupportedAlg
        );
        assert_eq!(
            header(r#"{"alg":"HS256"}"#).unwrap_err(),
            Reason::UnsupportedAlg
        );
        assert_eq!(
            header(r#"{"alg":"es256"}"#).unwrap_err(),
            Reason::UnsupportedAlg
        );
        assert_eq!(header(r#"{"alg":7}"#).unwrap_err(), Reason::UnsupportedAlg);
        assert_eq!(
            header(r#"{"alg":null}"#).unwrap_err(),
            Reason::UnsupportedAlg
        );
        assert_eq!(
            header(r#"{"typ":"eat+jwt"}"#).unwrap_err(),
            Reason::Malformed
        );
    }

    #[test]
    fn typ_rules() {
        for ok in [
            "eat+jwt",
            "EAT+JWT",
            "application/eat+jwt",
            "Application/EAT+jwt",
        ] {
            let h = format!(r#"{{"alg":"ES256","typ":"{ok}","x5c":["{CERT_B64}"]}}"#);
            assert!(header(&h).is_ok(), "{ok}");
        }
        for bad in ["JWT", "eat+cwt", "application/jwt", "text/eat+jwt", ""] {
            let h = format!(r#"{{"alg":"ES256","typ":"{bad}","x5c":["{CERT_B64}"]}}"#);
            assert_eq!(header(&h).unwrap_err(), Reason::Malformed, "{bad}");
        }
        let h = format!(r#"{{"alg":"ES256","x5c":["{CERT_B64}"]}}"#);
        assert_eq!(header(&h).unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn crit_duplicates_and_non_objects_are_malformed() {
        let h = format!(r#"{{"alg":"ES256","typ":"eat+jwt","crit":[],"x5c":["{CERT_B64}"]}}"#);
        assert_eq!(header(&h).unwrap_err(), Reason::Malformed);
        let h = format!(r#"{{"alg":"ES256","alg":"ES256","typ":"eat+jwt","x5c":["{CERT_B64}"]}}"#);
        assert_eq!(header(&h).unwrap_err(), Reason::Malformed);
        assert_eq!(
            header(r#"["ES256","eat+jwt"]"#).unwrap_err(),
            Reason::Malformed
        );
        assert_eq!(header("not json").unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn x5c_is_standard_base64_one_to_four_entries() {
        let with = |x5c: &str| header(&format!(r#"{{"alg":"EdDSA","typ":"eat+jwt","x5c":{x5c}}}"#));
        assert_eq!(with(r#"["+/8="]"#).unwrap().x5c, vec![vec![0xfb, 0xff]]);
        assert_eq!(with(r#"["-_8"]"#).unwrap_err(), Reason::Malformed);
        assert_eq!(with(r#"["-_8="]"#).unwrap_err(), Reason::Malformed);
        assert_eq!(with("[]").unwrap_err(), Reason::Malformed);
        assert_eq!(with(r#""MAA=""#).unwrap_err(), Reason::Malformed);
        assert_eq!(with("[1]").unwrap_err(), Reason::Malformed);
        assert_eq!(
            with(&format!("[{}]", ["\"MAA=\""; 4].join(",")))
                .unwrap()
                .x5c
                .len(),
            4
        );
        assert_eq!(
            with(&format!("[{}]", ["\"MAA=\""; 5].join(","))).unwrap_err(),
            Reason::Malformed
        );
    }

    #[test]
    fn payload_must_be_a_utf8_json_object() {
        #[derive(serde::Deserialize, Debug)]
        struct P {
            #[allow(dead_code)]
            a: String,
        }
        let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        assert!(parse_payload::<P>(enc(br#" {"a":"x"}"#).as_bytes()).is_ok());
        let bad_utf8 = enc(b"{\"a\":\"\xff\"}");
        assert_eq!(
            parse_payload::<P>(bad_utf8.as_bytes()).unwrap_err(),
            Reason::Malformed
        );
        assert_eq!(
            parse_payload::<P>(enc(br#"["x"]"#).as_bytes()).unwrap_err(),
            Reason::Malformed
        );
        assert_eq!(parse_payload::<P>(b"e30=").unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn escaped_slash_in_x5c_is_decoded() {
        let h = r#"{"alg":"ES256","typ":"eat+jwt","x5c":["+\/8="]}"#;
        assert_eq!(header(h).unwrap().x5c, vec![vec![0xfb, 0xff]]);
    }
}
