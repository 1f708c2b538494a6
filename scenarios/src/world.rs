//! What every scenario starts from: a default world drawn from the seed,
//! and a generic fault-plan drawer that turns per-seed rates into timed
//! faults (swarm testing: each seed gets its own mix).

use haywire_core::cron::{CronConfig, MissPolicy};
use haywire_core::ReplicaConfig;
use haywire_sim::{
    Bounds, ClockSpec, ClusterOps, CronWorkload, Fault, FaultPlan, FaultRates, RunOptions, StoreKind, Target, Workload,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Faults start after the first election and heal this long before the
/// fault phase ends.
const WARMUP_MS: u64 = 5_000;
const HEAL_MARGIN_MS: u64 = 2_000;
/// Typical time a graceful shutdown takes, for placing faults. A slower one
/// only delays the quiet period, which starts once every fault has healed.
const SHUTDOWN_MS: u64 = 5_000;
/// The ChaCha stream headroom is drawn from (see [`fleet`]).
const HEADROOM_STREAM: u64 = 0x4ead;

/// A world with no faults: 2–5 replicas on the SQLite store, small clock
/// skew and drift inside the replicas' bounds.
pub fn base(rng: &mut ChaCha8Rng) -> RunOptions {
    let replicas = rng.gen_range(2..=5);
    RunOptions {
        replicas,
        store: StoreKind::Sqlite,
        fault_phase_ms: rng.gen_range(90_000..=150_000),
        // TTL + takeover + contend bounds, with room to spare.
        quiet_ms: 45_000,
        latency_ms: (1, rng.gen_range(2..=20)),
        shutdown_grace_ms: 30_000,
        clocks: clocks(rng, replicas, 2_000, 5_000),
        faults: FaultRates { duration_ms: (2_000, 30_000), downtime_ms: (1_000, 20_000), ..Default::default() },
        replica: ReplicaConfig::default(),
        initial_replicas: replicas,
        workload: Workload::default(),
        pod_start_ms: (500, 3_000),
        bounds: Bounds { rpc_slack_ms: 0, health_check_ms: 0 },
    }
}

/// What a client waits beyond the slowest pod start for its answer: the
/// spawn's own calls (slot, row, secret, pod, activation writes), each
/// bounded by a call timeout.
const PATIENCE_SLACK_MS: u64 = 30_000;

/// How long past its replica's death a client keeps reconnecting: the
/// death to be seen, and a few attempts.
const RECONNECT_SLACK_MS: u64 = 20_000;

/// The bounds the oracle judges a world by, once its scenario has tuned
/// it: the RPC slack from its call timeout and latency, and client patience
/// from its slowest pod start. The quiet period is stretched to outlast
/// patience, so every request is answered or judged before the run ends.
pub fn settle_bounds(opts: &mut RunOptions) {
    let f = &opts.replica.fleet;
    let pause = opts.replica.lease.max_pause_ms;
    opts.bounds.rpc_slack_ms = 1_000 + 2 * f.call_timeout_ms + 8 * opts.latency_ms.1 + pause;
    // One health interval, then the pod list, the lost CAS and the
    // client's answer (docs/design.md §2.6).
    opts.bounds.health_check_ms = f.health_check_ms + 1_000 + 2 * f.call_timeout_ms + 4 * opts.latency_ms.1 + pause;
    if opts.workload.clients > 0 {
        opts.workload.patience_ms = opts.pod_start_ms.1 + PATIENCE_SLACK_MS;
        // A client whose replica went away reconnects until the replica is
        // dead to the store (or drained), and some attempts after.
        opts.workload.reconnect_ms = f.dead_after_ms + RECONNECT_SLACK_MS;
        // Sessions in flight end (a reconnect, a resume window), then TTL,
        // dead threshold and two reap passes; and every request is answered.
        let drain = opts.workload.session_ms.1
            + opts.workload.reconnect_ms
            + f.resume_window_ms
            + f.hot_idle_ttl_ms
            + f.dead_after_ms
            + 3 * f.reap_interval_ms
            + 10_000;
        opts.quiet_ms = opts.quiet_ms.max(drain).max(opts.workload.patience_ms + PATIENCE_SLACK_MS);
    }
}

/// A world with clients: the base world plus sessions opened and closed
/// across the replicas, and a quiet period long enough for every idle
/// worker to pass its TTL and be reaped, and every dead instance's workers
/// to be found.
pub fn fleet(rng: &mut ChaCha8Rng) -> RunOptions {
    let mut opts = base(rng);
    opts.workload = Workload {
        clients: rng.gen_range(2..=8),
        think_ms: rng.gen_range(1_000..=10_000),
        session_ms: (500, rng.gen_range(2_000..=40_000)),
        orgs: rng.gen_range(1..=3),
        // Set by `settle_bounds` once the scenario has tuned the world.
        patience_ms: 0,
        reconnect_ms: 0,
        dup_reconnect_pct: 0,
        cron: CronWorkload::default(),
    };
    opts.fault_phase_ms = rng.gen_range(120_000..=200_000);
    // Headroom placeholders, 0 to 3, so both none and some are exercised;
    // from a side stream, so every other draw of the seed stays as it was.
    let mut side = rng.clone();
    side.set_stream(HEADROOM_STREAM);
    opts.replica.fleet.headroom_nodes = side.gen_range(0..=3);
    let f = &opts.replica.fleet;
    // Sessions in flight end, then TTL, dead threshold and two reap passes.
    opts.quiet_ms = opts.workload.session_ms.1 + f.hot_idle_ttl_ms + f.dead_after_ms + 3 * f.reap_interval_ms + 10_000;
    opts
}

/// Cron on (docs/design.md §2.7): the replicas schedule jobs, with field
/// report 001's timings (reconcile 15 s, settings poll 30 s), a missed-slot
/// policy, run timeout and fleet cap drawn per seed; the admin starts a
/// few jobs (some on cron expressions, which fall due together), runs take
/// seeded time (some longer than their interval and their timeout), and
/// settings are written now and then and read from every replica. The
/// quiet period outlasts a death, a reconcile and the longest run, so every
/// slot due before it settles within it.
pub fn with_cron(opts: &mut RunOptions, rng: &mut ChaCha8Rng) {
    let policy = match rng.gen_range(0..4) {
        0 | 1 => MissPolicy::FireOnce,
        2 => MissPolicy::Skip,
        _ => MissPolicy::CatchUp { limit: rng.gen_range(1..=4) },
    };
    let run_timeout_ms = rng.gen_range(10_000..=40_000);
    opts.replica.cron = CronConfig {
        enabled: true,
        policy,
        run_timeout_ms,
        max_concurrent_runs: rng.gen_range(2..=6),
        ..CronConfig::default()
    };
    opts.workload.cron = CronWorkload {
        jobs: rng.gen_range(3..=10),
        every_ms: (5_000, rng.gen_range(10_000..=40_000)),
        cron_pct: rng.gen_range(0..=50),
        run_ms: (200, rng.gen_range(2_000..=run_timeout_ms + 20_000)),
        admin_every_ms: 0,
        settings_every_ms: rng.gen_range(20_000..=60_000),
        read_every_ms: 2_000,
    };
    let (c, f) = (&opts.replica.cron, &opts.replica.fleet);
    let settle = f.dead_after_ms + f.heartbeat_ms + 2 * c.reconcile_ms + c.misfire_after_ms + c.run_timeout_ms + 20_000;
    opts.quiet_ms = opts.quiet_ms.max(settle).max(c.settings_poll_ms + 10_000);
}

pub fn clocks(rng: &mut ChaCha8Rng, n: usize, max_skew_ms: i64, max_drift_ppm: i64) -> Vec<ClockSpec> {
    (0..n)
        .map(|_| ClockSpec {
            skew_ms: rng.gen_range(-max_skew_ms..=max_skew_ms),
            drift_ppm: rng.gen_range(-max_drift_ppm..=max_drift_ppm),
        })
        .collect()
}

/// Times of a Poisson process with `per_min` events a minute in [from, to).
fn arrivals(rng: &mut ChaCha8Rng, per_min: f64, from: u64, to: u64) -> Vec<u64> {
    let mut out = Vec::new();
    if per_min <= 0.0 || to <= from {
        return out;
    }
    let mean_gap = 60_000.0 / per_min;
    let mut t = from as f64;
    loop {
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        t += -mean_gap * u.ln();
        if t >= to as f64 {
            return out;
        }
        out.push(t as u64);
    }
}

fn range(rng: &mut ChaCha8Rng, (lo, hi): (u64, u64)) -> u64 {
    if hi <= lo {
        lo
    } else {
        rng.gen_range(lo..=hi)
    }
}

/// Draw the fault plan a world's rates call for. Every fault heals before
/// the fault phase ends, so the quiet period starts with a healed world.
/// The families are drawn in a fixed order from one stream: the same seed
/// gives the same plan.
pub fn plan(opts: &RunOptions, rng: &mut ChaCha8Rng) -> FaultPlan {
    let mut d = Draw { opts, f: &opts.faults, end: opts.fault_phase_ms.saturating_sub(HEAL_MARGIN_MS), plan: FaultPlan::default() };
    d.replica_faults(rng);
    d.store_wide_faults(rng);
    d.pauses(rng);
    d.cluster_faults(rng);
    d.spawn_traps(rng);
    d.fleet_changes(rng);
    d.plan
}

/// One plan being drawn: the world's rates, and where the fault phase ends.
struct Draw<'a> {
    opts: &'a RunOptions,
    f: &'a FaultRates,
    end: u64,
    plan: FaultPlan,
}

