//! The compiled configuration: built once per load or reload from the file
//! model, validated, and then only read. The request path holds one
//! `Arc<Snapshot>` for its whole life, so a reload never changes the rules
//! under a request in flight.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use super::compile::audit::{AuditOutput, AuditSettings, Fsync, OnAuditFailure};
use crate::attestation::claims::OsFamily;
use crate::attestation::VerifierSettings;
use crate::catalogue::{Catalogue, Category, Matcher};
use crate::verdict::Decision;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::model::{
    AgentMode, NasChange, ProxyKind, RemediationConfig, Sensitivity, ServiceDesk, StoreFailure,
};

/// A compiled configuration; see the module docs.
#[derive(Debug)]
pub struct Snapshot {
    /// The file this snapshot was loaded from; `None` for the built-in default.
    pub source: Option<PathBuf>,
    /// The TLS front; `None` when the config has no `[server]` (enough for
    /// `verify` and `check-config`).
    pub server: Option<ServerSettings>,
    /// How attestations are verified and remembered.
    pub attestation: AttestationSettings,
    /// The merged catalogue of prohibited software.
    pub catalogue: Arc<Catalogue>,
    /// The matcher built from `catalogue`, index for index.
    pub matcher: Matcher,
    /// Every segment, in file order.
    pub segments: Vec<Segment>,
    /// Every policy, in file order.
    pub policies: Vec<Policy>,
    /// Every route, in file order.
    pub routes: Vec<Route>,
    /// Every exemption, in file order.
    pub exemptions: Vec<Exemption>,
    /// The texts of the denial page.
    pub remediation: Remediation,
    /// Where postures and used nonces are kept.
    pub store: StoreSettings,
}

/// Where postures and used nonces are kept (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreSettings {
    /// In this process (the default).
    #[default]
    Memory,
    /// A Redis server shared by every replica.
    Redis(Box<RedisSettings>),
}

/// A Redis store, checked: its files are read at load, so a running gate
/// never reads them again.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://` or `rediss://`, without user or password.
    pub url: String,
    /// Whether `url` is `rediss://`.
    pub tls: bool,
    /// PEM bytes of the CA bundle for `rediss://` (already parsed once).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM bytes of the client certificate and its key, for `rediss://`.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// ACL user name.
    pub username: Option<String>,
    /// The password from `password_file`; never shown by `Debug`.
    pub password: Option<String>,
    /// Prefix of every key and channel.
    pub key_prefix: String,
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// The longest any one command may take.
    pub command_timeout: Duration,
    /// Multiplexed connections for commands.
    pub pool_size: usize,
    /// Postures in the near cache at most.
    pub near_cache_capacity: u64,
    /// The longest a new posture takes to reach every replica: a near
    /// cache entry is asked of Redis again after this long.
    pub propagation: Duration,
    /// What an attestation that cannot be stored comes to.
    pub on_store_failure: StoreFailure,
    /// Whether `on_store_failure` was written (else derived from the
    /// segments' sensitivity).
    pub on_store_failure_explicit: bool,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .field("propagation", &self.propagation)
            .field("on_store_failure", &self.on_store_failure)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Index into `segments` of the segment with this name.
    pub fn segment_index(&self, name: &str) -> Option<usize> {
        self.segments.iter().position(|s| s.name == name)
    }
}

