//! The agent's side of the worked example in docs/attestation-v1.md: the
//! document's own `posture-agent token` command, run on the document's
//! inventory with a device of the test PKI, makes exactly the claims the
//! document shows (apart from the time and the host name), under the
//! header it shows. That the example token verifies is tests/it/docs.rs.

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/attestation-v1.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced block right after the line `<!-- example: {marker} -->`.
fn example(doc: &str, marker: &str) -> String {
    let tag = format!("<!-- example: {marker} -->");
    let mut lines = doc.lines().skip_while(|l| l.trim() != tag).skip(1);
    let fence = lines.next().unwrap_or_else(|| panic!("no block {tag}"));
    assert!(fence.starts_with("```"), "{tag} is not followed by a fence");
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    body.join("\n") + "\n"
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

#[test]
fn the_documented_agent_command_makes_the_documented_claims() {
    let doc = doc();
    let shown: Value = serde_json::from_str(&example(&doc, "claims")).unwrap();
    let nonce = shown["eat_nonce"]
        .as_str()
        .expect("the example has a nonce");

    let dir = tempfile::tempdir().unwrap();
    let pki = posture_testkit::TestPki::new(&dir.path().join("pki"));
    let device = pki.device("lt-0427", "Leverancier Voorbeeld BV");
    std::fs::copy(&device.cert_path, dir.path().join("device.pem")).unwrap();
    std::fs::copy(&device.key_path, dir.path().join("device.key")).unwrap();
    std::fs::write(
        dir.path().join("inventory.json"),
        example(&doc, "inventory.json"),
    )
    .unwrap();

    let commands = example(&doc, "agent command");
    let line = commands
        .lines()
        .find(|l| l.starts_with("posture-agent token "))
        .expect("a posture-agent token command");
    let (command, redirect) = line.split_once(" > ").expect("the token goes to a file");
    assert_eq!(redirect.trim(), "token.jwt");
    let mut words = command.split_whitespace();
    assert_eq!(words.next(), Some("posture-agent"));
    let args: Vec<String> = words
        .map(|w| {
            if w == "\"$NONCE\"" {
                nonce.to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    assert!(args.iter().any(|a| a == nonce), "{line}");
    let out = Command::new(env!("CARGO_BIN_EXE_posture-agent"))
        .args(&args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = token.trim().split('.').collect();
    assert_eq!(parts.len(), 3);

    let mut made = decode_part(parts[1]);
    let mut expected = shown.clone();
    for claims in [&mut made, &mut expected] {
        let object = claims.as_object_mut().unwrap();
        assert!(object.remove("iat").is_some_and(|t| t.is_i64()));
        assert!(object.remove("sub").is_some_and(|t| t.is_string()));
    }
    assert_eq!(made, expected);

    let header = decode_part(parts[0]);
    let shown_header: Value = serde_json::from_str(&example(&doc, "header")).unwrap();
    assert_eq!(header["alg"], shown_header["alg"]);
    assert_eq!(header["typ"], shown_header["typ"]);
    assert_eq!(
        header.as_object().unwrap().len(),
        shown_header.as_object().unwrap().len()
    );
    assert_eq!(header["x5c"].as_array().map(Vec::len), Some(2));
}
