//! Dutch or English for everything a person reads from the agent: Dutch
//! when the locale is Dutch, English otherwise (the agent's users are
//! contractors from anywhere; the gate's pages default to Dutch instead).
//! JSON output is never translated.
//!
//! The locale is read as POSIX does: the first of `LC_ALL`, `LC_MESSAGES`
//! and `LANG` that is set and not empty decides; a value starting with `nl`
//! (`nl`, `nl_NL.UTF-8`, `nl_BE`) means Dutch. `--lang` or the
//! configuration file's `lang` override it.

use std::ffi::OsString;

pub use posture_core::lang::Lang;

use crate::attest::AttestError;
use crate::config::{ConfigError, Problem};

/// The language of the locale in the environment, read through `get`
/// (`std::env::var_os` outside tests).
pub fn from_env(get: impl Fn(&str) -> Option<OsString>) -> Lang {
    let value = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .into_iter()
        .filter_map(get)
        .find(|v| !v.is_empty());
    match value {
        Some(v) if is_dutch(&v.to_string_lossy()) => Lang::Nl,
        _ => Lang::En,
    }
}

fn is_dutch(locale: &str) -> bool {
    let l = locale.to_ascii_lowercase();
    l == "nl"
        || ["nl_", "nl-", "nl.", "nl@"]
            .iter()
            .any(|p| l.starts_with(p))
}

/// The OS families the service installs of `config/agent/` exist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceOs {
    /// systemd: `posture-agent.service` plus a polkit rule.
    Linux,
    /// launchd: `nl.posture-gate.agent`, watching a file users may touch.
    Macos,
    /// Task Scheduler: `\posture-gate\posture-agent`, runnable by Users.
    Windows,
}

impl ServiceOs {
    /// The OS this agent was built for.
    pub fn this() -> ServiceOs {
        if cfg!(target_os = "macos") {
            ServiceOs::Macos
        } else if cfg!(windows) {
            ServiceOs::Windows
        } else {
            ServiceOs::Linux
        }
    }

    /// What an ordinary user runs to make the installed service check this
    /// device now (the shipped units allow exactly this).
    pub fn trigger(self) -> &'static str {
        match self {
            ServiceOs::Linux => "systemctl start posture-agent.service",
            ServiceOs::Macos => "touch /Users/Shared/posture-agent/check-now",
            ServiceOs::Windows => "schtasks /run /tn \"\\posture-gate\\posture-agent\"",
        }
    }
}

/// The device key exists but only the service account may read it.
pub fn key_not_readable(path: &str, os: ServiceOs, lang: Lang) -> String {
    let trigger = os.trigger();
    match lang {
        Lang::Nl => format!(
            "kan de apparaatsleutel {path} niet lezen: geen toegang. Alleen de \
             posture-agent-service mag die sleutel lezen. Laat de service dit apparaat nu \
             controleren met:\n    {trigger}\nen laad daarna de pagina opnieuw."
        ),
        Lang::En => format!(
            "cannot read the device key {path}: permission denied. Only the posture-agent \
             service may read that key. Have the service check this device now with:\n    \
             {trigger}\nthen reload the page."
        ),
    }
}

/// The configuration file exists but this user may not read it: an
/// installation that keeps its settings to the service.
pub fn config_not_readable(path: &str, os: ServiceOs, lang: Lang) -> String {
    let trigger = os.trigger();
    match lang {
        Lang::Nl => format!(
            "kan het configuratiebestand {path} niet lezen: geen toegang. Laat de \
             posture-agent-service dit apparaat nu controleren met:\n    {trigger}\nen laad \
             daarna de pagina opnieuw."
        ),
        Lang::En => format!(
            "cannot read the configuration file {path}: permission denied. Have the \
             posture-agent service check this device now with:\n    {trigger}\nthen reload \
             the page."
        ),
    }
}

/// An attest error in words, with what to do where the agent knows it.
pub fn attest_error(e: &AttestError, lang: Lang) -> String {
    use AttestError as E;
    let nl = lang == Lang::Nl;
    match e {
        E::KeyNotReadable(path) => key_not_readable(path, ServiceOs::this(), lang),
        E::Refused { reason, reference } => {
            let words = posture_core::reasons::explain(*reason, lang);
            let mut text = if nl {
                format!(
                    "de gate weigerde het rapport (reden: {reason}): {} {}",
                    words.what, words.fix
                )
            } else {
                format!(
                    "the gate refused the attestation (reason: {reason}): {} {}",
                    words.what, words.fix
                )
            };
            if let Some(r) = reference {
                text.push('\n');
                text.push_str(&reference_line(r, lang));
            }
            text
        }
        E::Unreachable {
            addr,
            message,
            refused,
        } => {
            let mut text = if nl {
                format!("kan de gate op {addr} niet bereiken: {message}")
            } else {
                e.to_string()
            };
            if *refused {
                text.push_str(lang.pick(
                    " (daar luistert niets: klopt de poort in --gate, en draait de gate?)",
                    " (nothing listens there: is the port in --gate right, and is the gate running?)",
                ));
            }
            text
        }
        E::UntrustedServer { detail, ca } if nl => match ca {
            Some(ca) => format!(
                "TLS met de gate mislukt: {detail} (het servercertificaat van de gate is niet \
                 uitgegeven door een CA in {ca})"
            ),
            None => format!(
                "TLS met de gate mislukt: {detail} (dit systeem vertrouwt het servercertificaat \
                 van de gate niet; geef de CA die het uitgaf mee met --ca, of zet ca in het \
                 configuratiebestand)"
            ),
        },
        E::File { path, message } if nl => format!("kan {path} niet lezen: {message}"),
        E::KeyMismatch(path) if nl => {
            format!("de privésleutel in {path} hoort niet bij het certificaat")
        }
        E::Key(detail) if nl => format!("de sleutel is niet bruikbaar: {detail}"),
        E::Url(url) if nl => format!("ongeldige gate-URL {url:?}: gebruik https://host[:poort]"),
        E::Tls(detail) if nl => format!("TLS met de gate mislukt: {detail}"),
        E::Http(detail) if nl => format!("de HTTP-uitwisseling met de gate mislukte: {detail}"),
        E::CertRejected(detail) if nl => format!(
            "de HTTP-uitwisseling met de gate mislukte: {detail} (de gate weigerde dit \
             apparaatcertificaat: is het uitgegeven door de client-CA van de gate, nu geldig \
             en niet ingetrokken?)"
        ),
        E::Status { what, status, body } if nl => {
            let what = match *what {
                "the challenge" => "de challenge",
                _ => "het rapport",
            };
            format!("de gate antwoordde {status} op {what}: {body}")
        }
        E::Sign(detail) if nl => format!("kon het rapport niet ondertekenen: {detail}"),
        _ => e.to_string(),
    }
}

