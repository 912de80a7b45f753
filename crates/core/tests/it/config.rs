//! Loading configuration files: the example config, a compiled snapshot,
//! defaults, and one test per validation error asserting file, line, column
//! and message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use posture_core::attestation::claims::OsFamily;
use posture_core::catalogue::{Catalogue, Category};
use posture_core::config::model::Sensitivity;
use posture_core::config::snapshot::CrlFreshness;
use posture_core::config::snapshot::DeviceSelector;
use posture_core::config::{
    load, load_str, summary, summary_at, ConfigError, ConfigErrors, Snapshot,
};
use posture_core::verdict::Decision;
use time::macros::{date, datetime};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/config");

/// A temporary directory with the fixture PKI in `pki/` and a config file
/// `gate.toml` next to it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        std::fs::create_dir(&pki).unwrap();
        for entry in std::fs::read_dir(Path::new(FIXTURES).join("pki")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), pki.join(entry.file_name())).unwrap();
        }
        Fixture { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("gate.toml")
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn load(&self, text: &str) -> Result<Snapshot, ConfigErrors> {
        std::fs::write(self.path(), text).unwrap();
        load(&self.path())
    }

    fn errors(&self, text: &str) -> Vec<ConfigError> {
        match self.load(text) {
            Ok(_) => panic!("config loaded but errors were expected:\n{text}"),
            Err(ConfigErrors(errors)) => errors,
        }
    }

    /// The only error of `text`, asserted to be in the config file at the
    /// first occurrence of `needle` and to contain `message`.
    fn single_error(&self, text: &str, needle: &str, message: &str) -> ConfigError {
        let errors = self.errors(text);
        assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
        let e = errors.into_iter().next().unwrap();
        assert_eq!(e.file, self.path());
        assert_eq!((e.line, e.column), position(text, needle), "{e}");
        assert!(
            e.message.contains(message),
            "{e}\nshould contain: {message}"
        );
        e
    }
}

/// 1-based line and character column of the first occurrence of `needle`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, column)
}

const POLICY_AND_SEGMENT: &str = r#"
[[policy]]
name = "p"
[[policy.rule]]
catalogue = "kaspersky"
action = "deny"

[[segment]]
name = "s"
sensitivity = "low"
policy = "p"
"#;

const SERVER: &str = r#"
[server]
listen = "127.0.0.1:8443"
cert = "pki/server.pem"
key = "pki/server.key"
client_ca = "pki/ca.pem"

[attestation]
trust_anchors = ["pki/ca.pem"]
nonce_secret_file = "pki/nonce.key"
"#;

fn with_base(extra: &str) -> String {
    format!("{SERVER}{POLICY_AND_SEGMENT}{extra}")
}

// ---------------------------------------------------------------------------
// The example config and the compiled snapshot

fn load_example() -> (Fixture, Snapshot) {
    let fx = Fixture::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/gate.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let snapshot = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    (fx, snapshot)
}

#[test]
fn the_example_config_loads() {
    let (fx, s) = load_example();
    let names: Vec<&str> = s.segments.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        ["gasten", "kantoor", "projecten", "financien", "beheer"]
    );
    let beheer = &s.segments[s.segment_index("beheer").unwrap()];
    assert_eq!(beheer.sensitivity, Sensitivity::Critical);
    assert_eq!(s.policies[beheer.policy].name, "streng");
    assert_eq!(
        s.policies[beheer.policy].require_antivirus,
        [OsFamily::Windows, OsFamily::Macos]
    );
    assert_eq!(beheer.vlan, Some(999));
    let server = s.server.as_ref().unwrap();
    assert_eq!(server.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(server.cert, fx.dir.path().join("pki/server.pem"));
    // The device CA, not the root that also issued the server certificate.
    assert_eq!(server.client_ca, fx.dir.path().join("pki/device-ca.pem"));
    assert_eq!(s.attestation.trust_anchors.len(), 1);
    assert!(s.attestation.nonce_secret.as_ref().unwrap().len() >= 32);
    let fin = s
        .routes
        .iter()
        .find(|r| r.path_prefix == "/financien")
        .unwrap();
    assert_eq!(fin.host, "portaal.rijk.example");
    assert_eq!(s.segments[fin.segment].name, "financien");
    assert_eq!(fin.upstream_ca.as_ref().map(Vec::len), Some(1));
    assert_eq!(s.exemptions.len(), 2);
    assert_eq!(s.remediation.service_desk.name, "Servicedesk ICT");
    assert_eq!(
        s.remediation
            .organization("Leverancier Voorbeeld BV")
            .map(|o| o.name.as_str()),
        Some("Leverancier Voorbeeld BV")
    );
}

#[test]
fn the_example_summary_shows_segments_routes_policies_and_expiring_exemptions() {
    let (_fx, s) = load_example();
    let text = summary(&s, date!(2026 - 11 - 23));
    for expected in [
        "Segments (5):",
        "financien        high     policy streng           VLAN 210",
        "portaal.rijk.example/financien -> financien (upstream https://fin-app.intern.rijk.example:8443/, own CA)",
        "intranet.rijk.example/ -> kantoor (upstream http://10.10.1.20:8080/)",
        "streng: deny kaspersky; min OS macos >= 15, windows >= 10.0.26100; antivirus required on windows, macos",
        "externen: deny kaspersky [antivirus, management_agent, vpn]; warn kaspersky [password_manager, parental_control] until 2027-06-30, deny from 2027-07-01; antivirus required on windows, macos",
        "gasten: warn kaspersky; antivirus not required",
        "Exemptions: 2 in total, 0 expired, 1 expiring within 30 days (by 2026-12-23):",
        "kaspersky expires 2026-12-15: sha256 3fa91c075e88d241906b0cae715f24d8ee139a6047b2c50f813d6a921be407cc, kantoor, reference BIO risicoacceptatie RA-2026-021",
    ] {
        assert!(text.contains(expected), "summary lacks {expected:?}:\n{text}");
    }
    assert!(
        !text.contains("expires 2027-03-31"),
        "later exemption listed:\n{text}"
    );
    // Every subject exemption, expiring or not, with the name it matches.
    assert!(
        text.contains(
            "kaspersky until 2027-03-31: subject \"CN=lt-0427,O=Leverancier Voorbeeld BV\" \
             matches a certificate whose subject is exactly CN=lt-0427,O=leverancier voorbeeld bv"
        ),
        "{text}"
    );
    // The staged rule turns in July 2027: not due yet, shown on its policy only.
    assert!(!text.contains("Staged rules"), "{text}");
    // The fixture's server certificate names gate.test only, so the
    // example's route hosts are (rightly) warned about; with a certificate
    // from `pki init --host '*.rijk.example'` that line is not there. (The
    // summary is made as at a fixed day that may precede the fixture
    // certificate's notBefore: then an ERROR line says so, rightly too.)
    assert!(
        text.contains("WARNING: the server certificate")
            && text.contains("does not name intranet.rijk.example"),
        "{text}"
    );
    let screen = text
        .lines()
        .filter(|l| {
            !l.starts_with("WARNING: the server certificate")
                && !l.starts_with("ERROR: the server certificate")
        })
        .count();
    assert!(screen <= 30, "more than a screen:\n{text}");
}

#[test]
fn summary_counts_expired_exemptions_and_lists_only_the_next_30_days() {
    let (_fx, s) = load_example();
    // 2027-03-01: the December exemption has expired, the March one is due.
    let text = summary(&s, date!(2027 - 03 - 01));
    assert!(text.contains("2 in total, 1 expired, 1 expiring"), "{text}");
    assert!(
        text.contains("subject \"CN=lt-0427,O=Leverancier Voorbeeld BV\", projecten"),
        "{text}"
    );
    assert!(!text.contains("2026-12-15"), "{text}");
    // On the last day it still applies, so it is listed; a day later it is expired.
    let text = summary(&s, date!(2027 - 03 - 31));
    assert!(text.contains("1 expired, 1 expiring"), "{text}");
    let text = summary(&s, date!(2027 - 04 - 01));
    assert!(text.contains("2 expired, 0 expiring"), "{text}");
}

