//! Windows: the uninstall registry keys (what "Apps & features" lists),
//! running processes and the antivirus products of Security Center.
//!
//! All parsing here is OS-independent: the same mapping from an uninstall key
//! to a [`Software`] serves the live registry (through `winreg`, on Windows
//! only) and, in the agent's tests, a `reg export` file (the parser lives in
//! `tests/it/support/reg.rs`, not in the product), which is how the
//! uninstall keys of a Windows machine are tested on every OS.

use posture_core::attestation::claims::{
    Os, OsFamily, Process, SecurityProduct, SecurityProductKind, Software, SoftwareSource,
};

use super::{non_empty, LineError};

/// The data of one registry value, as far as this agent needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegData {
    Sz(String),
    ExpandSz(String),
    MultiSz(Vec<String>),
    Dword(u32),
    Qword(u64),
    /// `hex:` and any other type: kept raw.
    Binary(Vec<u8>),
}

impl RegData {
    fn as_str(&self) -> Option<&str> {
        match self {
            RegData::Sz(s) | RegData::ExpandSz(s) => Some(s),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            RegData::Dword(n) => Some(u64::from(*n)),
            RegData::Qword(n) => Some(*n),
            _ => None,
        }
    }
}

/// A registry key and its values (names compare case-insensitively, as in
/// the registry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegKeyValues {
    pub path: String,
    pub values: Vec<(String, RegData)>,
}

impl RegKeyValues {
    pub fn get(&self, name: &str) -> Option<&RegData> {
        self.values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, d)| d)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name).and_then(RegData::as_str).and_then(non_empty)
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(RegData::as_u64)
    }
}

/// The software an uninstall key (`...\Uninstall\<key_name>`) describes, or
/// `None` for a key that describes nothing a person installed.
///
/// Entries without `DisplayName` are hidden by Windows itself; of those, the
/// ones marked `SystemComponent=1` and the empty placeholders every Windows
/// has (`AddressBook`, `IE40`, ...) are skipped, but one that still names a
/// publisher or a version is reported under its key name, so a product cannot
/// hide by leaving out its display name.
pub fn uninstall_entry(key_name: &str, key: &RegKeyValues) -> Option<Software> {
    let vendor = key.string("Publisher");
    let version = key.string("DisplayVersion");
    let name = match key.string("DisplayName") {
        Some(n) => n,
        None if key.number("SystemComponent") == Some(1) => return None,
        None if vendor.is_none() && version.is_none() => return None,
        None => key_name.to_string(),
    };
    let source = if key.number("WindowsInstaller") == Some(1) {
        SoftwareSource::Msi
    } else {
        SoftwareSource::Registry
    };
    Some(Software {
        name,
        vendor,
        version,
        id: non_empty(key_name),
        signer: None,
        source: Some(source),
    })
}

/// Whether an antivirus product is switched on and has current signatures,
/// from the undocumented but stable `productState` bit field of Security
/// Center: bits 12-15 are the scanner state (1 = on), bits 4-7 the
/// signature state (0 = up to date, 1 = out of date).
fn decode_product_state(state: u32) -> (bool, bool) {
    let enabled = (state >> 12) & 0xF == 1;
    let up_to_date = (state >> 4) & 0xF == 0;
    (enabled, up_to_date)
}

/// The antivirus products in the JSON of
/// `Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct | ConvertTo-Json`:
/// one object for one product, an array for several, nothing for none.
pub fn parse_security_center_json(json: &str) -> Result<Vec<SecurityProduct>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => return Err("expected an object or an array of objects".into()),
    };
    items.iter().map(security_product).collect()
}

fn security_product(item: &serde_json::Value) -> Result<SecurityProduct, String> {
    let name = item
        .get("displayName")
        .and_then(serde_json::Value::as_str)
        .and_then(non_empty)
        .ok_or("a product without displayName")?;
    let state = item
        .get("productState")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    let (enabled, up_to_date) = match state.map(decode_product_state) {
        Some((e, u)) => (Some(e), Some(u)),
        None => (None, None),
    };
    Ok(SecurityProduct {
        name,
        vendor: None,
        kind: Some(SecurityProductKind::Antivirus),
        enabled,
        up_to_date,
    })
}

