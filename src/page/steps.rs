//! The sections of a page: what was found, why it is not allowed, and the
//! numbered steps that get a person back in. Steps are always for the
//! device's own operating system where the catalogue knows them.

use std::collections::BTreeSet;

use posture_core::attestation::claims::{Os, OsFamily};
use posture_core::config::Snapshot;
use posture_core::lang::Lang;
use posture_core::verdict::{Decision, Requirement};

use super::labels::os_label;
use super::model::{FindingView, Link, Section, Source, Step, UnmetView};

fn retry_step(l: Lang, retry: &str, text: &str) -> Step {
    Step::link(
        text,
        Link {
            href: retry.to_string(),
            label: l.pick("Opnieuw proberen", "Try again").into(),
        },
    )
}

/// How to get and use a device certificate.
pub fn enrol(l: Lang, retry: &str) -> Section {
    let mut open_again = retry_step(
        l,
        retry,
        l.pick(
            "Open daarna deze pagina opnieuw:",
            "Then open this page again:",
        ),
    );
    open_again.note = Some(
        l.pick(
            "Uw browser vraagt dan welk certificaat u wilt gebruiken. Kies het apparaatcertificaat van uw organisatie.",
            "Your browser then asks which certificate to use. Choose your organisation's device certificate.",
        )
        .into(),
    );
    Section {
        heading: l.pick("Zo krijgt u toegang", "How to get access").into(),
        steps: vec![
            Step::text(l.pick(
                "Vraag een apparaatcertificaat aan bij uw organisatie. Weet u niet bij wie? Neem dan contact op met de servicedesk.",
                "Ask your organisation for a device certificate. Not sure whom to ask? Contact the service desk.",
            )),
            Step::text(l.pick(
                "Installeer het certificaat op dit apparaat zoals uw organisatie dat beschrijft. Meestal opent u het certificaatbestand (.p12 of .pfx) en volgt u de stappen.",
                "Install the certificate on this device as your organisation describes. Usually you open the certificate file (.p12 or .pfx) and follow the steps.",
            )),
            Step::text(l.pick(
                "Sluit uw browser helemaal af en start hem opnieuw.",
                "Quit your browser completely and start it again.",
            )),
            open_again,
        ],
        after: vec![l
            .pick(
                "Vroeg de browser niet om een certificaat, of koos u een ander certificaat? Een browser onthoudt die keuze tot hij helemaal is afgesloten. Sluit hem af en probeer het opnieuw.",
                "Did the browser not ask for a certificate, or did you choose another one? A browser remembers that choice until it is quit completely. Quit it and try again.",
            )
            .into()],
        ..Section::default()
    }
}

/// How to have the device checked (again) with the agent, then retry.
/// `first` is a step that must come before, such as fixing the clock.
pub fn recheck(l: Lang, retry: &str, first: Option<&str>) -> Section {
    let mut steps: Vec<Step> = first.map(Step::text).into_iter().collect();
    steps.push(Step {
        text: l
            .pick(
                "Open op dit apparaat een opdrachtvenster (Terminal, of PowerShell op Windows) en voer uit:",
                "On this device, open a command window (Terminal, or PowerShell on Windows) and run:",
            )
            .into(),
        code: Some(
            l.pick(
                "posture-agent attest --gate https://HOSTNAAM --cert CERTIFICAAT --key SLEUTEL",
                "posture-agent attest --gate https://HOSTNAME --cert CERTIFICATE --key KEY",
            )
            .into(),
        ),
        note: Some(
            l.pick(
                "Vervang HOSTNAAM door de naam in de adresbalk van uw browser (zonder pad), en CERTIFICAAT en SLEUTEL door de bestanden van uw apparaatcertificaat en de bijbehorende sleutel.",
                "Replace HOSTNAME with the name in your browser's address bar (without the path), and CERTIFICATE and KEY with the files of your device certificate and its key.",
            )
            .into(),
        ),
        link: None,
    });
    steps.push(Step::text(l.pick(
        "Wacht tot posture-agent klaar is. Het stuurt dan een ondertekend rapport over uw apparaat naar deze toegangscontrole.",
        "Wait until posture-agent has finished. It then sends a signed report about your device to this access check.",
    )));
    steps.push(retry_step(
        l,
        retry,
        l.pick(
            "Open daarna deze pagina opnieuw:",
            "Then open this page again:",
        ),
    ));
    Section {
        heading: l.pick("Zo laat u uw apparaat controleren", "How to have your device checked").into(),
        steps,
        after: vec![l
            .pick(
                "Heeft u posture-agent nog niet? Vraag het aan bij uw organisatie of de servicedesk.",
                "Don't have posture-agent yet? Ask your organisation or the service desk.",
            )
            .into()],
        ..Section::default()
    }
}

/// What the device reported: its OS and the offending items.
pub fn found(l: Lang, findings: &[FindingView], os: Option<&Os>) -> Section {
    Section {
        heading: l.pick("Wat er is gevonden", "What was found").into(),
        paragraphs: vec![l
            .pick(
                "Uw apparaat meldde deze software. Namen en versies staan hier zoals uw apparaat ze doorgaf.",
                "Your device reported this software. Names and versions are shown as your device reported them.",
            )
            .into()],
        device: os.map(|o| device_line(o, l)),
        findings: findings.to_vec(),
        ..Section::default()
    }
}

fn device_line(os: &Os, l: Lang) -> String {
    let name = os.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let version = os
        .version
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let name = name.unwrap_or_else(|| os_label(os.family, l));
    match version {
        Some(v) => format!("{name} {v}"),
        None => name.to_string(),
    }
}

