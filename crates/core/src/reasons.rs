//! Every reason code of spec section 5 in plain words, for a person who has
//! never heard of a JWS: what went wrong, and the first thing to do about it.
//! The code itself is shown too, for the service desk.

use crate::attestation::Reason;

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
}
