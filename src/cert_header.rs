//! The client-certificate header a proxy sends to the forward-auth endpoint.
//!
//! Behind nginx, Caddy, Traefik or Envoy the gate never sees the device's TLS
//! handshake: the proxy terminates it and forwards the certificate in a request
//! header. Each proxy encodes it its own way, so the proxy's configured kind
//! picks the decoder ([`HeaderFormat`]); the gate never sniffs the format, since
//! a value that decodes under a format other than the proxy's cannot have come
//! from that proxy.
//!
//! This module only turns the header value into DER certificates, leaf first.
//! It does not validate them as X.509: the caller verifies the chain against
//! the client CA (and CRLs), exactly as for a certificate shown in a handshake.
//! Everything here is strict (anything a proxy would not have produced is an
//! error, never skipped) and bounded: the value is refused before any decoding
//! past [`MAX_VALUE_BYTES`], every pass is linear in the value, and no more than
//! [`MAX_CERTIFICATES`] certificates are ever decoded.

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

/// How the proxy encodes the certificate in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFormat {
    /// nginx `$ssl_client_escaped_cert`: the PEM, percent-encoded.
    EscapedPem,
    /// Caddy `{http.request.tls.client.certificate_der_base64}` (one
    /// certificate) and Traefik `passTLSClientCert` with `pem: true` (the PEM
    /// bodies without BEGIN/END lines or newlines, `,`-separated, leaf first):
    /// standard base64 of the DER, with padding.
    Base64Der,
    /// Envoy `x-forwarded-client-cert` as `SANITIZE_SET` writes it: one
    /// element with `Hash=` and `Chain=` or `Cert=` (URL-encoded PEM).
    Xfcc,
}

/// A longer value is refused before any decoding. Four PEM certificates with
/// RSA-4096 keys, percent-encoded, stay well below it.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The leaf plus as many intermediates as the TLS listener accepts: a chain
/// through a proxy gets no more room than one in a handshake.
pub const MAX_CERTIFICATES: usize = 1 + crate::gate::MAX_CLIENT_INTERMEDIATES;

/// Why a certificate header was refused. Each says what is wrong with the
/// value; none echoes more than a short, sanitised piece of it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertHeaderError {
    #[error("the certificate header is {len} bytes, more than the {MAX_VALUE_BYTES} allowed")]
    TooLarge { len: usize },
    #[error("the certificate header holds more than {MAX_CERTIFICATES} certificates")]
    TooManyCertificates,
    #[error("the certificate header holds a certificate of zero bytes")]
    EmptyCertificate,
    #[error("the `%` at byte {at} of the certificate header is not followed by two hex digits")]
    BadPercentEscape { at: usize },
    #[error("the PEM in the certificate header holds no CERTIFICATE block")]
    NoPemCertificate,
    #[error(
        "the PEM in the certificate header has text outside a CERTIFICATE block (line {line})"
    )]
    TextOutsidePem { line: usize },
    #[error(
        "the PEM in the certificate header holds a {label:?} section; only CERTIFICATE is accepted"
    )]
    OtherPemSection { label: String },
    #[error("line {line} of a PEM CERTIFICATE block in the certificate header is not base64")]
    BadPemLine { line: usize },
    #[error("a PEM CERTIFICATE block in the certificate header has no END line")]
    UnterminatedPem,
    #[error("the PEM in the certificate header does not decode: {0}")]
    PemDecode(String),
    #[error("item {item} of the certificate list is empty")]
    EmptyListItem { item: usize },
    #[error("item {item} of the certificate list is not standard base64 with padding")]
    BadBase64 { item: usize },
    #[error("the XFCC header has a double quote that is never closed")]
    XfccUnterminatedQuote,
    #[error("the XFCC header has a pair without `=` (element {element})")]
    XfccPairWithoutEquals { element: usize },
    #[error("the XFCC header has a pair with an empty key (element {element})")]
    XfccEmptyKey { element: usize },
    #[error("the XFCC header has text after a quoted value (element {element})")]
    XfccTextAfterQuote { element: usize },
    #[error("the XFCC header has a double quote inside an unquoted value (element {element})")]
    XfccStrayQuote { element: usize },
    #[error("the XFCC element has `{key}` more than once")]
    XfccDuplicateKey { key: &'static str },
    #[error("the XFCC `Cert` holds more than one certificate")]
    XfccCertNotSingle,
    #[error("the XFCC `Cert` is not the first certificate of its `Chain`")]
    XfccCertNotChainLeaf,
    #[error("the XFCC `Hash` is not the SHA-256 of the certificate it comes with")]
    XfccHashMismatch,
    #[error("the XFCC header has more than one element; the Envoy in front of the gate must replace it (forward_client_cert_details: SANITIZE_SET)")]
    XfccSeveralElements,
    #[error("the XFCC element has a certificate but no `Hash`, which Envoy always writes")]
    XfccNoHash,
}