/// The TLS front. Its files are read once, at load: the DER here is what
/// the server uses, so a file that changes or disappears afterwards cannot
/// make a running gate or a reload half-read it. Paths are absolute
/// (resolved against the config file's directory); they are kept to name
/// the files in messages and for the reloader's file watcher.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The address the gate listens on.
    pub listen: std::net::SocketAddr,
    /// The PEM file of the gate's certificate chain.
    pub cert: PathBuf,
    /// The certificate chain from `cert`, leaf first, never empty.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The PEM file of the gate's private key.
    pub key: PathBuf,
    /// The private key from `key`; shared rather than copied with the
    /// settings, and its `Debug` does not show it.
    pub private_key: Arc<PrivateKeyDer<'static>>,
    /// The PEM bundle of CAs that issue device certificates.
    pub client_ca: PathBuf,
    /// The certificates of `client_ca`, never empty, each usable as a trust
    /// anchor.
    pub client_cas: Vec<CertificateDer<'static>>,
    /// The CRL files, in config order.
    pub crls: Vec<PathBuf>,
    /// Every CRL of the `crls` files, in order, each parsed once at load
    /// (by x509-parser and webpki) so the verifier and the revocation set
    /// cannot refuse them later.
    pub revocation_lists: Vec<CertificateRevocationListDer<'static>>,
    /// The validity of each CRL of `revocation_lists`, in the same order,
    /// with the file it came from: for `check-config`, the reloader's
    /// warnings and the metrics, which must say before a CRL goes out of
    /// date (then every device it speaks for is refused).
    pub crl_validity: Vec<CrlValidity>,
    /// Connections open at once, in total.
    pub max_connections: usize,
    /// The longest a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// How long an idle connection is kept open.
    pub idle_timeout: Duration,
    /// The largest request head accepted.
    pub max_header_bytes: usize,
    /// The longest an upstream may take to answer.
    pub upstream_timeout: Duration,
    /// How long connections may finish after a shutdown begins.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` the gate extends rather than replaces.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Connections one client IP address may hold at once; never zero.
    pub max_connections_per_ip: usize,
    /// The longest the gate waits for a body it reads itself.
    pub body_timeout: Duration,
    /// The slowest such body, in bytes per second, never zero.
    pub body_min_rate: u64,
    /// Bytes of such bodies held at once across all connections.
    pub max_body_bytes_in_flight: usize,
    /// HTTP/2 streams open at once on a connection without a certificate.
    pub max_streams_without_certificate: u32,
    /// Peers whose connections start with a PROXY protocol v2 header; the
    /// client address it carries replaces theirs. Empty: off.
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// The forward-auth listener, when `[forward_auth]` is configured.
    pub forward_auth: Option<ForwardAuthSettings>,
    /// The 802.1X decision API, when `[nac]` is configured.
    pub nac: Option<NacSettings>,
    /// `[audit]`: the audit log's output, rotation, fsync and failure policy.
    pub audit: AuditSettings,
    /// Attestations a minute per IP address without a client certificate;
    /// never zero.
    pub attest_without_certificate_per_minute: u32,
    /// The admin listener, when `[admin]` is configured.
    pub admin: Option<AdminSettings>,
}

/// `[admin]`, validated: see `model::AdminConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where it listens (plain HTTP); fixed at bind.
    pub listen: std::net::SocketAddr,
    /// Connections open at once; fixed at bind.
    pub max_connections: usize,
}

/// When a loaded CRL was issued and when its issuer promised the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlValidity {
    /// The file it was read from (absolute).
    pub file: PathBuf,
    /// Its issuer, as an RFC 4514 string.
    pub issuer: String,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds; `None` when the CRL has none (it never
    /// goes out of date).
    pub next_update: Option<i64>,
}

/// How close a CRL is to its nextUpdate; see [`CrlValidity::freshness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlFreshness {
    /// More than the warning margin remains, or it has no nextUpdate.
    Fresh,
    /// Less than the margin remains.
    Due {
        /// Seconds until nextUpdate, more than zero.
        remaining: i64,
    },
    /// nextUpdate has passed: devices of its issuer are refused
    /// (`revocation_unknown`) until a newer CRL is loaded.
    Past {
        /// Seconds since nextUpdate, zero or more.
        since: i64,
    },
}

impl CrlValidity {
    /// The longest warning margin: a day, time enough for someone to
    /// notice a publishing job that stopped and fix it.
    pub const MAX_WARNING_MARGIN_SECS: i64 = 24 * 60 * 60;

    /// How long before nextUpdate the gate warns: 24 hours, or a quarter
    /// of the CRL's validity (nextUpdate - thisUpdate) when that is
    /// shorter, so that a CRL reissued every hour is not reported as due
    /// all its life. `None` without a nextUpdate.
    pub fn warning_margin(&self) -> Option<i64> {
        let next = self.next_update?;
        let validity = next.saturating_sub(self.this_update).max(0);
        Some((validity / 4).min(Self::MAX_WARNING_MARGIN_SECS))
    }

