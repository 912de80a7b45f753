//! The configuration file model: what a network team writes in
//! `config/gate.toml`. Every table denies unknown keys so a typo is an error
//! with a line number, never a silently ignored setting.
//!
//! Names that other sections refer to are `Spanned`, so validation can point
//! at the line of a dangling reference. Paths are relative to the directory of
//! the config file.

use serde::Deserialize;
use serde_spanned::Spanned;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use super::compile::audit::AuditConfig;
use super::duration::ConfigDuration;

/// A whole `gate.toml`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`: absent for configs that only `verify` or `check-config`.
    #[serde(default)]
    pub server: Option<ServerConfig>,
    /// `[attestation]`.
    #[serde(default)]
    pub attestation: AttestationConfig,
    /// `[catalogue]`.
    #[serde(default)]
    pub catalogue: CatalogueConfig,
    /// `[[segment]]`, in file order.
    #[serde(default, rename = "segment")]
    pub segments: Vec<SegmentConfig>,
    /// `[[route]]`, in file order.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// `[[policy]]`, in file order.
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyConfig>,
    /// `[[exemption]]`, in file order.
    #[serde(default, rename = "exemption")]
    pub exemptions: Vec<ExemptionConfig>,
    /// `[remediation]`: the texts of the denial page.
    #[serde(default)]
    pub remediation: RemediationConfig,
    /// `[store]`: where postures and used nonces are kept (issue 15).
    #[serde(default)]
    pub store: StoreConfig,
    /// `[forward_auth]`: the authorisation service for existing proxies
    /// (nginx `auth_request`, Caddy, Traefik, Envoy); absent: off.
    #[serde(default)]
    pub forward_auth: Option<ForwardAuthConfig>,
    /// `[nac]`: the decision API for 802.1X through FreeRADIUS, and the
    /// NASes it sends RADIUS CoA to; absent: off.
    #[serde(default)]
    pub nac: Option<NacConfig>,
    /// `[audit]`: where the audit log goes (issue 18); absent: stdout.
    #[serde(default)]
    pub audit: Option<Spanned<AuditConfig>>,
    /// `[admin]`: `/metrics`, `/healthz` and `/readyz` on a listener of
    /// their own; absent: no such listener (see `compile/admin.rs`).
    #[serde(default)]
    pub admin: Option<AdminConfig>,
}

/// `[admin]`: plain HTTP for the operators' own tools (Prometheus, the
/// container's health check), never on the public port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `127.0.0.1:9900` unless given.
    #[serde(default = "defaults::admin_listen")]
    pub listen: Spanned<String>,
    /// Connections open at once on this listener.
    #[serde(default = "defaults::admin_max_connections")]
    pub max_connections: Spanned<usize>,
}

/// `[nac]`: a listener of its own for the RADIUS servers in
/// `[[nac.radius]]`, and the NASes in `[[nac.nas]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NacConfig {
    /// As `[forward_auth] listen`.
    pub listen: Spanned<String>,
    /// PEM certificate chain the listener shows the RADIUS servers.
    #[serde(default)]
    pub tls_certificate: Option<Spanned<PathBuf>>,
    /// PEM private key of `tls_certificate`.
    #[serde(default)]
    pub tls_key: Option<Spanned<PathBuf>>,
    /// PEM bundle of the CAs that issue the RADIUS servers' client
    /// certificates.
    #[serde(default)]
    pub radius_ca: Option<Spanned<PathBuf>>,
    /// Connections open at once on this listener.
    #[serde(default = "defaults::forward_auth_max_connections")]
    pub max_connections: Spanned<usize>,
    /// The VLAN of a device without a posture that allows any segment's
    /// VLAN; absent: Access-Reject.
    #[serde(default)]
    pub quarantine_vlan: Option<Spanned<u16>>,
    /// The RADIUS servers that may ask.
    #[serde(default, rename = "radius")]
    pub radius: Vec<RadiusConfig>,
    /// The NASes the gate sends CoA or Disconnect requests to.
    #[serde(default, rename = "nas")]
    pub nas: Vec<NasConfig>,
}

