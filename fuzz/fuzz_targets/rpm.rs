//! The `rpm -qa --queryformat` output parser on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_agent::rpm::parse_rpm_qa;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(software) = parse_rpm_qa(text) {
        for s in &software {
            assert!(!s.name.is_empty());
        }
    }
});
