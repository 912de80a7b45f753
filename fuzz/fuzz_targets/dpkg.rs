//! The dpkg status file parser (`/var/lib/dpkg/status`) on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_agent::dpkg::parse_dpkg_status;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let software = match parse_dpkg_status(text) {
        Ok(s) => s,
        Err(e) => {
            assert!(e.line >= 1, "error at line {}", e.line);
            e.partial
        }
    };
    for s in &software {
        assert!(!s.name.is_empty());
    }
});
