//! The verdict of spec section 5: what the gate answers to `attest`, what
//! `posture-gate verify` prints, and what the denial page and the audit log
//! are rendered from. One vocabulary everywhere.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

use crate::attestation::Reason;
use crate::device::DeviceIdentity;

/// The decision for one segment.
///
/// Ordered from mild to strict (`Allow < Warn < Deny`), so the strictest of
/// several rules is their `max()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// `allow`: the device may enter; also the action of an exempted finding.
    Allow,
    /// `warn`: the device may enter; the request is forwarded with a
    /// `Posture-Warning` header and audited as a warning.
    Warn,
    /// `deny`: the device may not enter this segment.
    Deny,
}

/// Reads `allow`, `warn` and `deny`; any other word (a decision of a newer
/// gate) reads as `deny`, so a reader that does not understand a decision
/// never takes it for an admission.
impl<'de> Deserialize<'de> for Decision {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(match word.as_ref() {
            "allow" => Decision::Allow,
            "warn" => Decision::Warn,
            _ => Decision::Deny,
        })
    }
}

impl Decision {
    /// The wire code: `allow`, `warn` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Warn => "warn",
            Decision::Deny => "deny",
        }
    }
}

/// Which claim array a finding's item came from (spec section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// `software`: from claim `software`.
    Software,
    /// `process`: from claim `processes`.
    Process,
    /// `security_product`: from claim `security_products`.
    SecurityProduct,
}

/// The reported item, copied as the device reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingItem {
    /// The claim array the item came from.
    pub kind: ItemKind,
    /// The item's `name` as reported, unnormalised.
    pub name: String,
    /// The item's `vendor`; always absent for a process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// A software item's `version`; absent for the other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A software item's `id`, or a process's `path`; absent for a security
    /// product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Prohibited software found on a device, for one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Id of the catalogue entry the item matched, e.g. `kaspersky`
    /// (wire `catalog_id`, spec section 5).
    pub catalog_id: String,
    /// Name of the segment whose policy acts on the match, as configured.
    pub segment: String,
    /// `deny` or `warn`; `allow` when an exemption waives it.
    pub action: Decision,
    /// The reported item, copied as the device reported it.
    pub item: FindingItem,
    /// The catalogue category the item matched (antivirus, vpn, ...).
    pub category: String,
    /// The reference of the exemption that waived this finding, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
    /// The last day (UTC, inclusive, `YYYY-MM-DD`) on which that exemption
    /// applies, so the audit log and `posture-gate report` show when a
    /// waiver runs out without the configuration at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption_expires: Option<String>,
    /// Staged enforcement (`deny_from` on the policy rule): the first day
    /// (UTC, `YYYY-MM-DD`) on which the rule denies. Before it the finding's
    /// action is `warn` and the user is told this date; from it, `deny`.
    /// Absent for a rule that is not staged. The action says which stage
    /// applied; this says the date the stages turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_from: Option<String>,
}

/// A segment requirement the device does not meet (minimum OS version, a
/// working antivirus). Kept apart from `findings`, whose items are always
/// reported software, processes or security products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmet {
    /// Which requirement of the segment's policy is not met.
    pub requirement: Requirement,
    /// Name of the segment whose policy sets the requirement.
    pub segment: String,
    /// Always `deny` today: an unmet requirement denies its segment.
    pub action: Decision,
    /// What the device reported, in plain words (e.g. "windows 10.0.17763").
    pub detail: String,
}

/// A requirement a segment's policy can set, beyond the catalogue; the wire
/// form is [`Requirement::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// `min_os_version`: the reported `os.version` is below the policy's
    /// minimum for the device's OS family, or missing or unreadable.
    MinOsVersion,
    /// `antivirus`: no security product of kind `antivirus` or `edr` is
    /// reported enabled and up to date (one the catalogue matches does not
    /// count).
    Antivirus,
}

impl Requirement {
    /// Every requirement, in the order a page lists them.
    pub const ALL: [Requirement; 2] = [Requirement::MinOsVersion, Requirement::Antivirus];

