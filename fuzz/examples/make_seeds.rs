//! Makes the fixture PKI (once: existing fixtures are kept) and the token and
//! claims seeds signed with it. Run from `fuzz/`:
//! `cargo run --example make_seeds`. `cargo run --example make_seeds --
//! cert_header` writes only the certificate-header seeds (from the fixture
//! device chain), leaving the signed seeds as they are.

use std::fs;
use std::path::Path;

use posture_core::attestation::claims::{Software, SoftwareSource};
use posture_core::attestation::sign::{sign_parts, sign_token};
use posture_core::attestation::NonceCheck;
use posture_gate::pki::{DeviceSpec, Pki};
use posture_gate_fuzz::{fixed_now, fixture, OneNonce, NONCE};
use posture_testkit::token::claims_with_inventory;
use time::{Duration, OffsetDateTime};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = dir.join("fixtures");
    if fs::metadata(fixtures.join("ca.pem")).map_or(true, |m| m.len() == 0) {
        make_pki(&fixtures);
        eprintln!("fixture PKI written; run again to write the seeds");
        return;
    }
    let f = fixture();
    if std::env::args().nth(1).as_deref() == Some("cert_header") {
        cert_header_seeds(&dir.join("corpus/cert_header"), &f.chain);
        return;
    }
    let now = fixed_now();

    let mut payloads: Vec<(&str, Vec<u8>)> = Vec::new();
    let json = |c: &posture_core::attestation::Claims| serde_json::to_vec(c).unwrap();
    payloads.push(("valid", json(&claims_with_inventory(now - 10, 2))));
    let mut c = claims_with_inventory(now - 10, 3);
    c.eat_nonce = Some(NONCE.to_owned());
    c.exp = Some(now + 300);
    payloads.push(("nonce-exp", json(&c)));
    let mut c = claims_with_inventory(now, 1);
    c.software.push(Software {
        name: "Kaspersky Endpoint Security".into(),
        vendor: Some("AO Kaspersky Lab".into()),
        version: Some("12.3".into()),
        id: Some("kes".into()),
        signer: None,
        source: Some(SoftwareSource::Msi),
    });
    payloads.push(("kaspersky", json(&c)));
    payloads.push(("stale", json(&claims_with_inventory(now - 100_000, 1))));
    payloads.push((
        "minimal",
        format!(
            r#"{{"eat_profile":"urn:posture-gate:attestation:v1","iat":{now}.5,"os":{{"family":"other"}},"software":[]}}"#
        )
        .into_bytes(),
    ));

    let claims_dir = dir.join("corpus/claims_parse");
    let token_dir = dir.join("corpus/token_verify");
    fs::create_dir_all(&claims_dir).unwrap();
    fs::create_dir_all(&token_dir).unwrap();
    let x5c: Vec<String> = f
        .chain
        .iter()
        .map(|c| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(c.as_ref())
        })
        .collect();
    for (name, payload) in &payloads {
        fs::write(claims_dir.join(name), payload).unwrap();
        let header = serde_json::json!({ "alg": "ES256", "typ": "eat+jwt", "x5c": x5c });
        let token = sign_parts(&serde_json::to_vec(&header).unwrap(), payload, &f.key).unwrap();
        // First byte: mode (bit 0 present the leaf as client cert, bit 1 check nonces).
        let verdict = f.verifier.verify(
            token.as_bytes(),
            Some(f.chain[0].as_ref()),
            now,
            NonceCheck::Check(&OneNonce),
        );
        eprintln!("{name}: {:?}", verdict.map(|v| v.valid_until));
        for mode in [0u8, 3] {
            let mut seed = vec![mode];
            seed.extend_from_slice(token.as_bytes());
            fs::write(token_dir.join(format!("{name}-{mode}")), seed).unwrap();
        }
    }
    let token = sign_token(&claims_with_inventory(now, 1), &f.chain[..1], &f.key).unwrap();
    let mut seed = vec![1u8];
    seed.extend_from_slice(token.as_bytes());
    fs::write(token_dir.join("leaf-only-1"), seed).unwrap();
    let header = serde_json::json!({ "alg": "none", "typ": "eat+jwt", "x5c": x5c });
    let none = format!(
        "{}.{}.",
        b64url(&serde_json::to_vec(&header).unwrap()),
        b64url(&payloads[0].1)
    );
    fs::write(
        token_dir.join("alg-none-0"),
        [b"\0".as_slice(), none.as_bytes()].concat(),
    )
    .unwrap();
}