/// The PowerShell that lists Security Center's antivirus products as JSON
/// for [`parse_security_center_json`]. Windows Server has no Security Center
/// namespace: the script then prints nothing (no source, not a failure),
/// checked by name rather than by a localised error message. Output is UTF-8
/// so vendor names in other scripts survive.
pub const SECURITY_CENTER_SCRIPT: &str = "[Console]::OutputEncoding = [Text.Encoding]::UTF8\n\
if (Get-CimInstance -Namespace root -ClassName __NAMESPACE -Filter \"Name='SecurityCenter2'\") {\n\
  Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct -ErrorAction Stop |\n\
    Select-Object displayName, productState | ConvertTo-Json\n\
}\n";

/// A script for `powershell.exe -EncodedCommand`: base64 of its UTF-16LE
/// bytes, which needs no quoting on any command line.
pub fn powershell_encoded(script: &str) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Processes from `tasklist /FO CSV /NH`: quoted CSV whose first column is
/// the image name. The other columns (PID, session, memory) are not used.
pub fn parse_tasklist_csv(output: &str) -> Result<Vec<Process>, LineError> {
    let mut processes = Vec::new();
    for (i, line) in output.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let name = csv_first_field(line).ok_or_else(|| LineError {
            line: i + 1,
            problem: "not a quoted CSV row".into(),
        })?;
        if let Some(name) = non_empty(&name) {
            processes.push(Process { name, path: None });
        }
    }
    Ok(processes)
}

fn csv_first_field(line: &str) -> Option<String> {
    let inner = line.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
        } else if chars.peek() == Some(&'"') {
            chars.next();
            out.push('"');
        } else {
            return matches!(chars.peek(), None | Some(',')).then_some(out);
        }
    }
    None
}

/// The OS from `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`.
/// `ProductName` still says "Windows 10" on Windows 11; build 22000 is the
/// first Windows 11 build, so the name is corrected from the build number.
pub fn windows_os(product_name: Option<&str>, build: Option<&str>, ubr: Option<u32>) -> Os {
    let build_number = build.and_then(|b| b.trim().parse::<u32>().ok());
    let name = product_name
        .and_then(non_empty)
        .map(|n| match build_number {
            Some(b) if b >= 22_000 && n.starts_with("Windows 10") => {
                n.replacen("Windows 10", "Windows 11", 1)
            }
            _ => n,
        });
    let version = build_number.map(|b| match ubr {
        Some(u) => format!("10.0.{b}.{u}"),
        None => format!("10.0.{b}"),
    });
    Os {
        family: OsFamily::Windows,
        name,
        version,
    }
}

#[cfg(windows)]
pub use live::collect;

#[cfg(windows)]
mod live {
    use std::collections::HashSet;
    use std::io;

    use winreg::enums::{
        HKEY_LOCAL_MACHINE, HKEY_USERS, KEY_READ, KEY_WOW64_32KEY, KEY_WOW64_64KEY,
    };
    use winreg::RegKey;

    use super::super::command::{self, Ran};
    use super::super::{dedup_processes, Inventory};
    use super::*;

    const UNINSTALL: &str = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall";
    const VALUES: [&str; 5] = [
        "DisplayName",
        "DisplayVersion",
        "Publisher",
        "SystemComponent",
        "WindowsInstaller",
    ];

    pub fn collect() -> Inventory {
        let mut inv = Inventory::empty(OsFamily::Windows);
        os(&mut inv);
        uninstall_keys(&mut inv);
        processes(&mut inv);
        antivirus(&mut inv);
        inv
    }

