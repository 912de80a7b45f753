//! The config loader (TOML parse, validation, compilation) on arbitrary text.
//! The config sits in a scratch directory next to the fixture PKI of the
//! config tests (`pki/ca.pem`, `pki/server.pem`, ...) and a catalogue include
//! `extra.toml`, so configs that name them get past the file checks.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use posture_core::config::{load_str, summary};

fn config_path() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/config");
        let dir = std::env::temp_dir().join("posture-gate-fuzz-config");
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki).expect("scratch dir");
        for entry in std::fs::read_dir(fixtures.join("pki")).expect("fixture pki") {
            let entry = entry.expect("fixture pki entry");
            std::fs::copy(entry.path(), pki.join(entry.file_name())).expect("copy pki");
        }
        std::fs::copy(
            fixtures.join("extra-catalogue.toml"),
            dir.join("extra.toml"),
        )
        .expect("copy catalogue");
        dir.join("gate.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = config_path();
    match load_str(text, path) {
        Ok(snapshot) => {
            let _ = summary(&snapshot, time::macros::date!(2026 - 06 - 01));
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without saying why");
            let lines = text.lines().count().max(1);
            for e in &errors.0 {
                // Errors in the config itself point into it (line 0: the
                // file as a whole).
                if e.file == path {
                    assert!(e.line <= lines + 1, "line {} of {lines}: {e}", e.line);
                }
                let _ = e.to_string();
            }
        }
    }
});