/// The fixture device chain (leaf, device CA) as each proxy sends it, plus a
/// two-element XFCC whose last element has no certificate.
fn cert_header_seeds(dir: &Path, chain: &[rustls_pki_types::CertificateDer<'static>]) {
    use base64::Engine;
    use sha2::Digest;
    let b64 = |c: &rustls_pki_types::CertificateDer<'_>| {
        base64::engine::general_purpose::STANDARD.encode(c.as_ref())
    };
    let pem = |certs: &[rustls_pki_types::CertificateDer<'static>]| -> String {
        certs
            .iter()
            .map(|c| {
                let body = b64(c);
                let lines: Vec<&str> = body
                    .as_bytes()
                    .chunks(64)
                    .map(|l| std::str::from_utf8(l).unwrap())
                    .collect();
                format!(
                    "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                    lines.join("\n")
                )
            })
            .collect()
    };
    // nginx's NGX_ESCAPE_URI_COMPONENT, which Envoy's URL-encoding matches here.
    let escape = |text: &str| -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let hash = hex_lower(&sha2::Sha256::digest(chain[0].as_ref()));
    let seeds = [
        ("nginx-leaf", escape(&pem(&chain[..1]))),
        ("nginx-chain", escape(&pem(chain))),
        ("caddy-leaf", b64(&chain[0])),
        (
            "traefik-chain",
            chain.iter().map(b64).collect::<Vec<_>>().join(","),
        ),
        (
            "envoy-cert",
            format!(
                "By=spiffe://cluster.local/ns/gate/sa/envoy;Hash={hash};Cert=\"{}\";Subject=\"CN=fuzz-device\";URI=",
                escape(&pem(&chain[..1]))
            ),
        ),
        (
            "envoy-chain-two-elements",
            format!(
                "By=spiffe://edge;URI=,Hash={hash};Cert=\"{}\";Chain=\"{}\";DNS=a.example;DNS=b.example",
                escape(&pem(&chain[..1])),
                escape(&pem(chain))
            ),
        ),
        (
            "envoy-last-without-cert",
            format!(
                "Hash={hash};Cert=\"{}\",By=spiffe://mesh;Hash={hash};Subject=\"\";URI=spiffe://mesh/ingress",
                escape(&pem(&chain[..1]))
            ),
        ),
    ];
    fs::create_dir_all(dir).unwrap();
    for (name, value) in seeds {
        fs::write(dir.join(name), value).unwrap();
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn make_pki(fixtures: &Path) {
    fs::create_dir_all(fixtures).unwrap();
    let now = OffsetDateTime::now_utc();
    let pki =
        Pki::generate_with_device_ca_validity(now - Duration::hours(1), now + Duration::days(3650))
            .unwrap();
    let mut spec = DeviceSpec::new("fuzz-device", "Fuzz BV");
    spec.ou = Some("IT".into());
    spec.not_before = now - Duration::hours(1);
    spec.not_after = now + Duration::days(3650);
    let device = pki.issue_device_with(spec).unwrap();
    let scratch = fixtures.join("scratch");
    let paths = pki.write(&scratch).unwrap();
    fs::copy(&paths.ca_cert, fixtures.join("ca.pem")).unwrap();
    let dev = device.write(&scratch.join("device")).unwrap();
    fs::copy(&dev.cert, fixtures.join("device-cert.pem")).unwrap();
    fs::copy(&dev.key, fixtures.join("device-key.pem")).unwrap();
    fs::remove_dir_all(&scratch).unwrap();
    // A day after issue: inside every validity above for ten years of runs.
    fs::write(
        fixtures.join("now"),
        format!("{}\n", (now + Duration::days(1)).unix_timestamp()),
    )
    .unwrap();
}