type Chain = Vec<CertificateDer<'static>>;

/// Decodes the certificate header `value` as `format`.
///
/// `Ok(None)`: no certificate (an empty or whitespace value; an XFCC whose
/// element has neither `Cert` nor `Chain`). `Ok(Some(chain))`: leaf first,
/// 1..=[`MAX_CERTIFICATES`] DER certificates, none empty. The bytes are not
/// X.509-validated here; the caller verifies them against the client CA.
pub fn decode(format: HeaderFormat, value: &[u8]) -> Result<Option<Chain>, CertHeaderError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(CertHeaderError::TooLarge { len: value.len() });
    }
    if value.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match format {
        HeaderFormat::EscapedPem => escaped_pem(value).map(Some),
        HeaderFormat::Base64Der => base64_der(value).map(Some),
        HeaderFormat::Xfcc => xfcc(value),
    }
}

/// Percent-encoded PEM (nginx `$ssl_client_escaped_cert`, the values of
/// Envoy's `Cert=`/`Chain=`).
fn escaped_pem(value: &[u8]) -> Result<Chain, CertHeaderError> {
    pem_certificates(&percent_decode(value)?)
}

/// Strict percent-decoding: `%XX` with two hex digits, any other byte as is.
/// `+` stays `+` (it is a base64 character, and neither nginx nor Envoy writes
/// a space as `+`); a `%` without two hex digits is refused rather than kept,
/// so a value has exactly one reading.
fn percent_decode(value: &[u8]) -> Result<Vec<u8>, CertHeaderError> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let byte = value[i];
        if byte == b'%' {
            let hex = |j: usize| value.get(j).and_then(|b| (*b as char).to_digit(16));
            match (hex(i + 1), hex(i + 2)) {
                (Some(high), Some(low)) => out.push((high * 16 + low) as u8),
                _ => return Err(CertHeaderError::BadPercentEscape { at: i }),
            }
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    Ok(out)
}

const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";

/// The CERTIFICATE blocks of a PEM text, and nothing else.
///
/// rustls-pki-types decodes the blocks, but it skips text between them and
/// sections it does not know, which is right for a file and wrong for a header
/// an attacker may have shaped: so the text's framing is checked line by line
/// first (only blank lines outside blocks, only base64 inside), then the
/// library decodes it.
fn pem_certificates(text: &[u8]) -> Result<Chain, CertHeaderError> {
    let mut blocks = 0usize;
    let mut inside = false;
    // The newline that ends the last line does not start another one.
    let lines = text.strip_suffix(b"\n").unwrap_or(text);
    for (index, raw) in lines.split(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = raw.trim_ascii_end();
        if !inside {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if line == PEM_BEGIN {
                blocks += 1;
                if blocks > MAX_CERTIFICATES {
                    return Err(CertHeaderError::TooManyCertificates);
                }
                inside = true;
            } else if let Some(rest) = line.strip_prefix(b"-----BEGIN ") {
                return Err(CertHeaderError::OtherPemSection {
                    label: printable(rest.strip_suffix(b"-----").unwrap_or(rest)),
                });
            } else {
                return Err(CertHeaderError::TextOutsidePem { line: line_no });
            }
        } else if line == PEM_END {
            inside = false;
        } else if line.is_empty()
            || !line
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(CertHeaderError::BadPemLine { line: line_no });
        }
    }
    if inside {
        return Err(CertHeaderError::UnterminatedPem);
    }
    if blocks == 0 {
        return Err(CertHeaderError::NoPemCertificate);
    }

    let mut chain = Vec::with_capacity(blocks);
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text) {
        let (kind, der) = section.map_err(|e| CertHeaderError::PemDecode(e.to_string()))?;
        if kind != SectionKind::Certificate {
            // The framing check lets only CERTIFICATE blocks through; kept so
            // that a change in the library can never let a key through.
            return Err(CertHeaderError::OtherPemSection {
                label: format!("{kind:?}"),
            });
        }
        if der.is_empty() {
            return Err(CertHeaderError::EmptyCertificate);
        }
        if chain.len() == MAX_CERTIFICATES {
            return Err(CertHeaderError::TooManyCertificates);
        }
        chain.push(CertificateDer::from(der));
    }
    if chain.len() != blocks {
        return Err(CertHeaderError::NoPemCertificate);
    }
    Ok(chain)
}