    /// Where the CRL stands at `now` (Unix seconds).
    pub fn freshness(&self, now: i64) -> CrlFreshness {
        let (Some(next), Some(margin)) = (self.next_update, self.warning_margin()) else {
            return CrlFreshness::Fresh;
        };
        let remaining = next.saturating_sub(now);
        if remaining <= 0 {
            CrlFreshness::Past { since: -remaining }
        } else if remaining <= margin {
            CrlFreshness::Due { remaining }
        } else {
            CrlFreshness::Fresh
        }
    }
}

/// `[nac]`, validated: see `model::NacConfig`.
#[derive(Debug, Clone)]
pub struct NacSettings {
    /// Where it listens; fixed at bind.
    pub listen: ForwardAuthListen,
    /// Mutual TLS with the RADIUS servers, when configured.
    pub tls: Option<ForwardAuthTls>,
    /// Connections open at once; fixed at bind.
    pub max_connections: usize,
    /// The VLAN without an allowed posture; `None`: reject.
    pub quarantine_vlan: Option<u16>,
    /// The RADIUS servers that may ask, never empty.
    pub radius: Vec<TrustedPeer>,
    /// The NASes, for CoA.
    pub nas: Vec<Nas>,
}

/// A peer of a side listener known by address and (with mutual TLS)
/// certificate name.
#[derive(Debug, Clone)]
pub struct TrustedPeer {
    /// Its name in logs and audit events.
    pub name: String,
    /// Addresses it connects from; empty: any (mutual TLS or Unix socket).
    pub from: Vec<ipnet::IpNet>,
    /// With mutual TLS: a DNS name its certificate must carry, lowercase.
    pub certificate_name: Option<String>,
}

/// A NAS the gate sends CoA or Disconnect requests to.
#[derive(Clone)]
pub struct Nas {
    /// Its name in logs and audit events.
    pub name: String,
    /// Its NAS-IP-Address.
    pub address: std::net::IpAddr,
    /// Where its Dynamic Authorization Server listens.
    pub coa: std::net::SocketAddr,
    /// The shared secret, from `secret_file`.
    pub secret: Arc<[u8]>,
    /// How it is told.
    pub change: NasChange,
}

impl std::fmt::Debug for Nas {
    // Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nas")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("coa", &self.coa)
            .field("change", &self.change)
            .finish_non_exhaustive()
    }
}

/// `[forward_auth]`, validated: see `model::ForwardAuthConfig`.
#[derive(Debug, Clone)]
pub struct ForwardAuthSettings {
    /// Where it listens; fixed at bind.
    pub listen: ForwardAuthListen,
    /// Mutual TLS with the proxies, when configured.
    pub tls: Option<ForwardAuthTls>,
    /// Connections open at once; fixed at bind.
    pub max_connections: usize,
    /// The proxies that may ask, never empty; the first that matches a
    /// connection speaks for it.
    pub proxies: Vec<TrustedProxy>,
}

/// Where the forward-auth listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardAuthListen {
    /// A TCP address (loopback, unless `tls` is set).
    Tcp(std::net::SocketAddr),
    /// A Unix socket path, absolute.
    Unix(PathBuf),
}

/// The listener's side of mutual TLS with the proxies, read at load.
#[derive(Debug, Clone)]
pub struct ForwardAuthTls {
    /// The PEM file of the listener's chain, for messages.
    pub cert: PathBuf,
    /// The listener's chain, leaf first, never empty.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The PEM file of the key, for messages.
    pub key: PathBuf,
    /// The private key.
    pub private_key: Arc<PrivateKeyDer<'static>>,
    /// The PEM file of the proxies' CAs, for messages.
    pub proxy_ca: PathBuf,
    /// The proxies' CAs, never empty.
    pub proxy_cas: Vec<CertificateDer<'static>>,
}