    fn os(inv: &mut Inventory) {
        let hklm = RegKey::predef(HKEY_LOCAL_MACHINE);
        match hklm.open_subkey("SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion") {
            Ok(k) => {
                let product: Option<String> = k.get_value("ProductName").ok();
                let build: Option<String> = k.get_value("CurrentBuildNumber").ok();
                let ubr: Option<u32> = k.get_value("UBR").ok();
                inv.os = windows_os(product.as_deref(), build.as_deref(), ubr);
            }
            Err(e) => inv.warn("os", format!("cannot open CurrentVersion: {e}")),
        }
    }

    fn uninstall_keys(inv: &mut Inventory) {
        let mut found = Vec::new();
        // The 64-bit view, and the 32-bit (WOW6432Node) view.
        for flags in [KEY_READ | KEY_WOW64_64KEY, KEY_READ | KEY_WOW64_32KEY] {
            match RegKey::predef(HKEY_LOCAL_MACHINE).open_subkey_with_flags(UNINSTALL, flags) {
                Ok(key) => read_uninstall(&key, flags, &mut found, inv),
                Err(e) => inv.warn("registry", format!("cannot open HKLM\\{UNINSTALL}: {e}")),
            }
        }
        // Per-user installs. A scheduled task runs as SYSTEM, whose HKCU is
        // not the person's: read every loaded user hive under HKEY_USERS
        // (the users who are logged on), which includes our own HKCU.
        let users = RegKey::predef(HKEY_USERS);
        for sid in users.enum_keys().flatten() {
            if sid.ends_with("_Classes") {
                continue;
            }
            let path = format!("{sid}\\{UNINSTALL}");
            match users.open_subkey_with_flags(&path, KEY_READ) {
                Ok(key) => read_uninstall(&key, KEY_READ, &mut found, inv),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => inv.warn("registry", format!("cannot open HKU\\{path}: {e}")),
            }
        }
        // On 32-bit Windows both views are the same key.
        let mut seen = HashSet::new();
        found.retain(|s: &Software| seen.insert(format!("{s:?}")));
        inv.software.extend(found);
    }

    fn read_uninstall(key: &RegKey, flags: u32, out: &mut Vec<Software>, inv: &mut Inventory) {
        for name in key.enum_keys() {
            let name = match name {
                Ok(n) => n,
                Err(e) => {
                    inv.warn("registry", format!("cannot list uninstall keys: {e}"));
                    return;
                }
            };
            let sub = match key.open_subkey_with_flags(&name, flags) {
                Ok(s) => s,
                Err(e) => {
                    inv.warn("registry", format!("cannot open uninstall key {name}: {e}"));
                    continue;
                }
            };
            let mut values = RegKeyValues {
                path: name.clone(),
                values: Vec::new(),
            };
            for v in VALUES {
                if let Ok(s) = sub.get_value::<String, _>(v) {
                    values.values.push((v.to_string(), RegData::Sz(s)));
                } else if let Ok(n) = sub.get_value::<u32, _>(v) {
                    values.values.push((v.to_string(), RegData::Dword(n)));
                }
            }
            if let Some(s) = uninstall_entry(&name, &values) {
                out.push(s);
            }
        }
    }

    fn processes(inv: &mut Inventory) {
        match command::run("tasklist", &["/FO", "CSV", "/NH"]) {
            Ran::Output { stdout, .. } => match parse_tasklist_csv(&stdout) {
                Ok(mut ps) => {
                    dedup_processes(&mut ps);
                    inv.processes = ps;
                }
                Err(e) => inv.warn("processes", format!("unexpected tasklist output, {e}")),
            },
            Ran::Absent => inv.warn("processes", "tasklist is missing"),
            Ran::Failed(m) => inv.warn("processes", m),
        }
    }

