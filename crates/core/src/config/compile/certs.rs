//! The TLS files of every listener, checked as pairs: a key that is not
//! the certificate's would make the listener fail at bind with rustls's
//! `KeyMismatch`, which names neither file; a server certificate that is
//! expired (or not yet valid) makes every client refuse the gate. Both are
//! errors here, at the key's or the certificate's line, naming the files.
//!
//! That a certificate is about to expire, or does not name a route's host,
//! is a warning of `check-config` instead (see `summary.rs`): nothing is
//! admitted by mistake (the client refuses the handshake itself), and one
//! route's missing name must not stop every other route at start, nor make
//! a reload with a rotated certificate fail and keep the old one.

use std::path::Path;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_spanned::Spanned;

use super::super::files;
use super::Context;

impl Context<'_> {
    /// `key` (read from `key_path`) against the first certificate of
    /// `chain` (read from `cert_path`); `what` names the pair in messages.
    pub(super) fn key_pair(
        &mut self,
        key_value: &Spanned<std::path::PathBuf>,
        [cert_path, key_path]: [&Path; 2],
        chain: &[CertificateDer<'_>],
        key: Option<&PrivateKeyDer<'_>>,
        what: &str,
    ) {
        let (Some(leaf), Some(key)) = (chain.first(), key) else {
            // A file that did not load has been reported already.
            return;
        };
        if files::key_matches(leaf, key) == Some(false) {
            self.c.at(
                key_value.span(),
                format!(
                    "{what}: the private key {} does not belong to the certificate {} (its \
                     public key is not the one in the certificate); give the key the \
                     certificate was issued for, or a certificate for this key",
                    key_path.display(),
                    cert_path.display()
                ),
            );
        }
    }

    /// An error when the leaf of `chain` is outside its validity now.
    pub(super) fn certificate_validity(
        &mut self,
        cert_value: &Spanned<std::path::PathBuf>,
        cert_path: &Path,
        chain: &[CertificateDer<'_>],
        what: &str,
    ) {
        let Some(leaf) = chain.first() else { return };
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
            return;
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let validity = parsed.validity();
        let (from, until) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        let day = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .map(|d| d.date().to_string())
                .unwrap_or_else(|_| format!("@{t}"))
        };
        if until < now {
            self.c.at(
                cert_value.span(),
                format!(
                    "{what} {} expired on {} (notAfter): every client would refuse it; \
                     install a renewed certificate",
                    cert_path.display(),
                    day(until)
                ),
            );
        } else if from > now {
            self.c.at(
                cert_value.span(),
                format!(
                    "{what} {} is not valid before {} (notBefore): every client would \
                     refuse it until then; check the clock of the machine that issued it",
                    cert_path.display(),
                    day(from)
                ),
            );
        }
    }
}

/// Whether `cert` names `host` (a route host: lowercase DNS name, IPv4
/// address or bracketed IPv6 address) the way a TLS client checks it: an
/// IP address against the IP SANs, a name against the DNS SANs, where
/// `*.example.org` covers exactly one label more. Without SANs the CN is
/// not used (browsers ignore it since 2017).
pub fn covers(cert: &CertificateDer<'_>, host: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return san.value.general_names.iter().any(|n| match n {
            GeneralName::IPAddress(bytes) => match (ip, bytes.len()) {
                (std::net::IpAddr::V4(v4), 4) => v4.octets() == **bytes,
                (std::net::IpAddr::V6(v6), 16) => v6.octets() == **bytes,
                _ => false,
            },
            _ => false,
        });
    }
    san.value.general_names.iter().any(|n| match n {
        GeneralName::DNSName(name) => dns_matches(&name.to_ascii_lowercase(), host),
        _ => false,
    })
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::dns_matches;

    #[test]
    fn a_wildcard_covers_one_label() {
        assert!(dns_matches("*.rijk.example", "intranet.rijk.example"));
        assert!(!dns_matches("*.rijk.example", "a.b.rijk.example"));
        assert!(!dns_matches("*.rijk.example", "rijk.example"));
        assert!(dns_matches("gate.example.", "gate.example"));
        assert!(!dns_matches("gate.example", "other.example"));
    }
}
