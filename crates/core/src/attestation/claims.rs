//! The claims of an attestation (spec section 3), shared by the gate, which
//! reads them, and the agent, which writes them.
//!
//! Deserialisation is strict about shapes (a string where an array belongs is
//! `malformed`) but ignores unknown claims, as the spec requires. Size limits
//! (1 KiB strings, 10,000-item arrays) are checked after parsing by
//! [`Claims::check_limits`], so the order of checks of spec section 7 stays
//! visible in `verify.rs`.

use serde::{Deserialize, Deserializer, Serialize};

/// The only `eat_profile` this gate understands.
pub const PROFILE_V1: &str = "urn:posture-gate:attestation:v1";

/// Longest string a claim may carry, in UTF-8 bytes after JSON unescaping.
pub const MAX_STRING_BYTES: usize = 1024;

/// Most items any one array may carry.
pub const MAX_ARRAY_ITEMS: usize = 10_000;

/// The payload of a posture attestation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// `None` when absent: the verifier turns that into `profile_mismatch`,
    /// after the payload has parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eat_profile: Option<String>,
    /// NumericDate in whole seconds. RFC 7519 allows fractions; they are
    /// truncated towards the past, which can only make a token look older.
    #[serde(deserialize_with = "numeric_date")]
    pub iat: i64,
    /// Optional expiry, Unix seconds truncated like `iat`: refused as
    /// `expired` from this second on (spec section 3, RFC 7519 section 4.1.4).
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    /// The nonce from the gate's challenge endpoint (spec section 4),
    /// redeemed once through a [`NonceRedeemer`](super::NonceRedeemer). Required
    /// only when the gate requires challenges (`nonce_missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eat_nonce: Option<String>,
    /// Device label for people, e.g. a host name. Never an identity: that
    /// comes from the certificate (spec section 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The operating system as the device reports it; required. Its family
    /// selects removal steps and a policy's minimum OS version.
    pub os: Os,
    /// Required: a report without an inventory must never look clean.
    pub software: Vec<Software>,
    /// Running processes; optional on the wire, empty when absent.
    #[serde(default)]
    pub processes: Vec<Process>,
    /// Security products as the platform's security centre lists them;
    /// optional on the wire, empty when absent. A policy's antivirus
    /// requirement is judged from these.
    #[serde(default)]
    pub security_products: Vec<SecurityProduct>,
}

/// Claim `os.family` (spec section 3). On the wire, in configuration
/// (`min_os_version` keys, catalogue removal steps) and in [`as_str`](Self::as_str)
/// it is the lowercase name; any other value is `malformed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    /// `windows`: Microsoft Windows.
    Windows,
    /// `macos`: Apple macOS.
    Macos,
    /// `linux`: a Linux distribution (Android and ChromeOS have their own).
    Linux,
    /// `android`: Android.
    Android,
    /// `ios`: Apple iOS.
    Ios,
    /// `chromeos`: Google ChromeOS.
    Chromeos,
    /// `other`: any system not listed above.
    Other,
}

impl OsFamily {
    /// Every family, in the order of spec section 3 (config validation lists
    /// them in its error message).
    pub const ALL: [OsFamily; 7] = [
        OsFamily::Windows,
        OsFamily::Macos,
        OsFamily::Linux,
        OsFamily::Android,
        OsFamily::Ios,
        OsFamily::Chromeos,
        OsFamily::Other,
    ];

    /// The wire and configuration name, e.g. `macos`.
    pub fn as_str(self) -> &'static str {
        match self {
            OsFamily::Windows => "windows",
            OsFamily::Macos => "macos",
            OsFamily::Linux => "linux",
            OsFamily::Android => "android",
            OsFamily::Ios => "ios",
            OsFamily::Chromeos => "chromeos",
            OsFamily::Other => "other",
        }
    }
}

/// Claim `os` (spec section 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Os {
    /// Required; an unknown family is `malformed`.
    pub family: OsFamily,
    /// Product name for people, e.g. `Windows 11 Pro` or `Ubuntu 24.04 LTS`;
    /// at most 1 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version as the OS reports it, e.g. `10.0.22631`. A policy's minimum
    /// OS version compares it as dotted numbers; absent or unreadable fails
    /// that requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Claim `software[].source` (spec section 3): which inventory listed the
/// item. Informational: neither matching nor policy reads it. Any value
/// not listed here is `malformed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SoftwareSource {
    /// `dpkg`: the Debian package database.
    Dpkg,
    /// `rpm`: the RPM database.
    Rpm,
    /// `msi`: Windows Installer products.
    Msi,
    /// `registry`: the Windows Uninstall registry keys (Add/Remove Programs).
    Registry,
    /// `macos-app`: an application bundle on macOS.
    MacosApp,
    /// `homebrew`: a Homebrew formula or cask.
    Homebrew,
    /// `snap`: a snap package.
    Snap,
    /// `flatpak`: a Flatpak application.
    Flatpak,
    /// `android`: an Android package.
    Android,
    /// `winget`: the Windows Package Manager.
    Winget,
    /// `osquery`: an osquery table.
    Osquery,
    /// `other`: any other inventory.
    Other,
}

/// One item of claim `software` (spec section 3). Every string is at most
/// 1 KiB.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Software {
    /// Required: display name (`Kaspersky Endpoint Security 12`) or package
    /// name (`kesl`). Matched by catalogue name patterns, and as the id when
    /// `id` is absent.
    pub name: String,
    /// Publisher as the platform lists it, e.g. `AO Kaspersky Lab`; matched
    /// exactly after normalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Free-form version string; copied into findings, never compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Package name, bundle id, MSI product code or Android package name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Code-signing identity: macOS Team ID, Authenticode subject, Android
    /// signing-certificate SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Which inventory listed the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SoftwareSource>,
}

