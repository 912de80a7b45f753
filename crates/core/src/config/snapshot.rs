//! The compiled configuration: built once per load or reload from the file
//! model, validated, and then only read. The request path holds one
//! `Arc<Snapshot>` for its whole life, so a reload never changes the rules
//! under a request in flight.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::attestation::claims::OsFamily;
use crate::attestation::VerifierSettings;
use crate::catalogue::{Catalogue, Category, Matcher};
use rustls_pki_types::CertificateDer;

use super::model::{Action, RemediationConfig, Sensitivity};

#[derive(Debug)]
pub struct Snapshot {
    /// The file this snapshot was loaded from; `None` for the built-in default.
    pub source: Option<PathBuf>,
    pub server: Option<ServerSettings>,
    pub attestation: AttestationSettings,
    pub catalogue: Arc<Catalogue>,
    pub matcher: Matcher,
    pub segments: Vec<Segment>,
    pub policies: Vec<Policy>,
    pub routes: Vec<Route>,
    pub exemptions: Vec<Exemption>,
    pub remediation: RemediationConfig,
}

impl Snapshot {
    /// Index into `segments` of the segment with this name.
    pub fn segment_index(&self, name: &str) -> Option<usize> {
        self.segments.iter().position(|s| s.name == name)
    }
}

/// Paths are absolute (resolved against the config file's directory) and
/// were readable when the snapshot was built.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: std::net::SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub crls: Vec<PathBuf>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub upstream_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` the gate extends rather than replaces.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub max_connections_per_ip: usize,
    pub body_timeout: Duration,
    /// Bytes per second, never zero.
    pub body_min_rate: u64,
    pub max_body_bytes_in_flight: usize,
    pub max_streams_without_certificate: u32,
}

#[derive(Debug, Clone)]
pub struct AttestationSettings {
    /// DER of every trust anchor certificate, from all `trust_anchors` files.
    pub trust_anchors: Vec<CertificateDer<'static>>,
    pub verifier: VerifierSettings,
    /// The HMAC secret for gate nonces, when configured.
    pub nonce_secret: Option<Vec<u8>>,
    pub nonce_ttl: Duration,
    pub posture_cache_capacity: u64,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub description: String,
    pub sensitivity: Sensitivity,
    /// Index into `Snapshot::policies`.
    pub policy: usize,
    pub vlan: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub description: String,
    pub rules: Vec<Rule>,
    pub min_os_version: Vec<(OsFamily, String)>,
    pub require_antivirus: bool,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// Index into `Snapshot::catalogue.entries()`.
    pub entry: usize,
    pub action: Action,
    /// `None`: every category of the entry.
    pub categories: Option<Vec<Category>>,
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Lowercase, without port.
    pub host: String,
    /// Starts with `/`; matched on whole path segments.
    pub path_prefix: String,
    pub upstream: http::Uri,
    /// DER certificates to trust for an `https://` upstream.
    pub upstream_ca: Option<Vec<CertificateDer<'static>>>,
    /// Index into `Snapshot::segments`.
    pub segment: usize,
    /// Whether a path may carry `%25` followed by hex (a double-encoded
    /// escape); refused with a 400 otherwise.
    pub allow_encoded_percent: bool,
    /// Lowercase protocol names (no version) a client may `Upgrade` to.
    pub upgrades: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// Lowercase hex SHA-256 of the certificate DER, no separators.
    Fingerprint(String),
    /// RFC 4514 subject, compared exactly.
    Subject(String),
}

#[derive(Debug, Clone)]
pub struct Exemption {
    pub device: DeviceSelector,
    /// Catalogue id.
    pub catalogue_id: String,
    /// Last day (UTC, inclusive) on which it applies.
    pub expires: time::Date,
    pub reference: String,
    /// Indexes into `Snapshot::segments`; `None`: every segment.
    pub segments: Option<Vec<usize>>,
}
