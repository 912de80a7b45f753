//! The built-in default snapshot, for `posture-gate verify` without a
//! config: the strictest useful policy, so a token checked without a config
//! is judged as a high-sensitivity segment would judge it.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;

use crate::attestation::VerifierSettings;
use crate::catalogue::{Catalogue, Matcher};

use super::compile::catalogue_error;
use super::error::ConfigErrors;
use super::model::{AttestationConfig, Sensitivity};
use super::snapshot::{AttestationSettings, Policy, Remediation, Rule, Segment, Snapshot};
use crate::verdict::Decision;

pub const DEFAULT_NAME: &str = "default";

impl Snapshot {
    /// The built-in default used by `posture-gate verify` without --config:
    /// one segment named `default` (sensitivity high) whose policy denies
    /// every entry of the built-in catalogue; no server, no routes.
    pub fn builtin_default(
        trust_anchors: Vec<CertificateDer<'static>>,
    ) -> Result<Snapshot, ConfigErrors> {
        let catalogue = Arc::new(Catalogue::builtin().map_err(catalogue_error)?);
        let rules = (0..catalogue.entries().len())
            .map(|entry| Rule {
                entry,
                action: Decision::Deny,
                categories: None,
                deny_from: None,
            })
            .collect();
        let defaults = AttestationConfig::default();
        Ok(Snapshot {
            source: None,
            server: None,
            attestation: AttestationSettings {
                trust_anchors,
                verifier: VerifierSettings {
                    max_age: defaults.max_age.get_ref().0,
                    clock_skew: defaults.clock_skew.0,
                    require_nonce: *defaults.require_nonce.get_ref(),
                },
                nonce_secret: None,
                nonce_ttl: defaults.nonce_ttl.get_ref().0,
                posture_cache_capacity: defaults.posture_cache_capacity,
            },
            matcher: Matcher::new(&catalogue),
            catalogue,
            segments: vec![Segment {
                name: DEFAULT_NAME.to_string(),
                description: "Built-in default: every catalogue entry is denied".to_string(),
                description_en: String::new(),
                sensitivity: Sensitivity::High,
                policy: 0,
                vlan: None,
            }],
            policies: vec![Policy {
                name: DEFAULT_NAME.to_string(),
                description: "Deny every entry of the built-in catalogue".to_string(),
                rules,
                min_os_version: Vec::new(),
                require_antivirus: Vec::new(),
            }],
            routes: Vec::new(),
            exemptions: Vec::new(),
            remediation: Remediation::default(),
            store: Default::default(),
        })
    }
}
