//! The sections of a page: what was found, why it is not allowed, and the
//! numbered steps that get a person back in. Steps are always for the
//! device's own operating system where the catalogue knows them.

use std::collections::{BTreeSet, HashSet};

use posture_core::attestation::claims::{Os, OsFamily};
use posture_core::config::model::AgentMode;
use posture_core::config::Snapshot;
use posture_core::lang::Lang;
use posture_core::verdict::{Decision, ItemKind, Requirement};

use super::labels::{self, action_label, os_label};
use super::model::{
    Alternative, FindingView, Link, ProductCard, Section, SeenAs, Source, Step, UnmetView,
};

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

/// What the "check again" step needs to know about this gate and device.
#[derive(Clone, Copy)]
pub struct Agent<'a> {
    /// `https://HOST:PORT` as the request came in; `None`: not known.
    pub gate_url: Option<&'a str>,
    /// The device's OS family when it reported one.
    pub family: Option<OsFamily>,
    /// `--ca FILE`; empty: the gate's certificate is from a public CA.
    pub ca: &'a str,
    pub mode: AgentMode,
}

/// The command a user runs to start the installed agent service now, per
/// OS (the service installs of `config/agent/`). `None` for an OS the
/// agent is not installed on as a service.
pub fn service_trigger(family: OsFamily) -> Option<&'static str> {
    match family {
        OsFamily::Linux => Some("systemctl start posture-agent.service"),
        OsFamily::Macos => Some("touch /Users/Shared/posture-agent/check-now"),
        OsFamily::Windows => Some(r#"schtasks /run /tn "\posture-gate\posture-agent""#),
        _ => None,
    }
}

/// The manual command for this gate, exactly as it is to be typed.
pub fn manual_command(agent: &Agent<'_>, l: Lang) -> String {
    let gate = agent
        .gate_url
        .unwrap_or_else(|| l.pick("https://HOSTNAAM", "https://HOSTNAME"));
    let mut command = format!("posture-agent attest --gate {gate}");
    if !agent.ca.is_empty() {
        command.push_str(" --ca ");
        // A path with spaces (C:\Program Files\...) must stay one argument
        // in every shell the page names.
        if agent.ca.contains(char::is_whitespace) {
            command.push('"');
            command.push_str(agent.ca);
            command.push('"');
        } else {
            command.push_str(agent.ca);
        }
    }
    command
}

/// How to have the device checked (again) with the agent, then retry.
/// `first` is a step that must come before, such as fixing the clock.
pub fn recheck(l: Lang, retry: &str, first: Option<&str>, agent: &Agent<'_>) -> Section {
    let mut steps: Vec<Step> = first.map(Step::text).into_iter().collect();
    let open = l.pick(
        "Open op dit apparaat een opdrachtvenster (Terminal, of PowerShell op Windows) en voer uit:",
        "On this device, open a command window (Terminal, or PowerShell on Windows) and run:",
    );
    if agent.mode != AgentMode::Manual {
        let text = l.pick(
            "Start de controle door posture-agent, die als dienst op uw apparaat staat. Open een opdrachtvenster (Terminal, of PowerShell op Windows) en voer uit:",
            "Start the check by posture-agent, which runs as a service on your device. Open a command window (Terminal, or PowerShell on Windows) and run:",
        );
        let mut step = Step::text(text);
        match agent.family.and_then(service_trigger) {
            Some(trigger) => step.code = Some(trigger.to_string()),
            None => {
                step.alternatives = [OsFamily::Windows, OsFamily::Macos, OsFamily::Linux]
                    .into_iter()
                    .filter_map(|f| {
                        Some(Alternative {
                            label: os_label(f, l).to_string(),
                            code: service_trigger(f)?.to_string(),
                        })
                    })
                    .collect();
            }
        }
        steps.push(step);
    }
    if agent.mode != AgentMode::Service {
        let text = match agent.mode {
            AgentMode::Both => l.pick(
                "Staat posture-agent niet als dienst op uw apparaat? Voer het dan zelf uit, in een opdrachtvenster:",
                "Is posture-agent not installed as a service on your device? Then run it yourself, in a command window:",
            ),
            _ => open,
        };
        let mut note = String::from(l.pick(
            "posture-agent neemt uw apparaatcertificaat en de sleutel uit zijn instellingenbestand agent.toml, zoals uw organisatie het heeft ingericht. Zonder dat bestand voegt u --cert en --key toe met de bestanden van uw apparaatcertificaat en de sleutel.",
            "posture-agent takes your device certificate and key from its settings file agent.toml, as your organisation set it up. Without that file, add --cert and --key with the files of your device certificate and its key.",
        ));
        if !agent.ca.is_empty() {
            note.push(' ');
            note.push_str(&l.pick(
                format!("{} is het certificaat van de uitgever van het certificaat van deze toegangscontrole; u krijgt het van uw organisatie of de servicedesk.", agent.ca),
                format!("{} is the certificate of the authority that issued this access check's certificate; your organisation or the service desk gives it to you.", agent.ca),
            ));
        }
        if agent.gate_url.is_none() {
            note.push(' ');
            note.push_str(l.pick(
                "Vervang HOSTNAAM door de naam in de adresbalk van uw browser (zonder pad).",
                "Replace HOSTNAME with the name in your browser's address bar (without the path).",
            ));
        }
        steps.push(Step {
            text: text.into(),
            code: Some(manual_command(agent, l)),
            note: Some(note),
            ..Step::default()
        });
    }
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

/// What the device reported: its OS and one card per product.
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
        cards: cards(l, findings),
        ..Section::default()
    }
}

