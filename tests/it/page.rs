//! The denial page as a contractor and an API client see it: negotiation,
//! every problem in both languages, the prohibited-software page per OS,
//! RFC 9457 members, escaping, leaks, and the CSP hash.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use posture_core::attestation::claims::{Os, OsFamily};
use posture_core::attestation::{Reason, VerifierSettings};
use posture_core::catalogue::{Catalogue, Matcher};
use posture_core::config::model::{
    OrganizationConfig, RemediationConfig, Sensitivity, ServiceDesk,
};
use posture_core::config::snapshot::{
    AttestationSettings, DeviceSelector, Exemption, OsVersion, Policy, Remediation, Route, Rule,
    Segment, ServerSettings,
};
use posture_core::config::Snapshot;
use posture_core::decision::SegmentResult;
use posture_core::verdict::{Decision, Finding, FindingItem, ItemKind, Requirement, Unmet};
use posture_gate::page::{
    negotiate, render, Format, Lang, PageInput, Problem, Rendered, CONTENT_SECURITY_POLICY,
};

const UPSTREAM: &str = "http://10.1.2.3:8080/secret";
const CONFIG_PATH: &str = "/etc/posture-gate/gate.toml";
const KEY_PATH: &str = "/etc/posture-gate/private/gate-key.pem";
const EXEMPTION_REF: &str = "RISK-2026-017";
const NONCE_SECRET: &str = "nonce-secret-0123456789abcdef0123456789";
const REFERENCE: &str = "K7M4-Q2XP";
const DESK_PHONE: &str = "+31 (0)70 123 45 67";
const GATE_URL: &str = "https://finance.intern.example:8443";

/// The one place that builds a snapshot; swap it for the config loader when
/// that exists. It carries an upstream, paths, an exemption and a secret
/// that no page may show.
fn test_snapshot() -> Snapshot {
    let catalogue = Catalogue::builtin().expect("the built-in catalogue parses");
    let kaspersky = catalogue
        .index_of("kaspersky")
        .expect("kaspersky is built in");
    Snapshot {
        source: Some(PathBuf::from(CONFIG_PATH)),
        server: Some(ServerSettings {
            listen: ([127, 0, 0, 1], 8443).into(),
            cert: PathBuf::from("/etc/posture-gate/gate.pem"),
            cert_chain: Vec::new(),
            key: PathBuf::from(KEY_PATH),
            private_key: Arc::new(rustls_pki_types::PrivatePkcs8KeyDer::from(Vec::new()).into()),
            client_ca: PathBuf::from("/etc/posture-gate/clients-ca.pem"),
            client_cas: Vec::new(),
            crls: Vec::new(),
            revocation_lists: Vec::new(),
            crl_validity: Vec::new(),
            max_connections: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 65536,
            upstream_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            max_connections_per_ip: 64,
            body_timeout: Duration::from_secs(20),
            body_min_rate: 4096,
            max_body_bytes_in_flight: 64 << 20,
            max_streams_without_certificate: 8,
            proxy_protocol_from: Vec::new(),
            forward_auth: None,
            nac: None,
            audit: Default::default(),
            attest_without_certificate_per_minute: 30,
            admin: None,
        }),
        attestation: AttestationSettings {
            trust_anchors: Vec::new(),
            verifier: VerifierSettings {
                max_age: Duration::from_secs(900),
                clock_skew: Duration::from_secs(60),
                require_nonce: true,
            },
            nonce_secret: Some(NONCE_SECRET.as_bytes().to_vec()),
            nonce_ttl: Duration::from_secs(300),
            posture_cache_capacity: 1000,
        },
        matcher: Matcher::new(&catalogue),
        catalogue: Arc::new(catalogue),
        segments: vec![Segment {
            name: "finance".into(),
            description: "Financiële administratie".into(),
            description_en: "Financial administration".into(),
            sensitivity: Sensitivity::High,
            policy: 0,
            vlan: Some(42),
        }],
        policies: vec![Policy {
            name: "strict-policy".into(),
            description: String::new(),
            rules: vec![Rule {
                entry: 0,
                action: Decision::Deny,
                categories: None,
                deny_from: None,
            }],
            min_os_version: vec![(
                OsFamily::Windows,
                OsVersion::parse("10.0.19045").expect("a version"),
            )],
            require_antivirus: OsFamily::ALL.to_vec(),
        }],
        routes: vec![Route {
            host: "finance.intern.example".into(),
            path_prefix: "/".into(),
            upstream: UPSTREAM.parse().expect("test URI"),
            upstream_ca: None,
            segment: 0,
            allow_encoded_percent: false,
            upgrades: vec!["websocket".into()],
        }],
        exemptions: vec![Exemption {
            device: DeviceSelector::Subject {
                written: "CN=lt-042,O=Leverancier BV".into(),
                name: posture_core::dn::DistinguishedName::parse("CN=lt-042,O=Leverancier BV")
                    .expect("a subject"),
            },
            catalogue_id: "kaspersky".into(),
            entry: kaspersky,
            expires: time::macros::date!(2026 - 12 - 31),
            reference: EXEMPTION_REF.into(),
            segments: None,
        }],
        remediation: Remediation::compile(&RemediationConfig {
            service_desk: ServiceDesk {
                name: "Servicedesk Rijksportaal".into(),
                phone: DESK_PHONE.into(),
                email: "servicedesk@example.nl".into(),
                url: "https://servicedesk.example.nl/".into(),
                hours_nl: "Werkdagen van 8.00 tot 18.00 uur".into(),
                hours_en: "Weekdays from 8:00 to 18:00".into(),
            },
            organizations: vec![OrganizationConfig {
                name: serde_spanned::Spanned::new(0..0, "Leverancier BV".into()),
                text_nl: "Bel eerst de IT-afdeling van Leverancier BV: 020 765 43 21.".into(),
                text_en: "First call the IT department of Leverancier BV: 020 765 43 21.".into(),
            }],
            ..RemediationConfig::default()
        }),
        store: Default::default(),
    }
}

fn finding(name: &str, version: &str, action: Decision) -> Finding {
    Finding {
        catalog_id: "kaspersky".into(),
        segment: "finance".into(),
        action,
        item: FindingItem {
            kind: ItemKind::Software,
            name: name.into(),
            vendor: Some("AO Kaspersky Lab".into()),
            version: Some(version.into()),
            id: None,
        },
        category: "antivirus".into(),
        exemption: None,
        exemption_expires: None,
        deny_from: None,
    }
}

fn kaspersky_result() -> SegmentResult {
    SegmentResult {
        decision: Decision::Deny,
        findings: vec![finding(
            "Kaspersky Endpoint Security for Windows",
            "12.1.0.506",
            Decision::Deny,
        )],
        unmet: Vec::new(),
    }
}