/// One `[[nac.radius]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusConfig {
    /// Shown in logs and audit events.
    pub name: Spanned<String>,
    /// Addresses or CIDR blocks it connects from.
    #[serde(default)]
    pub from: Vec<Spanned<String>>,
    /// With mutual TLS: a DNS name its certificate must carry.
    #[serde(default)]
    pub certificate_name: Option<Spanned<String>>,
}

/// How a NAS is told that a device's VLAN changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NasChange {
    /// CoA-Request with the new VLAN (RFC 5176).
    Coa,
    /// Disconnect-Request: the device authenticates again and gets the
    /// new VLAN then.
    Disconnect,
}

/// One `[[nac.nas]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NasConfig {
    /// Shown in logs and audit events.
    pub name: Spanned<String>,
    /// Its NAS-IP-Address, and where CoA goes.
    pub address: Spanned<String>,
    /// The UDP port of its Dynamic Authorization Server.
    #[serde(default = "defaults::coa_port")]
    pub coa_port: u16,
    /// The file with its shared secret (one line).
    pub secret_file: Spanned<PathBuf>,
    /// `coa` or `disconnect`.
    #[serde(default = "defaults::nas_change")]
    pub change: NasChange,
}

/// `[forward_auth]`: a listener of its own, for the proxies in
/// `[[forward_auth.proxy]]` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// `127.0.0.1:9090` (plain HTTP: loopback only, unless `tls_*` and
    /// `proxy_ca` make it mutual TLS) or `unix:/path/to/authz.sock`.
    pub listen: Spanned<String>,
    /// PEM certificate chain the listener shows the proxies (mutual TLS).
    #[serde(default)]
    pub tls_certificate: Option<Spanned<PathBuf>>,
    /// PEM private key of `tls_certificate`.
    #[serde(default)]
    pub tls_key: Option<Spanned<PathBuf>>,
    /// PEM bundle of the CAs that issue the proxies' client certificates.
    #[serde(default)]
    pub proxy_ca: Option<Spanned<PathBuf>>,
    /// Connections open at once on this listener.
    #[serde(default = "defaults::forward_auth_max_connections")]
    pub max_connections: Spanned<usize>,
    /// The proxies that may ask, in order: the first that matches a
    /// connection is the one it speaks for.
    #[serde(default, rename = "proxy")]
    pub proxies: Vec<ProxyConfig>,
}

/// The proxies forward-auth speaks with: each sends the client certificate
/// in its own encoding, and the original request in its own headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    /// nginx `auth_request`, certificate from `$ssl_client_escaped_cert`.
    Nginx,
    /// Caddy `forward_auth`, certificate from `certificate_der_base64`.
    Caddy,
    /// Traefik `forwardAuth` after `passTLSClientCert` with `pem: true`.
    Traefik,
    /// Envoy's HTTP `ext_authz`, certificate from `x-forwarded-client-cert`.
    Envoy,
}

/// One `[[forward_auth.proxy]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Shown in logs and audit events.
    pub name: Spanned<String>,
    /// `nginx`, `caddy`, `traefik` or `envoy`.
    pub kind: Spanned<ProxyKind>,
    /// Addresses or CIDR blocks the proxy connects from.
    #[serde(default)]
    pub from: Vec<Spanned<String>>,
    /// With mutual TLS: a DNS name the proxy's certificate must carry.
    #[serde(default)]
    pub certificate_name: Option<Spanned<String>>,
    /// The header with the client certificate; the kind's default if absent.
    #[serde(default)]
    pub certificate_header: Option<Spanned<String>>,
    /// The header with the original request target (not for `envoy`,
    /// which appends it to the path).
    #[serde(default)]
    pub uri_header: Option<Spanned<String>>,
    /// The header with the original host.
    #[serde(default)]
    pub host_header: Option<Spanned<String>>,
}

/// Which store keeps postures and used nonces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In this process only: one gate, lost on restart.
    #[default]
    Memory,
    /// A Redis (or Valkey) server shared by every replica.
    Redis,
}

