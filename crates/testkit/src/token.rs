//! Token building for tests, benchmarks and the demo: valid attestations and
//! every kind of bad one the verifier must refuse (spec §5 reason codes).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value};
use sha2::Sha256;
use x509_parser::prelude::{FromDer, X509Certificate};

use posture_core::attestation::claims::{
    Claims, Os, OsFamily, Process, SecurityProduct, SecurityProductKind, Software, SoftwareSource,
    PROFILE_V1,
};
use posture_core::attestation::sign::{SignError, SigningKey};
use posture_gate::pki::DeviceCredentials;

/// Unix seconds now: the core's clock.
pub use posture_core::decision::unix_now as now;

/// `n` distinct, plausible software items of a Linux workstation.
pub fn inventory(n: usize) -> Vec<Software> {
    const NAMES: [(&str, &str); 8] = [
        ("libssl3", "Debian OpenSSL Team"),
        ("firefox-esr", "Mozilla"),
        ("openssh-client", "Debian OpenSSH Maintainers"),
        ("python3.11", "Matthias Klose"),
        ("libreoffice-core", "Debian LibreOffice Maintainers"),
        ("curl", "Alessandro Ghedini"),
        ("vim", "Debian Vim Maintainers"),
        ("git", "Jonathan Nieder"),
    ];
    (0..n)
        .map(|i| {
            let (name, vendor) = NAMES[i % NAMES.len()];
            Software {
                name: format!("{name}-{i}"),
                vendor: Some(vendor.to_owned()),
                version: Some(format!("1.{}.{}-1+deb12u1", i % 17, i % 5)),
                id: Some(format!("{name}-{i}")),
                signer: None,
                source: Some(SoftwareSource::Dpkg),
            }
        })
        .collect()
}

/// Valid claims issued at `iat`: profile v1, Linux, a small inventory, one
/// process, one security product, no nonce, no exp.
pub fn valid_claims(iat: i64) -> Claims {
    claims_with_inventory(iat, 12)
}

pub fn claims_with_inventory(iat: i64, items: usize) -> Claims {
    Claims {
        eat_profile: Some(PROFILE_V1.to_owned()),
        iat,
        exp: None,
        eat_nonce: None,
        sub: Some("lt-042".to_owned()),
        os: Os {
            family: OsFamily::Linux,
            name: Some("Debian GNU/Linux".to_owned()),
            version: Some("12".to_owned()),
        },
        software: inventory(items),
        processes: vec![Process {
            name: "sshd".to_owned(),
            path: Some("/usr/sbin/sshd".to_owned()),
        }],
        security_products: vec![SecurityProduct {
            name: "ufw".to_owned(),
            vendor: Some("Canonical".to_owned()),
            kind: Some(SecurityProductKind::Firewall),
            enabled: Some(true),
            up_to_date: Some(true),
        }],
    }
}

enum Signer<'a> {
    Device,
    Key(&'a SigningKey),
    /// Empty signature (for `alg: none`).
    Unsigned,
    /// HMAC-SHA256 keyed with the leaf's public key (SPKI DER): the
    /// key-confusion attack of RFC 8725 §2.1.
    HmacWithLeafPublicKey,
    Raw(Vec<u8>),
}

/// Builds a compact token for a device; every part can be overridden.
pub struct TokenBuilder<'a> {
    creds: &'a DeviceCredentials,
    claims: Claims,
    header: Map<String, Value>,
    header_bytes: Option<Vec<u8>>,
    payload_bytes: Option<Vec<u8>>,
    payload_segment: Option<String>,
    signer: Signer<'a>,
}

