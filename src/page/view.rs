//! Builds the [`View`] of a problem: the title, lead and sections for each
//! kind of denial, the service desk and the organization's own text. The
//! structs live in `model`, the words for codes in `labels`, the sections
//! in `steps`; this module only chooses and assembles.

use http::StatusCode;

use posture_core::attestation::claims::Os;
use posture_core::attestation::Reason;
use posture_core::config::Snapshot;
use posture_core::decision::SegmentResult;
use posture_core::lang::Lang;
use posture_core::reasons;
use posture_core::verdict::{Decision, Finding, Requirement, Unmet};

use super::certificate;
use super::input::{NoticeInput, PageInput, Problem, ProhibitedPage};
use super::labels::{self, category_label, kind_label, os_label, requirement_label};
use super::links;
use super::model::{Desk, FindingView, Link, OrganizationView, Section, Step, UnmetView, View};
use super::steps;

/// The parts that differ per problem; the rest is common to every page.
struct Body {
    status: StatusCode,
    kicker: &'static str,
    title: String,
    lead: String,
    sections: Vec<Section>,
    segment: Option<String>,
    reason: Option<Reason>,
    aged_out: Option<String>,
    refused_at: Option<String>,
    findings: Vec<FindingView>,
    unmet: Vec<UnmetView>,
}

impl Body {
    fn new(status: StatusCode, kicker: &'static str, title: &str, lead: &str) -> Body {
        Body {
            status,
            kicker,
            title: title.to_string(),
            lead: lead.to_string(),
            sections: Vec::new(),
            segment: None,
            reason: None,
            aged_out: None,
            refused_at: None,
            findings: Vec::new(),
            unmet: Vec::new(),
        }
    }
}

pub fn build(input: &PageInput<'_>) -> View {
    let l = input.lang;
    let retry_href = links::same_origin(input.path_and_query);
    let agent = steps::Agent {
        gate_url: input.gate_url,
        family: input.os_family,
        ca: &input.snapshot.remediation.agent_ca,
        mode: input.snapshot.remediation.agent,
    };
    let body = body(input, &retry_href, &agent);
    View {
        lang: l,
        status: body.status,
        slug: input.problem.slug(),
        kicker: body.kicker,
        title: body.title,
        lead: body.lead,
        sections: body.sections,
        segment: body.segment,
        reason: body.reason,
        code: input.problem.code().as_str(),
        aged_out: body.aged_out,
        refused_at: body.refused_at,
        findings: body.findings,
        unmet: body.unmet,
        reference: input.reference.to_string(),
        desk: desk(input.snapshot, l),
        organization: organization(input.snapshot, input.organization, l),
        switch_href: links::with_lang(input.path_and_query, l.other()),
    }
}