/// What a gate does with an attestation it cannot write to the shared
/// store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreFailure {
    /// Refuse it (503, retry later): nothing is admitted that the other
    /// replicas cannot see.
    Deny,
    /// Keep it in this gate's near cache only (and its nonce in this
    /// gate's memory), until the store is back.
    Local,
}

/// `[store]`: where postures and used nonces are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` (the default) or `redis`.
    #[serde(default)]
    pub kind: Option<Spanned<StoreKind>>,
    /// `redis://host:port[/db]` or `rediss://host:port[/db]`; required for
    /// `redis`. No password in it: see `password_file`.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// PEM bundle of CAs that issue the Redis server's certificate;
    /// required for `rediss://` (the system roots are never used).
    #[serde(default)]
    pub ca: Option<Spanned<PathBuf>>,
    /// PEM client certificate for `rediss://`, with `key`.
    #[serde(default)]
    pub cert: Option<Spanned<PathBuf>>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<Spanned<PathBuf>>,
    /// The ACL user name (Redis 6+); absent: `default`.
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    /// File holding the password (one trailing line ending dropped).
    #[serde(default)]
    pub password_file: Option<Spanned<PathBuf>>,
    /// Prefix of every key and channel the gate uses.
    #[serde(default)]
    pub key_prefix: Option<Spanned<String>>,
    /// The longest a connection to Redis may take to open.
    #[serde(default)]
    pub connect_timeout: Option<Spanned<ConfigDuration>>,
    /// The longest any one Redis command may take, reconnects included.
    #[serde(default)]
    pub command_timeout: Option<Spanned<ConfigDuration>>,
    /// Multiplexed connections for commands.
    #[serde(default)]
    pub pool_size: Option<Spanned<usize>>,
    /// Postures kept in this gate's near cache at most.
    #[serde(default)]
    pub near_cache_capacity: Option<Spanned<u64>>,
    /// The longest a new posture takes to reach every replica.
    #[serde(default)]
    pub propagation: Option<Spanned<ConfigDuration>>,
    /// `deny` or `local`; the default is `deny` when any segment is
    /// `high` or `critical`, else `local`.
    #[serde(default)]
    pub on_store_failure: Option<Spanned<StoreFailure>>,
}

/// The TLS front of `posture-gate serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `0.0.0.0:8443`.
    pub listen: Spanned<String>,
    /// PEM certificate chain of the gate, leaf first.
    pub cert: Spanned<PathBuf>,
    /// PEM private key of the gate (PKCS#8, SEC1 or PKCS#1).
    pub key: Spanned<PathBuf>,
    /// PEM bundle of CAs that issue device (client) certificates.
    pub client_ca: Spanned<PathBuf>,
    /// Optional PEM or DER CRLs checked on every client certificate.
    #[serde(default)]
    pub crls: Vec<Spanned<PathBuf>>,
    /// Connections open at once, in total.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// The longest a client may take to send a request head.
    #[serde(default = "defaults::header_read_timeout")]
    pub header_read_timeout: Spanned<ConfigDuration>,
    /// How long an idle connection is kept open.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Spanned<ConfigDuration>,
    /// The largest request head accepted, in bytes.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// The longest an upstream may take to answer.
    #[serde(default = "defaults::upstream_timeout")]
    pub upstream_timeout: Spanned<ConfigDuration>,
    /// How long connections may finish after a shutdown begins.
    #[serde(default = "defaults::shutdown_grace")]
    pub shutdown_grace: ConfigDuration,
    /// Addresses or CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) of proxies
    /// in front of the gate whose `X-Forwarded-For` chain is passed on.
    /// From any other peer the chain starts at the peer.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Connections one client IP address may hold at once, handshakes and
    /// upgraded tunnels included. Loopback counts like any other address.
    #[serde(default = "defaults::max_connections_per_ip")]
    pub max_connections_per_ip: Spanned<usize>,
    /// The longest the gate waits for a request body it reads itself (the
    /// token posted to `attest`), from the end of the request head.
    #[serde(default = "defaults::body_timeout")]
    pub body_timeout: Spanned<ConfigDuration>,
    /// The slowest such body, in bytes per second, averaged from the start
    /// of the body after a grace of two seconds.
    #[serde(default = "defaults::body_min_rate")]
    pub body_min_rate: Spanned<u64>,
    /// Bytes of such bodies held at once across all connections, of which
    /// peers without a client certificate may hold half; a request that
    /// would go beyond is answered 503 before any byte is buffered. At
    /// least 1 MiB, the largest token. Fixed at bind.
    #[serde(default = "defaults::max_body_bytes_in_flight")]
    pub max_body_bytes_in_flight: Spanned<usize>,
    /// HTTP/2 streams open at once on a connection that presented no client
    /// certificate (connections with one get hyper's default of 200).
    #[serde(default = "defaults::max_streams_without_certificate")]
    pub max_streams_without_certificate: Spanned<u32>,
    /// Attestations a minute one IP address may post without a client
    /// certificate (each costs a chain and signature check of up to 1 MiB).
    #[serde(default = "defaults::attest_without_certificate_per_minute")]
    pub attest_without_certificate_per_minute: Spanned<u32>,
    /// Addresses or CIDR blocks of L4 balancers that start every connection
    /// with a PROXY protocol v2 header carrying the client's address. A
    /// connection from them without a valid header is closed; from any
    /// other peer no header is read. Empty (the default): off.
    #[serde(default)]
    pub proxy_protocol_from: Vec<Spanned<String>>,
}

