//! What a denial says, independent of how it is written down: the structs
//! the HTML template and the problem+json document are both rendered from,
//! so a person and an API client are always told the same thing. A leaf:
//! `view` and `steps` fill these, `html` and `problem_json` read them.

use http::StatusCode;

use posture_core::attestation::Reason;
use posture_core::lang::Lang;
use posture_core::verdict::{Decision, ItemKind, Requirement};

pub struct View {
    pub lang: Lang,
    pub status: StatusCode,
    /// The last part of the problem type URN, e.g. `prohibited-software`.
    pub slug: &'static str,
    /// A short label above the title, so the kind of page is clear in words.
    pub kicker: &'static str,
    pub title: String,
    pub lead: String,
    pub sections: Vec<Section>,
    pub segment: Option<String>,
    pub reason: Option<Reason>,
    /// The problem's code (`stale_posture`, `no_posture`, ...), on the page
    /// and in problem+json; empty for the warning notice.
    pub code: &'static str,
    /// RFC 3339: when the posture aged out (`stale_posture`).
    pub aged_out: Option<String>,
    /// RFC 3339: when the device's last, refused, report came.
    pub refused_at: Option<String>,
    pub findings: Vec<FindingView>,
    pub unmet: Vec<UnmetView>,
    pub reference: String,
    pub desk: Desk,
    pub organization: Option<OrganizationView>,
    pub switch_href: String,
}

#[derive(Clone)]
pub struct FindingView {
    pub catalog_id: String,
    pub product: String,
    pub vendor: Option<String>,
    pub version: Option<String>,
    pub category: String,
    pub category_label: String,
    pub kind: ItemKind,
    pub kind_label: &'static str,
    pub action: Decision,
    /// Staged enforcement: the first day the finding denies (`YYYY-MM-DD`).
    pub deny_from: Option<String>,
}

/// One product as the page shows it: every way the device reported it
/// (a program, a process, a security product) on one card.
#[derive(Clone)]
pub struct ProductCard {
    pub title: String,
    pub category_label: String,
    pub action_label: String,
    pub seen: Vec<SeenAs>,
    /// "and 1,234 more" when the card lists only the first sightings.
    pub more: Option<String>,
}

#[derive(Clone)]
pub struct SeenAs {
    pub kind_label: &'static str,
    pub name: String,
    pub version: Option<String>,
    pub vendor: Option<String>,
}

#[derive(Clone)]
pub struct UnmetView {
    pub requirement: Requirement,
    pub label: &'static str,
    /// What the device reported, in the page's language.
    pub reported: String,
    /// The core's English detail, for problem+json.
    pub detail: String,
    pub action: Decision,
}

/// The service desk from config; empty fields are `None`. Hrefs are only
/// set when the value has the shape the scheme needs.
#[derive(Default)]
pub struct Desk {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub phone_href: Option<String>,
    pub email: Option<String>,
    pub email_href: Option<String>,
    pub url: Option<String>,
    pub url_href: Option<String>,
    pub hours: Option<String>,
}

pub struct OrganizationView {
    pub name: String,
    pub text: String,
}

#[derive(Clone, Default)]
pub struct Section {
    pub heading: String,
    pub paragraphs: Vec<String>,
    /// What the device reported about itself, e.g. "Windows 11 Pro 10.0.22631".
    pub device: Option<String>,
    pub cards: Vec<ProductCard>,
    pub unmet: Vec<UnmetView>,
    pub steps: Vec<Step>,
    pub after: Vec<String>,
    pub sources: Vec<Source>,
}

#[derive(Clone, Default)]
pub struct Step {
    pub text: String,
    /// A command to type, shown as code so it can be copied exactly.
    pub code: Option<String>,
    pub note: Option<String>,
    pub link: Option<Link>,
    /// Commands per operating system when the device's is not known.
    pub alternatives: Vec<Alternative>,
}

/// One operating system's command of a step.
#[derive(Clone)]
pub struct Alternative {
    pub label: String,
    pub code: String,
}

impl Step {
    pub fn text(text: &str) -> Step {
        Step {
            text: text.to_string(),
            ..Step::default()
        }
    }

    pub fn link(text: &str, link: Link) -> Step {
        Step {
            text: text.to_string(),
            link: Some(link),
            ..Step::default()
        }
    }
}

#[derive(Clone)]
pub struct Link {
    pub href: String,
    pub label: String,
}

/// A reference of a catalogue entry; a link only when it is a web address.
#[derive(Clone)]
pub struct Source {
    pub text: String,
    pub href: Option<String>,
}
