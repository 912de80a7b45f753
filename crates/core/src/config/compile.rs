//! From the file model to a `Snapshot`: every semantic check, collecting all
//! errors rather than stopping at the first, so one run of `check-config`
//! shows everything to fix.
//!
//! Builders return a value even when they found an error (with a harmless
//! stand-in where a value could not be built); the whole result is thrown
//! away when any error was collected, so no stand-in ever reaches the gate.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_spanned::Spanned;

use crate::attestation::claims::OsFamily;
use crate::attestation::jws::MAX_TOKEN_BYTES;
use crate::attestation::VerifierSettings;
use crate::catalogue::{Catalogue, CatalogueError, Category, Matcher};
use crate::dn::DistinguishedName;
use crate::verdict::Decision;

use super::error::{Collector, ConfigError, ConfigErrors};
use super::files;
use super::model::{
    Action, AttestationConfig, CatalogueConfig, ExemptionConfig, FileConfig, PolicyConfig,
    RequireAntivirus, RouteConfig, RuleConfig, SegmentConfig, Sensitivity, ServerConfig,
    StoreConfig, StoreFailure, StoreKind,
};
use super::snapshot::{
    AttestationSettings, DeviceSelector, Exemption, OsVersion, Policy, RedisSettings, Remediation,
    Route, Rule, Segment, ServerSettings, Snapshot, StoreSettings,
};
use super::values;

mod admin;
pub(crate) mod audit;
pub(crate) mod certs;
mod forward_auth;
mod nac;

/// Attestations older than this are not worth trusting for a whole day of
/// access; a longer setting is almost certainly a typo (`15h` for `15m`).
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Spec section 4: a nonce expires after at most 5 minutes.
const MAX_NONCE_TTL: Duration = Duration::from_secs(5 * 60);
const VLAN_RANGE: std::ops::RangeInclusive<u16> = 1..=4094;

/// The `[server]` limits, checked.
struct ServerLimits {
    max_connections_per_ip: usize,
    body_timeout: Duration,
    body_min_rate: u64,
    max_body_bytes_in_flight: usize,
    max_streams_without_certificate: u32,
    attest_without_certificate_per_minute: u32,
}

/// RFC 9110 section 5.6.2: the characters of a token.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn catalogue_error(e: CatalogueError) -> ConfigError {
    ConfigError {
        file: e.origin,
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

/// Compiles a parsed file. `base` is the absolute directory relative paths
/// are resolved against; `source` the absolute path of the config file.
pub(crate) fn compile(
    file: FileConfig,
    collector: Collector<'_>,
    base: &Path,
    source: PathBuf,
) -> Result<Snapshot, ConfigErrors> {
    compile_recording(file, collector, base, source, &mut Vec::new())
}

/// [`compile`], also listing in `files` every file the config refers to
/// (resolved), whether or not it loaded: the reloader watches them.
pub(crate) fn compile_recording(
    file: FileConfig,
    collector: Collector<'_>,
    base: &Path,
    source: PathBuf,
    files: &mut Vec<PathBuf>,
) -> Result<Snapshot, ConfigErrors> {
    let mut cx = Context {
        c: collector,
        base,
        files: RefCell::new(Vec::new()),
    };
    let catalogue = cx.catalogue(&file.catalogue);
    let mut server = file.server.as_ref().map(|s| cx.server(s));
    if let Some(f) = &file.forward_auth {
        match &mut server {
            Some(server) => server.forward_auth = Some(cx.forward_auth(f)),
            None => cx.c.at(
                f.listen.span(),
                "[forward_auth] is part of the server: it needs a [server] section",
            ),
        }
    }
    if let Some(n) = &file.nac {
        match &mut server {
            Some(server) => {
                server.nac = Some(cx.nac(n, &file.segments, &server.client_cas));
            }
            None => cx.c.at(
                n.listen.span(),
                "[nac] is part of the server: it needs a [server] section",
            ),
        }
    }
    if let Some(a) = &file.admin {
        match &mut server {
            Some(server) => server.admin = Some(cx.admin(a, server)),
            None => cx.c.at(
                a.listen.span(),
                "[admin] is part of the server: it needs a [server] section",
            ),
        }
    }
    if let Some(a) = &file.audit {
        match &mut server {
            Some(server) => server.audit = cx.audit(a.get_ref()),
            None => cx.audit_without_server(a.span()),
        }
    }
    let attestation = cx.attestation(&file.attestation, file.server.as_ref());
    let (policies, policy_index) = cx.policies(&file.policies, catalogue.as_ref());
    let (segments, segment_index) = cx.segments(&file.segments, &policy_index);
    cx.guard_sensitive_segments(&file.segments, &file.policies, &policy_index);
    let routes = cx.routes(&file.routes, &segment_index);
    let exemptions = cx.exemptions(&file.exemptions, catalogue.as_ref(), &segment_index);
    cx.organizations(&file);
    let store = cx.store(&file.store, &file.segments);

    let Context { c, files: seen, .. } = cx;
    files.extend(seen.into_inner());
    c.finish()?;
    let catalogue = match catalogue {
        Some(known) => Arc::new(known.catalogue),
        // A catalogue that failed to load has already been reported, so
        // this is only a fail-closed guard.
        None => {
            return Err(ConfigErrors(vec![ConfigError {
                file: source,
                line: 0,
                column: 0,
                message: "the built-in catalogue did not load".to_string(),
            }]))
        }
    };
    Ok(Snapshot {
        source: Some(source),
        server,
        attestation,
        matcher: Matcher::new(&catalogue),
        catalogue,
        segments,
        policies,
        routes,
        exemptions,
        remediation: Remediation::compile(&file.remediation),
        store,
    })
}

/// The merged catalogue, and whether every include loaded: ids are only
/// checked against a complete catalogue, or a broken include would bury its
/// own error under "unknown catalogue id" for every rule that uses it.
pub(crate) struct KnownCatalogue {
    catalogue: Catalogue,
    complete: bool,
}

enum Lookup {
    Found(usize),
    Unknown,
    /// Not found, but an include failed to load, so it may be defined there.
    Unsure,
}

impl KnownCatalogue {
    fn lookup(&self, id: &str) -> Lookup {
        match self.catalogue.index_of(id) {
            Some(i) => Lookup::Found(i),
            None if self.complete => Lookup::Unknown,
            None => Lookup::Unsure,
        }
    }
}

struct Context<'a> {
    c: Collector<'a>,
    base: &'a Path,
    /// Every path resolved, in order: the files the config refers to.
    files: RefCell<Vec<PathBuf>>,
}

