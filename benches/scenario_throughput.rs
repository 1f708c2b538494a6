//! Throughput of the simulator on one scenario: seeds per second and
//! simulated events per second, on the default (SQLite) store.
//!
//! `cargo bench --bench scenario_throughput`; criterion prints the median
//! time per batch and the throughput in elements/s (seeds or events), the
//! time the oracle alone takes to judge the same batch, the bare-madsim
//! baseline (`baseline/requests`, benches/baseline/mod.rs), and at the end a
//! table of each scenario's wall time per store request and per event as a
//! ratio to the baseline's per request (issue 14's target: at most 1.5).
//! Every batch runs its seeds one after another, on one core.

mod baseline;
mod timing;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haywire_sim::{judge, oracle_params, run, RunConfig, Stats};

/// Seeds per measured batch.
const BATCH: u64 = 8;

fn batch(name: &str) -> u64 {
    batch_stats(name).iter().map(|s| s.events).sum()
}

fn batch_stats(name: &str) -> Vec<Stats> {
    let s = haywire_scenarios::by_name(name).expect("scenario exists");
    (0..BATCH).map(|seed| run(s, seed, &RunConfig::default()).expect("world builds").stats).collect()
}

fn baseline_batch() -> u64 {
    (0..BATCH).map(baseline::seed).sum()
}

/// The simulator alone: the same node layout and message pattern, no core.
fn bare_madsim(c: &mut Criterion) {
    let requests = baseline_batch();
    assert_eq!(requests, BATCH * baseline::REPLICAS * baseline::REQUESTS_PER_REPLICA, "every baseline CAS applied");
    let mut g = c.benchmark_group("baseline/requests");
    g.sample_size(10);
    g.throughput(Throughput::Elements(requests));
    g.bench_function(format!("{requests} store requests"), |b| b.iter(baseline_batch));
    g.finish();
}

/// The ratio table: medians of five batches each, measured here, one after
/// another, so that the scenarios and the baseline share one machine state.
fn ratios(_: &mut Criterion) {
    const REPS: usize = 5;
    // `cargo bench -- <filter>` runs the table only when the filter names it.
    if !timing::wanted("ratios") {
        return;
    }
    // Runs are deterministic: every timed run returns the same counts.
    let mut base_requests = 0;
    let base = timing::median(REPS, || base_requests = baseline_batch());
    let base_us = base.as_secs_f64() * 1e6 / base_requests as f64;
    println!("\nwall time per store request and per event, as a ratio to bare madsim's per request ({base_us:.2} µs)");
    println!("{:<12} {:>10} {:>10} {:>9} {:>10} {:>9} {:>12}", "scenario", "requests", "µs/req", "÷ base", "µs/event", "÷ base", "sim/wall");
    for name in ["chaos", "idle-churn", "steady", "cron-edits"] {
        let mut stats = Vec::new();
        let t = timing::median(REPS, || stats = batch_stats(name));
        let requests = stats.iter().map(|s| s.store_requests).sum::<u64>() as f64;
        let events = stats.iter().map(|s| s.events).sum::<u64>() as f64;
        let sim_s = stats.iter().map(|s| s.sim_ms).sum::<u64>() as f64 / 1e3;
        let (per_req, per_event) = (t.as_secs_f64() * 1e6 / requests, t.as_secs_f64() * 1e6 / events);
        println!(
            "{name:<12} {requests:>10} {per_req:>10.2} {:>9.2} {per_event:>10.2} {:>9.2} {:>11.0}x",
            per_req / base_us,
            per_event / base_us,
            sim_s / t.as_secs_f64()
        );
    }
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

criterion_group!(benches, bare_madsim, throughput, oracle_share, ratios);
criterion_main!(benches);
