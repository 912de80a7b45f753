//! The catalogue of prohibited software.
//!
//! The built-in catalogue is `config/catalogue.toml`, compiled into the
//! binary; operators extend or override it with files of the same format
//! ([`Catalogue::merge`]). A [`Matcher`] compiles a catalogue once per
//! configuration snapshot and matches inventory items (installed software,
//! processes, security products) against it: vendors and ids exactly after
//! normalisation, display names on whole words from the start, never by a
//! loose prefix or substring (spec section 6).

mod digest;
mod matcher;
mod model;
mod normalise;
mod parse;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use digest::CatalogueDigest;
pub use matcher::{ItemRef, Match, MatchedBy, Matcher};
pub use model::{Entry, IdentifierGroup, IdentifierKind, Localized};
pub use parse::CatalogueError;

/// The built-in catalogue's text.
const BUILTIN: &str = include_str!("../../../../config/catalogue.toml");

/// What kind of product an identifier denotes, so a policy can narrow an
/// entry to some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Antivirus or endpoint protection (including EDR).
    Antivirus,
    /// `management_agent`: the vendor's remote management agent (for
    /// Kaspersky, the Network Agent of Security Center).
    ManagementAgent,
    /// `vpn`: the vendor's VPN client (e.g. Kaspersky VPN Secure Connection).
    Vpn,
    /// `password_manager`: the vendor's password manager.
    PasswordManager,
    /// `parental_control`: the vendor's parental control (e.g. Safe Kids).
    ParentalControl,
    /// Matched only by vendor or signer, product unknown. Always included
    /// when a policy narrows an entry to categories: fail closed.
    Unclassified,
}

impl Category {
    /// Every category, in the order pages and summaries list them.
    pub const ALL: [Category; 6] = [
        Category::Antivirus,
        Category::ManagementAgent,
        Category::Vpn,
        Category::PasswordManager,
        Category::ParentalControl,
        Category::Unclassified,
    ];

    /// The snake_case name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Antivirus => "antivirus",
            Category::ManagementAgent => "management_agent",
            Category::Vpn => "vpn",
            Category::PasswordManager => "password_manager",
            Category::ParentalControl => "parental_control",
            Category::Unclassified => "unclassified",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A category name that is not one of [`Category::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown category `{0}`; expected one of antivirus, management_agent, vpn, password_manager, parental_control, unclassified")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCategory(s.to_string()))
    }
}

/// An ordered list of entries; [`Match::entry`] indexes into it.
///
/// Its content hash ([`Catalogue::digest`]) is computed whenever the entries
/// change, i.e. once per load, never on the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    entries: Vec<Entry>,
    digest: CatalogueDigest,
}

impl Default for Catalogue {
    fn default() -> Catalogue {
        Catalogue::of(Vec::new())
    }
}

impl Catalogue {
    /// The catalogue compiled into the binary, from `config/catalogue.toml`.
    pub fn builtin() -> Result<Catalogue, CatalogueError> {
        Catalogue::from_toml_str(BUILTIN, Path::new("<built-in>/config/catalogue.toml"))
    }

    /// Parses a catalogue file; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Catalogue, CatalogueError> {
        parse::parse(text, origin).map(Catalogue::of)
    }

    fn of(entries: Vec<Entry>) -> Catalogue {
        Catalogue {
            digest: digest::digest(&entries),
            entries,
        }
    }

    /// Adds the entries of `other`: one with the id of an existing entry
    /// replaces it in place, a new id is appended.
    pub fn merge(&mut self, other: Catalogue) {
        for entry in other.entries {
            match self.index_of(&entry.id) {
                Some(i) => self.entries[i] = entry,
                None => self.entries.push(entry),
            }
        }
        self.digest = digest::digest(&self.entries);
    }

    /// The content hash of the entries: equal for equal catalogues, in any
    /// process, so a remembered posture can say which catalogue it was
    /// assessed with (see `decision::Posture::is_current`).
    pub fn digest(&self) -> CatalogueDigest {
        self.digest
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The index of the entry with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }
}

#[cfg(test)]
mod tests;
