//! Throughput of the simulator on one scenario: seeds per second and
//! simulated events per second, on the default (SQLite) store.
//!
//! `cargo bench --bench scenario_throughput`; criterion prints the median
//! time per batch and the throughput in elements/s (seeds or events), the
//! time the oracle alone takes to judge the same batch, the bare-madsim
//! baseline (`baseline/requests`, benches/baseline/mod.rs), and at the end a
//! table of each scenario's wall time per store request and per event as a
//! ratio to the baseline's per request (issue 14's target: at most 1.5),
//! and a second table that splits that cost: the same seeds on the
//! reference-model store (no SQLite, the same events) against the baseline
//! on a `BTreeMap`. Every batch runs its seeds one after another, on one
//! core.

mod baseline;
mod timing;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use baseline::Backend;
use haywire_sim::{judge, oracle_params, run, RunConfig, Stats, StoreKind};

/// Seeds per measured batch.
const BATCH: u64 = 8;

fn batch(name: &str) -> u64 {
    batch_stats(name, &RunConfig::default()).iter().map(|s| s.events).sum()
}

fn batch_stats(name: &str, config: &RunConfig) -> Vec<Stats> {
    let s = haywire_scenarios::by_name(name).expect("scenario exists");
    (0..BATCH).map(|seed| run(s, seed, config).expect("world builds").stats).collect()
}

fn baseline_batch(backend: Backend) -> u64 {
    (0..BATCH).map(|seed| baseline::seed(seed, backend)).sum()
}

/// The simulator alone: the same node layout and message pattern, no core;
/// its store on SQLite (the floor of the target), then on a `BTreeMap`.
fn bare_madsim(c: &mut Criterion) {
    let mut g = c.benchmark_group("baseline/requests");
    g.sample_size(10);
    for (backend, on) in [(Backend::Sqlite, ""), (Backend::BTreeMap, " on a BTreeMap")] {
        let requests = baseline_batch(backend);
        assert_eq!(requests, BATCH * baseline::REPLICAS * baseline::REQUESTS_PER_REPLICA, "every baseline CAS applied");
        g.throughput(Throughput::Elements(requests));
        g.bench_function(format!("{requests} store requests{on}"), |b| b.iter(|| baseline_batch(backend)));
    }
    g.finish();
}

/// One scenario's batch timed: the median wall time, and the batch's
/// counts (runs are deterministic: every timed run returns the same).
struct Timed {
    wall_s: f64,
    requests: f64,
    events: f64,
    sim_s: f64,
}

fn timed(reps: usize, name: &str, config: &RunConfig) -> Timed {
    let mut stats = Vec::new();
    let t = timing::median(reps, || stats = batch_stats(name, config));
    Timed {
        wall_s: t.as_secs_f64(),
        requests: stats.iter().map(|s| s.store_requests).sum::<u64>() as f64,
        events: stats.iter().map(|s| s.events).sum::<u64>() as f64,
        sim_s: stats.iter().map(|s| s.sim_ms).sum::<u64>() as f64 / 1e3,
    }
}

/// Median wall µs per request of the baseline on `backend`.
fn baseline_us(reps: usize, backend: Backend) -> f64 {
    let mut requests = 0;
    let t = timing::median(reps, || requests = baseline_batch(backend));
    t.as_secs_f64() * 1e6 / requests as f64
}

/// The ratio tables: medians of five batches each, measured here, one after
/// another, so that the scenarios and the baselines share one machine state.
fn ratios(_: &mut Criterion) {
    const REPS: usize = 5;
    const SCENARIOS: [&str; 4] = ["chaos", "idle-churn", "steady", "cron-edits"];
    // `cargo bench -- <filter>` runs the tables only when the filter names them.
    if !timing::wanted("ratios") {
        return;
    }
    let base_us = baseline_us(REPS, Backend::Sqlite);
    let map_us = baseline_us(REPS, Backend::BTreeMap);
    let memory = RunConfig { store: Some(StoreKind::Memory), ..RunConfig::default() };
    let runs: Vec<(&str, Timed, Timed)> =
        SCENARIOS.iter().map(|&name| (name, timed(REPS, name, &RunConfig::default()), timed(REPS, name, &memory))).collect();

    println!("\nwall time per store request and per event, as a ratio to bare madsim's per request ({base_us:.2} µs)");
    println!("{:<12} {:>10} {:>10} {:>9} {:>10} {:>9} {:>12}", "scenario", "requests", "µs/req", "÷ base", "µs/event", "÷ base", "sim/wall");
    for (name, sqlite, _) in &runs {
        let (per_req, per_event) = (sqlite.wall_s * 1e6 / sqlite.requests, sqlite.wall_s * 1e6 / sqlite.events);
        println!(
            "{name:<12} {:>10} {per_req:>10.2} {:>9.2} {per_event:>10.2} {:>9.2} {:>11.0}x",
            sqlite.requests,
            per_req / base_us,
            per_event / base_us,
            sqlite.sim_s / sqlite.wall_s
        );
    }

    // The same seeds without SQLite: what the store costs each event, and
    // what the rest (simulator, core, oracle, trace) costs against the
    // simulator alone.
    println!(
        "\nthe same seeds on the reference-model store (--store memory: the same events, no SQLite), per event, \
         against bare madsim on a BTreeMap ({map_us:.2} µs per request; SQLite adds {:.2} µs to each of its requests)",
        base_us - map_us
    );
    println!("{:<12} {:>10} {:>9} {:>14} {:>13}", "scenario", "µs/event", "÷ base", "SQLite µs/ev", "SQLite share");
    for (name, sqlite, mem) in &runs {
        // The two stores follow one rulebook: the same seeds make the same
        // events and requests, or the split below would mean nothing.
        assert_eq!((sqlite.events, sqlite.requests), (mem.events, mem.requests), "{name}: the stores' runs differ");
        let (per_event, mem_event) = (sqlite.wall_s * 1e6 / sqlite.events, mem.wall_s * 1e6 / mem.events);
        println!(
            "{name:<12} {mem_event:>10.2} {:>9.2} {:>14.2} {:>12.0}%",
            mem_event / map_us,
            per_event - mem_event,
            100.0 * (1.0 - mem.wall_s / sqlite.wall_s)
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