fn os(family: OsFamily, name: &str, version: &str) -> Os {
    Os {
        family,
        name: Some(name.into()),
        version: Some(version.into()),
    }
}

struct Case {
    format: Format,
    lang: Lang,
    organization: Option<&'static str>,
    path: &'static str,
    gate_url: Option<&'static str>,
    os_family: Option<OsFamily>,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            format: Format::Html,
            lang: Lang::Nl,
            organization: None,
            path: "/finance/report?year=2026",
            gate_url: Some(GATE_URL),
            os_family: None,
        }
    }
}

fn page(problem: Problem<'_>, case: Case) -> Rendered {
    let snapshot = test_snapshot();
    render(&PageInput {
        problem,
        reference: REFERENCE,
        format: case.format,
        lang: case.lang,
        snapshot: &snapshot,
        organization: case.organization,
        path_and_query: case.path,
        gate_url: case.gate_url,
        os_family: case.os_family,
    })
}

fn text(r: &Rendered) -> String {
    String::from_utf8(r.body.to_vec()).expect("UTF-8 body")
}

fn json(r: &Rendered) -> Value {
    assert_eq!(r.content_type, "application/problem+json");
    serde_json::from_slice(&r.body).expect("problem+json parses")
}

/// Every problem with its status, the Prohibited ones built from `result`.
fn all_problems<'a>(result: &'a SegmentResult, device_os: &'a Os) -> Vec<(Problem<'a>, u16)> {
    let mut all = vec![
        (Problem::NoCertificate, 403),
        (Problem::NoPosture, 403),
        (Problem::StalePosture { aged_out: None }, 403),
        (Problem::CatalogueChanged, 403),
        (
            Problem::Prohibited {
                segment: "finance",
                result,
                os: Some(device_os),
            },
            403,
        ),
        (Problem::UnknownHost, 404),
        (Problem::UpstreamUnavailable, 502),
        (Problem::StoreUnavailable, 503),
        (Problem::UpstreamTimeout, 504),
        (Problem::PayloadTooLarge, 413),
        (Problem::BadRequest, 400),
    ];
    all.extend(
        Reason::ALL
            .into_iter()
            .map(|r| (Problem::InvalidAttestation(r), 403)),
    );
    all
}

#[test]
fn negotiation_table() {
    let browser =
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
    type Row<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Format,
        Lang,
    );
    let table: &[Row<'_>] = &[
        (None, None, None, Format::Html, Lang::Nl),
        (Some("*/*"), None, None, Format::Html, Lang::Nl),
        (
            Some(browser),
            Some("nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7"),
            None,
            Format::Html,
            Lang::Nl,
        ),
        (
            Some(browser),
            Some("en-GB,en;q=0.9"),
            None,
            Format::Html,
            Lang::En,
        ),
        (
            Some("application/json"),
            None,
            None,
            Format::ProblemJson,
            Lang::Nl,
        ),
        (
            Some("application/problem+json"),
            Some("en"),
            None,
            Format::ProblemJson,
            Lang::En,
        ),
        // axios' default: JSON named, */* as a fallback.
        (
            Some("application/json, text/plain, */*"),
            None,
            None,
            Format::ProblemJson,
            Lang::Nl,
        ),
        (
            Some("text/html;q=0.5, application/json"),
            None,
            None,
            Format::ProblemJson,
            Lang::Nl,
        ),
        (
            Some("application/json;q=0.5, text/html"),
            None,
            None,
            Format::Html,
            Lang::Nl,
        ),
        (
            Some("application/json;q=0"),
            None,
            None,
            Format::Html,
            Lang::Nl,
        ),
        (
            Some("APPLICATION/PROBLEM+JSON; charset=utf-8"),
            None,
            None,
            Format::ProblemJson,
            Lang::Nl,
        ),
        (
            Some("text/*, application/json;q=0.9"),
            None,
            None,
            Format::Html,
            Lang::Nl,
        ),
        (
            Some("garbage;;;,=,/"),
            Some(";;,q=x"),
            Some("&&=&"),
            Format::Html,
            Lang::Nl,
        ),
        (None, Some("nl-BE"), None, Format::Html, Lang::Nl),
        (None, Some("en-US"), None, Format::Html, Lang::En),
        // Other languages read English better than Dutch (issue 19).
        (None, Some("fr-FR, de;q=0.9"), None, Format::Html, Lang::En),
        (None, Some("de"), None, Format::Html, Lang::En),
        (None, Some("de-DE,de;q=0.9"), None, Format::Html, Lang::En),
        (None, Some("fr"), None, Format::Html, Lang::En),
        (None, Some("pl-PL,pl;q=0.9"), None, Format::Html, Lang::En),
        (None, Some("de, nl;q=0.5"), None, Format::Html, Lang::Nl),
        (None, Some("nl"), None, Format::Html, Lang::Nl),
        (None, Some("*"), None, Format::Html, Lang::Nl),
        (
            None,
            Some("de-DE, en;q=0.8, nl;q=0.5"),
            None,
            Format::Html,
            Lang::En,
        ),
        (
            None,
            Some("nl;q=0.4, en;q=0.6"),
            None,
            Format::Html,
            Lang::En,
        ),
        (None, Some("en;q=0, nl;q=0.1"), None, Format::Html, Lang::Nl),
        (None, Some("en;q=0"), None, Format::Html, Lang::Nl),
        (None, Some("*"), None, Format::Html, Lang::Nl),
        (None, Some("en"), Some("lang=nl"), Format::Html, Lang::Nl),
        (
            None,
            Some("nl"),
            Some("year=2026&lang=en"),
            Format::Html,
            Lang::En,
        ),
        (None, Some("en"), Some("lang=fr"), Format::Html, Lang::En),
        (
            Some("application/json"),
            None,
            Some("lang=en"),
            Format::ProblemJson,
            Lang::En,
        ),
    ];
    for (accept, accept_language, query, format, lang) in table {
        assert_eq!(
            negotiate(*accept, *accept_language, *query),
            (*format, *lang),
            "Accept: {accept:?}, Accept-Language: {accept_language:?}, query: {query:?}"
        );
    }
}

