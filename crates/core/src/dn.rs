//! Distinguished names compared the way X.500 compares them, for exemptions
//! by `device_subject` (issue 19 point 5).
//!
//! A network team copies a subject from wherever it is shown: the gate's own
//! rendering (`CN=lt-042,OU=Beheer,O=Leverancier BV`), openssl's
//! (`CN = lt-042, OU = Beheer, O = Leverancier BV`), a CA's portal in DER
//! order (`O=Leverancier BV,OU=Beheer,CN=lt-042`). All of them name the same
//! certificate subject, so all of them must match it; comparing strings byte
//! for byte made each of them silently miss.
//!
//! The rule, one [`DistinguishedName`] equal to another:
//! - the same RDNs, in any order, each with the same attributes in any order
//!   (a multi-valued RDN `CN=a+UID=b` stays one RDN). Every attribute must
//!   be there: a name with fewer attributes than the certificate does not
//!   match it. A subset rule would let `O=Leverancier BV` exempt every
//!   device of that supplier;
//! - attribute types by short name or dotted OID, case-insensitively
//!   (`cn`, `CN` and `2.5.4.3` are one type);
//! - string values as X.500 caseIgnoreMatch compares them, narrowed where
//!   RFC 4518 would make look-alikes equal: ASCII letters case-insensitive,
//!   leading and trailing spaces dropped and inner runs of spaces collapsed
//!   to one; every other character must be equal (no NFKC, no Unicode case
//!   folding: a fullwidth or ligature spelling is another name). The string
//!   type that encodes a value (UTF8String, PrintableString, ...) does not
//!   matter; a `#hex` value that is the DER of a string is that string;
//! - any other value (a DER type without a text form) byte for byte.
//!
//! Both sides become one canonical string ([`DistinguishedName::as_str`]),
//! which `check-config` shows: what an exemption will match, exactly.

use std::fmt;

use x509_parser::prelude::X509Name;

/// Attribute types known by name: the names of RFC 4514 section 3 and the
/// ones openssl and Windows print. The first name is the canonical one;
/// names compare case-insensitively.
const TYPES: &[(&str, &[&str])] = &[
    ("2.5.4.3", &["CN", "commonName"]),
    ("2.5.4.4", &["SN", "surname"]),
    ("2.5.4.5", &["SERIALNUMBER"]),
    ("2.5.4.6", &["C", "countryName"]),
    ("2.5.4.7", &["L", "localityName"]),
    ("2.5.4.8", &["ST", "stateOrProvinceName", "S"]),
    ("2.5.4.9", &["STREET", "streetAddress"]),
    ("2.5.4.10", &["O", "organizationName"]),
    ("2.5.4.11", &["OU", "organizationalUnitName"]),
    ("2.5.4.12", &["TITLE"]),
    ("2.5.4.42", &["GN", "givenName"]),
    ("0.9.2342.19200300.100.1.25", &["DC", "domainComponent"]),
    ("0.9.2342.19200300.100.1.1", &["UID", "userId"]),
    ("1.2.840.113549.1.9.1", &["emailAddress", "E"]),
];

/// The longest name parsed, in bytes: a subject in a config file or on the
/// wire is a few hundred bytes; this bounds the work on hostile input.
const MAX_LEN: usize = 16 * 1024;

/// A distinguished name in canonical form; see the module docs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DistinguishedName {
    canonical: String,
}

/// Why a string is not an RFC 4514 distinguished name; the message says
/// where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DnError(String);

impl fmt::Debug for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DistinguishedName({:?})", self.canonical)
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// One attribute value as it is compared.
enum Value {
    /// A string, prepared for caseIgnoreMatch.
    Text(String),
    /// The DER of a value without a text form.
    Der(Vec<u8>),
}

impl DistinguishedName {
    /// The canonical form: RDNs sorted, attributes in an RDN sorted, types
    /// by their canonical short name or dotted OID, values prepared (or
    /// `#hex` DER) and escaped as RFC 4514 section 2.4 says. Two names are
    /// equal exactly when these strings are.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// Parses an RFC 4514 string. Spaces around `=`, `,` and `+` are
    /// allowed (openssl writes them). An empty string, an unknown type
    /// name, a bad escape or hex string, a missing `=`: an error saying
    /// which.
    pub fn parse(text: &str) -> Result<DistinguishedName, DnError> {
        if text.len() > MAX_LEN {
            return Err(DnError(format!(
                "a distinguished name longer than {MAX_LEN} bytes"
            )));
        }
        if text.trim_matches(' ').is_empty() {
            return Err(DnError("an empty distinguished name".into()));
        }
        let mut p = Parser {
            s: text.as_bytes(),
            text,
            at: 0,
        };
        let mut rdns: Vec<Vec<String>> = vec![Vec::new()];
        loop {
            let (oid, value) = p.attribute()?;
            if let Some(rdn) = rdns.last_mut() {
                rdn.push(attribute(&oid, &value));
            }
            p.spaces();
            match p.peek() {
                None => break,
                Some(b'+') => p.at += 1,
                Some(b',') => {
                    p.at += 1;
                    rdns.push(Vec::new());
                }
                Some(c) => {
                    return Err(p.error(format!("unexpected {:?}", char::from(c))));
                }
            }
        }
        Ok(canonical(rdns))
    }