impl Draw<'_> {
    fn arrivals(&self, rng: &mut ChaCha8Rng, per_min: f64) -> Vec<u64> {
        arrivals(rng, per_min, WARMUP_MS, self.end)
    }

    fn target(&self, rng: &mut ChaCha8Rng) -> Target {
        if rng.gen_bool(self.f.leader_bias.clamp(0.0, 1.0)) {
            Target::Leader
        } else {
            Target::Replica(rng.gen_range(0..self.opts.replicas) + 1)
        }
    }

    /// Clamp a duration so the fault heals in time (None: no room left).
    fn fit(&self, at: u64, d: u64) -> Option<u64> {
        (at + 100 < self.end).then(|| d.min(self.end - at).max(100))
    }

    /// A fault on one replica per arrival, lasting a duration drawn from `dur`.
    fn targeted(&mut self, rng: &mut ChaCha8Rng, per_min: f64, dur: (u64, u64), fault: impl Fn(Target, u64) -> Fault) {
        for at in self.arrivals(rng, per_min) {
            let d = range(rng, dur);
            if let (t, Some(ms)) = (self.target(rng), self.fit(at, d)) {
                self.plan.push(at, fault(t, ms));
            }
        }
    }

    /// A fault on the whole world per arrival, lasting a duration drawn from `dur`.
    fn world_wide(&mut self, rng: &mut ChaCha8Rng, per_min: f64, dur: (u64, u64), fault: impl Fn(u64) -> Fault) {
        for at in self.arrivals(rng, per_min) {
            let d = range(rng, dur);
            if let Some(ms) = self.fit(at, d) {
                self.plan.push(at, fault(ms));
            }
        }
    }

    /// Store-wide faults of one kind do not overlap each other: each heals
    /// what it set.
    fn one_at_a_time(&mut self, rng: &mut ChaCha8Rng, per_min: f64, dur: (u64, u64), fault: impl Fn(u64) -> Fault) {
        let mut free_at = 0;
        for at in self.arrivals(rng, per_min) {
            let d = range(rng, dur);
            if let (true, Some(ms)) = (at >= free_at, self.fit(at, d)) {
                free_at = at + ms + 1;
                self.plan.push(at, fault(ms));
            }
        }
    }

    /// Crashes, shutdowns, partitions from the store or the cluster, a slow store.
    fn replica_faults(&mut self, rng: &mut ChaCha8Rng) {
        let f = self.f;
        self.targeted(rng, f.crash_per_min, f.downtime_ms, |target, down_ms| Fault::Crash { target, down_ms });
        for at in self.arrivals(rng, f.shutdown_per_min) {
            let down = range(rng, f.downtime_ms);
            if let (t, Some(down_ms)) = (self.target(rng), self.fit(at + SHUTDOWN_MS, down)) {
                self.plan.push(at, Fault::Shutdown { target: t, down_ms });
            }
        }
        self.targeted(rng, f.partition_per_min, f.duration_ms, |target, ms| Fault::Partition { target, ms });
        self.targeted(rng, f.long_partition_per_min, f.long_partition_ms, |target, ms| Fault::Partition { target, ms });
        self.targeted(rng, f.cluster_partition_per_min, f.duration_ms, |target, ms| Fault::ClusterPartition { target, ms });
        for at in self.arrivals(rng, f.store_slow_per_min) {
            let (d, extra_ms) = (range(rng, f.duration_ms), range(rng, f.store_slow_ms));
            if let (t, Some(ms)) = (self.target(rng), self.fit(at, d)) {
                self.plan.push(at, Fault::StoreSlow { target: t, extra_ms, ms });
            }
        }
    }

    /// Failing writes, stalls and lease outages, one of each kind at a time.
    fn store_wide_faults(&mut self, rng: &mut ChaCha8Rng) {
        let f = self.f;
        let (fail_pct, lost_reply_pct) = (f.store_fail_pct, f.store_lost_reply_pct);
        self.one_at_a_time(rng, f.store_fault_per_min, f.duration_ms, |ms| Fault::StoreFaults { fail_pct, lost_reply_pct, ms });
        self.one_at_a_time(rng, f.stall_per_min, f.duration_ms, |ms| Fault::StoreStall { ms });
        self.one_at_a_time(rng, f.lease_outage_per_min, f.lease_outage_ms, |ms| Fault::LeaseOutage { ms });
    }

    fn pauses(&mut self, rng: &mut ChaCha8Rng) {
        let f = self.f;
        for at in self.arrivals(rng, f.pause_per_min) {
            let d = rng.gen_range(100..=f.max_pause_ms.max(100));
            if let (t, Some(ms)) = (self.target(rng), self.fit(at, d)) {
                self.plan.push(at, Fault::Pause { target: t, ms });
            }
        }
    }

    /// Pod failures and deaths, a slow cluster, refused deletes, failing or
    /// late operations.
    fn cluster_faults(&mut self, rng: &mut ChaCha8Rng) {
        let f = self.f;
        let pct = f.pod_fail_pct;
        self.world_wide(rng, f.pod_fail_per_min, f.duration_ms, |ms| Fault::PodFailures { pct, ms });
        for at in self.arrivals(rng, f.pod_death_per_min) {
            self.plan.push(at, Fault::PodDeath);
        }
        for at in self.arrivals(rng, f.cluster_slow_per_min) {
            let (d, extra_ms) = (range(rng, f.duration_ms), range(rng, f.cluster_slow_ms));
            if let Some(ms) = self.fit(at, d) {
                self.plan.push(at, Fault::ClusterSlow { extra_ms, ms });
            }
        }
        self.world_wide(rng, f.delete_refusal_per_min, f.delete_refusal_ms, |ms| Fault::DeleteRefusal { ms });
        for at in self.arrivals(rng, f.cluster_ops_per_min) {
            let ops = ClusterOps::ALL[rng.gen_range(0..ClusterOps::ALL.len())];
            let slow_ms = if rng.gen_range(0..100) < f.cluster_ops_slow_pct { range(rng, f.cluster_ops_slow_ms).max(1) } else { 0 };
            let d = range(rng, f.cluster_ops_ms);
            if let Some(ms) = self.fit(at, d) {
                self.plan.push(at, Fault::ClusterOps { ops, slow_ms, ms });
            }
        }
    }

    /// Crashes armed inside a spawn: after the secret, or mid-activation.
    fn spawn_traps(&mut self, rng: &mut ChaCha8Rng) {
        let f = self.f;
        for (per_min, after_secret) in [(f.crash_after_secret_per_min, true), (f.crash_in_activation_per_min, false)] {
            for at in self.arrivals(rng, per_min) {
                let down = range(rng, f.downtime_ms);
                if let Some(down_ms) = self.fit(at, down) {
                    let wait_ms = (self.end - at - down_ms).min(30_000);
                    let fault = if after_secret {
                        Fault::CrashAfterSecret { down_ms, wait_ms }
                    } else {
                        Fault::CrashInActivation { down_ms, wait_ms }
                    };
                    self.plan.push(at, fault);
                }
            }
        }
    }

    /// Scale up and down, and rolling deploys.
    fn fleet_changes(&mut self, rng: &mut ChaCha8Rng) {
        let f = self.f;
        for at in self.arrivals(rng, f.scale_per_min) {
            if rng.gen_bool(0.5) {
                self.plan.push(at, Fault::ScaleUp);
            } else {
                let target = self.target(rng);
                self.plan.push(at, Fault::ScaleDown { target });
            }
        }
        for _ in 0..f.rolling_deploys {
            let (down_ms, gap_ms) = (range(rng, (500, 5_000)), range(rng, (1_000, 10_000)));
            let span = self.opts.replicas as u64 * (SHUTDOWN_MS + down_ms + gap_ms);
            if self.end > WARMUP_MS + span {
                let at = rng.gen_range(WARMUP_MS..self.end - span);
                self.plan.push(at, Fault::RollingDeploy { down_ms, gap_ms });
            }
        }
    }
}