/// The fixture CRLs were issued 2026-11-23T09:28:55Z with nextUpdate
/// 2126-10-30T09:28:55Z: a validity of a century, so the margin is the
/// 24-hour cap.
#[test]
fn each_crl_is_kept_with_its_next_update_and_check_config_warns_within_a_day_of_it() {
    let fx = Fixture::new();
    let s = fx
        .load(&with_base("").replace(
            "client_ca = \"pki/ca.pem\"",
            "client_ca = \"pki/ca.pem\"\ncrls = [\"pki/crl.pem\", \"pki/crl.der\"]",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let server = s.server.as_ref().unwrap();
    let dir = fx.dir.path();
    let files: Vec<_> = server.crl_validity.iter().map(|c| c.file.clone()).collect();
    assert_eq!(files, [dir.join("pki/crl.pem"), dir.join("pki/crl.der")]);
    let next = datetime!(2126-10-30 09:28:55 UTC).unix_timestamp();
    for crl in &server.crl_validity {
        assert_eq!(crl.next_update, Some(next));
        assert_eq!(
            crl.this_update,
            datetime!(2026-11-23 09:28:55 UTC).unix_timestamp()
        );
        assert!(
            crl.issuer.contains("CN=posture-gate test CA"),
            "{}",
            crl.issuer
        );
        assert_eq!(crl.warning_margin(), Some(24 * 3600));
        assert_eq!(crl.freshness(next - 24 * 3600 - 1), CrlFreshness::Fresh);
        assert_eq!(
            crl.freshness(next - 60),
            CrlFreshness::Due { remaining: 60 }
        );
        assert_eq!(crl.freshness(next), CrlFreshness::Past { since: 0 });
    }

    let pem = dir.join("pki/crl.pem").display().to_string();
    let text = summary_at(&s, datetime!(2026-11-30 12:00 UTC));
    assert!(
        text.contains(&format!("CRL {pem}: ")) && text.contains("next update 2126-10-30T09:28:55Z"),
        "{text}"
    );
    assert!(!text.contains("WARNING"), "{text}");

    let text = summary_at(&s, datetime!(2126-10-29 12:00 UTC));
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("WARNING: CRL"))
        .collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(
        warnings[0].contains(&pem) && warnings[0].contains("reaches its nextUpdate in 21h 28m 55s"),
        "{text}"
    );

    let text = summary_at(&s, datetime!(2126-10-31 09:28:55 UTC));
    assert!(
        text.contains(&format!(
            "WARNING: CRL {pem} passed its nextUpdate 1day ago"
        )),
        "{text}"
    );
    assert!(text.contains("revocation_unknown"), "{text}");
}

#[test]
fn summary_never_prints_upstream_credentials() {
    let fx = Fixture::new();
    let s = fx
        .load(&with_base(
            "[[route]]\nhost = \"a.example\"\nupstream = \"http://svc:geheim@10.0.0.1:8080/app?token=xyz\"\nsegment = \"s\"\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = summary(&s, date!(2026 - 01 - 01));
    assert!(
        text.contains("a.example/ -> s (upstream http://10.0.0.1:8080/app)"),
        "{text}"
    );
    assert!(!text.contains("geheim") && !text.contains("xyz"), "{text}");
}

#[test]
fn a_good_config_compiles_into_the_expected_snapshot() {
    let fx = Fixture::new();
    let text = r#"
[server]
listen = "[::1]:9443"
cert = "pki/server.pem"
key = "pki/server.key"
client_ca = "pki/ca.pem"
crls = ["pki/crl.pem", "pki/crl.der"]
upstream_timeout = "5s"

[attestation]
trust_anchors = ["pki/ca.pem", "pki/ca.pem"]
max_age = "10m"
clock_skew = "30s"
nonce_secret_file = "pki/nonce.key"
nonce_ttl = "2m"
posture_cache_capacity = 500

[[policy]]
name = "open"

[[policy]]
name = "dicht"
min_os_version = { windows = "10.0.19045", android = "14" }
[[policy.rule]]
catalogue = "kaspersky"
action = "warn"
categories = ["vpn", "unclassified"]

[[segment]]
name = "a"
sensitivity = "medium"
policy = "dicht"

[[segment]]
name = "b"
sensitivity = "low"
policy = "open"
vlan = 4094

[[route]]
host = "App.Example"
path_prefix = "/x/"
upstream = "https://app.internal:8443/base"
upstream_ca = "pki/ca.pem"
segment = "b"

[[exemption]]
device_fingerprint = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99"
catalogue = "kaspersky"
expires = 2027-01-31
reference = "RA-1"
segments = ["b", "a"]
"#;
    let s = fx.load(text).unwrap_or_else(|e| panic!("{e}"));
    let dir = fx.dir.path();
    assert_eq!(s.source.as_deref(), Some(fx.path().as_path()));
    let server = s.server.as_ref().unwrap();
    assert_eq!(server.listen.to_string(), "[::1]:9443");
    assert_eq!(server.key, dir.join("pki/server.key"));
    assert_eq!(server.client_ca, dir.join("pki/ca.pem"));
    assert_eq!(
        server.crls,
        [dir.join("pki/crl.pem"), dir.join("pki/crl.der")]
    );
    assert!(server.crls.iter().all(|p| p.is_absolute()));
    assert_eq!(server.upstream_timeout, Duration::from_secs(5));
    assert_eq!(server.idle_timeout, Duration::from_secs(60));

    let a = &s.attestation;
    assert_eq!(a.trust_anchors.len(), 2);
    assert_eq!(a.verifier.max_age, Duration::from_secs(600));
    assert_eq!(a.verifier.clock_skew, Duration::from_secs(30));
    assert!(a.verifier.require_nonce);
    assert_eq!(a.nonce_ttl, Duration::from_secs(120));
    assert_eq!(a.posture_cache_capacity, 500);
    let secret = std::fs::read(dir.join("pki/nonce.key")).unwrap();
    assert_eq!(a.nonce_secret.as_deref(), Some(&secret[..secret.len() - 1]));

    assert_eq!(s.policies[0].name, "open");
    assert!(s.policies[0].rules.is_empty());
    let dicht = &s.policies[1];
    let min_os: Vec<(OsFamily, &str)> = dicht
        .min_os_version
        .iter()
        .map(|(f, v)| (*f, v.as_str()))
        .collect();
    assert_eq!(
        min_os,
        [(OsFamily::Android, "14"), (OsFamily::Windows, "10.0.19045")]
    );
    let rule = &dicht.rules[0];
    assert_eq!(s.catalogue.entries()[rule.entry].id, "kaspersky");
    assert_eq!(rule.action, Decision::Warn);
    assert_eq!(
        rule.categories,
        Some(vec![Category::Vpn, Category::Unclassified])
    );

    assert_eq!(s.segments[0].policy, 1);
    assert_eq!(s.segments[1].policy, 0);
    assert_eq!(s.segments[1].vlan, Some(4094));
    assert_eq!(s.segment_index("b"), Some(1));
    assert_eq!(s.segment_index("c"), None);

    let route = &s.routes[0];
    assert_eq!(route.host, "app.example");
    assert_eq!(route.path_prefix, "/x");
    assert_eq!(route.upstream.to_string(), "https://app.internal:8443/base");
    assert_eq!(route.upstream_ca.as_ref().map(Vec::len), Some(1));
    assert_eq!(route.segment, 1);

    let e = &s.exemptions[0];
    assert_eq!(
        e.device,
        DeviceSelector::Fingerprint(
            hex::decode("aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899")
                .unwrap()
                .try_into()
                .unwrap()
        )
    );
    assert_eq!(e.catalogue_id, "kaspersky");
    assert_eq!(e.expires, date!(2027 - 01 - 31));
    assert_eq!(e.reference, "RA-1");
    assert_eq!(e.segments, Some(vec![1, 0]));
}

#[test]
fn load_str_resolves_paths_against_the_given_file() {
    let fx = Fixture::new();
    let text = with_base("");
    let s = load_str(&text, &fx.dir.path().join("does-not-exist.toml")).unwrap();
    assert_eq!(s.server.unwrap().cert, fx.dir.path().join("pki/server.pem"));
}

#[test]
fn defaults_apply_when_settings_are_left_out() {
    let fx = Fixture::new();
    let s = fx
        .load(POLICY_AND_SEGMENT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(s.server.is_none());
    let a = &s.attestation;
    assert_eq!(a.verifier.max_age, Duration::from_secs(15 * 60));
    assert_eq!(a.verifier.clock_skew, Duration::from_secs(60));
    assert!(a.verifier.require_nonce);
    assert_eq!(a.nonce_ttl, Duration::from_secs(5 * 60));
    assert_eq!(a.posture_cache_capacity, 100_000);
    assert!(a.trust_anchors.is_empty() && a.nonce_secret.is_none());

    let s = fx.load(&with_base("")).unwrap_or_else(|e| panic!("{e}"));
    let server = s.server.unwrap();
    assert_eq!(server.max_connections, 10_000);
    assert_eq!(server.max_header_bytes, 64 * 1024);
    assert_eq!(server.header_read_timeout, Duration::from_secs(10));
    assert!(server.crls.is_empty());
}

#[test]
fn builtin_default_denies_every_builtin_entry_on_one_high_segment() {
    let anchors = vec![rustls_pki_types::CertificateDer::from(vec![0x30, 0x00])];
    let s = Snapshot::builtin_default(anchors.clone()).unwrap();
    let builtin = Catalogue::builtin().unwrap();
    assert!(s.source.is_none() && s.server.is_none() && s.routes.is_empty());
    assert_eq!(s.segments.len(), 1);
    assert_eq!(s.segments[0].name, "default");
    assert_eq!(s.segments[0].sensitivity, Sensitivity::High);
    assert_eq!(s.segment_index("default"), Some(0));
    let policy = &s.policies[s.segments[0].policy];
    let mut denied: Vec<&str> = policy
        .rules
        .iter()
        .filter(|r| r.action == Decision::Deny && r.categories.is_none())
        .map(|r| s.catalogue.entries()[r.entry].id.as_str())
        .collect();
    denied.sort_unstable();
    let mut all: Vec<&str> = builtin.entries().iter().map(|e| e.id.as_str()).collect();
    all.sort_unstable();
    assert_eq!(denied, all);
    assert!(all.contains(&"kaspersky"));
    assert_eq!(s.attestation.trust_anchors, anchors);
    assert_eq!(s.attestation.verifier.max_age, Duration::from_secs(900));
}

// ---------------------------------------------------------------------------
// Errors from toml and serde

#[test]
fn an_unreadable_config_file_is_named() {
    let missing = Path::new("/nonexistent/posture-gate/gate.toml");
    let ConfigErrors(errors) = load(missing).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, missing);
    assert_eq!((errors[0].line, errors[0].column), (0, 0));
    assert!(
        errors[0].message.contains("cannot read config file"),
        "{}",
        errors[0]
    );
}

#[test]
fn an_unknown_key_is_an_error_at_the_key() {
    let fx = Fixture::new();
    let text = format!("{POLICY_AND_SEGMENT}vlna = 12\n");
    let e = fx.single_error(&text, "vlna", "unknown field `vlna`");
    assert_eq!(
        e.to_string(),
        format!("{}:{}:1: {}", fx.path().display(), e.line, e.message)
    );
}

#[test]
fn a_value_of_the_wrong_type_is_an_error_at_the_value() {
    let fx = Fixture::new();
    let text = "[attestation]\nrequire_nonce = \"yes\"\n";
    fx.single_error(text, "\"yes\"", "invalid type");
}

#[test]
fn a_bad_duration_is_an_error_at_the_value() {
    let fx = Fixture::new();
    let text = "[attestation]\nmax_age = \"fifteen minutes\"\n";
    fx.single_error(text, "\"fifteen", "bad duration");
}

#[test]
fn a_missing_expires_is_explained() {
    let fx = Fixture::new();
    let text = format!(
        "{POLICY_AND_SEGMENT}\n[[exemption]]\ndevice_subject = \"CN=x\"\ncatalogue = \"kaspersky\"\nreference = \"RA-1\"\n"
    );
    fx.single_error(
        &text,
        "[[exemption]]",
        "missing field `expires`: every exemption needs the last day it applies",
    );
}

#[test]
fn a_quoted_expires_date_is_explained() {
    let fx = Fixture::new();
    let text = format!(
        "{POLICY_AND_SEGMENT}\n[[exemption]]\ndevice_subject = \"CN=x\"\ncatalogue = \"kaspersky\"\nexpires = \"2027-01-01\"\nreference = \"RA-1\"\n"
    );
    fx.single_error(&text, "\"2027-01-01\"", "write a date without quotes");
}

// ---------------------------------------------------------------------------
// Names and references

#[test]
fn duplicate_segment_and_policy_names_are_errors_at_the_second() {
    let fx = Fixture::new();
    let text = format!(
        "{POLICY_AND_SEGMENT}\n[[policy]]\nname = \"p\" # again\n\n[[segment]]\nname = \"s\" # again\nsensitivity = \"high\"\npolicy = \"p\"\n"
    );
    let errors = fx.errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(
        (errors[0].line, errors[0].column),
        position(&text, "\"p\" # again")
    );
    assert_eq!(errors[0].message, "duplicate policy name \"p\"");
    assert_eq!(
        (errors[1].line, errors[1].column),
        position(&text, "\"s\" # again")
    );
    assert_eq!(errors[1].message, "duplicate segment name \"s\"");
}

#[test]
fn empty_names_are_errors() {
    let fx = Fixture::new();
    let text = "[[policy]]\nname = \"\"\n\n[[segment]]\nname = \"\" # seg\nsensitivity = \"low\"\npolicy = \"\"\n";
    let errors = fx.errors(text);
    let got: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.message.as_str()))
        .collect();
    // The segment's policy reference "" is unknown too, because "" is never defined.
    assert_eq!(
        got,
        [
            (2, 8, "policy name must not be empty"),
            (5, 8, "segment name must not be empty"),
            (7, 10, "unknown policy \"\" (defined: none)"),
        ]
    );
}

#[test]
fn a_duplicate_route_is_an_error_even_with_other_case_or_trailing_slash() {
    let fx = Fixture::new();
    let text = with_base(
        "[[route]]\nhost = \"a.example\"\npath_prefix = \"/fin\"\nupstream = \"http://10.0.0.1\"\nsegment = \"s\"\n\
         [[route]]\nhost = \"A.Example\"\npath_prefix = \"/fin/\"\nupstream = \"http://10.0.0.2\"\nsegment = \"s\"\n",
    );
    fx.single_error(
        &text,
        "\"A.Example\"",
        "duplicate route: host \"a.example\" with path_prefix \"/fin\"",
    );
}

#[test]
fn route_prefixes_that_differ_only_in_case_are_duplicates() {
    let fx = Fixture::new();
    let text = with_base(
        "[[route]]\nhost = \"a.example\"\npath_prefix = \"/Fin\"\nupstream = \"http://10.0.0.1\"\nsegment = \"s\"\n\
         [[route]]\nhost = \"b.example\"\npath_prefix = \"/fin\"\nupstream = \"http://10.0.0.1\"\nsegment = \"s\"\n\
         [[route]]\nhost = \"a.example\"\npath_prefix = \"/fin\"\nupstream = \"http://10.0.0.2\"\nsegment = \"s\"\n",
    );
    let errors = fx.errors(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .message
            .contains("duplicate route: host \"a.example\" with path_prefix \"/fin\""),
        "{}",
        errors[0]
    );
    assert_eq!(errors[0].line, text.lines().count() - 3);
}

#[test]
fn a_route_to_an_unknown_segment_is_an_error() {
    let fx = Fixture::new();
    let text = with_base("[[route]]\nhost = \"a.example\"\nupstream = \"http://10.0.0.1\"\nsegment = \"financien\"\n");
    fx.single_error(
        &text,
        "\"financien\"",
        "unknown segment \"financien\" (defined: s)",
    );
}

#[test]
fn a_segment_with_an_unknown_policy_is_an_error() {
    let fx = Fixture::new();
    let text = format!("{POLICY_AND_SEGMENT}\n[[segment]]\nname = \"t\"\nsensitivity = \"low\"\npolicy = \"streng\"\n");
    fx.single_error(
        &text,
        "\"streng\"",
        "unknown policy \"streng\" (defined: p)",
    );
}

#[test]
fn a_rule_with_an_unknown_catalogue_id_is_an_error() {
    let fx = Fixture::new();
    let text =
        "[[policy]]\nname = \"p\"\n[[policy.rule]]\ncatalogue = \"kasperski\"\naction = \"deny\"\n";
    fx.single_error(text, "\"kasperski\"", "unknown catalogue id \"kasperski\"");
}

#[test]
fn an_unknown_category_is_an_error() {
    let fx = Fixture::new();
    let text = "[[policy]]\nname = \"p\"\n[[policy.rule]]\ncatalogue = \"kaspersky\"\naction = \"deny\"\ncategories = [\"vpn\", \"firewall\"]\n";
    fx.single_error(text, "\"firewall\"", "unknown category \"firewall\"");
}

fn exemption(lines: &str) -> String {
    format!("{POLICY_AND_SEGMENT}\n[[exemption]]\n{lines}\nreference = \"RA-1\"\n")
}

#[test]
fn an_exemption_for_an_unknown_catalogue_id_or_segment_is_an_error() {
    let fx = Fixture::new();
    let text = exemption("device_subject = \"CN=x\"\ncatalogue = \"eset\"\nexpires = 2027-01-01\nsegments = [\"s\", \"beheer\"]");
    let errors = fx.errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(
        (errors[0].line, errors[0].column),
        position(&text, "\"eset\"")
    );
    assert!(errors[0]
        .message
        .starts_with("unknown catalogue id \"eset\""));
    assert_eq!(
        (errors[1].line, errors[1].column),
        position(&text, "\"beheer\"")
    );
    assert_eq!(errors[1].message, "unknown segment \"beheer\" (defined: s)");
}

#[test]
fn an_exemption_needs_exactly_one_device_selector() {
    let fx = Fixture::new();
    let text = exemption("catalogue = \"kaspersky\"\nexpires = 2027-01-01");
    fx.single_error(
        &text,
        "\"kaspersky\"\nexpires",
        "an exemption needs a device: give device_fingerprint or device_subject",
    );
    let text = exemption(&format!(
        "device_fingerprint = \"{}\"\ndevice_subject = \"CN=x\"\ncatalogue = \"kaspersky\"\nexpires = 2027-01-01",
        "ab".repeat(32)
    ));
    fx.single_error(
        &text,
        "\"CN=x\"",
        "give device_fingerprint or device_subject, not both",
    );
}

#[test]
fn a_fingerprint_that_is_not_64_hex_digits_is_an_error() {
    let fx = Fixture::new();
    for bad in ["ab:cd".to_string(), "g".repeat(64), "ab".repeat(33)] {
        let text = exemption(&format!(
            "device_fingerprint = \"{bad}\"\ncatalogue = \"kaspersky\"\nexpires = 2027-01-01"
        ));
        fx.single_error(
            &text,
            &format!("\"{bad}\""),
            "is not a SHA-256 fingerprint (64 hex digits, colons allowed)",
        );
    }
}

#[test]
fn expires_must_be_a_date_not_a_datetime_or_time() {
    let fx = Fixture::new();
    for bad in [
        "2027-01-01T12:00:00",
        "2027-01-01T12:00:00+01:00",
        "12:00:00",
    ] {
        let text = exemption(&format!(
            "device_subject = \"CN=x\"\ncatalogue = \"kaspersky\"\nexpires = {bad}"
        ));
        fx.single_error(
            &text,
            bad,
            "is not a date; write the last day it applies, like expires = 2026-12-31",
        );
    }
}

// ---------------------------------------------------------------------------
// Files the config refers to

#[test]
fn missing_certificate_files_are_errors_at_the_path_naming_the_file() {
    let fx = Fixture::new();
    let text = SERVER.replace("pki/server.pem", "pki/nope.pem");
    let text = format!("{text}{POLICY_AND_SEGMENT}");
    let e = fx.single_error(&text, "\"pki/nope.pem\"", "cannot read certificate file ");
    assert!(
        e.message
            .contains(&fx.dir.path().join("pki/nope.pem").display().to_string()),
        "{e}"
    );
}

#[test]
fn empty_or_wrong_pem_files_are_errors() {
    let fx = Fixture::new();
    let pki = fx.dir.path().join("pki");
    fx.write("empty.pem", b"");
    fx.write("text.pem", b"hello\n");
    fx.write(
        "cert-only.pem",
        &std::fs::read(pki.join("server.pem")).unwrap(),
    );
    fx.write(
        "key-only.pem",
        &std::fs::read(pki.join("server.key")).unwrap(),
    );
    let cases = [
        (
            "\"pki/server.pem\"",
            "\"empty.pem\"",
            "certificate file",
            "is empty",
        ),
        (
            "\"pki/server.key\"",
            "\"cert-only.pem\"",
            "private key file",
            "contains no PEM PRIVATE KEY",
        ),
        (
            "client_ca = \"pki/ca.pem\"",
            "client_ca = \"text.pem\"",
            "client CA file",
            "contains no PEM CERTIFICATE",
        ),
        (
            "[\"pki/ca.pem\"]",
            "[\"key-only.pem\"]",
            "trust anchor file",
            "contains no PEM CERTIFICATE",
        ),
    ];
    for (from, to, what, problem) in cases {
        let text = format!("{}{POLICY_AND_SEGMENT}", SERVER.replacen(from, to, 1));
        let needle = &to[to.find('"').unwrap()..];
        let e = fx.single_error(&text, needle, what);
        assert!(e.message.contains(problem), "{e}");
    }
}

#[test]
fn crls_may_be_pem_or_der_but_must_be_crls() {
    let fx = Fixture::new();
    let ok = SERVER.replace(
        "client_ca = \"pki/ca.pem\"",
        "client_ca = \"pki/ca.pem\"\ncrls = [\"pki/crl.pem\", \"pki/crl.der\"]",
    );
    fx.load(&format!("{ok}{POLICY_AND_SEGMENT}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let bad = SERVER.replace(
        "client_ca = \"pki/ca.pem\"",
        "client_ca = \"pki/ca.pem\"\ncrls = [\"pki/crl.pem\", \"pki/ca.pem\"]",
    );
    let text = format!("{bad}{POLICY_AND_SEGMENT}");
    fx.single_error(&text, "\"pki/ca.pem\"]", "contains no PEM X509 CRL");
    fx.write("garbage.der", &[0x30, 0x03, 0x01, 0x02]);
    let bad = SERVER.replace(
        "client_ca = \"pki/ca.pem\"",
        "client_ca = \"pki/ca.pem\"\ncrls = [\"garbage.der\"]",
    );
    let text = format!("{bad}{POLICY_AND_SEGMENT}");
    fx.single_error(
        &text,
        "\"garbage.der\"",
        "is neither PEM nor a DER certificate revocation list",
    );
}

#[test]
fn a_missing_upstream_ca_is_an_error() {
    let fx = Fixture::new();
    let text = with_base("[[route]]\nhost = \"a.example\"\nupstream = \"https://10.0.0.1\"\nupstream_ca = \"pki/internal-ca.pem\"\nsegment = \"s\"\n");
    fx.single_error(
        &text,
        "\"pki/internal-ca.pem\"",
        "cannot read upstream CA file",
    );
}

#[test]
fn a_short_nonce_secret_is_an_error() {
    let fx = Fixture::new();
    fx.write("short.key", b"0123456789\n");
    let text = with_base("").replace("pki/nonce.key", "short.key");
    fx.single_error(
        &text,
        "\"short.key\"",
        "holds 10 bytes; at least 32 are needed",
    );
}

#[test]
fn requiring_nonces_with_a_server_needs_a_nonce_secret() {
    let fx = Fixture::new();
    // By default: the error points at the server's listen address.
    let text = with_base("").replace("nonce_secret_file = \"pki/nonce.key\"\n", "");
    fx.single_error(
        &text,
        "\"127.0.0.1:8443\"",
        "but [attestation] has no nonce_secret_file",
    );
    // Written out: at the setting.
    let text = text.replace("[attestation]\n", "[attestation]\nrequire_nonce = true\n");
    fx.single_error(&text, "true", "the gate needs it to issue nonces");
    // Without nonces, or without a server, no secret is needed.
    let text = text.replace("require_nonce = true", "require_nonce = false");
    fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let text = "[attestation]\nrequire_nonce = true\n";
    fx.load(text).unwrap_or_else(|e| panic!("{e}"));
}

/// A path that names a device (or a runaway file) is refused at its line
/// after a bounded read, instead of being read until memory runs out.
#[test]
fn a_file_that_never_ends_is_refused_at_its_line() {
    let fx = Fixture::new();
    let text = format!("[catalogue]\ninclude = [\"/dev/zero\"]\n{POLICY_AND_SEGMENT}");
    fx.single_error(
        &text,
        "\"/dev/zero\"",
        "catalogue file /dev/zero is larger than 64 MiB",
    );
    let ConfigErrors(errors) = load(Path::new("/dev/zero")).unwrap_err();
    assert!(
        errors[0].message.contains("larger than 64 MiB"),
        "{}",
        errors[0]
    );
}

#[test]
fn catalogue_includes_keep_their_own_file_and_line() {
    let fx = Fixture::new();
    let broken = fx.write("extra.toml", b"[[entry]\n");
    let text =
        format!("[catalogue]\ninclude = [\"extra.toml\", \"missing.toml\"]\n{POLICY_AND_SEGMENT}");
    let errors = fx.errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].file, broken);
    assert_eq!(errors[0].line, 1);
    assert_eq!(errors[1].file, fx.path());
    assert_eq!(
        (errors[1].line, errors[1].column),
        position(&text, "\"missing.toml\"")
    );
    assert!(
        errors[1].message.starts_with("cannot read catalogue file "),
        "{}",
        errors[1]
    );
}

