//! The content hash of a catalogue: what a remembered posture records to
//! say which catalogue it was assessed with. Two catalogues with the same
//! entries have the same digest, in any process and after any number of
//! reloads, so a posture kept outside the process (a shared store) is
//! recognised as current by every replica that runs the same catalogue.
//!
//! The hash is SHA-256 over an unambiguous encoding of every field of every
//! entry, in order: each string and list is prefixed by its length, each
//! enum is written by its configuration name, and the encoding starts with
//! a version label so a change of encoding can never collide with an old
//! digest.

use std::fmt;

use sha2::{Digest, Sha256};

use super::model::{Entry, Localized};

/// Bump when the encoding changes.
const LABEL: &[u8] = b"posture-gate catalogue digest v1\0";

/// SHA-256 of a catalogue's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CatalogueDigest(pub [u8; 32]);

impl CatalogueDigest {
    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CatalogueDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CatalogueDigest({self})")
    }
}

impl fmt::Display for CatalogueDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The digest of `entries`, in their order (the order is part of the
/// content: a match names its entry by index).
pub(super) fn digest(entries: &[Entry]) -> CatalogueDigest {
    let mut h = Encoder(Sha256::new());
    h.0.update(LABEL);
    h.len(entries.len());
    for e in entries {
        h.str(&e.id);
        h.localized(&e.title, |h, s| h.str(s));
        h.localized(&e.rationale, |h, s| h.str(s));
        h.strs(&e.references);
        h.localized(&e.removal.generic, |h, v| h.strs(v));
        h.len(e.removal.per_os.len());
        for (family, steps) in &e.removal.per_os {
            h.str(family.as_str());
            h.localized(steps, |h, v| h.strs(v));
        }
        h.len(e.identifiers.len());
        for g in &e.identifiers {
            h.str(g.kind.as_str());
            h.str(g.category.as_str());
            h.str(&g.source);
            h.strs(&g.values);
        }
        h.len(e.categories.len());
        for c in &e.categories {
            h.str(c.as_str());
        }
    }
    CatalogueDigest(h.0.finalize().into())
}

struct Encoder(Sha256);

impl Encoder {
    fn len(&mut self, n: usize) {
        self.0.update((n as u64).to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.update(s.as_bytes());
    }

    fn strs(&mut self, v: &[String]) {
        self.len(v.len());
        for s in v {
            self.str(s);
        }
    }

    fn localized<T>(&mut self, l: &Localized<T>, each: impl Fn(&mut Self, &T)) {
        each(self, &l.nl);
        each(self, &l.en);
    }
}
