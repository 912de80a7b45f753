//! The catalogue of prohibited software. PLACEHOLDER: the catalogue helper
//! replaces this file; the public names below are the agreed interface.

use serde::{Deserialize, Serialize};

/// What kind of product an identifier denotes, so a policy can narrow an
/// entry to some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Antivirus or endpoint protection (including EDR).
    Antivirus,
    ManagementAgent,
    Vpn,
    PasswordManager,
    ParentalControl,
    /// Matched only by vendor or signer, product unknown. Always included
    /// when a policy narrows an entry to categories: fail closed.
    Unclassified,
}

#[derive(Debug, Default)]
pub struct Catalogue {}

#[derive(Debug, Default)]
pub struct Matcher {}