#[test]
fn every_problem_renders_in_both_languages_with_status_lang_reference_and_service_desk() {
    let result = kaspersky_result();
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    for (problem, status) in all_problems(&result, &device_os) {
        for lang in [Lang::Nl, Lang::En] {
            let r = page(
                problem,
                Case {
                    lang,
                    ..Case::default()
                },
            );
            let body = text(&r);
            assert_eq!(r.status.as_u16(), status, "{body}");
            assert_eq!(r.content_type, "text/html; charset=utf-8");
            assert!(
                body.starts_with("<!DOCTYPE html>\n<html lang=\"")
                    && body.contains(&format!("<html lang=\"{}\">", lang.code()))
            );
            assert!(
                body.contains(&format!("<code>{REFERENCE}</code>")),
                "{body}"
            );
            assert!(
                body.contains(DESK_PHONE) && body.contains("href=\"tel:+31701234567\""),
                "{body}"
            );
            assert!(body.contains("servicedesk@example.nl"));
            assert_eq!(body.matches("<h1>").count(), 1);
            assert!(body.contains("<main") && body.contains("name=\"viewport\""));
            let hint = lang.pick("Noem deze referentie", "Quote this reference");
            assert!(body.contains(hint), "{body}");

            let j = json(&page(
                problem,
                Case {
                    lang,
                    format: Format::ProblemJson,
                    ..Case::default()
                },
            ));
            assert_eq!(j["status"], status);
            assert!(
                j["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("urn:posture-gate:problem:")),
                "{j}"
            );
            assert!(j["title"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(j["detail"].as_str().is_some_and(|t| !t.is_empty()));
            assert_eq!(j["instance"], format!("urn:posture-gate:ref:{REFERENCE}"));
            assert_eq!(j["reference"], REFERENCE);
            assert_eq!(j["service_desk"]["phone"], DESK_PHONE);
        }
    }
}

#[test]
fn the_two_languages_really_differ() {
    let nl = text(&page(Problem::NoPosture, Case::default()));
    let en = text(&page(
        Problem::NoPosture,
        Case {
            lang: Lang::En,
            ..Case::default()
        },
    ));
    assert!(nl.contains("Uw apparaat is nog niet gecontroleerd"));
    assert!(en.contains("Your device has not been checked yet"));
    assert!(!en.contains("Uw apparaat"));
}

#[test]
fn invalid_attestation_names_the_reason_in_plain_words_and_its_code() {
    for reason in Reason::ALL {
        let body = text(&page(
            Problem::InvalidAttestation(reason),
            Case {
                lang: Lang::En,
                ..Case::default()
            },
        ));
        assert!(
            body.contains(&format!("<dd>{}</dd>", reason.code())),
            "{reason:?}"
        );
        let j = json(&page(
            Problem::InvalidAttestation(reason),
            Case {
                format: Format::ProblemJson,
                ..Case::default()
            },
        ));
        assert_eq!(j["type"], "urn:posture-gate:problem:invalid-attestation");
        assert_eq!(j["reason"], reason.code());
    }
    let body = text(&page(
        Problem::InvalidAttestation(Reason::FutureIat),
        Case::default(),
    ));
    assert!(body.contains("klok van uw apparaat"), "{body}");
    let body = text(&page(
        Problem::InvalidAttestation(Reason::NonceReplayed),
        Case {
            lang: Lang::En,
            ..Case::default()
        },
    ));
    assert!(body.contains("has been used before"), "{body}");
}

#[test]
fn distinct_pages_for_certificate_posture_and_staleness() {
    let nocert = text(&page(Problem::NoCertificate, Case::default()));
    assert!(nocert.contains("apparaatcertificaat aan bij uw organisatie"));
    assert!(nocert.contains("welk certificaat u wilt gebruiken"));
    assert!(!nocert.contains("posture-agent attest"));
    for problem in [
        Problem::NoPosture,
        Problem::StalePosture { aged_out: None },
        Problem::CatalogueChanged,
    ] {
        let body = text(&page(
            problem,
            Case {
                lang: Lang::En,
                ..Case::default()
            },
        ));
        // The real command for this gate, with the CA file the organisation
        // hands out, and the service triggers of every OS (the device's OS
        // is not known here).
        assert!(
            body.contains(&format!(
                "<code>posture-agent attest --gate {GATE_URL} --ca gate-ca.pem</code>"
            )),
            "{body}"
        );
        assert!(!body.contains("HOSTNAME") && !body.contains("--key KEY"));
        for trigger in [
            "systemctl start posture-agent.service",
            "touch /Users/Shared/posture-agent/check-now",
            "schtasks /run /tn &#34;\\posture-gate\\posture-agent&#34;",
        ] {
            assert!(body.contains(trigger), "{trigger}: {body}");
        }
        assert!(body.contains("<ol class=\"steps\""));
    }
    let stale = text(&page(
        Problem::StalePosture { aged_out: None },
        Case::default(),
    ));
    assert!(stale.contains("te oud"));
    let j = json(&page(
        Problem::StalePosture { aged_out: None },
        Case {
            format: Format::ProblemJson,
            ..Case::default()
        },
    ));
    assert_eq!(j["type"], "urn:posture-gate:problem:stale-attestation");
    assert_eq!(j["code"], "stale_posture");
    let changed = text(&page(Problem::CatalogueChanged, Case::default()));
    assert!(changed.contains(
        "De lijst met verboden software is gewijzigd op of na de laatste controle van uw apparaat"
    ));
    assert!(changed.contains("<dd>catalogue_changed</dd>"));
    assert!(!changed.contains("te oud"));
    let steps = j["remediation"].as_array().expect("remediation steps");
    assert!(
        steps.iter().any(|s| s
            .as_str()
            .is_some_and(|s| s.contains("posture-agent attest"))),
        "{j}"
    );
}

#[test]
fn prohibited_page_on_windows_shows_product_version_rationale_and_windows_steps() {
    let result = kaspersky_result();
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: Some(&device_os),
    };
    let body = text(&page(problem, Case::default()));
    assert!(body.contains("Kaspersky Endpoint Security for Windows"));
    assert!(body.contains("versie 12.1.0.506"), "{body}");
    assert!(body.contains("Windows 11 Pro 10.0.22631"));
    assert!(body.contains("Financiële administratie") && body.contains("finance"));
    let snapshot = test_snapshot();
    let entry = kaspersky_entry(&snapshot);
    assert!(
        body.contains(&escape(&entry.rationale.nl)),
        "rationale missing"
    );
    for step in &entry.removal_steps(Some(OsFamily::Windows)).nl {
        assert!(
            body.contains(&format!("<li>{}", escape(step))),
            "missing step {step:?}"
        );
    }
    let windows = &entry.removal_steps(Some(OsFamily::Windows)).nl;
    for step in entry
        .removal_steps(Some(OsFamily::Linux))
        .nl
        .iter()
        .filter(|s| !windows.contains(s))
    {
        assert!(
            !body.contains(&escape(step)),
            "Linux step {step:?} on a Windows page"
        );
    }
    assert!(
        body.contains(&format!(
            "Zo verwijdert u {} (Windows)",
            escape(&entry.title.nl)
        )),
        "{body}"
    );
    assert!(body.contains("posture-agent attest"));
    // The retry link is the same path and query.
    assert!(
        body.contains("href=\"/finance/report?year=2026\""),
        "{body}"
    );
}

#[test]
fn prohibited_page_on_linux_shows_the_linux_steps_in_english() {
    let result = kaspersky_result();
    let device_os = os(OsFamily::Linux, "Ubuntu", "24.04");
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: Some(&device_os),
    };
    let body = text(&page(
        problem,
        Case {
            lang: Lang::En,
            ..Case::default()
        },
    ));
    let snapshot = test_snapshot();
    let entry = kaspersky_entry(&snapshot);
    assert!(body.contains(&escape(&entry.rationale.en)));
    for step in &entry.removal_steps(Some(OsFamily::Linux)).en {
        assert!(
            body.contains(&format!("<li>{}", escape(step))),
            "missing step {step:?}"
        );
    }
    let linux = &entry.removal_steps(Some(OsFamily::Linux)).en;
    for step in entry
        .removal_steps(Some(OsFamily::Windows))
        .en
        .iter()
        .filter(|s| !linux.contains(s))
    {
        assert!(
            !body.contains(&escape(step)),
            "Windows step {step:?} on a Linux page"
        );
    }
    assert!(body.contains(&format!(
        "How to remove {} (Linux)",
        escape(&entry.title.en)
    )));
}

#[test]
fn prohibited_problem_json_has_rfc9457_members_and_extensions() {
    let result = kaspersky_result();
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: Some(&device_os),
    };
    let r = page(
        problem,
        Case {
            format: Format::ProblemJson,
            lang: Lang::En,
            ..Case::default()
        },
    );
    assert_eq!(r.status.as_u16(), 403);
    let j = json(&r);
    assert_eq!(j["type"], "urn:posture-gate:problem:prohibited-software");
    assert_eq!(j["title"], "Prohibited software found on your device");
    assert_eq!(j["status"], 403);
    assert_eq!(j["instance"], "urn:posture-gate:ref:K7M4-Q2XP");
    assert_eq!(j["segment"], "finance");
    assert_eq!(j["lang"], "en");
    let f = &j["findings"][0];
    assert_eq!(f["catalog_id"], "kaspersky");
    assert_eq!(f["product"], "Kaspersky Endpoint Security for Windows");
    assert_eq!(f["version"], "12.1.0.506");
    assert_eq!(f["category"], "antivirus");
    assert_eq!(f["action"], "deny");
    let steps: Vec<&str> = j["remediation"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let snapshot = test_snapshot();
    let entry = kaspersky_entry(&snapshot);
    for step in &entry.removal_steps(Some(OsFamily::Windows)).en {
        assert!(steps.contains(&step.as_str()), "{steps:?}");
    }
    assert!(steps.iter().any(|s| s.contains("posture-agent attest")));
    assert_eq!(j["service_desk"]["name"], "Servicedesk Rijksportaal");
    assert_eq!(j["service_desk"]["hours"], "Weekdays from 8:00 to 18:00");
}

#[test]
fn unknown_os_and_unknown_catalogue_ids_still_get_removal_steps() {
    let mut result = kaspersky_result();
    result.findings.push(Finding {
        catalog_id: "not-in-catalogue".into(),
        ..finding("Acme Spyware", "1.0", Decision::Deny)
    });
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: None,
    };
    let body = text(&page(
        problem,
        Case {
            lang: Lang::En,
            ..Case::default()
        },
    ));
    let snapshot = test_snapshot();
    for step in &kaspersky_entry(&snapshot).removal_steps(None).en {
        assert!(
            body.contains(&escape(step)),
            "missing generic step {step:?}"
        );
    }
    assert!(
        body.contains(&format!(
            "How to remove {}</h2>",
            escape(&kaspersky_entry(&snapshot).title.en)
        )),
        "{body}"
    );
    assert!(body.contains("How to remove Acme Spyware</h2>"));
    assert!(body.contains("Remove Acme Spyware from this device"));
}

