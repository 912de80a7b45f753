//! The built-in catalogue against real inventories: every identifier it
//! lists matches, realistic Kaspersky items match with the right category,
//! and a real Debian package list plus common Windows/macOS/Android
//! software (including every major non-Kaspersky antivirus and EDR) match
//! nothing.

use std::path::Path;

use posture_core::attestation::claims::{Process, SecurityProduct, Software};
use posture_core::catalogue::{
    Catalogue, Category, IdentifierKind, ItemRef, Match, MatchedBy, Matcher,
};
use serde::Deserialize;

use crate::support::counting;

fn builtin() -> (Catalogue, Matcher) {
    let cat = Catalogue::builtin().expect("built-in catalogue parses");
    let m = Matcher::new(&cat);
    (cat, m)
}

fn matches(m: &Matcher, item: ItemRef<'_>) -> Vec<Match> {
    let mut out = Vec::new();
    m.match_item(item, &mut out);
    out
}

fn software(name: &str) -> Software {
    Software {
        name: name.into(),
        ..Software::default()
    }
}

fn one_kaspersky_match(cat: &Catalogue, m: &Matcher, item: ItemRef<'_>) -> Match {
    let got = matches(m, item);
    assert_eq!(got.len(), 1, "{item:?} gave {got:?}");
    assert_eq!(got[0].entry, cat.index_of("kaspersky").unwrap());
    got[0]
}

