//! Full verification of a realistic token: 300 software items, x5c [leaf,
//! device CA] to a root anchor, bound to the client certificate, no nonce.
//! "warm": the default verifier, whose chain cache holds this x5c after the
//! first call. "cold": chain cache off, every call validates the chain (two
//! ECDSA verifications) before the JWS signature (a third).
//!
//! The group `parts` times the steps of a warm verification on their own:
//! what no implementation can skip (SHA-256 of the signing input inside the
//! ECDSA check, base64url of the payload) and the claims parse, so the note
//! of a run can say how much of the total is left for everything else.

use std::hint::black_box;

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use posture_core::attestation::Claims;
use posture_core::attestation::{NonceCheck, Verifier, VerifierSettings};
use posture_testkit::pki::Pki;
use posture_testkit::token::{claims_with_inventory, now, TokenBuilder};
use x509_parser::prelude::{FromDer, X509Certificate};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let pki = Pki::generate().expect("development PKI");
    let device = pki
        .issue_device("lt-042", "Supplier BV", Some("IT"))
        .expect("device certificate");
    let token = TokenBuilder::new(&device)
        .claims(claims_with_inventory(now(), 300))
        .build()
        .expect("token");
    let anchors = [pki.root_cert_der().clone()];
    let client = device.cert_der.as_ref();
    let warm = Verifier::new(&anchors, VerifierSettings::default()).expect("verifier");
    let cold =
        Verifier::with_chain_cache(&anchors, VerifierSettings::default(), 0).expect("verifier");
    let t = now();
    for v in [&warm, &cold] {
        v.verify(token.as_bytes(), Some(client), t, NonceCheck::Skip)
            .expect("the benchmark token verifies");
    }
    println!("token: {} bytes", token.len());

    let mut group = c.benchmark_group("verify_300_items_2_cert_chain");
    group.throughput(Throughput::Elements(1));
    for (name, v) in [("warm_chain_cache", &warm), ("cold_no_cache", &cold)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                v.verify(
                    black_box(token.as_bytes()),
                    black_box(Some(client)),
                    t,
                    NonceCheck::Skip,
                )
            })
        });
    }
    group.finish();

    let (_, leaf) = X509Certificate::from_der(client).expect("device certificate parses");
    let key = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_FIXED,
        leaf.public_key().subject_public_key.data.to_vec(),
    );
    let mut parts = token.rsplitn(2, '.');
    let signature = URL_SAFE_NO_PAD
        .decode(parts.next().expect("signature"))
        .expect("base64url");
    let signing_input = parts.next().expect("signing input").as_bytes();
    let payload_b64 = signing_input.split(|b| *b == b'.').nth(1).expect("payload");
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).expect("base64url");
    println!(
        "signing input: {} bytes, claims JSON: {} bytes",
        signing_input.len(),
        payload.len()
    );

    let mut group = c.benchmark_group("parts");
    group.bench_function("es256_signature_incl_sha256", |b| {
        b.iter(|| {
            key.verify(black_box(signing_input), black_box(&signature))
                .expect("verifies")
        })
    });
    group.bench_function("sha256_signing_input", |b| {
        b.iter(|| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(signing_input)))
    });
    group.bench_function("base64url_payload", |b| {
        b.iter(|| {
            base64_simd::URL_SAFE_NO_PAD
                .decode_to_vec(black_box(payload_b64))
                .expect("decodes")
        })
    });
    // As the verifier parses it: UTF-8 checked once for the whole text.
    let json = std::str::from_utf8(&payload).expect("UTF-8");
    group.bench_function("claims_json", |b| {
        b.iter(|| serde_json::from_str::<Claims>(black_box(json)).expect("parses"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
