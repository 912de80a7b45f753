//! Policy evaluation: (verified posture, segment policy, exemptions, today)
//! -> decision with findings.
//!
//! Matching the inventory against the catalogue is the expensive part (one
//! lookup per reported item), and it does not depend on the segment. So it is
//! done once per attestation by [`assess`], and each request only applies its
//! segment's rules to the few matches found ([`evaluate_segment`]). A clean
//! device therefore costs no allocation per request.

use time::{Date, OffsetDateTime};

use crate::attestation::claims::{Claims, Os, OsFamily, SecurityProductKind};
use crate::catalogue::{Category, ItemRef, Match, Matcher};
use crate::config::snapshot::{DeviceSelector, Exemption, Policy, Snapshot};
use crate::device::DeviceIdentity;
use crate::verdict::{Decision, Finding, FindingItem, ItemKind, Requirement, Unmet};

/// One reported item that matched a catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemMatch {
    /// Index into the entries of the catalogue the assessment was made with.
    pub entry: usize,
    /// The category of the entry the item matched (`Unclassified` for a
    /// match by vendor or signer alone).
    pub category: Category,
    /// The item as the device reported it.
    pub item: FindingItem,
}

/// Everything a segment policy needs of one attestation: the catalogue
/// matches, the OS and whether an allowed antivirus works. The gate keeps
/// this, not the inventory: a posture then costs a few hundred bytes instead
/// of the whole report (100,000 devices must fit in 100 MB).
///
/// Serialisable for a shared store's wire encoding ([`crate::store::wire`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assessment {
    /// Every reported item that matched the catalogue.
    pub matches: Vec<ItemMatch>,
    /// The OS the device reported.
    pub os: Os,
    /// An enabled, up-to-date antivirus or EDR that the catalogue does not
    /// match was reported (a policy may require one).
    pub working_antivirus: bool,
}

/// Matches every reported software item, process and security product.
pub fn assess(matcher: &Matcher, claims: &Claims) -> Assessment {
    let mut found: Vec<Match> = Vec::new();
    let mut matches = Vec::new();
    let mut record = |found: &mut Vec<Match>, item: &dyn Fn() -> FindingItem| {
        for m in found.drain(..) {
            matches.push(ItemMatch {
                entry: m.entry,
                category: m.category,
                item: item(),
            });
        }
    };
    for s in &claims.software {
        matcher.match_item(ItemRef::Software(s), &mut found);
        record(&mut found, &|| FindingItem {
            kind: ItemKind::Software,
            name: s.name.clone(),
            vendor: s.vendor.clone(),
            version: s.version.clone(),
            id: s.id.clone(),
        });
    }
    for p in &claims.processes {
        matcher.match_item(ItemRef::Process(p), &mut found);
        record(&mut found, &|| FindingItem {
            kind: ItemKind::Process,
            name: p.name.clone(),
            vendor: None,
            version: None,
            id: p.path.clone(),
        });
    }
    for p in &claims.security_products {
        matcher.match_item(ItemRef::SecurityProduct(p), &mut found);
        record(&mut found, &|| FindingItem {
            kind: ItemKind::SecurityProduct,
            name: p.name.clone(),
            vendor: p.vendor.clone(),
            version: None,
            id: None,
        });
    }
    matches.shrink_to_fit();
    let working_antivirus = has_working_antivirus(claims, &matches);
    Assessment {
        matches,
        os: claims.os.clone(),
        working_antivirus,
    }
}

/// The outcome of one segment's policy for one posture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentResult {
    /// The strictest of the findings' actions, or deny when a requirement
    /// is unmet.
    pub decision: Decision,
    /// Every match the segment's rules act on, exempted ones included (with
    /// action `allow` and the exemption's reference), so the audit log shows
    /// what was waived.
    pub findings: Vec<Finding>,
    /// The policy's requirements the device does not meet.
    pub unmet: Vec<Unmet>,
}

