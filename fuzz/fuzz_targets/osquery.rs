//! The osquery JSON import (`posture-agent --from-osquery`) on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_agent::from_osquery;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(inventory) = from_osquery(text) {
        for s in &inventory.software {
            assert!(!s.name.is_empty());
        }
        // An import with warnings is never a complete inventory.
        assert!(inventory.warnings.is_empty() || !inventory.complete);
    }
});