/// The warning notice: what was found and by when it must go, how to
/// remove it, and a link on to the app (the same path on this host).
pub fn notice(input: &NoticeInput<'_>) -> View {
    let l = input.lang;
    let snapshot = input.snapshot;
    let family = input.os.map(|o| o.family);
    let agent = steps::Agent {
        gate_url: input.gate_url,
        family,
        ca: &snapshot.remediation.agent_ca,
        mode: snapshot.remediation.agent,
    };
    let findings: Vec<FindingView> = input
        .result
        .findings
        .iter()
        .filter(|f| f.action == Decision::Warn)
        .map(|f| finding_view(f, l))
        .collect();
    let unmet: Vec<UnmetView> = input
        .result
        .unmet
        .iter()
        .map(|u| unmet_view(u, input.os, l))
        .collect();
    let place = segment_label(snapshot, input.segment, l);
    let staged = findings.iter().filter_map(|f| f.deny_from.as_deref()).min();
    let lead = match staged {
        Some(day) => l.pick(
            format!("U krijgt nu nog toegang tot {place}, maar op uw apparaat staat software die daar niet gewenst is. Vanaf {} wordt de toegang geweigerd zolang die software erop staat. Hieronder staat hoe u haar verwijdert.", labels::day(day, l)),
            format!("You still have access to {place} for now, but your device has software that is not wanted there. From {} access will be refused while that software is on your device. Below is how to remove it.", labels::day(day, l)),
        ),
        None => l.pick(
            format!("U krijgt toegang tot {place}, maar op uw apparaat staat iets dat daar niet gewenst is. Hieronder staat wat er is gevonden en hoe u het oplost."),
            format!("You have access to {place}, but your device has something that is not wanted there. Below is what was found and how to fix it."),
        ),
    };
    let mut sections = Vec::new();
    if !findings.is_empty() {
        sections.push(steps::found(l, &findings, input.os));
        sections.extend(steps::removal(snapshot, l, &findings, family));
    }
    if !unmet.is_empty() {
        sections.push(steps::requirements(l, &unmet, family));
    }
    let target = links::same_origin(input.path_and_query);
    sections.push(Section {
        heading: l
            .pick("Verder naar de toepassing", "Continue to the application")
            .into(),
        paragraphs: vec![l
            .pick(
                "U kunt nu verder. Deze melding komt terug zolang het probleem er is.",
                "You can continue now. This notice comes back while the problem remains.",
            )
            .into()],
        steps: vec![Step::link(
            l.pick(
                "Ga verder naar wat u wilde openen:",
                "Go on to what you wanted to open:",
            ),
            Link {
                href: target.clone(),
                label: l.pick("Verder", "Continue").into(),
            },
        )],
        ..Section::default()
    });
    if !findings.is_empty() || !unmet.is_empty() {
        let mut again = steps::recheck(l, &target, None, &agent);
        again.heading = l
            .pick(
                "Daarna: laat uw apparaat opnieuw controleren",
                "Afterwards: have your device checked again",
            )
            .into();
        sections.push(again);
    }
    sections.extend(steps::rationale(snapshot, l, &findings));
    View {
        lang: l,
        status: StatusCode::OK,
        slug: "warning",
        kicker: l.pick("Waarschuwing", "Warning"),
        title: l
            .pick(
                "Let op: uw apparaat voldoet niet helemaal",
                "Please note: your device does not fully comply",
            )
            .into(),
        lead,
        sections,
        segment: Some(input.segment.to_string()),
        reason: None,
        code: "",
        aged_out: None,
        refused_at: None,
        findings,
        unmet,
        reference: input.reference.to_string(),
        desk: desk(snapshot, l),
        organization: organization(snapshot, input.organization, l),
        // No language switch: the notice is shown once per period, so a
        // switch link (to the same path) would reach the app, not the
        // notice in the other language. It is in the browser's language.
        switch_href: String::new(),
    }
}