impl<'a> TokenBuilder<'a> {
    /// Header `{alg: <the key's>, typ: "eat+jwt", x5c: <creds.chain>}`,
    /// claims [`valid_claims`] issued now.
    pub fn new(creds: &'a DeviceCredentials) -> TokenBuilder<'a> {
        let mut header = Map::new();
        header.insert("alg".into(), creds.signing_key().alg().into());
        header.insert("typ".into(), "eat+jwt".into());
        header.insert("x5c".into(), x5c_value(&creds.chain));
        TokenBuilder {
            creds,
            claims: valid_claims(now()),
            header,
            header_bytes: None,
            payload_bytes: None,
            payload_segment: None,
            signer: Signer::Device,
        }
    }

    pub fn claims(mut self, claims: Claims) -> Self {
        self.claims = claims;
        self
    }

    pub fn with_claims(mut self, f: impl FnOnce(&mut Claims)) -> Self {
        f(&mut self.claims);
        self
    }

    /// Sets (or adds) any header member, e.g. `kid`, `jku`, `crit`.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    pub fn remove_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    pub fn alg(self, alg: &str) -> Self {
        self.header("alg", alg)
    }

    pub fn typ(self, typ: &str) -> Self {
        self.header("typ", typ)
    }

    /// `x5c` from certificates, standard base64.
    pub fn x5c(self, chain: &[CertificateDer<'_>]) -> Self {
        let v = x5c_value(chain);
        self.header("x5c", v)
    }

    /// `x5c` entries verbatim (base64url, garbage, ...).
    pub fn x5c_strings(self, entries: Vec<String>) -> Self {
        self.header("x5c", entries)
    }

    /// The header segment's bytes verbatim (before base64url).
    pub fn header_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.header_bytes = Some(bytes.into());
        self
    }

    /// The payload's bytes verbatim (before base64url), instead of the claims.
    pub fn payload_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.payload_bytes = Some(bytes.into());
        self
    }

    /// The payload segment verbatim, e.g. text that is not base64url; the
    /// signature still covers it.
    pub fn payload_segment(mut self, segment: &str) -> Self {
        self.payload_segment = Some(segment.to_owned());
        self
    }

    /// Signs with another key (the header `alg` stays as set).
    pub fn sign_with(mut self, key: &'a SigningKey) -> Self {
        self.signer = Signer::Key(key);
        self
    }

    /// `alg: none` and an empty signature.
    pub fn unsigned(mut self) -> Self {
        self.signer = Signer::Unsigned;
        self.alg("none")
    }

    /// `alg: HS256`, MAC keyed with the leaf's public key.
    pub fn hs256_with_leaf_public_key(mut self) -> Self {
        self.signer = Signer::HmacWithLeafPublicKey;
        self.alg("HS256")
    }

    /// The signature bytes verbatim.
    pub fn signature(mut self, bytes: Vec<u8>) -> Self {
        self.signer = Signer::Raw(bytes);
        self
    }

    pub fn build(self) -> Result<String, SignError> {
        let header = match self.header_bytes {
            Some(b) => b,
            None => serde_json::to_vec(&self.header)?,
        };
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        match (self.payload_segment, self.payload_bytes) {
            (Some(seg), _) => token.push_str(&seg),
            (None, Some(b)) => URL_SAFE_NO_PAD.encode_string(b, &mut token),
            (None, None) => {
                URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&self.claims)?, &mut token)
            }
        }
        let signature = match self.signer {
            Signer::Device => self.creds.signing_key().sign(token.as_bytes())?,
            Signer::Key(k) => k.sign(token.as_bytes())?,
            Signer::Unsigned => Vec::new(),
            Signer::HmacWithLeafPublicKey => hmac_with_leaf_key(self.creds, token.as_bytes())?,
            Signer::Raw(b) => b,
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

pub(crate) fn x5c_value(chain: &[CertificateDer<'_>]) -> Value {
    Value::Array(
        chain
            .iter()
            .map(|c| Value::String(STANDARD.encode(c.as_ref())))
            .collect(),
    )
}

fn hmac_with_leaf_key(creds: &DeviceCredentials, msg: &[u8]) -> Result<Vec<u8>, SignError> {
    let (_, cert) = X509Certificate::from_der(creds.cert_der.as_ref())
        .map_err(|_| SignError::BadCertificate)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(cert.public_key().raw).map_err(|_| SignError::Signing)?;
    mac.update(msg);
    Ok(mac.finalize().into_bytes().to_vec())
}
