//! Every reason code of spec section 5 in plain words, for a person who has
//! never heard of a JWS: what went wrong, and the first thing to do about it.
//! The code itself is shown too, for the service desk.

use crate::attestation::Reason;
use crate::certificate::CertProblem;

use crate::lang::Lang;

/// What went wrong and what to do first, in one language.
pub struct Explanation {
    /// What went wrong, for a person who does not know what a JWS is; one
    /// or two sentences.
    pub what: &'static str,
    /// The first thing that person can do about it, in a sentence or two.
    pub fix: &'static str,
}

/// The plain words for `reason` in `lang`, as the denial page and the agent
/// show them next to the code.
pub fn explain(reason: Reason, lang: Lang) -> Explanation {
    let (what_nl, fix_nl, what_en, fix_en) = texts(reason);
    match lang {
        Lang::Nl => Explanation {
            what: what_nl,
            fix: fix_nl,
        },
        Lang::En => Explanation {
            what: what_en,
            fix: fix_en,
        },
    }
}

/// (what, fix) in Dutch, then (what, fix) in English.
fn texts(reason: Reason) -> (&'static str, &'static str, &'static str, &'static str) {
    match reason {
        Reason::Malformed => (
            "Het rapport over uw apparaat kon niet worden gelezen. Het is beschadigd, of gemaakt door een programma dat niet bij deze toegangscontrole past.",
            "Gebruik de nieuwste versie van posture-agent die uw organisatie verstrekt.",
            "The report about your device could not be read. It is damaged, or was made by a program that does not fit this access check.",
            "Use the latest version of posture-agent provided by your organisation.",
        ),
        Reason::UnsupportedAlg => (
            "Het rapport is ondertekend met een methode die deze toegangscontrole niet accepteert.",
            "Gebruik de nieuwste versie van posture-agent die uw organisatie verstrekt.",
            "The report was signed with a method this access check does not accept.",
            "Use the latest version of posture-agent provided by your organisation.",
        ),
        Reason::BadSignature => (
            "De handtekening onder het rapport klopt niet met de inhoud. Het rapport is na het ondertekenen veranderd, of met een andere sleutel ondertekend.",
            "Maak een nieuw rapport met posture-agent en verander het daarna niet.",
            "The signature on the report does not match its contents. The report was changed after signing, or signed with another key.",
            "Make a new report with posture-agent and do not change it afterwards.",
        ),
        Reason::UntrustedChain => (
            "Het rapport is ondertekend met een certificaat dat deze toegangscontrole niet vertrouwt.",
            "Gebruik het apparaatcertificaat dat u van uw organisatie heeft gekregen.",
            "The report was signed with a certificate this access check does not trust.",
            "Use the device certificate your organisation gave you.",
        ),
        Reason::CertExpired => (
            "Een certificaat waarmee het rapport is ondertekend, is verlopen of nog niet geldig.",
            "Controleer of de datum en tijd van uw apparaat kloppen. Klopt dat, vraag dan een nieuw apparaatcertificaat aan bij uw organisatie.",
            "A certificate used to sign the report has expired or is not yet valid.",
            "Check that your device's date and time are correct. If they are, ask your organisation for a new device certificate.",
        ),
        Reason::KeyMismatch => (
            "Het rapport is ondertekend met een ander certificaat dan het certificaat dat uw browser liet zien.",
            "Gebruik bij posture-agent hetzelfde certificaat en dezelfde sleutel als in uw browser.",
            "The report was signed with a different certificate from the one your browser presented.",
            "Give posture-agent the same certificate and key that your browser uses.",
        ),
        Reason::ProfileMismatch => (
            "Het rapport is van een soort of versie die deze toegangscontrole niet kent.",
            "Gebruik de nieuwste versie van posture-agent die uw organisatie verstrekt.",
            "The report is of a kind or version this access check does not know.",
            "Use the latest version of posture-agent provided by your organisation.",
        ),
        Reason::Stale => (
            "Het rapport is te oud. Een rapport is maar korte tijd geldig.",
            "Maak vlak voordat u verbinding maakt een nieuw rapport.",
            "The report is too old. A report is valid for a short time only.",
            "Make a new report just before you connect.",
        ),
        Reason::FutureIat => (
            "Het rapport heeft een tijdstip in de toekomst. Waarschijnlijk loopt de klok van uw apparaat voor.",
            "Zet de datum en tijd van uw apparaat op automatisch instellen.",
            "The report is dated in the future. Your device's clock is probably running ahead.",
            "Set your device's date and time to be set automatically.",
        ),
        Reason::Expired => (
            "Het rapport is verlopen.",
            "Maak een nieuw rapport.",
            "The report has expired.",
            "Make a new report.",
        ),
        Reason::NonceMissing => (
            "In het rapport ontbreekt de eenmalige code van deze toegangscontrole. Die code is hier verplicht.",
            "Gebruik posture-agent met de optie --gate: het programma haalt de code dan zelf op.",
            "The report lacks the one-time code from this access check. The code is required here.",
            "Run posture-agent with the --gate option: it then fetches the code itself.",
        ),
        Reason::NonceUnknown => (
            "De eenmalige code in het rapport komt niet van deze toegangscontrole, of is verlopen.",
            "Maak een nieuw rapport: posture-agent haalt dan een nieuwe code op.",
            "The one-time code in the report was not issued by this access check, or it has expired.",
            "Make a new report: posture-agent then fetches a new code.",
        ),
        Reason::NonceReplayed => (
            "De eenmalige code in het rapport is al eerder gebruikt. Elk rapport kan maar één keer worden gebruikt.",
            "Maak een nieuw rapport in plaats van een oud rapport opnieuw te sturen.",
            "The one-time code in the report has been used before. Each report can be used only once.",
            "Make a new report instead of sending an old one again.",
        ),
        Reason::TooLarge => (
            "Het rapport is groter dan deze toegangscontrole aanneemt.",
            "Neem contact op met de servicedesk en noem de referentie op deze pagina.",
            "The report is larger than this access check accepts.",
            "Contact the service desk and quote the reference on this page.",
        ),
    }
}