fn body(input: &PageInput<'_>, retry: &str, agent: &steps::Agent<'_>) -> Body {
    let l = input.lang;
    let denied = l.pick("Geen toegang", "Access denied");
    match &input.problem {
        Problem::NoCertificate => {
            let mut b = Body::new(
                StatusCode::FORBIDDEN,
                denied,
                l.pick("Uw apparaat heeft geen certificaat laten zien", "Your device did not present a certificate"),
                l.pick(
                    "Deze toepassing is alleen bereikbaar vanaf apparaten met een apparaatcertificaat. Uw browser heeft geen certificaat meegestuurd.",
                    "This application can only be reached from devices with a device certificate. Your browser did not send one.",
                ),
            );
            b.sections.push(steps::enrol(l, retry));
            b
        }
        Problem::CertificateUntrusted => {
            let mut b = Body::new(
                StatusCode::FORBIDDEN,
                denied,
                l.pick("Het certificaat van uw apparaat wordt niet aanvaard", "Your device's certificate is not accepted"),
                l.pick(
                    "Uw apparaat toonde een certificaat dat niet is uitgegeven door de organisatie die toegang verleent, dat verlopen is, of dat niet voor apparaten bedoeld is. Gebruik het apparaatcertificaat dat u bij de aanmelding kreeg, of neem contact op met de servicedesk voor een nieuw certificaat.",
                    "Your device presented a certificate that was not issued by the organisation that grants access, has expired, or is not meant for devices. Use the device certificate you received at enrolment, or contact the service desk for a new certificate.",
                ),
            );
            b.sections.push(steps::enrol(l, retry));
            b
        }
        Problem::CertificateRejected(rejected) => {
            let t = certificate::texts(input.snapshot, rejected, l, retry);
            let mut b = Body::new(StatusCode::FORBIDDEN, denied, t.title, &t.lead);
            b.sections = t.sections;
            b
        }
        Problem::CertificateRefused => {
            let mut b = Body::new(
                StatusCode::FORBIDDEN,
                denied,
                l.pick("Het certificaat van uw apparaat wordt niet meer aanvaard", "Your device's certificate is no longer accepted"),
                l.pick(
                    "Het apparaatcertificaat is ingetrokken, of de toegangscontrole kan nu niet nagaan of het nog geldig is. Neem contact op met de servicedesk voor een nieuw certificaat.",
                    "The device certificate has been revoked, or the access check cannot confirm now that it is still valid. Contact the service desk for a new certificate.",
                ),
            );
            b.sections.push(steps::enrol(l, retry));
            b
        }
        Problem::NoPosture => {
            let mut b = Body::new(
                StatusCode::FORBIDDEN,
                denied,
                l.pick("Uw apparaat is nog niet gecontroleerd", "Your device has not been checked yet"),
                l.pick(
                    "Voordat u verder kunt, moet uw apparaat melden welke software erop staat. Dat doet het programma posture-agent.",
                    "Before you can continue, your device has to report which software it runs. The posture-agent program does that.",
                ),
            );
            b.sections.push(steps::recheck(l, retry, None, agent));
            b
        }
        Problem::ReportRefused { at, reason } => {
            let e = reasons::explain(*reason, l);
            let when = labels::moment(*at, l);
            let code = reason.code();
            let mut b = Body::new(
                StatusCode::FORBIDDEN,
                denied,
                l.pick("Het laatste rapport van uw apparaat is afgekeurd", "Your device's last report was refused"),
                &l.pick(
                    format!("Uw apparaat is nog niet toegelaten: het laatste rapport, op {when}, is afgekeurd ({code}). {}", e.what),
                    format!("Your device has not been admitted: its last report, at {when}, was refused ({code}). {}", e.what),
                ),
            );
            b.reason = Some(*reason);
            b.refused_at = labels::rfc3339(*at);
            b.sections.push(steps::recheck(l, retry, Some(e.fix), agent));
            b
        }
        Problem::StalePosture { aged_out } => {
            let lead = match aged_out {
                Some(t) => {
                    let when = labels::moment(*t, l);
                    l.pick(
                        format!("Het laatste rapport van uw apparaat is verlopen op {when}. Een rapport is maar korte tijd geldig, zodat de toegang past bij wat er nu op uw apparaat staat."),
                        format!("Your device's last report expired at {when}. A report is valid for a short time only, so that access matches what is on your device now."),
                    )
                }
                None => l.pick(
                    "Het laatste rapport van uw apparaat is te oud. Een rapport is maar korte tijd geldig, zodat de toegang past bij wat er nu op uw apparaat staat.",
                    "Your device's last report is too old. A report is valid for a short time only, so that access matches what is on your device now.",
                ).to_string(),
            };
            let mut b = Body::new(
                StatusCode::FORBIDDEN,
                denied,
                l.pick("De controle van uw apparaat is verlopen", "Your device's check has expired"),
                &lead,
            );
            b.aged_out = aged_out.and_then(labels::rfc3339);
            b.sections.push(steps::recheck(l, retry, None, agent));
            b
        }
        Problem::CatalogueChanged => {
            let mut b = Body::new(
                StatusCode::FORBIDDEN,
                denied,
                l.pick(
                    "Uw apparaat moet opnieuw worden gecontroleerd",
                    "Your device has to be checked again",
                ),
                l.pick(
                    "De lijst met verboden software is gewijzigd op of na de laatste controle van uw apparaat. Laat uw apparaat opnieuw controleren, zodat het aan de nieuwe lijst wordt getoetst.",
                    "The list of prohibited software changed at or after your device's last check. Have your device checked again, so that it is checked against the new list.",
                ),
            );
            b.sections.push(steps::recheck(l, retry, None, agent));
            b
        }
        Problem::InvalidAttestation(reason) => invalid(l, *reason, retry, denied, agent),
        Problem::Prohibited { segment, result, os } => {
            prohibited(input.snapshot, l, segment, result, *os, retry, denied, agent)
        }
        Problem::UnknownHost => Body::new(
            StatusCode::NOT_FOUND,
            l.pick("Niet gevonden", "Not found"),
            l.pick("Dit adres is hier niet bekend", "This address is not known here"),
            l.pick(
                "Achter deze toegangscontrole staat geen toepassing met dit adres. Controleer het adres in de adresbalk.",
                "There is no application with this address behind this access check. Check the address in the address bar.",
            ),
        ),
        Problem::UpstreamUnavailable => unavailable(
            l,
            StatusCode::BAD_GATEWAY,
            l.pick("De toepassing is niet bereikbaar", "The application cannot be reached"),
            l.pick(
                "Uw apparaat is toegelaten, maar de toepassing achter deze toegangscontrole antwoordt niet. Dat ligt niet aan u.",
                "Your device was admitted, but the application behind this access check does not answer. This is not your fault.",
            ),
            retry,
        ),
        Problem::StoreUnavailable => unavailable(
            l,
            StatusCode::SERVICE_UNAVAILABLE,
            l.pick("Uw apparaat kan nu niet worden beoordeeld", "Your device cannot be checked right now"),
            l.pick(
                "De toegangscontrole kan de gegevens over de controle van apparaten even niet bereiken, en laat daarom niemand door wiens controle zij niet kent. Dat ligt niet aan u of uw apparaat.",
                "The access check cannot reach its records of device checks for a moment, so it lets no one through whose check it does not know. This is not your fault, nor your device's.",
            ),
            retry,
        ),
        Problem::AuditUnavailable => unavailable(
            l,
            StatusCode::SERVICE_UNAVAILABLE,
            l.pick("Uw verzoek kan nu niet worden vastgelegd", "Your request cannot be recorded right now"),
            l.pick(
                "De toegangscontrole legt elke beslissing vast en kan dat even niet, en laat daarom niemand door. Dat ligt niet aan u of uw apparaat.",
                "The access check records every decision and cannot do so for a moment, so it lets no one through. This is not your fault, nor your device's.",
            ),
            retry,
        ),
        Problem::UpstreamTimeout => unavailable(
            l,
            StatusCode::GATEWAY_TIMEOUT,
            l.pick("De toepassing reageert niet op tijd", "The application did not respond in time"),
            l.pick(
                "Uw apparaat is toegelaten, maar de toepassing achter deze toegangscontrole gaf niet op tijd antwoord. Dat ligt niet aan u.",
                "Your device was admitted, but the application behind this access check did not answer in time. This is not your fault.",
            ),
            retry,
        ),
        Problem::PayloadTooLarge => Body::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            l.pick("Niet verwerkt", "Not processed"),
            l.pick("Wat u verstuurde is te groot", "What you sent is too large"),
            l.pick(
                "Het verzoek is groter dan deze toegangscontrole aanneemt. Verstuur minder gegevens tegelijk, of neem contact op met de servicedesk.",
                "The request is larger than this access check accepts. Send less data at once, or contact the service desk.",
            ),
        ),
        Problem::BadRequest => Body::new(
            StatusCode::BAD_REQUEST,
            l.pick("Niet verwerkt", "Not processed"),
            l.pick("Dit verzoek kan niet worden verwerkt", "This request cannot be processed"),
            l.pick(
                "Het adres of het verzoek heeft een vorm die deze toegangscontrole niet toestaat, bijvoorbeeld een gecodeerde schuine streep (%2F) in het pad. Controleer het adres of de link die u volgde.",
                "The address or request has a form this access check does not allow, for example an encoded slash (%2F) in the path. Check the address or the link you followed.",
            ),
        ),
    }
}

