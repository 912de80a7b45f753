//! The catalogue's entries as the rest of the gate reads them.

use serde::{Deserialize, Serialize};

use super::Category;
use crate::attestation::claims::OsFamily;

/// A text in the two languages of the denial page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Localized<T> {
    /// Dutch; required and non-empty, validated at load.
    pub nl: T,
    /// English; required and non-empty, validated at load.
    pub en: T,
}

/// What an identifier is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    /// Publisher or vendor, compared exactly after normalisation.
    Vendor,
    /// Display name: the item's name must start with these whole words.
    Name,
    /// Package name, bundle id, Android package or MSI product code, exact.
    Id,
    /// Code signer (macOS Team ID, Authenticode subject), exact.
    Signer,
    /// Executable name of a process, exact on the basename.
    Process,
}

impl IdentifierKind {
    /// The `kind` value in a catalogue file, e.g. `signer`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Vendor => "vendor",
            IdentifierKind::Name => "name",
            IdentifierKind::Id => "id",
            IdentifierKind::Signer => "signer",
            IdentifierKind::Process => "process",
        }
    }
}

/// Identifiers of one kind and category, with where they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierGroup {
    /// What the values are compared with.
    pub kind: IdentifierKind,
    /// The category a match by these values gets; `unclassified` when the
    /// file leaves it out.
    pub category: Category,
    /// Public material the values were taken from.
    pub source: String,
    /// As written in the catalogue; the matcher normalises them.
    pub values: Vec<String>,
}

/// Removal steps: generic ones, and optional ones per OS family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Removal {
    pub(crate) generic: Localized<Vec<String>>,
    pub(crate) per_os: Vec<(OsFamily, Localized<Vec<String>>)>,
}

/// One prohibited product family, such as `kaspersky`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unique in the catalogue, only `a-z`, `0-9`, `_` and `-` (validated
    /// at load); the `catalog_id` of findings and what policies and
    /// exemptions name. An included file's entry with a built-in id
    /// replaces the built-in one.
    pub id: String,
    /// Product family name for the denial page, e.g. `Kaspersky software`.
    pub title: Localized<String>,
    /// Why it is prohibited, in a paragraph for the denial page.
    pub rationale: Localized<String>,
    /// Sources of the rationale (official papers, URLs), each non-empty;
    /// listed on the denial page.
    pub references: Vec<String>,
    pub(crate) removal: Removal,
    pub(crate) identifiers: Vec<IdentifierGroup>,
    /// Sorted, without duplicates.
    pub(crate) categories: Vec<Category>,
}

impl Entry {
    /// Numbered removal steps for this OS family, falling back to the
    /// generic ones.
    pub fn removal_steps(&self, os: Option<OsFamily>) -> &Localized<Vec<String>> {
        os.and_then(|os| self.removal.per_os.iter().find(|(f, _)| *f == os))
            .map_or(&self.removal.generic, |(_, steps)| steps)
    }

    /// The categories its identifiers use, in `Category` order.
    pub fn categories(&self) -> impl Iterator<Item = Category> + '_ {
        self.categories.iter().copied()
    }

    /// Its identifier groups, as written in the catalogue.
    pub fn identifiers(&self) -> &[IdentifierGroup] {
        &self.identifiers
    }
}