#[test]
fn every_builtin_identifier_matches_an_item_built_from_it() {
    let (cat, m) = builtin();
    let mut checked = 0;
    for entry in cat.entries() {
        for group in entry.identifiers() {
            for value in &group.values {
                let items = items_for(group.kind, value);
                for item in &items {
                    let got = one_kaspersky_match(&cat, &m, item.as_ref());
                    assert_eq!(got.by, by_for(group.kind), "{value}: {got:?}");
                    assert_eq!(got.category, group.category, "{value}: {got:?}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} items checked");
}

enum Owned {
    Software(Software),
    Process(Process),
    SecurityProduct(SecurityProduct),
}

impl Owned {
    fn as_ref(&self) -> ItemRef<'_> {
        match self {
            Owned::Software(s) => ItemRef::Software(s),
            Owned::Process(p) => ItemRef::Process(p),
            Owned::SecurityProduct(p) => ItemRef::SecurityProduct(p),
        }
    }
}

fn items_for(kind: IdentifierKind, value: &str) -> Vec<Owned> {
    let neutral = "Unrelated Tool";
    match kind {
        IdentifierKind::Vendor => vec![
            Owned::Software(Software {
                vendor: Some(value.into()),
                ..software(neutral)
            }),
            Owned::Software(Software {
                vendor: Some(value.to_uppercase()),
                ..software(neutral)
            }),
            Owned::SecurityProduct(SecurityProduct {
                name: neutral.into(),
                vendor: Some(value.into()),
                kind: None,
                enabled: None,
                up_to_date: None,
            }),
        ],
        IdentifierKind::Name => vec![
            Owned::Software(software(value)),
            Owned::Software(software(&format!("{value} 11.8.0.384"))),
            Owned::Software(software(&format!("{} (x64)", value.to_lowercase()))),
            Owned::SecurityProduct(SecurityProduct {
                name: value.into(),
                vendor: None,
                kind: None,
                enabled: Some(true),
                up_to_date: Some(true),
            }),
        ],
        IdentifierKind::Id => vec![
            Owned::Software(Software {
                id: Some(value.into()),
                ..software(neutral)
            }),
            Owned::Software(Software {
                id: Some(value.to_uppercase()),
                ..software(neutral)
            }),
            Owned::Software(software(value)),
        ],
        IdentifierKind::Signer => vec![
            Owned::Software(Software {
                signer: Some(value.into()),
                ..software(neutral)
            }),
            Owned::Software(Software {
                signer: Some(format!("CN={value}, O={value}, L=Moscow, C=RU")),
                ..software(neutral)
            }),
        ],
        IdentifierKind::Process => vec![
            Owned::Process(Process {
                name: value.into(),
                path: None,
            }),
            Owned::Process(Process {
                name: value.to_uppercase(),
                path: None,
            }),
            Owned::Process(Process {
                name: format!("/opt/some/dir/{value}"),
                path: None,
            }),
            Owned::Process(Process {
                name: "x".into(),
                path: Some(format!("C:\\Program Files\\X\\{value}")),
            }),
        ],
    }
}

fn by_for(kind: IdentifierKind) -> MatchedBy {
    match kind {
        IdentifierKind::Vendor => MatchedBy::Vendor,
        IdentifierKind::Name => MatchedBy::Name,
        IdentifierKind::Id => MatchedBy::Id,
        IdentifierKind::Signer => MatchedBy::Signer,
        IdentifierKind::Process => MatchedBy::Process,
    }
}

fn sw(name: &str, vendor: Option<&str>, id: Option<&str>, signer: Option<&str>) -> Software {
    Software {
        name: name.into(),
        vendor: vendor.map(Into::into),
        id: id.map(Into::into),
        signer: signer.map(Into::into),
        ..Software::default()
    }
}

#[test]
fn realistic_kaspersky_items_match_with_their_category() {
    let (cat, m) = builtin();
    let cases: Vec<(Software, Category, MatchedBy)> = vec![
        (
            Software {
                version: Some("12.3.0.493".into()),
                ..sw(
                    "Kaspersky Endpoint Security for Windows",
                    Some("AO Kaspersky Lab"),
                    None,
                    None,
                )
            },
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw(
                "Kaspersky Endpoint Security 11.8.0",
                Some("AO Kaspersky Lab"),
                None,
                None,
            ),
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw(
                "Kaspersky Endpoint Security for Windows (11.11.0)",
                None,
                None,
                None,
            ),
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw(
                "Kaspersky Endpoint Security 12.1.0.506 для Windows",
                Some("АО \"Лаборатория Касперского\""),
                None,
                None,
            ),
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw(
                "Агент администрирования Kaspersky Security Center",
                Some("\"Лаборатория Касперского\""),
                None,
                None,
            ),
            Category::ManagementAgent,
            MatchedBy::Name,
        ),
        (
            sw(
                "Kaspersky Security Center 14.2 Network Agent",
                Some("Kaspersky Lab"),
                None,
                None,
            ),
            Category::ManagementAgent,
            MatchedBy::Name,
        ),
        (
            sw(
                "kesl",
                Some("AO Kaspersky Lab <support@kaspersky.com>"),
                Some("kesl"),
                None,
            ),
            Category::Antivirus,
            MatchedBy::Id,
        ),
        (
            sw("klnagent64", None, Some("klnagent64"), None),
            Category::ManagementAgent,
            MatchedBy::Id,
        ),
        (
            sw("kesl-astra", None, None, None),
            Category::Antivirus,
            MatchedBy::Id,
        ),
        (
            sw(
                "Kaspersky Endpoint Security for Mac",
                Some("Kaspersky"),
                Some("com.kaspersky.kav"),
                Some("2Y8XE5CQ94"),
            ),
            Category::Antivirus,
            MatchedBy::Id,
        ),
        (
            sw(
                "Kaspersky VPN",
                None,
                Some("com.kaspersky.secure.connection"),
                None,
            ),
            Category::Vpn,
            MatchedBy::Id,
        ),
        (
            sw(
                "Kaspersky Password Manager",
                None,
                Some("com.kaspersky.passwordmanager"),
                None,
            ),
            Category::PasswordManager,
            MatchedBy::Id,
        ),
        (
            sw(
                "Kaspersky Safe Kids",
                None,
                Some("com.kaspersky.safekids"),
                None,
            ),
            Category::ParentalControl,
            MatchedBy::Id,
        ),
        (
            sw(
                "Kaspersky: VPN & Antivirus",
                None,
                Some("com.kms.free"),
                None,
            ),
            Category::Antivirus,
            MatchedBy::Id,
        ),
        (
            sw(
                "Kaspersky®  Total   Security™",
                Some("Kaspersky Lab ZAO"),
                None,
                None,
            ),
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw("KASPERSKY INTERNET SECURITY", None, None, None),
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw("Ｋａｓｐｅｒｓｋｙ Ａｎｔｉ－Ｖｉｒｕｓ", None, None, None),
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw(
                "Антивирус Касперского 2019",
                Some("Лаборатория Касперского"),
                None,
                None,
            ),
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw("Kaspersky Plus", None, None, None),
            Category::Antivirus,
            MatchedBy::Name,
        ),
        (
            sw(
                "Kaspersky VPN Secure Connection",
                Some("AO Kaspersky Lab"),
                None,
                Some("AO Kaspersky Lab"),
            ),
            Category::Vpn,
            MatchedBy::Name,
        ),
        // Vendor or signer only: the product is unknown, so unclassified.
        (
            sw("Kaspersky Downloader", Some("AO Kaspersky Lab"), None, None),
            Category::Unclassified,
            MatchedBy::Vendor,
        ),
        (
            sw("Some Helper", None, None, Some("2Y8XE5CQ94")),
            Category::Unclassified,
            MatchedBy::Signer,
        ),
        (
            sw(
                "Some Helper",
                Some("AO Kaspersky Lab"),
                None,
                Some("CN=AO Kaspersky Lab, O=AO Kaspersky Lab, L=Moscow, C=RU"),
            ),
            Category::Unclassified,
            MatchedBy::Signer,
        ),
        (
            sw(
                "Unknown product",
                Some("АО  ЛАБОРАТОРИЯ  КАСПЕРСКОГО"),
                None,
                None,
            ),
            Category::Unclassified,
            MatchedBy::Vendor,
        ),
    ];
    for (s, category, by) in &cases {
        let got = one_kaspersky_match(&cat, &m, ItemRef::Software(s));
        assert_eq!((got.category, got.by), (*category, *by), "{s:?}");
    }

    let processes = [
        (
            Process {
                name: "avp.exe".into(),
                path: Some("C:\\Program Files (x86)\\Kaspersky Lab\\KES.12.3.0\\avp.exe".into()),
            },
            Category::Antivirus,
        ),
        (
            Process {
                name: "AVPUI.EXE".into(),
                path: None,
            },
            Category::Antivirus,
        ),
        (
            Process {
                name: "klnagent".into(),
                path: Some("/opt/kaspersky/klnagent64/sbin/klnagent".into()),
            },
            Category::ManagementAgent,
        ),
        (
            Process {
                name: "kesl".into(),
                path: Some("/opt/kaspersky/kesl/libexec/kesl".into()),
            },
            Category::Antivirus,
        ),
        (
            Process {
                name: "ksde.exe".into(),
                path: None,
            },
            Category::Vpn,
        ),
    ];
    for (p, category) in &processes {
        let got = one_kaspersky_match(&cat, &m, ItemRef::Process(p));
        assert_eq!(
            (got.category, got.by),
            (*category, MatchedBy::Process),
            "{p:?}"
        );
    }

    let product = SecurityProduct {
        name: "Kaspersky Endpoint Security for Windows".into(),
        vendor: Some("AO Kaspersky Lab".into()),
        kind: None,
        enabled: Some(true),
        up_to_date: Some(true),
    };
    let got = one_kaspersky_match(&cat, &m, ItemRef::SecurityProduct(&product));
    assert_eq!(
        (got.category, got.by),
        (Category::Antivirus, MatchedBy::Name)
    );
}

/// Issue 13, point 12: spellings that passed the gate.
#[test]
fn sign_spellings_and_invisible_characters_do_not_evade_the_catalogue() {
    let (cat, m) = builtin();
    for name in [
        "Kaspersky(R) Endpoint Security",
        "Kaspersky (R) Endpoint Security for Windows",
        "Kaspersky(TM) Endpoint Security 12.1",
        "Kaspersky(tm) Endpoint Security",
        "Kaspersky(C) Endpoint Security",
        "Kaspersky® Endpoint Security",
        "Kas\u{200B}persky Endpoint Security",
        "Kasper\u{00AD}sky End\u{00AD}point Security",
        "Kaspersky\u{200D} Endpoint\u{2060} Security",
        "\u{202E}Kaspersky Endpoint Security\u{202C}",
        "\u{FEFF}Kaspersky Endpoint Security",
        "Kaspersky Endpoint Security\u{FE0F}",
    ] {
        let s = sw(name, None, None, None);
        let got = one_kaspersky_match(&cat, &m, ItemRef::Software(&s));
        assert_eq!(got.by, MatchedBy::Name, "{name:?}");
        assert_eq!(got.category, Category::Antivirus, "{name:?}");
    }
    for vendor in [
        "AO Kaspersky Lab(R)",
        "Kaspersky(R) Lab",
        "Kaspersky Lab(TM)",
        "\u{200B}AO Kaspersky\u{00AD} Lab",
        "Kaspersky Lab UK Ltd",
        "Kaspersky Lab UK Ltd.",
        "Kaspersky Labs GmbH",
        "A.O. Kaspersky Lab",
        "Kaspersky Labs GmbH <info@kaspersky.de>",
    ] {
        let s = sw("Some Tool", Some(vendor), Some("some-tool"), None);
        let got = one_kaspersky_match(&cat, &m, ItemRef::Software(&s));
        assert_eq!(got.by, MatchedBy::Vendor, "{vendor:?}");
        assert_eq!(got.category, Category::Unclassified, "{vendor:?}");
    }
    for (id, category) in [
        ("kesl:amd64", Category::Antivirus),
        ("kesl-gui:amd64", Category::Antivirus),
        ("kesl-astra:amd64", Category::Antivirus),
        ("kav4fs:i386", Category::Antivirus),
        ("klnagent64:amd64", Category::ManagementAgent),
        ("klnagent:i386", Category::ManagementAgent),
        ("ksc64:amd64", Category::ManagementAgent),
        ("kesl\u{200B}:amd64", Category::Antivirus),
    ] {
        // As a dpkg listing that fills only the name, and with an id.
        for s in [sw(id, None, None, None), sw("x", None, Some(id), None)] {
            let got = one_kaspersky_match(&cat, &m, ItemRef::Software(&s));
            assert_eq!(got.by, MatchedBy::Id, "{id:?}");
            assert_eq!(got.category, category, "{id:?}");
        }
    }
    let p = Process {
        name: "avp\u{200B}.exe".into(),
        path: None,
    };
    one_kaspersky_match(&cat, &m, ItemRef::Process(&p));
}

/// The new spellings stay exact: other vendors' products, names with a
/// Kaspersky fragment and package ids that merely start like one match
/// nothing.
#[test]
fn normalisation_does_not_widen_the_catalogue() {
    let (_, m) = builtin();
    for name in [
        "ESET(R) Endpoint Security",
        "ESET Endpoint Security (R)",
        "Bitdefender(TM) Endpoint Security Tools",
        "Kaspersky(R)",
        "Kaspersky (TM) Fan Club Wallpapers",
        "KasperskyEndpoint Security",
        "Kasper sky Endpoint Security",
        "python3-kaspersky(R)",
        "My Kaspersky(R) Endpoint Security Checker",
        "Anti(R)Kaspersky Endpoint Security",
        "Endpoint Security for Kaspersky(R) users",
        "(R)Kaspersky\u{200B}",
    ] {
        let s = sw(name, None, None, None);
        let got = matches(&m, ItemRef::Software(&s));
        assert!(got.is_empty(), "{name:?} matched {got:?}");
    }
    for vendor in [
        "Kaspersky Lab UK",
        "Kaspersky Lab UK Limited Fan Club",
        "Kaspersky GmbH",
        "Labs GmbH",
        "A.O. Kaspersky",
        "A.O.Kaspersky Lab",
        "ESET(R), spol. s r.o.",
        "Kaspersky Lab UK Ltd (reseller: Example BV)",
    ] {
        let s = sw("Some Tool", Some(vendor), Some("some-tool"), None);
        let got = matches(&m, ItemRef::Software(&s));
        assert!(got.is_empty(), "{vendor:?} matched {got:?}");
    }
    for id in [
        "kesl:arm",
        "kesl:amd64x",
        "kesl:amd",
        "kesl-gui:amd64:extra",
        "keslx:amd64",
        "libkesl:amd64",
        "kesl-tools:amd64",
        "klnagent64:amd64-dbg",
        "kess-something:amd64",
        "python3-kesl:amd64",
    ] {
        let s = sw(id, None, Some(id), None);
        let got = matches(&m, ItemRef::Software(&s));
        assert!(got.is_empty(), "{id:?} matched {got:?}");
    }
}

#[test]
fn open_source_libraries_under_com_kaspersky_do_not_match() {
    let (_, m) = builtin();
    for id in [
        "com.kaspersky.kaspresso",
        "com.kaspersky.android-components",
        "com.kaspersky",
        "com.kaspersky.kes.plugin",
        "com.kaspersky.kav.extra",
    ] {
        let s = sw(id, None, Some(id), None);
        assert!(matches(&m, ItemRef::Software(&s)).is_empty(), "{id}");
    }
}

#[test]
fn a_real_debian_package_list_matches_nothing() {
    let (_, m) = builtin();
    let text = std::fs::read_to_string(fixture("debian-dpkg-query.tsv")).unwrap();
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let package = cols.next().unwrap();
        let version = cols.next().map(str::to_owned);
        let maintainer = cols.next().map(str::to_owned);
        let s = Software {
            name: package.into(),
            id: Some(package.into()),
            version,
            vendor: maintainer,
            ..Software::default()
        };
        let got = matches(&m, ItemRef::Software(&s));
        assert!(got.is_empty(), "{line} matched {got:?}");
        let p = Process {
            name: package.into(),
            path: Some(format!("/usr/bin/{package}")),
        };
        assert!(
            matches(&m, ItemRef::Process(&p)).is_empty(),
            "process {package}"
        );
        count += 1;
    }
    assert!(count > 300, "fixture has only {count} packages");
}

#[derive(Deserialize)]
struct CommonPrograms {
    software: Vec<Software>,
    processes: Vec<Process>,
    security_products: Vec<SecurityProduct>,
}

#[test]
fn common_programs_and_other_security_vendors_match_nothing() {
    let (_, m) = builtin();
    let text = std::fs::read_to_string(fixture("common-programs.json")).unwrap();
    let fixture: CommonPrograms = serde_json::from_str(&text).unwrap();
    assert!(fixture.software.len() >= 40);
    let mut out = Vec::new();
    for s in &fixture.software {
        m.match_item(ItemRef::Software(s), &mut out);
        assert!(out.is_empty(), "{s:?} matched {out:?}");
    }
    for p in &fixture.processes {
        m.match_item(ItemRef::Process(p), &mut out);
        assert!(out.is_empty(), "{p:?} matched {out:?}");
    }
    for p in &fixture.security_products {
        m.match_item(ItemRef::SecurityProduct(p), &mut out);
        assert!(out.is_empty(), "{p:?} matched {out:?}");
    }
}

#[test]
fn odd_strings_never_panic_and_match_nothing() {
    let (_, m) = builtin();
    let long = "ж".repeat(600);
    let odd = [
        "",
        " ",
        "\u{0}",
        "CN=",
        "cn",
        "ЖЖ",
        "CN=Ж",
        "O=,CN=\\,",
        "\"",
        "<>",
        "a <b@c>",
        "«»",
        "®™©",
        "e\u{301}\u{301}\u{301}",
        "🦀 Kaspersky",
        "ﷺ",
        "\u{FEFF}",
        "\u{200B}\u{200D}\u{00AD}",
        "(R)(TM)(C)",
        "(",
        "((((",
        "(t",
        long.as_str(),
    ];
    let mut out = Vec::new();
    for s in odd {
        let item = sw(s, Some(s), Some(s), Some(s));
        m.match_item(ItemRef::Software(&item), &mut out);
        let p = Process {
            name: s.into(),
            path: Some(s.into()),
        };
        m.match_item(ItemRef::Process(&p), &mut out);
        assert!(out.is_empty(), "{s:?} matched {out:?}");
    }
}

#[test]
fn no_match_leaves_the_output_untouched_without_growing_it() {
    let (_, m) = builtin();
    let mut out = Vec::new();
    let s = sw(
        "ESET Endpoint Security",
        Some("ESET, spol. s r.o."),
        Some("com.eset.eea.g2"),
        Some("P8DQRXPVLP"),
    );
    m.match_item(ItemRef::Software(&s), &mut out);
    assert!(out.is_empty());
    assert_eq!(out.capacity(), 0);
}

#[test]
fn matching_clean_items_allocates_nothing() {
    let (_, m) = builtin();
    let text = std::fs::read_to_string(fixture("common-programs.json")).unwrap();
    let fixture: CommonPrograms = serde_json::from_str(&text).unwrap();
    let dpkg = std::fs::read_to_string(fixture_path_dpkg()).unwrap();
    let packages: Vec<Software> = dpkg
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let package = cols.next()?;
            let _version = cols.next();
            Some(sw(package, cols.next(), Some(package), None))
        })
        .collect();
    let mut out = Vec::new();
    let before = counting::on_this_thread();
    for s in fixture.software.iter().chain(&packages) {
        m.match_item(ItemRef::Software(s), &mut out);
    }
    for p in &fixture.processes {
        m.match_item(ItemRef::Process(p), &mut out);
    }
    for p in &fixture.security_products {
        m.match_item(ItemRef::SecurityProduct(p), &mut out);
    }
    assert_eq!(counting::on_this_thread() - before, 0);
    assert!(out.is_empty());
    // The counter does see this thread: a match grows `out`.
    let kes = sw("Kaspersky Endpoint Security", None, None, None);
    m.match_item(ItemRef::Software(&kes), &mut out);
    assert_eq!(out.len(), 1);
    assert!(counting::on_this_thread() > before);
}

fn fixture_path_dpkg() -> std::path::PathBuf {
    fixture("debian-dpkg-query.tsv")
}

#[test]
fn an_include_file_can_override_the_builtin_entry() {
    let mut cat = Catalogue::builtin().unwrap();
    let text = std::fs::read_to_string(fixture("override.toml")).unwrap();
    cat.merge(Catalogue::from_toml_str(&text, Path::new("override.toml")).unwrap());
    let m = Matcher::new(&cat);
    assert_eq!(cat.entries().len(), 2);
    let s = sw("Kaspersky Endpoint Security for Windows", None, None, None);
    assert!(
        matches(&m, ItemRef::Software(&s)).is_empty(),
        "the override narrowed kaspersky to its Android VPN"
    );
    let s = sw("x", None, Some("com.kaspersky.secure.connection"), None);
    assert_eq!(
        matches(&m, ItemRef::Software(&s))[0].category,
        Category::Vpn
    );
    let s = sw("Example Spy Agent 2.1", None, None, None);
    let got = matches(&m, ItemRef::Software(&s));
    assert_eq!(got[0].entry, cat.index_of("example-spy").unwrap());
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/catalogue")
        .join(name)
}
