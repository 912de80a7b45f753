//! The forward-auth certificate-header decoders (nginx escaped PEM, Caddy and
//! Traefik base64 DER, Envoy XFCC) on the same input, with the invariants the
//! gate relies on: a refused oversize value, never more than
//! `MAX_CERTIFICATES` certificates and never an empty one, "no certificate"
//! only for a blank value (and, in XFCC, for an element without one), and
//! a decoded chain that, written again the way the proxy writes it, decodes
//! to itself.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use posture_gate::cert_header::{decode, HeaderFormat, MAX_CERTIFICATES, MAX_VALUE_BYTES};
use rustls_pki_types::CertificateDer;

fuzz_target!(|data: &[u8]| {
    let blank = data.iter().all(u8::is_ascii_whitespace);
    for format in [
        HeaderFormat::EscapedPem,
        HeaderFormat::Base64Der,
        HeaderFormat::Xfcc,
    ] {
        let result = decode(format, data);
        if data.len() > MAX_VALUE_BYTES {
            assert!(result.is_err(), "{format:?}: oversize value accepted");
            continue;
        }
        match result {
            Ok(None) => {
                if format != HeaderFormat::Xfcc {
                    assert!(blank, "{format:?}: Ok(None) for a non-blank value");
                }
            }
            Ok(Some(chain)) => {
                assert!(!blank, "{format:?}: a certificate from a blank value");
                assert!(
                    (1..=MAX_CERTIFICATES).contains(&chain.len()),
                    "{format:?}: {} certificates",
                    chain.len()
                );
                assert!(
                    chain.iter().all(|c| !c.as_ref().is_empty()),
                    "{format:?}: an empty certificate"
                );
                let again = reencode(format, &chain);
                assert_eq!(
                    decode(format, again.as_bytes()).ok().flatten().as_ref(),
                    Some(&chain),
                    "{format:?}: the chain written again does not decode to itself"
                );
            }
            Err(e) => {
                // Every refusal says something.
                assert!(!e.to_string().is_empty());
            }
        }
    }
});

/// The chain as the proxy of `format` would send it.
fn reencode(format: HeaderFormat, chain: &[CertificateDer<'static>]) -> String {
    let pem = || {
        chain
            .iter()
            .map(|c| {
                let body = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
                let lines: Vec<&str> = body
                    .as_bytes()
                    .chunks(64)
                    .map(|l| std::str::from_utf8(l).unwrap_or(""))
                    .collect();
                format!(
                    "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                    lines.join("\n")
                )
            })
            .collect::<String>()
    };
    match format {
        HeaderFormat::EscapedPem => escape(&pem()),
        HeaderFormat::Base64Der => chain
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c.as_ref()))
            .collect::<Vec<_>>()
            .join(","),
        HeaderFormat::Xfcc => format!("By=spiffe://fuzz;Chain=\"{}\"", escape(&pem())),
    }
}

/// nginx's NGX_ESCAPE_URI_COMPONENT: all but letters, digits and `-._~`.
fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