/// How device attestations are verified and remembered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationConfig {
    /// PEM files with the CAs that may sign device attestation chains.
    #[serde(default)]
    pub trust_anchors: Vec<Spanned<PathBuf>>,
    /// Spanned (like `nonce_ttl` and `require_nonce`) so a value out of range
    /// is reported at its line.
    #[serde(default = "defaults::max_age")]
    pub max_age: Spanned<ConfigDuration>,
    /// How far a device's clock may be ahead of the gate's.
    #[serde(default = "defaults::clock_skew")]
    pub clock_skew: ConfigDuration,
    /// Whether a token must carry a nonce the gate issued.
    #[serde(default = "defaults::require_nonce")]
    pub require_nonce: Spanned<bool>,
    /// File holding the HMAC secret for gate nonces (at least 32 bytes), so
    /// several gate instances accept each other's challenges.
    #[serde(default)]
    pub nonce_secret_file: Option<Spanned<PathBuf>>,
    /// How long an issued nonce may be used (at most 5 minutes).
    #[serde(default = "defaults::nonce_ttl")]
    pub nonce_ttl: Spanned<ConfigDuration>,
    /// Postures remembered at most.
    #[serde(default = "defaults::posture_cache_capacity")]
    pub posture_cache_capacity: u64,
}

impl Default for AttestationConfig {
    fn default() -> Self {
        AttestationConfig {
            trust_anchors: Vec::new(),
            max_age: defaults::max_age(),
            clock_skew: defaults::clock_skew(),
            require_nonce: defaults::require_nonce(),
            nonce_secret_file: None,
            nonce_ttl: defaults::nonce_ttl(),
            posture_cache_capacity: defaults::posture_cache_capacity(),
        }
    }
}

/// Extends or overrides the built-in catalogue of prohibited software.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueConfig {
    /// Extra catalogue files, same format as the built-in `config/catalogue.toml`.
    /// An entry with the id of a built-in entry replaces it.
    #[serde(default)]
    pub include: Vec<Spanned<PathBuf>>,
}

/// How much is at stake behind a segment; high and critical segments
/// must be guarded by a policy that denies something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    /// Little at stake.
    Low,
    /// More at stake than `low`.
    Medium,
    /// Much at stake: the policy must deny something.
    High,
    /// The most at stake: the policy must deny something.
    Critical,
}

/// One `[[segment]]`: a part of the network a policy guards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    /// Unique, non-empty; what routes and exemptions refer to.
    pub name: Spanned<String>,
    /// For people: shown on the denial page when not empty (Dutch, or the
    /// only text when `description_en` is empty).
    #[serde(default)]
    pub description: String,
    /// The description on English pages; empty: `description`.
    #[serde(default)]
    pub description_en: String,
    /// How much is at stake behind the segment.
    pub sensitivity: Sensitivity,
    /// Name of the `[[policy]]` that guards this segment.
    pub policy: Spanned<String>,
    /// 802.1X VLAN id for this segment (1-4094).
    #[serde(default)]
    pub vlan: Option<Spanned<u16>>,
}

