//! Files a config refers to: certificates, keys, CRLs and the nonce secret.
//! They are read and parsed at load time so a wrong path or a truncated PEM
//! is a config error with a line number, not a failed TLS handshake later.
//!
//! Each function returns a message that names the file; the caller adds the
//! location of the path value in the config.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::path::Path;

/// The nonce secret is an HMAC-SHA-256 key: shorter than the hash output
/// would weaken it (RFC 2104 section 3).
pub const MIN_NONCE_SECRET_BYTES: usize = 32;

/// The most any file a config names may hold. Far above any certificate
/// bundle, CRL or catalogue; what it stops is a path that names a device or
/// a runaway file (`/dev/zero`, a log), which would otherwise be read until
/// memory runs out.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a whole file a config names, at most [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {what} file {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{what} file {} is larger than {} MiB",
            path.display(),
            MAX_FILE_BYTES / (1024 * 1024)
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text(path: &Path, what: &str) -> Result<String, String> {
    String::from_utf8(read_bounded(path, what)?)
        .map_err(|_| format!("{what} file {} is not UTF-8 text", path.display()))
}

fn read_nonempty(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let bytes = read_bounded(path, what)?;
    if bytes.is_empty() {
        return Err(format!("{what} file {} is empty", path.display()));
    }
    Ok(bytes)
}

/// Every `CERTIFICATE` in a PEM file; at least one, each a parsable X.509
/// certificate.
pub fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_nonempty(path, what)?;
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        let cert =
            item.map_err(|e| format!("{what} file {} is not valid PEM: {e}", path.display()))?;
        if x509_parser::parse_x509_certificate(cert.as_ref()).is_err() {
            return Err(format!(
                "{what} file {} holds a CERTIFICATE block that is not an X.509 certificate",
                path.display()
            ));
        }
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(format!(
            "{what} file {} contains no PEM CERTIFICATE",
            path.display()
        ));
    }
    Ok(certs)
}

/// The client-CA bundle: its certificates, each usable as a trust anchor
/// (what the TLS front's verifier makes of them), so a CA the handshake
/// could not use is refused at load with the file's name.
pub fn client_cas(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = certificates(path, "client CA")?;
    for (i, cert) in certs.iter().enumerate() {
        if let Err(e) = webpki::anchor_from_trusted_cert(cert) {
            return Err(format!(
                "client CA file {}: certificate {} cannot be a trust anchor: {e}",
                path.display(),
                i + 1
            ));
        }
    }
    Ok(certs)
}

/// A PEM private key (PKCS#8, SEC1 or PKCS#1), as DER.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_nonempty(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "private key file {} contains no PEM PRIVATE KEY",
            path.display()
        ),
        other => format!(
            "private key file {} is not valid PEM: {other}",
            path.display()
        ),
    })
}

/// One or more CRLs: PEM `X509 CRL` blocks, or a single DER CRL. Each must
/// parse both for the revocation set (x509-parser) and for the TLS
/// verifier (webpki), so neither can fail later on a file that loaded.
pub fn crl(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = read_nonempty(path, "CRL")?;
    let looks_like_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    if !looks_like_pem {
        return match x509_parser::parse_x509_crl(&bytes) {
            Ok(([], _)) => {
                check_crl_for_tls(path, &bytes, None)?;
                Ok(vec![CertificateRevocationListDer::from(bytes)])
            }
            _ => Err(format!(
                "CRL file {} is neither PEM nor a DER certificate revocation list",
                path.display()
            )),
        };
    }
    let mut crls = Vec::new();
    for item in CertificateRevocationListDer::pem_slice_iter(&bytes) {
        let der = item.map_err(|e| format!("CRL file {} is not valid PEM: {e}", path.display()))?;
        if x509_parser::parse_x509_crl(der.as_ref()).is_err() {
            return Err(format!(
                "CRL file {} holds an X509 CRL block that does not parse",
                path.display()
            ));
        }
        check_crl_for_tls(path, der.as_ref(), Some(crls.len() + 1))?;
        crls.push(der);
    }
    if crls.is_empty() {
        return Err(format!(
            "CRL file {} contains no PEM X509 CRL",
            path.display()
        ));
    }
    Ok(crls)
}

/// The issuer and validity of a CRL [`crl`] returned; `None` only for
/// bytes that [`crl`] would have refused.
pub fn crl_validity(
    file: &Path,
    der: &CertificateRevocationListDer<'_>,
) -> Option<super::snapshot::CrlValidity> {
    let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).ok()?;
    Some(super::snapshot::CrlValidity {
        file: file.to_path_buf(),
        issuer: crl.issuer().to_string(),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
    })
}

/// webpki is stricter than x509-parser about what a CRL may contain (for
/// example critical extensions it does not know).
fn check_crl_for_tls(path: &Path, der: &[u8], block: Option<usize>) -> Result<(), String> {
    webpki::OwnedCertRevocationList::from_der(der)
        .map(|_| ())
        .map_err(|e| {
            let which = block.map_or(String::new(), |n| format!(" (CRL {n})"));
            format!(
                "CRL file {}{which} cannot be used to check client certificates: {e}",
                path.display()
            )
        })
}