// ---------------------------------------------------------------------------
// Values

#[test]
fn a_bad_listen_address_is_an_error() {
    let fx = Fixture::new();
    let text = with_base("").replace("127.0.0.1:8443", "gate.example:8443");
    fx.single_error(
        &text,
        "\"gate.example:8443\"",
        "is not an IP address and port",
    );
}

fn route(lines: &str) -> String {
    with_base(&format!("[[route]]\n{lines}\nsegment = \"s\"\n"))
}

#[test]
fn upstreams_must_be_http_or_https_urls() {
    let fx = Fixture::new();
    let text = route("host = \"a.example\"\nupstream = \"ftp://10.0.0.1\"");
    fx.single_error(
        &text,
        "\"ftp://",
        "has scheme \"ftp\"; use http:// or https://",
    );
    let text = route("host = \"a.example\"\nupstream = \"10.0.0.1:8080\"");
    fx.single_error(
        &text,
        "\"10.0.0.1:8080\"",
        "must start with http:// or https://",
    );
    let text = route("host = \"a.example\"\nupstream = \"http://bad host/\"");
    fx.single_error(&text, "\"http://bad host/\"", "is not a URL");
}

#[test]
fn upstream_ca_on_an_http_upstream_is_an_error() {
    let fx = Fixture::new();
    let text =
        route("host = \"a.example\"\nupstream = \"http://10.0.0.1\"\nupstream_ca = \"pki/ca.pem\"");
    fx.single_error(
        &text,
        "\"pki/ca.pem\"\nsegment",
        "upstream_ca is set but the upstream is http://",
    );
}

