//! Micro-benchmarks of the two per-message costs of ingest done in Rust: sealing a body and
//! normalising a phone number. Each has a baseline in the same run (copying the same bytes;
//! parsing an already-E.164 number) so figures read as ratios.

use criterion::{Criterion, criterion_group, criterion_main};
use sincro_core::phone;
use sincro_core::seal::{Purpose, Sealer};
use std::hint::black_box;

fn sealing(c: &mut Criterion) {
    let sealer = Sealer::from_env_value(&Sealer::generate_env_value("b1")).unwrap();
    let body = "a message body of a typical length, about one hundred and twenty characters long, with some accents: olá, ação.";
    let sealed = sealer.seal_str(Purpose::MessageBody, body);
    let mut g = c.benchmark_group("seal");
    g.bench_function("baseline_copy", |b| b.iter(|| black_box(body.to_string())));
    g.bench_function("seal_120B", |b| {
        b.iter(|| black_box(sealer.seal_str(Purpose::MessageBody, black_box(body))))
    });
    g.bench_function("open_120B", |b| {
        b.iter(|| {
            black_box(
                sealer
                    .open_str(Purpose::MessageBody, black_box(&sealed))
                    .unwrap(),
            )
        })
    });
    g.finish();
}

fn phones(c: &mut Criterion) {
    let mut g = c.benchmark_group("phone");
    g.bench_function("baseline_e164", |b| {
        b.iter(|| black_box(phone::normalize(black_box("+5511987654321"), None).unwrap()))
    });
    g.bench_function("national_br", |b| {
        b.iter(|| black_box(phone::normalize(black_box("(11) 98765-4321"), Some("BR")).unwrap()))
    });
    g.bench_function("wa_id_digits_br", |b| {
        b.iter(|| black_box(phone::normalize(black_box("5511987654321"), Some("BR")).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, sealing, phones);
criterion_main!(benches);
