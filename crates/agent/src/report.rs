//! The gate's verdict in plain words, Dutch or English: the headline, each
//! segment's decision, what was found and where it is refused or warned
//! about, when a staged rule starts to refuse, unmet requirements, how to
//! remove what was found, and the gate's reference.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use posture_core::attestation::claims::OsFamily;
use posture_core::catalogue::Catalogue;
use posture_core::lang::Lang;
use posture_core::verdict::{Decision, Finding, ItemKind, Requirement, Unmet, Verdict};

use crate::i18n::reference_line;

/// What the verdict means for the device, strictest first; it sets the exit
/// code of `posture-agent attest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Denied on at least one segment (exit 3).
    Denied,
    /// Allowed everywhere, with a warning on at least one segment (exit 4).
    Warned,
    /// Allowed everywhere without a warning (exit 0).
    Allowed,
}

impl Outcome {
    /// The exit code of `posture-agent attest` for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Allowed => 0,
            Outcome::Denied => 3,
            Outcome::Warned => 4,
        }
    }
}

/// A decision this agent does not know reads as a denial (see
/// `Decision`'s Deserialize), so it never counts as an admission.
pub fn outcome(v: &Verdict) -> Outcome {
    match v.decisions.values().max() {
        Some(Decision::Deny) => Outcome::Denied,
        Some(Decision::Warn) => Outcome::Warned,
        _ => Outcome::Allowed,
    }
}

/// `writeln!` into a String, which cannot fail.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

fn segments_with(v: &Verdict, d: Decision) -> Vec<&str> {
    v.decisions
        .iter()
        .filter(|(_, x)| **x == d)
        .map(|(s, _)| s.as_str())
        .collect()
}

/// The verdict in words for a person; `reference` is the gate's
/// `X-Posture-Reference`.
pub fn words(v: &Verdict, os: OsFamily, lang: Lang, reference: Option<&str>) -> String {
    let catalogue = Catalogue::builtin().ok();
    let nl = lang == Lang::Nl;
    let mut out = String::new();
    let denied = segments_with(v, Decision::Deny);
    let warned = segments_with(v, Decision::Warn);
    match outcome(v) {
        Outcome::Denied if nl => say!(
            out,
            "GEWEIGERD: de gate weigert dit apparaat op {}.",
            denied.join(", ")
        ),
        Outcome::Denied => say!(
            out,
            "DENIED: the gate refuses this device on {}.",
            denied.join(", ")
        ),
        Outcome::Warned if nl => say!(
            out,
            "Toegestaan met een waarschuwing: de gate laat dit apparaat toe, maar waarschuwt op {} (zie hieronder).",
            warned.join(", ")
        ),
        Outcome::Warned => say!(
            out,
            "Allowed with a warning: the gate admits this device, but warns on {} (see below).",
            warned.join(", ")
        ),
        Outcome::Allowed if nl => say!(
            out,
            "Toegestaan: de gate laat dit apparaat toe op elk segment."
        ),
        Outcome::Allowed => say!(
            out,
            "Allowed: the gate admits this device to every segment."
        ),
    }
    say!(
        out,
        "{}: {}",
        lang.pick("Apparaat", "Device"),
        v.device.subject
    );
    out.push('\n');
    for (segment, d) in &v.decisions {
        let word = match d {
            Decision::Allow => lang.pick("toegestaan", "allowed"),
            Decision::Warn => lang.pick(
                "toegestaan, met een waarschuwing",
                "allowed, with a warning",
            ),
            Decision::Deny => lang.pick("GEWEIGERD", "DENIED"),
        };
        say!(out, "  {segment:<20} {word}");
    }
    let found = findings(&mut out, &v.findings, lang);
    staged(&mut out, &v.findings, catalogue.as_ref(), lang);
    let unmet = unmet(&mut out, &v.unmet, lang);
    if found {
        let ids: BTreeSet<&str> = v.findings.iter().map(|f| f.catalog_id.as_str()).collect();
        removal_steps(&mut out, &ids, catalogue.as_ref(), os, lang);
    }
    if found || unmet {
        say!(
            out,
            "\n{}",
            lang.pick(
                "Voer daarna posture-agent attest opnieuw uit.",
                "Then run posture-agent attest again."
            )
        );
    }
    say!(
        out,
        "\n{} {}.",
        lang.pick(
            "Deze beoordeling is geldig tot",
            "This posture is valid until"
        ),
        v.valid_until
    );
    if let Some(r) = reference {
        say!(out, "{}", reference_line(r, lang));
    }
    out
}

