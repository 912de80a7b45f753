//! RFC 9457 problem details for API clients: the standard members `type`,
//! `title`, `status`, `detail` and `instance`, and extension members with
//! the same facts the HTML page shows.

use bytes::Bytes;
use serde::Serialize;

use posture_core::attestation::Reason;
use posture_core::verdict::Decision;

use super::model::View;

/// Problem types are URNs: stable names that promise no dereferenceable
/// document, and reveal nothing about where the gate runs.
pub const TYPE_PREFIX: &str = "urn:posture-gate:problem:";
pub const INSTANCE_PREFIX: &str = "urn:posture-gate:ref:";

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "type")]
    problem_type: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    instance: String,
    reference: &'a str,
    lang: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Reason>,
    /// The problem's code, for every problem (`stale_posture`, ...).
    #[serde(skip_serializing_if = "str::is_empty")]
    code: &'a str,
    /// `stale_posture`: when the posture aged out (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    aged_out: Option<&'a str>,
    /// A refused last report: when it came (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    refused_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    findings: Vec<JsonFinding<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unmet: Vec<JsonUnmet<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remediation: Vec<String>,
    service_desk: JsonDesk<'a>,
    /// The wire name keeps the spelling it has always had.
    #[serde(rename = "organisation_text", skip_serializing_if = "Option::is_none")]
    organization_text: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    catalog_id: &'a str,
    product: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    category: &'a str,
    action: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    deny_from: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonUnmet<'a> {
    requirement: &'a str,
    detail: &'a str,
    action: Decision,
}

#[derive(Serialize)]
struct JsonDesk<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hours: Option<&'a str>,
}

pub fn render(v: &View) -> Bytes {
    let doc = document(v);
    match serde_json::to_vec(&doc) {
        Ok(body) => Bytes::from(body),
        // Serialising plain strings and numbers cannot fail; if it ever
        // did, the client still gets a valid problem document.
        Err(_) => Bytes::from(format!(
            "{{\"type\":\"about:blank\",\"status\":{}}}",
            v.status.as_u16()
        )),
    }
}

fn document(v: &View) -> Document<'_> {
    Document {
        problem_type: format!("{TYPE_PREFIX}{}", v.slug),
        title: &v.title,
        status: v.status.as_u16(),
        detail: &v.lead,
        instance: format!("{INSTANCE_PREFIX}{}", v.reference),
        reference: &v.reference,
        lang: v.lang.code(),
        segment: v.segment.as_deref(),
        reason: v.reason,
        code: v.code,
        aged_out: v.aged_out.as_deref(),
        refused_at: v.refused_at.as_deref(),
        findings: v
            .findings
            .iter()
            .map(|f| JsonFinding {
                catalog_id: &f.catalog_id,
                product: &f.product,
                vendor: f.vendor.as_deref(),
                version: f.version.as_deref(),
                category: &f.category,
                action: f.action,
                deny_from: f.deny_from.as_deref(),
            })
            .collect(),
        unmet: v
            .unmet
            .iter()
            .map(|u| JsonUnmet {
                requirement: u.requirement.code(),
                detail: &u.detail,
                action: u.action,
            })
            .collect(),
        remediation: remediation(v),
        service_desk: JsonDesk {
            name: v.desk.name.as_deref(),
            phone: v.desk.phone.as_deref(),
            email: v.desk.email.as_deref(),
            url: v.desk.url.as_deref(),
            hours: v.desk.hours.as_deref(),
        },
        organization_text: v.organization.as_ref().map(|o| o.text.as_str()),
    }
}

/// Every numbered step of the page, in order, as one line each; a command
/// or a link target is kept verbatim after its sentence.
fn remediation(v: &View) -> Vec<String> {
    v.sections
        .iter()
        .flat_map(|s| &s.steps)
        .map(|step| {
            let mut line = step.text.clone();
            let extras = [
                step.code.as_deref(),
                step.link.as_ref().map(|l| l.href.as_str()),
            ];
            for extra in extras.into_iter().flatten() {
                line.push(' ');
                line.push_str(extra);
            }
            for alt in &step.alternatives {
                line.push_str(&format!(" {}: {}", alt.label, alt.code));
            }
            line
        })
        .collect()
}
