//! The HTML page: one askama template for every problem, filled from a
//! [`View`]. Askama escapes every value, so a product name such as
//! `<script>` from a device is shown as text, never run.

use askama::Template;
use bytes::Bytes;

use super::csp::CSS;
use super::model::View;
use posture_core::lang::Lang;

#[derive(Template)]
#[template(path = "page/denial.html")]
struct Page<'a> {
    v: &'a View,
    t: &'a Labels,
    css: &'static str,
}

/// The fixed words of the page, per language.
pub struct Labels {
    pub service: &'static str,
    pub switch_label: &'static str,
    pub switch_code: &'static str,
    pub reference: &'static str,
    pub reference_hint: &'static str,
    pub segment: &'static str,
    pub code: &'static str,
    pub status: &'static str,
    pub device: &'static str,
    pub version: &'static str,
    pub category: &'static str,
    pub found_as: &'static str,
    pub effect: &'static str,
    pub reported: &'static str,
    pub sources: &'static str,
    pub for_organization: &'static str,
    pub help: &'static str,
    pub help_generic: &'static str,
    pub contact: &'static str,
    pub contact_generic: &'static str,
    pub quote: &'static str,
    pub phone: &'static str,
    pub email: &'static str,
    pub website: &'static str,
    pub hours: &'static str,
    pub footer: &'static str,
}

static NL: Labels = Labels {
    service: "Toegangscontrole",
    switch_label: "English",
    switch_code: "en",
    reference: "Uw referentie",
    reference_hint: "Noem deze referentie als u contact opneemt met de servicedesk. Daarmee kan de servicedesk zien wat er is gebeurd.",
    segment: "Onderdeel",
    code: "Code",
    status: "Status",
    device: "Uw apparaat",
    version: "Versie",
    category: "Soort",
    found_as: "Gevonden als",
    effect: "Gevolg",
    reported: "Uw apparaat meldt",
    sources: "Bron",
    for_organization: "Voor medewerkers van",
    help: "Hulp nodig?",
    help_generic: "Neem contact op met de servicedesk van uw organisatie en noem de referentie hierboven.",
    contact: "Neem contact op met",
    contact_generic: "Neem contact op met de servicedesk.",
    quote: "Noem daarbij de referentie hierboven.",
    phone: "Telefoon",
    email: "E-mail",
    website: "Website",
    hours: "Bereikbaar",
    footer: "Deze pagina komt van de toegangscontrole van uw organisatie, niet van de toepassing die u wilde openen.",
};

static EN: Labels = Labels {
    service: "Access check",
    switch_label: "Nederlands",
    switch_code: "nl",
    reference: "Your reference",
    reference_hint: "Quote this reference to the service desk. It lets them see what happened.",
    segment: "Segment",
    code: "Code",
    status: "Status",
    device: "Your device",
    version: "Version",
    category: "Kind",
    found_as: "Found as",
    effect: "Effect",
    reported: "Your device reports",
    sources: "Source",
    for_organization: "For staff of",
    help: "Need help?",
    help_generic: "Contact your organisation's service desk and quote the reference above.",
    contact: "Contact",
    contact_generic: "Contact the service desk.",
    quote: "Quote the reference above.",
    phone: "Phone",
    email: "Email",
    website: "Website",
    hours: "Opening hours",
    footer: "This page comes from your organisation's access check, not from the application you tried to open.",
};

pub fn render(v: &View) -> Bytes {
    let page = Page {
        v,
        t: v.lang.pick(&NL, &EN),
        css: CSS,
    };
    match page.render() {
        Ok(html) => Bytes::from(html),
        // The template only formats strings, so this is not expected; a
        // person must still get a page with the reference on it.
        Err(_) => Bytes::from(fallback(v)),
    }
}

fn fallback(v: &View) -> String {
    let reference: String = v
        .reference
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let (lang, text) = match v.lang {
        Lang::Nl => ("nl", "Geen toegang. Referentie"),
        Lang::En => ("en", "Access denied. Reference"),
    };
    format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><title>{}</title><p>{text}: {reference}</p></html>",
        v.status.as_u16()
    )
}