fn invalid(
    l: Lang,
    reason: Reason,
    retry: &str,
    denied: &'static str,
    agent: &steps::Agent<'_>,
) -> Body {
    let e = reasons::explain(reason, l);
    let mut b = Body::new(
        StatusCode::FORBIDDEN,
        denied,
        l.pick(
            "Het rapport van uw apparaat is afgekeurd",
            "Your device's report was rejected",
        ),
        e.what,
    );
    b.reason = Some(reason);
    b.sections
        .push(steps::recheck(l, retry, Some(e.fix), agent));
    b
}

fn unavailable(l: Lang, status: StatusCode, title: &str, lead: &str, retry: &str) -> Body {
    let mut b = Body::new(
        status,
        l.pick("Tijdelijk niet beschikbaar", "Temporarily unavailable"),
        title,
        lead,
    );
    b.sections.push(Section {
        heading: l.pick("Wat u kunt doen", "What you can do").into(),
        steps: vec![
            Step::text(l.pick("Wacht enkele minuten.", "Wait a few minutes.")),
            Step::link(
                l.pick("Probeer het daarna opnieuw:", "Then try again:"),
                Link {
                    href: retry.to_string(),
                    label: l.pick("Opnieuw proberen", "Try again").into(),
                },
            ),
            Step::text(l.pick(
                "Lukt het na een kwartier nog steeds niet? Neem dan contact op met de servicedesk.",
                "Still not working after a quarter of an hour? Contact the service desk.",
            )),
        ],
        ..Section::default()
    });
    b
}