#[test]
fn unmet_requirements_get_their_own_page_with_os_specific_fixes() {
    let result = SegmentResult {
        decision: Decision::Deny,
        findings: Vec::new(),
        unmet: vec![
            Unmet {
                requirement: Requirement::MinOsVersion,
                segment: "finance".into(),
                action: Decision::Deny,
                detail: "windows 10.0.17763".into(),
            },
            Unmet {
                requirement: Requirement::Antivirus,
                segment: "finance".into(),
                action: Decision::Deny,
                detail: "no enabled antivirus".into(),
            },
        ],
    };
    let device_os = os(
        OsFamily::Windows,
        "Windows 10 Enterprise LTSC",
        "10.0.17763",
    );
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: Some(&device_os),
    };
    let body = text(&page(problem, Case::default()));
    assert!(body.contains("Uw apparaat voldoet niet aan de eisen"));
    // What the device reported, in Dutch from the reported OS, not the
    // core's English detail.
    assert!(body.contains("Windows 10.0.17763"), "{body}");
    assert!(body.contains("geen antivirus die aan staat en bijgewerkt is (Windows)"));
    assert!(!body.contains("windows 10.0.17763") && !body.contains("no enabled antivirus"));
    assert!(body.contains("Windows Update") && body.contains("Windows-beveiliging"));
    assert!(!body.contains("verboden software op uw apparaat"));
    let j = json(&page(
        problem,
        Case {
            format: Format::ProblemJson,
            ..Case::default()
        },
    ));
    assert_eq!(j["type"], "urn:posture-gate:problem:requirements-not-met");
    assert_eq!(j["unmet"][0]["requirement"], "min_os_version");
    assert_eq!(j["unmet"][1]["requirement"], "antivirus");
    assert!(j.get("findings").is_none());
}

#[test]
fn device_supplied_markup_is_escaped() {
    let mut result = kaspersky_result();
    result.findings[0].item.name = "<script>alert(1)</script>".into();
    result.findings[0].item.version = Some("\"><img src=x onerror=alert(2)>".into());
    result.findings[0].item.vendor = Some("<b>AO</b>".into());
    let device_os = Os {
        family: OsFamily::Windows,
        name: Some("<svg onload=alert(3)>".into()),
        version: None,
    };
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: Some(&device_os),
    };
    let body = text(&page(
        problem,
        Case {
            organization: Some("<i>Leverancier BV</i>"),
            ..Case::default()
        },
    ));
    for raw in ["<script", "<img", "<svg", "<b>", "<i>"] {
        assert!(!body.contains(raw), "{raw} was not escaped");
    }
    assert!(
        body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{body}"
    );
    // JSON carries the same bytes as data, not markup.
    let j = json(&page(
        problem,
        Case {
            format: Format::ProblemJson,
            ..Case::default()
        },
    ));
    assert_eq!(j["findings"][0]["product"], "<script>alert(1)</script>");
}

