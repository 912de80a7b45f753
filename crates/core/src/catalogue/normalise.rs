//! Normalisation of names and identifiers, shared by the catalogue (when it
//! indexes its values) and the matcher (for every inventory item).
//!
//! Normalised text is Unicode NFKC, lower case, without default-ignorable
//! and format characters (zero-width spaces and joiners, soft hyphens, bidi
//! controls, variation selectors, tags), with the ®, ™ and © signs and
//! their ASCII spellings `(R)`, `(TM)`, `(C)` turned into white space, and
//! white space collapsed to one space and trimmed. Pure-ASCII input, the
//! common case, skips NFKC: it cannot change ASCII.
//!
//! Invisible characters are dropped, not turned into spaces: they are what
//! an evasion inserts inside a word (`Kas\u{200B}persky`), and a device's
//! own software has no reason to separate words with them.
//!
//! The matcher normalises into fixed stack buffers ([`KeyBuf`], [`Tokens`])
//! so that an item that matches nothing costs no allocation. A string whose
//! normalised form does not fit cannot equal any indexed value, because the
//! catalogue refuses values longer than [`MAX_KEY_BYTES`].

use std::iter::{FilterMap, FlatMap};
use std::str::{Bytes, Chars};

use unicode_normalization::{Recompositions, UnicodeNormalization};

/// Longest normalised identifier or name pattern, in UTF-8 bytes.
pub(crate) const MAX_KEY_BYTES: usize = 256;

/// Most words a name pattern may have.
pub(crate) const MAX_NAME_TOKENS: usize = 16;

/// Room for the words of an item's name: twice the longest pattern, so the
/// words that could match a pattern always fit.
const TOKEN_BYTES: usize = 2 * MAX_KEY_BYTES;

/// How a key is prepared before it is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyMode {
    /// Ids, signers, process names: normalised text as is.
    Plain,
    /// Vendors: also without a trailing `<e-mail>` (a dpkg `Maintainer`
    /// field) and without quotation marks, which Russian legal names carry
    /// in several styles (`АО "Лаборатория Касперского"`, `АО «…»`).
    Vendor,
}

/// Default-ignorable code points (Unicode `Default_Ignorable_Code_Point`)
/// and format characters (`General_Category=Cf`), Unicode 16: invisible,
/// so a name that carries them reads the same as one without.
fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD // soft hyphen
            | 0x034F // combining grapheme joiner
            | 0x0600..=0x0605
            | 0x061C // Arabic letter mark
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160 // Hangul fillers
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F // Mongolian variation selectors and vowel separator
            | 0x200B..=0x200F // zero-width space, (non-)joiner, LRM, RLM
            | 0x202A..=0x202E // bidi embeddings and overrides
            | 0x2060..=0x206F // word joiner, invisible operators, bidi isolates
            | 0x3164 // Hangul filler
            | 0xFE00..=0xFE0F // variation selectors
            | 0xFEFF // zero-width no-break space, byte order mark
            | 0xFFA0 // half-width Hangul filler
            | 0xFFF0..=0xFFFB // interlinear annotation
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3 // shorthand format controls
            | 0x1D173..=0x1D17A // musical format controls
            | 0xE0000..=0xE0FFF // tags, variation selectors supplement
    )
}

/// Before NFKC: drops invisible characters (so they cannot split a word or
/// block a composition) and turns the signs into white space (NFKC would
/// make letters of ™).
fn visible_sign_to_space(c: char) -> Option<char> {
    match c {
        '\u{00AE}' | '\u{2122}' | '\u{00A9}' => Some(' '),
        c if is_invisible(c) => None,
        c => Some(c),
    }
}

type UnicodeChars<'a> = FlatMap<
    Recompositions<FilterMap<Chars<'a>, fn(char) -> Option<char>>>,
    std::char::ToLowercase,
    fn(char) -> std::char::ToLowercase,
>;