#[allow(clippy::too_many_arguments)]
fn prohibited(
    snapshot: &Snapshot,
    l: Lang,
    segment: &str,
    result: &SegmentResult,
    os: Option<&Os>,
    retry: &str,
    denied: &'static str,
    agent: &steps::Agent<'_>,
) -> Body {
    let findings: Vec<FindingView> = result
        .findings
        .iter()
        .filter(|f| f.action != Decision::Allow)
        .map(|f| finding_view(f, l))
        .collect();
    let unmet: Vec<UnmetView> = result.unmet.iter().map(|u| unmet_view(u, os, l)).collect();
    let place = segment_label(snapshot, segment, l);
    let family = os.map(|o| o.family);
    let page = ProhibitedPage::of(result);
    let mut b = match page {
        ProhibitedPage::ProhibitedSoftware => Body::new(
            StatusCode::FORBIDDEN,
            denied,
            l.pick("Er staat verboden software op uw apparaat", "Prohibited software found on your device"),
            &l.pick(
                format!("Op uw apparaat staat software die niet is toegestaan voor {place}. Daarom krijgt u geen toegang. Verwijder de software, laat uw apparaat opnieuw controleren en probeer het dan opnieuw."),
                format!("Your device has software that is not allowed for {place}. That is why you have no access. Remove the software, have your device checked again, then try again."),
            ),
        ),
        ProhibitedPage::RequirementsNotMet => Body::new(
            StatusCode::FORBIDDEN,
            denied,
            l.pick("Uw apparaat voldoet niet aan de eisen", "Your device does not meet the requirements"),
            &l.pick(
                format!("Voor {place} moet uw apparaat aan eisen voldoen die het nu niet haalt. Los de punten hieronder op, laat uw apparaat opnieuw controleren en probeer het dan opnieuw."),
                format!("{} requires your device to meet requirements it does not meet now. Fix the points below, have your device checked again, then try again.", capitalise(&place)),
            ),
        ),
        ProhibitedPage::AccessDenied => Body::new(
            StatusCode::FORBIDDEN,
            denied,
            l.pick("U heeft geen toegang", "You have no access"),
            &l.pick(
                format!("Uw apparaat heeft geen toegang tot {place}. Neem contact op met de servicedesk en noem de referentie op deze pagina."),
                format!("Your device has no access to {place}. Contact the service desk and quote the reference on this page."),
            ),
        ),
    };
    b.segment = Some(segment.to_string());
    // What was found, then what to do about it, then why: the steps right
    // after the finding, the rationale for whoever reads on.
    if !findings.is_empty() {
        b.sections.push(steps::found(l, &findings, os));
        b.sections
            .extend(steps::removal(snapshot, l, &findings, family));
    }
    if !unmet.is_empty() {
        b.sections.push(steps::requirements(l, &unmet, family));
    }
    if !findings.is_empty() || !unmet.is_empty() {
        b.sections.push(steps::recheck(l, retry, None, agent));
    }
    b.sections.extend(steps::rationale(snapshot, l, &findings));
    b.findings = findings;
    b.unmet = unmet;
    b
}