#[test]
fn no_upstream_path_or_internal_config_leaks() {
    let result = kaspersky_result();
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    let secrets = [
        UPSTREAM,
        "10.1.2.3",
        ":8080",
        "/secret",
        CONFIG_PATH,
        KEY_PATH,
        "/etc/",
        EXEMPTION_REF,
        NONCE_SECRET,
        "strict-policy",
        "finance.intern.example",
    ];
    for (problem, _) in all_problems(&result, &device_os) {
        for format in [Format::Html, Format::ProblemJson] {
            for lang in [Lang::Nl, Lang::En] {
                let body = text(&page(
                    problem,
                    Case {
                        format,
                        lang,
                        organization: Some("Leverancier BV"),
                        // The agent command names the host the request came
                        // to, which the person typed; the routes' hosts are
                        // not otherwise on a page.
                        gate_url: Some("https://portal.example.nl:443"),
                        ..Case::default()
                    },
                ));
                for secret in secrets {
                    assert!(!body.contains(secret), "{secret:?} leaked:\n{body}");
                }
            }
        }
    }
}

#[test]
fn the_page_is_self_contained_and_its_csp_hash_matches_the_inline_css() {
    let result = kaspersky_result();
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    for (problem, _) in all_problems(&result, &device_os) {
        let body = text(&page(problem, Case::default()));
        for forbidden in [
            "<script",
            "<link",
            "<img",
            "<iframe",
            "<form",
            "src=",
            "url(",
            "@import",
            " style=\"",
        ] {
            assert!(!body.contains(forbidden), "{forbidden} in page");
        }
        let (_, rest) = body.split_once("<style>").expect("inline style");
        let (css, _) = rest.split_once("</style>").expect("closed style");
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(css.as_bytes()));
        assert!(
            CONTENT_SECURITY_POLICY.contains(&format!("style-src 'sha256-{hash}'")),
            "{CONTENT_SECURITY_POLICY}"
        );
        assert_eq!(body.matches("<style>").count(), 1);
    }
    assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'"));
}

#[test]
fn language_switch_keeps_the_path_and_other_parameters() {
    let nl = text(&page(Problem::NoPosture, Case::default()));
    assert!(nl.contains("href=\"/finance/report?year=2026&#38;lang=en\" hreflang=\"en\" lang=\"en\">English</a>"), "{nl}");
    let en = text(&page(
        Problem::NoPosture,
        Case {
            lang: Lang::En,
            path: "/x?lang=en&a=b",
            ..Case::default()
        },
    ));
    assert!(
        en.contains("href=\"/x?a=b&#38;lang=nl\" hreflang=\"nl\" lang=\"nl\">Nederlands</a>"),
        "{en}"
    );
}

#[test]
fn links_never_leave_the_host() {
    let body = text(&page(
        Problem::NoPosture,
        Case {
            path: "//evil.example/phish",
            ..Case::default()
        },
    ));
    assert!(!body.contains("evil.example"));
    assert!(body.contains("href=\"/?lang=en\""));
    assert!(body.contains("href=\"/\""));
}

#[test]
fn organization_text_is_shown_only_to_that_organization() {
    let mine = text(&page(
        Problem::NoPosture,
        Case {
            organization: Some("leverancier bv"),
            ..Case::default()
        },
    ));
    assert!(mine.contains("Bel eerst de IT-afdeling van Leverancier BV"));
    assert!(mine.contains("Voor medewerkers van Leverancier BV"));
    let other = text(&page(
        Problem::NoPosture,
        Case {
            organization: Some("Ander BV"),
            ..Case::default()
        },
    ));
    assert!(!other.contains("Leverancier BV"));
    let none = text(&page(Problem::NoCertificate, Case::default()));
    assert!(!none.contains("Leverancier BV"));
    let j = json(&page(
        Problem::NoPosture,
        Case {
            organization: Some("Leverancier BV"),
            lang: Lang::En,
            format: Format::ProblemJson,
            ..Case::default()
        },
    ));
    assert_eq!(
        j["organisation_text"],
        "First call the IT department of Leverancier BV: 020 765 43 21."
    );
}

/// The headers as the gate sends them with a page (the page module only
/// renders the body; the response around it is the gate's).
#[tokio::test]
async fn every_page_comes_with_the_csp_and_no_store() {
    use crate::support::{request, upstream, Proto, RouteSpec, Settings, TestGate};
    let app = upstream::start("finance").await;
    let routes = [RouteSpec {
        host: "finance.test",
        prefix: "/",
        upstream: app.url(),
        segment: "finance",
    }];
    let gate = TestGate::start(&routes, &Settings::default()).await;
    // A certificate but no posture: the gate answers with its own page.
    let device = gate.pki.device("lt-001", "Leverancier BV");
    let client = gate.client(Some(&device), Proto::H1);
    for (accept, content_type) in [
        ("text/html", "text/html; charset=utf-8"),
        ("application/problem+json", "application/problem+json"),
    ] {
        let req = request("GET", "finance.test", "/", Proto::H1)
            .header("accept", accept)
            .body(http_body_util::Full::default())
            .unwrap();
        let r = client.send(req).await;
        assert_eq!(r.status, 403, "{accept}");
        let headers: BTreeMap<String, String> = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        assert_eq!(headers["content-type"], content_type);
        assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["vary"].contains("Accept-Language"));
    }
}

/// Writes every page to target/tmp/page-samples for a look in a browser.
#[test]
fn sample_pages_are_written_for_visual_review() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("page-samples");
    std::fs::create_dir_all(&dir).expect("sample dir");
    let windows = kaspersky_result();
    let win_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    let mut mixed = kaspersky_result();
    mixed.findings.push(finding(
        "Kaspersky VPN Secure Connection",
        "5.9",
        Decision::Warn,
    ));
    mixed.unmet.push(Unmet {
        requirement: Requirement::Antivirus,
        segment: "finance".into(),
        action: Decision::Deny,
        detail: "geen werkende antivirus".into(),
    });
    let linux_os = os(OsFamily::Linux, "Ubuntu", "24.04");
    let samples: Vec<(&str, Problem<'_>, Option<&'static str>)> = vec![
        (
            "prohibited",
            Problem::Prohibited {
                segment: "finance",
                result: &windows,
                os: Some(&win_os),
            },
            Some("Leverancier BV"),
        ),
        (
            "prohibited-mixed-linux",
            Problem::Prohibited {
                segment: "finance",
                result: &mixed,
                os: Some(&linux_os),
            },
            None,
        ),
        ("no-certificate", Problem::NoCertificate, None),
        ("no-posture", Problem::NoPosture, None),
        (
            "invalid-future-iat",
            Problem::InvalidAttestation(Reason::FutureIat),
            None,
        ),
        ("upstream-timeout", Problem::UpstreamTimeout, None),
    ];
    let mut written = BTreeMap::new();
    for (name, problem, organization) in samples {
        for lang in [Lang::Nl, Lang::En] {
            let body = text(&page(
                problem,
                Case {
                    lang,
                    organization,
                    ..Case::default()
                },
            ));
            assert!(body.trim_end().ends_with("</html>"));
            let file = dir.join(format!("{name}-{}.html", lang.code()));
            std::fs::write(&file, &body).expect("write sample");
            written.insert(file, body.len());
        }
    }
    assert_eq!(written.len(), 12);
}