#[test]
fn a_path_prefix_must_start_with_a_slash() {
    let fx = Fixture::new();
    let text = route("host = \"a.example\"\npath_prefix = \"fin\"\nupstream = \"http://10.0.0.1\"");
    fx.single_error(
        &text,
        "\"fin\"",
        "path_prefix \"fin\" must start with \"/\"",
    );
}

#[test]
fn a_host_with_a_port_is_an_error_and_upper_case_is_folded() {
    let fx = Fixture::new();
    let text = route("host = \"a.example:443\"\nupstream = \"http://10.0.0.1\"");
    fx.single_error(&text, "\"a.example:443\"", "has a port");
    let text = route("host = \"Intranet.RIJK.example\"\nupstream = \"http://10.0.0.1\"");
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.routes[0].host, "intranet.rijk.example");
}

#[test]
fn a_vlan_outside_1_to_4094_is_an_error() {
    let fx = Fixture::new();
    for bad in ["0", "4095"] {
        let text = format!("{POLICY_AND_SEGMENT}vlan = {bad}\n");
        let errors = fx.errors(&text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let (line, column) = position(&text, &format!("vlan = {bad}"));
        assert_eq!((errors[0].line, errors[0].column), (line, column + 7));
        assert_eq!(errors[0].message, format!("vlan {bad} is outside 1..=4094"));
    }
}

#[test]
fn min_os_version_needs_os_families_and_dotted_numbers() {
    let fx = Fixture::new();
    let text = "[[policy]]\nname = \"p\"\nmin_os_version = { win = \"10\" }\n";
    fx.single_error(text, "\"10\"", "min_os_version key \"win\" is not an OS family (one of: windows, macos, linux, android, ios, chromeos, other)");
    let text = "[[policy]]\nname = \"p\"\nmin_os_version = { macos = \"Sonoma\" }\n";
    fx.single_error(
        text,
        "\"Sonoma\"",
        "minimum OS version \"Sonoma\" is not dotted numbers",
    );
}

#[test]
fn a_minimum_os_version_is_parsed_at_load_and_a_bad_one_is_an_error_at_its_line() {
    let fx = Fixture::new();
    for (bad, message) in [
        (
            "10.0.99999999999999999999",
            "has a part too large to compare",
        ),
        ("10..0", "is not dotted numbers"),
        ("", "is not dotted numbers"),
    ] {
        let text =
            format!("[[policy]]\nname = \"p\"\nmin_os_version = {{ windows = \"{bad}\" }}\n");
        let e = fx.single_error(&text, &format!("\"{bad}\""), message);
        assert!(
            e.to_string()
                .starts_with(&format!("{}:3:30: minimum OS version", fx.path().display())),
            "{e}"
        );
    }
    let text = "[[policy]]\nname = \"p\"\nmin_os_version = { windows = \"10.0.19045\" }\n";
    let s = fx.load(text).unwrap_or_else(|e| panic!("{e}"));
    let (family, minimum) = &s.policies[0].min_os_version[0];
    assert_eq!(*family, OsFamily::Windows);
    assert_eq!(minimum.is_met_by("10.0.22631"), Some(true));
    assert_eq!(minimum.is_met_by("10.0.17763"), Some(false));
}

#[test]
fn an_exemption_fingerprint_is_loaded_as_bytes_and_a_bad_one_is_an_error_at_its_line() {
    let fx = Fixture::new();
    let upper = "AB:".repeat(31) + "AB";
    let text = exemption(&format!(
        "device_fingerprint = \"{upper}\"\ncatalogue = \"kaspersky\"\nexpires = 2027-01-01"
    ));
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.exemptions[0].device,
        DeviceSelector::Fingerprint([0xab; 32])
    );
    // 64 characters, but not 64 hex digits: a multi-byte letter.
    let bad = "é".repeat(32);
    let text = exemption(&format!(
        "device_fingerprint = \"{bad}\"\ncatalogue = \"kaspersky\"\nexpires = 2027-01-01"
    ));
    let e = fx.single_error(&text, &format!("\"{bad}\""), "is not a SHA-256 fingerprint");
    let (line, column) = position(&text, &format!("\"{bad}\""));
    assert!(
        e.to_string().starts_with(&format!(
            "{}:{line}:{column}: device_fingerprint",
            fx.path().display()
        )),
        "{e}"
    );
}

