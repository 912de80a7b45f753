//! How `posture-agent collect` shows an inventory: a table for people (in
//! Dutch or English, ending in one line that says whether the built-in
//! catalogue finds anything prohibited), JSON (the claims subset plus
//! completeness) for scripts.

use std::fmt::Write as _;

use serde::Serialize;

use posture_core::attestation::claims::{Os, Process, SecurityProduct, Software, SoftwareSource};
use posture_core::catalogue::{Catalogue, ItemRef, Matcher};
use posture_core::lang::Lang;

use super::{CollectorWarning, Inventory};

/// Widest a table cell may be; longer values end in "…".
const MAX_CELL: usize = 48;

/// A readable report in English: the OS, the software, security products,
/// processes (names only) and, first of all, whether the inventory is
/// complete.
pub fn render_table(inv: &Inventory) -> String {
    render_table_in(inv, Lang::En)
}

/// [`render_table`] in `lang`.
pub fn render_table_in(inv: &Inventory, lang: Lang) -> String {
    let t = |nl, en| lang.pick(nl, en);
    let mut out = String::new();
    let os = [inv.os.name.as_deref(), inv.os.version.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(
        out,
        "{}: {} ({})",
        t("Besturingssysteem", "OS"),
        if os.is_empty() {
            t("onbekend", "unknown")
        } else {
            &os
        },
        inv.os.family.as_str()
    );
    if inv.complete {
        let _ = writeln!(out, "{}", t("Inventaris: volledig", "Inventory: complete"));
    } else {
        let _ = writeln!(
            out,
            "{}",
            t("Inventaris: ONVOLLEDIG", "Inventory: INCOMPLETE")
        );
    }
    for w in &inv.warnings {
        let _ = writeln!(
            out,
            "  {} [{}]: {}",
            t("waarschuwing", "warning"),
            w.collector,
            w.message
        );
    }
    let _ = writeln!(out, "\nSoftware ({}):", inv.software.len());
    let rows: Vec<[String; 5]> = inv
        .software
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.version.clone().unwrap_or_default(),
                s.vendor.clone().unwrap_or_default(),
                s.source.map(source_name).unwrap_or_default().to_string(),
                s.id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &mut out,
        [
            t("NAAM", "NAME"),
            t("VERSIE", "VERSION"),
            t("LEVERANCIER", "VENDOR"),
            t("BRON", "SOURCE"),
            "ID",
        ],
        &rows,
    );
    if !inv.security_products.is_empty() {
        let _ = writeln!(
            out,
            "\n{} ({}):",
            t("Beveiligingsproducten", "Security products"),
            inv.security_products.len()
        );
        let rows: Vec<[String; 3]> = inv
            .security_products
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    yes_no(p.enabled, lang),
                    yes_no(p.up_to_date, lang),
                ]
            })
            .collect();
        table(
            &mut out,
            [
                t("NAAM", "NAME"),
                t("INGESCHAKELD", "ENABLED"),
                t("BIJGEWERKT", "UP TO DATE"),
            ],
            &rows,
        );
    }
    let _ = writeln!(
        out,
        "\n{} ({}):",
        t("Processen", "Processes"),
        inv.processes.len()
    );
    let rows: Vec<[String; 2]> = inv
        .processes
        .iter()
        .map(|p| [p.name.clone(), p.path.clone().unwrap_or_default()])
        .collect();
    table(&mut out, [t("NAAM", "NAME"), t("PAD", "PATH")], &rows);
    let _ = writeln!(out, "\n{}", prohibited_line(inv, lang));
    out
}

/// One line: whether the built-in catalogue (the list the gate's example
/// policies prohibit) matches anything in the inventory, and what, grouped
/// by catalogue entry; e.g. `Prohibited software found: kesl 12.1.0-1297,
/// process kesl (kaspersky)`. An incomplete inventory says so, since its
/// "nothing found" is not the whole truth.
pub fn prohibited_line(inv: &Inventory, lang: Lang) -> String {
    let Ok(catalogue) = Catalogue::builtin() else {
        return lang
            .pick(
                "Kan niet controleren op verboden software: de ingebouwde catalogus laadt niet.",
                "Cannot check for prohibited software: the built-in catalogue does not load.",
            )
            .to_owned();
    };
    let matcher = Matcher::new(&catalogue);
    // Per entry, in catalogue order: each item's label once.
    let mut found: Vec<Vec<String>> = vec![Vec::new(); catalogue.entries().len()];
    let mut matches = Vec::new();
    let mut note = |item: ItemRef<'_>, label: String| {
        matches.clear();
        matcher.match_item(item, &mut matches);
        for m in &matches {
            if !found[m.entry].contains(&label) {
                found[m.entry].push(label.clone());
            }
        }
    };
    for s in &inv.software {
        let label = match s.version.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{} {v}", cell(&s.name)),
            None => cell(&s.name),
        };
        note(ItemRef::Software(s), label);
    }
    for p in &inv.security_products {
        let label = format!(
            "{} {}",
            lang.pick("beveiligingsproduct", "security product"),
            cell(&p.name)
        );
        note(ItemRef::SecurityProduct(p), label);
    }
    for p in &inv.processes {
        let label = format!("{} {}", lang.pick("proces", "process"), cell(&p.name));
        note(ItemRef::Process(p), label);
    }
    let groups: Vec<String> = found
        .iter()
        .zip(catalogue.entries())
        .filter(|(items, _)| !items.is_empty())
        .map(|(items, entry)| format!("{} ({})", items.join(", "), entry.id))
        .collect();
    if !groups.is_empty() {
        return format!(
            "{} {}",
            lang.pick("Verboden software gevonden:", "Prohibited software found:"),
            groups.join("; ")
        );
    }
    let mut line = lang
        .pick(
            "Geen verboden software gevonden",
            "No prohibited software found",
        )
        .to_owned();
    if !inv.complete {
        line.push_str(lang.pick(
            " (maar de inventaris is onvolledig: zie de waarschuwingen bovenaan)",
            " (but the inventory is incomplete: see the warnings at the top)",
        ));
    }
    line.push('.');
    line
}