/// One proxy forward-auth answers, with the headers it sends.
#[derive(Debug, Clone)]
pub struct TrustedProxy {
    /// Its name in logs and audit events.
    pub name: String,
    /// Which encoding of the certificate and the request it sends.
    pub kind: ProxyKind,
    /// Addresses it connects from; empty: any (mutual TLS or Unix socket).
    pub from: Vec<ipnet::IpNet>,
    /// With mutual TLS: a DNS name its certificate must carry, lowercase.
    pub certificate_name: Option<String>,
    /// The header with the client certificate.
    pub certificate_header: http::HeaderName,
    /// The header with the original request target; `None` for Envoy,
    /// which appends the target to the authorisation path.
    pub uri_header: Option<http::HeaderName>,
    /// The header with the original host.
    pub host_header: http::HeaderName,
}

impl ProxyKind {
    /// The header each kind sends the client certificate in by default.
    pub fn default_certificate_header(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "x-client-cert",
            ProxyKind::Caddy | ProxyKind::Traefik => "x-forwarded-tls-client-cert",
            ProxyKind::Envoy => "x-forwarded-client-cert",
        }
    }

    /// The header with the original request target by default.
    pub fn default_uri_header(self) -> Option<&'static str> {
        match self {
            ProxyKind::Nginx => Some("x-original-uri"),
            ProxyKind::Caddy | ProxyKind::Traefik => Some("x-forwarded-uri"),
            ProxyKind::Envoy => None,
        }
    }

    /// The header with the original host by default: nginx and Envoy keep
    /// `Host` (nginx when told `proxy_set_header Host $host`); Caddy and
    /// Traefik address the gate and name the original in
    /// `X-Forwarded-Host`, which they set themselves.
    pub fn default_host_header(self) -> &'static str {
        match self {
            ProxyKind::Nginx | ProxyKind::Envoy => "host",
            ProxyKind::Caddy | ProxyKind::Traefik => "x-forwarded-host",
        }
    }

    /// The kind as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Caddy => "caddy",
            ProxyKind::Traefik => "traefik",
            ProxyKind::Envoy => "envoy",
        }
    }
}

/// How attestations are verified and remembered.
#[derive(Debug, Clone)]
pub struct AttestationSettings {
    /// DER of every trust anchor certificate, from all `trust_anchors` files.
    pub trust_anchors: Vec<CertificateDer<'static>>,
    /// Age, clock skew and nonce rules of the verifier.
    pub verifier: VerifierSettings,
    /// The HMAC secret for gate nonces, when configured.
    pub nonce_secret: Option<Vec<u8>>,
    /// How long an issued nonce may be used.
    pub nonce_ttl: Duration,
    /// Postures remembered at most.
    pub posture_cache_capacity: u64,
}

/// A part of the network a policy guards.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Unique, non-empty.
    pub name: String,
    /// For people: shown on the denial page when not empty.
    pub description: String,
    /// The description on English pages; empty: `description`.
    pub description_en: String,
    /// How much is at stake behind the segment.
    pub sensitivity: Sensitivity,
    /// Index into `Snapshot::policies`.
    pub policy: usize,
    /// The 802.1X VLAN of the segment, 1 to 4094.
    pub vlan: Option<u16>,
}

/// What a segment requires of a device.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Unique, non-empty.
    pub name: String,
    /// For people.
    pub description: String,
    /// What to do per catalogue entry.
    pub rules: Vec<Rule>,
    /// The lowest OS version accepted, per OS family (at most one each).
    pub min_os_version: Vec<(OsFamily, OsVersion)>,
    /// The OS families on which an enabled, up-to-date antivirus that is
    /// not prohibited is required; empty: nowhere.
    pub require_antivirus: Vec<OsFamily>,
}

/// One rule of a policy.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Index into `Snapshot::catalogue.entries()`.
    pub entry: usize,
    /// What a match does: [`Decision::Deny`] or [`Decision::Warn`] (the
    /// config's `action`), never `Allow`; the strictest rule wins.
    pub action: Decision,
    /// `None`: every category of the entry.
    pub categories: Option<Vec<Category>>,
    /// Staged enforcement (only with action warn): from this UTC day on the
    /// rule denies; before it, it warns and the finding names the day.
    pub deny_from: Option<time::Date>,
}