/// The server's TLS files are read once, at load, into the snapshot as
/// DER: what the TLS front and the revocation set are built from.
#[test]
fn the_server_tls_files_are_read_into_the_snapshot_as_der() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
    let fx = Fixture::new();
    let pki = fx.dir.path().join("pki");
    let server = SERVER.replace(
        "client_ca = \"pki/ca.pem\"",
        "client_ca = \"pki/ca.pem\"\ncrls = [\"pki/crl.pem\", \"pki/crl.der\"]",
    );
    let s = fx
        .load(&format!("{server}{POLICY_AND_SEGMENT}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let server = s.server.as_ref().unwrap();
    let certs = |name: &str| -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(pki.join(name))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(server.cert_chain, certs("server.pem"));
    assert_eq!(server.client_cas, certs("ca.pem"));
    let key = PrivateKeyDer::from_pem_file(pki.join("server.key")).unwrap();
    assert_eq!(server.private_key.secret_der(), key.secret_der());
    let mut crls: Vec<CertificateRevocationListDer<'static>> =
        CertificateRevocationListDer::pem_file_iter(pki.join("crl.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    crls.push(std::fs::read(pki.join("crl.der")).unwrap().into());
    assert_eq!(server.revocation_lists, crls);
    // The paths stay, for messages and the file watcher.
    assert_eq!(server.key, pki.join("server.key"));
    assert_eq!(server.crls, [pki.join("crl.pem"), pki.join("crl.der")]);
}

#[test]
fn max_age_must_be_positive_and_at_most_a_day() {
    let fx = Fixture::new();
    for bad in ["0s", "25h"] {
        let text = format!("[attestation]\nmax_age = \"{bad}\"\n");
        fx.single_error(
            &text,
            &format!("\"{bad}\""),
            "max_age must be more than 0 and at most 24h",
        );
    }
    fx.load("[attestation]\nmax_age = \"24h\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn nonce_ttl_is_at_most_five_minutes() {
    let fx = Fixture::new();
    let text = "[attestation]\nnonce_ttl = \"10m\"\n";
    fx.single_error(
        text,
        "\"10m\"",
        "nonce_ttl must be more than 0 and at most 5m",
    );
}

#[test]
fn all_semantic_errors_are_reported_in_file_order() {
    let fx = Fixture::new();
    let text = r#"[[route]]
host = "a.example:80"
upstream = "gopher://x"
segment = "nowhere"

[[segment]]
name = "s"
sensitivity = "low"
policy = "missing"
vlan = 5000

[[policy]]
name = "p"
min_os_version = { ios = "x" }
"#;
    let errors = fx.errors(text);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4, 9, 10, 14], "{errors:#?}");
    let shown = ConfigErrors(errors).to_string();
    assert_eq!(shown.lines().count(), 6);
    assert!(shown
        .lines()
        .all(|l| l.starts_with(&format!("{}:", fx.path().display()))));
}

#[test]
fn a_policy_key_after_its_rules_gets_a_hint() {
    let fx = Fixture::new();
    let text = POLICY_AND_SEGMENT.replace(
        "action = \"deny\"\n",
        "action = \"deny\"\nrequire_antivirus = true\n",
    );
    fx.single_error(
        &text,
        "require_antivirus",
        "keys after a [[policy.rule]] header belong to that rule",
    );
}

#[test]
fn rules_may_use_ids_from_catalogue_includes() {
    let fx = Fixture::new();
    let extra = std::fs::read(Path::new(FIXTURES).join("extra-catalogue.toml")).unwrap();
    fx.write("extra.toml", &extra);
    let rule = "[[policy.rule]]\ncatalogue = \"voorbeeld-scanner\"\naction = \"warn\"\n";
    let policy = format!("[[policy]]\nname = \"p\"\n{rule}");
    let s = fx
        .load(&format!(
            "[catalogue]\ninclude = [\"extra.toml\"]\n\n{policy}"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let entry = s.policies[0].rules[0].entry;
    assert_eq!(s.catalogue.entries()[entry].id, "voorbeeld-scanner");
    assert!(s.catalogue.index_of("kaspersky").is_some());
    // Without the include the id is unknown.
    fx.single_error(
        &policy,
        "\"voorbeeld-scanner\"",
        "unknown catalogue id \"voorbeeld-scanner\"",
    );
}

#[test]
fn an_empty_route_host_is_an_error() {
    let fx = Fixture::new();
    let text = route("host = \"\"\nupstream = \"http://10.0.0.1\"");
    fx.single_error(&text, "\"\"\nupstream", "host must not be empty");
}

#[test]
fn an_exemption_needs_a_reference_and_a_useful_segment_list() {
    let fx = Fixture::new();
    let text = format!(
        "{POLICY_AND_SEGMENT}\n[[exemption]]\ndevice_subject = \"CN=x\"\ncatalogue = \"kaspersky\"\nexpires = 2027-01-01\nreference = \" \"\n"
    );
    fx.single_error(&text, "\" \"", "reference must name the risk acceptance");
    let text = exemption(
        "device_subject = \"CN=x\"\ncatalogue = \"kaspersky\"\nexpires = 2027-01-01\nsegments = []",
    );
    fx.single_error(
        &text,
        "\"kaspersky\"\nexpires",
        "segments = [] exempts nowhere",
    );
}

#[test]
fn duplicate_organization_texts_are_errors() {
    let fx = Fixture::new();
    let text = "[[remediation.organisation]]\nname = \"Gemeente Voorbeeld\"\n\n[[remediation.organisation]]\nname = \"Gemeente Voorbeeld\" # twice\n";
    fx.single_error(
        text,
        "\"Gemeente Voorbeeld\" # twice",
        "duplicate organisation name \"Gemeente Voorbeeld\"",
    );
}

#[test]
fn a_broken_include_does_not_add_unknown_id_errors() {
    let fx = Fixture::new();
    fx.write("extra.toml", b"[[entry]\n");
    let text = "[catalogue]\ninclude = [\"extra.toml\"]\n\n[[policy]]\nname = \"p\"\n[[policy.rule]]\ncatalogue = \"voorbeeld-scanner\"\naction = \"deny\"\n";
    let errors = fx.errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].file, fx.dir.path().join("extra.toml"));
}

// ---------------------------------------------------------------------------
// [server] trusted_proxies and the route's allow_encoded_percent

fn with_trusted_proxies(list: &str) -> String {
    with_base("").replacen(
        "client_ca = \"pki/ca.pem\"\n",
        &format!("client_ca = \"pki/ca.pem\"\ntrusted_proxies = [{list}]\n"),
        1,
    )
}

#[test]
fn trusted_proxies_are_addresses_or_cidr_blocks() {
    let fx = Fixture::new();
    let s = fx
        .load(&with_trusted_proxies(
            r#""10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1""#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = summary(&s, date!(2026 - 01 - 01));
    assert!(
        text.contains("Trusted proxies (X-Forwarded-For kept): 10.0.0.0/8, 192.0.2.7/32,"),
        "{text}"
    );
    let nets: Vec<String> = s
        .server
        .unwrap()
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        nets,
        ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"]
    );
    // None by default.
    let s = fx.load(&with_base("")).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.server.unwrap().trusted_proxies.is_empty());
}

#[test]
fn a_bad_trusted_proxy_is_reported_at_its_line() {
    let fx = Fixture::new();
    for (entry, message) in [
        ("\"10.0.0.0/33\"", "is not an IP address or CIDR block"),
        ("\"proxy.example\"", "is not an IP address or CIDR block"),
        ("\"10.0.0.0/\"", "is not an IP address or CIDR block"),
        (
            "\"10.0.0.1/8\"",
            "has host bits set; did you mean \"10.0.0.0/8\"",
        ),
        ("\"2001:db8::1/32\"", "did you mean \"2001:db8::/32\""),
    ] {
        let text = with_trusted_proxies(&format!("\"127.0.0.1\", {entry}"));
        fx.single_error(&text, entry, message);
    }
}

fn with_proxy_protocol_from(list: &str) -> String {
    with_base("").replacen(
        "client_ca = \"pki/ca.pem\"\n",
        &format!("client_ca = \"pki/ca.pem\"\nproxy_protocol_from = [{list}]\n"),
        1,
    )
}

#[test]
fn proxy_protocol_from_is_off_by_default_and_takes_addresses_or_blocks() {
    let fx = Fixture::new();
    let s = fx.load(&with_base("")).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.server.unwrap().proxy_protocol_from.is_empty());
    let text = summary(&fx.load(&with_base("")).unwrap(), date!(2026 - 01 - 01));
    assert!(!text.contains("PROXY protocol"), "{text}");

    let s = fx
        .load(&with_proxy_protocol_from(
            r#""10.0.0.0/16", "192.0.2.7", "fd00::/8""#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = summary(&s, date!(2026 - 01 - 01));
    assert!(
        text.contains("PROXY protocol v2 required from (client address taken from it): 10.0.0.0/16, 192.0.2.7/32, fd00::/8"),
        "{text}"
    );
    let nets: Vec<String> = s
        .server
        .unwrap()
        .proxy_protocol_from
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["10.0.0.0/16", "192.0.2.7/32", "fd00::/8"]);
}

#[test]
fn a_bad_proxy_protocol_peer_is_reported_at_its_line() {
    let fx = Fixture::new();
    for (entry, message) in [
        (
            "\"lb.example\"",
            "proxy_protocol_from entry \"lb.example\" is not an IP address or CIDR block",
        ),
        ("\"10.0.0.0/40\"", "is not an IP address or CIDR block"),
        (
            "\"10.1.2.3/16\"",
            "has host bits set; did you mean \"10.1.0.0/16\"",
        ),
    ] {
        let text = with_proxy_protocol_from(&format!("\"127.0.0.1\", {entry}"));
        fx.single_error(&text, entry, message);
    }
}

// Limits on what one peer may hold, and the upgrades a route carries

#[test]
fn peer_limits_have_safe_defaults() {
    let fx = Fixture::new();
    let s = fx
        .load(&route(
            "host = \"a.example\"\nupstream = \"http://10.0.0.1\"",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let server = s.server.unwrap();
    assert_eq!(server.max_connections_per_ip, 64);
    assert_eq!(server.body_timeout, Duration::from_secs(20));
    assert_eq!(server.body_min_rate, 4096);
    assert_eq!(server.max_body_bytes_in_flight, 64 * 1024 * 1024);
    assert_eq!(server.max_streams_without_certificate, 8);
    assert_eq!(s.routes[0].upgrades, ["websocket"]);
}

#[test]
fn a_zero_peer_limit_is_an_error_at_its_line() {
    let fx = Fixture::new();
    for (line, needle, message) in [
        (
            "max_connections_per_ip = 0",
            "0\n",
            "max_connections_per_ip must be more than 0",
        ),
        (
            "body_timeout = \"0s\"",
            "\"0s\"",
            "body_timeout must be more than 0",
        ),
        (
            "body_min_rate = 0",
            "0\n",
            "body_min_rate must be more than 0",
        ),
        (
            "max_streams_without_certificate = 0",
            "0\n",
            "max_streams_without_certificate must be more than 0",
        ),
        (
            "max_body_bytes_in_flight = 0",
            "0\n",
            "max_body_bytes_in_flight must be at least 1048576",
        ),
        (
            "max_body_bytes_in_flight = 1048575",
            "1048575",
            "max_body_bytes_in_flight must be at least 1048576",
        ),
    ] {
        let text = SERVER.replace(
            "client_ca = \"pki/ca.pem\"",
            &format!("client_ca = \"pki/ca.pem\"\n{line}"),
        );
        let text = format!("{text}{POLICY_AND_SEGMENT}");
        fx.single_error(&text, needle, message);
    }
}

#[test]
fn allow_encoded_percent_is_a_route_option_off_by_default() {
    let fx = Fixture::new();
    let s = fx
        .load(&with_base(
            "\n[[route]]\nhost = \"a.example\"\nupstream = \"http://10.0.0.1\"\nsegment = \"s\"\n\
             \n[[route]]\nhost = \"b.example\"\nupstream = \"http://10.0.0.1\"\nsegment = \"s\"\nallow_encoded_percent = true\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let allowed: Vec<bool> = s.routes.iter().map(|r| r.allow_encoded_percent).collect();
    assert_eq!(allowed, [false, true]);
}

#[test]
fn route_upgrades_are_protocol_names_and_never_h2c() {
    let fx = Fixture::new();
    let base = "host = \"a.example\"\nupstream = \"http://10.0.0.1\"";
    let s = fx
        .load(&route(&format!(
            "{base}\nupgrades = [\"WebSocket\", \"irc\"]"
        )))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.routes[0].upgrades, ["websocket", "irc"]);
    let s = fx
        .load(&route(&format!("{base}\nupgrades = []")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(s.routes[0].upgrades.is_empty());
    let text = route(&format!("{base}\nupgrades = [\"websocket\", \"h2c\"]"));
    fx.single_error(&text, "\"h2c\"", "would tunnel HTTP requests past the gate");
    let text = route(&format!("{base}\nupgrades = [\"web socket\"]"));
    fx.single_error(&text, "\"web socket\"", "is not a protocol name");
}

// ---------------------------------------------------------------------------
// [store] (issue 15)

use posture_core::config::model::StoreFailure;
use posture_core::config::snapshot::StoreSettings;

fn redis_of(snapshot: &Snapshot) -> &posture_core::config::snapshot::RedisSettings {
    match &snapshot.store {
        StoreSettings::Redis(r) => r,
        StoreSettings::Memory => panic!("expected a redis store"),
    }
}

#[test]
fn the_store_is_memory_unless_redis_is_asked_for() {
    let fx = Fixture::new();
    let s = fx.load(&with_base("")).unwrap();
    assert_eq!(s.store, StoreSettings::Memory);
    let s = fx.load(&with_base("[store]\nkind = \"memory\"\n")).unwrap();
    assert_eq!(s.store, StoreSettings::Memory);
    assert!(summary(&s, date!(2026 - 01 - 01)).contains("Store: memory"));
}

#[test]
fn a_redis_store_compiles_with_defaults_and_is_explained_without_its_password() {
    let fx = Fixture::new();
    fx.write("redis.pass", b"s3cret-pass\n");
    let s = fx
        .load(&with_base(
            "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379/2\"\n\
             username = \"gate\"\npassword_file = \"redis.pass\"\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = redis_of(&s);
    assert_eq!(r.url, "redis://127.0.0.1:6379/2");
    assert!(!r.tls);
    assert_eq!(r.password.as_deref(), Some("s3cret-pass"));
    assert_eq!(r.key_prefix, "posture-gate:");
    assert_eq!(r.command_timeout, Duration::from_millis(250));
    assert_eq!(r.propagation, Duration::from_secs(1));
    // The only segment is low: the default keeps attestations locally.
    assert_eq!(r.on_store_failure, StoreFailure::Local);
    let text = summary(&s, date!(2026 - 01 - 01));
    assert!(
        text.contains("Store: redis redis://127.0.0.1:6379/2"),
        "{text}"
    );
    assert!(
        text.contains("user gate with a password from a file"),
        "{text}"
    );
    assert!(text.contains("within 1s"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!format!("{s:?}").contains("s3cret"));
}

#[test]
fn on_store_failure_defaults_to_deny_when_a_segment_is_sensitive() {
    let fx = Fixture::new();
    let text = with_base("[store]\nkind = \"redis\"\nurl = \"redis://localhost\"\n")
        .replace("sensitivity = \"low\"", "sensitivity = \"high\"");
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(redis_of(&s).on_store_failure, StoreFailure::Deny);
    assert!(summary(&s, date!(2026 - 01 - 01)).contains("default: a segment is high or critical"));
    let s = fx
        .load(&text.replace(
            "url = \"redis://localhost\"\n",
            "url = \"redis://localhost\"\non_store_failure = \"local\"\n",
        ))
        .unwrap();
    assert_eq!(redis_of(&s).on_store_failure, StoreFailure::Local);
}

#[test]
fn a_rediss_store_reads_its_ca_and_client_certificate() {
    let fx = Fixture::new();
    let s = fx
        .load(&with_base(
            "[store]\nkind = \"redis\"\nurl = \"rediss://redis.intern:6380\"\n\
             ca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/server.key\"\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = redis_of(&s);
    assert!(r.tls);
    assert!(r
        .ca_pem
        .as_ref()
        .is_some_and(|p| p.starts_with(b"-----BEGIN")));
    assert!(r.client_pem.is_some());
}

#[test]
fn a_store_that_cannot_work_is_an_error_at_its_line() {
    let fx = Fixture::new();
    let base = "[store]\nkind = \"redis\"\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "url = \"http://redis:6379\"\n",
            "\"http://",
            "must start with redis:// or rediss://",
        ),
        (
            "url = \"redis://u:pw@redis:6379\"\n",
            "\"redis://u:pw",
            "holds a user or password",
        ),
        (
            "url = \"redis://redis:0\"\n",
            "\"redis://redis:0",
            "port that is not 1-65535",
        ),
        (
            "url = \"rediss://redis:6380\"\n",
            "\"rediss://",
            "needs ca = ",
        ),
        (
            "url = \"rediss://redis:6380\"\nca = \"pki/none.pem\"\n",
            "\"pki/none.pem",
            "cannot read Redis CA file",
        ),
        (
            "url = \"redis://redis\"\npassword_file = \"none.pass\"\n",
            "\"none.pass",
            "cannot read Redis password file",
        ),
        (
            "url = \"redis://redis\"\ncommand_timeout = \"0s\"\n",
            "\"0s",
            "command_timeout must be more than 0",
        ),
        (
            "url = \"redis://redis\"\nconnect_timeout = \"0s\"\n",
            "\"0s",
            "connect_timeout must be more than 0",
        ),
        (
            "url = \"redis://redis\"\npropagation = \"0s\"\n",
            "\"0s",
            "propagation must be more than 0",
        ),
        (
            "url = \"redis://redis\"\nnear_cache_capacity = 0\n",
            "0\n",
            "near_cache_capacity must be more than 0",
        ),
        (
            "url = \"rediss://redis\"\nca = \"pki/ca.pem\"\ncert = \"pki/device-ca.pem\"\n",
            "\"pki/device-ca.pem",
            "cert and key go together",
        ),
        (
            "password = \"inline\"\nurl = \"redis://r\"\n",
            "password =",
            "unknown field",
        ),
    ];
    for (extra, needle, message) in cases {
        let text = with_base(&format!("{base}{extra}"));
        fx.single_error(&text, needle, message);
    }
    // No url at all: at the kind.
    fx.single_error(&with_base(base), "\"redis\"", "needs a url");
    // Redis settings on a memory store are a slip, not silently ignored.
    fx.single_error(
        &with_base("[store]\nurl = \"redis://r\"\n"),
        "\"redis://r",
        "is a setting of kind = \"redis\"",
    );
}

#[test]
fn the_example_store_block_uncommented_loads() {
    let fx = Fixture::new();
    fx.write("pki/redis.pass", b"example\n");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/gate.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let start = text.find("# [store]\n").expect("the example shows [store]");
    let end = start + text[start..].find("\n\n").unwrap();
    let block: String = text[start..end]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("{}\n{block}", &text[..start]) + &text[end..];
    let text = text.replace("pki/redis-ca.pem", "pki/ca.pem");
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}\n{block}"));
    let r = redis_of(&s);
    assert_eq!(r.url, "rediss://redis.intern.example:6380");
    assert_eq!(r.on_store_failure, StoreFailure::Deny);
    assert_eq!(r.password.as_deref(), Some("example"));
}

// ---------------------------------------------------------------------------
// [forward_auth]

const FORWARD_AUTH: &str = r#"
[forward_auth]
listen = "127.0.0.1:9090"

[[forward_auth.proxy]]
name = "nginx"
kind = "nginx"
from = ["127.0.0.1"]
"#;

#[test]
fn forward_auth_compiles_with_each_kinds_headers() {
    use posture_core::config::model::ProxyKind;
    use posture_core::config::snapshot::ForwardAuthListen;
    let fx = Fixture::new();
    let text = with_base(&format!(
        "{FORWARD_AUTH}
[[forward_auth.proxy]]
name = \"envoy\"
kind = \"envoy\"
from = [\"127.0.0.2\"]
[[forward_auth.proxy]]
name = \"caddy\"
kind = \"caddy\"
from = [\"::1\"]
certificate_header = \"X-Caddy-Cert\"
"
    ));
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let f = s.server.unwrap().forward_auth.unwrap();
    assert_eq!(
        f.listen,
        ForwardAuthListen::Tcp("127.0.0.1:9090".parse().unwrap())
    );
    assert!(f.tls.is_none());
    let [nginx, envoy, caddy] = &f.proxies[..] else {
        panic!("{:?}", f.proxies)
    };
    assert_eq!(nginx.kind, ProxyKind::Nginx);
    assert_eq!(nginx.certificate_header, "x-client-cert");
    assert_eq!(nginx.uri_header.as_ref().unwrap(), "x-original-uri");
    assert_eq!(nginx.host_header, "host");
    assert_eq!(envoy.certificate_header, "x-forwarded-client-cert");
    assert!(envoy.uri_header.is_none());
    assert_eq!(caddy.certificate_header, "x-caddy-cert");
    assert_eq!(caddy.uri_header.as_ref().unwrap(), "x-forwarded-uri");
    assert_eq!(caddy.host_header, "x-forwarded-host");
}

#[test]
fn plain_http_forward_auth_beyond_loopback_is_an_error() {
    let fx = Fixture::new();
    let text = with_base(&FORWARD_AUTH.replace("127.0.0.1:9090", "10.1.2.3:9090"));
    fx.single_error(
        &text,
        "\"10.1.2.3:9090\"",
        "would be plain HTTP beyond this machine",
    );
}

#[test]
fn a_proxy_on_plain_http_must_name_its_addresses() {
    let fx = Fixture::new();
    let text = with_base(&FORWARD_AUTH.replace("from = [\"127.0.0.1\"]\n", ""));
    fx.single_error(&text, "\"nginx\"\nkind", "give from = ");
}

#[test]
fn forward_auth_without_a_proxy_trusts_no_one_and_is_an_error() {
    let fx = Fixture::new();
    let text = with_base("[forward_auth]\nlisten = \"127.0.0.1:9090\"\n");
    fx.single_error(
        &text,
        "\"127.0.0.1:9090\"",
        "needs at least one [[forward_auth.proxy]]",
    );
}

#[test]
fn a_unix_socket_takes_exactly_one_proxy_and_no_addresses() {
    let fx = Fixture::new();
    let text = with_base(
        r#"
[forward_auth]
listen = "unix:/run/pg/authz.sock"
[[forward_auth.proxy]]
name = "a"
kind = "nginx"
[[forward_auth.proxy]]
name = "b"
kind = "nginx"
"#,
    );
    fx.single_error(&text, "\"b\"", "cannot tell proxies apart");
    let text = with_base(&FORWARD_AUTH.replace("127.0.0.1:9090", "unix:/run/pg/authz.sock"));
    fx.single_error(&text, "\"127.0.0.1\"]", "has no peer addresses");
}

#[test]
fn mutual_tls_needs_all_three_files_and_certificate_name_needs_tls() {
    let fx = Fixture::new();
    let text = with_base(&FORWARD_AUTH.replace(
        "listen = \"127.0.0.1:9090\"\n",
        "listen = \"127.0.0.1:9090\"\ntls_certificate = \"pki/./server.pem\"\n",
    ));
    fx.single_error(&text, "\"pki/./server.pem\"", "needs all three");
    let text = with_base(&FORWARD_AUTH.replace(
        "from = [\"127.0.0.1\"]",
        "from = [\"127.0.0.1\"]\ncertificate_name = \"nginx.example\"",
    ));
    fx.single_error(&text, "\"nginx.example\"", "only checked with mutual TLS");
    // With all three, a routable address is fine and `from` may go.
    let text = with_base(
        r#"
[forward_auth]
listen = "10.1.2.3:9443"
tls_certificate = "pki/server.pem"
tls_key = "pki/server.key"
proxy_ca = "pki/ca.pem"
[[forward_auth.proxy]]
name = "nginx"
kind = "nginx"
certificate_name = "Nginx.Example."
"#,
    );
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let f = s.server.unwrap().forward_auth.unwrap();
    assert!(f.tls.is_some());
    assert_eq!(
        f.proxies[0].certificate_name.as_deref(),
        Some("nginx.example")
    );
}

#[test]
fn envoy_takes_no_uri_header_and_a_header_name_must_be_one() {
    let fx = Fixture::new();
    let text = with_base(&FORWARD_AUTH.replace(
        "kind = \"nginx\"",
        "kind = \"envoy\"\nuri_header = \"x-original-uri\"",
    ));
    fx.single_error(&text, "\"x-original-uri\"", "leave out uri_header");
    let text = with_base(&FORWARD_AUTH.replace(
        "kind = \"nginx\"",
        "kind = \"nginx\"\ncertificate_header = \"X Client Cert\"",
    ));
    fx.single_error(&text, "\"X Client Cert\"", "is not a header name");
}

#[test]
fn forward_auth_needs_the_server() {
    let fx = Fixture::new();
    let text = format!("{POLICY_AND_SEGMENT}{FORWARD_AUTH}");
    fx.single_error(&text, "\"127.0.0.1:9090\"", "needs a [server] section");
}

#[test]
fn the_examples_commented_forward_auth_loads_when_uncommented() {
    let fx = Fixture::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/gate.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let start = text
        .find("# [forward_auth]\n")
        .expect("the example shows [forward_auth]");
    let block: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or("")))
        .collect();
    let s = fx
        .load(&format!("{text}\n{block}"))
        .unwrap_or_else(|e| panic!("{e}\n{block}"));
    let text = summary(&s, time::macros::date!(2026 - 11 - 30));
    assert!(
        text.contains("Forward-auth: 127.0.0.1:9090 (plain HTTP)"),
        "{text}"
    );
    assert!(
        text.contains(
            "  nginx-dmz (nginx): from 127.0.0.1/32, ::1/128; certificate in x-client-cert"
        ),
        "{text}"
    );
    // The example's client CA issues the devices: no warning.
    assert!(
        !text.contains("WARNING: client_ca holds only root CAs"),
        "{text}"
    );
    let f = s.server.unwrap().forward_auth.unwrap();
    assert_eq!(f.proxies.len(), 1);
    assert_eq!(f.proxies[0].name, "nginx-dmz");
    assert_eq!(f.max_connections, 1024);
}

// ---------------------------------------------------------------------------
// [nac]

fn nac_base(nac: &str) -> String {
    let segment_with_vlan =
        POLICY_AND_SEGMENT.replace("policy = \"p\"\n", "policy = \"p\"\nvlan = 100\n");
    format!("{SERVER}{segment_with_vlan}{nac}")
}

#[test]
fn the_examples_commented_nac_loads_when_uncommented() {
    let fx = Fixture::new();
    fx.write(
        "pki/nas-vleugel-a.secret",
        b"a shared secret of 31 characters\n",
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/gate.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let start = text.find("# [nac]\n").expect("the example shows [nac]");
    let block: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or("")))
        .collect();
    let s = fx
        .load(&format!("{text}\n{block}"))
        .unwrap_or_else(|e| panic!("{e}\n{block}"));
    let text = summary(&s, time::macros::date!(2026 - 11 - 30));
    assert!(
        text.contains("802.1X: 127.0.0.1:9091 (plain HTTP), quarantine VLAN 4000"),
        "{text}"
    );
    assert!(
        text.contains("  NAS switch-vleugel-a (10.20.0.11): CoA to 10.20.0.11:3799"),
        "{text}"
    );
    let n = s.server.unwrap().nac.unwrap();
    assert_eq!(n.quarantine_vlan, Some(4000));
    assert_eq!(n.radius[0].name, "radius-1");
    assert_eq!(n.nas[0].coa, "10.20.0.11:3799".parse().unwrap());
    assert_eq!(&n.nas[0].secret[..], b"a shared secret of 31 characters");
    // The secret never shows in a debug print.
    assert!(!format!("{:?}", n.nas[0]).contains("shared secret"));
}

#[test]
fn nac_errors_are_reported_at_their_line() {
    let fx = Fixture::new();
    fx.write("short.secret", b"tooshort\n");
    let nac = |extra: &str| {
        nac_base(&format!(
            "[nac]\nlisten = \"127.0.0.1:9091\"\n{extra}[[nac.radius]]\nname = \"r\"\nfrom = [\"127.0.0.1\"]\n"
        ))
    };
    fx.single_error(
        &nac("quarantine_vlan = 100\n"),
        "100\n[[nac",
        "also the VLAN of segment",
    );
    fx.single_error(&nac("quarantine_vlan = 5000\n"), "5000", "outside 1..=4094");
    let with_nas = format!(
        "{}[[nac.nas]]\nname = \"sw\"\naddress = \"10.0.0.1\"\nsecret_file = \"short.secret\"\n",
        nac("")
    );
    fx.single_error(&with_nas, "\"short.secret\"", "use at least 16");
    let bad_address = with_nas.replace("10.0.0.1", "switch-1");
    let errors = fx.errors(&bad_address);
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("is not an IP address")),
        "{errors:#?}"
    );
    let beyond = nac("").replace("127.0.0.1:9091", "10.0.0.5:9091");
    fx.single_error(
        &beyond,
        "\"10.0.0.5:9091\"",
        "plain HTTP beyond this machine",
    );
    let no_vlans = format!(
        "{SERVER}{POLICY_AND_SEGMENT}[nac]\nlisten = \"127.0.0.1:9091\"\n[[nac.radius]]\nname = \"r\"\nfrom = [\"127.0.0.1\"]\n"
    );
    fx.single_error(&no_vlans, "\"127.0.0.1:9091\"", "no [[segment]] has a vlan");
}

#[test]
fn forward_auth_with_only_a_root_in_client_ca_is_warned_about() {
    let fx = Fixture::new();
    // The fixture PKI's ca.pem is a self-signed root.
    let text = with_base(FORWARD_AUTH);
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let printed = summary(&s, time::macros::date!(2026 - 11 - 30));
    assert!(
        printed.contains("WARNING: client_ca holds only root CAs"),
        "{printed}"
    );
    // Without a door behind a proxy, a root alone is fine.
    let s = fx.load(&with_base("")).unwrap_or_else(|e| panic!("{e}"));
    let printed = summary(&s, time::macros::date!(2026 - 11 - 30));
    assert!(!printed.contains("WARNING: client_ca"), "{printed}");
}

#[test]
fn the_examples_commented_audit_loads_when_uncommented() {
    use posture_core::config::snapshot::{AuditOutput, Fsync, OnAuditFailure};
    let fx = Fixture::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/gate.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let start = text.find("# [audit]\n").expect("the example shows [audit]");
    let block: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or("")))
        .collect();
    let s = fx
        .load(&format!("{text}\n{block}"))
        .unwrap_or_else(|e| panic!("{e}\n{block}"));
    let a = s.server.as_ref().unwrap().audit.clone();
    assert_eq!(
        a.output,
        AuditOutput::File(PathBuf::from("/var/log/posture-gate/audit.jsonl"))
    );
    assert_eq!(a.rotate_size, Some(100_000_000));
    assert!(a.rotate_daily);
    assert_eq!(a.keep, 30);
    assert_eq!(a.fsync, Fsync::Batch);
    assert_eq!(a.queue_lines, 65_536);
    assert_eq!(a.max_wait, Duration::from_secs(2));
    assert_eq!(a.on_failure, OnAuditFailure::Deny);
    let printed = summary(&s, time::macros::date!(2026 - 11 - 30));
    assert!(
        printed.contains(
            "Audit log: /var/log/posture-gate/audit.jsonl (rotated at 100000000 bytes and daily, 30 kept), \
             fsync per batch; a request that cannot be recorded within 2s refuses (503)"
        ),
        "{printed}"
    );
    // Without the section: standard output, deny, and the same defaults.
    let (_fx, plain) = load_example();
    let d = plain.server.unwrap().audit;
    assert_eq!(d.output, AuditOutput::Stdout);
    assert_eq!(d.on_failure, OnAuditFailure::Deny);
}

#[test]
fn audit_errors_are_reported_at_their_line() {
    let fx = Fixture::new();
    let audit = |body: &str| with_base(&format!("[audit]\n{body}"));
    fx.single_error(
        &audit("output = \"kafka\"\n"),
        "\"kafka\"",
        "none of \"stdout\", \"file\", \"syslog\"",
    );
    fx.single_error(&audit("output = \"file\"\n"), "\"file\"", "needs a path");
    fx.single_error(
        &audit("output = \"file\"\npath = \"a.jsonl\"\nrotate_size = \"12 parsecs\"\n"),
        "\"12 parsecs\"",
        "the unit must be",
    );
    fx.single_error(
        &audit("fsync = \"sometimes\"\n"),
        "\"sometimes\"",
        "none of \"batch\"",
    );
    fx.single_error(
        &audit("on_audit_failure = \"shrug\"\n"),
        "\"shrug\"",
        "neither \"deny\" nor \"allow\"",
    );
    fx.single_error(&audit("queue_lines = 0\n"), "0\n", "more than 0");
    let errors = fx.errors(&audit("compress = true\n"));
    assert!(
        errors.iter().any(|e| e.message.contains("unknown field")),
        "{errors:#?}"
    );
}

#[test]
fn two_proxies_one_connection_could_be_are_an_error() {
    let fx = Fixture::new();
    let second = |extra: &str| {
        with_base(&format!(
            "{FORWARD_AUTH}[[forward_auth.proxy]]\nname = \"traefik\"\nkind = \"traefik\"\n{extra}"
        ))
    };
    fx.single_error(
        &second("from = [\"127.0.0.0/8\"]\n"),
        "\"traefik\"\nkind",
        "could be the same connection as \"nginx\"",
    );
    // Distinct addresses: fine.
    fx.load(&second("from = [\"127.0.0.3\"]\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    // With mutual TLS, distinct certificate names separate shared addresses.
    let tls = |a: &str, b: &str| {
        with_base(&format!(
            r#"
[forward_auth]
listen = "127.0.0.1:9443"
tls_certificate = "pki/server.pem"
tls_key = "pki/server.key"
proxy_ca = "pki/ca.pem"
[[forward_auth.proxy]]
name = "nginx"
kind = "nginx"
{a}
[[forward_auth.proxy]]
name = "caddy"
kind = "caddy"
{b}
"#
        ))
    };
    fx.load(&tls(
        "certificate_name = \"nginx.test\"",
        "certificate_name = \"caddy.test\"",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    fx.single_error(
        &tls("certificate_name = \"nginx.test\"", ""),
        "\"caddy\"\nkind",
        "could be the same connection",
    );
}

// ---------------------------------------------------------------------------
// Issue 19: subjects as distinguished names, antivirus per OS family, staged
// rules

#[test]
fn a_device_subject_that_is_not_a_distinguished_name_is_an_error_at_its_line() {
    let fx = Fixture::new();
    for (subject, why) in [
        ("lt-042", r#""=" expected after "lt-042""#),
        ("CN=lt-042;O=Leverancier BV", r#"';' must be escaped"#),
        (
            "CN=lt-042,Organisatie=Leverancier BV",
            r#"unknown attribute type "Organisatie""#,
        ),
        ("CN=lt-042,", "an attribute type (like CN) expected"),
    ] {
        let text = exemption(&format!(
            "device_subject = \"{subject}\"\ncatalogue = \"kaspersky\"\nexpires = 2027-01-01"
        ));
        let e = fx.single_error(
            &text,
            &format!("\"{subject}\""),
            &format!("device_subject {subject:?} is not a distinguished name: "),
        );
        assert!(e.message.contains(why), "{e}\nshould contain: {why}");
    }
}

#[test]
fn device_subjects_load_as_normalised_names() {
    let fx = Fixture::new();
    let text = exemption(
        "device_subject = \"CN = lt-042, OU = Beheer, O = Leverancier BV\"\ncatalogue = \"kaspersky\"\nexpires = 2027-01-01",
    );
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    match &s.exemptions[0].device {
        DeviceSelector::Subject { written, name } => {
            assert_eq!(written, "CN = lt-042, OU = Beheer, O = Leverancier BV");
            assert_eq!(name.as_str(), "CN=lt-042,O=leverancier bv,OU=beheer");
        }
        other => panic!("{other:?}"),
    }
}

fn policy_with(lines: &str, rule: &str) -> String {
    format!(
        "[[policy]]\nname = \"p\"\n{lines}\n[[policy.rule]]\n{rule}\n\n[[segment]]\nname = \"s\"\nsensitivity = \"low\"\npolicy = \"p\"\n"
    )
}

const DENY_RULE: &str = "catalogue = \"kaspersky\"\naction = \"deny\"";

#[test]
fn require_antivirus_takes_true_false_or_os_families() {
    let fx = Fixture::new();
    let load = |lines: &str| {
        fx.load(&policy_with(lines, DENY_RULE))
            .unwrap_or_else(|e| panic!("{e}"))
            .policies[0]
            .require_antivirus
            .clone()
    };
    assert_eq!(load("require_antivirus = true"), OsFamily::ALL);
    assert_eq!(load("require_antivirus = false"), []);
    assert_eq!(load(""), []);
    assert_eq!(
        load("require_antivirus = [\"macos\", \"windows\"]"),
        [OsFamily::Macos, OsFamily::Windows]
    );
}

#[test]
fn require_antivirus_with_an_unknown_repeated_or_no_family_is_an_error() {
    let fx = Fixture::new();
    let text = policy_with("require_antivirus = [\"windows\", \"mac\"]", DENY_RULE);
    fx.single_error(
        &text,
        "\"mac\"",
        "require_antivirus: \"mac\" is not an OS family (one of: windows, macos, linux, android, ios, chromeos, other)",
    );
    let text = policy_with("require_antivirus = [\"linux\", \"linux\"]", DENY_RULE);
    let errors = fx.errors(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.contains("\"linux\" is listed twice"),
        "{errors:#?}"
    );
    let text = policy_with("require_antivirus = []", DENY_RULE);
    fx.single_error(&text, "[]", "require_antivirus = [] requires it nowhere");
    let text = policy_with("require_antivirus = \"windows\"", DENY_RULE);
    fx.single_error(&text, "\"windows\"", "true, false or a list of OS families");
}

#[test]
fn deny_from_goes_only_with_warn_and_only_as_a_date() {
    let fx = Fixture::new();
    let text = policy_with(
        "",
        "catalogue = \"kaspersky\"\naction = \"deny\"\ndeny_from = 2027-01-15",
    );
    fx.single_error(&text, "2027-01-15", "deny_from goes with action = \"warn\"");
    for bad in [
        "2027-01-15T00:00:00",
        "2027-01-15T00:00:00Z",
        "\"2027-01-15\"",
    ] {
        let text = policy_with(
            "",
            &format!("catalogue = \"kaspersky\"\naction = \"warn\"\ndeny_from = {bad}"),
        );
        let errors = fx.errors(&text);
        assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
        assert_eq!(
            (errors[0].line, errors[0].column),
            position(&text, bad),
            "{bad}"
        );
    }
    let s = fx
        .load(&policy_with(
            "",
            "catalogue = \"kaspersky\"\naction = \"warn\"\ndeny_from = 2027-01-15",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.policies[0].rules[0].deny_from,
        Some(date!(2027 - 01 - 15))
    );
    assert_eq!(s.policies[0].rules[0].action, Decision::Warn);
}

#[test]
fn a_staged_rule_that_a_deny_rule_already_covers_is_an_error() {
    let fx = Fixture::new();
    let staged = "[[policy.rule]]\ncatalogue = \"kaspersky\"\naction = \"warn\"\ncategories = [\"vpn\"]\ndeny_from = 2027-01-15";
    let text = policy_with("", &format!("{DENY_RULE}\n{staged}"));
    fx.single_error(
        &text,
        "2027-01-15",
        "a deny rule for \"kaspersky\" already denies everything this staged rule covers",
    );
    let narrow =
        "catalogue = \"kaspersky\"\naction = \"deny\"\ncategories = [\"vpn\", \"antivirus\"]";
    let text = policy_with("", &format!("{narrow}\n{staged}"));
    fx.single_error(&text, "2027-01-15", "would never change anything");
    // A deny rule for other categories leaves the staged one meaningful.
    let other = "catalogue = \"kaspersky\"\naction = \"deny\"\ncategories = [\"antivirus\"]";
    fx.load(&policy_with("", &format!("{other}\n{staged}")))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_summary_lists_staged_rules_due_within_30_days_and_those_that_deny_already() {
    let fx = Fixture::new();
    let text = format!(
        "{SERVER}\n[[policy]]\nname = \"p\"\nrule = [\
         {{ catalogue = \"kaspersky\", action = \"warn\", categories = [\"vpn\"], deny_from = 2027-01-15 }},\
         {{ catalogue = \"kaspersky\", action = \"warn\", categories = [\"antivirus\"], deny_from = 2026-12-01 }},\
         {{ catalogue = \"kaspersky\", action = \"warn\", categories = [\"password_manager\"], deny_from = 2027-06-01 }}]\n\
         [[segment]]\nname = \"s\"\nsensitivity = \"low\"\npolicy = \"p\"\n"
    );
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let shown = summary(&s, date!(2027 - 01 - 03));
    assert!(
        shown.contains("warn kaspersky [vpn] until 2027-01-14, deny from 2027-01-15"),
        "{shown}"
    );
    assert!(
        shown.contains("Staged rules (warn until deny_from, deny from it): 3 in total, 2 denying already or within 30 days (by 2027-02-02):"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "  policy p: kaspersky warns until 2027-01-14, denies from 2027-01-15 (in 12 days)"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("  policy p: kaspersky denies since 2026-12-01 (deny_from has passed: the rule now denies)"),
        "{shown}"
    );
    assert!(!shown.contains("denies from 2027-06-01"), "{shown}");
    // On the day itself the rule denies.
    let shown = summary(&s, date!(2027 - 01 - 15));
    assert!(
        shown.contains("kaspersky denies since 2027-01-15"),
        "{shown}"
    );
}

#[test]
fn the_summary_warns_about_an_antivirus_no_agent_can_report() {
    let fx = Fixture::new();
    let every = fx
        .load(&format!(
            "{SERVER}{}",
            policy_with("require_antivirus = true", DENY_RULE)
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let shown = summary(&every, date!(2027 - 01 - 03));
    assert!(
        shown.contains(
            "WARNING: policy p requires an antivirus on android, ios, chromeos, other, but \
             posture-agent reports no security products there: those devices are always denied \
             (segments: s)"
        ),
        "{shown}"
    );
    let listed = fx
        .load(&format!(
            "{SERVER}{}",
            policy_with(
                "require_antivirus = [\"windows\", \"macos\", \"linux\"]",
                DENY_RULE
            )
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let shown = summary(&listed, date!(2027 - 01 - 03));
    assert!(
        shown.contains("antivirus required on windows, macos, linux"),
        "{shown}"
    );
    assert!(!shown.contains("WARNING: policy"), "{shown}");
}

// ---------------------------------------------------------------------------
// Issue 19: what the pages need from [remediation] and the segments

#[test]
fn remediation_page_settings_have_defaults_and_parse() {
    use posture_core::config::model::AgentMode;
    let fx = Fixture::new();
    let s = fx
        .load(POLICY_AND_SEGMENT)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = &s.remediation;
    assert_eq!(r.warning_notice_every, Duration::from_secs(24 * 3600));
    assert_eq!(r.agent_ca, "gate-ca.pem");
    assert_eq!(r.agent, AgentMode::Both);
    assert_eq!(s.segments[0].description_en, "");

    let text = format!(
        "{}\n[remediation]\nwarning_notice_every = \"0s\"\nagent_ca = \" \"\nagent = \"service\"\n",
        POLICY_AND_SEGMENT.replace(
            "sensitivity = \"low\"",
            "description = \"Kantoor\"\ndescription_en = \"Office\"\nsensitivity = \"low\""
        )
    );
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let r = &s.remediation;
    assert_eq!(r.warning_notice_every, Duration::ZERO);
    assert_eq!(r.agent_ca, "", "blank means a public CA: no --ca");
    assert_eq!(r.agent, AgentMode::Service);
    assert_eq!(s.segments[0].description, "Kantoor");
    assert_eq!(s.segments[0].description_en, "Office");
}

#[test]
fn an_unknown_agent_mode_is_an_error_at_the_value() {
    let fx = Fixture::new();
    let text = format!("{POLICY_AND_SEGMENT}\n[remediation]\nagent = \"robot\"\n");
    fx.single_error(&text, "\"robot\"", "unknown variant `robot`");
}

#[test]
fn the_example_segments_have_english_descriptions() {
    let (_fx, s) = load_example();
    for segment in &s.segments {
        assert!(
            !segment.description_en.trim().is_empty(),
            "{} has no description_en",
            segment.name
        );
        assert_ne!(segment.description_en, segment.description);
    }
}

// ---------------------------------------------------------------------------
// What breaks the gate although it parses (issue 19 point 6)

/// `[server]` of [`with_base`] with `extra` lines added to it.
fn with_server_lines(extra: &str) -> String {
    with_base("").replace(
        "client_ca = \"pki/ca.pem\"\n",
        &format!("client_ca = \"pki/ca.pem\"\n{extra}"),
    )
}

#[test]
fn a_zero_header_read_timeout_is_an_error_saying_what_it_would_do() {
    let fx = Fixture::new();
    let text = with_server_lines("header_read_timeout = \"0s\"\n");
    let e = fx.single_error(&text, "\"0s\"", "header_read_timeout must be more than 0");
    assert!(
        e.message.contains("every connection would be closed"),
        "{e}"
    );
    for (name, value) in [("idle_timeout", "\"0ms\""), ("upstream_timeout", "\"0s\"")] {
        let text = with_server_lines(&format!("{name} = {value}\n"));
        fx.single_error(&text, value, &format!("{name} must be more than 0"));
    }
}

/// The TLS handshake is bounded by header_read_timeout alone (the idle
/// clock starts after it), so a longer header timeout than idle timeout is
/// a working configuration, not an error.
#[test]
fn a_header_read_timeout_longer_than_the_idle_timeout_is_allowed() {
    let fx = Fixture::new();
    fx.load(&with_server_lines(
        "header_read_timeout = \"60s\"\nidle_timeout = \"1s\"\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_capital_m_is_months_and_the_message_says_so_and_suggests_minutes() {
    let fx = Fixture::new();
    let text = with_base("").replace("[attestation]\n", "[attestation]\nmax_age = \"15M\"\n");
    let e = fx.single_error(&text, "\"15M\"", "is in months");
    assert!(e.message.contains("write \"15m\" for minutes"), "{e}");
}

#[test]
fn out_of_range_durations_spell_out_the_value() {
    let fx = Fixture::new();
    let text = with_base("").replace("[attestation]\n", "[attestation]\nmax_age = \"25h\"\n");
    fx.single_error(
        &text,
        "\"25h\"",
        "at most 24h (24 hours); it is 1 day 1 hour",
    );
    let text = with_base("").replace("[attestation]\n", "[attestation]\nmax_age = \"2d\"\n");
    fx.single_error(&text, "\"2d\"", "it is 2 days");
}

/// Two values that are not durations (which serde alone would stop at)
/// and two semantic mistakes: all four, in file order, one run.
#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let fx = Fixture::new();
    let text = with_server_lines("header_read_timeout = \"0s\"\nupstream_timeout = \"15 mins and a bit\"\n")
        .replace("[attestation]\n", "[attestation]\nnonce_ttl = \"15M\"\n")
        + "\n[[route]]\nhost = \"a.example\"\nupstream = \"http://127.0.0.1:1\"\nsegment = \"nope\"\n";
    let errors = fx.errors(&text);
    let found: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 4, "{found:#?}");
    let expect = [
        ("\"0s\"", "header_read_timeout must be more than 0"),
        (
            "\"15 mins and a bit\"",
            "bad duration \"15 mins and a bit\"",
        ),
        ("\"15M\"", "is in months"),
        ("\"nope\"", "unknown segment \"nope\""),
    ];
    for (e, (needle, message)) in errors.iter().zip(expect) {
        assert_eq!(e.file, fx.path());
        assert_eq!((e.line, e.column), position(&text, needle), "{e}");
        assert!(
            e.message.contains(message),
            "{e}\nshould contain: {message}"
        );
    }
}

#[test]
fn a_toml_syntax_error_is_still_reported_alone() {
    let fx = Fixture::new();
    let text = with_server_lines("header_read_timeout = \"15M\"\n") + "\n[[route]\nhost = 1\n";
    let errors = fx.errors(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

/// A certificate and key made for these tests, written under `pki/`.
fn write_cert(
    fx: &Fixture,
    name: &str,
    hosts: &[&str],
    not_after: time::OffsetDateTime,
) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = not_after - time::Duration::days(400);
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    (
        fx.write(&format!("pki/{name}.pem"), cert.pem().as_bytes()),
        fx.write(&format!("pki/{name}.key"), key.serialize_pem().as_bytes()),
    )
}

#[test]
fn a_server_key_that_is_not_the_certificates_names_both_files() {
    let fx = Fixture::new();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(300);
    write_cert(&fx, "other", &["gate.test"], later);
    let text = with_base("").replace("key = \"pki/server.key\"", "key = \"pki/other.key\"");
    let e = fx.single_error(
        &text,
        "\"pki/other.key\"",
        "does not belong to the certificate",
    );
    let dir = fx.dir.path();
    for file in [dir.join("pki/other.key"), dir.join("pki/server.pem")] {
        assert!(e.message.contains(&file.display().to_string()), "{e}");
    }
    // The matching pair loads.
    let text = with_base("").replace("pki/server.", "pki/other.");
    fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_forward_auth_key_that_is_not_its_certificates_is_an_error() {
    let fx = Fixture::new();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(300);
    write_cert(&fx, "other", &["gate.test"], later);
    let text = with_base(
        "[forward_auth]\nlisten = \"127.0.0.1:9090\"\ntls_certificate = \"pki/server.pem\"\n\
         tls_key = \"pki/other.key\"\nproxy_ca = \"pki/ca.pem\"\n\n\
         [[forward_auth.proxy]]\nname = \"nginx\"\nkind = \"nginx\"\nfrom = [\"127.0.0.1\"]\n",
    );
    let e = fx.single_error(
        &text,
        "\"pki/other.key\"",
        "[forward_auth] tls_certificate and tls_key: the private key",
    );
    assert!(e.message.contains("server.pem"), "{e}");
}

#[test]
fn an_expired_server_certificate_loads_but_is_a_certificate_problem_and_an_error_line() {
    // It loads: a reload refused over it would also keep new CRLs and
    // rules out. check-config fails on `certificate_problems` (tests/it/cli.rs).
    let fx = Fixture::new();
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    write_cert(&fx, "old", &["gate.test"], past);
    let text = with_base("").replace("pki/server.", "pki/old.");
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let now = time::OffsetDateTime::now_utc();
    let problems = posture_core::config::certificate_problems(&s, now.unix_timestamp());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("the server certificate "),
        "{problems:?}"
    );
    assert!(problems[0].contains("old.pem expired on"), "{problems:?}");
    assert!(
        problems[0].contains(&past.date().to_string()),
        "{problems:?}"
    );
    let out = summary_at(&s, now);
    assert!(out.contains(&format!("ERROR: {}", problems[0])), "{out}");
    // A valid one has none.
    let fine = fx.load(&with_base("")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        posture_core::config::certificate_problems(&fine, now.unix_timestamp()),
        Vec::<String>::new()
    );
}

#[test]
fn check_config_warns_of_a_server_certificate_expiring_soon_and_of_route_hosts_it_does_not_name() {
    let fx = Fixture::new();
    let soon = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    write_cert(
        &fx,
        "soon",
        &["*.rijk.example", "gate.test", "192.0.2.7"],
        soon,
    );
    let mut text = with_base("").replace("pki/server.", "pki/soon.");
    for host in [
        "intranet.rijk.example",
        "a.b.rijk.example",
        "192.0.2.7",
        "192.0.2.8",
        "gate.test",
    ] {
        text += &format!(
            "\n[[route]]\nhost = \"{host}\"\nupstream = \"http://127.0.0.1:1\"\nsegment = \"s\"\n"
        );
    }
    let s = fx.load(&text).unwrap_or_else(|e| panic!("{e}"));
    let out = summary_at(&s, time::OffsetDateTime::now_utc());
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("WARNING")).collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(
        warnings[0].contains("expires in 9days") || warnings[0].contains("expires in 10days"),
        "{out}"
    );
    assert!(
        warnings[1].contains("does not name a.b.rijk.example, 192.0.2.8 (")
            && warnings[1].contains("--host a.b.rijk.example --host 192.0.2.8"),
        "{out}"
    );
}

#[test]
fn a_store_client_key_that_is_not_its_certificates_names_both_files() {
    let fx = Fixture::new();
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(300);
    write_cert(&fx, "other", &["redis-client"], later);
    let text = with_base(
        "[store]\nkind = \"redis\"\nurl = \"rediss://redis.intern:6380\"\n\
         ca = \"pki/ca.pem\"\ncert = \"pki/server.pem\"\nkey = \"pki/other.key\"\n",
    );
    let e = fx.single_error(
        &text,
        "\"pki/other.key\"",
        "[store] cert and key: the private key",
    );
    let dir = fx.dir.path();
    for file in [dir.join("pki/other.key"), dir.join("pki/server.pem")] {
        assert!(e.message.contains(&file.display().to_string()), "{e}");
    }
}