    /// The name of a certificate (its subject), from its attributes.
    pub fn from_x509(name: &X509Name<'_>) -> DistinguishedName {
        let rdns = name
            .iter_rdn()
            .map(|rdn| {
                rdn.iter()
                    .map(|atv| {
                        let oid = atv.attr_type().to_id_string();
                        let value = match crate::device::attribute_text(atv) {
                            Some(text) => Value::Text(prepare(&text)),
                            None => Value::Der(crate::device::value_der(atv)),
                        };
                        attribute(&oid, &value)
                    })
                    .collect()
            })
            .collect();
        canonical(rdns)
    }
}

fn canonical(rdns: Vec<Vec<String>>) -> DistinguishedName {
    let mut rdns: Vec<String> = rdns
        .into_iter()
        .map(|mut atvs| {
            atvs.sort_unstable();
            atvs.join("+")
        })
        .collect();
    rdns.sort_unstable();
    DistinguishedName {
        canonical: rdns.join(","),
    }
}

/// `TYPE=value` in canonical form.
fn attribute(oid: &str, value: &Value) -> String {
    let name = TYPES
        .iter()
        .find(|(o, _)| *o == oid)
        .map_or(oid, |(_, names)| names[0]);
    let mut out = String::with_capacity(name.len() + 16);
    out.push_str(name);
    out.push('=');
    match value {
        Value::Text(t) => escape(&mut out, t),
        Value::Der(der) => {
            out.push('#');
            out.push_str(&hex::encode(der));
        }
    }
    out
}

/// Preparation for comparing a value, as caseIgnoreMatch does for the
/// names in device certificates (RFC 4518): case folded for ASCII letters,
/// insignificant spaces removed. Deliberately narrower than RFC 4518 for
/// anything else: no NFKC and no Unicode case folding, since those make
/// look-alikes equal (fullwidth `ｌｔ－０４２`, superscript digits, the
/// ligature in `oﬃce`, the Kelvin sign folding to `k`), and an exemption
/// from the Kaspersky ban must not be given to a certificate whose subject
/// merely looks like the exempted one. Other characters must be equal.
fn prepare(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    }
    out
}

/// RFC 4514 section 2.4, so the canonical form is unambiguous.
fn escape(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            _ => out.push(c),
        }
    }
}