/// A minimum OS version, parsed at load: dotted numbers compared part by
/// part, a missing part counting as zero (`13` is `13.0.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsVersion {
    /// Never empty.
    parts: Box<[u64]>,
    /// As written in the config, for messages.
    text: String,
}

impl OsVersion {
    /// Dotted numbers such as `10.0.19045` or `14`; anything else (empty
    /// parts, letters, a part beyond `u64`) is refused with a message.
    pub fn parse(text: &str) -> Result<OsVersion, String> {
        let refuse =
            || format!("minimum OS version {text:?} is not dotted numbers like \"10.0.19045\"");
        if text.is_empty() {
            return Err(refuse());
        }
        let parts = text
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(refuse());
                }
                part.parse::<u64>().map_err(|_| {
                    format!("minimum OS version {text:?} has a part too large to compare")
                })
            })
            .collect::<Result<Box<[u64]>, String>>()?;
        Ok(OsVersion {
            parts,
            text: text.to_string(),
        })
    }

    /// The version as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a version a device reported is at least this one; `None`
    /// when the report is empty or not dotted numbers (the policy treats
    /// that as not met). No allocation: this runs per request.
    pub fn is_met_by(&self, reported: &str) -> Option<bool> {
        let reported = reported.trim();
        if reported.is_empty() {
            return None;
        }
        let mut order = Ordering::Equal;
        let mut count = 0;
        for part in reported.split('.') {
            // Every part must read, even after the order is known.
            let have: u64 = part.parse().ok()?;
            if order == Ordering::Equal {
                order = have.cmp(self.parts.get(count).unwrap_or(&0));
            }
            count += 1;
        }
        if order == Ordering::Equal && self.parts.iter().skip(count).any(|p| *p > 0) {
            order = Ordering::Less;
        }
        Some(order != Ordering::Less)
    }
}

impl std::fmt::Display for OsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where requests for one host and path prefix go.
#[derive(Debug, Clone)]
pub struct Route {
    /// Lowercase, without port.
    pub host: String,
    /// Starts with `/`; matched on whole path segments.
    pub path_prefix: String,
    /// The `http://` or `https://` app behind the route.
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

/// The device an exemption is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// SHA-256 of the certificate DER, compared with
    /// `DeviceIdentity::fingerprint`.
    Fingerprint([u8; 32]),
    /// RFC 4514 subject, compared as X.500 compares names (see
    /// [`crate::dn`]) with `DeviceIdentity::subject_name`.
    Subject {
        /// As written in the config, for messages.
        written: String,
        /// What it matches: the parsed, normalised name.
        name: crate::dn::DistinguishedName,
    },
}

/// A waiver of one catalogue entry for one device (a risk acceptance).
#[derive(Debug, Clone)]
pub struct Exemption {
    /// Which device.
    pub device: DeviceSelector,
    /// Catalogue id, as written (for messages and the summary).
    pub catalogue_id: String,
    /// Index of that id into `Snapshot::catalogue.entries()`: what the
    /// policy compares, so no id is compared as text per request.
    pub entry: usize,
    /// Last day (UTC, inclusive) on which it applies.
    pub expires: time::Date,
    /// The risk acceptance it rests on; shown in the audit log.
    pub reference: String,
    /// Indexes into `Snapshot::segments`; `None`: every segment.
    pub segments: Option<Vec<usize>>,
}

/// The texts of the denial page, compiled for a direct lookup per request.
#[derive(Debug, Clone)]
pub struct Remediation {
    /// The service desk as configured.
    pub service_desk: ServiceDesk,
    /// Extra text per organization (the certificate's O), keyed by the name
    /// trimmed and lower-cased; see [`Remediation::organization`].
    organizations: HashMap<String, OrganizationText>,
    /// See [`RemediationConfig::warning_notice_every`]; zero: never.
    pub warning_notice_every: std::time::Duration,
    /// See [`RemediationConfig::agent_ca`], trimmed; empty: no `--ca`.
    pub agent_ca: String,
    /// See [`RemediationConfig::agent`].
    pub agent: AgentMode,
}

