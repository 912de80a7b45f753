//! A one-screen summary of a loaded config, for `check-config`: what a
//! reviewer needs to confirm the file says what they meant, and which
//! exemptions are about to lapse. Upstream credentials are never printed.

use std::fmt::Write;
use std::time::Duration;

use crate::attestation::claims::OsFamily;
use crate::catalogue::Category;
use crate::verdict::Decision;

use super::model::{Sensitivity, StoreFailure};
use super::snapshot::{DeviceSelector, Exemption, Policy, Route, Snapshot, StoreSettings};
use super::snapshot::{ForwardAuthListen, ForwardAuthSettings, NacSettings};

/// Exemptions expiring this many days from today or sooner are listed.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// What `check-config` prints of a loaded snapshot: segments, routes,
/// policies, and the exemptions that expire within 30 days of `today`.
/// CRLs are judged as of midnight (UTC) starting `today`; see [`summary_at`].
pub fn summary(snapshot: &Snapshot, today: time::Date) -> String {
    summary_at(snapshot, today.midnight().assume_utc())
}

/// [`summary`] as of the moment `now`: also each CRL's nextUpdate, with a
/// WARNING line for one that is within its warning margin
/// (`CrlValidity::warning_margin`) or already past it.
pub fn summary_at(snapshot: &Snapshot, now: time::OffsetDateTime) -> String {
    let today = now.date();
    let mut out = String::new();
    header(&mut out, snapshot);
    if let Some(server) = &snapshot.server {
        crls(&mut out, server, now.unix_timestamp());
        server_certificate(&mut out, snapshot, server, now.unix_timestamp());
    }
    segments(&mut out, snapshot);
    routes(&mut out, snapshot);
    policies(&mut out, snapshot);
    staged_rules(&mut out, snapshot, today);
    exemptions(&mut out, snapshot, today);
    subject_exemptions(&mut out, snapshot);
    out
}

/// The OS families posture-agent reports no security products for (it has
/// no collector there): a policy that requires an antivirus on them denies
/// every such device.
const NO_SECURITY_PRODUCTS: [OsFamily; 4] = [
    OsFamily::Android,
    OsFamily::Ios,
    OsFamily::Chromeos,
    OsFamily::Other,
];

/// Staged rules whose deny day is past (they deny now) or within
/// [`EXPIRY_WARNING_DAYS`]: the network team must know before devices that
/// were warned are refused.
fn staged_rules(out: &mut String, s: &Snapshot, today: time::Date) {
    let horizon = today.saturating_add(time::Duration::days(EXPIRY_WARNING_DAYS));
    let staged: Vec<(&Policy, &str, time::Date)> = s
        .policies
        .iter()
        .flat_map(|p| {
            p.rules.iter().filter_map(move |r| {
                let id = s
                    .catalogue
                    .entries()
                    .get(r.entry)
                    .map_or("?", |e| e.id.as_str());
                r.deny_from.map(|d| (p, id, d))
            })
        })
        .collect();
    // The policy lines show every staged rule's day; this lists the ones
    // that need attention now.
    let due: Vec<_> = staged.iter().filter(|(_, _, d)| *d <= horizon).collect();
    if due.is_empty() {
        return;
    }
    writeln!(
        out,
        "\nStaged rules (warn until deny_from, deny from it): {} in total, {} denying already or \
         within {EXPIRY_WARNING_DAYS} days (by {horizon}):",
        staged.len(),
        due.len()
    )
    .ok();
    for (p, id, day) in due {
        if *day <= today {
            writeln!(
                out,
                "  policy {}: {id} denies since {day} (deny_from has passed: the rule now denies)",
                p.name
            )
            .ok();
        } else {
            let last = day.previous_day().unwrap_or(*day);
            writeln!(
                out,
                "  policy {}: {id} warns until {last}, denies from {day} (in {} days)",
                p.name,
                (*day - today).whole_days()
            )
            .ok();
        }
    }
}