/// One `[[route]]`: where requests for a host and path prefix go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Host name as the client sends it (no port), e.g. `finance.intern.example`.
    pub host: Spanned<String>,
    /// Starts with `/`; matched on whole path segments.
    #[serde(default = "defaults::path_prefix")]
    pub path_prefix: Spanned<String>,
    /// `http://` or `https://` URL of the upstream app.
    pub upstream: Spanned<String>,
    /// PEM CA bundle to verify an `https://` upstream; the system roots are never used.
    #[serde(default)]
    pub upstream_ca: Option<Spanned<PathBuf>>,
    /// Name of the `[[segment]]` whose policy guards the route.
    pub segment: Spanned<String>,
    /// Let paths carry `%25` followed by hex (`%2541`), which an upstream
    /// that decodes twice reads as another escape. Off: such paths get 400.
    #[serde(default)]
    pub allow_encoded_percent: bool,
    /// The protocols a client may switch to with `Upgrade` on this route
    /// (compared without version, case-insensitively); other `Upgrade`
    /// tokens are dropped and the request goes on as a plain request.
    /// Absent means `["websocket"]`; `[]` relays no upgrade at all.
    #[serde(default)]
    pub upgrades: Option<Vec<Spanned<String>>>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
/// What a policy rule does with a device that has the software.
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Admit, with a warning to the device and in the audit log.
    Warn,
    /// Refuse.
    Deny,
}

/// One `[[policy]]`: what a segment requires of a device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Unique, non-empty; what segments refer to.
    pub name: Spanned<String>,
    /// For people.
    #[serde(default)]
    pub description: String,
    /// What to do per catalogue id. A policy with no rules denies nothing.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
    /// Minimum OS version per OS family, e.g. `{ windows = "10.0.19045" }`.
    #[serde(default)]
    pub min_os_version: BTreeMap<String, Spanned<String>>,
    /// Require an enabled, up-to-date antivirus that is not prohibited:
    /// `true` on every OS family, or only on the families listed
    /// (`["windows", "macos"]`).
    #[serde(default)]
    pub require_antivirus: Option<Spanned<RequireAntivirus>>,
    /// A policy that guards a high or critical segment must deny something;
    /// `true` says it is meant not to (so a half-written file or a slip
    /// cannot open such a segment unnoticed).
    #[serde(default)]
    pub allow_empty: bool,
}