/// The UTC calendar day of a unix time, for exemption expiry.
pub fn utc_day(now: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(now)
        .map(|t| t.date())
        // Out of range only for absurd clocks; the earliest date makes every
        // exemption look unexpired, so use the latest instead: fail closed.
        .unwrap_or(Date::MAX)
}

/// Applies segment `segment`'s policy to an assessment made with
/// `catalogue` (which must be the snapshot's own; see `decision::Posture`).
pub fn evaluate_segment(
    snapshot: &Snapshot,
    segment: usize,
    device: &DeviceIdentity,
    assessment: &Assessment,
    today: Date,
) -> SegmentResult {
    let seg = &snapshot.segments[segment];
    let policy = &snapshot.policies[seg.policy];
    let mut result = SegmentResult {
        decision: Decision::Allow,
        findings: Vec::new(),
        unmet: Vec::new(),
    };
    for m in &assessment.matches {
        let Some((action, deny_from)) = strictest_rule(policy, m, today) else {
            continue;
        };
        // An index from a shared store is checked, never trusted to be in
        // range: a rule matched it, so the entry exists in this catalogue.
        let entry_id = snapshot
            .catalogue
            .entries()
            .get(m.entry)
            .map_or("", |e| e.id.as_str());
        let exemption = snapshot
            .exemptions
            .iter()
            .find(|e| exemption_applies(e, device, m.entry, segment, today));
        // An exempted finding has no stage: the exemption, not the date,
        // decides until it runs out.
        let (action, deny_from) = match exemption {
            Some(_) => (Decision::Allow, None),
            None => (action, deny_from),
        };
        result.decision = result.decision.max(action);
        result.findings.push(Finding {
            catalog_id: entry_id.to_owned(),
            segment: seg.name.clone(),
            action,
            item: m.item.clone(),
            category: m.category.as_str().to_owned(),
            exemption: exemption.map(|e| e.reference.clone()),
            exemption_expires: exemption.map(|e| e.expires.to_string()),
            deny_from: deny_from.map(|d| d.to_string()),
        });
    }
    if let Some(unmet) = min_os_unmet(policy, &assessment.os) {
        result.unmet.push(Unmet {
            requirement: Requirement::MinOsVersion,
            segment: seg.name.clone(),
            action: Decision::Deny,
            detail: unmet,
        });
    }
    if !assessment.working_antivirus && policy.require_antivirus.contains(&assessment.os.family) {
        result.unmet.push(Unmet {
            requirement: Requirement::Antivirus,
            segment: seg.name.clone(),
            action: Decision::Deny,
            detail: "no enabled, up-to-date antivirus that is allowed was reported".to_owned(),
        });
    }
    if !result.unmet.is_empty() {
        result.decision = Decision::Deny;
    }
    result
}

/// The strictest action of the policy's rules that cover this match, if any,
/// on `today`, and the day a staged rule among them turns to deny.
/// A vendor- or signer-only match is `Unclassified` and is covered by every
/// rule for its entry, narrowed or not: an unknown product of a prohibited
/// vendor must not slip through a category filter.
///
/// A staged rule (`deny_from`) warns before its day and denies from it. The
/// day is reported unless a rule that always denies covers the match (then
/// no date changes anything); of several staged rules, the earliest day.
fn strictest_rule(policy: &Policy, m: &ItemMatch, today: Date) -> Option<(Decision, Option<Date>)> {
    let mut strictest: Option<Decision> = None;
    let mut stage: Option<Date> = None;
    let mut always_denied = false;
    for r in policy
        .rules
        .iter()
        .filter(|r| r.entry == m.entry)
        .filter(|r| match &r.categories {
            None => true,
            Some(cats) => m.category == Category::Unclassified || cats.contains(&m.category),
        })
    {
        let action = match r.deny_from {
            Some(day) => {
                stage = Some(stage.map_or(day, |s| s.min(day)));
                if today >= day {
                    Decision::Deny
                } else {
                    Decision::Warn
                }
            }
            None => {
                always_denied |= r.action == Decision::Deny;
                r.action
            }
        };
        strictest = strictest.max(Some(action));
    }
    strictest.map(|a| (a, stage.filter(|_| !always_denied)))
}