/// The characters of a string after NFKC and lower-casing, without the
/// cost of NFKC for ASCII input.
// The Unicode variant is large; it lives on the stack on purpose, so a
// non-ASCII item costs no allocation either.
#[allow(clippy::large_enum_variant)]
enum Folded<'a> {
    Ascii(Bytes<'a>),
    Unicode(UnicodeChars<'a>),
}

impl Folded<'_> {
    #[inline]
    fn next(&mut self) -> Option<char> {
        match self {
            Folded::Ascii(b) => b.next().map(|b| char::from(b.to_ascii_lowercase())),
            Folded::Unicode(it) => it.next(),
        }
    }
}

/// The characters of a string after NFKC, lower-casing and the removal of
/// invisible characters, with `(r)`, `(tm)` and `(c)` (the ASCII spellings
/// of the signs, also what NFKC makes of `⒭` and full-width `（Ｒ）`) turned
/// into one space each.
pub(crate) struct NormChars<'a> {
    inner: Folded<'a>,
    /// Characters read ahead after a `(` that turned out not to open a
    /// sign; handed out again, in order, before reading on. At most three
    /// are ever pending; the room is for safety without a panic path.
    ahead: [char; 6],
    ahead_pos: usize,
    ahead_len: usize,
}

impl<'a> NormChars<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        let inner = if s.is_ascii() {
            Folded::Ascii(s.bytes())
        } else {
            let visible: FilterMap<Chars<'a>, fn(char) -> Option<char>> =
                s.chars().filter_map(visible_sign_to_space);
            let lower: fn(char) -> std::char::ToLowercase = char::to_lowercase;
            Folded::Unicode(visible.nfkc().flat_map(lower))
        };
        NormChars {
            inner,
            ahead: ['\0'; 6],
            ahead_pos: 0,
            ahead_len: 0,
        }
    }

    #[inline]
    fn pull(&mut self) -> Option<char> {
        if self.ahead_pos < self.ahead_len {
            let c = self.ahead[self.ahead_pos];
            self.ahead_pos += 1;
            Some(c)
        } else {
            self.inner.next()
        }
    }

    /// After a `(`: whether `r)`, `c)` or `tm)` follows. Whatever was read
    /// without completing a sign is put back to be read again, so `((r)`
    /// still finds its sign.
    #[cold]
    fn sign_follows(&mut self) -> bool {
        let mut read = ['\0'; 3];
        let mut n = 0;
        let complete = loop {
            let Some(c) = self.pull() else { break false };
            read[n] = c;
            n += 1;
            match &read[..n] {
                ['r' | 'c'] | ['t'] | ['t', 'm'] => continue,
                ['r' | 'c', ')'] | ['t', 'm', ')'] => break true,
                _ => break false,
            }
        };
        if !complete {
            // Put back `read[..n]` before what is still pending: together
            // never more than the pending count before this call, or `n`.
            let mut next = ['\0'; 6];
            let rest = &self.ahead[self.ahead_pos..self.ahead_len];
            let total = n + rest.len();
            if total <= next.len() {
                next[..n].copy_from_slice(&read[..n]);
                next[n..total].copy_from_slice(rest);
                self.ahead = next;
                self.ahead_pos = 0;
                self.ahead_len = total;
            }
        }
        complete
    }
}

impl Iterator for NormChars<'_> {
    type Item = char;

    #[inline]
    fn next(&mut self) -> Option<char> {
        let c = self.pull()?;
        if c == '(' && self.sign_follows() {
            return Some(' ');
        }
        Some(c)
    }
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '«' | '»' | '“' | '”' | '„')
}

/// Drops a trailing `<address>` from `Name <address>`.
fn strip_email(s: &str) -> &str {
    let t = s.trim_end();
    if t.ends_with('>') {
        if let Some(i) = t.rfind('<') {
            return &t[..i];
        }
    }
    s
}

