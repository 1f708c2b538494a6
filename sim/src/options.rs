//! The options record a seed expands into: everything that shapes one run.
//!
//! Replay prints it first and the trace header stores it, so a reader knows
//! what world a seed made without reading code.

use haywire_core::ReplicaConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The largest fleet a run may have: `fleet-scale` draws up to 300
/// replicas and 2,000 clients; the limits leave room above that while
/// keeping every node an address (sim/src/addresses.rs).
pub const MAX_REPLICAS: usize = 1_000;
pub const MAX_CLIENTS: usize = 10_000;

/// Which backend the store node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// The embedded SQLite store (in memory), the production backend.
    Sqlite,
    /// The in-memory reference model.
    Memory,
}

impl FromStr for StoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" => Ok(StoreKind::Sqlite),
            "memory" => Ok(StoreKind::Memory),
            _ => Err(format!("unknown store '{s}' (known: sqlite, memory)")),
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Memory => "memory",
        })
    }
}

/// One replica machine's clock: a fixed offset and a rate error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSpec {
    pub skew_ms: i64,
    /// Parts per million: +10_000 runs 1% fast.
    pub drift_ppm: i64,
}

/// Per-seed fault mix (swarm testing): how often each fault kind fires in
/// the fault phase and how bad it gets. A rate of 0 switches a kind off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRates {
    /// Expected events per simulated minute, per kind.
    pub crash_per_min: f64,
    pub shutdown_per_min: f64,
    pub partition_per_min: f64,
    pub store_slow_per_min: f64,
    pub store_fault_per_min: f64,
    pub stall_per_min: f64,
    pub pause_per_min: f64,
    /// Rolling deploys in the fault phase.
    pub rolling_deploys: u32,
    /// Fraction of crash/shutdown/partition/pause faults aimed at the
    /// current leader rather than a random replica.
    pub leader_bias: f64,
    /// Range of fault durations (partition, slow store, store faults, stall).
    pub duration_ms: (u64, u64),
    /// Range of process downtime after a crash or shutdown.
    pub downtime_ms: (u64, u64),
    /// Longest pause drawn; above the replicas' configured bound, S2 is not
    /// required (S1 still is).
    pub max_pause_ms: u64,
    /// Percentages while store faults are on.
    pub store_fail_pct: u32,
    pub store_lost_reply_pct: u32,
    /// Extra latency of a slow store.
    pub store_slow_ms: (u64, u64),

    // --- cluster and fleet faults ---
    /// Windows in which pod creation fails `pod_fail_pct` of the time.
    #[serde(default)]
    pub pod_fail_per_min: f64,
    #[serde(default)]
    pub pod_fail_pct: u32,
    /// A running pod dies.
    #[serde(default)]
    pub pod_death_per_min: f64,
    /// Windows in which the cluster API answers `cluster_slow_ms` late.
    #[serde(default)]
    pub cluster_slow_per_min: f64,
    #[serde(default)]
    pub cluster_slow_ms: (u64, u64),
    /// A replica crashes right after creating a secret, before its pod.
    #[serde(default)]
    pub crash_after_secret_per_min: f64,
    /// A replica crashes while a worker of its is activating.
    #[serde(default)]
    pub crash_in_activation_per_min: f64,
    /// Scale events: a replica leaves for good, or a spare one joins.
    #[serde(default)]
    pub scale_per_min: f64,
    /// Windows in which every lease write fails (nobody can lead), lasting
    /// `lease_outage_ms`; the rest of the store works.
    #[serde(default)]
    pub lease_outage_per_min: f64,
    #[serde(default)]
    pub lease_outage_ms: (u64, u64),
    /// Windows of `delete_refusal_ms` in which the cluster refuses to
    /// delete one pod.
    #[serde(default)]
    pub delete_refusal_per_min: f64,
    #[serde(default)]
    pub delete_refusal_ms: (u64, u64),
    /// A replica cut off from the cluster API for `duration_ms` (the store
    /// still reachable).
    #[serde(default)]
    pub cluster_partition_per_min: f64,
    /// A replica cut off from the store for `long_partition_ms`, longer than
    /// the dead threshold, while it serves sessions: it must fence itself.
    #[serde(default)]
    pub long_partition_per_min: f64,
    #[serde(default)]
    pub long_partition_ms: (u64, u64),
    /// Windows of `cluster_ops_ms` in which one kind of cluster operation
    /// (pod lists, secret lists, or deletes, drawn per window) fails, or,
    /// `cluster_ops_slow_pct` of the time, answers `cluster_ops_slow_ms` late.
    #[serde(default)]
    pub cluster_ops_per_min: f64,
    #[serde(default)]
    pub cluster_ops_ms: (u64, u64),
    #[serde(default)]
    pub cluster_ops_slow_pct: u32,
    #[serde(default)]
    pub cluster_ops_slow_ms: (u64, u64),
}

/// The cron admin and the settings readers (docs/design.md §2.7): jobs
/// created at the start, then edited, paused, resumed, deleted and created
/// at seeded rates through the fault phase; settings written; every
/// replica's settings read by a client every `read_every_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CronWorkload {
    /// Jobs at the start (0: no admin, no readers; cron stays idle).
    pub jobs: u32,
    /// Range of interval schedules (ms).
    pub every_ms: (u64, u64),
    /// Percent of jobs on a cron expression instead (they fall due together).
    pub cron_pct: u32,
    /// Range of run lengths (some longer than the interval).
    pub run_ms: (u64, u64),
    /// Mean time between the admin's job changes (0: none).
    pub admin_every_ms: u64,
    /// Mean time between settings writes (0: none).
    pub settings_every_ms: u64,
    /// Readers ask each replica for its settings this often (0: never).
    pub read_every_ms: u64,
}