/// One item of claim `processes` (spec section 3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Required: executable name, e.g. `avp.exe`; a path here is reduced to
    /// its last component before matching.
    pub name: String,
    /// Full path of the executable, Windows or POSIX; its file name is
    /// matched too when it differs from `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Claim `security_products[].kind` (spec section 3). Not copied into
/// findings (spec section 7); any other value is `malformed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityProductKind {
    /// `antivirus`: counts towards a policy's antivirus requirement.
    Antivirus,
    /// `firewall`: never counts as antivirus.
    Firewall,
    /// `edr`: endpoint detection and response; counts as antivirus.
    Edr,
    /// `other`: never counts as antivirus.
    Other,
}

/// One item of claim `security_products` (spec section 3), as the
/// platform's security centre reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityProduct {
    /// Required: display name, e.g. `Microsoft Defender Antivirus`; matched
    /// by catalogue name patterns.
    pub name: String,
    /// Publisher; matched exactly after normalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// What the product is; absent never counts as antivirus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SecurityProductKind>,
    /// Whether protection is switched on; only `Some(true)` counts towards
    /// the antivirus requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Whether its signatures are current; only `Some(true)` counts towards
    /// the antivirus requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_date: Option<bool>,
}

/// Which limit of spec section 3 a payload broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A string of the named top-level claim is over [`MAX_STRING_BYTES`].
    #[error("claim `{0}` has a string longer than {MAX_STRING_BYTES} bytes")]
    String(&'static str),
    /// The named array claim has more than [`MAX_ARRAY_ITEMS`] items.
    #[error("claim `{0}` has more than {MAX_ARRAY_ITEMS} items")]
    Array(&'static str),
}

impl Claims {
    /// Checks the string and array limits of spec section 3 on every claim
    /// this profile reads. Unknown claims are ignored, as the spec says.
    pub fn check_limits(&self) -> Result<(), LimitError> {
        fn s(claim: &'static str, v: &str) -> Result<(), LimitError> {
            if v.len() > MAX_STRING_BYTES {
                Err(LimitError::String(claim))
            } else {
                Ok(())
            }
        }
        fn o(claim: &'static str, v: &Option<String>) -> Result<(), LimitError> {
            v.as_deref().map_or(Ok(()), |v| s(claim, v))
        }
        fn a<T>(claim: &'static str, v: &[T]) -> Result<(), LimitError> {
            if v.len() > MAX_ARRAY_ITEMS {
                Err(LimitError::Array(claim))
            } else {
                Ok(())
            }
        }
        o("eat_profile", &self.eat_profile)?;
        o("eat_nonce", &self.eat_nonce)?;
        o("sub", &self.sub)?;
        o("os", &self.os.name)?;
        o("os", &self.os.version)?;
        a("software", &self.software)?;
        for i in &self.software {
            s("software", &i.name)?;
            o("software", &i.vendor)?;
            o("software", &i.version)?;
            o("software", &i.id)?;
            o("software", &i.signer)?;
        }
        a("processes", &self.processes)?;
        for p in &self.processes {
            s("processes", &p.name)?;
            o("processes", &p.path)?;
        }
        a("security_products", &self.security_products)?;
        for p in &self.security_products {
            s("security_products", &p.name)?;
            o("security_products", &p.vendor)?;
        }
        Ok(())
    }
}

fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    number_to_seconds(&n).ok_or_else(|| serde::de::Error::custom("NumericDate out of range"))
}

fn opt_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    numeric_date(d).map(Some)
}

fn number_to_seconds(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Bounded so the cast cannot saturate into a date that looks valid.
    if f.is_finite() && f > -1e15 && f < 1e15 {
        Some(f.floor() as i64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Claims, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn minimal_claims_parse_and_unknown_claims_are_ignored() {
        let c = parse(
            r#"{"eat_profile":"urn:posture-gate:attestation:v1","iat":1700000000,
            "os":{"family":"linux"},"software":[],"x-vendor":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(c.iat, 1_700_000_000);
        assert!(c.processes.is_empty());
    }

    #[test]
    fn fractional_iat_is_truncated_and_string_iat_is_rejected() {
        let c = parse(r#"{"iat":1700000000.9,"os":{"family":"linux"},"software":[]}"#).unwrap();
        assert_eq!(c.iat, 1_700_000_000);
        assert!(parse(r#"{"iat":"1700000000","os":{"family":"linux"},"software":[]}"#).is_err());
    }

    #[test]
    fn wrong_json_type_is_an_error() {
        assert!(parse(r#"{"iat":1,"os":{"family":"linux"},"software":"kesl"}"#).is_err());
        assert!(parse(r#"{"iat":1,"os":{"family":"beos"},"software":[]}"#).is_err());
    }

    #[test]
    fn missing_inventory_is_an_error() {
        assert!(parse(r#"{"iat":1,"os":{"family":"linux"}}"#).is_err());
    }

    #[test]
    fn limits_count_bytes_and_items() {
        let mut c = parse(r#"{"iat":1,"os":{"family":"linux"},"software":[]}"#).unwrap();
        c.sub = Some("é".repeat(512)); // 1024 bytes: at the limit
        assert_eq!(c.check_limits(), Ok(()));
        c.sub = Some("é".repeat(513));
        assert_eq!(c.check_limits(), Err(LimitError::String("sub")));
        c.sub = None;
        c.processes = vec![Process::default(); MAX_ARRAY_ITEMS + 1];
        assert_eq!(c.check_limits(), Err(LimitError::Array("processes")));
    }
}