/// The text of a DER string value, as the certificate side reads it
/// (`device::attribute_text`): UTF8String, NumericString,
/// PrintableString and IA5String as UTF-8, BMPString as UTF-16BE,
/// UniversalString as UCS-4BE. `None` for anything else.
fn der_text(der: &[u8]) -> Option<String> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let data = if first < 0x80 {
        rest
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let data = &rest[n..];
        if len != data.len() {
            return None;
        }
        data
    };
    if first < 0x80 && usize::from(first) != data.len() {
        return None;
    }
    match tag {
        // UTF8String, NumericString, PrintableString, IA5String.
        0x0c | 0x12 | 0x13 | 0x16 => std::str::from_utf8(data).ok().map(str::to_owned),
        // BMPString.
        0x1e => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        // UniversalString.
        0x1c => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    fn error(&self, what: String) -> DnError {
        let at = self
            .text
            .get(..self.at)
            .map_or(self.at, |b| b.chars().count())
            + 1;
        DnError(format!("{what} at character {at}"))
    }

    /// `type = value`, returning the dotted OID and the value.
    fn attribute(&mut self) -> Result<(String, Value), DnError> {
        self.spaces();
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        {
            self.at += 1;
        }
        let name = &self.text[start..self.at];
        if name.is_empty() {
            return Err(self.error("an attribute type (like CN) expected".into()));
        }
        self.spaces();
        if self.peek() != Some(b'=') {
            return Err(self.error(format!("\"=\" expected after {name:?}")));
        }
        let oid = oid_of(name).ok_or_else(|| {
            let known: Vec<&str> = TYPES.iter().map(|(_, n)| n[0]).collect();
            DnError(format!(
                "unknown attribute type {name:?} (known: {}; write any other as a dotted OID \
                 like 2.5.4.5)",
                known.join(", ")
            ))
        })?;
        self.at += 1;
        self.spaces();
        let value = if self.peek() == Some(b'#') {
            self.at += 1;
            self.hex_value()?
        } else {
            Value::Text(prepare(&self.string_value()?))
        };
        Ok((oid, value))
    }

    /// `#` followed by hex pairs: the DER of the value.
    fn hex_value(&mut self) -> Result<Value, DnError> {
        let mut der = Vec::new();
        while let Some(c) = self.peek() {
            if c == b',' || c == b'+' || c == b' ' {
                break;
            }
            let (Some(hi), Some(lo)) = (
                hex_digit(c),
                self.s.get(self.at + 1).and_then(|c| hex_digit(*c)),
            ) else {
                return Err(self.error("a #hex value must be pairs of hex digits".into()));
            };
            der.push(hi << 4 | lo);
            self.at += 2;
        }
        if der.is_empty() {
            return Err(self.error("a #hex value without hex digits".into()));
        }
        Ok(match der_text(&der) {
            Some(text) => Value::Text(prepare(&text)),
            None => Value::Der(der),
        })
    }

    /// A string value up to an unescaped `,` or `+`, escapes decoded.
    fn string_value(&mut self) -> Result<String, DnError> {
        let mut bytes = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                b',' | b'+' => break,
                b'\\' => {
                    self.at += 1;
                    let Some(next) = self.peek() else {
                        return Err(self.error("a value ends in a lone \\".into()));
                    };
                    if let Some(hi) = hex_digit(next) {
                        let Some(lo) = self.s.get(self.at + 1).and_then(|c| hex_digit(*c)) else {
                            return Err(self.error(
                                "\\ must be followed by two hex digits or one of ,+\"\\<>;= #"
                                    .into(),
                            ));
                        };
                        bytes.push(hi << 4 | lo);
                        self.at += 2;
                    } else if b" \"#+,;<=>\\".contains(&next) {
                        bytes.push(next);
                        self.at += 1;
                    } else {
                        return Err(self.error(format!(
                            "\\{} is not an escape (write \\, \\+ \\\" \\\\ or two hex digits)",
                            char::from(next)
                        )));
                    }
                }
                b'"' | b';' | b'<' | b'>' => {
                    return Err(self.error(format!(
                        "{:?} must be escaped with \\ in a value",
                        char::from(c)
                    )));
                }
                _ => {
                    bytes.push(c);
                    self.at += 1;
                }
            }
        }
        String::from_utf8(bytes).map_err(|_| self.error("escaped bytes that are not UTF-8".into()))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    char::from(c).to_digit(16).map(|d| d as u8)
}