fn exemption_applies(
    e: &Exemption,
    device: &DeviceIdentity,
    entry: usize,
    segment: usize,
    today: Date,
) -> bool {
    let device_matches = match &e.device {
        DeviceSelector::Fingerprint(fp) => *fp == device.fingerprint,
        DeviceSelector::Subject { name, .. } => device.subject_name.as_ref() == Some(name),
    };
    device_matches
        && e.entry == entry
        && today <= e.expires
        && e.segments.as_ref().is_none_or(|s| s.contains(&segment))
}

/// `Some(what the device reported)` when the policy sets a minimum for the
/// device's OS family and the reported version is lower or unreadable.
fn min_os_unmet(policy: &Policy, os: &Os) -> Option<String> {
    let family = os.family;
    let (_, minimum) = policy.min_os_version.iter().find(|(f, _)| *f == family)?;
    let reported = os.version.as_deref().unwrap_or("");
    match minimum.is_met_by(reported) {
        Some(true) => None,
        Some(false) | None => Some(format!(
            "{} {} (minimum {})",
            family_label(family),
            if reported.is_empty() {
                "version unknown"
            } else {
                reported
            },
            minimum
        )),
    }
}

fn family_label(f: OsFamily) -> &'static str {
    f.as_str()
}

fn has_working_antivirus(claims: &Claims, matches: &[ItemMatch]) -> bool {
    claims.security_products.iter().any(|p| {
        matches!(
            p.kind,
            Some(SecurityProductKind::Antivirus | SecurityProductKind::Edr)
        ) && p.enabled == Some(true)
            && p.up_to_date == Some(true)
            && !matches
                .iter()
                .any(|m| m.item.kind == ItemKind::SecurityProduct && m.item.name == p.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::claims::Os;
    use crate::catalogue::Category;
    use std::path::Path;

    const FINGERPRINT: [u8; 32] = [0xab; 32];

    fn snapshot() -> Snapshot {
        let text = format!(
            r#"[[policy]]
name = "p"
min_os_version = {{ windows = "10.0.19045" }}
rule = [{{ catalogue = "kaspersky", action = "deny" }}]

[[segment]]
name = "s"
sensitivity = "high"
policy = "p"

[[exemption]]
device_fingerprint = "{}"
catalogue = "kaspersky"
expires = 2999-12-31
reference = "RA-7"
"#,
            "AB:".repeat(31) + "AB"
        );
        crate::config::load_str(&text, Path::new("/etc/posture-gate/gate.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn device(fingerprint: [u8; 32]) -> DeviceIdentity {
        DeviceIdentity {
            fingerprint_sha256: hex::encode(fingerprint),
            fingerprint,
            subject: "CN=lt-1".into(),
            organization: None,
            organizational_units: Vec::new(),
            subject_name: crate::dn::DistinguishedName::parse("CN=lt-1").ok(),
        }
    }

    fn kaspersky_on_windows(s: &Snapshot, version: &str) -> Assessment {
        Assessment {
            matches: vec![ItemMatch {
                entry: s.catalogue.index_of("kaspersky").unwrap(),
                category: Category::Antivirus,
                item: FindingItem {
                    kind: ItemKind::Software,
                    name: "Kaspersky Endpoint Security".into(),
                    vendor: None,
                    version: None,
                    id: None,
                },
            }],
            os: Os {
                family: OsFamily::Windows,
                name: None,
                version: Some(version.into()),
            },
            working_antivirus: false,
        }
    }

    #[test]
    fn an_exemption_by_fingerprint_compares_the_certificate_bytes() {
        let s = snapshot();
        let today = utc_day(0);
        let a = kaspersky_on_windows(&s, "10.0.22631");
        let exempt = evaluate_segment(&s, 0, &device(FINGERPRINT), &a, today);
        assert_eq!(exempt.decision, Decision::Allow);
        assert_eq!(exempt.findings[0].exemption.as_deref(), Some("RA-7"));
        assert_eq!(
            exempt.findings[0].exemption_expires.as_deref(),
            Some("2999-12-31")
        );
        let mut other = FINGERPRINT;
        other[31] ^= 1;
        let denied = evaluate_segment(&s, 0, &device(other), &a, today);
        assert_eq!(denied.decision, Decision::Deny);
        assert_eq!(denied.findings[0].exemption, None);
        assert_eq!(denied.findings[0].exemption_expires, None);
    }

    fn staged_snapshot(rules: &str) -> Snapshot {
        let text = format!(
            "[[policy]]\nname = \"p\"\nrule = [{rules}]\n\n[[segment]]\nname = \"s\"\n\
             sensitivity = \"low\"\npolicy = \"p\"\n"
        );
        crate::config::load_str(&text, Path::new("/etc/posture-gate/gate.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Noon UTC of a day, as the gate's clock would give it.
    fn noon(y: i32, m: time::Month, d: u8) -> i64 {
        Date::from_calendar_date(y, m, d)
            .unwrap()
            .with_hms(12, 0, 0)
            .unwrap()
            .assume_utc()
            .unix_timestamp()
    }

    #[test]
    fn a_staged_rule_warns_before_its_day_and_denies_from_it_in_utc() {
        use time::Month::January;
        let s = staged_snapshot(
            r#"{ catalogue = "kaspersky", action = "warn", deny_from = 2027-01-15 }"#,
        );
        let a = kaspersky_on_windows(&s, "10.0.22631");
        let d = device([1; 32]);
        let at = |now: i64| evaluate_segment(&s, 0, &d, &a, utc_day(now));
        // The last second of the day before, the first of the day, and later.
        let last_second_before = noon(2027, January, 14) + 12 * 3600 - 1;
        for (now, want) in [
            (noon(2027, January, 14), Decision::Warn),
            (last_second_before, Decision::Warn),
            (last_second_before + 1, Decision::Deny),
            (noon(2027, January, 15), Decision::Deny),
            (noon(2027, January, 16), Decision::Deny),
        ] {
            let r = at(now);
            assert_eq!(r.decision, want, "at {now}");
            assert_eq!(r.findings[0].action, want, "at {now}");
            assert_eq!(r.findings[0].deny_from.as_deref(), Some("2027-01-15"));
        }
    }

    #[test]
    fn a_plain_warn_beside_a_staged_rule_keeps_its_day_and_an_exemption_waives_it() {
        let s = staged_snapshot(
            r#"{ catalogue = "kaspersky", action = "warn", deny_from = 2999-01-01 }"#,
        );
        let a = kaspersky_on_windows(&s, "10.0.22631");
        let r = evaluate_segment(&s, 0, &device([1; 32]), &a, utc_day(0));
        assert_eq!(r.decision, Decision::Warn);
        assert_eq!(r.findings[0].deny_from.as_deref(), Some("2999-01-01"));
        // A plain warn beside it does not hide the day it turns.
        let s = staged_snapshot(
            r#"{ catalogue = "kaspersky", action = "warn", deny_from = 2999-01-01 },
               { catalogue = "kaspersky", action = "warn", categories = ["vpn"] }"#,
        );
        let r = evaluate_segment(&s, 0, &device([1; 32]), &a, utc_day(0));
        assert_eq!(r.findings[0].deny_from.as_deref(), Some("2999-01-01"));
        // Exempted: allowed, and no date is told (the exemption decides).
        let mut s = s;
        s.exemptions.push(Exemption {
            device: DeviceSelector::Fingerprint([1; 32]),
            catalogue_id: "kaspersky".into(),
            entry: s.catalogue.index_of("kaspersky").unwrap(),
            expires: Date::MAX,
            reference: "RA-1".into(),
            segments: None,
        });
        let r = evaluate_segment(&s, 0, &device([1; 32]), &a, utc_day(0));
        assert_eq!(r.findings[0].action, Decision::Allow);
        assert_eq!(r.findings[0].deny_from, None);
    }

    #[test]
    fn a_match_a_deny_rule_also_covers_denies_without_a_date() {
        // The deny rule and the staged rule cover different categories
        // (the config refuses a staged rule a deny rule shadows), but a
        // vendor-only match is `Unclassified` and is covered by both: it
        // is denied today, and no date would change that.
        let s = staged_snapshot(
            r#"{ catalogue = "kaspersky", action = "deny", categories = ["antivirus"] },
               { catalogue = "kaspersky", action = "warn", categories = ["vpn"], deny_from = 2999-01-01 }"#,
        );
        let with = |category: Category| {
            let mut a = kaspersky_on_windows(&s, "10.0.22631");
            a.matches[0].category = category;
            evaluate_segment(&s, 0, &device([1; 32]), &a, utc_day(0))
        };
        let unclassified = with(Category::Unclassified);
        assert_eq!(unclassified.decision, Decision::Deny);
        assert_eq!(unclassified.findings[0].deny_from, None);
        let vpn = with(Category::Vpn);
        assert_eq!(vpn.decision, Decision::Warn);
        assert_eq!(vpn.findings[0].deny_from.as_deref(), Some("2999-01-01"));
        let antivirus = with(Category::Antivirus);
        assert_eq!(antivirus.decision, Decision::Deny);
        assert_eq!(antivirus.findings[0].deny_from, None);
    }

    #[test]
    fn antivirus_is_required_only_on_the_families_listed() {
        let text = r#"[[policy]]
name = "p"
require_antivirus = ["windows", "macos"]
[[segment]]
name = "s"
sensitivity = "low"
policy = "p"
"#;
        let s = crate::config::load_str(text, Path::new("/etc/posture-gate/gate.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let on = |family: OsFamily, working_antivirus: bool| {
            let a = Assessment {
                matches: Vec::new(),
                os: Os {
                    family,
                    name: None,
                    version: None,
                },
                working_antivirus,
            };
            evaluate_segment(&s, 0, &device([1; 32]), &a, utc_day(0))
        };
        for family in [OsFamily::Windows, OsFamily::Macos] {
            let r = on(family, false);
            assert_eq!(r.decision, Decision::Deny, "{family:?}");
            assert_eq!(r.unmet[0].requirement, Requirement::Antivirus);
            assert_eq!(on(family, true).decision, Decision::Allow);
        }
        for family in [OsFamily::Linux, OsFamily::Android, OsFamily::Other] {
            assert_eq!(on(family, false).decision, Decision::Allow, "{family:?}");
        }
    }

    #[test]
    fn the_parsed_minimum_os_version_is_met_or_named_in_the_detail() {
        let s = snapshot();
        let today = utc_day(0);
        let newer = evaluate_segment(
            &s,
            0,
            &device(FINGERPRINT),
            &kaspersky_on_windows(&s, "10.0.22631"),
            today,
        );
        assert!(newer.unmet.is_empty());
        let older = evaluate_segment(
            &s,
            0,
            &device(FINGERPRINT),
            &kaspersky_on_windows(&s, "10.0.17763"),
            today,
        );
        assert_eq!(older.decision, Decision::Deny);
        assert_eq!(older.unmet[0].requirement, Requirement::MinOsVersion);
        assert_eq!(
            older.unmet[0].detail,
            "windows 10.0.17763 (minimum 10.0.19045)"
        );
        let unreadable = evaluate_segment(
            &s,
            0,
            &device(FINGERPRINT),
            &kaspersky_on_windows(&s, "ten"),
            today,
        );
        assert_eq!(unreadable.unmet.len(), 1);
    }
}