/// Every exemption by subject (expiring soon or not) with the normalised
/// name it matches, under the exemptions: the certificate's subject must
/// have exactly these attributes (any order, case and spacing ignored), no
/// more and no fewer.
fn subject_exemptions(out: &mut String, s: &Snapshot) {
    let subjects: Vec<(&Exemption, &str, &str)> = s
        .exemptions
        .iter()
        .filter_map(|e| match &e.device {
            DeviceSelector::Subject { written, name } => Some((e, written.as_str(), name.as_str())),
            DeviceSelector::Fingerprint(_) => None,
        })
        .collect();
    for (e, written, name) in subjects {
        writeln!(
            out,
            "  {} until {}: subject {written:?} matches a certificate whose subject is exactly \
             {name} (any order; case and spacing ignored)",
            e.catalogue_id, e.expires
        )
        .ok();
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn header(out: &mut String, s: &Snapshot) {
    match &s.source {
        Some(path) => writeln!(out, "Configuration {}", path.display()),
        None => writeln!(out, "Built-in default configuration"),
    }
    .ok();
    if let Some(server) = &s.server {
        writeln!(
            out,
            "Server: listen {}, client CA {}, {} CRL file(s), at most {} connections",
            server.listen,
            server.client_ca.display(),
            server.crls.len(),
            server.max_connections
        )
        .ok();
        if !server.trusted_proxies.is_empty() {
            let nets: Vec<String> = server
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect();
            writeln!(
                out,
                "Trusted proxies (X-Forwarded-For kept): {}",
                nets.join(", ")
            )
            .ok();
        }
        if !server.proxy_protocol_from.is_empty() {
            let nets: Vec<String> = server
                .proxy_protocol_from
                .iter()
                .map(ToString::to_string)
                .collect();
            writeln!(
                out,
                "PROXY protocol v2 required from (client address taken from it): {}",
                nets.join(", ")
            )
            .ok();
        }
    }
    let a = &s.attestation;
    let nonces = if a.verifier.require_nonce {
        format!("nonces required (valid {})", human(a.nonce_ttl))
    } else {
        "nonces optional".to_string()
    };
    writeln!(
        out,
        "Attestation: {} trust anchor(s), max age {}, clock skew {}, {nonces}, posture cache {} devices",
        a.trust_anchors.len(),
        human(a.verifier.max_age),
        human(a.verifier.clock_skew),
        a.posture_cache_capacity
    )
    .ok();
    if a.trust_anchors.is_empty() {
        writeln!(
            out,
            "WARNING: no trust anchors: every attestation will be refused"
        )
        .ok();
    }
    writeln!(out, "Catalogue: {} entries", s.catalogue.entries().len()).ok();
    store(out, &s.store);
    if let Some(server) = &s.server {
        super::compile::audit::summary(out, &server.audit);
    }
    if let Some(f) = s
        .server
        .as_ref()
        .and_then(|server| server.forward_auth.as_ref())
    {
        forward_auth(out, f);
    }
    if let Some(n) = s.server.as_ref().and_then(|server| server.nac.as_ref()) {
        nac(out, n);
    }
    if let Some(server) = &s.server {
        match &server.admin {
            Some(a) => writeln!(
                out,
                "Admin: /metrics, /healthz, /readyz on http://{} (max {} connections)",
                a.listen, a.max_connections
            ),
            None => writeln!(
                out,
                "Admin: off (no [admin]: no /metrics, /healthz, /readyz)"
            ),
        }
        .ok();
        leaf_only_warning(out, server);
    }
}

/// One line per CRL (file, issuer, nextUpdate), and a WARNING for each one
/// about to go out of date or already out of date: from nextUpdate on, the
/// devices it speaks for are refused until a newer CRL is loaded.
fn crls(out: &mut String, server: &super::snapshot::ServerSettings, now: i64) {
    use super::snapshot::CrlFreshness;
    for crl in &server.crl_validity {
        let next = crl
            .next_update
            .map_or("no nextUpdate (never out of date)".to_string(), |t| {
                format!("next update {}", rfc3339(t))
            });
        writeln!(out, "CRL {}: {}, {next}", crl.file.display(), crl.issuer).ok();
        match crl.freshness(now) {
            CrlFreshness::Fresh => {}
            CrlFreshness::Due { remaining } => {
                writeln!(
                    out,
                    "WARNING: CRL {} reaches its nextUpdate in {}: publish a new one before then, \
                     or devices of {} are refused (revocation_unknown)",
                    crl.file.display(),
                    human(Duration::from_secs(remaining.unsigned_abs())),
                    crl.issuer
                )
                .ok();
            }
            CrlFreshness::Past { since } => {
                writeln!(
                    out,
                    "WARNING: CRL {} passed its nextUpdate {} ago: devices of {} are refused \
                     (revocation_unknown) until a newer CRL is in place",
                    crl.file.display(),
                    human(Duration::from_secs(since.unsigned_abs())),
                    crl.issuer
                )
                .ok();
            }
        }
    }
}

/// The server certificate's expiry, with a WARNING within
/// [`EXPIRY_WARNING_DAYS`] (an ERROR once outside its validity, which makes
/// check-config fail), and a WARNING
/// for every route host it does not name: browsers and agents refuse the
/// handshake for such a host, so the route cannot be reached (see
/// `compile/certs.rs` for why that is not an error).
fn server_certificate(
    out: &mut String,
    s: &Snapshot,
    server: &super::snapshot::ServerSettings,
    now: i64,
) {
    for problem in super::compile::certs::validity_problems(s, now) {
        writeln!(out, "ERROR: {problem}").ok();
    }
    let Some(leaf) = server.cert_chain.first() else {
        return;
    };
    if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(leaf.as_ref()) {
        let until = parsed.validity().not_after.timestamp();
        let left = until - now;
        if (0..EXPIRY_WARNING_DAYS * 86_400).contains(&left) {
            writeln!(
                out,
                "WARNING: the server certificate {} expires in {} (on {}): renew it before then, or every client refuses the gate",
                server.cert.display(),
                human(Duration::from_secs(left.unsigned_abs() / 3600 * 3600)),
                rfc3339(until)
            )
            .ok();
        }
    }
    // One line for all of them: the summary is meant to fit a screen.
    let mut uncovered: Vec<&str> = Vec::new();
    for r in &s.routes {
        if !r.host.is_empty()
            && !uncovered.contains(&r.host.as_str())
            && !super::compile::certs::covers(leaf, &r.host)
        {
            uncovered.push(&r.host);
        }
    }
    if !uncovered.is_empty() {
        let bare: Vec<&str> = uncovered
            .iter()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .collect();
        // Behind a forward-auth proxy a route's host is served under the
        // proxy's certificate, not this one.
        let proxied = if server.forward_auth.is_some() {
            " (a host reached only through a forward-auth proxy is served under the proxy's \
             certificate: ignore it here)"
        } else {
            ""
        };
        writeln!(
            out,
            "WARNING: the server certificate {} does not name {} (no DNS or IP subjectAltName \
             matches): clients refuse the handshake, so those routes cannot be reached; add \
             the names to the certificate (development PKI: posture-gate pki init --host {}){}",
            server.cert.display(),
            uncovered.join(", "),
            bare.join(" --host "),
            proxied
        )
        .ok();
    }
}

/// A Unix time as RFC 3339 UTC, to the second.
fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{t}"))
}

/// nginx and Caddy forward only the device's own certificate, and
/// FreeRADIUS names only its direct issuer: with no issuing CA in
/// `client_ca` (only roots), every device behind them would be refused.
fn leaf_only_warning(out: &mut String, server: &super::snapshot::ServerSettings) {
    use x509_parser::prelude::{FromDer, X509Certificate};
    if server.forward_auth.is_none() && server.nac.is_none() {
        return;
    }
    let only_roots = server.client_cas.iter().all(|der| {
        X509Certificate::from_der(der.as_ref())
            .map(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
            .unwrap_or(true)
    });
    if only_roots {
        writeln!(
            out,
            "WARNING: client_ca holds only root CAs; proxies forward only the device's own \
             certificate and 802.1X names only its direct issuer, so put the CA that issues \
             device certificates in client_ca too, or every device behind them is refused \
             (cert_untrusted)"
        )
        .ok();
    }
}

/// The 802.1X decision API, its RADIUS servers and NASes (no secrets).
fn nac(out: &mut String, n: &NacSettings) {
    let listen = match &n.listen {
        ForwardAuthListen::Tcp(addr) => addr.to_string(),
        ForwardAuthListen::Unix(path) => format!("unix:{}", path.display()),
    };
    let transport = if n.tls.is_some() {
        "mutual TLS"
    } else {
        "plain HTTP"
    };
    let quarantine = match n.quarantine_vlan {
        Some(v) => format!("quarantine VLAN {v}"),
        None => "no quarantine VLAN: a device without an allowed posture is rejected".to_string(),
    };
    writeln!(out, "802.1X: {listen} ({transport}), {quarantine}").ok();
    for r in &n.radius {
        let from = if r.from.is_empty() {
            "any address".to_string()
        } else {
            r.from
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(out, "  RADIUS {}: from {from}", r.name).ok();
    }
    for nas in &n.nas {
        let change = match nas.change {
            super::model::NasChange::Coa => "CoA",
            super::model::NasChange::Disconnect => "Disconnect",
        };
        writeln!(
            out,
            "  NAS {} ({}): {change} to {}",
            nas.name, nas.address, nas.coa
        )
        .ok();
    }
}

/// The forward-auth listener and who may ask it.
fn forward_auth(out: &mut String, f: &ForwardAuthSettings) {
    let listen = match &f.listen {
        ForwardAuthListen::Tcp(addr) => addr.to_string(),
        ForwardAuthListen::Unix(path) => format!("unix:{}", path.display()),
    };
    let transport = if f.tls.is_some() {
        "mutual TLS"
    } else {
        "plain HTTP"
    };
    writeln!(out, "Forward-auth: {listen} ({transport})").ok();
    for p in &f.proxies {
        let from = if p.from.is_empty() {
            "any address".to_string()
        } else {
            p.from
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = p
            .certificate_name
            .as_ref()
            .map(|n| format!(", certificate {n}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  {} ({}): from {from}{name}; certificate in {}",
            p.name,
            p.kind.as_str(),
            p.certificate_header
        )
        .ok();
    }
}

/// The store, without the password (only whether one is set).
fn store(out: &mut String, store: &StoreSettings) {
    let StoreSettings::Redis(r) = store else {
        writeln!(
            out,
            "Store: memory (this process only: postures are lost on restart and not shared \
             with other replicas)"
        )
        .ok();
        return;
    };
    let tls = match (r.tls, &r.client_pem) {
        (false, _) => "no TLS",
        (true, None) => "TLS with the configured CA",
        (true, Some(_)) => "TLS with the configured CA and a client certificate",
    };
    let auth = match (&r.username, &r.password) {
        (Some(u), Some(_)) => format!("user {u} with a password from a file"),
        (None, Some(_)) => "a password from a file".to_string(),
        (Some(u), None) => format!("user {u} without a password"),
        (None, None) => "no password".to_string(),
    };
    writeln!(
        out,
        "Store: redis {} ({tls}, {auth}), key prefix {:?}, connect timeout {}, command timeout {}, \
         {} connection(s)",
        r.url,
        r.key_prefix,
        human(r.connect_timeout),
        human(r.command_timeout),
        r.pool_size
    )
    .ok();
    let failure = match r.on_store_failure {
        StoreFailure::Deny => "deny (attestations refused with 503 until Redis is back)",
        StoreFailure::Local => "local (attestations kept by this gate only until Redis is back)",
    };
    let why = if r.on_store_failure_explicit {
        "as configured"
    } else if r.on_store_failure == StoreFailure::Deny {
        "default: a segment is high or critical"
    } else {
        "default: no segment is high or critical"
    };
    writeln!(
        out,
        "  near cache {} postures; a new posture reaches every replica within {}; \
         on store failure: {failure} ({why})",
        r.near_cache_capacity,
        human(r.propagation)
    )
    .ok();
}

fn sensitivity(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Low => "low",
        Sensitivity::Medium => "medium",
        Sensitivity::High => "high",
        Sensitivity::Critical => "critical",
    }
}

fn segments(out: &mut String, s: &Snapshot) {
    writeln!(out, "\nSegments ({}):", s.segments.len()).ok();
    for seg in &s.segments {
        let policy = s.policies.get(seg.policy).map_or("?", |p| p.name.as_str());
        let vlan = seg
            .vlan
            .map_or("no VLAN".to_string(), |v| format!("VLAN {v}"));
        writeln!(
            out,
            "  {:<16} {:<8} policy {:<16} {vlan}",
            seg.name,
            sensitivity(seg.sensitivity),
            policy
        )
        .ok();
    }
}

/// Scheme, host, port and path only: userinfo may hold a password, and a
/// query string may hold a token.
fn redacted_upstream(route: &Route) -> String {
    let uri = &route.upstream;
    let scheme = uri.scheme_str().unwrap_or("?");
    let host = uri.host().unwrap_or("?");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

fn routes(out: &mut String, s: &Snapshot) {
    writeln!(out, "\nRoutes ({}):", s.routes.len()).ok();
    for r in &s.routes {
        let segment = s.segments.get(r.segment).map_or("?", |x| x.name.as_str());
        let ca = if r.upstream_ca.is_some() {
            ", own CA"
        } else {
            ""
        };
        let percent = if r.allow_encoded_percent {
            ", allows %25xx"
        } else {
            ""
        };
        writeln!(
            out,
            "  {}{} -> {segment} (upstream {}{ca}{percent})",
            r.host,
            r.path_prefix,
            redacted_upstream(r)
        )
        .ok();
    }
}

fn policies(out: &mut String, s: &Snapshot) {
    writeln!(out, "\nPolicies ({}):", s.policies.len()).ok();
    for p in &s.policies {
        writeln!(out, "  {}: {}", p.name, policy_line(s, p)).ok();
        antivirus_warning(out, s, p);
    }
}

fn policy_line(s: &Snapshot, p: &Policy) -> String {
    let mut parts = Vec::new();
    let rules: Vec<String> = p
        .rules
        .iter()
        .map(|r| {
            let id = s
                .catalogue
                .entries()
                .get(r.entry)
                .map_or("?", |e| e.id.as_str());
            let action = match r.action {
                Decision::Deny => "deny",
                Decision::Warn => "warn",
                Decision::Allow => "allow",
            };
            let staged = r
                .deny_from
                .map(|d| format!(" until {}, deny from {d}", d.previous_day().unwrap_or(d)))
                .unwrap_or_default();
            match &r.categories {
                None => format!("{action} {id}{staged}"),
                Some(cs) => {
                    let names: Vec<&str> = cs.iter().map(|c| category_name(*c)).collect();
                    format!("{action} {id} [{}]{staged}", names.join(", "))
                }
            }
        })
        .collect();
    parts.push(if rules.is_empty() {
        "no rules".to_string()
    } else {
        rules.join("; ")
    });
    if !p.min_os_version.is_empty() {
        let os: Vec<String> = p
            .min_os_version
            .iter()
            .map(|(f, v)| format!("{} >= {v}", f.as_str()))
            .collect();
        parts.push(format!("min OS {}", os.join(", ")));
    }
    parts.push(if p.require_antivirus.is_empty() {
        "antivirus not required".to_string()
    } else if p.require_antivirus.len() == OsFamily::ALL.len() {
        "antivirus required".to_string()
    } else {
        let families: Vec<&str> = p.require_antivirus.iter().map(|f| f.as_str()).collect();
        format!("antivirus required on {}", families.join(", "))
    });
    parts.join("; ")
}

/// A WARNING for a policy that requires an antivirus on a family whose
/// devices cannot report one: they are always denied where it applies.
fn antivirus_warning(out: &mut String, s: &Snapshot, p: &Policy) {
    let unreportable: Vec<&str> = NO_SECURITY_PRODUCTS
        .iter()
        .filter(|f| p.require_antivirus.contains(f))
        .map(|f| f.as_str())
        .collect();
    if unreportable.is_empty() {
        return;
    }
    let segments: Vec<&str> = s
        .segments
        .iter()
        .filter(|seg| {
            s.policies
                .get(seg.policy)
                .is_some_and(|x| std::ptr::eq(x, p))
        })
        .map(|seg| seg.name.as_str())
        .collect();
    writeln!(
        out,
        "WARNING: policy {} requires an antivirus on {}, but posture-agent reports no security \
         products there: those devices are always denied (segments: {}); list the families \
         that can meet it, like require_antivirus = [\"windows\", \"macos\", \"linux\"]",
        p.name,
        unreportable.join(", "),
        list_or_none(&segments)
    )
    .ok();
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn category_name(c: Category) -> &'static str {
    match c {
        Category::Antivirus => "antivirus",
        Category::ManagementAgent => "management_agent",
        Category::Vpn => "vpn",
        Category::PasswordManager => "password_manager",
        Category::ParentalControl => "parental_control",
        Category::Unclassified => "unclassified",
    }
}

fn exemptions(out: &mut String, s: &Snapshot, today: time::Date) {
    let expired = s.exemptions.iter().filter(|e| e.expires < today).count();
    let horizon = today.saturating_add(time::Duration::days(EXPIRY_WARNING_DAYS));
    let soon: Vec<&Exemption> = s
        .exemptions
        .iter()
        .filter(|e| e.expires >= today && e.expires <= horizon)
        .collect();
    writeln!(
        out,
        "\nExemptions: {} in total, {expired} expired, {} expiring within {EXPIRY_WARNING_DAYS} days (by {horizon}):",
        s.exemptions.len(),
        soon.len()
    )
    .ok();
    for e in soon {
        let device = match &e.device {
            DeviceSelector::Fingerprint(bytes) => format!("sha256 {}", hex::encode(bytes)),
            DeviceSelector::Subject { written, .. } => format!("subject {written:?}"),
        };
        let segments = match &e.segments {
            None => "all segments".to_string(),
            Some(ix) => ix
                .iter()
                .map(|i| s.segments.get(*i).map_or("?", |x| x.name.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        writeln!(
            out,
            "  {} expires {}: {device}, {segments}, reference {}",
            e.catalogue_id, e.expires, e.reference
        )
        .ok();
    }
}
