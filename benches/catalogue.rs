//! Matching cost per inventory item: 10,000 mixed items (realistic clean
//! software, processes and security products, about 2% Kaspersky) against
//! the built-in catalogue, on one core. Criterion's throughput line gives
//! items per second; the time per iteration divided by 10,000 is the cost
//! per item (target: under 1 µs).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use posture_core::attestation::claims::{Process, SecurityProduct, Software};
use posture_core::catalogue::{Catalogue, ItemRef, Matcher};

const ITEMS: usize = 10_000;

const CLEAN_NAMES: &[(&str, &str)] = &[
    ("Google Chrome", "Google LLC"),
    ("Mozilla Firefox (x64 nl)", "Mozilla"),
    (
        "Microsoft 365 Apps for enterprise - nl-nl",
        "Microsoft Corporation",
    ),
    (
        "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.42.34433",
        "Microsoft Corporation",
    ),
    ("ESET Endpoint Security", "ESET, spol. s r.o."),
    ("McAfee Endpoint Security Platform", "McAfee, LLC"),
    ("CrowdStrike Windows Sensor", "CrowdStrike, Inc."),
    ("7-Zip 24.08 (x64)", "Igor Pavlov"),
    ("Notepad++ (64-bit x64)", "Notepad++ Team"),
    ("Python 3.12.8 (64-bit)", "Python Software Foundation"),
    ("Zoom Workplace", "Zoom Video Communications, Inc."),
    ("Адаптер Яндекс Браузер", "ООО «ЯНДЕКС»"),
    ("Ｍｉｃｒｏｓｏｆｔ Ｅｄｇｅ", "Microsoft Corporation"),
];

const KASPERSKY: &[(&str, &str)] = &[
    (
        "Kaspersky Endpoint Security for Windows",
        "AO Kaspersky Lab",
    ),
    (
        "Kaspersky Security Center Network Agent",
        "AO Kaspersky Lab",
    ),
    ("Антивирус Касперского", "АО «Лаборатория Касперского»"),
];

fn dpkg_items() -> Vec<Software> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/catalogue/debian-dpkg-query.tsv"
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let package = cols.next()?;
            let version = cols.next().map(str::to_owned);
            let maintainer = cols.next().map(str::to_owned);
            Some(Software {
                name: package.into(),
                id: Some(package.into()),
                version,
                vendor: maintainer,
                ..Software::default()
            })
        })
        .collect()
}

enum Owned {
    Software(Software),
    Process(Process),
    SecurityProduct(SecurityProduct),
}

fn items() -> Vec<Owned> {
    let dpkg = dpkg_items();
    (0..ITEMS)
        .map(|i| match i % 50 {
            0 => {
                let (name, vendor) = KASPERSKY[(i / 50) % KASPERSKY.len()];
                Owned::Software(Software {
                    name: name.into(),
                    vendor: Some(vendor.into()),
                    ..Software::default()
                })
            }
            1..=5 => Owned::Process(Process {
                name: [
                    "chrome.exe",
                    "svchost.exe",
                    "MsMpEng.exe",
                    "avp.exe",
                    "code",
                ][i % 5]
                    .into(),
                path: Some(format!("C:\\Program Files\\App{i}\\bin.exe")),
            }),
            6 => Owned::SecurityProduct(SecurityProduct {
                name: "Microsoft Defender Antivirus".into(),
                vendor: Some("Microsoft Corporation".into()),
                kind: None,
                enabled: Some(true),
                up_to_date: Some(true),
            }),
            7..=25 if !dpkg.is_empty() => Owned::Software(dpkg[i % dpkg.len()].clone()),
            _ => {
                let (name, vendor) = CLEAN_NAMES[i % CLEAN_NAMES.len()];
                Owned::Software(Software {
                    name: format!("{name} {i}"),
                    vendor: Some(vendor.into()),
                    id: Some(format!("{{{i:08X}-D564-463C-AFF1-A69D9E530F96}}")),
                    signer: Some(vendor.into()),
                    ..Software::default()
                })
            }
        })
        .collect()
}

fn match_10k(c: &mut Criterion) {
    let catalogue = match Catalogue::builtin() {
        Ok(c) => c,
        Err(e) => panic!("built-in catalogue: {e}"),
    };
    let matcher = Matcher::new(&catalogue);
    let items = items();
    let refs: Vec<ItemRef<'_>> = items
        .iter()
        .map(|o| match o {
            Owned::Software(s) => ItemRef::Software(s),
            Owned::Process(p) => ItemRef::Process(p),
            Owned::SecurityProduct(p) => ItemRef::SecurityProduct(p),
        })
        .collect();
    let mut out = Vec::with_capacity(ITEMS);
    let mut group = c.benchmark_group("catalogue");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.bench_function("match_10k_mixed_items", |b| {
        b.iter(|| {
            out.clear();
            for item in &refs {
                matcher.match_item(black_box(*item), &mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
    out.clear();
    for item in &refs {
        matcher.match_item(*item, &mut out);
    }
    println!("catalogue bench: {} of {ITEMS} items matched", out.len());
}

criterion_group!(benches, match_10k);
criterion_main!(benches);
