//! Reading a config file: parse (toml and serde report syntax, unknown keys
//! and wrong types), then validate and compile (every semantic error).

use std::path::{Path, PathBuf};

use super::compile::{compile, compile_recording};
use super::error::{Collector, ConfigError, ConfigErrors};
use super::model::FileConfig;
use super::snapshot::Snapshot;

/// Loads, validates and compiles the config file at `path`.
pub fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    let text = super::files::read_text(path, "config").map_err(|message| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
    })?;
    load_str(&text, path)
}

/// Like [`load`] for text already read; `path` names the file in messages
/// and its directory is where relative paths in the config start.
pub fn load_str(text: &str, path: &Path) -> Result<Snapshot, ConfigErrors> {
    let (file, collector) = parse(text, path)?;
    let source = absolute(path);
    let base = source
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    compile(file, collector, &base, source)
}

/// [`load_str`], also giving every file the config refers to (resolved),
/// as far as the text parsed: what a reloader must watch besides `path`.
pub fn load_str_recording(
    text: &str,
    path: &Path,
) -> (Result<Snapshot, ConfigErrors>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let (file, collector) = match parse(text, path) {
        Ok(parsed) => parsed,
        Err(errors) => return (Err(errors), files),
    };
    let source = absolute(path);
    let base = source
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let result = compile_recording(file, collector, &base, source, &mut files);
    (result, files)
}

/// An absolute path without touching the file system, so a config given as
/// `config/gate.toml` resolves `pki/ca.pem` to one fixed place even if the
/// process changes directory later.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The file model, and a collector already holding every value that was
/// not a duration (see `duration.rs`): those are reported together with
/// what compile finds, or with the one error that stopped the parse.
fn parse<'a>(text: &'a str, path: &'a Path) -> Result<(FileConfig, Collector<'a>), ConfigErrors> {
    let (parsed, bad) = super::duration::collect(|| toml::from_str::<FileConfig>(text));
    let mut c = Collector::new(path, text);
    for (span, message) in bad {
        c.unreadable(span, message);
    }
    match parsed {
        Ok(file) => Ok((file, c)),
        Err(e) => Err(parse_error(&e, c)),
    }
}

fn parse_error(e: &toml::de::Error, mut c: Collector<'_>) -> ConfigErrors {
    let span = e.span().unwrap_or(0..0);
    c.at(span, clarify(e.message()));
    match c.finish() {
        Err(errors) => errors,
        Ok(()) => ConfigErrors(Vec::new()),
    }
}

/// serde's wording is exact but terse; add what a network team needs to
/// fix the mistakes it leaves most puzzling.
fn clarify(message: &str) -> String {
    let message = message.trim_end();
    if message.contains("missing field `expires`") {
        format!(
            "{message}: every exemption needs the last day it applies, like expires = 2026-12-31"
        )
    } else if message.contains("expected a TOML datetime") {
        format!("{message}; write a date without quotes, like expires = 2026-12-31")
    } else if message.contains("expected one of `catalogue`, `action`, `categories`") {
        format!(
            "{message} (keys after a [[policy.rule]] header belong to that rule: \
             write the policy's own keys before its first rule)"
        )
    } else {
        message.to_string()
    }
}
