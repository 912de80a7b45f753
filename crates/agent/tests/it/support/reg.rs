//! A parser of `reg export` files (UTF-16LE `.reg`), for the tests only:
//! the product reads the live registry through `winreg`, and both feed the
//! agent's one mapping from an uninstall key to a `Software`
//! ([`uninstall_entry`]), so the Windows collector is tested on every OS.

use posture_agent::windows::{uninstall_entry, RegData, RegKeyValues};
use posture_agent::LineError;
use posture_core::attestation::claims::Software;

/// Why a `.reg` file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegError {
    #[error("not a UTF-16LE registry export: it does not start with the FF FE byte order mark")]
    NoBom,
    #[error("odd number of bytes after the byte order mark: not UTF-16")]
    OddLength,
    #[error("first line is not `Windows Registry Editor Version 5.00`")]
    BadHeader,
    #[error("{0}")]
    BadLine(#[from] LineError),
}

const HEADER: &str = "Windows Registry Editor Version 5.00";

/// The software of the uninstall keys in a `reg export` file (UTF-16LE with
/// a byte order mark, as `reg export` and regedit write it). Keys outside
/// `...\CurrentVersion\Uninstall\<key>` are ignored, so an export of a whole
/// hive works too.
pub fn parse_reg_export(bytes: &[u8]) -> Result<Vec<Software>, RegError> {
    let keys = parse_reg_file(bytes)?;
    Ok(keys
        .iter()
        .filter_map(|k| uninstall_key_name(&k.path).and_then(|name| uninstall_entry(name, k)))
        .collect())
}

/// The key name of a direct child of an `Uninstall` key.
fn uninstall_key_name(path: &str) -> Option<&str> {
    const MARK: &str = "\\currentversion\\uninstall\\";
    // ASCII lowercasing keeps byte offsets valid in the original.
    let at = path.to_ascii_lowercase().find(MARK)?;
    let rest = &path[at + MARK.len()..];
    (!rest.is_empty() && !rest.contains('\\')).then_some(rest)
}

/// Every key of a `.reg` export with its values. Deletions (`[-key]`,
/// `"name"=-`) are skipped: an export never writes them.
pub fn parse_reg_file(bytes: &[u8]) -> Result<Vec<RegKeyValues>, RegError> {
    let text = decode_utf16le(bytes)?;
    let mut lines = logical_lines(&text);
    match lines.next() {
        Some((_, first)) if first.trim() == HEADER => {}
        _ => return Err(RegError::BadHeader),
    }
    let mut keys: Vec<RegKeyValues> = Vec::new();
    let mut deleted_section = false;
    for (number, line) in lines {
        let line = line.trim();
        let bad = |problem: &str| LineError {
            line: number,
            problem: problem.to_string(),
        };
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let path = section
                .strip_suffix(']')
                .ok_or_else(|| bad("unterminated [key]"))?;
            deleted_section = path.starts_with('-');
            if !deleted_section {
                keys.push(RegKeyValues {
                    path: path.to_string(),
                    values: Vec::new(),
                });
            }
            continue;
        }
        let (name, data) = parse_value_line(line).map_err(|p| bad(&p))?;
        let key = keys
            .last_mut()
            .ok_or_else(|| bad("value before any [key]"))?;
        if let (Some(data), false) = (data, deleted_section) {
            key.values.push((name, data));
        }
    }
    Ok(keys)
}

fn decode_utf16le(bytes: &[u8]) -> Result<String, RegError> {
    let body = bytes.strip_prefix(&[0xFF, 0xFE]).ok_or(RegError::NoBom)?;
    if !body.len().is_multiple_of(2) {
        return Err(RegError::OddLength);
    }
    let units = body
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    Ok(char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect())
}