/// Feeds the normalised key of `s` to `push`, one char at a time, with
/// white space collapsed and trimmed. Stops early when `push` says `false`
/// (no room); returns whether it got to the end.
fn normalise_with(s: &str, mode: KeyMode, mut push: impl FnMut(char) -> bool) -> bool {
    let s = if mode == KeyMode::Vendor {
        strip_email(s)
    } else {
        s
    };
    let mut started = false;
    let mut pending_space = false;
    for c in NormChars::new(s) {
        if c.is_whitespace() {
            pending_space = started;
            continue;
        }
        if mode == KeyMode::Vendor && is_quote(c) {
            continue;
        }
        if pending_space {
            if !push(' ') {
                return false;
            }
            pending_space = false;
        }
        if !push(c) {
            return false;
        }
        started = true;
    }
    true
}

/// The normalised key of `s` on the heap, for building indexes.
pub(crate) fn normalise_key(s: &str, mode: KeyMode) -> String {
    let mut out = String::with_capacity(s.len());
    normalise_with(s, mode, |c| {
        out.push(c);
        true
    });
    out
}

/// A stack buffer for one normalised key.
pub(crate) struct KeyBuf {
    buf: [u8; MAX_KEY_BYTES],
    len: usize,
}

impl KeyBuf {
    pub(crate) fn new() -> Self {
        KeyBuf {
            buf: [0; MAX_KEY_BYTES],
            len: 0,
        }
    }

    /// The normalised key of `s`, or `None` when it is empty or longer
    /// than `cap` bytes (the longest indexed key: it cannot match, and
    /// stopping early keeps long GUIDs and paths cheap).
    pub(crate) fn normalise(&mut self, s: &str, mode: KeyMode, cap: usize) -> Option<&str> {
        let cap = cap.min(MAX_KEY_BYTES);
        self.len = 0;
        let buf = &mut self.buf;
        let len = &mut self.len;
        let complete = normalise_with(s, mode, |c| {
            let n = c.len_utf8();
            if *len + n > cap {
                return false;
            }
            c.encode_utf8(&mut buf[*len..*len + n]);
            *len += n;
            true
        });
        if !complete || self.len == 0 {
            return None;
        }
        std::str::from_utf8(&self.buf[..self.len]).ok()
    }
}