    /// The code of the requirement on the wire (the verdict's and the
    /// problem+json's `requirement`), the one spelling every reader uses.
    pub fn code(self) -> &'static str {
        match self {
            Requirement::MinOsVersion => "min_os_version",
            Requirement::Antivirus => "antivirus",
        }
    }

    /// The requirement with this [`code`](Requirement::code); `None` for a
    /// code this build does not know (a newer gate's).
    pub fn from_code(code: &str) -> Option<Requirement> {
        Requirement::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// A valid attestation evaluated against every segment.
/// Deserialises too: the agent reads the gate's answer as this type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Always `true` here; an invalid token gets [`Invalid`] instead.
    pub valid: bool,
    /// Who the device is, from its certificate (spec section 7).
    pub device: DeviceIdentity,
    /// RFC 3339.
    pub valid_until: String,
    /// One decision per configured segment, keyed by segment name (sorted,
    /// so the JSON is stable).
    pub decisions: BTreeMap<String, Decision>,
    /// Every match some segment's policy acts on: one per reported item,
    /// catalogue entry and segment, exempted ones included with action
    /// `allow`.
    pub findings: Vec<Finding>,
    /// Unmet requirements per segment; an extension of spec section 5,
    /// left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<Unmet>,
}

/// What an invalid token gets: `{"valid": false, "reason": CODE}`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Invalid {
    /// Always `false`.
    pub valid: bool,
    /// The first check that failed, in the order of spec section 7.
    pub reason: Reason,
}

impl Invalid {
    /// The answer for a token refused with `reason` (`valid` false).
    pub fn new(reason: Reason) -> Self {
        Invalid {
            valid: false,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `code()` is what pages and the agent print; serde writes the verdict.
    /// They must be the same word, and every code must read back.
    #[test]
    fn requirement_codes_are_the_serde_names_and_read_back() {
        for r in Requirement::ALL {
            let json = serde_json::to_value(r).unwrap();
            assert_eq!(json, serde_json::Value::from(r.code()));
            assert_eq!(Requirement::from_code(r.code()), Some(r));
        }
        assert_eq!(Requirement::from_code("max_os_version"), None);
    }

    /// The agent reads what the gate writes: a verdict survives the trip,
    /// and the byte fingerprint is rebuilt from the hex one.
    #[test]
    fn a_verdict_reads_back_as_the_gate_wrote_it() {
        let device = DeviceIdentity {
            fingerprint_sha256: "ab".repeat(32),
            fingerprint: [0xab; 32],
            subject: "CN=lt-1,O=Leverancier BV".into(),
            organization: Some("Leverancier BV".into()),
            organizational_units: Vec::new(),
            subject_name: crate::dn::DistinguishedName::parse("CN=lt-1,O=Leverancier BV").ok(),
        };
        let verdict = Verdict {
            valid: true,
            device: device.clone(),
            valid_until: "2026-11-30T12:00:00Z".into(),
            decisions: BTreeMap::from([("kantoor".to_owned(), Decision::Warn)]),
            findings: vec![Finding {
                catalog_id: "kaspersky".into(),
                segment: "kantoor".into(),
                action: Decision::Warn,
                item: FindingItem {
                    kind: ItemKind::Process,
                    name: "avp.exe".into(),
                    vendor: None,
                    version: None,
                    id: None,
                },
                category: "antivirus".into(),
                exemption: None,
                exemption_expires: None,
                deny_from: None,
            }],
            unmet: Vec::new(),
        };
        let json = serde_json::to_string(&verdict).unwrap();
        let back: Verdict = serde_json::from_str(&json).unwrap();
        assert_eq!(back.device, device);
        assert_eq!(back.decisions, verdict.decisions);
        assert_eq!(back.findings, verdict.findings);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn a_device_whose_fingerprint_is_not_64_hex_digits_does_not_read() {
        let bad = r#"{"fingerprint_sha256":"abc","subject":"CN=x"}"#;
        assert!(serde_json::from_str::<DeviceIdentity>(bad).is_err());
    }
}