/// `require_antivirus`: a boolean or a list of OS family names.
#[derive(Debug, Clone)]
pub enum RequireAntivirus {
    /// `true`: on every OS family; `false`: not at all.
    Every(bool),
    /// Only on these families, as written.
    Families(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RequireAntivirus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RequireAntivirus;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a list of OS families like [\"windows\", \"macos\"]")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RequireAntivirus::Every(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut families = Vec::new();
                while let Some(f) = seq.next_element::<Spanned<String>>()? {
                    families.push(f);
                }
                Ok(RequireAntivirus::Families(families))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// One `[[policy.rule]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Catalogue id, e.g. `kaspersky`.
    pub catalogue: Spanned<String>,
    /// Deny or warn.
    pub action: Action,
    /// Narrow the entry to these categories; absent means all of them. An
    /// empty list is an error: it would turn the rule off without saying so.
    #[serde(default)]
    pub categories: Option<Spanned<Vec<Spanned<String>>>>,
    /// Staged enforcement: with `action = "warn"` only, the first day (UTC,
    /// a TOML date like `2027-01-15`) from which the rule denies.
    #[serde(default)]
    pub deny_from: Option<Spanned<toml::value::Datetime>>,
}

/// One `[[exemption]]`: a waiver of one catalogue entry for one device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExemptionConfig {
    /// SHA-256 fingerprint of the device certificate (hex, colons allowed).
    #[serde(default)]
    pub device_fingerprint: Option<Spanned<String>>,
    /// RFC 4514 subject of the device certificate, e.g. `CN=lt-042,O=Supplier BV`.
    #[serde(default)]
    pub device_subject: Option<Spanned<String>>,
    /// The catalogue id the exemption waives, e.g. `kaspersky`.
    pub catalogue: Spanned<String>,
    /// Last day (inclusive, UTC) on which the exemption applies. Required.
    pub expires: Spanned<toml::value::Datetime>,
    /// The risk acceptance under the BIO that this exemption rests on.
    pub reference: Spanned<String>,
    /// Limit the exemption to these segments; absent means all.
    #[serde(default)]
    pub segments: Option<Vec<Spanned<String>>>,
}

/// `[remediation]`: what the denial page tells a person to do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationConfig {
    /// Who to contact; empty fields are left off the page.
    #[serde(default)]
    pub service_desk: ServiceDesk,
    /// Extra text per organisation (the certificate's O), shown on the
    /// denial page. The key is `organisation`, as it always was.
    #[serde(default, rename = "organisation")]
    pub organizations: Vec<OrganizationConfig>,
    /// How often a device on a `warn` segment is shown the warning page
    /// before the app (per device and segment, per gate replica); `0s`:
    /// never, the `Posture-Warning` header only.
    #[serde(default = "defaults::warning_notice_every")]
    pub warning_notice_every: ConfigDuration,
    /// The CA file of the gate's server certificate as the organisation
    /// hands it out, shown as `--ca FILE` in the agent command on pages.
    /// Empty: no `--ca`, for a gate certificate from a public CA or an
    /// agent.toml that names the CA (the flag would override the file).
    #[serde(default = "defaults::agent_ca")]
    pub agent_ca: String,
    /// How devices run posture-agent: `service` (the pages show how to
    /// start the installed service), `manual` (the command) or `both`.
    #[serde(default)]
    pub agent: AgentMode,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig {
            service_desk: ServiceDesk::default(),
            organizations: Vec::new(),
            warning_notice_every: defaults::warning_notice_every(),
            agent_ca: defaults::agent_ca(),
            agent: AgentMode::default(),
        }
    }
}

/// `[remediation] agent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    /// The agent runs as a service: pages show the per-OS trigger.
    Service,
    /// People run the agent themselves: pages show the command.
    Manual,
    /// Both, the service trigger first.
    #[default]
    Both,
}

/// `[remediation.service_desk]`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDesk {
    /// The desk's name.
    #[serde(default)]
    pub name: String,
    /// A telephone number; a `tel:` link when it has the shape of one.
    #[serde(default)]
    pub phone: String,
    /// An e-mail address; a `mailto:` link when it is a plain address.
    #[serde(default)]
    pub email: String,
    /// A web address; a link only for `http://` and `https://`.
    #[serde(default)]
    pub url: String,
    /// Opening hours or other remarks, in Dutch and English.
    #[serde(default)]
    pub hours_nl: String,
    /// Opening hours or other remarks, in English.
    #[serde(default)]
    pub hours_en: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
/// One `[[remediation.organisation]]`: the extra text for its staff.
pub struct OrganizationConfig {
    /// The organization, as in the O of device certificates (compared
    /// without case or surrounding space).
    pub name: Spanned<String>,
    /// Dutch text.
    #[serde(default)]
    pub text_nl: String,
    /// English text.
    #[serde(default)]
    pub text_en: String,
}

/// The defaults of settings a file may leave out.
pub mod defaults {
    use super::ConfigDuration;
    use serde_spanned::Spanned;
    use std::time::Duration;

