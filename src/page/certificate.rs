//! The page of a client certificate that failed verification (issue 19
//! point 2): what is wrong with it, what to do (renew it, at which issuer;
//! for an issuer the gate does not accept, which one it does; for a
//! certificate not valid yet, the device's clock), and what the certificate
//! says about itself, for the service desk. Laid out like the
//! no-certificate page. The certificate's names are its sender's words:
//! shown (escaped by the template), never trusted.

use posture_core::certificate::{CertProblem, RejectedCert};
use posture_core::config::Snapshot;
use posture_core::lang::Lang;
use posture_core::reasons;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::model::{Link, Section, Step};

/// The title, lead and sections of the page.
pub struct Texts {
    pub title: &'static str,
    pub lead: String,
    pub sections: Vec<Section>,
}

pub fn texts(snapshot: &Snapshot, rejected: &RejectedCert, l: Lang, retry: &str) -> Texts {
    let problem = rejected.problem;
    let e = reasons::explain_certificate(problem, l);
    let mut lead = e.what.to_string();
    match problem {
        CertProblem::Expired => {
            if let Some(at) = rejected.not_after.and_then(date) {
                lead.push(' ');
                lead.push_str(l.pick("Het verliep op ", "It expired on "));
                lead.push_str(&at);
                lead.push('.');
            }
        }
        CertProblem::NotYetValid => {
            if let Some(from) = rejected.not_before.and_then(date) {
                let now =
                    date(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or_default();
                lead.push(' ');
                lead.push_str(&match l {
                    Lang::Nl => format!("Het is geldig vanaf {from}; volgens deze toegangscontrole is het nu {now}."),
                    Lang::En => format!("It is valid from {from}; according to this access check it is now {now}."),
                });
            }
        }
        _ => {}
    }
    let accepted = accepted_issuers(snapshot).join("; ");
    let mut steps = vec![Step::text(e.fix)];
    let issuer_step = match (problem, rejected.issuer.as_deref(), accepted.is_empty()) {
        (CertProblem::RevocationUnknown, ..) => None,
        (CertProblem::UnknownIssuer, Some(issuer), false) => Some(match l {
            Lang::Nl => format!("Dit certificaat is uitgegeven door {issuer}; deze toegangscontrole aanvaardt dat niet. Ze aanvaardt certificaten van: {accepted}."),
            Lang::En => format!("This certificate was issued by {issuer}, which this access check does not accept; it accepts certificates from: {accepted}."),
        }),
        (_, _, false) => Some(match l {
            Lang::Nl => format!("Apparaatcertificaten voor deze toegang worden uitgegeven door: {accepted}. Vraag daar, of bij de servicedesk, een nieuw apparaatcertificaat aan."),
            Lang::En => format!("Device certificates for this access are issued by: {accepted}. Ask them, or the service desk, for a new device certificate."),
        }),
        (_, _, true) => None,
    };
    steps.extend(issuer_step.as_deref().map(Step::text));
    steps.push(Step::text(l.pick(
        "Sluit uw browser helemaal af en start hem opnieuw.",
        "Quit your browser completely and start it again.",
    )));
    let mut again = Step::link(
        l.pick(
            "Open daarna deze pagina opnieuw:",
            "Then open this page again:",
        ),
        Link {
            href: retry.to_string(),
            label: l.pick("Opnieuw proberen", "Try again").into(),
        },
    );
    again.note = Some(
        l.pick(
            "Uw browser vraagt dan welk certificaat u wilt gebruiken. Kies het geldige apparaatcertificaat van uw organisatie.",
            "Your browser then asks which certificate to use. Choose your organisation's valid device certificate.",
        )
        .into(),
    );
    steps.push(again);
    let what_to_do = Section {
        heading: l.pick("Wat u kunt doen", "What you can do").into(),
        steps,
        ..Section::default()
    };
    Texts {
        title: title(problem, l),
        lead,
        sections: vec![what_to_do, details(rejected, l)],
    }
}

fn title(problem: CertProblem, l: Lang) -> &'static str {
    match problem {
        CertProblem::Expired => l.pick(
            "Het certificaat van uw apparaat is verlopen",
            "Your device's certificate has expired",
        ),
        CertProblem::NotYetValid => l.pick(
            "Het certificaat van uw apparaat is nog niet geldig",
            "Your device's certificate is not valid yet",
        ),
        CertProblem::UnknownIssuer | CertProblem::BadSignature | CertProblem::ChainTooLong => l
            .pick(
            "Het certificaat van uw apparaat komt niet van een uitgever die hier wordt aanvaard",
            "Your device's certificate is not from an issuer accepted here",
        ),
        CertProblem::Revoked => l.pick(
            "Het certificaat van uw apparaat is ingetrokken",
            "Your device's certificate has been revoked",
        ),
        CertProblem::RevocationUnknown => l.pick(
            "Het certificaat van uw apparaat kan nu niet worden gecontroleerd",
            "Your device's certificate cannot be checked right now",
        ),
        CertProblem::BadPurpose => l.pick(
            "Dit certificaat is niet bedoeld voor apparaten",
            "This certificate is not meant for devices",
        ),
        CertProblem::Unreadable | CertProblem::Other => l.pick(
            "Het certificaat van uw apparaat kan niet worden gebruikt",
            "Your device's certificate cannot be used",
        ),
    }
}

/// What the certificate says about itself, and the code.
fn details(rejected: &RejectedCert, l: Lang) -> Section {
    let mut paragraphs = Vec::new();
    let mut line = |label: &str, value: &str| paragraphs.push(format!("{label}: {value}"));
    if let Some(subject) = &rejected.subject {
        line(l.pick("Onderwerp", "Subject"), subject);
    }
    if let Some(issuer) = &rejected.issuer {
        line(l.pick("Uitgegeven door", "Issued by"), issuer);
    }
    if let (Some(from), Some(to)) = (
        rejected.not_before.and_then(date),
        rejected.not_after.and_then(date),
    ) {
        let period = match l {
            Lang::Nl => format!("{from} tot {to}"),
            Lang::En => format!("{from} to {to}"),
        };
        line(l.pick("Geldig van", "Valid from"), &period);
    }
    if let Some(serial) = &rejected.serial {
        line(l.pick("Serienummer", "Serial number"), serial);
    }
    if !rejected.fingerprint_sha256.is_empty() {
        line(
            l.pick("Vingerafdruk (SHA-256)", "Fingerprint (SHA-256)"),
            &rejected.fingerprint_sha256,
        );
    }
    line("Code", rejected.code().as_str());
    Section {
        heading: l
            .pick(
                "Het certificaat dat uw apparaat liet zien",
                "The certificate your device presented",
            )
            .into(),
        paragraphs,
        ..Section::default()
    }
}

/// Unix seconds as `2026-11-30 14:05 UTC`.
fn date(unix: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    t.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .ok()
}

/// The subjects of the client CAs: whom device certificates must come
/// from. Parsed only for this page.
fn accepted_issuers(snapshot: &Snapshot) -> Vec<String> {
    let Some(server) = &snapshot.server else {
        return Vec::new();
    };
    server
        .client_cas
        .iter()
        .filter_map(|der| X509Certificate::from_der(der.as_ref()).ok())
        .map(|(_, ca)| ca.subject().to_string())
        .collect()
}
