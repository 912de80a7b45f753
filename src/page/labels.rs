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

#[cfg(test)]
mod tests {
    use super::*;

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