/// Clients opening and closing sessions across replicas.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Client nodes; each runs one session at a time.
    pub clients: usize,
    /// Mean think time between a client's sessions.
    pub think_ms: u64,
    /// Range of session lengths.
    pub session_ms: (u64, u64),
    /// Sessions are spread over this many orgs.
    pub orgs: u32,
    /// How long a client waits for a worker before giving up.
    pub patience_ms: u64,
    /// How long a client whose replica went away keeps reconnecting its
    /// session through the replicas before it gives up (the resume bound
    /// S7 judges by); 0: clients never reconnect.
    #[serde(default)]
    pub reconnect_ms: u64,
    /// Percent of reconnect attempts sent through two replicas at once.
    #[serde(default)]
    pub dup_reconnect_pct: u32,
    #[serde(default)]
    pub cron: CronWorkload,
}

/// Bounds the oracle allows beyond the replicas' own timings (docs/design.md
/// §7). Stated in the options record so a reader sees every bound
/// a run was judged by.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Time a reap pass's own calls may take on top of its interval
    /// (lists, claims, network latency, a pause within bounds).
    pub rpc_slack_ms: u64,
    /// Longest from a pod failing or vanishing to its worker no longer being
    /// handed to new sessions (the health check's bound); 0: the run has no
    /// health check, so the bound is the run's length.
    pub health_check_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    pub replicas: usize,
    pub store: StoreKind,
    /// Length of the fault phase, then of the quiet period (all healed).
    pub fault_phase_ms: u64,
    pub quiet_ms: u64,
    /// One-way network latency range.
    pub latency_ms: (u64, u64),
    /// How long a graceful shutdown may take before the process is killed.
    pub shutdown_grace_ms: u64,
    pub clocks: Vec<ClockSpec>,
    pub faults: FaultRates,
    /// The configuration every replica runs (lease timings, mutants).
    pub replica: ReplicaConfig,
    /// Replicas running at the start (the rest are spares for scale-up).
    #[serde(default)]
    pub initial_replicas: usize,
    #[serde(default)]
    pub workload: Workload,
    /// Range of pod start times (activation waits for the pod to run).
    #[serde(default)]
    pub pod_start_ms: (u64, u64),
    #[serde(default)]
    pub bounds: Bounds,
}

impl RunOptions {
    /// Whether every clock drifts within the replicas' configured bound.
    /// Outside it (or past the pause bound, which the oracle judges from
    /// the pauses that ran) S2 is not promised; S1 is.
    pub fn drift_within_bounds(&self) -> bool {
        let l = &self.replica.lease;
        self.clocks.iter().all(|c| c.drift_ppm.unsigned_abs() <= l.max_drift_ppm)
    }

    /// Reject options that cannot run (bad input from a scenario or user).
    pub fn validate(&self) -> Result<(), String> {
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(format!("replicas must be 1..={MAX_REPLICAS}, got {}", self.replicas));
        }
        if self.clocks.len() != self.replicas {
            return Err(format!("{} clock specs for {} replicas", self.clocks.len(), self.replicas));
        }
        if self.clocks.iter().any(|c| c.drift_ppm <= -500_000 || c.drift_ppm >= 500_000) {
            return Err("clock drift must stay within ±50%".into());
        }
        if self.latency_ms.0 > self.latency_ms.1 || self.latency_ms.1 == 0 {
            return Err(format!("bad latency range {:?}", self.latency_ms));
        }
        if self.initial_replicas == 0 || self.initial_replicas > self.replicas {
            return Err(format!("initial_replicas must be 1..={}, got {}", self.replicas, self.initial_replicas));
        }
        let w = &self.workload;
        if w.clients > MAX_CLIENTS {
            return Err(format!("at most {MAX_CLIENTS} clients, got {}", w.clients));
        }
        if w.clients > 0 && (w.orgs == 0 || w.session_ms.0 > w.session_ms.1 || w.patience_ms == 0) {
            return Err(format!("bad workload {w:?}"));
        }
        if w.clients > 0 && w.patience_ms >= self.quiet_ms {
            return Err(format!(
                "client patience {}ms must be shorter than the quiet period {}ms, so every request is answered before \
                 the run ends",
                w.patience_ms, self.quiet_ms
            ));
        }
        let c = &w.cron;
        if c.jobs > 0 {
            if !self.replica.cron.enabled {
                return Err("a cron workload needs replica.cron.enabled".into());
            }
            if c.jobs > 1_000 || c.every_ms.0 == 0 || c.every_ms.0 > c.every_ms.1 || c.run_ms.0 > c.run_ms.1 || c.cron_pct > 100 {
                return Err(format!("bad cron workload {c:?}"));
            }
        }
        if self.pod_start_ms.0 > self.pod_start_ms.1 {
            return Err(format!("bad pod start range {:?}", self.pod_start_ms));
        }
        if self.fault_phase_ms == 0 {
            return Err("fault phase must be positive".into());
        }
        self.replica.validate().map_err(|e| e.to_string())
    }
}
