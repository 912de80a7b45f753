//! Reading a catalogue file: TOML with spans, so every mistake is reported
//! as `file:line:column: message`.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::model::{Entry, IdentifierGroup, IdentifierKind, Localized, Removal};
use super::normalise::{self, KeyMode, MAX_KEY_BYTES, MAX_NAME_TOKENS};
use super::Category;
use crate::attestation::claims::OsFamily;

/// A catalogue file that could not be read, with the place of the mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", origin.display())]
pub struct CatalogueError {
    /// The file as the caller named it; `<built-in>/config/catalogue.toml`
    /// for the catalogue compiled into the binary.
    pub origin: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What is wrong, e.g. duplicate entry id `kaspersky`.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    entry: Vec<Spanned<EntryDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryDoc {
    id: Spanned<String>,
    title: LocalizedDoc<Spanned<String>>,
    rationale: LocalizedDoc<Spanned<String>>,
    #[serde(default)]
    references: Vec<Spanned<String>>,
    removal: RemovalDoc,
    #[serde(default, rename = "identifier")]
    identifiers: Vec<Spanned<GroupDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalizedDoc<T> {
    nl: T,
    en: T,
}

type StepsDoc = Spanned<LocalizedDoc<Spanned<Vec<Spanned<String>>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemovalDoc {
    generic: StepsDoc,
    windows: Option<StepsDoc>,
    macos: Option<StepsDoc>,
    linux: Option<StepsDoc>,
    android: Option<StepsDoc>,
    ios: Option<StepsDoc>,
    chromeos: Option<StepsDoc>,
    other: Option<StepsDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    kind: IdentifierKind,
    /// Defaults to `unclassified`, the fail-closed choice.
    #[serde(default)]
    category: Option<Category>,
    #[serde(default)]
    source: String,
    values: Spanned<Vec<Spanned<String>>>,
}

/// Turns byte offsets into `CatalogueError`s for one file.
struct Reporter<'a> {
    text: &'a str,
    origin: &'a Path,
}

impl Reporter<'_> {
    fn at(&self, span: Range<usize>, message: impl Into<String>) -> CatalogueError {
        let offset = span.start.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        CatalogueError {
            origin: self.origin.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Parses and checks a whole catalogue file.
pub(crate) fn parse(text: &str, origin: &Path) -> Result<Vec<Entry>, CatalogueError> {
    let rep = Reporter { text, origin };
    let doc: FileDoc = toml::from_str(text)
        .map_err(|e| rep.at(e.span().unwrap_or(0..0), e.message().to_string()))?;
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(doc.entry.len());
    for entry in doc.entry {
        let span = entry.span();
        let entry = entry.into_inner();
        let id_span = entry.id.span();
        let entry = build_entry(&rep, span, entry)?;
        if !seen.insert(entry.id.clone()) {
            return Err(rep.at(id_span, format!("duplicate entry id `{}`", entry.id)));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn build_entry(
    rep: &Reporter<'_>,
    span: Range<usize>,
    doc: EntryDoc,
) -> Result<Entry, CatalogueError> {
    let id_span = doc.id.span();
    let id = non_empty(rep, doc.id, "entry id")?;
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(rep.at(
            id_span,
            format!("entry id `{id}` may only hold a-z, 0-9, `_` and `-`"),
        ));
    }
    let title = localized_text(rep, doc.title, "title")?;
    let rationale = localized_text(rep, doc.rationale, "rationale")?;
    let references = doc
        .references
        .into_iter()
        .map(|r| non_empty(rep, r, "reference"))
        .collect::<Result<Vec<_>, _>>()?;
    let removal = build_removal(rep, doc.removal)?;
    if doc.identifiers.is_empty() {
        return Err(rep.at(
            span,
            format!("entry `{id}` has no [[entry.identifier]] group"),
        ));
    }
    let mut seen = HashSet::new();
    let mut identifiers = Vec::with_capacity(doc.identifiers.len());
    for group in doc.identifiers {
        identifiers.push(build_group(rep, group, &mut seen)?);
    }
    let mut categories: Vec<Category> = identifiers.iter().map(|g| g.category).collect();
    categories.sort();
    categories.dedup();
    Ok(Entry {
        id,
        title,
        rationale,
        references,
        removal,
        identifiers,
        categories,
    })
}

fn non_empty(rep: &Reporter<'_>, s: Spanned<String>, what: &str) -> Result<String, CatalogueError> {
    if s.get_ref().trim().is_empty() {
        return Err(rep.at(s.span(), format!("{what} is empty")));
    }
    Ok(s.into_inner())
}

fn localized_text(
    rep: &Reporter<'_>,
    doc: LocalizedDoc<Spanned<String>>,
    what: &str,
) -> Result<Localized<String>, CatalogueError> {
    Ok(Localized {
        nl: non_empty(rep, doc.nl, &format!("{what}.nl"))?,
        en: non_empty(rep, doc.en, &format!("{what}.en"))?,
    })
}

fn steps(
    rep: &Reporter<'_>,
    doc: StepsDoc,
    what: &str,
) -> Result<Localized<Vec<String>>, CatalogueError> {
    let span = doc.span();
    let doc = doc.into_inner();
    let list =
        |l: Spanned<Vec<Spanned<String>>>, lang: &str| -> Result<Vec<String>, CatalogueError> {
            if l.get_ref().is_empty() {
                return Err(rep.at(l.span(), format!("removal.{what}.{lang} has no steps")));
            }
            l.into_inner()
                .into_iter()
                .map(|s| non_empty(rep, s, &format!("a step of removal.{what}.{lang}")))
                .collect()
        };
    let nl = list(doc.nl, "nl")?;
    let en = list(doc.en, "en")?;
    // Each numbered step is shown side by side in both languages.
    if nl.len() != en.len() {
        return Err(rep.at(
            span,
            format!(
                "removal.{what} has {} Dutch and {} English steps; they must pair up",
                nl.len(),
                en.len()
            ),
        ));
    }
    Ok(Localized { nl, en })
}

fn build_removal(rep: &Reporter<'_>, doc: RemovalDoc) -> Result<Removal, CatalogueError> {
    let generic = steps(rep, doc.generic, "generic")?;
    let optional = [
        (OsFamily::Windows, doc.windows),
        (OsFamily::Macos, doc.macos),
        (OsFamily::Linux, doc.linux),
        (OsFamily::Android, doc.android),
        (OsFamily::Ios, doc.ios),
        (OsFamily::Chromeos, doc.chromeos),
        (OsFamily::Other, doc.other),
    ];
    let mut per_os = Vec::new();
    for (os, doc) in optional {
        if let Some(doc) = doc {
            per_os.push((os, steps(rep, doc, os.as_str())?));
        }
    }
    Ok(Removal { generic, per_os })
}

fn build_group(
    rep: &Reporter<'_>,
    group: Spanned<GroupDoc>,
    seen: &mut HashSet<(IdentifierKind, String)>,
) -> Result<IdentifierGroup, CatalogueError> {
    let group = group.into_inner();
    if group.values.get_ref().is_empty() {
        return Err(rep.at(group.values.span(), "identifier group has no values"));
    }
    let mut values = Vec::with_capacity(group.values.get_ref().len());
    for value in group.values.into_inner() {
        let span = value.span();
        let key = check_value(group.kind, value.get_ref()).map_err(|m| rep.at(span.clone(), m))?;
        if !seen.insert((group.kind, key)) {
            return Err(rep.at(
                span,
                format!(
                    "duplicate {} identifier `{}` in this entry",
                    group.kind.as_str(),
                    value.get_ref()
                ),
            ));
        }
        values.push(value.into_inner());
    }
    Ok(IdentifierGroup {
        kind: group.kind,
        category: group.category.unwrap_or(Category::Unclassified),
        source: group.source,
        values,
    })
}

/// The normalised form of one identifier, or why it cannot be used.
fn check_value(kind: IdentifierKind, value: &str) -> Result<String, String> {
    let mode = if kind == IdentifierKind::Vendor {
        KeyMode::Vendor
    } else {
        KeyMode::Plain
    };
    let key = normalise::normalise_key(value, mode);
    if key.is_empty() {
        return Err(format!("empty {} identifier", kind.as_str()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "{} identifier longer than {MAX_KEY_BYTES} bytes",
            kind.as_str()
        ));
    }
    if kind == IdentifierKind::Process && value.contains(['/', '\\']) {
        return Err("process identifier must be a file name, not a path".into());
    }
    if kind == IdentifierKind::Name {
        let words = normalise::name_tokens(value);
        if words.is_empty() {
            return Err("name identifier has no letters or digits".into());
        }
        if words.len() > MAX_NAME_TOKENS {
            return Err(format!(
                "name identifier has more than {MAX_NAME_TOKENS} words"
            ));
        }
        return Ok(words.join(" "));
    }
    Ok(key)
}