    /// The default of `[remediation] warning_notice_every`.
    pub fn warning_notice_every() -> ConfigDuration {
        ConfigDuration(Duration::from_secs(24 * 3600))
    }
    /// The default of `[remediation] agent_ca`: the name the organisation
    /// is told to give the gate's CA certificate (a private CA, as
    /// `posture-gate pki init` makes).
    pub fn agent_ca() -> String {
        "gate-ca.pem".to_string()
    }
    /// The default of `max_connections`.
    pub fn max_connections() -> usize {
        10_000
    }
    /// The default of `header_read_timeout`.
    pub fn header_read_timeout() -> Spanned<ConfigDuration> {
        Spanned::new(0..0, ConfigDuration(Duration::from_secs(10)))
    }
    /// The default of `idle_timeout`.
    pub fn idle_timeout() -> Spanned<ConfigDuration> {
        Spanned::new(0..0, ConfigDuration(Duration::from_secs(60)))
    }
    /// The default of `max_header_bytes`.
    pub fn max_header_bytes() -> usize {
        64 * 1024
    }
    /// The default of `upstream_timeout`.
    pub fn upstream_timeout() -> Spanned<ConfigDuration> {
        Spanned::new(0..0, ConfigDuration(Duration::from_secs(30)))
    }
    /// The default of `shutdown_grace`.
    pub fn shutdown_grace() -> ConfigDuration {
        ConfigDuration(Duration::from_secs(30))
    }
    /// The default of `max_connections_per_ip`.
    pub fn max_connections_per_ip() -> Spanned<usize> {
        Spanned::new(0..0, 64)
    }
    /// The default of `body_timeout`.
    pub fn body_timeout() -> Spanned<ConfigDuration> {
        Spanned::new(0..0, ConfigDuration(Duration::from_secs(20)))
    }
    /// The default of `body_min_rate`.
    pub fn body_min_rate() -> Spanned<u64> {
        Spanned::new(0..0, 4096)
    }
    /// The default of `max_body_bytes_in_flight`.
    pub fn max_body_bytes_in_flight() -> Spanned<usize> {
        Spanned::new(0..0, 64 * 1024 * 1024)
    }
    /// The default of `max_streams_without_certificate`.
    pub fn max_streams_without_certificate() -> Spanned<u32> {
        Spanned::new(0..0, 8)
    }
    /// The default of `[forward_auth] max_connections`.
    pub fn forward_auth_max_connections() -> Spanned<usize> {
        Spanned::new(0..0, 1024)
    }
    /// The default of `[admin] listen`: loopback only.
    pub fn admin_listen() -> Spanned<String> {
        Spanned::new(0..0, "127.0.0.1:9900".to_string())
    }
    /// The default of `[admin] max_connections`: a scraper and a health
    /// check or two need no more.
    pub fn admin_max_connections() -> Spanned<usize> {
        Spanned::new(0..0, 16)
    }
    /// The default of `[server] attest_without_certificate_per_minute`.
    pub fn attest_without_certificate_per_minute() -> Spanned<u32> {
        Spanned::new(0..0, 30)
    }
    /// The default of `[[nac.nas]] coa_port` (RFC 5176).
    pub fn coa_port() -> u16 {
        3799
    }
    /// The default of `[[nac.nas]] change`.
    pub fn nas_change() -> super::NasChange {
        super::NasChange::Coa
    }
    /// The default of `upgrades`.
    pub fn upgrades() -> Vec<String> {
        vec!["websocket".to_string()]
    }
    /// The default of `max_age`.
    pub fn max_age() -> Spanned<ConfigDuration> {
        Spanned::new(0..0, ConfigDuration(Duration::from_secs(15 * 60)))
    }
    /// The default of `clock_skew`.
    pub fn clock_skew() -> ConfigDuration {
        ConfigDuration(Duration::from_secs(60))
    }
    /// The default of `require_nonce`.
    pub fn require_nonce() -> Spanned<bool> {
        Spanned::new(0..0, true)
    }
    /// The default of `nonce_ttl`.
    pub fn nonce_ttl() -> Spanned<ConfigDuration> {
        Spanned::new(0..0, ConfigDuration(Duration::from_secs(5 * 60)))
    }
    /// The default of `posture_cache_capacity`.
    pub fn posture_cache_capacity() -> u64 {
        100_000
    }
    /// The default of `path_prefix`.
    pub fn path_prefix() -> Spanned<String> {
        Spanned::new(0..0, "/".to_string())
    }
}
