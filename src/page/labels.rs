//! The words the page uses for the core's codes and enums: OS families,
//! catalogue categories, item kinds, actions and requirements, in Dutch and
//! English. A leaf: only `posture_core` types come in.

use posture_core::attestation::claims::OsFamily;
use posture_core::lang::Lang;
use posture_core::verdict::{Decision, ItemKind, Requirement};

pub fn os_label(family: OsFamily, l: Lang) -> &'static str {
    match family {
        OsFamily::Windows => "Windows",
        OsFamily::Macos => "macOS",
        OsFamily::Linux => "Linux",
        OsFamily::Android => "Android",
        OsFamily::Ios => "iOS",
        OsFamily::Chromeos => "ChromeOS",
        OsFamily::Other => l.pick("een ander besturingssysteem", "another operating system"),
    }
}

/// Category words of the catalogue in plain language; an unknown one is
/// shown as it is rather than hidden.
pub fn category_label(category: &str, l: Lang) -> String {
    let known = match category {
        "antivirus" => Some(l.pick(
            "antivirus of endpointbeveiliging",
            "antivirus or endpoint protection",
        )),
        "management_agent" => Some(l.pick("beheersoftware", "management agent")),
        "vpn" => Some("VPN"),
        "password_manager" => Some(l.pick("wachtwoordbeheerder", "password manager")),
        "parental_control" => Some(l.pick("ouderlijk toezicht", "parental control")),
        "unclassified" => Some(l.pick("software van deze leverancier", "software by this vendor")),
        _ => None,
    };
    known.map_or_else(|| category.to_string(), str::to_string)
}

pub fn kind_label(kind: ItemKind, l: Lang) -> &'static str {
    match kind {
        ItemKind::Software => l.pick("geïnstalleerd programma", "installed program"),
        ItemKind::Process => l.pick("actief proces", "running process"),
        ItemKind::SecurityProduct => l.pick("beveiligingsproduct", "security product"),
    }
}

pub fn action_label(action: Decision, l: Lang) -> &'static str {
    match action {
        Decision::Deny => l.pick("blokkeert de toegang", "blocks access"),
        Decision::Warn => l.pick(
            "waarschuwing: nu nog toegestaan",
            "warning: still allowed for now",
        ),
        Decision::Allow => l.pick("toegestaan (uitzondering)", "allowed (exemption)"),
    }
}

pub fn requirement_label(requirement: Requirement, l: Lang) -> &'static str {
    match requirement {
        Requirement::MinOsVersion => l.pick(
            "Het besturingssysteem is te oud",
            "The operating system is too old",
        ),
        Requirement::Antivirus => l.pick(
            "Er is geen werkende, actuele antivirus",
            "There is no working, up-to-date antivirus",
        ),
    }
}

const MONTHS_NL: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn day_words(d: time::Date, l: Lang) -> String {
    let month = usize::from(u8::from(d.month())) - 1;
    let name = l.pick(MONTHS_NL[month], MONTHS_EN[month]);
    format!("{} {name} {}", d.day(), d.year())
}

/// A moment as a person reads it, in the page's language and always with
/// its timezone (the gate does not know the reader's): `30 november 2026
/// om 12:18 UTC`. Out of range: the Unix seconds, still with UTC.
pub fn moment(unix: i64, l: Lang) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{} {} {:02}:{:02} UTC",
            day_words(t.date(), l),
            l.pick("om", "at"),
            t.hour(),
            t.minute()
        ),
        Err(_) => format!("{unix} UTC"),
    }
}

/// RFC 3339 in UTC, for problem+json.
pub fn rfc3339(unix: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A day of the staged enforcement (`YYYY-MM-DD`, UTC) in words: `15
/// januari 2027`; a day that does not parse is shown as it is.
pub fn day(ymd: &str, l: Lang) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(ymd, &format) {
        Ok(d) => day_words(d, l),
        Err(_) => ymd.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_days_are_written_out_with_their_timezone() {
        // 2026-11-30T12:18:00Z
        assert_eq!(
            moment(1_796_041_080, Lang::Nl),
            "30 november 2026 om 12:18 UTC"
        );
        assert_eq!(
            moment(1_796_041_080, Lang::En),
            "30 November 2026 at 12:18 UTC"
        );
        assert_eq!(day("2027-01-15", Lang::Nl), "15 januari 2027");
        assert_eq!(day("2027-01-15", Lang::En), "15 January 2027");
        assert_eq!(day("soon", Lang::En), "soon");
    }

    #[test]
    fn category_words_are_translated_and_unknown_ones_kept() {
        assert_eq!(category_label("vpn", Lang::Nl), "VPN");
        assert_eq!(
            category_label("password_manager", Lang::Nl),
            "wachtwoordbeheerder"
        );
        assert_eq!(category_label("remote_access", Lang::En), "remote_access");
    }
}