/// The plain words for a client certificate that failed verification
/// (issue 19 point 2), as the page shows them next to the code; the page
/// adds what only it knows (the dates, which CA issued it and which the
/// gate accepts).
pub fn explain_certificate(problem: CertProblem, lang: Lang) -> Explanation {
    let (what_nl, fix_nl, what_en, fix_en) = certificate_texts(problem);
    match lang {
        Lang::Nl => Explanation {
            what: what_nl,
            fix: fix_nl,
        },
        Lang::En => Explanation {
            what: what_en,
            fix: fix_en,
        },
    }
}

/// (what, fix) in Dutch, then (what, fix) in English.
fn certificate_texts(
    problem: CertProblem,
) -> (&'static str, &'static str, &'static str, &'static str) {
    match problem {
        CertProblem::Expired => (
            "Het certificaat dat uw apparaat liet zien, is verlopen. Met een verlopen certificaat laat deze toegangscontrole niemand door.",
            "Vraag een nieuw apparaatcertificaat aan bij wie het heeft uitgegeven, en installeer het op dit apparaat.",
            "The certificate your device presented has expired. This access check lets no one in with an expired certificate.",
            "Ask whoever issued it for a new device certificate, and install it on this device.",
        ),
        CertProblem::NotYetValid => (
            "Het certificaat dat uw apparaat liet zien, is nog niet geldig. Meestal staat de klok van het apparaat verkeerd.",
            "Controleer of de datum en tijd van dit apparaat kloppen, en zet ze op automatisch instellen. Kloppen ze, wacht dan tot het certificaat geldig wordt of vraag de uitgever om een nieuw.",
            "The certificate your device presented is not valid yet. Usually the device's clock is wrong.",
            "Check that this device's date and time are correct, and set them to be set automatically. If they are, wait until the certificate becomes valid or ask its issuer for a new one.",
        ),
        CertProblem::UnknownIssuer => (
            "Het certificaat dat uw apparaat liet zien, is uitgegeven door een organisatie die deze toegangscontrole niet aanvaardt.",
            "Kies het apparaatcertificaat dat u van de organisatie hieronder kreeg. Heeft u dat niet, vraag het daar dan aan.",
            "The certificate your device presented was issued by an organisation this access check does not accept.",
            "Choose the device certificate you received from the organisation below. If you do not have one, ask them for it.",
        ),
        CertProblem::BadSignature | CertProblem::ChainTooLong => (
            "Het certificaat dat uw apparaat liet zien, leidt niet op een geldige manier naar een uitgever die deze toegangscontrole aanvaardt.",
            "Kies het apparaatcertificaat dat u van uw organisatie kreeg, of vraag een nieuw aan bij de uitgever hieronder.",
            "The certificate your device presented does not lead validly to an issuer this access check accepts.",
            "Choose the device certificate your organisation gave you, or ask the issuer below for a new one.",
        ),
        CertProblem::Revoked => (
            "Het certificaat dat uw apparaat liet zien, is ingetrokken door wie het heeft uitgegeven.",
            "Vraag de uitgever om een nieuw apparaatcertificaat. Het oude kan niet meer worden gebruikt.",
            "The certificate your device presented has been revoked by its issuer.",
            "Ask the issuer for a new device certificate. The old one cannot be used any more.",
        ),
        CertProblem::RevocationUnknown => (
            "Deze toegangscontrole kan nu niet nagaan of het certificaat van uw apparaat is ingetrokken, en laat het daarom niet toe. Dat ligt niet aan u.",
            "Probeer het later opnieuw. Blijft dit zo, neem dan contact op met de servicedesk en noem de referentie op deze pagina.",
            "This access check cannot confirm now that your device's certificate has not been revoked, so it does not accept it. This is not your fault.",
            "Try again later. If this persists, contact the service desk and quote the reference on this page.",
        ),
        CertProblem::BadPurpose => (
            "Het certificaat dat uw apparaat liet zien, is niet bedoeld om een apparaat aan te melden (het mist het gebruik \"client authentication\").",
            "Kies in uw browser het apparaatcertificaat, niet een ander certificaat. Heeft u er geen, vraag dan een apparaatcertificaat aan bij de uitgever.",
            "The certificate your device presented is not meant to identify a device (it lacks the \"client authentication\" usage).",
            "Choose the device certificate in your browser, not another certificate. If you have none, ask the issuer for a device certificate.",
        ),
        CertProblem::Unreadable | CertProblem::Other => (
            "Het certificaat dat uw apparaat liet zien, kan deze toegangscontrole niet lezen of niet gebruiken.",
            "Kies het apparaatcertificaat dat u van uw organisatie kreeg, of vraag een nieuw aan bij de uitgever.",
            "The certificate your device presented cannot be read or used by this access check.",
            "Choose the device certificate your organisation gave you, or ask its issuer for a new one.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_distinct_nonempty_texts_in_both_languages() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            for lang in [Lang::Nl, Lang::En] {
                let e = explain(r, lang);
                assert!(e.what.len() > 10 && e.fix.len() > 5, "{r:?} {lang:?}");
                assert!(seen.insert(e.what), "{r:?} {lang:?} repeats another reason");
            }
            assert_ne!(explain(r, Lang::Nl).what, explain(r, Lang::En).what);
        }
    }

    #[test]
    fn every_certificate_problem_has_texts_in_both_languages() {
        for p in CertProblem::ALL {
            for lang in [Lang::Nl, Lang::En] {
                let e = explain_certificate(p, lang);
                assert!(e.what.len() > 10 && e.fix.len() > 5, "{p:?} {lang:?}");
            }
            let (nl, en) = (
                explain_certificate(p, Lang::Nl),
                explain_certificate(p, Lang::En),
            );
            assert_ne!(nl.what, en.what);
            assert_ne!(nl.fix, en.fix);
        }
    }
}