fn kaspersky_entry(snapshot: &Snapshot) -> &posture_core::catalogue::Entry {
    let catalogue = &snapshot.catalogue;
    let index = catalogue
        .index_of("kaspersky")
        .expect("built-in kaspersky entry");
    &catalogue.entries()[index]
}

/// Askama's HTML escaping of the characters that catalogue steps contain.
fn escape(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The problem type names the problem by the vocabulary of codes
/// (`Problem::slug`, derived from `Problem::code`), for every problem and
/// for each of the three pages of a `prohibited` denial.
#[test]
fn the_problem_type_is_derived_from_the_code() {
    let result = kaspersky_result();
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    let unmet_only = SegmentResult {
        decision: Decision::Deny,
        findings: Vec::new(),
        unmet: vec![Unmet {
            requirement: Requirement::Antivirus,
            segment: "finance".into(),
            action: Decision::Deny,
            detail: String::new(),
        }],
    };
    let nothing = SegmentResult {
        decision: Decision::Deny,
        findings: Vec::new(),
        unmet: Vec::new(),
    };
    let mut problems: Vec<Problem<'_>> = all_problems(&result, &device_os)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    problems.push(Problem::CertificateRefused);
    for result in [&unmet_only, &nothing] {
        problems.push(Problem::Prohibited {
            segment: "finance",
            result,
            os: None,
        });
    }
    let mut slugs = std::collections::BTreeSet::new();
    for problem in problems {
        let r = page(
            problem,
            Case {
                format: Format::ProblemJson,
                ..Case::default()
            },
        );
        let j = json(&r);
        assert_eq!(
            j["type"],
            format!("urn:posture-gate:problem:{}", problem.slug()),
            "{}",
            problem.code()
        );
        slugs.insert(problem.slug());
    }
    assert!(slugs.contains("requirements-not-met") && slugs.contains("access-denied"));
}

// ------------------------------------------------------------ issue 19

fn page_with(snapshot: &Snapshot, problem: Problem<'_>, case: Case) -> Rendered {
    render(&PageInput {
        problem,
        reference: REFERENCE,
        format: case.format,
        lang: case.lang,
        snapshot,
        organization: case.organization,
        path_and_query: case.path,
        gate_url: case.gate_url,
        os_family: case.os_family,
    })
}

fn en() -> Case {
    Case {
        lang: Lang::En,
        ..Case::default()
    }
}

fn problem_json() -> Case {
    Case {
        format: Format::ProblemJson,
        ..Case::default()
    }
}

/// 2026-11-30T12:18:00Z.
const MOMENT: i64 = 1_796_041_080;

#[test]
fn a_stale_posture_names_when_it_aged_out_with_the_timezone() {
    let stale = Problem::StalePosture {
        aged_out: Some(MOMENT),
    };
    let nl = text(&page(stale, Case::default()));
    assert!(
        nl.contains(
            "Het laatste rapport van uw apparaat is verlopen op 30 november 2026 om 12:18 UTC."
        ),
        "{nl}"
    );
    assert!(nl.contains("<dd>stale_posture</dd>"));
    let english = text(&page(stale, en()));
    assert!(
        english.contains("Your device&#39;s last report expired at 30 November 2026 at 12:18 UTC."),
        "{english}"
    );
    let j = json(&page(stale, problem_json()));
    assert_eq!(j["code"], "stale_posture");
    assert_eq!(j["aged_out"], "2026-11-30T12:18:00Z");
    assert!(j["detail"].as_str().unwrap().contains("12:18 UTC"), "{j}");
}

#[test]
fn a_refused_last_report_is_named_instead_of_not_checked_yet() {
    let refused = Problem::ReportRefused {
        at: MOMENT,
        reason: Reason::KeyMismatch,
    };
    let nl = text(&page(refused, Case::default()));
    assert!(
        nl.contains("het laatste rapport, op 30 november 2026 om 12:18 UTC, is afgekeurd (key_mismatch). Het rapport is ondertekend met een ander certificaat"),
        "{nl}"
    );
    assert!(!nl.contains("nog niet gecontroleerd"));
    assert!(nl.contains("<dd>key_mismatch</dd>"));
    // The fix for the reason comes first among the steps.
    assert!(nl.contains("Gebruik bij posture-agent hetzelfde certificaat"));
    let english = text(&page(refused, en()));
    assert!(
        english.contains("its last report, at 30 November 2026 at 12:18 UTC, was refused (key_mismatch). The report was signed with a different certificate"),
        "{english}"
    );
    assert!(!english.contains("not been checked yet"));
    let j = json(&page(refused, problem_json()));
    assert_eq!(j["type"], "urn:posture-gate:problem:no-attestation");
    assert_eq!(j["code"], "no_posture");
    assert_eq!(j["reason"], "key_mismatch");
    assert_eq!(j["refused_at"], "2026-11-30T12:18:00Z");
}

#[test]
fn a_catalogue_change_is_named_in_both_languages() {
    let nl = text(&page(Problem::CatalogueChanged, Case::default()));
    assert!(nl.contains("De lijst met verboden software is gewijzigd op of na de laatste controle van uw apparaat. Laat uw apparaat opnieuw controleren"));
    let english = text(&page(Problem::CatalogueChanged, en()));
    assert!(english.contains("The list of prohibited software changed at or after your device&#39;s last check. Have your device checked again"), "{english}");
    let j = json(&page(Problem::CatalogueChanged, problem_json()));
    assert_eq!(j["code"], "catalogue_changed");
}

fn seen_as(kind: ItemKind, name: &str, version: Option<&str>, action: Decision) -> Finding {
    let mut f = finding(name, "", action);
    f.item.kind = kind;
    f.item.version = version.map(str::to_string);
    if kind != ItemKind::Software {
        f.item.vendor = None;
    }
    f
}

/// Kaspersky as a Windows agent reports it: the program, its process and
/// the security product.
fn kaspersky_three_ways(action: Decision) -> SegmentResult {
    SegmentResult {
        decision: action,
        findings: vec![
            seen_as(
                ItemKind::Software,
                "Kaspersky Endpoint Security for Windows",
                Some("12.1.0.506"),
                action,
            ),
            seen_as(ItemKind::Process, "avp.exe", None, action),
            seen_as(
                ItemKind::SecurityProduct,
                "Kaspersky Endpoint Security",
                None,
                action,
            ),
        ],
        unmet: Vec::new(),
    }
}

#[test]
fn one_product_seen_three_ways_is_one_card_listing_every_way() {
    let result = kaspersky_three_ways(Decision::Deny);
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: Some(&device_os),
    };
    for (lang, kinds) in [
        (
            Lang::Nl,
            [
                "geïnstalleerd programma",
                "actief proces",
                "beveiligingsproduct",
            ],
        ),
        (
            Lang::En,
            ["installed program", "running process", "security product"],
        ),
    ] {
        let body = text(&page(
            problem,
            Case {
                lang,
                ..Case::default()
            },
        ));
        assert_eq!(body.matches("<li class=\"card\">").count(), 1, "{body}");
        assert!(body.contains(
            "<li class=\"card\"><span class=\"name\">Kaspersky Endpoint Security for Windows</span>"
        ));
        for (kind, name) in kinds.iter().zip([
            "Kaspersky Endpoint Security for Windows",
            "avp.exe",
            "Kaspersky Endpoint Security",
        ]) {
            assert!(
                body.contains(&format!("<li>{kind}: <strong>{name}</strong>")),
                "{kind} {name}: {body}"
            );
        }
    }
    // problem+json keeps every finding for API clients.
    let j = json(&page(problem, problem_json()));
    assert_eq!(j["findings"].as_array().unwrap().len(), 3);
}