    fn antivirus(inv: &mut Inventory) {
        let script = powershell_encoded(SECURITY_CENTER_SCRIPT);
        let args = ["-NoProfile", "-NonInteractive", "-EncodedCommand", &script];
        match command::run("powershell.exe", &args) {
            Ran::Output { stdout, .. } => match parse_security_center_json(&stdout) {
                Ok(p) => inv.security_products = p,
                Err(e) => inv.warn("security-center", e),
            },
            Ran::Absent => inv.warn("security-center", "powershell.exe is missing"),
            Ran::Failed(m) => inv.warn("security-center", m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_without_display_name() {
        let key = |values: Vec<(&str, RegData)>| RegKeyValues {
            path: String::new(),
            values: values
                .into_iter()
                .map(|(n, d)| (n.to_string(), d))
                .collect(),
        };
        let hidden = key(vec![("SystemComponent", RegData::Dword(1))]);
        assert_eq!(uninstall_entry("{X}", &hidden), None);
        assert_eq!(uninstall_entry("IE40", &key(vec![])), None);
        let named_by_key = key(vec![("Publisher", RegData::Sz("AO Kaspersky Lab".into()))]);
        let s = uninstall_entry("KES", &named_by_key).unwrap();
        assert_eq!(
            (s.name.as_str(), s.vendor.as_deref()),
            ("KES", Some("AO Kaspersky Lab"))
        );
        let msi = key(vec![
            ("DisplayName", RegData::ExpandSz("Agent".into())),
            ("SystemComponent", RegData::Dword(1)),
            ("WindowsInstaller", RegData::Dword(1)),
        ]);
        assert_eq!(
            uninstall_entry("{G}", &msi).unwrap().source,
            Some(SoftwareSource::Msi)
        );
    }

    #[test]
    fn product_state_bits() {
        assert_eq!(decode_product_state(397568), (true, true)); // 0x061100
        assert_eq!(decode_product_state(393472), (false, true)); // 0x060100
        assert_eq!(decode_product_state(397584), (true, false)); // 0x061110
        assert_eq!(decode_product_state(266240), (true, true)); // 0x041000
    }

    #[test]
    fn security_center_json_as_object_array_or_nothing() {
        let one = r#"{"displayName":"Windows Defender","productState":397568}"#;
        let p = parse_security_center_json(one).unwrap();
        assert_eq!(p[0].name, "Windows Defender");
        assert_eq!((p[0].enabled, p[0].up_to_date), (Some(true), Some(true)));
        assert_eq!(p[0].kind, Some(SecurityProductKind::Antivirus));
        assert_eq!(parse_security_center_json("  \r\n").unwrap(), vec![]);
        assert!(parse_security_center_json("[{\"productState\":1}]").is_err());
        assert!(parse_security_center_json("\"text\"").is_err());
        assert!(parse_security_center_json("{").is_err());
    }

    #[test]
    fn encoded_command_is_base64_of_utf16le() {
        // `powershell -EncodedCommand ZABpAHIA` runs `dir`.
        assert_eq!(powershell_encoded("dir"), "ZABpAHIA");
        assert!(SECURITY_CENTER_SCRIPT.contains("ConvertTo-Json"));
    }

    #[test]
    fn tasklist_csv_gives_image_names() {
        let out = "\"System Idle Process\",\"0\",\"Services\",\"0\",\"8 K\"\r\n\
                   \"avp.exe\",\"4120\",\"Services\",\"0\",\"152,344 K\"\r\n\
                   \"odd \"\"name\"\".exe\",\"1\",\"Console\",\"1\",\"1 K\"\r\n";
        let ps = parse_tasklist_csv(out).unwrap();
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["System Idle Process", "avp.exe", "odd \"name\".exe"]
        );
        assert!(parse_tasklist_csv("INFO: No tasks are running\r\n").is_err());
    }

    #[test]
    fn windows_11_is_named_from_its_build() {
        let os = windows_os(Some("Windows 10 Pro"), Some("22631"), Some(4169));
        assert_eq!(os.name.as_deref(), Some("Windows 11 Pro"));
        assert_eq!(os.version.as_deref(), Some("10.0.22631.4169"));
        let os = windows_os(Some("Windows 10 Enterprise"), Some("19045"), None);
        assert_eq!(os.name.as_deref(), Some("Windows 10 Enterprise"));
        assert_eq!(os.version.as_deref(), Some("10.0.19045"));
    }
}