/// The dotted OID of a type name or OID (`OID.` prefix allowed, as Java
/// writes it); `None` for an unknown name or a malformed OID.
fn oid_of(name: &str) -> Option<String> {
    let bare = match name.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("oid.") => &name[4..],
        _ => name,
    };
    if bare.starts_with(|c: char| c.is_ascii_digit()) {
        let ok = bare.split('.').count() >= 2
            && bare.split('.').all(|arc| {
                !arc.is_empty()
                    && arc.bytes().all(|b| b.is_ascii_digit())
                    && (arc == "0" || !arc.starts_with('0'))
            });
        return ok.then(|| bare.to_owned());
    }
    TYPES
        .iter()
        .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
        .map(|(oid, _)| (*oid).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(text: &str) -> String {
        DistinguishedName::parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .as_str()
            .to_owned()
    }

    #[test]
    fn order_spacing_and_type_spelling_do_not_matter() {
        let want = dn("CN=lt-042,OU=Beheer,O=Leverancier BV");
        assert_eq!(want, "CN=lt-042,O=leverancier bv,OU=beheer");
        for same in [
            "O=Leverancier BV,OU=Beheer,CN=lt-042",
            "CN = lt-042, OU = Beheer, O = Leverancier BV",
            "cn=LT-042,ou=beheer,o=leverancier   bv ",
            "2.5.4.3=lt-042,2.5.4.11=Beheer,2.5.4.10=Leverancier BV",
            "OID.2.5.4.3=lt-042,organizationalUnitName=Beheer,O=  Leverancier BV",
            // The DER of UTF8String "lt-042" and PrintableString "Beheer".
            "CN=#0c066c742d303432,OU=#1306426568656572,O=Leverancier BV",
        ] {
            assert_eq!(dn(same), want, "{same}");
        }
        assert_eq!(dn("CN=#0c066c742d303432"), dn("CN=lt-042"));
        assert_eq!(dn("OU=#1306426568656572"), dn("ou=BEHEER"));
    }

    #[test]
    fn fewer_or_more_attributes_or_other_values_are_another_name() {
        let full = dn("CN=lt-042,OU=Beheer,O=Leverancier BV");
        for other in [
            "CN=lt-042,O=Leverancier BV",
            "CN=lt-042,OU=Beheer,O=Leverancier BV,C=NL",
            "CN=lt-043,OU=Beheer,O=Leverancier BV",
            "CN=lt-042+OU=Beheer,O=Leverancier BV",
            "CN=lt-042,OU=Beheer,OU=Beheer,O=Leverancier BV",
            "CN=lt-042,OU=Beheer,O=LeverancierBV",
        ] {
            assert_ne!(dn(other), full, "{other}");
        }
    }

    #[test]
    fn look_alike_characters_are_another_name() {
        // Fullwidth letters and digits, superscript digits, a ligature, the
        // Kelvin sign: equal under NFKC or Unicode case folding, but a
        // certificate with such a subject is not the exempted device.
        for (look_alike, real) in [
            ("CN=ｌｔ－０４２", "CN=lt-042"),
            ("CN=lt-⁰⁴²", "CN=lt-042"),
            ("CN=oﬃce", "CN=office"),
            ("CN=\u{212A}ey", "CN=key"),
        ] {
            assert_ne!(dn(look_alike), dn(real), "{look_alike}");
        }
        // ASCII case still does not matter.
        assert_eq!(dn("CN=LT-042"), dn("cn=lt-042"));
        // Beyond ASCII, a character must be itself: é is é, É is not é.
        assert_eq!(dn("O=Société BV"), dn("o=société bv"));
        assert_ne!(dn("O=SOCIÉTÉ BV"), dn("o=société bv"));
    }

    #[test]
    fn escapes_are_decoded_and_the_canonical_form_escapes_again() {
        assert_eq!(
            dn(r"CN=Smith\, Jones \+ Co,O=a\\b\22q\22"),
            r#"CN=smith\, jones \+ co,O=a\\b\"q\""#
        );
        assert_eq!(dn(r"CN=\#lt 1"), dn("CN=\\23LT 1"));
        assert_eq!(dn(r"CN=Zo\C3\AB"), dn("CN=ZOë"));
        // A multi-valued RDN in either order.
        assert_eq!(dn("UID=7+CN=x,DC=nl"), dn("dc=NL,cn=X+uid=7"));
    }

    #[test]
    fn unparseable_names_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("lt-042", "\"=\" expected"),
            ("XX=1", "unknown attribute type \"XX\""),
            ("CN=a,", "attribute type (like CN) expected"),
            (",CN=a", "attribute type (like CN) expected"),
            ("CN=a;O=b", "must be escaped"),
            ("CN=a\\", "lone \\"),
            ("CN=a\\q", "is not an escape"),
            ("CN=\\ff", "not UTF-8"),
            ("CN=#0c0", "pairs of hex digits"),
            ("CN=#", "without hex digits"),
            ("1.=x", "unknown attribute type"),
            ("01.2=x", "unknown attribute type"),
            ("CN=a=b", ""),
        ] {
            match DistinguishedName::parse(bad) {
                Ok(n) if why.is_empty() => assert_eq!(n.as_str(), "CN=a\\=b"),
                Ok(n) => panic!("{bad:?} parsed as {n}"),
                Err(e) => assert!(e.to_string().contains(why), "{bad:?}: {e}"),
            }
        }
    }

    #[test]
    fn values_without_a_text_form_compare_as_der_bytes() {
        // An OCTET STRING: no text, kept as bytes; case of the hex does not matter.
        assert_eq!(dn("1.2.3.4=#0402ABCD"), "1.2.3.4=#0402abcd");
        assert_ne!(dn("1.2.3.4=#0402abce"), dn("1.2.3.4=#0402abcd"));
        // Bad DER is kept as bytes too, never read past its end.
        assert_eq!(dn("CN=#0c05616263"), "CN=#0c05616263");
        assert_eq!(dn("CN=#0c8405"), "CN=#0c8405");
    }

    /// No input panics, whatever it holds; and the canonical form of what
    /// parses parses again to itself.
    #[test]
    fn hostile_input_never_panics_and_canonical_forms_are_fixed_points() {
        let pieces = [
            "CN",
            "cn",
            "=",
            ",",
            "+",
            " ",
            "\\",
            "\\2",
            "\\zz",
            "#",
            "#0c",
            "0c02",
            "é",
            "\u{0}",
            "\"",
            "OID.",
            "2.5.4.3",
            "..",
            "a",
            "ß",
            "\u{212B}",
            ";",
            "\\,",
            "\u{FEFF}",
            "\u{1F600}",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let n = (next() % 12) as usize;
            let text: String = (0..n)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            if let Ok(name) = DistinguishedName::parse(&text) {
                let again = DistinguishedName::parse(name.as_str())
                    .unwrap_or_else(|e| panic!("{text:?} -> {name}: {e}"));
                assert_eq!(again, name, "{text:?}");
            }
        }
        assert!(DistinguishedName::parse(&"CN=a,".repeat(5000)).is_err());
    }
}
