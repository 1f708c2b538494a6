//! `fleet-scale`: the fleet at production size. Seeds draw 10 to 300
//! replicas, 50 to 2,000 clients (about six per replica) and up to 20,000
//! sessions over a fault phase of five minutes to an hour, with the usual
//! faults: crashes, shutdowns, partitions, a slow or failing store, pauses,
//! pod failures and deaths, replicas leaving and joining. Sizes are drawn
//! log-uniformly, so small and large fleets are equally common per factor
//! of size. It judges what every fleet scenario judges, at a size where a
//! pass that reads every row would show (docs/design.md §12).

use crate::world::clocks;
use crate::Named;
use haywire_sim::RunOptions;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Replica-seconds of fault phase a seed may simulate: the largest fleet
/// gets minutes, a small one the full hour, so a seed's cost stays bounded
/// while both ends of the range are exercised.
const REPLICA_SECONDS: u64 = 150_000;
/// The longest fault phase and the shortest.
const PHASE_MS: (u64, u64) = (300_000, 3_600_000);
/// Sessions a seed's clients open over the fault phase, at most.
const SESSIONS: (u64, u64) = (1_000, 20_000);

/// `lo * (hi / lo)^u` for a uniform `u`: as many seeds between 10 and 30
/// as between 100 and 300.
pub fn log_uniform(rng: &mut ChaCha8Rng, (lo, hi): (u64, u64)) -> u64 {
    let u: f64 = rng.gen_range(0.0..=1.0);
    ((lo as f64) * (hi as f64 / lo as f64).powf(u)).round().clamp(lo as f64, hi as f64) as u64
}

/// One fleet's size: replicas, clients, the fault phase, and the sessions
/// its clients open over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub replicas: usize,
    pub clients: usize,
    pub phase_ms: u64,
    pub sessions: u64,
}

impl Size {
    /// A seed's size: replicas log-uniform in 10..=300, about six clients
    /// each, a phase of up to an hour within the replica-seconds budget.
    pub fn draw(rng: &mut ChaCha8Rng) -> Size {
        let replicas = log_uniform(rng, (10, 300)) as usize;
        let clients = (replicas * rng.gen_range(5..=7)).clamp(50, 2_000);
        let phase_ms = log_uniform(rng, PHASE_MS).min(REPLICA_SECONDS * 1_000 / replicas as u64).max(PHASE_MS.0);
        let sessions = log_uniform(rng, SESSIONS);
        Size { replicas, clients, phase_ms, sessions }
    }
}

/// Shape a fleet world (from [`crate::world::fleet`]) to `size`: the
/// replicas (a tenth or fewer spares, for scale-up events to start) and
/// their clocks, the clients thinking between sessions so that they open
/// about `size.sessions`, orgs of a handful of clients, capacity sized to
/// the fleet. The `scaling` bench shapes its worlds with it too.
pub fn shape(opts: &mut RunOptions, rng: &mut ChaCha8Rng, size: Size) {
    opts.replicas = size.replicas;
    opts.initial_replicas = size.replicas - rng.gen_range(0..=size.replicas / 10);
    opts.clocks = clocks(rng, size.replicas, 2_000, 5_000);
    opts.fault_phase_ms = size.phase_ms;
    let w = &mut opts.workload;
    w.clients = size.clients;
    w.session_ms = (1_000, rng.gen_range(10_000..=60_000));
    let cycle = size.clients as u64 * size.phase_ms / size.sessions.max(1);
    w.think_ms = cycle.saturating_sub((w.session_ms.0 + w.session_ms.1) / 2).max(1_000);
    w.orgs = (size.clients / rng.gen_range(4..=10)).max(1) as u32;
    let f = &mut opts.replica.fleet;
    f.org_cap = 16;
    f.global_cap = (size.clients + size.clients / 2) as u32;
}

/// The usual faults, each kind on for half the seeds at a drawn rate:
/// crashes, shutdowns, partitions, a slow or failing store, pauses within
/// the bound, pod failures and deaths, replicas leaving and joining.
pub fn usual_faults(opts: &mut RunOptions, rng: &mut ChaCha8Rng) {
    let rate = |rng: &mut ChaCha8Rng, hi: f64| if rng.gen_bool(0.5) { rng.gen_range(0.05..hi) } else { 0.0 };
    let f = &mut opts.faults;
    f.crash_per_min = rate(rng, 1.0);
    f.shutdown_per_min = rate(rng, 1.0);
    f.partition_per_min = rate(rng, 1.0);
    f.store_slow_per_min = rate(rng, 0.5);
    f.store_fault_per_min = rate(rng, 0.5);
    f.pause_per_min = rate(rng, 1.0);
    f.pod_fail_per_min = rate(rng, 0.5);
    f.pod_fail_pct = rng.gen_range(10..=50);
    f.pod_death_per_min = rate(rng, 2.0);
    f.scale_per_min = rate(rng, 0.5);
    f.leader_bias = rng.gen_range(0.0..0.5);
    f.store_fail_pct = rng.gen_range(0..=30);
    f.store_lost_reply_pct = rng.gen_range(0..=30);
    f.store_slow_ms = (500, rng.gen_range(1_000..5_000));
    f.duration_ms = (1_000, rng.gen_range(3_000..20_000));
    f.max_pause_ms = opts.replica.lease.max_pause_ms;
}

pub static SCENARIO: Named = Named {
    name: "fleet-scale",
    about: "10-300 replicas, 50-2,000 clients, up to 20,000 sessions over up to an hour, with the usual faults",
    fleet: true,
    tune: |opts, rng| {
        let size = Size::draw(rng);
        shape(opts, rng, size);
        usual_faults(opts, rng);
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use haywire_sim::Scenario;
    use rand::SeedableRng;

    #[test]
    fn seeds_span_the_sizes_the_scenario_promises() {
        let (mut small, mut large, mut long) = (false, false, false);
        for seed in 0..400 {
            let opts = SCENARIO.options(&mut ChaCha8Rng::seed_from_u64(seed));
            opts.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let (r, c) = (opts.replicas, opts.workload.clients);
            assert!((10..=300).contains(&r), "seed {seed}: {r} replicas");
            assert!((50..=2_000).contains(&c), "seed {seed}: {c} clients");
            assert!((PHASE_MS.0..=PHASE_MS.1).contains(&opts.fault_phase_ms), "seed {seed}");
            // Expected sessions stay within the promise.
            let w = &opts.workload;
            let cycle = w.think_ms + (w.session_ms.0 + w.session_ms.1) / 2;
            assert!(c as u64 * opts.fault_phase_ms / cycle <= SESSIONS.1, "seed {seed}: too many sessions");
            small |= r <= 15;
            large |= r >= 250 && c >= 1_500;
            long |= opts.fault_phase_ms >= 3_000_000;
        }
        assert!(small && large && long, "small {small}, large {large}, hour-long {long}");
    }
}