impl Context<'_> {
    fn resolve(&self, path: &Spanned<PathBuf>) -> PathBuf {
        let resolved = self.base.join(path.get_ref());
        self.files.borrow_mut().push(resolved.clone());
        resolved
    }

    fn certificates(
        &mut self,
        path: &Spanned<PathBuf>,
        what: &str,
    ) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        match files::certificates(&self.resolve(path), what) {
            Ok(certs) => certs,
            Err(message) => {
                self.c.at(path.span(), message);
                Vec::new()
            }
        }
    }

    /// Reads the file a path value names (already resolved), reporting a
    /// failure at the value.
    fn read<T>(
        &mut self,
        path: &Spanned<PathBuf>,
        resolved: &Path,
        read: impl Fn(&Path) -> Result<T, String>,
    ) -> Option<T> {
        read(resolved)
            .map_err(|message| self.c.at(path.span(), message))
            .ok()
    }

    fn catalogue(&mut self, cfg: &CatalogueConfig) -> Option<KnownCatalogue> {
        let mut catalogue = match Catalogue::builtin() {
            Ok(c) => c,
            Err(e) => {
                self.c.external(0, catalogue_error(e));
                return None;
            }
        };
        let mut complete = true;
        for include in &cfg.include {
            let path = self.resolve(include);
            let text = match files::read_text(&path, "catalogue") {
                Ok(t) => t,
                Err(msg) => {
                    self.c.at(include.span(), msg);
                    complete = false;
                    continue;
                }
            };
            match Catalogue::from_toml_str(&text, &path) {
                Ok(extra) => catalogue.merge(extra),
                Err(e) => {
                    self.c.external(include.span().start, catalogue_error(e));
                    complete = false;
                }
            }
        }
        Some(KnownCatalogue {
            catalogue,
            complete,
        })
    }

    /// `[store]`: a Redis store is checked as far as it can be without
    /// connecting (the URL, the files, the timeouts), so what cannot work
    /// is reported at its line rather than as an outage after start.
    fn store(&mut self, s: &StoreConfig, segments: &[SegmentConfig]) -> StoreSettings {
        let kind = s.kind.as_ref().map_or(StoreKind::Memory, |k| *k.get_ref());
        if kind == StoreKind::Memory {
            let redis_only = [
                ("url", s.url.as_ref().map(|v| v.span())),
                ("ca", s.ca.as_ref().map(|v| v.span())),
                ("cert", s.cert.as_ref().map(|v| v.span())),
                ("key", s.key.as_ref().map(|v| v.span())),
                ("username", s.username.as_ref().map(|v| v.span())),
                ("password_file", s.password_file.as_ref().map(|v| v.span())),
            ];
            for (name, span) in redis_only {
                if let Some(span) = span {
                    self.c.at(
                        span,
                        format!("{name} is a setting of kind = \"redis\"; this store is memory"),
                    );
                }
            }
            return StoreSettings::Memory;
        }
        let kind_span = s.kind.as_ref().map_or(0..0, |k| k.span());
        let (url, tls) = match &s.url {
            None => {
                self.c.at(
                    kind_span.clone(),
                    "kind = \"redis\" needs a url (redis://host:port)",
                );
                (String::new(), false)
            }
            Some(url) => match values::redis_url(url.get_ref()) {
                Ok(tls) => (url.get_ref().clone(), tls),
                Err(m) => {
                    self.c.at(url.span(), m);
                    (String::new(), false)
                }
            },
        };
        let mut ca_pem = None;
        if let Some(ca) = &s.ca {
            let path = self.resolve(ca);
            if let Some(()) = self.read(ca, &path, |p| {
                files::certificates(p, "Redis CA").map(|_| ())
            }) {
                ca_pem = self.read(ca, &path, |p| files::read_bounded(p, "Redis CA"));
            }
            if !tls {
                self.c.at(ca.span(), "ca is only used with a rediss:// url");
            }
        } else if tls {
            let span = s.url.as_ref().map_or(kind_span.clone(), |u| u.span());
            self.c.at(
                span,
                "a rediss:// url needs ca = \"file.pem\", the CA bundle that issued the Redis \
                 server's certificate (the system roots are never used)",
            );
        }
        let mut client_pem = None;
        match (&s.cert, &s.key) {
            (Some(cert), Some(key)) => {
                let cert_path = self.resolve(cert);
                let key_path = self.resolve(key);
                let c = self.read(cert, &cert_path, |p| {
                    files::certificates(p, "Redis client certificate")?;
                    files::read_bounded(p, "Redis client certificate")
                });
                let k = self.read(key, &key_path, |p| {
                    files::private_key(p)?;
                    files::read_bounded(p, "Redis client key")
                });
                if !tls {
                    self.c.at(
                        cert.span(),
                        "cert and key are only used with a rediss:// url",
                    );
                }
                if let (Some(c), Some(k)) = (&c, &k) {
                    // The PEM was read above; parse it again only to compare.
                    use rustls_pki_types::pem::PemObject;
                    let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(c)
                        .filter_map(Result::ok)
                        .collect();
                    let key_der = rustls_pki_types::PrivateKeyDer::from_pem_slice(k).ok();
                    self.key_pair(
                        key,
                        [&cert_path, &key_path],
                        &chain,
                        key_der.as_ref(),
                        "[store] cert and key",
                    );
                }
                client_pem = c.zip(k);
            }
            (Some(one), None) | (None, Some(one)) => {
                self.c
                    .at(one.span(), "cert and key go together: give both or neither");
            }
            (None, None) => {}
        }
        let password = s.password_file.as_ref().and_then(|path| {
            let resolved = self.resolve(path);
            self.read(path, &resolved, files::redis_password)
        });
        let key_prefix = s
            .key_prefix
            .as_ref()
            .map_or_else(|| "posture-gate:".to_string(), |p| p.get_ref().clone());
        if let Some(p) = &s.key_prefix {
            if p.get_ref().is_empty() || p.get_ref().chars().any(|c| c.is_control() || c == ' ') {
                self.c.at(
                    p.span(),
                    "key_prefix must not be empty nor hold spaces or control characters",
                );
            }
        }
        let mut duration = |v: &Option<Spanned<super::duration::ConfigDuration>>,
                            name: &str,
                            default: Duration,
                            max: Duration| {
            let Some(v) = v else { return default };
            let d = v.get_ref().0;
            if d.is_zero() || d > max {
                self.c.at(
                    v.span(),
                    format!(
                        "{name} must be more than 0 and at most {} ({}); it is {}",
                        humantime::format_duration(max),
                        super::duration::spelled(max),
                        super::duration::spelled(d)
                    ),
                );
            }
            d
        };
        let connect_timeout = duration(
            &s.connect_timeout,
            "connect_timeout",
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        let command_timeout = duration(
            &s.command_timeout,
            "command_timeout",
            Duration::from_millis(250),
            Duration::from_secs(10),
        );
        let propagation = duration(
            &s.propagation,
            "propagation",
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        let mut count = |v: Option<(std::ops::Range<usize>, u64)>, name: &str, default: u64| {
            let Some((span, n)) = v else { return default };
            if n == 0 {
                self.c.at(span, format!("{name} must be more than 0"));
            }
            n
        };
        let pool_size = count(
            s.pool_size
                .as_ref()
                .map(|v| (v.span(), *v.get_ref() as u64)),
            "pool_size",
            1,
        );
        let near_cache_capacity = count(
            s.near_cache_capacity
                .as_ref()
                .map(|v| (v.span(), *v.get_ref())),
            "near_cache_capacity",
            100_000,
        );
        let sensitive = segments
            .iter()
            .any(|seg| seg.sensitivity >= Sensitivity::High);
        let (on_store_failure, on_store_failure_explicit) = match &s.on_store_failure {
            Some(v) => (*v.get_ref(), true),
            None if sensitive => (StoreFailure::Deny, false),
            None => (StoreFailure::Local, false),
        };
        StoreSettings::Redis(Box::new(RedisSettings {
            url,
            tls,
            ca_pem,
            client_pem,
            username: s.username.as_ref().map(|u| u.get_ref().clone()),
            password,
            key_prefix,
            connect_timeout,
            command_timeout,
            pool_size: usize::try_from(pool_size).unwrap_or(1).min(64),
            near_cache_capacity,
            propagation,
            on_store_failure,
            on_store_failure_explicit,
        }))
    }

    fn server(&mut self, s: &ServerConfig) -> ServerSettings {
        let listen = s.listen.get_ref().parse::<SocketAddr>().unwrap_or_else(|_| {
            self.c.at(
                s.listen.span(),
                format!(
                    "listen {:?} is not an IP address and port, like \"0.0.0.0:8443\" or \"[::]:8443\"",
                    s.listen.get_ref()
                ),
            );
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        });
        // Read once, here: the TLS front and the revocation set are built
        // from these bytes and never open the files again.
        let cert = self.resolve(&s.cert);
        let cert_chain = self.certificates(&s.cert, "certificate");
        let key = self.resolve(&s.key);
        let private_key = self.read(&s.key, &key, files::private_key);
        self.key_pair(
            &s.key,
            [&cert, &key],
            &cert_chain,
            private_key.as_ref(),
            "[server] cert and key",
        );
        let client_ca = self.resolve(&s.client_ca);
        let client_cas = self.read(&s.client_ca, &client_ca, files::client_cas);
        let mut crls = Vec::new();
        let mut revocation_lists = Vec::new();
        let mut crl_validity = Vec::new();
        for path in &s.crls {
            let resolved = self.resolve(path);
            let read = self.read(path, &resolved, files::crl).unwrap_or_default();
            crl_validity.extend(
                read.iter()
                    .filter_map(|der| files::crl_validity(&resolved, der)),
            );
            revocation_lists.extend(read);
            crls.push(resolved);
        }
        let trusted_proxies = s
            .trusted_proxies
            .iter()
            .filter_map(|p| {
                values::trusted_proxy(p.get_ref())
                    .map_err(|m| self.c.at(p.span(), m))
                    .ok()
            })
            .collect();
        let proxy_protocol_from = s
            .proxy_protocol_from
            .iter()
            .filter_map(|p| {
                values::proxy_protocol_peer(p.get_ref())
                    .map_err(|m| self.c.at(p.span(), m))
                    .ok()
            })
            .collect();
        let limits = self.server_limits(s);
        self.server_timeouts(s);
        ServerSettings {
            listen,
            cert,
            cert_chain,
            key,
            // A stand-in only when an error was collected (see the module docs).
            private_key: Arc::new(
                private_key.unwrap_or_else(|| {
                    rustls_pki_types::PrivatePkcs8KeyDer::from(Vec::new()).into()
                }),
            ),
            client_ca,
            client_cas: client_cas.unwrap_or_default(),
            crls,
            revocation_lists,
            crl_validity,
            max_connections: s.max_connections,
            header_read_timeout: s.header_read_timeout.get_ref().0,
            idle_timeout: s.idle_timeout.get_ref().0,
            max_header_bytes: s.max_header_bytes,
            upstream_timeout: s.upstream_timeout.get_ref().0,
            shutdown_grace: s.shutdown_grace.0,
            trusted_proxies,
            max_connections_per_ip: limits.max_connections_per_ip,
            body_timeout: limits.body_timeout,
            body_min_rate: limits.body_min_rate,
            max_body_bytes_in_flight: limits.max_body_bytes_in_flight,
            max_streams_without_certificate: limits.max_streams_without_certificate,
            proxy_protocol_from,
            forward_auth: None,
            nac: None,
            attest_without_certificate_per_minute: limits.attest_without_certificate_per_minute,
            admin: None,
            audit: Default::default(),
        }
    }

    /// Timeouts that cannot work. A zero header_read_timeout fails every
    /// connection before its first request (silently: the peer just sees
    /// the connection close); a zero idle_timeout closes every connection
    /// at once; a zero upstream_timeout fails every proxied request.
    ///
    /// A header_read_timeout longer than idle_timeout is not refused: it
    /// alone bounds the TLS handshake (the idle clock starts after it), so
    /// slow handshakes with a short idle time is a configuration that works.
    fn server_timeouts(&mut self, s: &ServerConfig) {
        let what = [
            (
                &s.header_read_timeout,
                "header_read_timeout",
                "every connection would be closed before its TLS handshake or first request",
            ),
            (
                &s.idle_timeout,
                "idle_timeout",
                "every connection would be closed as soon as it opens",
            ),
            (
                &s.upstream_timeout,
                "upstream_timeout",
                "every request to an upstream would time out",
            ),
        ];
        for (v, name, consequence) in what {
            if v.get_ref().0.is_zero() {
                self.c.at(
                    v.span(),
                    format!("{name} must be more than 0: {consequence}"),
                );
            }
        }
    }

    /// The limits on what one peer may hold; a zero would refuse every
    /// client (or, for a rate, switch the check off), so it is an error.
    fn server_limits(&mut self, s: &ServerConfig) -> ServerLimits {
        let mut positive = |name: &str, span: std::ops::Range<usize>, zero: bool| {
            if zero {
                self.c.at(span, format!("{name} must be more than 0"));
            }
        };
        let per_ip = &s.max_connections_per_ip;
        positive(
            "max_connections_per_ip",
            per_ip.span(),
            *per_ip.get_ref() == 0,
        );
        let body_timeout = &s.body_timeout;
        positive(
            "body_timeout",
            body_timeout.span(),
            body_timeout.get_ref().0.is_zero(),
        );
        let rate = &s.body_min_rate;
        positive("body_min_rate", rate.span(), *rate.get_ref() == 0);
        let streams = &s.max_streams_without_certificate;
        positive(
            "max_streams_without_certificate",
            streams.span(),
            *streams.get_ref() == 0,
        );
        let attest = &s.attest_without_certificate_per_minute;
        positive(
            "attest_without_certificate_per_minute",
            attest.span(),
            *attest.get_ref() == 0,
        );
        let budget = &s.max_body_bytes_in_flight;
        if *budget.get_ref() < MAX_TOKEN_BYTES {
            self.c.at(
                budget.span(),
                format!(
                    "max_body_bytes_in_flight must be at least {MAX_TOKEN_BYTES} (1 MiB, the \
                     largest token), or no device could post a large token"
                ),
            );
        }
        ServerLimits {
            max_connections_per_ip: *per_ip.get_ref(),
            body_timeout: body_timeout.get_ref().0,
            body_min_rate: *rate.get_ref(),
            max_body_bytes_in_flight: *budget.get_ref(),
            max_streams_without_certificate: *streams.get_ref(),
            attest_without_certificate_per_minute: *attest.get_ref(),
        }
    }

    fn attestation(
        &mut self,
        a: &AttestationConfig,
        server: Option<&ServerConfig>,
    ) -> AttestationSettings {
        let mut trust_anchors = Vec::new();
        for path in &a.trust_anchors {
            trust_anchors.extend(self.certificates(path, "trust anchor"));
        }
        let max_age = a.max_age.get_ref().0;
        if max_age.is_zero() || max_age > MAX_MAX_AGE {
            self.c.at(
                a.max_age.span(),
                format!(
                    "max_age must be more than 0 and at most 24h (24 hours); it is {}",
                    super::duration::spelled(max_age)
                ),
            );
        }
        let nonce_ttl = a.nonce_ttl.get_ref().0;
        if nonce_ttl.is_zero() || nonce_ttl > MAX_NONCE_TTL {
            self.c.at(
                a.nonce_ttl.span(),
                format!(
                    "nonce_ttl must be more than 0 and at most 5m (5 minutes); it is {}",
                    super::duration::spelled(nonce_ttl)
                ),
            );
        }
        let nonce_secret = a.nonce_secret_file.as_ref().and_then(|path| {
            files::nonce_secret(&self.resolve(path))
                .map_err(|message| self.c.at(path.span(), message))
                .ok()
        });
        let require_nonce = *a.require_nonce.get_ref();
        if let (true, Some(server), None) = (require_nonce, server, &a.nonce_secret_file) {
            // Point at the setting if it was written, else at the server the
            // requirement applies to.
            let span = if a.require_nonce.span().is_empty() {
                server.listen.span()
            } else {
                a.require_nonce.span()
            };
            self.c.at(
                span,
                "require_nonce is true (the default) and a [server] is configured, but \
                 [attestation] has no nonce_secret_file: the gate needs it to issue nonces",
            );
        }
        AttestationSettings {
            trust_anchors,
            verifier: VerifierSettings {
                max_age,
                clock_skew: a.clock_skew.0,
                require_nonce,
            },
            nonce_secret,
            nonce_ttl,
            posture_cache_capacity: a.posture_cache_capacity,
        }
    }

    /// Checks names are non-empty and unique; maps each to its first index.
    fn names<'n>(
        &mut self,
        names: impl Iterator<Item = &'n Spanned<String>>,
        kind: &str,
    ) -> HashMap<String, usize> {
        let mut index = HashMap::new();
        for (i, name) in names.enumerate() {
            if name.get_ref().is_empty() {
                self.c
                    .at(name.span(), format!("{kind} name must not be empty"));
            } else if index.contains_key(name.get_ref()) {
                self.c.at(
                    name.span(),
                    format!("duplicate {kind} name {:?}", name.get_ref()),
                );
            } else {
                index.insert(name.get_ref().clone(), i);
            }
        }
        index
    }

    fn lookup(
        &mut self,
        index: &HashMap<String, usize>,
        name: &Spanned<String>,
        kind: &str,
    ) -> usize {
        match index.get(name.get_ref()) {
            Some(i) => *i,
            None => {
                let mut known: Vec<&str> = index.keys().map(String::as_str).collect();
                known.sort_unstable();
                self.c.at(
                    name.span(),
                    format!(
                        "unknown {kind} {:?} (defined: {})",
                        name.get_ref(),
                        list(&known)
                    ),
                );
                0
            }
        }
    }

    fn catalogue_id(&mut self, catalogue: Option<&KnownCatalogue>, id: &Spanned<String>) -> usize {
        match catalogue.map(|k| k.lookup(id.get_ref())) {
            Some(Lookup::Found(i)) => i,
            Some(Lookup::Unknown) => {
                self.c.at(
                    id.span(),
                    format!(
                        "unknown catalogue id {:?} (not in the built-in catalogue or a [catalogue] include)",
                        id.get_ref()
                    ),
                );
                0
            }
            // An incomplete catalogue has already been reported.
            Some(Lookup::Unsure) | None => 0,
        }
    }

    fn policies(
        &mut self,
        ps: &[PolicyConfig],
        catalogue: Option<&KnownCatalogue>,
    ) -> (Vec<Policy>, HashMap<String, usize>) {
        let index = self.names(ps.iter().map(|p| &p.name), "policy");
        let policies = ps.iter().map(|p| self.policy(p, catalogue)).collect();
        (policies, index)
    }

    fn policy(&mut self, p: &PolicyConfig, catalogue: Option<&KnownCatalogue>) -> Policy {
        let mut rules = Vec::new();
        for r in &p.rules {
            let entry = self.catalogue_id(catalogue, &r.catalogue);
            let categories: Option<Vec<Category>> = r.categories.as_ref().map(|cs| {
                cs.get_ref()
                    .iter()
                    .filter_map(|c| self.category(c))
                    .collect()
            });
            if let Some(cs) = &r.categories {
                self.check_categories(cs, categories.as_deref(), catalogue, r, p);
            }
            let deny_from = r.deny_from.as_ref().and_then(|d| self.deny_from(d, r, p));
            rules.push(Rule {
                entry,
                action: match r.action {
                    Action::Deny => Decision::Deny,
                    Action::Warn => Decision::Warn,
                },
                categories,
                deny_from,
            });
        }
        let mut min_os_version = Vec::new();
        for (family, version) in &p.min_os_version {
            let family = values::os_family(family).map_err(|m| self.c.at(version.span(), m));
            let version =
                OsVersion::parse(version.get_ref()).map_err(|m| self.c.at(version.span(), m));
            if let (Ok(family), Ok(version)) = (family, version) {
                min_os_version.push((family, version));
            }
        }
        let require_antivirus = self.require_antivirus(p);
        Policy {
            name: p.name.get_ref().clone(),
            description: p.description.clone(),
            rules,
            min_os_version,
            require_antivirus,
        }
    }

    /// The families `require_antivirus` names: `true` is every family
    /// (check-config warns about those posture-agent cannot report a
    /// security product for), a list only those.
    fn require_antivirus(&mut self, p: &PolicyConfig) -> Vec<OsFamily> {
        let Some(value) = &p.require_antivirus else {
            return Vec::new();
        };
        match value.get_ref() {
            RequireAntivirus::Every(true) => OsFamily::ALL.to_vec(),
            RequireAntivirus::Every(false) => Vec::new(),
            RequireAntivirus::Families(names) => {
                if names.is_empty() {
                    self.c.at(
                        value.span(),
                        format!(
                            "policy {:?}: require_antivirus = [] requires it nowhere; write \
                             false (or leave it out), or list OS families like [\"windows\", \"macos\"]",
                            p.name.get_ref()
                        ),
                    );
                }
                let mut families = Vec::new();
                for name in names {
                    match OsFamily::ALL.iter().find(|f| f.as_str() == name.get_ref()) {
                        Some(f) if families.contains(f) => self.c.at(
                            name.span(),
                            format!("{:?} is listed twice in require_antivirus", name.get_ref()),
                        ),
                        Some(f) => families.push(*f),
                        None => {
                            let all: Vec<&str> = OsFamily::ALL.iter().map(|f| f.as_str()).collect();
                            self.c.at(
                                name.span(),
                                format!(
                                    "require_antivirus: {:?} is not an OS family (one of: {})",
                                    name.get_ref(),
                                    all.join(", ")
                                ),
                            );
                        }
                    }
                }
                families
            }
        }
    }

    /// A rule's `deny_from`: a date, on a warn rule that a deny rule of the
    /// same policy does not already cover (its date would change nothing).
    fn deny_from(
        &mut self,
        d: &Spanned<toml::value::Datetime>,
        r: &RuleConfig,
        p: &PolicyConfig,
    ) -> Option<time::Date> {
        let date = values::deny_from_date(d.get_ref())
            .map_err(|m| self.c.at(d.span(), m))
            .ok()?;
        if r.action != Action::Warn {
            self.c.at(
                d.span(),
                format!(
                    "policy {:?}: deny_from goes with action = \"warn\" (the rule warns until \
                     that day and denies from it); this rule already denies",
                    p.name.get_ref()
                ),
            );
            return None;
        }
        fn names(c: &Option<Spanned<Vec<Spanned<String>>>>) -> Option<Vec<&str>> {
            c.as_ref()
                .map(|cs| cs.get_ref().iter().map(|c| c.get_ref().as_str()).collect())
        }
        let staged = names(&r.categories);
        let shadowed = p.rules.iter().any(|other| {
            other.action == Action::Deny
                && other.catalogue.get_ref() == r.catalogue.get_ref()
                && match (names(&other.categories), &staged) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(deny), Some(staged)) => staged.iter().all(|c| deny.contains(c)),
                }
        });
        if shadowed {
            self.c.at(
                d.span(),
                format!(
                    "policy {:?}: a deny rule for {:?} already denies everything this staged \
                     rule covers, so deny_from would never change anything; remove one of them",
                    p.name.get_ref(),
                    r.catalogue.get_ref()
                ),
            );
            return None;
        }
        Some(date)
    }

    /// A categories list that selects nothing turns the rule off without
    /// saying so: an error, whether it is empty or names only categories
    /// the entry does not have.
    fn check_categories(
        &mut self,
        written: &Spanned<Vec<Spanned<String>>>,
        parsed: Option<&[Category]>,
        catalogue: Option<&KnownCatalogue>,
        r: &RuleConfig,
        p: &PolicyConfig,
    ) {
        let id = r.catalogue.get_ref();
        if written.get_ref().is_empty() {
            self.c.at(
                written.span(),
                format!(
                    "policy {:?}: categories = [] makes the {id:?} rule match nothing; \
                     omit categories to cover every category of the entry, or remove the rule",
                    p.name.get_ref()
                ),
            );
            return;
        }
        // Unknown names were reported one by one; only a list that fully
        // parsed is compared with the entry.
        let (Some(parsed), Some(Lookup::Found(i))) = (parsed, catalogue.map(|k| k.lookup(id)))
        else {
            return;
        };
        if parsed.len() != written.get_ref().len() {
            return;
        }
        let Some(entry) = catalogue.and_then(|k| k.catalogue.entries().get(i)) else {
            return;
        };
        let has: Vec<Category> = entry.categories().collect();
        if !parsed.iter().any(|c| has.contains(c)) {
            let names: Vec<&str> = has.iter().map(|c| c.as_str()).collect();
            self.c.at(
                written.span(),
                format!(
                    "policy {:?}: none of these categories occurs in catalogue entry {id:?} \
                     (it has: {}), so the rule matches nothing",
                    p.name.get_ref(),
                    list(&names)
                ),
            );
        }
    }

    /// A high or critical segment whose policy has no deny rule lets a
    /// device with prohibited software in. That is refused unless the
    /// policy says `allow_empty = true`, so neither a slip nor a file read
    /// while half written can open such a segment.
    fn guard_sensitive_segments(
        &mut self,
        ss: &[SegmentConfig],
        ps: &[PolicyConfig],
        policies: &HashMap<String, usize>,
    ) {
        for s in ss {
            if s.sensitivity < Sensitivity::High {
                continue;
            }
            let Some(p) = policies.get(s.policy.get_ref()).and_then(|i| ps.get(*i)) else {
                continue;
            };
            let denies = p.rules.iter().any(|r| r.action == Action::Deny);
            if !denies && !p.allow_empty {
                self.c.at(
                    s.policy.span(),
                    format!(
                        "segment {:?} is of {} sensitivity, but its policy {:?} denies nothing \
                         (no rule with action = \"deny\"); add a deny rule, or write \
                         allow_empty = true in policy {:?} if it is meant to deny nothing",
                        s.name.get_ref(),
                        sensitivity_name(s.sensitivity),
                        p.name.get_ref(),
                        p.name.get_ref()
                    ),
                );
            }
        }
    }

    fn category(&mut self, name: &Spanned<String>) -> Option<Category> {
        match name.get_ref().parse::<Category>() {
            Ok(c) => Some(c),
            Err(_) => {
                self.c.at(
                    name.span(),
                    format!(
                        "unknown category {:?} (one of: antivirus, management_agent, vpn, \
                         password_manager, parental_control, unclassified)",
                        name.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn segments(
        &mut self,
        ss: &[SegmentConfig],
        policies: &HashMap<String, usize>,
    ) -> (Vec<Segment>, HashMap<String, usize>) {
        let index = self.names(ss.iter().map(|s| &s.name), "segment");
        let mut segments = Vec::new();
        for s in ss {
            let policy = self.lookup(policies, &s.policy, "policy");
            if let Some(vlan) = &s.vlan {
                if !VLAN_RANGE.contains(vlan.get_ref()) {
                    self.c.at(
                        vlan.span(),
                        format!("vlan {} is outside 1..=4094", vlan.get_ref()),
                    );
                }
            }
            segments.push(Segment {
                name: s.name.get_ref().clone(),
                description: s.description.clone(),
                description_en: s.description_en.clone(),
                sensitivity: s.sensitivity,
                policy,
                vlan: s.vlan.as_ref().map(|v| *v.get_ref()),
            });
        }
        (segments, index)
    }

    fn routes(&mut self, rs: &[RouteConfig], segments: &HashMap<String, usize>) -> Vec<Route> {
        let mut seen: HashMap<(String, String), ()> = HashMap::new();
        let mut routes = Vec::new();
        for r in rs {
            let host = values::normalise_host(r.host.get_ref()).unwrap_or_else(|m| {
                self.c.at(r.host.span(), m);
                String::new()
            });
            let path_prefix = values::normalise_path_prefix(r.path_prefix.get_ref())
                .unwrap_or_else(|m| {
                    self.c.at(r.path_prefix.span(), m);
                    "/".to_string()
                });
            // The gate matches prefixes whatever their letters' case (IIS
            // serves /FIN as /fin), so /Fin and /fin would be one route.
            if !host.is_empty()
                && seen
                    .insert((host.clone(), path_prefix.to_ascii_lowercase()), ())
                    .is_some()
            {
                self.c.at(
                    r.host.span(),
                    format!("duplicate route: host {host:?} with path_prefix {path_prefix:?} is already routed"),
                );
            }
            let upstream = values::parse_upstream(r.upstream.get_ref()).unwrap_or_else(|m| {
                self.c.at(r.upstream.span(), m);
                http::Uri::from_static("http://invalid")
            });
            let upstream_ca = r.upstream_ca.as_ref().map(|ca| {
                if upstream.scheme_str() == Some("http") {
                    self.c.at(ca.span(), "upstream_ca is set but the upstream is http://; use https:// or drop upstream_ca");
                }
                self.certificates(ca, "upstream CA")
            });
            let segment = self.lookup(segments, &r.segment, "segment");
            let upgrades = match &r.upgrades {
                None => super::model::defaults::upgrades(),
                Some(list) => list.iter().filter_map(|u| self.upgrade(u)).collect(),
            };
            routes.push(Route {
                host,
                path_prefix,
                upstream,
                upstream_ca,
                segment,
                allow_encoded_percent: r.allow_encoded_percent,
                upgrades,
            });
        }
        routes
    }

    /// One protocol a route relays upgrades to, lowercased.
    fn upgrade(&mut self, u: &Spanned<String>) -> Option<String> {
        let name = u.get_ref().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_tchar) {
            self.c.at(
                u.span(),
                format!(
                    "upgrade {:?} is not a protocol name like \"websocket\" (write it without version)",
                    u.get_ref()
                ),
            );
            return None;
        }
        // An upstream that switches to HTTP/2 in clear text takes any request
        // over the tunnel, for any path: the route's checks would be bypassed.
        if name == "h2c" || name == "http" {
            self.c.at(
                u.span(),
                format!(
                    "upgrade {:?} would tunnel HTTP requests past the gate's checks (request \
                     smuggling); only relay protocols such as \"websocket\"",
                    u.get_ref()
                ),
            );
            return None;
        }
        Some(name)
    }

    fn exemptions(
        &mut self,
        es: &[ExemptionConfig],
        catalogue: Option<&KnownCatalogue>,
        segments: &HashMap<String, usize>,
    ) -> Vec<Exemption> {
        es.iter()
            .map(|e| self.exemption(e, catalogue, segments))
            .collect()
    }

    fn exemption(
        &mut self,
        e: &ExemptionConfig,
        catalogue: Option<&KnownCatalogue>,
        segments: &HashMap<String, usize>,
    ) -> Exemption {
        let device = self.device(e);
        let entry = self.catalogue_id(catalogue, &e.catalogue);
        let expires = values::expires_date(e.expires.get_ref()).unwrap_or_else(|m| {
            self.c.at(e.expires.span(), m);
            time::Date::MIN
        });
        if e.reference.get_ref().trim().is_empty() {
            self.c.at(
                e.reference.span(),
                "reference must name the risk acceptance this exemption rests on",
            );
        }
        let segments = e.segments.as_ref().map(|names| {
            if names.is_empty() {
                self.c.at(
                    e.catalogue.span(),
                    "segments = [] exempts nowhere; omit segments to exempt on every segment",
                );
            }
            names
                .iter()
                .map(|n| self.lookup(segments, n, "segment"))
                .collect()
        });
        Exemption {
            device,
            catalogue_id: e.catalogue.get_ref().clone(),
            entry,
            expires,
            reference: e.reference.get_ref().clone(),
            segments,
        }
    }

    fn device(&mut self, e: &ExemptionConfig) -> DeviceSelector {
        // The stand-in after an error (never reaches a gate: the load
        // fails): a fingerprint no certificate has been seen with.
        const NO_DEVICE: DeviceSelector = DeviceSelector::Fingerprint([0; 32]);
        match (&e.device_fingerprint, &e.device_subject) {
            (Some(fp), None) => match values::fingerprint(fp.get_ref()) {
                Ok(bytes) => DeviceSelector::Fingerprint(bytes),
                Err(m) => {
                    self.c.at(fp.span(), m);
                    NO_DEVICE
                }
            },
            (None, Some(subject)) => {
                let written = subject.get_ref();
                if written.trim().is_empty() {
                    self.c
                        .at(subject.span(), "device_subject must not be empty");
                    return NO_DEVICE;
                }
                match DistinguishedName::parse(written) {
                    Ok(name) => DeviceSelector::Subject {
                        written: written.clone(),
                        name,
                    },
                    Err(e) => {
                        self.c.at(
                            subject.span(),
                            format!(
                                "device_subject {written:?} is not a distinguished name: {e}; \
                                 write it as RFC 4514, like \"CN=lt-042,OU=Beheer,O=Leverancier BV\" \
                                 (order, spacing and case do not matter)"
                            ),
                        );
                        NO_DEVICE
                    }
                }
            }
            (Some(_), Some(subject)) => {
                self.c.at(
                    subject.span(),
                    "an exemption names one device: give device_fingerprint or device_subject, not both",
                );
                NO_DEVICE
            }
            (None, None) => {
                self.c.at(
                    e.catalogue.span(),
                    "an exemption needs a device: give device_fingerprint or device_subject",
                );
                NO_DEVICE
            }
        }
    }

    fn organizations(&mut self, file: &FileConfig) {
        let orgs = &file.remediation.organizations;
        self.names(orgs.iter().map(|o| &o.name), "organisation");
    }
}

fn sensitivity_name(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Low => "low",
        Sensitivity::Medium => "medium",
        Sensitivity::High => "high",
        Sensitivity::Critical => "critical",
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