#[test]
fn removal_steps_come_right_after_what_was_found_and_the_rationale_after_them() {
    let result = kaspersky_result();
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: Some(&device_os),
    };
    let snapshot = test_snapshot();
    let entry = kaspersky_entry(&snapshot);
    for (lang, found, remove, check, why) in [
        (
            Lang::Nl,
            "Wat er is gevonden",
            "Zo verwijdert u",
            "Zo laat u uw apparaat controleren",
            "Waarom ",
        ),
        (
            Lang::En,
            "What was found",
            "How to remove",
            "How to have your device checked",
            "Why ",
        ),
    ] {
        let body = text(&page(
            problem,
            Case {
                lang,
                ..Case::default()
            },
        ));
        let at = |needle: &str| {
            body.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing: {body}"))
        };
        let rationale = escape(lang.pick(&entry.rationale.nl, &entry.rationale.en));
        assert!(at(found) < at(remove), "{lang:?}");
        assert!(at(remove) < at(check), "{lang:?}");
        assert!(at(check) < at(&format!("\">{why}")), "{lang:?}: {body}");
        assert!(at(remove) < at(&rationale), "{lang:?}");
    }
}

#[test]
fn english_pages_use_the_english_segment_description() {
    let result = kaspersky_result();
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: None,
    };
    let english = text(&page(problem, en()));
    assert!(
        english.contains("“Financial administration” (finance)"),
        "{english}"
    );
    assert!(!english.contains("Financiële administratie"));
    let nl = text(&page(problem, Case::default()));
    assert!(nl.contains("“Financiële administratie” (finance)"));
    // Without an English description, the one there is.
    let mut snapshot = test_snapshot();
    snapshot.segments[0].description_en = String::new();
    let english = text(&page_with(&snapshot, problem, en()));
    assert!(english.contains("“Financiële administratie” (finance)"));
}

#[test]
fn a_staged_finding_shows_the_day_access_will_be_refused() {
    let mut result = kaspersky_three_ways(Decision::Warn);
    for f in &mut result.findings {
        f.deny_from = Some("2027-01-15".into());
    }
    // A page with a staged finding next to an unmet requirement.
    result.decision = Decision::Deny;
    result.unmet.push(Unmet {
        requirement: Requirement::MinOsVersion,
        segment: "finance".into(),
        action: Decision::Deny,
        detail: "windows 10.0.17763".into(),
    });
    let device_os = os(OsFamily::Windows, "Windows 10", "10.0.17763");
    let problem = Problem::Prohibited {
        segment: "finance",
        result: &result,
        os: Some(&device_os),
    };
    let nl = text(&page(problem, Case::default()));
    assert!(
        nl.contains("waarschuwing: vanaf 15 januari 2027 wordt de toegang geweigerd"),
        "{nl}"
    );
    assert!(nl.contains("vanaf 15 januari 2027 wordt de toegang geweigerd zolang zij op uw apparaat staat. Verwijder haar voor die datum."));
    let english = text(&page(problem, en()));
    assert!(english.contains("warning: access will be refused from 15 January 2027"));
    assert!(english.contains("from 15 January 2027 access will be refused while it is on your device. Remove it before that date."));
    let j = json(&page(problem, problem_json()));
    assert_eq!(j["findings"][0]["deny_from"], "2027-01-15");
}

fn antivirus_unmet() -> SegmentResult {
    SegmentResult {
        decision: Decision::Deny,
        findings: Vec::new(),
        unmet: vec![Unmet {
            requirement: Requirement::Antivirus,
            segment: "finance".into(),
            action: Decision::Deny,
            detail: "no enabled, up-to-date antivirus or EDR reported".into(),
        }],
    }
}

#[test]
fn the_antivirus_requirement_says_what_counts_on_each_os_in_the_pages_language() {
    let result = antivirus_unmet();
    let cases = [
        (
            os(OsFamily::Macos, "macOS", "15.1"),
            [
                "XProtect, de ingebouwde bescherming van Apple",
                "XProtect, Apple's built-in protection",
            ],
        ),
        (
            os(OsFamily::Linux, "Debian GNU/Linux", "12"),
            [
                "bijvoorbeeld ClamAV (werk de definities bij met: sudo freshclam)",
                "for example ClamAV (update its signatures with: sudo freshclam)",
            ],
        ),
        (
            os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631"),
            [
                "Windows-beveiliging > Virus- en bedreigingsbeveiliging",
                "Windows Security > Virus & threat protection",
            ],
        ),
        (
            os(OsFamily::Android, "Android", "14"),
            [
                "posture-agent kan op dit besturingssysteem geen antivirus melden",
                "posture-agent cannot report an antivirus on this operating system",
            ],
        ),
    ];
    for (device_os, [nl_text, en_text]) in cases {
        let problem = Problem::Prohibited {
            segment: "finance",
            result: &result,
            os: Some(&device_os),
        };
        let (nl_text, en_text) = (escape(nl_text), escape(en_text));
        let nl = text(&page(problem, Case::default()));
        assert!(nl.contains(&nl_text), "{:?}: {nl}", device_os.family);
        assert!(!nl.contains(&en_text));
        // The detail is Dutch on a Dutch page, not the core's English.
        assert!(!nl.contains("up-to-date antivirus or EDR reported"), "{nl}");
        assert!(nl.contains("geen antivirus die aan staat en bijgewerkt is"));
        let english = text(&page(problem, en()));
        assert!(
            english.contains(&en_text),
            "{:?}: {english}",
            device_os.family
        );
        assert!(english.contains("no antivirus that is on and up to date"));
    }
}