/// Each prohibited item once, with the segments that refuse it, warn about
/// it or waive it; whether there were any.
fn findings(out: &mut String, findings: &[Finding], lang: Lang) -> bool {
    if findings.is_empty() {
        return false;
    }
    type Key<'a> = (&'a str, ItemKind, &'a str, &'a str);
    let mut items: Vec<(Key<'_>, [BTreeSet<&str>; 3])> = Vec::new();
    for f in findings {
        let key = (
            f.catalog_id.as_str(),
            f.item.kind,
            f.item.name.as_str(),
            f.item.version.as_deref().unwrap_or(""),
        );
        let at = match items.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                items.push((key, Default::default()));
                items.len() - 1
            }
        };
        let slot = match f.action {
            Decision::Deny => 0,
            Decision::Warn => 1,
            Decision::Allow => 2,
        };
        items[at].1[slot].insert(f.segment.as_str());
    }
    say!(
        out,
        "\n{}",
        lang.pick("Gevonden op dit apparaat:", "Found on this device:")
    );
    for ((id, kind, name, version), segments) in &items {
        let kind = match (kind, lang) {
            (ItemKind::Software, _) => "software",
            (ItemKind::Process, Lang::Nl) => "proces",
            (ItemKind::Process, Lang::En) => "process",
            (ItemKind::SecurityProduct, Lang::Nl) => "beveiligingsproduct",
            (ItemKind::SecurityProduct, Lang::En) => "security product",
        };
        let version = if version.is_empty() {
            String::new()
        } else {
            format!(" {version}")
        };
        say!(
            out,
            "  - {kind} {name}{version} ({} {id})",
            lang.pick("verboden:", "prohibited:")
        );
        let labels = [
            lang.pick("geweigerd op", "refused on"),
            lang.pick("waarschuwing op", "warning on"),
            lang.pick("uitgezonderd op", "exempted on"),
        ];
        let parts: Vec<String> = labels
            .iter()
            .zip(segments)
            .filter(|(_, s)| !s.is_empty())
            .map(|(label, s)| {
                format!(
                    "{label}: {}",
                    s.iter().copied().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        if !parts.is_empty() {
            say!(out, "      {}", parts.join("; "));
        }
    }
    true
}

/// For every staged rule still warning: from which day it refuses which
/// segments, and what to remove to avoid that.
fn staged(out: &mut String, findings: &[Finding], catalogue: Option<&Catalogue>, lang: Lang) {
    let mut by_date: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for f in findings {
        if let (Decision::Warn, Some(date)) = (f.action, f.deny_from.as_deref()) {
            by_date
                .entry((date, f.catalog_id.as_str()))
                .or_default()
                .insert(f.segment.as_str());
        }
    }
    if by_date.is_empty() {
        return;
    }
    out.push('\n');
    for ((date, id), segments) in by_date {
        let product = title(catalogue, id, lang);
        let segments = segments.into_iter().collect::<Vec<_>>().join(", ");
        match lang {
            Lang::Nl => say!(
                out,
                "Vanaf {date} wordt de toegang tot {segments} geweigerd; verwijder {product} om dat te voorkomen."
            ),
            Lang::En => say!(
                out,
                "From {date} access to {segments} will be refused; remove {product} to avoid that."
            ),
        }
    }
}

fn title(catalogue: Option<&Catalogue>, id: &str, lang: Lang) -> String {
    catalogue
        .and_then(|c| c.index_of(id).map(|i| &c.entries()[i]))
        .map(|e| lang.pick(&e.title.nl, &e.title.en).clone())
        .unwrap_or_else(|| id.to_owned())
}

/// Requirements a policy set that the device does not meet (minimum OS
/// version, a working antivirus), once each with the segments that want
/// them; whether there were any. A denial without a finding must still say
/// why. The detail is the gate's, in English.
fn unmet(out: &mut String, unmet: &[Unmet], lang: Lang) -> bool {
    if unmet.is_empty() {
        return false;
    }
    // By code, so the list reads in the same order whatever the gate sent.
    type Segments<'a> = (Requirement, Vec<&'a str>);
    let mut by_requirement: BTreeMap<(&str, &str), Segments<'_>> = BTreeMap::new();
    for u in unmet {
        by_requirement
            .entry((u.requirement.code(), u.detail.as_str()))
            .or_insert_with(|| (u.requirement, Vec::new()))
            .1
            .push(u.segment.as_str());
    }
    say!(
        out,
        "\n{}",
        lang.pick(
            "Eisen waaraan dit apparaat niet voldoet:",
            "Requirements this device does not meet:"
        )
    );
    for ((_, detail), (requirement, segments)) in by_requirement {
        let what = match requirement {
            Requirement::Antivirus => lang.pick(
                "een ingeschakelde, bijgewerkte virusscanner die niet verboden is",
                "an enabled, up-to-date antivirus that is not prohibited",
            ),
            Requirement::MinOsVersion => lang.pick(
                "een minimale versie van het besturingssysteem",
                "a minimum operating system version",
            ),
        };
        say!(
            out,
            "  - {what} ({} {}): {detail}",
            lang.pick("voor", "for"),
            segments.join(", ")
        );
    }
    true
}

fn removal_steps(
    out: &mut String,
    ids: &BTreeSet<&str>,
    catalogue: Option<&Catalogue>,
    os: OsFamily,
    lang: Lang,
) {
    for id in ids {
        let Some(entry) = catalogue.and_then(|c| c.index_of(id).map(|i| &c.entries()[i])) else {
            match lang {
                Lang::Nl => say!(
                    out,
                    "\nVerwijder de software die als {id} vermeld staat (vraag het netwerkteam hoe)."
                ),
                Lang::En => say!(
                    out,
                    "\nRemove the software listed as {id} (ask the network team how)."
                ),
            }
            continue;
        };
        let steps = entry.removal_steps(Some(os));
        match lang {
            Lang::Nl => say!(out, "\nZo verwijdert u {}:", entry.title.nl),
            Lang::En => say!(out, "\nHow to remove {}:", entry.title.en),
        }
        for (n, step) in lang.pick(&steps.nl, &steps.en).iter().enumerate() {
            say!(out, "  {}. {step}", n + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn verdict(json: serde_json::Value) -> Verdict {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_denial_for_an_unmet_requirement_says_which_and_where() {
        let v = verdict(serde_json::json!({
            "valid": true,
            "decisions": {"kantoor": "deny", "gasten": "allow", "beheer": "deny"},
            "device": {"subject": "CN=lt-1", "fingerprint_sha256": FINGERPRINT},
            "findings": [],
            "unmet": [
                {"requirement": "antivirus", "segment": "kantoor", "action": "deny",
                 "detail": "no enabled, up-to-date antivirus that is allowed was reported"},
                {"requirement": "antivirus", "segment": "beheer", "action": "deny",
                 "detail": "no enabled, up-to-date antivirus that is allowed was reported"},
                {"requirement": "min_os_version", "segment": "beheer", "action": "deny",
                 "detail": "windows 10.0.17763 (minimum 10.0.19045)"}
            ],
            "valid_until": "2026-11-23T12:00:00Z"
        }));
        let text = words(&v, OsFamily::Windows, Lang::En, None);
        assert!(
            text.contains("DENIED: the gate refuses this device on beheer, kantoor."),
            "{text}"
        );
        assert!(
            text.contains("  - an enabled, up-to-date antivirus that is not prohibited (for kantoor, beheer): no enabled, up-to-date antivirus that is allowed was reported"),
            "{text}"
        );
        assert!(
            text.contains("  - a minimum operating system version (for beheer): windows 10.0.17763 (minimum 10.0.19045)"),
            "{text}"
        );
        assert_eq!(
            text.matches("Then run posture-agent attest again.").count(),
            1,
            "{text}"
        );
        let text = words(&v, OsFamily::Windows, Lang::Nl, None);
        assert!(
            text.contains("GEWEIGERD: de gate weigert dit apparaat op beheer, kantoor."),
            "{text}"
        );
        assert!(
            text.contains("  - een minimale versie van het besturingssysteem (voor beheer): windows 10.0.17763"),
            "{text}"
        );
    }

    /// A decision word of a newer gate must never read as an admission.
    #[test]
    fn a_decision_this_agent_does_not_know_is_a_denial() {
        let v = verdict(serde_json::json!({"valid": true,
            "decisions": {"gasten": "allow", "kluis": "quarantine"},
            "device": {"subject": "CN=lt-1", "fingerprint_sha256": FINGERPRINT},
            "valid_until": "2026-11-23T12:00:00Z", "findings": []}));
        assert_eq!(v.decisions["kluis"], Decision::Deny);
        assert_eq!(outcome(&v), Outcome::Denied);
        let text = words(&v, OsFamily::Linux, Lang::En, None);
        assert!(text.contains("  kluis                DENIED"), "{text}");
    }

    #[test]
    fn an_allowed_device_gets_no_remedy() {
        let v = verdict(
            serde_json::json!({"valid": true, "decisions": {"gasten": "allow"},
            "device": {"subject": "CN=lt-1", "fingerprint_sha256": FINGERPRINT},
            "valid_until": "2026-11-23T12:00:00Z", "findings": [], "unmet": []}),
        );
        assert_eq!(outcome(&v), Outcome::Allowed);
        let text = words(&v, OsFamily::Linux, Lang::En, Some("PG-AAAA-BBBB"));
        assert!(text.starts_with("Allowed:"), "{text}");
        assert!(!text.contains("Then run"), "{text}");
        assert!(
            text.ends_with("Reference: PG-AAAA-BBBB (quote it when you ask the service desk)\n"),
            "{text}"
        );
        let text = words(&v, OsFamily::Linux, Lang::Nl, None);
        assert!(
            text.starts_with("Toegestaan: de gate laat dit apparaat toe op elk segment."),
            "{text}"
        );
        assert!(!text.contains("Referentie"), "{text}");
    }

    #[test]
    fn exit_codes_follow_the_strictest_decision() {
        assert_eq!(Outcome::Allowed.exit_code(), 0);
        assert_eq!(Outcome::Denied.exit_code(), 3);
        assert_eq!(Outcome::Warned.exit_code(), 4);
        let v = verdict(serde_json::json!({"valid": true,
            "decisions": {"a": "allow", "b": "warn"},
            "device": {"subject": "CN=lt-1", "fingerprint_sha256": FINGERPRINT},
            "valid_until": "2026-11-23T12:00:00Z", "findings": []}));
        assert_eq!(outcome(&v), Outcome::Warned);
    }
}
