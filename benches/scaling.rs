//! How the cost of a run grows with the fleet (issue 14): one world shape
//! at three sizes, 10, 100 and 300 replicas with six clients each, each
//! client opening a session about every 30 s of a 3-minute fault phase
//! with a few crashes, partitions and pod deaths; the same seed for all.
//!
//! `cargo bench --bench scaling`: a criterion group per size (wall time per
//! run, throughput in events), then a table of wall µs per simulated second
//! and per event at each size and as a ratio to the smallest (the target:
//! per event at most 1.5 times the smallest's; per simulated second at
//! most in proportion to the live workers). `cargo bench --bench scaling --
//! table` prints the table alone. A size's figure is the median of at
//! least three runs and of at least 5 s of runs, so the smallest world is
//! timed over some twenty runs (`SCALING_REPS=1` for at least one run a
//! size; `SCALING_SIZES=10,300` for some sizes only). Every run is one seed
//! on one core.

mod timing;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haywire_scenarios::fleet_scale::{shape, Size};
use haywire_scenarios::world;
use haywire_sim::{run, FaultPlan, RunConfig, RunOptions, Scenario, Stats};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use timing::{median_over, wanted};

/// The seed every size runs.
const SEED: u64 = 1;
/// Replicas of each size; clients are six per replica.
const SIZES: [usize; 3] = [10, 100, 300];

/// The sizes to run: `SCALING_SIZES=10,300` picks some (each one of
/// [`SIZES`], so that the table's ratios stay comparable between runs).
fn sizes_wanted() -> Vec<usize> {
    let Ok(list) = std::env::var("SCALING_SIZES") else { return SIZES.to_vec() };
    let picked: Vec<usize> = list.split(',').filter_map(|s| s.trim().parse().ok()).filter(|n| SIZES.contains(n)).collect();
    assert!(!picked.is_empty(), "SCALING_SIZES={list:?} names none of the sizes {SIZES:?}");
    picked
}
const PHASE_MS: u64 = 180_000;
/// The table runs a size at least this long in all, so the smallest
/// world (a fifth of a second a run) is timed over many runs.
const AT_LEAST: Duration = Duration::from_secs(5);
/// Each client opens a session about this often.
const CYCLE_MS: u64 = 30_000;

/// The bench's world at one size.
struct Scaled {
    name: &'static str,
    replicas: usize,
}

impl Scenario for Scaled {
    fn name(&self) -> &'static str {
        self.name
    }
    fn about(&self) -> &'static str {
        "the scaling bench's world"
    }
    fn options(&self, rng: &mut ChaCha8Rng) -> RunOptions {
        let mut opts = world::fleet(rng);
        let clients = 6 * self.replicas;
        let sessions = clients as u64 * PHASE_MS / CYCLE_MS;
        shape(&mut opts, rng, Size { replicas: self.replicas, clients, phase_ms: PHASE_MS, sessions });
        // Fixed rates, so that the sizes differ only in size.
        let f = &mut opts.faults;
        f.crash_per_min = 0.3;
        f.partition_per_min = 0.3;
        f.pod_death_per_min = 1.0;
        f.duration_ms = (1_000, 10_000);
        f.leader_bias = 0.2;
        world::settle_bounds(&mut opts);
        opts
    }
    fn plan(&self, opts: &RunOptions, rng: &mut ChaCha8Rng) -> FaultPlan {
        world::plan(opts, rng)
    }
}

fn scaled(replicas: usize) -> Scaled {
    let name = match replicas {
        10 => "scaling-10",
        100 => "scaling-100",
        300 => "scaling-300",
        _ => "scaling",
    };
    Scaled { name, replicas }
}

fn one_run(replicas: usize) -> Stats {
    let out = run(&scaled(replicas), SEED, &RunConfig::default()).expect("the world builds");
    assert!(out.passed(), "{replicas} replicas: {:?}", out.violation);
    out.stats
}

fn sizes(c: &mut Criterion) {
    for replicas in sizes_wanted() {
        if !wanted(&format!("scaling/{replicas}-replicas")) {
            continue;
        }
        let events = one_run(replicas).events;
        let mut g = c.benchmark_group(format!("scaling/{replicas}-replicas"));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(1));
        g.throughput(Throughput::Elements(events));
        g.bench_function(format!("{events} events"), |b| b.iter(|| one_run(replicas)));
        g.finish();
    }
}

fn table(_: &mut Criterion) {
    // SCALING_REPS=1 for a quick look.
    let reps: usize = std::env::var("SCALING_REPS").ok().and_then(|r| r.parse().ok()).filter(|&r| r > 0).unwrap_or(3);
    if !wanted("table") {
        return;
    }
    println!(
        "\nwall time per simulated second and per event, by fleet size (seed {SEED}; the median of at least {reps} runs \
         and of {}s of runs a size)",
        AT_LEAST.as_secs()
    );
    println!(
        "{:>8} {:>8} {:>9} {:>8} {:>9} {:>5} {:>8} {:>12} {:>8} {:>10} {:>8}",
        "replicas", "clients", "events", "workers", "sim s", "runs", "wall s", "µs/sim-s", "÷ first", "µs/event", "÷ first"
    );
    let mut first: Option<(f64, f64)> = None;
    for replicas in sizes_wanted() {
        let mut stats = Stats::default();
        let (t, runs) = median_over(reps, AT_LEAST, || stats = one_run(replicas));
        let t = t.as_secs_f64();
        let sim_s = stats.sim_ms as f64 / 1e3;
        let (per_sim_s, per_event) = (t * 1e6 / sim_s, t * 1e6 / stats.events as f64);
        let (s0, e0) = *first.get_or_insert((per_sim_s, per_event));
        println!(
            "{replicas:>8} {:>8} {:>9} {:>8} {sim_s:>9.0} {runs:>5} {t:>8.2} {per_sim_s:>12.0} {:>8.2} {per_event:>10.2} {:>8.2}",
            6 * replicas,
            stats.events,
            stats.workers,
            per_sim_s / s0,
            per_event / e0
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

criterion_group!(benches, sizes, table);
criterion_main!(benches);
