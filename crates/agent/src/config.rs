//! The agent's configuration file (`agent.toml`), so the service and a
//! person at the keyboard run with the same gate, CA, certificate and key.
//!
//! Where it is found, first match wins: `--config FILE`, then the
//! environment variable `POSTURE_AGENT_CONFIG`, then the OS default
//! ([`default_path`]) if that file exists. A file named by the flag or the
//! variable must exist; the OS default is optional. Command-line flags
//! override what the file says.
//!
//! Keys (all optional): `gate` (URL), `ca`, `cert`, `key` (PEM files;
//! relative paths are relative to the file's own directory, so a copied
//! folder keeps working), `interval` (e.g. `"10m"`: `attest` repeats, for
//! an agent that runs as a long-lived process) and `lang` (`"nl"` or
//! `"en"`). Any other key is an error naming the file and line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use posture_core::lang::Lang;
use serde::Deserialize;
use toml::Spanned;

/// The environment variable that names the configuration file.
pub const ENV_VAR: &str = "POSTURE_AGENT_CONFIG";

/// The largest configuration file read; the real one is a few lines.
const MAX_BYTES: u64 = 64 * 1024;

/// The configuration file the service installs read by default, on this OS.
pub fn default_path() -> PathBuf {
    #[cfg(target_os = "macos")]
    {
        PathBuf::from("/Library/Application Support/posture-agent/agent.toml")
    }
    #[cfg(windows)]
    {
        let data = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        PathBuf::from(data).join("posture-agent").join("agent.toml")
    }
    #[cfg(not(any(target_os = "macos", windows)))]
    {
        PathBuf::from("/etc/posture-agent/agent.toml")
    }
}

/// Why a file was chosen; an explicitly named file must exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--config FILE`.
    Flag,
    /// `POSTURE_AGENT_CONFIG`.
    Env,
    /// The OS default, which exists.
    Default,
}

/// The file to read, by the order of the module doc; `None` when no flag,
/// no variable and no file at the OS default.
pub fn locate(
    flag: Option<&Path>,
    env: Option<OsString>,
    default: &Path,
) -> Option<(PathBuf, Origin)> {
    if let Some(path) = flag {
        return Some((path.to_path_buf(), Origin::Flag));
    }
    // An empty variable is as good as unset (`POSTURE_AGENT_CONFIG= cmd`).
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return Some((PathBuf::from(path), Origin::Env));
    }
    // Only a file that is not there is skipped: one this user may not read
    // (a folder closed to everyone but the service) must say so, or the
    // person would be told that settings are missing instead.
    match std::fs::metadata(default) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some((default.to_path_buf(), Origin::Default)),
    }
}

/// What the file sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentConfig {
    /// The file it came from.
    pub path: PathBuf,
    pub gate: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub interval: Option<Duration>,
    pub lang: Option<Lang>,
}

/// A configuration file that cannot be used; always names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {message}")]
    Read {
        path: String,
        message: String,
        kind: std::io::ErrorKind,
    },
    #[error("{path}:{line}:{column}: {problem}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        problem: Problem,
    },
}

