//! The verdict of spec section 5: what the gate answers to `attest`, what
//! `posture-gate verify` prints, and what the denial page and the audit log
//! are rendered from. One vocabulary everywhere.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::attestation::Reason;
use crate::device::DeviceIdentity;

/// The decision for one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Warn,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Warn => "warn",
            Decision::Deny => "deny",
        }
    }
}

/// Which claim array a finding's item came from (spec section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Software,
    Process,
    SecurityProduct,
}

/// The reported item, copied as the device reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingItem {
    pub kind: ItemKind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Prohibited software found on a device, for one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub catalog_id: String,
    pub segment: String,
    /// `deny` or `warn`; `allow` when an exemption waives it.
    pub action: Decision,
    pub item: FindingItem,
    /// The catalogue category the item matched (antivirus, vpn, ...).
    pub category: String,
    /// The reference of the exemption that waived this finding, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
}

/// A segment requirement the device does not meet (minimum OS version, a
/// working antivirus). Kept apart from `findings`, whose items are always
/// reported software, processes or security products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmet {
    pub requirement: Requirement,
    pub segment: String,
    pub action: Decision,
    /// What the device reported, in plain words (e.g. "windows 10.0.17763").
    pub detail: String,
}

/// A requirement a policy may set besides its rules; its wire name is
/// [`Requirement::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// The OS version is at least the policy's minimum for its family.
    MinOsVersion,
    /// An enabled, up-to-date antivirus that is not prohibited.
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
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub valid: bool,
    pub device: DeviceIdentity,
    /// RFC 3339.
    pub valid_until: String,
    pub decisions: BTreeMap<String, Decision>,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<Unmet>,
}

/// What an invalid token gets: `{"valid": false, "reason": CODE}`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Invalid {
    pub valid: bool,
    pub reason: Reason,
}

impl Invalid {
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
}
