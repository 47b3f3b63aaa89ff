//! How long the linearizability checker takes on generated (linearizable)
//! histories of various shapes: medians over several seeds. Run with
//! `cargo bench -p wren-tests --bench checker`.

use std::time::{Duration, Instant};

use wren_tests::linearizable::generate::{Shape, generate};
use wren_tests::linearizable::{Budget, Jobs, check};
use wren_tests::rng::Rng;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let shape = |clients, keys, ops| Shape { clients, keys, ops };
    let shapes = [
        ("1 key, 4 clients, 1k ops", shape(4, 1, 1_000)),
        ("8 keys, 8 clients, 10k ops", shape(8, 8, 10_000)),
        ("16 keys, 16 clients, 50k ops", shape(16, 16, 50_000)),
        ("1 key, 8 clients, 5k ops", shape(8, 1, 5_000)),
        ("1 key, 16 clients, 5k ops", shape(16, 1, 5_000)),
    ];
    let runs = 5;
    println!("| history | median | slowest | verdicts |");
    println!("| --- | --- | --- | --- |");
    for (name, shape) in shapes {
        let mut times = Vec::new();
        let mut ok = 0;
        for seed in 0..runs {
            let h = generate(&mut Rng::new(seed), shape);
            let start = Instant::now();
            let v = check(&Jobs, &h, Budget::default());
            times.push(start.elapsed());
            if v.is_linearizable() {
                ok += 1;
            }
        }
        let slowest = times.iter().max().copied().unwrap_or_default();
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {ok}/{runs} linearizable |",
            median(times.clone()).as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3
        );
    }
}
