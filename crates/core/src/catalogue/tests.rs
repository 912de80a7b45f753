//! Unit tests of the catalogue format and the matching rules.

use std::path::Path;

use super::*;
use crate::attestation::claims::{OsFamily, Process, SecurityProduct, Software};

const SMALL: &str = r#"
[[entry]]
id = "acme"
title = { nl = "Acme-software", en = "Acme software" }
rationale = { nl = "Omdat.", en = "Because." }
references = ["ref 1"]

[entry.removal.generic]
nl = ["Verwijder het."]
en = ["Remove it."]

[entry.removal.linux]
nl = ["apt purge acme", "Herstart."]
en = ["apt purge acme", "Restart."]

[[entry.identifier]]
kind = "vendor"
values = ["Acme Corp"]

[[entry.identifier]]
kind = "name"
category = "vpn"
values = ["Acme VPN"]

[[entry.identifier]]
kind = "name"
category = "antivirus"
values = ["Acme VPN Antivirus Edition"]

[[entry.identifier]]
kind = "id"
category = "password_manager"
values = ["com.acme.pw"]

[[entry.identifier]]
kind = "process"
category = "antivirus"
values = ["acmed.exe"]

[[entry.identifier]]
kind = "signer"
values = ["ACME123456"]
"#;

fn small() -> Catalogue {
    Catalogue::from_toml_str(SMALL, Path::new("small.toml")).unwrap()
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

fn matches(m: &Matcher, item: ItemRef<'_>) -> Vec<Match> {
    let mut out = Vec::new();
    m.match_item(item, &mut out);
    out
}

fn err(text: &str) -> CatalogueError {
    Catalogue::from_toml_str(text, Path::new("x.toml")).unwrap_err()
}

#[test]
fn category_names_round_trip_and_unknown_names_fail() {
    for c in Category::ALL {
        assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            format!("\"{}\"", c.as_str())
        );
    }
    assert!("Antivirus".parse::<Category>().is_err());
    assert!("edr".parse::<Category>().is_err());
}

#[test]
fn builtin_catalogue_parses_with_sources_and_all_removal_texts() {
    let cat = Catalogue::builtin().unwrap();
    assert_eq!(cat.entries().len(), 1);
    let e = &cat.entries()[cat.index_of("kaspersky").unwrap()];
    assert!(e.rationale.nl.contains("30 821 en 26 643, nr. 46"));
    assert!(e.rationale.en.contains("30 821 and 26 643, no. 46"));
    assert!(e
        .references
        .iter()
        .any(|r| r.contains("30 821 en 26 643, nr. 46")));
    for g in e.identifiers() {
        assert!(
            !g.source.trim().is_empty(),
            "{:?} group without a source",
            g.kind
        );
    }
    for os in [
        OsFamily::Windows,
        OsFamily::Macos,
        OsFamily::Linux,
        OsFamily::Android,
    ] {
        let steps = e.removal_steps(Some(os));
        assert_ne!(steps, e.removal_steps(None), "{os:?} falls back to generic");
        assert_eq!(steps.nl.len(), steps.en.len());
    }
    assert!(e
        .removal_steps(Some(OsFamily::Windows))
        .en
        .iter()
        .any(|s| s.contains("kavremover")));
    assert!(e
        .removal_steps(Some(OsFamily::Linux))
        .en
        .iter()
        .any(|s| s.contains("sudo apt purge kesl")));
    assert_eq!(
        e.removal_steps(Some(OsFamily::Chromeos)),
        e.removal_steps(None)
    );
    let cats: Vec<Category> = e.categories().collect();
    assert_eq!(cats, Category::ALL.to_vec());
}

#[test]
fn removal_steps_fall_back_to_generic() {
    let cat = small();
    let e = &cat.entries()[0];
    assert_eq!(
        e.removal_steps(Some(OsFamily::Linux)).en,
        ["apt purge acme", "Restart."]
    );
    assert_eq!(
        e.removal_steps(Some(OsFamily::Windows)).nl,
        ["Verwijder het."]
    );
    assert_eq!(e.removal_steps(None).en, ["Remove it."]);
}