/// Lines with their first physical line number, hex data continued over
/// several lines (a trailing `\`) joined into one.
fn logical_lines(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    let mut physical = text.lines().enumerate().peekable();
    std::iter::from_fn(move || {
        let (i, first) = physical.next()?;
        let mut line = first.trim_end().to_string();
        while line.ends_with('\\') {
            line.pop();
            match physical.next() {
                Some((_, next)) => line.push_str(next.trim()),
                None => break,
            }
        }
        Some((i + 1, line))
    })
}

/// `"Name"=data` or `@=data`; `None` data for a deletion (`=-`).
fn parse_value_line(line: &str) -> Result<(String, Option<RegData>), String> {
    let (name, rest) = if let Some(rest) = line.strip_prefix('@') {
        (String::new(), rest)
    } else {
        let (name, rest) = parse_quoted(line).ok_or("value name is not a quoted string")?;
        (name, rest)
    };
    let data = rest
        .trim_start()
        .strip_prefix('=')
        .ok_or("missing `=` after the value name")?
        .trim();
    if data == "-" {
        return Ok((name, None));
    }
    Ok((name, Some(parse_data(data)?)))
}

/// A `"..."` string with `\\` and `\"` escapes at the start of `s`, and what
/// follows it.
fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let inner = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &inner[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

fn parse_data(data: &str) -> Result<RegData, String> {
    if data.starts_with('"') {
        let (s, rest) = parse_quoted(data).ok_or("unterminated string")?;
        if !rest.trim().is_empty() {
            return Err("text after the closing quote".into());
        }
        return Ok(RegData::Sz(s));
    }
    if let Some(hex) = data.strip_prefix("dword:") {
        let ok = !hex.is_empty() && hex.len() <= 8;
        let n = u32::from_str_radix(hex, 16).ok().filter(|_| ok);
        return n
            .map(RegData::Dword)
            .ok_or_else(|| format!("bad dword {hex:?}"));
    }
    let (kind, list) = if let Some(list) = data.strip_prefix("hex:") {
        (3, list)
    } else if let Some(rest) = data.strip_prefix("hex(") {
        let (kind, list) = rest.split_once("):").ok_or("bad hex(type): prefix")?;
        let kind = u32::from_str_radix(kind, 16).map_err(|_| "bad hex type")?;
        (kind, list)
    } else {
        return Err(format!("unknown data {:.40?}", data));
    };
    let bytes = parse_hex_list(list)?;
    Ok(match kind {
        1 => RegData::Sz(utf16_string(&bytes)?),
        2 => RegData::ExpandSz(utf16_string(&bytes)?),
        7 => RegData::MultiSz(
            utf16_string(&bytes)?
                .split('\0')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        4 if bytes.len() == 4 => {
            RegData::Dword(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }
        0xb if bytes.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes);
            RegData::Qword(u64::from_le_bytes(b))
        }
        _ => RegData::Binary(bytes),
    })
}

fn parse_hex_list(list: &str) -> Result<Vec<u8>, String> {
    let list = list.trim();
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|b| {
            let b = b.trim();
            if b.len() == 2 {
                u8::from_str_radix(b, 16).map_err(|_| format!("bad hex byte {b:?}"))
            } else {
                Err(format!("bad hex byte {b:?}"))
            }
        })
        .collect()
}