/// A configuration file error in words; the place stays `file:line:column`.
pub fn config_error(e: &ConfigError, lang: Lang) -> String {
    if let ConfigError::Read {
        path,
        kind: std::io::ErrorKind::PermissionDenied,
        ..
    } = e
    {
        return config_not_readable(path, ServiceOs::this(), lang);
    }
    if lang == Lang::En {
        return e.to_string();
    }
    match e {
        ConfigError::Read { path, message, .. } => {
            format!("kan het configuratiebestand {path} niet lezen: {message}")
        }
        ConfigError::Invalid {
            path,
            line,
            column,
            problem,
        } => {
            let problem = match problem {
                // The TOML parser speaks English only.
                Problem::Syntax(m) => m.clone(),
                Problem::Lang(v) => format!("lang moet \"nl\" of \"en\" zijn, niet {v:?}"),
                Problem::Interval { value, message } => format!("interval {value:?}: {message}"),
                Problem::Gate(v) => {
                    format!("gate {v:?} is geen URL van de vorm https://host[:poort]")
                }
                Problem::Empty { key } => format!("{key} is leeg"),
            };
            format!("{path}:{line}:{column}: {problem}")
        }
    }
}

/// A setting neither a flag nor the configuration file gave.
pub fn missing(flag: &str, key: &str, config: Option<&str>, lang: Lang) -> String {
    match (lang, config) {
        (Lang::Nl, Some(file)) => {
            format!("{flag} ontbreekt: geef {flag} mee of zet {key} in {file}")
        }
        (Lang::Nl, None) => format!(
            "{flag} ontbreekt: geef {flag} mee, of zet {key} in een configuratiebestand \
             (--config, {}, of {})",
            crate::config::ENV_VAR,
            crate::config::default_path().display()
        ),
        (Lang::En, Some(file)) => format!("missing {flag}: pass {flag} or set {key} in {file}"),
        (Lang::En, None) => format!(
            "missing {flag}: pass {flag}, or set {key} in a configuration file (--config, {}, \
             or {})",
            crate::config::ENV_VAR,
            crate::config::default_path().display()
        ),
    }
}

/// The line that gives the gate's reference for the service desk.
pub fn reference_line(reference: &str, lang: Lang) -> String {
    match lang {
        Lang::Nl => format!("Referentie: {reference} (noem deze bij vragen aan de servicedesk)"),
        Lang::En => format!("Reference: {reference} (quote it when you ask the service desk)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Lang {
        from_env(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn the_first_set_locale_variable_decides() {
        assert_eq!(env(&[]), Lang::En);
        assert_eq!(env(&[("LANG", "nl_NL.UTF-8")]), Lang::Nl);
        assert_eq!(env(&[("LANG", "nl_BE")]), Lang::Nl);
        assert_eq!(env(&[("LANG", "C.UTF-8")]), Lang::En);
        assert_eq!(env(&[("LANG", "de_DE.UTF-8")]), Lang::En);
        // A language whose code only starts with the letters n, l is not Dutch.
        assert_eq!(env(&[("LANG", "nld")]), Lang::En);
        assert_eq!(
            env(&[("LC_MESSAGES", "en_GB.UTF-8"), ("LANG", "nl_NL.UTF-8")]),
            Lang::En
        );
        assert_eq!(
            env(&[("LC_ALL", "nl_NL.UTF-8"), ("LC_MESSAGES", "en_GB.UTF-8")]),
            Lang::Nl
        );
        // An empty variable does not count.
        assert_eq!(env(&[("LC_ALL", ""), ("LANG", "nl_NL.UTF-8")]), Lang::Nl);
    }

    #[test]
    fn every_os_gets_its_service_trigger() {
        for (os, command) in [
            (ServiceOs::Linux, "systemctl start posture-agent.service"),
            (
                ServiceOs::Macos,
                "touch /Users/Shared/posture-agent/check-now",
            ),
            (
                ServiceOs::Windows,
                r#"schtasks /run /tn "\posture-gate\posture-agent""#,
            ),
        ] {
            for lang in [Lang::Nl, Lang::En] {
                let text = key_not_readable("/k.pem", os, lang);
                assert!(text.contains(&format!("\n    {command}\n")), "{text}");
                assert!(text.contains("/k.pem"), "{text}");
                let text = config_not_readable("/agent.toml", os, lang);
                assert!(text.contains(&format!("\n    {command}\n")), "{text}");
                assert!(text.contains("/agent.toml"), "{text}");
            }
        }
    }
}