/// At most 40 printable ASCII characters of a PEM label, for the error.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(40)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Standard base64 DER, one certificate or a `,`-separated list, leaf first.
fn base64_der(value: &[u8]) -> Result<Chain, CertHeaderError> {
    use base64::Engine as _;
    // Counted before decoding anything, so a long list costs one pass.
    if value.iter().filter(|b| **b == b',').count() >= MAX_CERTIFICATES {
        return Err(CertHeaderError::TooManyCertificates);
    }
    let mut chain = Vec::new();
    for (index, item) in value.split(|b| *b == b',').enumerate() {
        let item = item.trim_ascii();
        if item.is_empty() {
            return Err(CertHeaderError::EmptyListItem { item: index + 1 });
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(item)
            .map_err(|_| CertHeaderError::BadBase64 { item: index + 1 })?;
        if der.is_empty() {
            return Err(CertHeaderError::EmptyCertificate);
        }
        chain.push(CertificateDer::from(der));
    }
    Ok(chain)
}

/// The fields of the XFCC element this module reads, as raw (still
/// URL-encoded) values.
#[derive(Default)]
struct XfccElement {
    cert: Option<Vec<u8>>,
    chain: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
}

/// Envoy's `x-forwarded-client-cert`: `,` between elements (one per proxy,
/// appended), `;` between pairs, `key=value`, keys case-insensitive, values
/// optionally double-quoted with `\"` inside. Exactly one element is
/// taken: the one the Envoy in front of the gate writes with
/// `SANITIZE_SET`. More than one cannot be told apart from an element a
/// client forged through a certificate SAN that Envoy writes unquoted
/// (`URI=`, `DNS=`), so it is refused; so is a certificate without the
/// `Hash` Envoy always writes.
fn xfcc(value: &[u8]) -> Result<Option<Chain>, CertHeaderError> {
    let last = xfcc_element(value)?;
    let chain = match (&last.chain, &last.cert) {
        (Some(chain), cert) => {
            let chain = escaped_pem(chain)?;
            if let Some(cert) = cert {
                let cert = single(escaped_pem(cert)?)?;
                if chain.first() != Some(&cert) {
                    return Err(CertHeaderError::XfccCertNotChainLeaf);
                }
            }
            chain
        }
        (None, Some(cert)) => vec![single(escaped_pem(cert)?)?],
        (None, None) => return Ok(None),
    };
    // Envoy always writes `Hash` for the connection's certificate: text a
    // client smuggled in through an unquoted `URI=`/`DNS=` value can add a
    // `Cert`, but its own `Hash` would be a duplicate, and without one the
    // real `Hash` names another certificate.
    let hash = last.hash.as_ref().ok_or(CertHeaderError::XfccNoHash)?;
    let leaf = chain.first().ok_or(CertHeaderError::NoPemCertificate)?;
    let expected = hex::encode(Sha256::digest(leaf.as_ref()));
    if hash.as_slice() != expected.as_bytes() {
        return Err(CertHeaderError::XfccHashMismatch);
    }
    Ok(Some(chain))
}

fn single(mut chain: Chain) -> Result<CertificateDer<'static>, CertHeaderError> {
    match chain.len() {
        1 => chain.pop().ok_or(CertHeaderError::NoPemCertificate),
        _ => Err(CertHeaderError::XfccCertNotSingle),
    }
}

