//! `posture-gate pki init` and `pki issue-device`: the development PKI as
//! commands. The certificates come from the engine in `posture_gate::pki`
//! (which the test kit shares); what is here is what a command promises the
//! person running it: `init` never overwrites a CA key, and a device name is
//! a safe directory name before anything is written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use posture_gate::pki::{read_device_request, DevicePaths, DeviceSpec, Pki, PkiPaths};

/// A fresh PKI in `dir` whose server certificate also names `hosts`;
/// refuses to overwrite a CA key.
pub fn init(dir: &Path, hosts: &[String]) -> Result<PkiPaths> {
    for host in hosts {
        validate_host(host)?;
    }
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    Ok(Pki::generate_with_server_names(&hosts)?.write_new(dir)?)
}

/// A `--host`: an IP address, or a DNS name (a wildcard only as the whole
/// first label), so a typo is refused before a CA is made.
fn validate_host(host: &str) -> Result<()> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    // A last label of digits only is a mistyped IP address (300.1.1.1,
    // 010.0.0.1), never a DNS name a client would look up.
    let numeric_tld = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if host.len() > 253 || name.is_empty() || numeric_tld || !name.split('.').all(label_ok) {
        bail!(
            "--host {host:?} is neither an IP address nor a DNS name \
             (letters, digits and '-' in dot-separated labels; a wildcard only as \"*.\" at the start)"
        );
    }
    Ok(())
}

/// What `sign-csr` issued, and where.
pub struct Issued {
    pub subject: String,
    pub key_type: &'static str,
    pub cert: PathBuf,
    pub not_after: String,
}

/// A device certificate for the request in `csr`, from the PKI in `dir`,
/// written to `dir/devices/NAME/cert.pem` (leaf, then the device CA) as
/// `issue-device` writes it. Refuses a device name that already has a
/// certificate or key there: replacing it would break that device's pair.
pub fn sign_csr(
    dir: &Path,
    csr: &Path,
    name: Option<String>,
    org: Option<String>,
    ou: Option<String>,
) -> Result<Issued> {
    let bytes = std::fs::read(csr).with_context(|| format!("cannot read {}", csr.display()))?;
    let request = read_device_request(&bytes).with_context(|| format!("{}", csr.display()))?;
    let Some(name) = name.or(request.common_name.clone()) else {
        bail!(
            "{}: the request has no CN; give the device name with --name",
            csr.display()
        );
    };
    validate_name(&name)?;
    // O and OU are what the CA vouches for (the gate passes O to the apps
    // and exemptions match the whole subject), so they come from the
    // person signing, never from the request alone; a request that claims
    // others is refused rather than silently corrected.
    let Some(org) = org else {
        bail!(
            "{}: give the device's organisation with --org (the certificate states it on the \
             CA's word; the request says {})",
            csr.display(),
            request
                .organization
                .as_deref()
                .map_or_else(|| "none".to_owned(), |o| format!("O={o:?}"))
        );
    };
    for (what, flag, asked, given) in [
        (
            "O",
            "--org",
            request.organization.as_deref(),
            Some(org.as_str()),
        ),
        ("OU", "--ou", request.unit.as_deref(), ou.as_deref()),
    ] {
        if let Some(asked) = asked {
            if Some(asked) != given {
                bail!(
                    "{}: the request asks for {what}={asked:?}, but {flag} says {}; \
                     refused, so the certificate never says what its owner did not ask for \
                     (give {flag} {asked:?} if that is right, or ask for a new request)",
                    csr.display(),
                    given.map_or_else(|| "nothing".to_owned(), |g| format!("{g:?}"))
                );
            }
        }
    }
    for (what, value) in [("O", Some(&org)), ("OU", ou.as_ref())] {
        if let Some(v) = value {
            if v.trim().is_empty() || v.len() > 64 || v.chars().any(char::is_control) {
                bail!("{what} {v:?} must be 1 to 64 characters without control characters");
            }
        }
    }
    let pki = Pki::load(dir)?;
    let device_dir = dir.join("devices").join(&name);
    let cert_path = device_dir.join("cert.pem");
    for existing in [&cert_path, &device_dir.join("key.pem")] {
        if existing.exists() {
            bail!(
                "{} already exists: device {name:?} was issued before; give the new one \
                 another name (--name), or move the old directory away first",
                existing.display()
            );
        }
    }
    let mut spec = DeviceSpec::new(&name, &org);
    spec.ou = ou.clone();
    let not_after = spec.not_after;
    let chain = pki.issue_for_request(&request, &spec)?;
    std::fs::create_dir_all(&device_dir)
        .with_context(|| format!("cannot create {}", device_dir.display()))?;
    let pem: String = chain.iter().map(|c| pem_block("CERTIFICATE", c)).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&cert_path)
        .with_context(|| format!("cannot create {}", cert_path.display()))?;
    std::io::Write::write_all(&mut file, pem.as_bytes())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    // The subject as the gate renders it (RFC 4514, escaped): the form an
    // exemption by subject is written in.
    let subject = chain
        .first()
        .and_then(|leaf| posture_core::device::DeviceIdentity::from_der(leaf).ok())
        .map_or_else(|| format!("CN={name}"), |identity| identity.subject);
    Ok(Issued {
        subject,
        key_type: request.key_type,
        cert: cert_path,
        not_after: not_after.date().to_string(),
    })
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What to tell the person who ran `sign-csr`: what was issued, and the
/// files to send back to the device's owner.
pub fn sign_csr_report(dir: &Path, issued: &Issued) -> String {
    format!(
        "issued device certificate {subject} ({key}, valid until {until})\n\
         device certificate (leaf + device CA): {cert}\n\
         \n\
         Send back to the device's owner:\n  \
         {cert}  (the certificate, to use with the key the request was made with)\n  \
         {ca}  (the CA of the gate's server certificate, for posture-agent --ca)\n\
         The private key never leaves the device; nothing else is needed.\n",
        subject = issued.subject,
        key = issued.key_type,
        until = issued.not_after,
        cert = issued.cert.display(),
        ca = dir.join("ca.pem").display(),
    )
}

/// A device certificate and key from the PKI in `dir`, written to
/// `dir/devices/NAME/{cert.pem,key.pem}`; refuses to replace a device's key.
pub fn issue_device(dir: &Path, name: &str, org: &str, ou: Option<&str>) -> Result<DevicePaths> {
    validate_name(name)?;
    let pki = Pki::load(dir)?;
    let creds = pki.issue_device(name, org, ou)?;
    Ok(creds.write(&dir.join("devices").join(name))?)
}

/// A name becomes a directory: no separators, no `..`, no hidden files.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!("device name {name:?} must be 1 to 64 of A-Z a-z 0-9 . _ - and not start with '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_addresses_or_dns_names_with_a_leading_wildcard_at_most() {
        for ok in [
            "gate.example.org",
            "*.rijk.example",
            "192.0.2.10",
            "2001:db8::1",
            "gate",
        ] {
            assert!(validate_host(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "gate.example.org:8443",
            "a.*.example",
            "*",
            "-gate.example",
            "a b",
            "https://gate",
            "300.1.1.1",
            "010.0.0.1",
            "gate.123",
        ] {
            assert!(validate_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_that_could_escape_the_devices_dir_are_refused() {
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "x y", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["lt-042", "host.example", "A_1"] {
            assert!(validate_name(ok).is_ok(), "{ok:?}");
        }
    }
}
