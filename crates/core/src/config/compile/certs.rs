//! The TLS files of every listener, checked as pairs: a key that is not
//! the certificate's would make the listener fail at bind with rustls's
//! `KeyMismatch`, which names neither file: an error here, at the key's
//! line, naming both files. A listener certificate that is expired (or not
//! yet valid) is reported by [`validity_problems`] (see there for why it is
//! not a load error).
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
}

/// The listener certificates (the server's, forward-auth's, 802.1X's) that
/// are outside their validity at `now`: one message each, naming the file.
///
/// Not a load error: CRLs, rules and exemptions reach a running gate only
/// by reloading its configuration, and a reload that failed over an
/// expired certificate would keep them out exactly when the certificate
/// should be renewed (and some peers, such as a proxy that does not verify
/// the gate, keep working meanwhile). So `check-config` refuses such a
/// configuration (exit 2) and `serve` logs it as an error at every load.
pub fn validity_problems(s: &crate::config::Snapshot, now: i64) -> Vec<String> {
    let Some(server) = &s.server else {
        return Vec::new();
    };
    let mut listeners: Vec<(&str, &Path, &[CertificateDer<'static>])> =
        vec![("the server certificate", &server.cert, &server.cert_chain)];
    for (what, tls) in [
        (
            "the [forward_auth] listener certificate",
            server.forward_auth.as_ref().and_then(|f| f.tls.as_ref()),
        ),
        (
            "the [nac] listener certificate",
            server.nac.as_ref().and_then(|n| n.tls.as_ref()),
        ),
    ] {
        if let Some(tls) = tls {
            listeners.push((what, &tls.cert, &tls.cert_chain));
        }
    }
    listeners
        .into_iter()
        .filter_map(|(what, path, chain)| validity_problem(what, path, chain.first()?, now))
        .collect()
}

fn validity_problem(
    what: &str,
    path: &Path,
    leaf: &CertificateDer<'_>,
    now: i64,
) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
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
        Some(format!(
            "{what} {} expired on {} (notAfter): clients that check it refuse the gate; \
             install a renewed certificate",
            path.display(),
            day(until)
        ))
    } else if from > now {
        Some(format!(
            "{what} {} is not valid before {} (notBefore): clients that check it refuse the \
             gate until then; check the clock of the machine that issued it",
            path.display(),
            day(from)
        ))
    } else {
        None
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