#[test]
fn unknown_category_is_reported_at_its_line_and_column() {
    let text = SMALL.replace("category = \"vpn\"", "category = \"spyware\"");
    let e = err(&text);
    let line = text.lines().position(|l| l.contains("spyware")).unwrap() + 1;
    assert_eq!((e.line, e.column), (line, 12), "{e}");
    assert!(
        e.to_string().starts_with(&format!("x.toml:{line}:12: ")),
        "{e}"
    );
}

#[test]
fn empty_and_duplicate_ids_are_errors_with_positions() {
    let e = err(&SMALL.replace("id = \"acme\"", "id = \"\""));
    assert_eq!((e.line, e.column), (3, 6), "{e}");
    assert!(e.message.contains("empty"), "{e}");

    let twice = format!(
        "{SMALL}\n{}",
        SMALL.replace("id = \"acme\"", "id   = \"acme\"")
    );
    let e = err(&twice);
    let line = twice.lines().position(|l| l.starts_with("id   =")).unwrap() + 1;
    assert_eq!((e.line, e.column), (line, 8), "{e}");
    assert!(e.message.contains("duplicate entry id `acme`"), "{e}");
}

#[test]
fn empty_and_duplicate_identifiers_are_errors() {
    let e = err(&SMALL.replace(
        "values = [\"com.acme.pw\"]",
        "values = [\"com.acme.pw\", \"  \"]",
    ));
    assert!(e.message.contains("empty id identifier"), "{e}");
    assert_eq!(e.column, 26, "{e}");
    let e = err(&SMALL.replace(
        "values = [\"com.acme.pw\"]",
        "values = [\"com.acme.pw\", \"COM.ACME.PW\"]",
    ));
    assert!(e.message.contains("duplicate id identifier"), "{e}");
    let e = err(&SMALL.replace("values = [\"com.acme.pw\"]", "values = []"));
    assert!(e.message.contains("no values"), "{e}");
    let e = err(&SMALL.replace(
        "values = [\"acmed.exe\"]",
        "values = [\"C:\\\\acme\\\\acmed.exe\"]",
    ));
    assert!(e.message.contains("not a path"), "{e}");
}

#[test]
fn missing_or_empty_texts_are_errors() {
    let e = err(&SMALL.replace(
        "title = { nl = \"Acme-software\", en = \"Acme software\" }",
        "title = { en = \"Acme\" }",
    ));
    assert!(e.message.contains("missing field `nl`"), "{e}");
    assert_eq!(e.line, 4, "{e}");
    let e = err(&SMALL.replace(
        "rationale = { nl = \"Omdat.\",",
        "rationale = { nl = \" \",",
    ));
    assert!(e.message.contains("rationale.nl is empty"), "{e}");
    let e = err(&SMALL.replace(
        "nl = [\"apt purge acme\", \"Herstart.\"]",
        "nl = [\"apt purge acme\"]",
    ));
    assert!(e.message.contains("must pair up"), "{e}");
    let e = err(&SMALL.replace(
        "[entry.removal.generic]\nnl = [\"Verwijder het.\"]\n",
        "[entry.removal.generic]\n",
    ));
    assert!(e.message.contains("missing field `nl`"), "{e}");
}

#[test]
fn unknown_fields_are_refused() {
    let e = err(&SMALL.replace(
        "references = [\"ref 1\"]",
        "references = [\"ref 1\"]\nseverity = 3",
    ));
    assert!(e.message.contains("unknown field `severity`"), "{e}");
    assert_eq!(e.line, 7, "{e}");
    let e = err(&SMALL.replace("kind = \"process\"", "kind = \"registry_key\""));
    assert!(e.message.contains("registry_key"), "{e}");
}