/// The nonce HMAC secret. One trailing line ending is dropped, so a secret
/// written with `echo` or an editor is the same key on every gate instance
/// whether or not the tool added a newline.
pub fn nonce_secret(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = read_nonempty(path, "nonce secret")?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    if bytes.len() < MIN_NONCE_SECRET_BYTES {
        return Err(format!(
            "nonce secret file {} holds {} bytes; at least {MIN_NONCE_SECRET_BYTES} are needed \
             (create one with: head -c 32 /dev/urandom > {})",
            path.display(),
            bytes.len(),
            path.display()
        ));
    }
    Ok(bytes)
}

/// The Redis password. One trailing line ending is dropped (as for the
/// nonce secret); it must be UTF-8 without control characters, which the
/// protocol's AUTH would carry badly.
pub fn redis_password(path: &Path) -> Result<String, String> {
    let mut bytes = read_nonempty(path, "Redis password")?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    match String::from_utf8(bytes) {
        Ok(p) if !p.is_empty() && !p.chars().any(char::is_control) => Ok(p),
        _ => Err(format!(
            "Redis password file {} must hold one line of text",
            path.display()
        )),
    }
}

/// A RADIUS shared secret: one line of printable text (one trailing line
/// ending dropped), at least 16 characters (RFC 3580 asks for that much
/// where a secret guards 802.1X; shorter ones are guessable offline from
/// one captured packet).
pub fn radius_secret(path: &Path) -> Result<String, String> {
    let mut bytes = read_nonempty(path, "RADIUS secret")?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    match String::from_utf8(bytes) {
        Ok(s) if s.chars().count() >= 16 && !s.chars().any(char::is_control) => Ok(s),
        Ok(s) if !s.chars().any(char::is_control) => Err(format!(
            "RADIUS secret file {} holds {} characters; use at least 16",
            path.display(),
            s.chars().count()
        )),
        _ => Err(format!(
            "RADIUS secret file {} must hold one line of text",
            path.display()
        )),
    }
}

/// Whether `key` is the private half of the public key in `cert`: what the
/// TLS front checks at bind (rustls's `KeyMismatch`), done at load so the
/// error can name both files. `None` when the key is of a type this check
/// does not know; the TLS front then has the last word.
pub fn key_matches(cert: &CertificateDer<'_>, key: &PrivateKeyDer<'_>) -> Option<bool> {
    use aws_lc_rs::signature::{self, KeyPair};
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let in_cert: &[u8] = &parsed.public_key().subject_public_key.data;
    let curves = [
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
    ];
    let public: Vec<u8> = match key {
        PrivateKeyDer::Pkcs1(k) => signature::RsaKeyPair::from_der(k.secret_pkcs1_der())
            .ok()?
            .public_key()
            .as_ref()
            .to_vec(),
        PrivateKeyDer::Sec1(k) => curves.iter().find_map(|alg| {
            signature::EcdsaKeyPair::from_private_key_der(alg, k.secret_sec1_der())
                .ok()
                .map(|kp| kp.public_key().as_ref().to_vec())
        })?,
        PrivateKeyDer::Pkcs8(k) => {
            let der = k.secret_pkcs8_der();
            if let Some(ec) = curves.iter().find_map(|alg| {
                signature::EcdsaKeyPair::from_pkcs8(alg, der)
                    .ok()
                    .map(|kp| kp.public_key().as_ref().to_vec())
            }) {
                ec
            } else if let Ok(kp) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                kp.public_key().as_ref().to_vec()
            } else {
                signature::RsaKeyPair::from_pkcs8(der)
                    .ok()?
                    .public_key()
                    .as_ref()
                    .to_vec()
            }
        }
        _ => return None,
    };
    Some(public == in_cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_secret_drops_one_line_ending_and_checks_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, format!("{}\n", "k".repeat(32))).unwrap();
        assert_eq!(nonce_secret(&p).unwrap(), b"k".repeat(32));
        std::fs::write(&p, format!("{}\n", "k".repeat(31))).unwrap();
        let err = nonce_secret(&p).unwrap_err();
        assert!(err.contains("holds 31 bytes"), "{err}");
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.pem");
        let err = certificates(&p, "certificate").unwrap_err();
        assert!(err.starts_with("cannot read certificate file "), "{err}");
        assert!(err.contains("none.pem"), "{err}");
        std::fs::write(&p, "").unwrap();
        let err = private_key(&p).unwrap_err();
        assert!(err.ends_with("none.pem is empty"), "{err}");
    }

    #[test]
    fn pem_without_the_wanted_block_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pem");
        std::fs::write(&p, "just text\n").unwrap();
        assert!(certificates(&p, "certificate")
            .unwrap_err()
            .contains("contains no PEM CERTIFICATE"));
        assert!(private_key(&p)
            .unwrap_err()
            .contains("contains no PEM PRIVATE KEY"));
        assert!(crl(&p).unwrap_err().contains("neither PEM nor a DER"));
    }
}