/// Per catalogue entry found: why it is not allowed, and how to remove it
/// from this device's operating system.
pub fn removal(
    snapshot: &Snapshot,
    l: Lang,
    findings: &[FindingView],
    family: Option<OsFamily>,
) -> Vec<Section> {
    let mut seen = BTreeSet::new();
    let mut sections = Vec::new();
    for f in findings
        .iter()
        .filter(|f| seen.insert(f.catalog_id.as_str()))
    {
        let catalogue = &snapshot.catalogue;
        let entry = catalogue
            .index_of(&f.catalog_id)
            .and_then(|i| catalogue.entries().get(i));
        let (title, steps) = match entry {
            Some(e) => {
                let title = l.pick(&e.title.nl, &e.title.en).to_string();
                sections.push(Section {
                    heading: l.pick(
                        format!("Waarom {title} niet is toegestaan"),
                        format!("Why {title} is not allowed"),
                    ),
                    paragraphs: vec![l.pick(&e.rationale.nl, &e.rationale.en).to_string()],
                    sources: e.references.iter().map(|r| source(r)).collect(),
                    ..Section::default()
                });
                let steps = e.removal_steps(family);
                (title, l.pick(&steps.nl, &steps.en).clone())
            }
            None => (f.product.clone(), Vec::new()),
        };
        let mut steps: Vec<Step> = steps.iter().map(|s| Step::text(s)).collect();
        if steps.is_empty() {
            steps.push(Step::text(&l.pick(
                format!("Verwijder {title} van dit apparaat op de manier die uw besturingssysteem daarvoor heeft."),
                format!("Remove {title} from this device in the way your operating system provides."),
            )));
        }
        let on = match family {
            Some(f) if f != OsFamily::Other => format!(" ({})", os_label(f, l)),
            _ => String::new(),
        };
        let warn_only = findings
            .iter()
            .filter(|x| x.catalog_id == f.catalog_id)
            .all(|x| x.action != Decision::Deny);
        sections.push(Section {
            heading: l.pick(format!("Zo verwijdert u {title}{on}"), format!("How to remove {title}{on}")),
            paragraphs: warn_only
                .then(|| {
                    l.pick(
                        "Deze software blokkeert de toegang nu nog niet, maar is wel ongewenst. Verwijder haar zo snel mogelijk.",
                        "This software does not block access yet, but it is not wanted. Remove it as soon as you can.",
                    )
                    .to_string()
                })
                .into_iter()
                .collect(),
            steps,
            ..Section::default()
        });
    }
    sections
}

fn source(reference: &str) -> Source {
    let web = reference.starts_with("https://") && reference.chars().all(|c| c.is_ascii_graphic());
    Source {
        text: reference.to_string(),
        href: web.then(|| reference.to_string()),
    }
}

/// The requirements the device misses and how to meet them on its OS.
pub fn requirements(l: Lang, unmet: &[UnmetView], family: Option<OsFamily>) -> Section {
    let mut seen = BTreeSet::new();
    let steps = unmet
        .iter()
        .filter(|u| seen.insert(u.requirement.code()))
        .map(|u| match u.requirement {
            Requirement::MinOsVersion => update_os_step(l, family),
            Requirement::Antivirus => antivirus_step(l, family),
        })
        .collect();
    Section {
        heading: l
            .pick(
                "Waar uw apparaat niet aan voldoet",
                "Requirements your device does not meet",
            )
            .into(),
        unmet: unmet.to_vec(),
        steps,
        ..Section::default()
    }
}

fn update_os_step(l: Lang, family: Option<OsFamily>) -> Step {
    Step::text(match family {
        Some(OsFamily::Windows) => l.pick(
            "Installeer de nieuwste updates: Instellingen > Windows Update > Naar updates zoeken. Start daarna de computer opnieuw op.",
            "Install the latest updates: Settings > Windows Update > Check for updates. Then restart the computer.",
        ),
        Some(OsFamily::Macos) => l.pick(
            "Installeer de nieuwste versie van macOS: Systeeminstellingen > Algemeen > Software-update.",
            "Install the latest version of macOS: System Settings > General > Software Update.",
        ),
        Some(OsFamily::Ios) => l.pick(
            "Installeer de nieuwste versie van iOS: Instellingen > Algemeen > Software-update.",
            "Install the latest version of iOS: Settings > General > Software Update.",
        ),
        Some(OsFamily::Android) => l.pick(
            "Installeer de nieuwste versie van Android: Instellingen > Systeem > Software-update (de naam verschilt per merk).",
            "Install the latest version of Android: Settings > System > Software update (the name differs per brand).",
        ),
        Some(OsFamily::Linux) => l.pick(
            "Werk het systeem bij met de pakketbeheerder van uw distributie, of stap over op een versie die nog wordt ondersteund.",
            "Update the system with your distribution's package manager, or move to a version that is still supported.",
        ),
        _ => l.pick(
            "Werk het besturingssysteem van uw apparaat bij naar de nieuwste versie.",
            "Update your device's operating system to the latest version.",
        ),
    })
}

fn antivirus_step(l: Lang, family: Option<OsFamily>) -> Step {
    let mut step = Step::text(match family {
        Some(OsFamily::Windows) => l.pick(
            "Open Windows-beveiliging > Virus- en bedreigingsbeveiliging, zet Realtimebeveiliging aan en zoek naar updates.",
            "Open Windows Security > Virus & threat protection, turn on Real-time protection and check for updates.",
        ),
        _ => l.pick(
            "Installeer een antivirusprogramma dat uw organisatie toestaat, zet het aan en werk het bij.",
            "Install an antivirus program your organisation allows, turn it on and update it.",
        ),
    });
    step.note = Some(
        l.pick(
            "Een antivirusprogramma dat hier verboden is, telt niet mee.",
            "An antivirus program that is prohibited here does not count.",
        )
        .into(),
    );
    step
}