/// A UTF-16LE string value, without its terminating NULs.
fn utf16_string(bytes: &[u8]) -> Result<String, String> {
    if !bytes.len().is_multiple_of(2) {
        return Err("odd number of bytes in a string value".into());
    }
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let s: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Ok(s.trim_end_matches('\0').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use posture_core::attestation::claims::SoftwareSource;

    fn utf16_reg(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xFE];
        for u in text.replace('\n', "\r\n").encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        bytes
    }

    const SMALL: &str = "Windows Registry Editor Version 5.00\n\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall]\n\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\7-Zip]\n\
\"DisplayName\"=\"7-Zip 24.08 (x64)\"\n\"DisplayVersion\"=\"24.08\"\n\
\"Publisher\"=\"Igor Pavlov\"\n\"InstallLocation\"=\"C:\\\\Program Files\\\\7-Zip\\\\\"\n\
\"NoModify\"=dword:00000001\n\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\AddressBook]\n\n\
[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Hidden]\n\
\"SystemComponent\"=dword:00000001\n\"Publisher\"=\"X\"\n";

    #[test]
    fn a_small_export_gives_its_programs() {
        let sw = parse_reg_export(&utf16_reg(SMALL)).unwrap();
        assert_eq!(sw.len(), 1);
        assert_eq!(sw[0].name, "7-Zip 24.08 (x64)");
        assert_eq!(sw[0].id.as_deref(), Some("7-Zip"));
        assert_eq!(sw[0].vendor.as_deref(), Some("Igor Pavlov"));
        assert_eq!(sw[0].source, Some(SoftwareSource::Registry));
    }

    #[test]
    fn escapes_hex_strings_and_continuations_are_decoded() {
        let text = "Windows Registry Editor Version 5.00\n\n[HKEY_CURRENT_USER\\X]\n\
\"Path\"=\"C:\\\\Program Files\\\\\\\"Q\\\"\"\n\
\"Exp\"=hex(2):25,00,50,00,\\\n  46,00,25,00,00,00\n\
\"Multi\"=hex(7):61,00,00,00,62,00,00,00,00,00\n\
\"Q\"=hex(b):01,00,00,00,00,00,00,00\n\"Raw\"=hex:de,ad\n@=\"default\"\n\"Gone\"=-\n";
        let keys = parse_reg_file(&utf16_reg(text)).unwrap();
        let k = &keys[0];
        assert_eq!(k.path, "HKEY_CURRENT_USER\\X");
        assert_eq!(
            k.get("path"),
            Some(&RegData::Sz("C:\\Program Files\\\"Q\"".into()))
        );
        assert_eq!(k.get("Exp"), Some(&RegData::ExpandSz("%PF%".into())));
        assert_eq!(
            k.get("Multi"),
            Some(&RegData::MultiSz(vec!["a".into(), "b".into()]))
        );
        assert_eq!(k.get("Q"), Some(&RegData::Qword(1)));
        assert_eq!(k.get("Raw"), Some(&RegData::Binary(vec![0xde, 0xad])));
        assert_eq!(k.get(""), Some(&RegData::Sz("default".into())));
        assert_eq!(k.get("Gone"), None);
    }

    #[test]
    fn broken_exports_are_errors() {
        assert_eq!(parse_reg_export(SMALL.as_bytes()), Err(RegError::NoBom));
        assert_eq!(
            parse_reg_export(&[0xFF, 0xFE, 0x41]),
            Err(RegError::OddLength)
        );
        assert_eq!(
            parse_reg_export(&utf16_reg("REGEDIT4\n")),
            Err(RegError::BadHeader)
        );
        let broken = SMALL.replace("\"NoModify\"=dword:00000001", "\"NoModify\"=dword:xyz");
        match parse_reg_export(&utf16_reg(&broken)) {
            Err(RegError::BadLine(e)) => assert_eq!(e.line, 10),
            other => panic!("expected a bad line, got {other:?}"),
        }
        let unterminated = SMALL.replace("\"24.08\"", "\"24.08");
        assert!(matches!(
            parse_reg_export(&utf16_reg(&unterminated)),
            Err(RegError::BadLine(_))
        ));
    }

    #[test]
    fn only_direct_children_of_uninstall_count() {
        assert_eq!(
            uninstall_key_name("HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{A}"),
            Some("{A}")
        );
        assert_eq!(
            uninstall_key_name("HKEY_X\\CurrentVersion\\Uninstall\\A\\Sub"),
            None
        );
        assert_eq!(
            uninstall_key_name("HKEY_X\\CurrentVersion\\Uninstall"),
            None
        );
    }
}