#[test]
fn the_check_again_step_is_the_real_command_for_this_gate_and_os() {
    // Known OS: that OS's service trigger only, then the manual command.
    for (family, trigger, others) in [
        (
            OsFamily::Linux,
            "systemctl start posture-agent.service",
            ["check-now", "schtasks"],
        ),
        (
            OsFamily::Macos,
            "touch /Users/Shared/posture-agent/check-now",
            ["systemctl", "schtasks"],
        ),
        (
            OsFamily::Windows,
            "schtasks /run /tn &#34;\\posture-gate\\posture-agent&#34;",
            ["systemctl", "check-now"],
        ),
    ] {
        let body = text(&page(
            Problem::NoPosture,
            Case {
                os_family: Some(family),
                ..Case::default()
            },
        ));
        assert!(
            body.contains(&format!("<pre><code>{trigger}</code></pre>")),
            "{body}"
        );
        for other in others {
            assert!(!body.contains(other), "{family:?} page shows {other}");
        }
        let service = body.find(trigger).unwrap();
        let manual = body
            .find(
                "posture-agent attest --gate https://finance.intern.example:8443 --ca gate-ca.pem",
            )
            .expect("the manual command");
        assert!(service < manual);
        assert!(body.contains("agent.toml"));
    }
    // agent = "manual", a gate certificate from a public CA: the command
    // alone, without --ca.
    let mut snapshot = test_snapshot();
    snapshot.remediation.agent = posture_core::config::model::AgentMode::Manual;
    snapshot.remediation.agent_ca = String::new();
    let body = text(&page_with(&snapshot, Problem::NoPosture, Case::default()));
    assert!(body.contains(
        "<pre><code>posture-agent attest --gate https://finance.intern.example:8443</code></pre>"
    ));
    assert!(!body.contains("systemctl") && !body.contains("--ca"));
    // A CA path with a space stays one argument.
    snapshot.remediation.agent_ca = r"C:\ProgramData\Org CA\gate-ca.pem".into();
    let body = text(&page_with(&snapshot, Problem::NoPosture, Case::default()));
    assert!(
        body.contains("--ca &#34;C:\\ProgramData\\Org CA\\gate-ca.pem&#34;</code>"),
        "{body}"
    );
    snapshot.remediation.agent_ca = String::new();
    // agent = "service": the triggers, no manual command.
    snapshot.remediation.agent = posture_core::config::model::AgentMode::Service;
    let body = text(&page_with(&snapshot, Problem::NoPosture, Case::default()));
    assert!(body.contains("systemctl start posture-agent.service"));
    assert!(!body.contains("posture-agent attest"));
    // Behind forward-auth the gate's address is not known: the person is
    // told what to put in.
    let body = text(&page(
        Problem::NoPosture,
        Case {
            gate_url: None,
            lang: Lang::En,
            ..Case::default()
        },
    ));
    assert!(body.contains("posture-agent attest --gate https://HOSTNAME --ca gate-ca.pem"));
    assert!(body.contains("Replace HOSTNAME with the name in your browser"));
}

fn notice(result: &SegmentResult, lang: Lang, path: &str) -> String {
    let snapshot = test_snapshot();
    let device_os = os(OsFamily::Windows, "Windows 11 Pro", "10.0.22631");
    let r = posture_gate::page::render_notice(&posture_gate::page::NoticeInput {
        reference: REFERENCE,
        lang,
        snapshot: &snapshot,
        organization: None,
        segment: "finance",
        result,
        os: Some(&device_os),
        path_and_query: path,
        gate_url: Some(GATE_URL),
    });
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/html; charset=utf-8");
    text(&r)
}

#[test]
fn the_warning_notice_says_what_was_found_by_when_how_to_remove_it_and_continues() {
    let mut result = kaspersky_three_ways(Decision::Warn);
    for f in &mut result.findings {
        f.deny_from = Some("2027-01-15".into());
    }
    let nl = notice(&result, Lang::Nl, "/finance/report?year=2026");
    assert!(nl.contains("<p class=\"kicker\">Waarschuwing</p>"));
    // Not a refusal: no status among the facts.
    assert!(!nl.contains("<dt>Status</dt>"), "{nl}");
    assert!(
        nl.contains(
            "Vanaf 15 januari 2027 wordt de toegang geweigerd zolang die software erop staat."
        ),
        "{nl}"
    );
    assert_eq!(nl.matches("<li class=\"card\">").count(), 1);
    assert!(nl.contains("Zo verwijdert u"));
    assert!(
        nl.contains("<a class=\"button\" href=\"/finance/report?year=2026\">Verder</a>"),
        "{nl}"
    );
    assert!(nl.find("Zo verwijdert u").unwrap() < nl.find(">Verder</a>").unwrap());
    assert!(nl.contains(REFERENCE));
    // No language switch: it would lead to the app (the notice is shown
    // once), not to this notice in English.
    assert!(!nl.contains("hreflang"), "{nl}");
    let english = notice(&result, Lang::En, "/finance/report?year=2026");
    assert!(english.contains("<p class=\"kicker\">Warning</p>"));
    assert!(english.contains(
        "From 15 January 2027 access will be refused while that software is on your device."
    ));
    assert!(english.contains("<a class=\"button\" href=\"/finance/report?year=2026\">Continue</a>"));
    // A warning without a date says so without one.
    let plain = kaspersky_three_ways(Decision::Warn);
    let english = notice(&plain, Lang::En, "/");
    assert!(english.contains("You have access to “Financial administration” (finance), but your device has something that is not wanted there."));
    assert!(english.contains("This software does not block access yet, but it is not wanted."));
    // The continue link never leaves this host.
    for evil in [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
    ] {
        let body = notice(&plain, Lang::En, evil);
        assert!(
            body.contains("<a class=\"button\" href=\"/\">Continue</a>"),
            "{evil}"
        );
        assert!(!body.contains("evil.example"), "{evil}");
    }
}

/// A report with thousands of matching items (one vendor's every product,
/// or a hostile one) gets one card listing the first sightings and how many
/// more, not thousands of lines (and not a render whose cost grows with the
/// square of the findings).
#[test]
fn a_card_lists_the_first_sightings_and_counts_the_rest() {
    let mut result = kaspersky_result();
    result.findings = (0..5_000)
        .map(|i| finding(&format!("Kaspersky Tool {i}"), "1.0", Decision::Deny))
        .collect();
    // The same sighting twice is listed once and not counted as more.
    result
        .findings
        .push(finding("Kaspersky Tool 0", "1.0", Decision::Deny));
    for (lang, more) in [
        (Lang::En, "and 4980 more"),
        (Lang::Nl, "en nog 4980 andere"),
    ] {
        let body = text(&page(
            Problem::Prohibited {
                segment: "finance",
                result: &result,
                os: None,
            },
            Case {
                lang,
                ..Case::default()
            },
        ));
        assert_eq!(body.matches("class=\"card\"").count(), 1, "{lang:?}");
        assert!(body.contains("Kaspersky Tool 19<"), "{lang:?}");
        assert!(!body.contains("Kaspersky Tool 20<"), "{lang:?}");
        assert!(body.contains(more), "{lang:?}");
    }
}