#[test]
fn merge_replaces_by_id_and_appends_new_ids() {
    let mut cat = Catalogue::builtin().unwrap();
    let replacement = SMALL.replace("id = \"acme\"", "id = \"kaspersky\"");
    cat.merge(Catalogue::from_toml_str(&replacement, Path::new("r.toml")).unwrap());
    assert_eq!(cat.entries().len(), 1);
    assert_eq!(cat.entries()[0].title.en, "Acme software");
    cat.merge(small());
    assert_eq!(cat.entries().len(), 2);
    assert_eq!(cat.index_of("acme"), Some(1));
    assert_eq!(cat.index_of("nope"), None);
}

#[test]
fn vendor_only_match_is_unclassified() {
    let m = Matcher::new(&small());
    let s = sw("Acme Toolbox", Some("ACME  corp"), None, None);
    let got = matches(&m, ItemRef::Software(&s));
    assert_eq!(
        got,
        [Match {
            entry: 0,
            category: Category::Unclassified,
            by: MatchedBy::Vendor
        }]
    );
}

#[test]
fn specific_identifier_beats_vendor_and_longest_name_wins() {
    let m = Matcher::new(&small());
    let s = sw("Acme VPN 2.0", Some("Acme Corp"), None, Some("ACME123456"));
    assert_eq!(
        matches(&m, ItemRef::Software(&s)),
        [Match {
            entry: 0,
            category: Category::Vpn,
            by: MatchedBy::Name
        }]
    );
    let s = sw("Acme VPN Antivirus Edition", Some("Acme Corp"), None, None);
    assert_eq!(
        matches(&m, ItemRef::Software(&s))[0].category,
        Category::Antivirus
    );
    let s = sw("Acme VPN", Some("Acme Corp"), Some("com.acme.pw"), None);
    assert_eq!(
        matches(&m, ItemRef::Software(&s)),
        [Match {
            entry: 0,
            category: Category::PasswordManager,
            by: MatchedBy::Id
        }]
    );
}

#[test]
fn signer_matches_exactly_or_by_subject_common_name() {
    let m = Matcher::new(&small());
    for signer in ["acme123456", "CN=ACME123456, O=Acme Corp, C=NL"] {
        let s = sw("Something", None, None, Some(signer));
        assert_eq!(
            matches(&m, ItemRef::Software(&s))[0].by,
            MatchedBy::Signer,
            "{signer}"
        );
    }
    let s = sw("Something", None, None, Some("ACME1234567"));
    assert!(matches(&m, ItemRef::Software(&s)).is_empty());
}

#[test]
fn processes_match_on_basename_of_name_or_path() {
    let m = Matcher::new(&small());
    let cases = [
        Process {
            name: "ACMED.EXE".into(),
            path: None,
        },
        Process {
            name: "C:\\Program Files\\Acme\\acmed.exe".into(),
            path: None,
        },
        Process {
            name: "svc".into(),
            path: Some("C:\\Program Files\\Acme\\AcmeD.exe".into()),
        },
    ];
    for p in &cases {
        assert_eq!(matches(&m, ItemRef::Process(p)).len(), 1, "{p:?}");
    }
    let p = Process {
        name: "notacmed.exe".into(),
        path: Some("/opt/acmed.exe.bak".into()),
    };
    assert!(matches(&m, ItemRef::Process(&p)).is_empty());
}

#[test]
fn names_need_whole_words_from_the_start() {
    let m = Matcher::new(&small());
    for name in ["Acme VPNs", "My Acme VPN", "acme-vpnx", "AcmeVPN", "Acme"] {
        let s = sw(name, None, None, None);
        assert!(matches(&m, ItemRef::Software(&s)).is_empty(), "{name}");
    }
    for name in [
        "ACME vpn",
        "Acme-VPN (x64)",
        "Ａｃｍｅ　ＶＰＮ",
        "Acme® VPN™",
    ] {
        let s = sw(name, None, None, None);
        assert_eq!(matches(&m, ItemRef::Software(&s)).len(), 1, "{name}");
    }
}