/// One pass over the header, which must be one well-formed element; its
/// `Cert`, `Chain` and `Hash` are kept.
fn xfcc_element(value: &[u8]) -> Result<XfccElement, CertHeaderError> {
    let mut element = XfccElement::default();
    let element_no = 1;
    let mut i = 0;
    loop {
        // One pair: the key runs to `=`.
        let key_start = i;
        while i < value.len() && !matches!(value[i], b'=' | b';' | b',' | b'"') {
            i += 1;
        }
        if value.get(i) != Some(&b'=') {
            return Err(CertHeaderError::XfccPairWithoutEquals {
                element: element_no,
            });
        }
        let key = &value[key_start..i];
        if key.is_empty() {
            return Err(CertHeaderError::XfccEmptyKey {
                element: element_no,
            });
        }
        i += 1;

        // The value, quoted or not; it ends at `;`, `,` or the end.
        let mut text = Vec::new();
        if value.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match value.get(i) {
                    None => return Err(CertHeaderError::XfccUnterminatedQuote),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if value.get(i + 1) == Some(&b'"') => {
                        text.push(b'"');
                        i += 2;
                    }
                    Some(byte) => {
                        text.push(*byte);
                        i += 1;
                    }
                }
            }
            if i < value.len() && !matches!(value[i], b';' | b',') {
                return Err(CertHeaderError::XfccTextAfterQuote {
                    element: element_no,
                });
            }
        } else {
            let start = i;
            while i < value.len() && !matches!(value[i], b';' | b',') {
                if value[i] == b'"' {
                    return Err(CertHeaderError::XfccStrayQuote {
                        element: element_no,
                    });
                }
                i += 1;
            }
            text.extend_from_slice(&value[start..i]);
        }

        let slot = if key.eq_ignore_ascii_case(b"cert") {
            Some((&mut element.cert, "Cert"))
        } else if key.eq_ignore_ascii_case(b"chain") {
            Some((&mut element.chain, "Chain"))
        } else if key.eq_ignore_ascii_case(b"hash") {
            Some((&mut element.hash, "Hash"))
        } else {
            // By, Subject, URI, DNS and anything newer: not needed to find the
            // certificate, so not interpreted.
            None
        };
        if let Some((slot, name)) = slot {
            if slot.is_some() {
                return Err(CertHeaderError::XfccDuplicateKey { key: name });
            }
            *slot = Some(text);
        }

        match value.get(i) {
            None => return Ok(element),
            // Envoy writes `URI=` and `DNS=` values unquoted: a client
            // certificate whose SAN holds `,Cert="…"` would start a
            // forged element. The Envoy in front of the gate replaces the
            // header (SANITIZE_SET), so a second element is refused.
            Some(b',') => return Err(CertHeaderError::XfccSeveralElements),
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// A self-signed certificate with the given common name: its DER and PEM.
    fn cert(cn: &str) -> (Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("certificate");
        (cert.der().to_vec(), cert.pem())
    }

    /// nginx's `ngx_escape_uri(.., NGX_ESCAPE_URI_COMPONENT)`, which is what
    /// `$ssl_client_escaped_cert` applies to the PEM (src/core/ngx_string.c,
    /// table `uri_component`): everything is escaped, as `%XX` with upper-case
    /// hex, except ASCII letters, digits and `-` `.` `_` `~`.
    fn nginx_escape(text: &str) -> String {
        let mut out = String::new();
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(byte as char);
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    }

    /// The subject of a DER certificate, as x509-parser renders it.
    fn subject(der: &[u8]) -> String {
        let (_, cert) = x509_parser::parse_x509_certificate(der).expect("a DER certificate");
        cert.subject().to_string()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/forward_auth/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).expect("fixture")
    }

    fn ders(chain: &Chain) -> Vec<Vec<u8>> {
        chain.iter().map(|c| c.as_ref().to_vec()).collect()
    }

    fn xfcc_escape(pem: &str) -> String {
        // Envoy URL-encodes the PEM the same way for Cert= and Chain=.
        nginx_escape(pem)
    }

    // ---- nginx: escaped PEM ----

    #[test]
    fn an_nginx_escaped_certificate_decodes_to_its_der() {
        let (der, pem) = cert("laptop-17.example");
        let value = nginx_escape(&pem);
        // What nginx writes: escaped spaces, newlines and base64 punctuation.
        assert!(value.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
        assert!(value.ends_with("-----END%20CERTIFICATE-----%0A"));
        let chain = decode(HeaderFormat::EscapedPem, value.as_bytes())
            .expect("decodes")
            .expect("a certificate");
        assert_eq!(ders(&chain), vec![der.clone()]);
        assert_eq!(subject(&chain[0]), "CN=laptop-17.example");
    }

    #[test]
    fn escaped_pem_accepts_base64_punctuation_escaped_or_not() {
        // Find a certificate whose base64 has all three of + / = so the test
        // exercises them (padding `=` depends on the DER length).
        let (der, pem) = (0..64)
            .map(|_| cert("punctuation.example"))
            .find(|(_, pem)| pem.contains('+') && pem.contains('/') && pem.contains('='))
            .expect("a certificate with + / = in its base64");
        let escaped = nginx_escape(&pem);
        assert!(escaped.contains("%2B") && escaped.contains("%2F") && escaped.contains("%3D"));
        // Only the spaces and newlines escaped: + / = raw. `+` is not a space.
        let raw = pem.replace(' ', "%20").replace('\n', "%0A");
        assert!(raw.contains('+'));
        for value in [escaped, raw] {
            let chain = decode(HeaderFormat::EscapedPem, value.as_bytes())
                .expect("decodes")
                .expect("a certificate");
            assert_eq!(ders(&chain), vec![der.clone()], "{value}");
        }
        // Lower-case hex is hex too.
        let lower = nginx_escape(&pem)
            .replace("%2B", "%2b")
            .replace("%0A", "%0a");
        let chain = decode(HeaderFormat::EscapedPem, lower.as_bytes())
            .expect("decodes")
            .expect("a certificate");
        assert_eq!(ders(&chain), vec![der]);
    }

    #[test]
    fn a_percent_without_two_hex_digits_is_refused() {
        let (_, pem) = cert("a.example");
        let good = nginx_escape(&pem);
        let at = good.find("%0A").expect("a newline");
        for bad in ["%0G", "%G0", "%", "%0", "% 0"] {
            let value = format!("{}{bad}{}", &good[..at], &good[at + 3..]);
            assert_eq!(
                decode(HeaderFormat::EscapedPem, value.as_bytes()),
                Err(CertHeaderError::BadPercentEscape { at }),
                "{bad}"
            );
        }
        let value = format!("{good}%");
        assert_eq!(
            decode(HeaderFormat::EscapedPem, value.as_bytes()),
            Err(CertHeaderError::BadPercentEscape { at: good.len() })
        );
    }

    #[test]
    fn escaped_pem_with_two_certificates_keeps_their_order() {
        let (leaf, leaf_pem) = cert("leaf.example");
        let (ca, ca_pem) = cert("intermediate.example");
        let value = nginx_escape(&format!("{leaf_pem}{ca_pem}"));
        let chain = decode(HeaderFormat::EscapedPem, value.as_bytes())
            .expect("decodes")
            .expect("certificates");
        assert_eq!(ders(&chain), vec![leaf, ca]);
    }

    #[test]
    fn a_private_key_in_the_pem_is_refused() {
        let key = rcgen::KeyPair::generate().expect("key");
        let (_, pem) = cert("a.example");
        for text in [
            format!("{pem}{}", key.serialize_pem()),
            format!("{}{pem}", key.serialize_pem()),
        ] {
            assert_eq!(
                decode(HeaderFormat::EscapedPem, nginx_escape(&text).as_bytes()),
                Err(CertHeaderError::OtherPemSection {
                    label: "PRIVATE KEY".into()
                })
            );
        }
    }

    #[test]
    fn text_around_or_inside_the_pem_is_refused() {
        let (_, pem) = cert("a.example");
        let lines = pem.lines().count();
        let cases = [
            (
                format!("{pem}trailing"),
                CertHeaderError::TextOutsidePem { line: lines + 1 },
            ),
            (
                format!("subject=CN=x\n{pem}"),
                CertHeaderError::TextOutsidePem { line: 1 },
            ),
            (
                pem.replacen('\n', "\nProc-Type: 4,ENCRYPTED\n", 1),
                CertHeaderError::BadPemLine { line: 2 },
            ),
            (
                pem.replacen('\n', "\n\n", 1),
                CertHeaderError::BadPemLine { line: 2 },
            ),
            (
                format!("{pem}-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
                CertHeaderError::OtherPemSection {
                    label: "X509 CRL".into(),
                },
            ),
            (
                pem.replace("-----END CERTIFICATE-----\n", ""),
                CertHeaderError::UnterminatedPem,
            ),
            (
                pem.replace("-----END CERTIFICATE-----", "-----END CERTIFICATE-----x"),
                CertHeaderError::BadPemLine { line: lines },
            ),
            (
                "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
                CertHeaderError::EmptyCertificate,
            ),
        ];
        for (text, error) in cases {
            assert_eq!(
                decode(HeaderFormat::EscapedPem, nginx_escape(&text).as_bytes()),
                Err(error),
                "{text}"
            );
        }
    }

    #[test]
    fn an_empty_or_blank_value_is_no_certificate_in_every_format() {
        for format in [
            HeaderFormat::EscapedPem,
            HeaderFormat::Base64Der,
            HeaderFormat::Xfcc,
        ] {
            for value in ["", " ", "\t \t"] {
                assert_eq!(decode(format, value.as_bytes()), Ok(None), "{format:?}");
            }
        }
        // An escaped blank is not a blank value: nginx never sends one.
        assert_eq!(
            decode(HeaderFormat::EscapedPem, b"%20%0A"),
            Err(CertHeaderError::NoPemCertificate)
        );
    }

    #[test]
    fn oversize_values_are_refused_before_decoding() {
        for format in [
            HeaderFormat::EscapedPem,
            HeaderFormat::Base64Der,
            HeaderFormat::Xfcc,
        ] {
            // All blanks: would be `Ok(None)` if the size were not checked first.
            let value = vec![b' '; MAX_VALUE_BYTES + 1];
            assert_eq!(
                decode(format, &value),
                Err(CertHeaderError::TooLarge {
                    len: MAX_VALUE_BYTES + 1
                })
            );
            assert_eq!(decode(format, &value[..MAX_VALUE_BYTES]), Ok(None));
        }
    }

    #[test]
    fn five_certificates_are_refused_four_are_not() {
        let certs: Vec<_> = (0..5).map(|i| cert(&format!("c{i}.example"))).collect();
        let pems = |n: usize| certs[..n].iter().map(|c| c.1.as_str()).collect::<String>();
        let b64 = |n: usize| {
            certs[..n]
                .iter()
                .map(|c| base64::engine::general_purpose::STANDARD.encode(&c.0))
                .collect::<Vec<_>>()
                .join(",")
        };
        let xfcc = |n: usize| {
            format!(
                "Hash={};Chain=\"{}\"",
                sha256_hex(&certs[0].0),
                xfcc_escape(&pems(n))
            )
        };
        let four: Vec<_> = certs[..4].iter().map(|c| c.0.clone()).collect();
        for (format, value4, value5) in [
            (
                HeaderFormat::EscapedPem,
                nginx_escape(&pems(4)),
                nginx_escape(&pems(5)),
            ),
            (HeaderFormat::Base64Der, b64(4), b64(5)),
            (HeaderFormat::Xfcc, xfcc(4), xfcc(5)),
        ] {
            let chain = decode(format, value4.as_bytes())
                .expect("four decode")
                .expect("certificates");
            assert_eq!(ders(&chain), four, "{format:?}");
            assert_eq!(
                decode(format, value5.as_bytes()),
                Err(CertHeaderError::TooManyCertificates),
                "{format:?}"
            );
        }
    }

    // ---- Caddy and Traefik: base64 DER ----

    #[test]
    fn caddy_base64_der_decodes() {
        let (der, _) = cert("caddy-client.example");
        // `certificate_der_base64`: std base64 with padding, one line.
        let value = base64::engine::general_purpose::STANDARD.encode(&der);
        let chain = decode(HeaderFormat::Base64Der, value.as_bytes())
            .expect("decodes")
            .expect("a certificate");
        assert_eq!(ders(&chain), vec![der.clone()]);
        let padded = format!("  {value}\t");
        let chain = decode(HeaderFormat::Base64Der, padded.as_bytes())
            .expect("decodes")
            .expect("a certificate");
        assert_eq!(ders(&chain), vec![der]);
    }

    #[test]
    fn traefik_list_of_two_keeps_the_leaf_first() {
        let (leaf, leaf_pem) = cert("leaf.example");
        let (ca, ca_pem) = cert("intermediate.example");
        // passTLSClientCert pem: true: the PEM without BEGIN/END lines and
        // newlines, one per presented certificate, joined with ",".
        let strip = |pem: &str| {
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>()
        };
        let value = format!("{},{}", strip(&leaf_pem), strip(&ca_pem));
        let chain = decode(HeaderFormat::Base64Der, value.as_bytes())
            .expect("decodes")
            .expect("certificates");
        assert_eq!(ders(&chain), vec![leaf, ca]);
    }

    #[test]
    fn base64_lists_refuse_anything_else() {
        let (der, pem) = cert("a.example");
        let one = base64::engine::general_purpose::STANDARD.encode(&der);
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&der);
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(&der);
        let mut cases = vec![
            (
                format!("{one},"),
                CertHeaderError::EmptyListItem { item: 2 },
            ),
            (
                format!("{one},,{one}"),
                CertHeaderError::EmptyListItem { item: 2 },
            ),
            (
                format!(",{one}"),
                CertHeaderError::EmptyListItem { item: 1 },
            ),
            (
                format!("{one};{one}"),
                CertHeaderError::BadBase64 { item: 1 },
            ),
            (pem.clone(), CertHeaderError::BadBase64 { item: 1 }),
            (
                format!("{one} {one}"),
                CertHeaderError::BadBase64 { item: 1 },
            ),
            (format!("{one},%41"), CertHeaderError::BadBase64 { item: 2 }),
        ];
        if unpadded != one {
            cases.push((unpadded, CertHeaderError::BadBase64 { item: 1 }));
        }
        if url_safe != one {
            cases.push((url_safe, CertHeaderError::BadBase64 { item: 1 }));
        }
        for (value, error) in cases {
            assert_eq!(
                decode(HeaderFormat::Base64Der, value.as_bytes()),
                Err(error),
                "{value}"
            );
        }
    }

    /// Real values: traefik/traefik,
    /// pkg/middlewares/passtlsclientcert/pass_tls_client_cert_test.go (commit
    /// 06232a4a). `traefik-minimal-cheese.txt` is the `expected` header value
    /// of its `Test_sanitize` (the test joins the lines it lists, so the file
    /// has them joined); `traefik-two-certs.txt` is the header of its "TLS
    /// with two certificate" case, `minimalCert` and `minimalCheeseCrt`
    /// sanitised the same way and joined with its `certSeparator` ",".
    #[test]
    fn real_traefik_header_values_decode() {
        let one = decode(
            HeaderFormat::Base64Der,
            &fixture("traefik-minimal-cheese.txt"),
        )
        .expect("decodes")
        .expect("a certificate");
        assert_eq!(one.len(), 1);
        // The subject Traefik's own certInfo test expects for this certificate.
        assert_eq!(subject(&one[0]), "C=FR, ST=Some-State, O=Cheese");

        let two = decode(HeaderFormat::Base64Der, &fixture("traefik-two-certs.txt"))
            .expect("decodes")
            .expect("certificates");
        assert_eq!(two.len(), 2);
        assert_eq!(
            subject(&two[0]),
            "C=FR, ST=Some-State, O=Internet Widgits Pty Ltd"
        );
        assert_eq!(two[1], one[0]);
    }

    // ---- Envoy: XFCC ----

    fn sha256_hex(der: &[u8]) -> String {
        hex::encode(Sha256::digest(der))
    }

    #[test]
    fn an_envoy_header_decodes_and_a_second_element_is_refused() {
        let (device, device_pem) = cert("device.example");
        let (other, other_pem) = cert("someone-else.example");
        // The one element the trusted Envoy writes (SANITIZE_SET), in the
        // order and quoting Envoy writes it.
        let element = |der: &[u8], pem: &str, cn: &str| {
            format!(
                "By=spiffe://cluster.local/ns/gate/sa/envoy;Hash={};Cert=\"{}\";Subject=\"CN={cn}\";URI=",
                sha256_hex(der),
                xfcc_escape(pem),
            )
        };
        let value = element(&device, &device_pem, "device.example");
        let chain = decode(HeaderFormat::Xfcc, value.as_bytes())
            .expect("decodes")
            .expect("a certificate");
        assert_eq!(ders(&chain), vec![device.clone()]);
        assert_eq!(subject(&chain[0]), "CN=device.example");

        // Another proxy's element before it (APPEND_FORWARD) is refused:
        // which element is genuine cannot be told.
        let two = format!(
            "{},{}",
            element(&other, &other_pem, "someone-else.example"),
            value
        );
        assert_eq!(
            decode(HeaderFormat::Xfcc, two.as_bytes()),
            Err(CertHeaderError::XfccSeveralElements)
        );
    }

    #[test]
    fn a_certificate_smuggled_in_through_an_unquoted_uri_san_is_refused() {
        let (attacker, attacker_pem) = cert("attacker.example");
        let (victim, victim_pem) = cert("victim.example");
        let real = format!(
            "By=spiffe://envoy;Hash={};Cert=\"{}\"",
            sha256_hex(&attacker),
            xfcc_escape(&attacker_pem)
        );
        // Envoy writes the URI SAN unquoted: what the attacker's SAN makes of
        // the header, as a new element or as pairs of the same element.
        let smuggled = [
            format!(
                "{real};URI=x,Hash={};Cert=\"{}\"",
                sha256_hex(&victim),
                xfcc_escape(&victim_pem)
            ),
            format!(
                "{real};URI=x;Hash={};Chain=\"{}\"",
                sha256_hex(&victim),
                xfcc_escape(&victim_pem)
            ),
            format!("{real};URI=x;Chain=\"{}\"", xfcc_escape(&victim_pem)),
            format!(
                "By=spiffe://envoy;URI=x;Cert=\"{}\"",
                xfcc_escape(&victim_pem)
            ),
        ];
        for value in smuggled {
            assert!(
                decode(HeaderFormat::Xfcc, value.as_bytes()).is_err(),
                "{value}"
            );
        }
    }

    #[test]
    fn xfcc_chain_is_preferred_and_must_agree_with_cert() {
        let (leaf, leaf_pem) = cert("leaf.example");
        let (ca, ca_pem) = cert("intermediate.example");
        let (_, stranger_pem) = cert("stranger.example");
        let chain_value = xfcc_escape(&format!("{leaf_pem}{ca_pem}"));
        let value = format!(
            "Hash={};Cert=\"{}\";Chain=\"{chain_value}\"",
            sha256_hex(&leaf),
            xfcc_escape(&leaf_pem)
        );
        let chain = decode(HeaderFormat::Xfcc, value.as_bytes())
            .expect("decodes")
            .expect("certificates");
        assert_eq!(ders(&chain), vec![leaf.clone(), ca]);

        let value = format!(
            "Cert=\"{}\";Chain=\"{chain_value}\"",
            xfcc_escape(&stranger_pem)
        );
        assert_eq!(
            decode(HeaderFormat::Xfcc, value.as_bytes()),
            Err(CertHeaderError::XfccCertNotChainLeaf)
        );
        let value = format!("Cert=\"{chain_value}\"");
        assert_eq!(
            decode(HeaderFormat::Xfcc, value.as_bytes()),
            Err(CertHeaderError::XfccCertNotSingle)
        );
    }

    #[test]
    fn xfcc_without_a_certificate_is_no_certificate() {
        let (device, _) = cert("device.example");
        let value = format!(
            "By=spiffe://cluster.local/ns/gate/sa/envoy;Hash={};Subject=\"\";URI=",
            sha256_hex(&device),
        );
        assert_eq!(decode(HeaderFormat::Xfcc, value.as_bytes()), Ok(None));
    }

    #[test]
    fn an_xfcc_hash_that_disagrees_is_refused() {
        let (device, device_pem) = cert("device.example");
        let (other, _) = cert("other.example");
        for hash in [
            sha256_hex(&other),
            sha256_hex(&device).to_uppercase(),
            String::new(),
            "zz".into(),
        ] {
            let value = format!("Hash={hash};Cert=\"{}\"", xfcc_escape(&device_pem));
            assert_eq!(
                decode(HeaderFormat::Xfcc, value.as_bytes()),
                Err(CertHeaderError::XfccHashMismatch),
                "{hash}"
            );
        }
    }

    #[test]
    fn xfcc_quoted_values_may_hold_quotes_commas_and_semicolons() {
        let (device, device_pem) = cert("device.example");
        let value = format!(
            "By=spiffe://x;Hash={};Subject=\"CN=\\\"a, b; c=d\\\",O=Ex\\\\ample\";Cert=\"{}\";DNS=a.example;DNS=b.example",
            sha256_hex(&device),
            xfcc_escape(&device_pem)
        );
        let chain = decode(HeaderFormat::Xfcc, value.as_bytes())
            .expect("decodes")
            .expect("a certificate");
        assert_eq!(ders(&chain), vec![device.clone()]);
        // Keys are case-insensitive.
        let value = format!(
            "hash={};CERT=\"{}\"",
            sha256_hex(&device),
            xfcc_escape(&device_pem)
        );
        let chain = decode(HeaderFormat::Xfcc, value.as_bytes())
            .expect("decodes")
            .expect("a certificate");
        assert_eq!(ders(&chain), vec![device]);
    }

    #[test]
    fn malformed_xfcc_is_refused() {
        let (_, pem) = cert("device.example");
        let cert = xfcc_escape(&pem);
        let cases = [
            (
                format!("Cert=\"{cert}"),
                CertHeaderError::XfccUnterminatedQuote,
            ),
            (
                format!("Subject=\"CN=a\\\";Cert=\"{cert}\""),
                CertHeaderError::XfccTextAfterQuote { element: 1 },
            ),
            (
                format!("By;Cert=\"{cert}\""),
                CertHeaderError::XfccPairWithoutEquals { element: 1 },
            ),
            (
                format!("Cert=\"{cert}\",junk"),
                CertHeaderError::XfccSeveralElements,
            ),
            (
                format!("Cert=\"{cert}\","),
                CertHeaderError::XfccSeveralElements,
            ),
            (format!("Cert=\"{cert}\""), CertHeaderError::XfccNoHash),
            (
                format!("Cert=\"{cert}\";;URI="),
                CertHeaderError::XfccPairWithoutEquals { element: 1 },
            ),
            (
                format!("=x;Cert=\"{cert}\""),
                CertHeaderError::XfccEmptyKey { element: 1 },
            ),
            (
                format!("Cert=\"{cert}\"x"),
                CertHeaderError::XfccTextAfterQuote { element: 1 },
            ),
            (
                format!("URI=a\"b;Cert=\"{cert}\""),
                CertHeaderError::XfccStrayQuote { element: 1 },
            ),
            (
                format!("Cert=\"{cert}\";cert=\"{cert}\""),
                CertHeaderError::XfccDuplicateKey { key: "Cert" },
            ),
            ("Cert=\"\"".into(), CertHeaderError::NoPemCertificate),
            (
                format!("Cert={cert}%"),
                CertHeaderError::BadPercentEscape { at: cert.len() },
            ),
        ];
        for (value, error) in cases {
            assert_eq!(
                decode(HeaderFormat::Xfcc, value.as_bytes()),
                Err(error),
                "{value}"
            );
        }
    }

    /// Real values: kyma-project/kyma,
    /// docs/03-tutorials/00-api-exposure/apix-09-expose-and-secure-workload-with-certificate.md
    /// (commit 0290223b), the `X-Forwarded-Client-Cert` an httpbin behind
    /// Istio's Envoy echoed back (there JSON-escaped; here as sent).
    /// `envoy-kyma-two-elements.txt` is the whole header: the ingress
    /// gateway's element with the client's `Cert`, then the sidecar's element
    /// without one. `envoy-kyma-ingress-element.txt` is its first element
    /// alone, i.e. the header as the ingress gateway sent it on.
    #[test]
    fn real_envoy_header_values_decode() {
        let chain = decode(
            HeaderFormat::Xfcc,
            &fixture("envoy-kyma-ingress-element.txt"),
        )
        .expect("decodes, its Hash agreeing with its Cert")
        .expect("a certificate");
        assert_eq!(chain.len(), 1);
        // The subject the same capture shows in `Subject=` and X-Client-Ssl-Cn.
        assert_eq!(subject(&chain[0]), "CN=client2.example.com, O=example");

        // Two elements (ingress gateway, then sidecar: APPEND_FORWARD):
        // refused, the gate's Envoy must replace the header.
        assert_eq!(
            decode(HeaderFormat::Xfcc, &fixture("envoy-kyma-two-elements.txt")),
            Err(CertHeaderError::XfccSeveralElements)
        );
    }
}
