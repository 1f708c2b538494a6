//! Throughput of the simulator on one scenario: seeds per second and
//! simulated events per second, on the default (SQLite) store.
//!
//! `cargo bench --bench scenario_throughput`; criterion prints the median
//! time per batch and the throughput in elements/s (seeds or events), and
//! the time the oracle alone takes to judge the same batch.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haywire_sim::{judge, oracle_params, run, RunConfig};

/// Seeds per measured batch.
const BATCH: u64 = 8;

fn batch(name: &str) -> u64 {
    let s = haywire_scenarios::by_name(name).expect("scenario exists");
    (0..BATCH).map(|seed| run(s, seed, &RunConfig::default()).expect("world builds").stats.events).sum()
}

fn throughput(c: &mut Criterion) {
    for name in ["chaos", "idle-churn", "cron-edits", "steady"] {
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

/// The oracle's share of a run: judging the recorded traces of a batch
/// again (`judge`, the same checks the live run made, ticks included)
/// against running the batch. Compare `<scenario>/oracle` with
/// `<scenario>/seeds` above.
fn oracle_share(c: &mut Criterion) {
    for name in ["chaos", "idle-churn", "cron-edits"] {
        let s = haywire_scenarios::by_name(name).expect("scenario exists");
        let runs: Vec<_> = (0..BATCH).map(|seed| run(s, seed, &RunConfig::default()).expect("world builds")).collect();
        let mut g = c.benchmark_group(format!("{name}/oracle"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(BATCH));
        g.bench_function(format!("judge {BATCH} traces"), |b| {
            b.iter(|| {
                runs.iter()
                    .filter(|o| judge(oracle_params(&o.options), o.options.replicas, &o.trace.events).is_some())
                    .count()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, throughput, oracle_share);
criterion_main!(benches);