/// Word characters: a name is split on everything else (white space,
/// `-`, `(`, `)`, `,`, `.`, `/`, `_`, ...), so version numbers and
/// bracketed platform names never glue onto a product word.
#[inline]
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// The words of a normalised name, split for whole-word matching.
pub(crate) fn name_tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in NormChars::new(s) {
        if is_word_char(c) {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The first words of an item's name, in a stack buffer.
pub(crate) struct Tokens {
    buf: [u8; TOKEN_BYTES],
    ends: [u16; MAX_NAME_TOKENS],
    count: usize,
}

impl Tokens {
    pub(crate) fn new() -> Self {
        Tokens {
            buf: [0; TOKEN_BYTES],
            ends: [0; MAX_NAME_TOKENS],
            count: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn get(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            usize::from(self.ends[i - 1])
        };
        let end = usize::from(self.ends[i]);
        // Only whole chars are ever written, so this cannot fail; an empty
        // word is the safe answer if it ever did.
        std::str::from_utf8(&self.buf[start..end]).unwrap_or("")
    }

    /// Reads complete words of `chars` until `wanted(words so far)` says
    /// no more are needed, the buffer is full, or the input ends. A word is
    /// kept only once the character after it (or the end) has been seen, so
    /// a kept word is never a fragment of a longer one.
    pub(crate) fn fill(&mut self, chars: NormChars<'_>, mut wanted: impl FnMut(&Tokens) -> usize) {
        self.count = 0;
        let mut len = 0usize;
        let mut in_word = false;
        let mut need = usize::MAX;
        let mut commit = |t: &mut Tokens, len: usize, need: &mut usize| -> bool {
            t.ends[t.count] = len as u16;
            t.count += 1;
            *need = wanted(t);
            t.count < *need && t.count < MAX_NAME_TOKENS
        };
        for c in chars {
            if is_word_char(c) {
                let n = c.len_utf8();
                if len + n > TOKEN_BYTES {
                    return;
                }
                c.encode_utf8(&mut self.buf[len..len + n]);
                len += n;
                in_word = true;
            } else if in_word {
                in_word = false;
                if !commit(self, len, &mut need) {
                    return;
                }
            }
        }
        if in_word {
            commit(self, len, &mut need);
        }
    }
}

/// The value of the first `CN=` attribute of an RFC 4514 / X.500 style
/// subject (`CN=AO Kaspersky Lab, O=AO Kaspersky Lab, C=RU`), so a signer
/// reported as a whole subject still compares exactly on its common name.
pub(crate) fn common_name(subject: &str) -> Option<&str> {
    let mut rest = subject;
    loop {
        let trimmed = rest.trim_start();
        // Compared as bytes: the subject may start with a multi-byte char.
        if trimmed
            .as_bytes()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"cn="))
        {
            let value = &trimmed[3..];
            let end = unescaped_comma(value).unwrap_or(value.len());
            let v = value[..end].trim().trim_matches('"').trim();
            return if v.is_empty() { None } else { Some(v) };
        }
        let next = unescaped_comma(trimmed)?;
        rest = &trimmed[next + 1..];
    }
}

fn unescaped_comma(s: &str) -> Option<usize> {
    let mut escaped = false;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' | ';' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str, mode: KeyMode) -> Option<String> {
        KeyBuf::new()
            .normalise(s, mode, MAX_KEY_BYTES)
            .map(str::to_owned)
    }

    #[test]
    fn ascii_and_unicode_paths_agree_on_case_and_space() {
        assert_eq!(
            key("  AO   Kaspersky\tLab ", KeyMode::Plain).as_deref(),
            Some("ao kaspersky lab")
        );
        assert_eq!(
            key("AO Kaspersky Lab\u{00A0}", KeyMode::Plain).as_deref(),
            Some("ao kaspersky lab")
        );
    }

    #[test]
    fn nfkc_folds_full_width_letters_and_signs_are_dropped() {
        assert_eq!(
            key("ＫＡＳＰＥＲＳＫＹ", KeyMode::Plain).as_deref(),
            Some("kaspersky")
        );
        assert_eq!(
            key("Kaspersky® Lab™ ©", KeyMode::Plain).as_deref(),
            Some("kaspersky lab")
        );
        assert_eq!(
            key("ЛАБОРАТОРИЯ Касперского", KeyMode::Plain).as_deref(),
            Some("лаборатория касперского")
        );
    }

    #[test]
    fn ascii_spellings_of_the_signs_are_dropped_wherever_they_stand() {
        for (input, want) in [
            (
                "Kaspersky(R) Endpoint Security",
                "kaspersky endpoint security",
            ),
            (
                "Kaspersky (R) Endpoint Security",
                "kaspersky endpoint security",
            ),
            (
                "Kaspersky(TM) Endpoint Security",
                "kaspersky endpoint security",
            ),
            (
                "Kaspersky(tm)Endpoint (c) Security (C)",
                "kaspersky endpoint security",
            ),
            ("((r)x", "( x"),
            ("(t(r)", "(t"),
            ("a(rb) (tx) (", "a(rb) (tx) ("),
            ("x(", "x("),
            ("x(t", "x(t"),
            ("x(tm", "x(tm"),
            // NFKC makes `(r)` of these.
            ("Kaspersky\u{24AD} Lab", "kaspersky lab"),
            ("Kaspersky（Ｒ） Lab", "kaspersky lab"),
        ] {
            assert_eq!(
                key(input, KeyMode::Plain).as_deref(),
                Some(want),
                "{input:?}"
            );
        }
        assert_eq!(
            name_tokens("Kaspersky(R) Endpoint Security(TM) 12"),
            ["kaspersky", "endpoint", "security", "12"]
        );
    }

    #[test]
    fn invisible_characters_are_dropped_before_matching() {
        for input in [
            "Kas\u{200B}persky Lab",
            "Kas\u{200D}per\u{200C}sky Lab",
            "Kas\u{00AD}persky Lab",
            "\u{FEFF}Kaspersky Lab",
            "\u{202E}Kaspersky Lab\u{202C}",
            "Kaspersky\u{2066} Lab\u{2069}",
            "K\u{FE0F}aspersky \u{E0041}Lab",
            "Kaspersky \u{2060}Lab\u{180E}",
        ] {
            assert_eq!(
                key(input, KeyMode::Plain).as_deref(),
                Some("kaspersky lab"),
                "{input:?}"
            );
        }
        assert_eq!(
            name_tokens("Kasper\u{200B}sky End\u{00AD}point Security"),
            ["kaspersky", "endpoint", "security"]
        );
        assert_eq!(key("\u{200B}\u{FEFF}", KeyMode::Plain), None);
        // A joiner inside a composition does not block it.
        assert_eq!(
            key("e\u{200D}\u{301}", KeyMode::Plain).as_deref(),
            Some("\u{e9}")
        );
    }

    #[test]
    fn vendor_mode_drops_email_and_quotes() {
        assert_eq!(
            key("АО «Лаборатория Касперского»", KeyMode::Vendor).as_deref(),
            Some("ао лаборатория касперского")
        );
        assert_eq!(
            key("\"Лаборатория Касперского\"", KeyMode::Vendor).as_deref(),
            Some("лаборатория касперского")
        );
        assert_eq!(
            key("Matthias Klose <doko@debian.org>", KeyMode::Vendor).as_deref(),
            Some("matthias klose")
        );
        assert_eq!(key("a \"b\"", KeyMode::Plain).as_deref(), Some("a \"b\""));
    }

    #[test]
    fn keys_over_the_cap_do_not_normalise() {
        assert_eq!(
            KeyBuf::new().normalise(" Kesl ", KeyMode::Plain, 4),
            Some("kesl")
        );
        assert_eq!(KeyBuf::new().normalise("kesl-gui", KeyMode::Plain, 4), None);
    }

    #[test]
    fn overlong_and_empty_keys_do_not_normalise() {
        assert_eq!(key(&"x".repeat(MAX_KEY_BYTES + 1), KeyMode::Plain), None);
        assert!(key(&"x".repeat(MAX_KEY_BYTES), KeyMode::Plain).is_some());
        assert_eq!(key("  ® ", KeyMode::Plain), None);
    }

    #[test]
    fn names_split_on_punctuation_and_keep_words_whole() {
        assert_eq!(
            name_tokens("Kaspersky Endpoint Security for Windows (11.11.0)"),
            [
                "kaspersky",
                "endpoint",
                "security",
                "for",
                "windows",
                "11",
                "11",
                "0"
            ]
        );
        assert_eq!(
            name_tokens("python3-kaspersky-foo"),
            ["python3", "kaspersky", "foo"]
        );
        assert_eq!(
            name_tokens("Kaspersky®Anti-Virus"),
            ["kaspersky", "anti", "virus"]
        );
    }

    #[test]
    fn token_buffer_stops_when_told_and_never_keeps_a_fragment() {
        let mut t = Tokens::new();
        t.fill(NormChars::new("Kaspersky Endpoint Security 11.8"), |_| 2);
        assert_eq!(t.len(), 2);
        assert_eq!((t.get(0), t.get(1)), ("kaspersky", "endpoint"));
        let long = format!("kaspersky {}", "a".repeat(TOKEN_BYTES));
        t.fill(NormChars::new(&long), |_| usize::MAX);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn common_name_is_taken_from_a_subject() {
        assert_eq!(
            common_name("CN=AO Kaspersky Lab, O=AO Kaspersky Lab, L=Moscow, C=RU"),
            Some("AO Kaspersky Lab")
        );
        assert_eq!(
            common_name("O=X, CN=\"Kaspersky Lab, JSC\", C=RU"),
            Some("Kaspersky Lab, JSC")
        );
        assert_eq!(common_name("O=Example"), None);
        assert_eq!(common_name("2Y8XE5CQ94"), None);
        assert_eq!(common_name("ООО «ЯНДЕКС»"), None);
        assert_eq!(common_name("Ж"), None);
        assert_eq!(common_name("O=ООО «ЯНДЕКС», CN=Яндекс"), Some("Яндекс"));
    }
}
