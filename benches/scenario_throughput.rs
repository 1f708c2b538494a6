//! Throughput of the simulator on one scenario: seeds per second and
//! simulated events per second, on the default (SQLite) store.
//!
//! `cargo bench --bench scenario_throughput`; criterion prints the median
//! time per batch and the throughput in elements/s (seeds or events).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haywire_sim::{run, RunConfig};

/// Seeds per measured batch.
const BATCH: u64 = 8;

fn batch(name: &str) -> u64 {
    let s = haywire_scenarios::by_name(name).expect("scenario exists");
    (0..BATCH).map(|seed| run(s, seed, &RunConfig::default()).expect("world builds").stats.events).sum()
}

fn throughput(c: &mut Criterion) {
    for name in ["chaos", "idle-churn", "steady"] {
        let events = batch(name);
        let mut g = c.benchmark_group(format!("{name}/seeds"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(BATCH));
        g.bench_function(format!("{BATCH} seeds"), |b| b.iter(|| batch(name)));
        g.finish();
        let mut g = c.benchmark_group(format!("{name}/events"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(events));
        g.bench_function(format!("{events} events"), |b| b.iter(|| batch(name)));
        g.finish();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