#[test]
fn name_is_tried_as_id_only_when_there_is_no_id() {
    let m = Matcher::new(&small());
    let s = sw("com.acme.pw", None, None, None);
    assert_eq!(matches(&m, ItemRef::Software(&s))[0].by, MatchedBy::Id);
    let s = sw("com.acme.pw", None, Some("org.other"), None);
    assert!(matches(&m, ItemRef::Software(&s)).is_empty());
}

#[test]
fn security_products_match_by_name_and_vendor() {
    let m = Matcher::new(&small());
    let p = SecurityProduct {
        name: "Acme VPN".into(),
        vendor: Some("Acme Corp".into()),
        kind: None,
        enabled: Some(true),
        up_to_date: None,
    };
    assert_eq!(
        matches(&m, ItemRef::SecurityProduct(&p))[0].category,
        Category::Vpn
    );
}

#[test]
fn one_match_per_entry_and_earlier_output_is_kept() {
    let mut cat = small();
    cat.merge(
        Catalogue::from_toml_str(
            &SMALL.replace("id = \"acme\"", "id = \"acme2\""),
            Path::new("b"),
        )
        .unwrap(),
    );
    let m = Matcher::new(&cat);
    let previous = Match {
        entry: 0,
        category: Category::Vpn,
        by: MatchedBy::Name,
    };
    let mut out = vec![previous];
    let s = sw(
        "Acme VPN",
        Some("Acme Corp"),
        Some("com.acme.pw"),
        Some("ACME123456"),
    );
    m.match_item(ItemRef::Software(&s), &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], previous);
    assert_eq!((out[1].entry, out[1].by), (0, MatchedBy::Id));
    assert_eq!((out[2].entry, out[2].by), (1, MatchedBy::Id));
}

#[test]
fn matcher_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Matcher>();
    check::<Catalogue>();
}

#[test]
fn the_same_content_has_the_same_digest_across_builds() {
    assert_eq!(small().digest(), small().digest());
    let (a, b) = (Catalogue::builtin().unwrap(), Catalogue::builtin().unwrap());
    assert_eq!(a.digest(), b.digest());
    // Merged to the same entries, by another way: still the same content.
    let mut merged = Catalogue::builtin().unwrap();
    merged.merge(small());
    let mut again = Catalogue::builtin().unwrap();
    again.merge(small());
    again.merge(small());
    assert_eq!(merged.digest(), again.digest());
    assert_ne!(merged.digest(), a.digest());
}

#[test]
fn a_changed_entry_changes_the_digest() {
    let base = small().digest();
    let changes = [
        ("values = [\"acmed.exe\"]", "values = [\"acmed2.exe\"]"),
        ("kind = \"process\"", "kind = \"name\""),
        ("category = \"vpn\"", "category = \"antivirus\""),
        ("en = \"Because.\"", "en = \"Because!\""),
        ("nl = [\"Verwijder het.\"]", "nl = [\"Verwijder het!\"]"),
        (
            "references = [\"ref 1\"]",
            "references = [\"ref 1\", \"ref 2\"]",
        ),
    ];
    for (from, to) in changes {
        assert!(SMALL.contains(from), "{from}");
        let changed = Catalogue::from_toml_str(&SMALL.replace(from, to), Path::new("c.toml"))
            .unwrap_or_else(|e| panic!("{to}: {e}"));
        assert_ne!(changed.digest(), base, "{from} -> {to}");
    }
    // Moving text from one string to the next is a change, too: the
    // encoding is length-prefixed.
    let shifted = SMALL.replace("values = [\"Acme Corp\"]", "values = [\"Acme\", \"Corp\"]");
    let shifted = Catalogue::from_toml_str(&shifted, Path::new("s.toml")).unwrap();
    assert_ne!(shifted.digest(), base);
    assert_ne!(Catalogue::default().digest(), base);
}