/// What is wrong at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The TOML parser's own message: bad syntax, an unknown key, a wrong type.
    #[error("{0}")]
    Syntax(String),
    #[error("lang must be \"nl\" or \"en\", not {0:?}")]
    Lang(String),
    #[error("interval {value:?}: {message}")]
    Interval { value: String, message: String },
    #[error("gate {0:?} is not a URL of the form https://host[:port]")]
    Gate(String),
    #[error("{key} is empty")]
    Empty { key: &'static str },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    gate: Option<Spanned<String>>,
    ca: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    lang: Option<Spanned<String>>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let read_error = |e: std::io::Error| ConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
        kind: e.kind(),
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if meta.is_dir() {
        return Err(ConfigError::Read {
            path: path.display().to_string(),
            message: "is a directory".into(),
            kind: std::io::ErrorKind::InvalidInput,
        });
    }
    if meta.len() > MAX_BYTES {
        return Err(ConfigError::Read {
            path: path.display().to_string(),
            message: format!("larger than {MAX_BYTES} bytes"),
            kind: std::io::ErrorKind::InvalidData,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    parse(&text, path)
}

/// Parses `text` as the file at `path` (relative paths in it are resolved
/// against `path`'s directory).
pub fn parse(text: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
    let at = |offset: usize, problem: Problem| {
        let (line, column) = line_column(text, offset);
        ConfigError::Invalid {
            path: path.display().to_string(),
            line,
            column,
            problem,
        }
    };
    let model: FileModel = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        at(offset, Problem::Syntax(e.message().trim().to_owned()))
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let file = |v: Option<Spanned<String>>, key: &'static str| match v {
        None => Ok(None),
        Some(v) if v.get_ref().trim().is_empty() => Err(at(v.span().start, Problem::Empty { key })),
        Some(v) => Ok(Some(base.join(v.into_inner()))),
    };
    let gate = match model.gate {
        None => None,
        Some(g) => {
            let url = g.get_ref().trim();
            if !url.starts_with("https://") || url.len() == "https://".len() {
                return Err(at(g.span().start, Problem::Gate(g.get_ref().clone())));
            }
            Some(url.to_owned())
        }
    };
    let interval = match model.interval {
        None => None,
        Some(v) => Some(parse_interval(v.get_ref()).map_err(|message| {
            at(
                v.span().start,
                Problem::Interval {
                    value: v.get_ref().clone(),
                    message,
                },
            )
        })?),
    };
    let lang = match model.lang {
        None => None,
        Some(v) => Some(
            parse_lang(v.get_ref())
                .ok_or_else(|| at(v.span().start, Problem::Lang(v.get_ref().clone())))?,
        ),
    };
    Ok(AgentConfig {
        path: path.to_path_buf(),
        gate,
        ca: file(model.ca, "ca")?,
        cert: file(model.cert, "cert")?,
        key: file(model.key, "key")?,
        interval,
        lang,
    })
}

/// `nl` or `en`, as `--lang` and the file's `lang` take them.
pub fn parse_lang(s: &str) -> Option<Lang> {
    match s {
        "nl" => Some(Lang::Nl),
        "en" => Some(Lang::En),
        _ => None,
    }
}

/// A repeat interval: a humantime duration of at least a second.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    // A zero or sub-second interval would hammer the gate.
    if d < Duration::from_secs(1) {
        return Err("the interval must be at least 1s".into());
    }
    Ok(d)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `str::floor_char_boundary` is not stable on the workspace's Rust.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, at: usize) -> usize {
        let mut at = at.min(self.len());
        while !self.is_char_boundary(at) {
            at -= 1;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Result<AgentConfig, ConfigError> {
        parse(text, Path::new("/etc/posture-agent/agent.toml"))
    }

    #[test]
    fn every_key_is_read_and_relative_paths_follow_the_file() {
        let c = at("gate = \"https://gate.example:8443\"\nca = \"ca.pem\"\ncert = \"/abs/cert.pem\"\nkey = \"key.pem\"\ninterval = \"10m\"\nlang = \"nl\"\n").unwrap();
        assert_eq!(c.gate.as_deref(), Some("https://gate.example:8443"));
        assert_eq!(c.ca, Some(PathBuf::from("/etc/posture-agent/ca.pem")));
        assert_eq!(c.cert, Some(PathBuf::from("/abs/cert.pem")));
        assert_eq!(c.key, Some(PathBuf::from("/etc/posture-agent/key.pem")));
        assert_eq!(c.interval, Some(Duration::from_secs(600)));
        assert_eq!(c.lang, Some(Lang::Nl));
        assert_eq!(at("").unwrap().gate, None);
    }

    #[test]
    fn an_unknown_key_names_the_file_and_line() {
        let e = at("gate = \"https://g:1\"\n\ngaet = \"https://g:1\"\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("/etc/posture-agent/agent.toml:3:1: unknown field `gaet`"),
            "{text}"
        );
    }

    #[test]
    fn bad_values_name_their_line() {
        let e = at("lang = \"de\"\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "/etc/posture-agent/agent.toml:1:8: lang must be \"nl\" or \"en\", not \"de\""
        );
        let e = at("# x\ninterval = \"0s\"\n").unwrap_err().to_string();
        assert!(e.starts_with("/etc/posture-agent/agent.toml:2:12: interval \"0s\": the interval must be at least 1s"), "{e}");
        let e = at("gate = \"http://g:80\"\n").unwrap_err().to_string();
        assert!(e.contains(":1:8: gate \"http://g:80\" is not a URL"), "{e}");
        let e = at("key = \"\"\n").unwrap_err().to_string();
        assert!(e.ends_with(":1:7: key is empty"), "{e}");
        let e = at("gate = [1]\n").unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/posture-agent/agent.toml:1:8: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn the_flag_then_the_variable_then_an_existing_default() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("agent.toml");
        let flag = Path::new("/from/flag.toml");
        let env = || Some(OsString::from("/from/env.toml"));
        assert_eq!(locate(None, None, &default), None);
        // Under a file, not a folder: also not there.
        assert_eq!(locate(None, None, &dir.path().join("agent.toml/x")), None);
        std::fs::write(&default, "").unwrap();
        assert_eq!(
            locate(None, None, &default),
            Some((default.clone(), Origin::Default))
        );
        assert_eq!(
            locate(None, env(), &default),
            Some((PathBuf::from("/from/env.toml"), Origin::Env))
        );
        assert_eq!(
            locate(None, Some(OsString::new()), &default),
            Some((default.clone(), Origin::Default))
        );
        assert_eq!(
            locate(Some(flag), env(), &default),
            Some((flag.to_path_buf(), Origin::Flag))
        );
    }
}
