//! Microsoft Defender for Endpoint on Linux and macOS: the `mdatp` command's
//! health report, `mdatp health --output json`.
//!
//! The fields used are the ones Microsoft documents for `mdatp health`
//! ("Investigate agent health issues", learn.microsoft.com/defender-endpoint/
//! health-status): `healthy`, `real_time_protection_enabled`,
//! `passive_mode_enabled` and `definitions_status` (`up_to_date`, or another
//! state such as `updating` or `update_failed`). Managed settings may come
//! wrapped as `{"value": ..., "scope": ...}` and some versions spell keys in
//! camelCase (`realTimeProtectionEnabled`); both are read.
//!
//! The rules:
//! - **enabled**: real-time protection is on, the product is not in passive
//!   mode (it then leaves protection to another antivirus) and it reports
//!   itself healthy. Any of these unknown: unknown;
//! - **up to date**: `definitions_status` is `up_to_date`. Absent: unknown.
//!
//! Output that is not a JSON object is an error: the product is then
//! reported with unknown state, which never counts as a working antivirus.

use posture_core::attestation::claims::{SecurityProduct, SecurityProductKind};
use serde_json::Value;

/// The product name, as Microsoft names it.
pub const PRODUCT_NAME: &str = "Microsoft Defender for Endpoint";
pub const VENDOR: &str = "Microsoft Corporation";

/// What `mdatp health` says, as far as the posture needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MdatpHealth {
    pub healthy: Option<bool>,
    pub real_time_protection_enabled: Option<bool>,
    pub passive_mode_enabled: Option<bool>,
    pub definitions_up_to_date: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdatpError {
    #[error("`mdatp health --output json` did not print JSON: {0}")]
    NotJson(String),
    #[error("`mdatp health --output json` did not print a JSON object")]
    NotAnObject,
}

/// Parses the output of `mdatp health --output json`.
pub fn parse_health_json(text: &str) -> Result<MdatpHealth, MdatpError> {
    let value: Value =
        serde_json::from_str(text.trim()).map_err(|e| MdatpError::NotJson(e.to_string()))?;
    let obj = value.as_object().ok_or(MdatpError::NotAnObject)?;
    let field = |snake: &str, camel: &str| -> Option<&Value> {
        let v = obj.get(snake).or_else(|| obj.get(camel))?;
        // A managed setting: {"value": true, "scope": "managed"}.
        Some(match v {
            Value::Object(o) => o.get("value")?,
            other => other,
        })
    };
    let flag = |snake: &str, camel: &str| field(snake, camel).and_then(Value::as_bool);
    let definitions_up_to_date = field("definitions_status", "definitionsStatus")
        .and_then(Value::as_str)
        .map(|s| s.trim().eq_ignore_ascii_case("up_to_date"));
    Ok(MdatpHealth {
        healthy: flag("healthy", "healthy"),
        real_time_protection_enabled: flag(
            "real_time_protection_enabled",
            "realTimeProtectionEnabled",
        ),
        passive_mode_enabled: flag("passive_mode_enabled", "passiveModeEnabled"),
        definitions_up_to_date,
    })
}

impl MdatpHealth {
    /// Protection is on: real-time protection, not passive, healthy.
    pub fn enabled(&self) -> Option<bool> {
        if self.healthy == Some(false)
            || self.real_time_protection_enabled == Some(false)
            || self.passive_mode_enabled == Some(true)
        {
            return Some(false);
        }
        match (
            self.healthy,
            self.real_time_protection_enabled,
            self.passive_mode_enabled,
        ) {
            (Some(true), Some(true), Some(false)) => Some(true),
            _ => None,
        }
    }
}

/// The product, with the state its health report gives, or unknown state
/// when there is none (not this machine, or the report failed).
pub fn product(health: Option<&MdatpHealth>) -> SecurityProduct {
    SecurityProduct {
        name: PRODUCT_NAME.into(),
        vendor: Some(VENDOR.into()),
        kind: Some(SecurityProductKind::Antivirus),
        enabled: health.and_then(MdatpHealth::enabled),
        up_to_date: health.and_then(|h| h.definitions_up_to_date),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_and_camel_case_fields_are_read() {
        let h = parse_health_json(
            r#"{"healthy": true, "realTimeProtectionEnabled": {"value": true, "scope": "managed"},
                "passiveModeEnabled": {"value": false}, "definitionsStatus": "up_to_date"}"#,
        )
        .unwrap();
        assert_eq!(h.enabled(), Some(true));
        assert_eq!(h.definitions_up_to_date, Some(true));
    }

    #[test]
    fn passive_mode_or_unhealthy_is_not_enabled_and_missing_is_unknown() {
        let h = |json: &str| parse_health_json(json).unwrap();
        let passive = h(
            r#"{"healthy":true,"real_time_protection_enabled":true,"passive_mode_enabled":true}"#,
        );
        assert_eq!(passive.enabled(), Some(false));
        let sick = h(
            r#"{"healthy":false,"real_time_protection_enabled":true,"passive_mode_enabled":false}"#,
        );
        assert_eq!(sick.enabled(), Some(false));
        let partial = h(r#"{"healthy":true,"real_time_protection_enabled":true}"#);
        assert_eq!(partial.enabled(), None);
        assert_eq!(partial.definitions_up_to_date, None);
        // A string where a bool belongs is not believed.
        let odd = h(
            r#"{"healthy":"true","real_time_protection_enabled":true,"passive_mode_enabled":false}"#,
        );
        assert_eq!(odd.enabled(), None);
    }

    #[test]
    fn not_json_or_not_an_object_is_an_error() {
        assert!(matches!(
            parse_health_json("ATTENTION: No license found. Contact your administrator for help."),
            Err(MdatpError::NotJson(_))
        ));
        assert_eq!(parse_health_json("[true]"), Err(MdatpError::NotAnObject));
        assert!(parse_health_json("").is_err());
    }
}
