//! Full verification of a realistic token: 300 software items, x5c [leaf,
//! device CA] to a root anchor, bound to the client certificate, no nonce.
//! "warm": the default verifier, whose chain cache holds this x5c after the
//! first call. "cold": chain cache off, every call validates the chain (two
//! ECDSA verifications) before the JWS signature (a third).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use posture_gate::attestation::{NonceCheck, Verifier, VerifierSettings};
use posture_gate::pki::Pki;
use posture_gate::test_support::{claims_with_inventory, now, TokenBuilder};

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