/// How a segment is named to a person: its description when the network
/// team wrote one (the English one on an English page, when there is
/// one), with the name for the service desk.
fn segment_label(snapshot: &Snapshot, segment: &str, l: Lang) -> String {
    let description = snapshot
        .segments
        .iter()
        .find(|s| s.name == segment)
        .map(|s| {
            let en = s.description_en.trim();
            match l {
                Lang::En if !en.is_empty() => en,
                _ => s.description.trim(),
            }
        })
        .filter(|d| !d.is_empty());
    match description {
        Some(d) => format!("“{d}” ({segment})"),
        None => format!("“{segment}”"),
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn finding_view(f: &Finding, l: Lang) -> FindingView {
    FindingView {
        catalog_id: f.catalog_id.clone(),
        product: f.item.name.clone(),
        vendor: f.item.vendor.clone().filter(|v| !v.trim().is_empty()),
        version: f.item.version.clone().filter(|v| !v.trim().is_empty()),
        category: f.category.clone(),
        category_label: category_label(&f.category, l),
        kind: f.item.kind,
        kind_label: kind_label(f.item.kind, l),
        action: f.action,
        deny_from: f.deny_from.clone(),
    }
}

/// The requirement with what the device reported, in the page's language
/// from the reported OS (the core's `detail` is English, for logs).
fn unmet_view(u: &Unmet, os: Option<&Os>, l: Lang) -> UnmetView {
    let reported = match (u.requirement, os) {
        (Requirement::MinOsVersion, Some(os)) => {
            let version = os
                .version
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty());
            match version {
                Some(v) => format!("{} {v}", os_label(os.family, l)),
                None => l.pick(
                    format!("{}, zonder versie", os_label(os.family, l)),
                    format!("{}, without a version", os_label(os.family, l)),
                ),
            }
        }
        (Requirement::Antivirus, Some(os)) => l.pick(
            format!(
                "geen antivirus die aan staat en bijgewerkt is ({})",
                os_label(os.family, l)
            ),
            format!(
                "no antivirus that is on and up to date ({})",
                os_label(os.family, l)
            ),
        ),
        (Requirement::Antivirus, None) => l
            .pick(
                "geen antivirus die aan staat en bijgewerkt is",
                "no antivirus that is on and up to date",
            )
            .to_string(),
        (Requirement::MinOsVersion, None) => l
            .pick("geen bruikbare versie", "no usable version")
            .to_string(),
    };
    UnmetView {
        requirement: u.requirement,
        label: requirement_label(u.requirement, l),
        reported,
        detail: u.detail.clone(),
        action: u.action,
    }
}

fn desk(snapshot: &Snapshot, l: Lang) -> Desk {
    let d = &snapshot.remediation.service_desk;
    let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let phone = some(&d.phone);
    let email = some(&d.email);
    let url = some(&d.url);
    Desk {
        name: some(&d.name),
        phone_href: phone.as_deref().and_then(tel_href),
        email_href: email.as_deref().and_then(mailto_href),
        url_href: url.as_deref().and_then(web_href),
        phone,
        email,
        url,
        hours: some(l.pick(&d.hours_nl, &d.hours_en)),
    }
}

fn tel_href(phone: &str) -> Option<String> {
    // "+31 (0)70 ..." is how Dutch numbers are written; the (0) is not dialled.
    let digits: String = phone
        .replace("(0)", "")
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    (digits.len() >= 3 && !digits[1..].contains('+')).then(|| format!("tel:{digits}"))
}

fn mailto_href(email: &str) -> Option<String> {
    let plain = email.contains('@')
        && email
            .chars()
            .all(|c| c.is_ascii_graphic() && !"?&#:\"'<>\\".contains(c));
    plain.then(|| format!("mailto:{email}"))
}

/// Only web links: a `javascript:` or `data:` URL in config must not
/// become a clickable link on a page people are told to trust.
fn web_href(url: &str) -> Option<String> {
    let lower = url.to_ascii_lowercase();
    let web = (lower.starts_with("https://") || lower.starts_with("http://"))
        && url.chars().all(|c| c.is_ascii_graphic());
    web.then(|| url.to_string())
}

/// The organization's own text, looked up in the map the config load built
/// (names compared without case or surrounding space).
fn organization(
    snapshot: &Snapshot,
    organization: Option<&str>,
    l: Lang,
) -> Option<OrganizationView> {
    let o = snapshot.remediation.organization(organization?)?;
    let text = l.pick(&o.text_nl, &o.text_en).trim();
    (!text.is_empty()).then(|| OrganizationView {
        name: o.name.clone(),
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_links_become_links() {
        assert_eq!(
            web_href("https://servicedesk.example/"),
            Some("https://servicedesk.example/".into())
        );
        assert_eq!(web_href("javascript:alert(1)"), None);
        assert_eq!(web_href("data:text/html,x"), None);
        assert_eq!(web_href("https://a b"), None);
    }

    #[test]
    fn phone_and_mail_links_need_plain_values() {
        assert_eq!(
            tel_href("+31 (0)70 123 45 67"),
            Some("tel:+31701234567".into())
        );
        assert_eq!(tel_href("call us"), None);
        assert_eq!(tel_href("12+3"), None);
        assert_eq!(
            mailto_href("servicedesk@example.nl"),
            Some("mailto:servicedesk@example.nl".into())
        );
        assert_eq!(mailto_href("a@b.nl?subject=x"), None);
        assert_eq!(mailto_href("nobody"), None);
    }
}
