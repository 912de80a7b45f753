//! Matching inventory items against the catalogue.
//!
//! Built once per configuration snapshot: every identifier is normalised
//! once into hash indexes (exact keys per kind, and name patterns by their
//! first word), so matching an item costs a few hash look-ups on stack
//! buffers and allocates nothing unless it matches.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::model::IdentifierKind;
use super::normalise::{self, KeyBuf, KeyMode, NormChars, Tokens};
use super::{Catalogue, Category};
use crate::attestation::claims::{Process, SecurityProduct, Software};

/// One inventory item of an attestation.
#[derive(Debug, Clone, Copy)]
pub enum ItemRef<'a> {
    /// Matched by vendor, signer, name, and id (the name when no id).
    Software(&'a Software),
    /// Matched by the file names of `name` and `path`.
    Process(&'a Process),
    /// Matched by vendor and name.
    SecurityProduct(&'a SecurityProduct),
}

/// Which kind of identifier made the match. Every comparison is made on
/// normalised text (NFKC, lower case, invisible characters removed, ® ™ ©
/// read as spaces); vendors also lose quotation marks and a trailing
/// `<e-mail>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchedBy {
    /// `vendor`: the item's vendor equals a vendor identifier.
    Vendor,
    /// `name`: the item's name starts with the words of a name identifier.
    Name,
    /// `id`: the item's id (or package name) equals an id identifier.
    Id,
    /// `signer`: the code signer, or its CN, equals a signer identifier.
    Signer,
    /// `process`: a process's file name equals a process identifier.
    Process,
}

impl MatchedBy {
    /// How much the identifier says about the product: a vendor or signer
    /// says only who made it, a name, process or id which product it is.
    fn specificity(self) -> u8 {
        match self {
            MatchedBy::Vendor => 0,
            MatchedBy::Signer => 1,
            MatchedBy::Name => 2,
            MatchedBy::Process => 3,
            MatchedBy::Id => 4,
        }
    }

    /// The identifier kind's name as in a catalogue file, e.g. `signer`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Vendor => "vendor",
            MatchedBy::Name => "name",
            MatchedBy::Id => "id",
            MatchedBy::Signer => "signer",
            MatchedBy::Process => "process",
        }
    }
}

/// An item matched a catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index into [`Catalogue::entries`].
    pub entry: usize,
    /// The category of the identifier group that matched.
    pub category: Category,
    /// The most specific kind of identifier that matched this entry
    /// (id, then process, name, signer, vendor).
    pub by: MatchedBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    entry: usize,
    category: Category,
}

#[derive(Debug)]
struct NamePattern {
    /// Normalised words; the first one is the index key.
    words: Box<[Box<str>]>,
    target: Target,
}

/// Exact keys of one identifier kind.
#[derive(Debug, Default)]
struct KeyIndex {
    keys: HashMap<Box<str>, Vec<Target>, FxBuild>,
    /// Longest key in bytes: longer input is not even normalised to the end.
    longest: usize,
}

impl KeyIndex {
    fn insert(&mut self, key: String, target: Target) {
        self.longest = self.longest.max(key.len());
        let targets = self.keys.entry(key.into_boxed_str()).or_default();
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
}

/// A multiply-rotate hash (the Fx hash of rustc). The keys come from the
/// catalogue, not from devices, so flooding a bucket is not possible and
/// SipHash's protection buys nothing; items are hashed 3-4 times each.
#[derive(Debug, Default, Clone, Copy)]
struct FxBuild;

struct FxHasher(u64);

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;

    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The compiled catalogue. `Send + Sync`; share it behind the snapshot.
#[derive(Debug, Default)]
pub struct Matcher {
    vendors: KeyIndex,
    ids: KeyIndex,
    signers: KeyIndex,
    processes: KeyIndex,
    /// By first word; each list longest pattern first, so the first hit
    /// per entry is its most specific name.
    names: HashMap<Box<str>, Vec<NamePattern>, FxBuild>,
}

impl Matcher {
    /// Normalises and indexes every identifier of `catalogue`; [`Match`]
    /// entry indexes refer to this catalogue's [`Catalogue::entries`].
    pub fn new(catalogue: &Catalogue) -> Matcher {
        let mut m = Matcher::default();
        for (entry, e) in catalogue.entries().iter().enumerate() {
            for group in e.identifiers() {
                let target = Target {
                    entry,
                    category: group.category,
                };
                for value in &group.values {
                    m.add(group.kind, value, target);
                }
            }
        }
        for list in m.names.values_mut() {
            list.sort_by_key(|p| std::cmp::Reverse(p.words.len()));
        }
        m
    }