fn yes_no(v: Option<bool>, lang: Lang) -> String {
    match v {
        Some(true) => lang.pick("ja", "yes").into(),
        Some(false) => lang.pick("nee", "no").into(),
        None => "?".into(),
    }
}

fn source_name(s: SoftwareSource) -> &'static str {
    match s {
        SoftwareSource::Dpkg => "dpkg",
        SoftwareSource::Rpm => "rpm",
        SoftwareSource::Msi => "msi",
        SoftwareSource::Registry => "registry",
        SoftwareSource::MacosApp => "macos-app",
        SoftwareSource::Homebrew => "homebrew",
        SoftwareSource::Snap => "snap",
        SoftwareSource::Flatpak => "flatpak",
        SoftwareSource::Android => "android",
        SoftwareSource::Winget => "winget",
        SoftwareSource::Osquery => "osquery",
        SoftwareSource::Other => "other",
    }
}

fn cell(v: &str) -> String {
    // Control characters from package data must not move the terminal.
    let clean: String = v
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() > MAX_CELL {
        clean.chars().take(MAX_CELL - 1).chain(['…']).collect()
    } else {
        clean
    }
}

fn table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let rows: Vec<[String; N]> = rows.iter().map(|r| r.each_ref().map(|c| cell(c))).collect();
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut l = String::from("  ");
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            l.push_str(c);
            if i + 1 < N {
                l.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    os: &'a Os,
    software: &'a [Software],
    processes: &'a [Process],
    security_products: &'a [SecurityProduct],
    complete: bool,
    warnings: &'a [CollectorWarning],
}

/// The claims subset (`os`, `software`, `processes`, `security_products`),
/// shaped as in the attestation, plus `complete` and `warnings`.
pub fn render_json(inv: &Inventory) -> String {
    let report = JsonReport {
        os: &inv.os,
        software: &inv.software,
        processes: &inv.processes,
        security_products: &inv.security_products,
        complete: inv.complete,
        warnings: &inv.warnings,
    };
    // Serialising plain data types to a String cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::attestation::claims::OsFamily;

    fn sample() -> Inventory {
        let mut inv = Inventory::empty(OsFamily::Linux);
        inv.os.name = Some("Debian GNU/Linux 12 (bookworm)".into());
        inv.software.push(Software {
            name: "kesl".into(),
            version: Some("12.1.0-1234".into()),
            vendor: Some("AO Kaspersky Lab".into()),
            id: Some("kesl".into()),
            source: Some(SoftwareSource::Dpkg),
            signer: None,
        });
        inv.processes.push(Process {
            name: "kesl".into(),
            path: Some("/opt/kaspersky/kesl/libexec/kesl".into()),
        });
        inv
    }

    #[test]
    fn table_shows_completeness_columns_and_rows() {
        let mut inv = sample();
        inv.warn("rpm", "database locked");
        let t = render_table(&inv);
        assert!(t.contains("Inventory: INCOMPLETE"), "{t}");
        assert!(t.contains("warning [rpm]: database locked"));
        let row = t.lines().find(|l| l.contains("AO Kaspersky Lab")).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "kesl",
                "12.1.0-1234",
                "AO",
                "Kaspersky",
                "Lab",
                "dpkg",
                "kesl"
            ]
        );
    }

    #[test]
    fn long_and_control_characters_are_tamed_in_cells() {
        assert_eq!(cell("a\x1b[31mb"), "a [31mb");
        assert_eq!(cell(&"x".repeat(100)).chars().count(), MAX_CELL);
    }

    #[test]
    fn json_has_the_claims_subset_and_completeness() {
        let mut inv = sample();
        inv.warn("dpkg", "truncated");
        let v: serde_json::Value = serde_json::from_str(&render_json(&inv)).unwrap();
        assert_eq!(v["os"]["family"], "linux");
        assert_eq!(v["software"][0]["source"], "dpkg");
        assert_eq!(
            v["processes"][0]["path"],
            "/opt/kaspersky/kesl/libexec/kesl"
        );
        assert_eq!(v["security_products"], serde_json::json!([]));
        assert_eq!(v["complete"], false);
        assert_eq!(v["warnings"][0]["collector"], "dpkg");
    }
}
