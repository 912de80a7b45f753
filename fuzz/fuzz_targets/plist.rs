//! macOS `Info.plist` parsing (XML and binary plists) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_agent::macos::parse_info_plist;

fuzz_target!(|data: &[u8]| {
    if let Ok(software) = parse_info_plist(data, "Fuzz") {
        assert!(!software.name.is_empty());
    }
});