/// How many ways of being seen a product card lists before "and N more".
pub const MAX_SEEN_PER_CARD: usize = 20;

/// One card per product: the findings of one catalogue entry, in the
/// order first seen, each way it was reported listed once.
fn cards(l: Lang, findings: &[FindingView]) -> Vec<ProductCard> {
    let mut order: Vec<&str> = Vec::new();
    for f in findings {
        if !order.contains(&f.catalog_id.as_str()) {
            order.push(&f.catalog_id);
        }
    }
    order
        .into_iter()
        .map(|id| {
            let all: Vec<&FindingView> = findings.iter().filter(|f| f.catalog_id == id).collect();
            // A program's name is what a person recognises; a process name
            // (avp.exe) only when nothing else was reported.
            let title = all
                .iter()
                .find(|f| f.kind == ItemKind::Software)
                .or_else(|| all.iter().find(|f| f.kind == ItemKind::SecurityProduct))
                .or(all.first())
                .map_or_else(String::new, |f| f.product.clone());
            // A device may report thousands of matching items (one vendor's
            // whole suite, or a hostile report): each sighting is looked up
            // once, and a card lists the first few, then how many more.
            let mut distinct: HashSet<(&str, &str, Option<&str>)> = HashSet::new();
            let mut seen: Vec<SeenAs> = Vec::new();
            let mut more = 0usize;
            for f in &all {
                if !distinct.insert((f.kind_label, &f.product, f.version.as_deref())) {
                    continue;
                }
                if seen.len() == MAX_SEEN_PER_CARD {
                    more += 1;
                    continue;
                }
                seen.push(SeenAs {
                    kind_label: f.kind_label,
                    name: f.product.clone(),
                    version: f.version.clone(),
                    vendor: f.vendor.clone(),
                });
            }
            let more = (more > 0)
                .then(|| l.pick(format!("en nog {more} andere"), format!("and {more} more")));
            let deny = all.iter().any(|f| f.action == Decision::Deny);
            let staged = all.iter().filter_map(|f| f.deny_from.as_deref()).min();
            let action_label = match (deny, staged) {
                (false, Some(day)) => l.pick(
                    format!(
                        "waarschuwing: vanaf {} wordt de toegang geweigerd",
                        labels::day(day, l)
                    ),
                    format!(
                        "warning: access will be refused from {}",
                        labels::day(day, l)
                    ),
                ),
                (true, _) => action_label(Decision::Deny, l).to_string(),
                (false, None) => action_label(Decision::Warn, l).to_string(),
            };
            let mut categories: Vec<&str> = Vec::new();
            for f in &all {
                if !categories.contains(&f.category_label.as_str()) {
                    categories.push(&f.category_label);
                }
            }
            ProductCard {
                title,
                category_label: categories.join(", "),
                action_label,
                seen,
                more,
            }
        })
        .collect()
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

/// The catalogue entries of `findings`, each once, in the order found.
fn entries(findings: &[FindingView]) -> Vec<&FindingView> {
    let mut seen = BTreeSet::new();
    findings
        .iter()
        .filter(|f| seen.insert(f.catalog_id.as_str()))
        .collect()
}

fn entry_title(snapshot: &Snapshot, l: Lang, f: &FindingView) -> String {
    let catalogue = &snapshot.catalogue;
    catalogue
        .index_of(&f.catalog_id)
        .and_then(|i| catalogue.entries().get(i))
        .map_or_else(
            || f.product.clone(),
            |e| l.pick(&e.title.nl, &e.title.en).to_string(),
        )
}

/// Per catalogue entry found: how to remove it from this device's
/// operating system, and by when when the rule is staged.
pub fn removal(
    snapshot: &Snapshot,
    l: Lang,
    findings: &[FindingView],
    family: Option<OsFamily>,
) -> Vec<Section> {
    let mut sections = Vec::new();
    for f in entries(findings) {
        let catalogue = &snapshot.catalogue;
        let entry = catalogue
            .index_of(&f.catalog_id)
            .and_then(|i| catalogue.entries().get(i));
        let title = entry_title(snapshot, l, f);
        let steps = entry.map_or_else(Vec::new, |e| {
            let steps = e.removal_steps(family);
            l.pick(&steps.nl, &steps.en).clone()
        });
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
        let same: Vec<&FindingView> = findings
            .iter()
            .filter(|x| x.catalog_id == f.catalog_id)
            .collect();
        let warn_only = same.iter().all(|x| x.action != Decision::Deny);
        let staged = same.iter().filter_map(|x| x.deny_from.as_deref()).min();
        let paragraph = match (warn_only, staged) {
            (true, Some(day)) => Some(l.pick(
                format!("Deze software blokkeert de toegang nu nog niet, maar vanaf {} wordt de toegang geweigerd zolang zij op uw apparaat staat. Verwijder haar voor die datum.", labels::day(day, l)),
                format!("This software does not block access yet, but from {} access will be refused while it is on your device. Remove it before that date.", labels::day(day, l)),
            )),
            (true, None) => Some(l.pick(
                "Deze software blokkeert de toegang nu nog niet, maar is wel ongewenst. Verwijder haar zo snel mogelijk.",
                "This software does not block access yet, but it is not wanted. Remove it as soon as you can.",
            ).to_string()),
            (false, _) => None,
        };
        sections.push(Section {
            heading: l.pick(
                format!("Zo verwijdert u {title}{on}"),
                format!("How to remove {title}{on}"),
            ),
            paragraphs: paragraph.into_iter().collect(),
            steps,
            ..Section::default()
        });
    }
    sections
}

/// Per catalogue entry found: why it is not allowed, with its sources.
/// Comes after the steps: a person first wants to know what to do.
pub fn rationale(snapshot: &Snapshot, l: Lang, findings: &[FindingView]) -> Vec<Section> {
    let catalogue = &snapshot.catalogue;
    entries(findings)
        .into_iter()
        .filter_map(|f| {
            let e = catalogue
                .index_of(&f.catalog_id)
                .and_then(|i| catalogue.entries().get(i))?;
            let title = l.pick(&e.title.nl, &e.title.en);
            Some(Section {
                heading: l.pick(
                    format!("Waarom {title} niet is toegestaan"),
                    format!("Why {title} is not allowed"),
                ),
                paragraphs: vec![l.pick(&e.rationale.nl, &e.rationale.en).to_string()],
                sources: e.references.iter().map(|r| source(r)).collect(),
                ..Section::default()
            })
        })
        .collect()
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
        Some(OsFamily::Macos) => l.pick(
            "Op macOS telt XProtect, de ingebouwde bescherming van Apple, als het bijgewerkt is: zet in Systeeminstellingen > Algemeen > Software-update > Automatische updates de optie ‘Installeer beveiligingsreacties en systeembestanden’ aan en installeer de wachtende updates. Microsoft Defender for Endpoint of een ander antivirusprogramma dat uw organisatie toestaat, telt ook, als het aan staat en bijgewerkt is.",
            "On macOS, XProtect, Apple's built-in protection, counts when it is up to date: in System Settings > General > Software Update > Automatic Updates, turn on ‘Install Security Responses and system files’ and install the waiting updates. Microsoft Defender for Endpoint or another antivirus your organisation allows counts too, when it is on and up to date.",
        ),
        Some(OsFamily::Linux) => l.pick(
            "Op Linux telt een antivirusprogramma dat draait en bijgewerkte virusdefinities heeft, bijvoorbeeld ClamAV (werk de definities bij met: sudo freshclam) of Microsoft Defender for Endpoint (mdatp). Installeer er een dat uw organisatie toestaat, zet het aan en werk het bij.",
            "On Linux, an antivirus that runs and has up-to-date signatures counts, for example ClamAV (update its signatures with: sudo freshclam) or Microsoft Defender for Endpoint (mdatp). Install one your organisation allows, turn it on and update it.",
        ),
        Some(OsFamily::Android | OsFamily::Ios | OsFamily::Chromeos | OsFamily::Other) => l.pick(
            "posture-agent kan op dit besturingssysteem geen antivirus melden, dus dit apparaat kan aan deze eis niet voldoen. Neem contact op met de servicedesk: gebruik een ander apparaat, of vraag of de eis voor uw apparaat kan vervallen.",
            "posture-agent cannot report an antivirus on this operating system, so this device cannot meet this requirement. Contact the service desk: use another device, or ask whether the requirement can be lifted for yours.",
        ),
        None => l.pick(
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