/// The extra denial-page text for the staff of one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationText {
    /// The name as configured, trimmed.
    pub name: String,
    /// Dutch text.
    pub text_nl: String,
    /// English text.
    pub text_en: String,
}

impl Default for Remediation {
    fn default() -> Self {
        Remediation::compile(&RemediationConfig::default())
    }
}

impl Remediation {
    /// Compiles the `[remediation]` table. Names are matched without regard
    /// to case or surrounding space; of two names that then collide, the
    /// first in the file is kept (as the page always chose it).
    pub fn compile(config: &RemediationConfig) -> Remediation {
        let mut organizations = HashMap::new();
        for o in &config.organizations {
            let name = o.name.get_ref().trim();
            organizations
                .entry(name.to_lowercase())
                .or_insert_with(|| OrganizationText {
                    name: name.to_string(),
                    text_nl: o.text_nl.clone(),
                    text_en: o.text_en.clone(),
                });
        }
        Remediation {
            service_desk: config.service_desk.clone(),
            organizations,
            warning_notice_every: config.warning_notice_every.0,
            agent_ca: config.agent_ca.trim().to_string(),
            agent: config.agent,
        }
    }

    /// The text for the organization (O) of a device certificate.
    pub fn organization(&self, name: &str) -> Option<&OrganizationText> {
        self.organizations.get(&name.trim().to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_versions_parse_dotted_numbers_only() {
        assert_eq!(
            OsVersion::parse("10.0.19045").unwrap().as_str(),
            "10.0.19045"
        );
        assert!(OsVersion::parse("14").is_ok());
        for bad in ["", "10.", ".1", "ten", "10.0 ", "+10", "10..0", "1.-2"] {
            let err = OsVersion::parse(bad).unwrap_err();
            assert!(err.contains("is not dotted numbers"), "{bad:?}: {err}");
        }
        let err = OsVersion::parse("1.99999999999999999999").unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn reported_versions_compare_numerically_with_missing_parts_as_zero() {
        let min = OsVersion::parse("10.0.19045").unwrap();
        assert_eq!(min.is_met_by("10.0.19045"), Some(true));
        assert_eq!(min.is_met_by("10.0.22631"), Some(true));
        assert_eq!(min.is_met_by("10.0.9999"), Some(false));
        assert_eq!(min.is_met_by("10"), Some(false));
        assert_eq!(min.is_met_by("11"), Some(true));
        assert_eq!(min.is_met_by(" 10.0.19045.1 "), Some(true));
        let min = OsVersion::parse("13").unwrap();
        assert_eq!(min.is_met_by("13.0.0"), Some(true));
        assert_eq!(min.is_met_by("12.9"), Some(false));
        let min = OsVersion::parse("13.0.1").unwrap();
        assert_eq!(min.is_met_by("13"), Some(false));
        // Unreadable anywhere is unreadable, even past a deciding part.
        assert_eq!(min.is_met_by("14.x"), None);
        assert_eq!(min.is_met_by(""), None);
        assert_eq!(min.is_met_by("13."), None);
    }

    #[test]
    fn organizations_are_found_whatever_their_case_and_the_first_wins() {
        let config: RemediationConfig = toml::from_str(
            "[[organisation]]\nname = \" Leverancier BV \"\ntext_nl = \"eerste\"\n\
             [[organisation]]\nname = \"LEVERANCIER bv\"\ntext_nl = \"tweede\"\n",
        )
        .unwrap();
        let r = Remediation::compile(&config);
        assert_eq!(r.organizations.len(), 1);
        let o = r.organization("leverancier BV ").unwrap();
        assert_eq!(o.name, "Leverancier BV");
        assert_eq!(o.text_nl, "eerste");
        assert!(r.organization("Leverancier").is_none());
    }
}