    fn add(&mut self, kind: IdentifierKind, value: &str, target: Target) {
        let index = match kind {
            IdentifierKind::Vendor => &mut self.vendors,
            IdentifierKind::Id => &mut self.ids,
            IdentifierKind::Signer => &mut self.signers,
            IdentifierKind::Process => &mut self.processes,
            IdentifierKind::Name => {
                let words: Box<[Box<str>]> = normalise::name_tokens(value)
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect();
                if let Some(first) = words.first() {
                    self.names
                        .entry(first.clone())
                        .or_default()
                        .push(NamePattern { words, target });
                }
                return;
            }
        };
        let mode = if kind == IdentifierKind::Vendor {
            KeyMode::Vendor
        } else {
            KeyMode::Plain
        };
        let key = normalise::normalise_key(value, mode);
        if !key.is_empty() {
            index.insert(key, target);
        }
    }

    /// Appends at most one [`Match`] per catalogue entry for this item: the
    /// one by the most specific identifier, whose category therefore wins.
    /// Allocates nothing when nothing matches (only a rare compatibility
    /// character that NFKC expands into more than four chars, such as U+FDFA,
    /// spills its buffer to the heap).
    pub fn match_item(&self, item: ItemRef<'_>, out: &mut Vec<Match>) {
        let start = out.len();
        let f = &mut Found {
            out,
            start,
            key: KeyBuf::new(),
        };
        match item {
            ItemRef::Software(s) => {
                if let Some(vendor) = &s.vendor {
                    self.exact(&self.vendors, vendor, MatchedBy::Vendor, f);
                }
                if let Some(signer) = &s.signer {
                    self.signer(signer, f);
                }
                self.name(&s.name, f);
                // Without an id, the name may be the package name itself
                // (an rpm or dpkg listing that fills only `name`).
                let id = s.id.as_deref().unwrap_or(&s.name);
                self.exact(&self.ids, id, MatchedBy::Id, f);
            }
            ItemRef::Process(p) => {
                let name = basename(&p.name);
                self.exact(&self.processes, name, MatchedBy::Process, f);
                if let Some(path) = &p.path {
                    let from_path = basename(path);
                    if !from_path.eq_ignore_ascii_case(name) {
                        self.exact(&self.processes, from_path, MatchedBy::Process, f);
                    }
                }
            }
            ItemRef::SecurityProduct(p) => {
                if let Some(vendor) = &p.vendor {
                    self.exact(&self.vendors, vendor, MatchedBy::Vendor, f);
                }
                self.name(&p.name, f);
            }
        }
    }

    fn exact(&self, index: &KeyIndex, s: &str, by: MatchedBy, f: &mut Found<'_>) {
        if index.keys.is_empty() {
            return;
        }
        let mode = if by == MatchedBy::Vendor {
            KeyMode::Vendor
        } else {
            KeyMode::Plain
        };
        let Some(targets) = f
            .key
            .normalise(s, mode, index.longest)
            .and_then(|k| index.keys.get(k))
        else {
            return;
        };
        for t in targets {
            f.offer(*t, by);
        }
    }

    /// A signer compares exactly, as a whole or, for a certificate subject,
    /// by its common name.
    fn signer(&self, signer: &str, f: &mut Found<'_>) {
        let before = f.len();
        self.exact(&self.signers, signer, MatchedBy::Signer, f);
        if f.len() == before && signer.contains('=') {
            if let Some(cn) = normalise::common_name(signer) {
                self.exact(&self.signers, cn, MatchedBy::Signer, f);
            }
        }
    }

    /// The item's name must start with all the words of a pattern.
    fn name(&self, name: &str, found: &mut Found<'_>) {
        if self.names.is_empty() {
            return;
        }
        let mut tokens = Tokens::new();
        let mut candidates: Option<&Vec<NamePattern>> = None;
        tokens.fill(NormChars::new(name), |t| {
            if t.len() == 1 {
                candidates = self.names.get(t.get(0));
            }
            // The longest candidate comes first: it says how many words to read.
            candidates
                .and_then(|c| c.first())
                .map_or(0, |p| p.words.len())
        });
        let Some(candidates) = candidates else { return };
        for p in candidates {
            let n = p.words.len();
            if n <= tokens.len()
                && p.words
                    .iter()
                    .enumerate()
                    .all(|(i, w)| tokens.get(i) == &**w)
            {
                found.offer(p.target, MatchedBy::Name);
            }
        }
    }
}

/// The last component of a Windows or POSIX path.
fn basename(s: &str) -> &str {
    s.rsplit(['/', '\\']).next().unwrap_or(s)
}

/// The matches of one item, at most one per entry, and the scratch buffer
/// its keys are normalised in.
struct Found<'o> {
    out: &'o mut Vec<Match>,
    start: usize,
    key: KeyBuf,
}

impl Found<'_> {
    fn len(&self) -> usize {
        self.out.len() - self.start
    }

    fn offer(&mut self, t: Target, by: MatchedBy) {
        let new = Match {
            entry: t.entry,
            category: t.category,
            by,
        };
        for m in &mut self.out[self.start..] {
            if m.entry == t.entry {
                if by.specificity() > m.by.specificity() {
                    *m = new;
                }
                return;
            }
        }
        self.out.push(new);
    }
}
