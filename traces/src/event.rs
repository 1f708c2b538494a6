//! The event schema: one record per thing that happened in a run.
//!
//! Times are simulated microseconds since the run began (global time, not any
//! replica's skewed clock). Lease expiry is in the store's time, which is
//! global time in milliseconds.

use serde::{Deserialize, Serialize};

/// The lease record as the store holds it after a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseState {
    pub holder: Option<u64>,
    pub epoch: u64,
    pub expires_at_ms: u64,
    pub version: u64,
}

/// A cron job's row as the store holds it after a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRow {
    /// `every <ms>ms` or `cron <expr>`.
    pub schedule: String,
    /// Interval in ms, for `every` schedules (the oracle's slot arithmetic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u64>,
    pub epoch: u64,
    pub since_ms: u64,
    pub spec: u64,
}

/// A worker's lifecycle state as the trace names it. The trace's own copy
/// (this crate depends on serde only): a state the schema does not know is
/// a parse error, never a default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Spawning,
    Activating,
    Hot,
    HotIdle,
    Draining,
    Retired,
    Lost,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 7] = [
        Lifecycle::Spawning,
        Lifecycle::Activating,
        Lifecycle::Hot,
        Lifecycle::HotIdle,
        Lifecycle::Draining,
        Lifecycle::Retired,
        Lifecycle::Lost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Lifecycle::Spawning => "spawning",
            Lifecycle::Activating => "activating",
            Lifecycle::Hot => "hot",
            Lifecycle::HotIdle => "hot_idle",
            Lifecycle::Draining => "draining",
            Lifecycle::Retired => "retired",
            Lifecycle::Lost => "lost",
        }
    }

    /// Retired and lost workers are gone for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Lifecycle::Retired | Lifecycle::Lost)
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A lease write's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseOp {
    Acquire,
    Renew,
    Release,
}

/// A worker write's operation: `claim` takes ownership and bumps the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerOp {
    Insert,
    Update,
    Claim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotOp {
    Reserve,
    Free,
}

/// The store's answer to a slot write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotReply {
    Reserved,
    OrgCap,
    GlobalCap,
    Exists,
    Freed,
    NotFound,
    Fenced,
}

/// A worker row as the store holds it after a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRow {
    pub state: Lifecycle,
    pub org: String,
    pub owner: u64,
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Simulated time, microseconds since the start of the run.
    pub t: u64,
    /// Where it happened: `r1`..`rN` (replicas), `store`, or `sim` (the
    /// fault injector and the oracle).
    pub node: String,
    /// The process incarnation on a replica node, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inst: Option<u64>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Everything a trace can say. Field order is the canonical text's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum EventKind {
    /// The host started the replica's process as instance `inst` (recorded
    /// by the simulator, not reported by core).
    Started,
    // --- replica (reported by core through its observer: labels for
    // readers; the oracle judges none of them) ---
    LeaseAcquired { epoch: u64 },
    LeaseRenewed { epoch: u64 },
    SteppedDown { epoch: u64, reason: String },
    LeaseReleased { epoch: u64 },
    ReleaseFailed { epoch: u64, reason: String },
    /// A leader-gated task began / actually finished running. Recorded by
    /// the simulator's task probe around the task itself, not reported by
    /// core: S2 judges leadership from these.
    LoopStarted { name: String, epoch: u64 },
    LoopStopped { name: String, epoch: u64 },
    LeaderWorkStopped { epoch: u64 },
    EffectApplied { epoch: u64, seq: u64 },
    EffectRejected { epoch: u64, reason: String },
    EffectUnknown { epoch: u64, error: String },
    ShutdownBegan,
    ShutdownDone,

    // --- store node (what actually reached the durable store) ---
    /// A lease read from instance `from`.
    StoreRead { from: u64 },
    /// A lease write from `from`: `op` is acquire/renew/release; `lease` is
    /// the record after it when applied.
    LeaseWrite {
        from: u64,
        op: LeaseOp,
        applied: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reject: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<LeaseState>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reply_lost: bool,
    },
    /// A fenced effect from `from` carrying `epoch`, committed or rejected.
    EffectWrite {
        from: u64,
        epoch: u64,
        /// The effect's idempotency key (epoch, sweep and step it belongs to).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        key: String,
        applied: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reject: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reply_lost: bool,
    },
    /// A write that failed before commit (injected).
    StoreFailed { from: u64, op: String },
    /// A worker write from `from` (insert, update, claim) made as owner
    /// `as_owner` at `as_epoch`; `worker` is the row after it when applied.
    /// `fence` is the lease epoch a leader-gated write carried.
    WorkerWrite {
        from: u64,
        op: WorkerOp,
        id: String,
        applied: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_owner: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_epoch: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fence: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reject: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<WorkerRow>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reply_lost: bool,
    },
    /// A capacity slot reserved or freed (`result` is the store's answer).
    SlotWrite {
        from: u64,
        op: SlotOp,
        worker: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        org: Option<String>,
        result: SlotReply,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fence: Option<u64>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reply_lost: bool,
    },
    InstanceRegistered { from: u64 },
    /// The store took an instance's heartbeat (the registry's proof of life).
    InstanceHeartbeat { from: u64 },
    /// The store refused a heartbeat or registration: it holds the instance
    /// dead, and does not revive it.
    HeartbeatRefused { from: u64 },
    /// The store marked the instance draining (shutting down, handing its
    /// sessions over).
    InstanceDraining { from: u64 },

    // --- store node: cron coordination (docs/design.md §2.7) ---
    /// A job write the store answered: `op` create, edit or claim (a claim
    /// with no `new_owner` in its row is a release). `job` is the row after
    /// an applied write. `as_owner`/`as_epoch`: what a claim presented.
    JobWrite {
        from: u64,
        op: String,
        id: String,
        applied: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reject: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<JobRow>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_owner: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_epoch: Option<u64>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reply_lost: bool,
    },
    /// A fire the store answered. `result`: `committed` (then `kind` is the
    /// record's: run, missed or at_cap, and `deadline_ms` a run's place
    /// against the cap), or why not. `as_owner`/`as_epoch`: what it presented.
    FireWrite {
        from: u64,
        job: String,
        slot_ms: u64,
        kind: String,
        result: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_owner: Option<u64>,
        as_epoch: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reply_lost: bool,
    },
    /// A run's record was finished (its place against the cap freed).
    FireFinished { from: u64, job: String, slot_ms: u64 },
    /// The settings row now holds `version`.
    SettingsWrite { from: u64, version: u64 },

    // --- the outside world: runs, and what readers of settings saw ---
    /// A replica's job runner started the run of (job, slot).
    RunStarted { job: String, slot_ms: u64 },
    /// The run ended: `done`, or `cut` (timed out or aborted by core).
    RunEnded { job: String, slot_ms: u64, how: String },
    /// A reader asked replica `replica` for its settings and got `version`
    /// (none: not read yet).
    SettingsServed {
        replica: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u64>,
    },

    // --- cluster node (what the k8s-like API did) ---
    /// `gated`: the lease epoch of the leader-gated task that sent the call
    /// (seen by the simulator's task probe; none for other tasks).
    SecretCreated {
        from: u64,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gated: Option<u64>,
    },
    SecretDeleted {
        from: u64,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gated: Option<u64>,
    },
    /// `start_ms`: how long the pod takes to run. `placeholder`: a headroom
    /// placeholder (by its labels), not a worker's pod.
    PodCreated {
        from: u64,
        name: String,
        start_ms: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        placeholder: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gated: Option<u64>,
    },
    PodDeleted {
        from: u64,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gated: Option<u64>,
    },
    /// A cluster call that failed (injected, or refused).
    ClusterFailed { from: u64, op: String, error: String },

    // --- clients ---
    /// A client asks replica `replica` for a worker for `session`.
    SessionRequested { session: u64, org: String, replica: String },
    SessionStarted { session: u64, worker: String },
    SessionRefused { session: u64, error: String },
    /// No answer within the client's patience.
    SessionTimedOut { session: u64 },
    /// The client is done and tells the replica.
    SessionEnded { session: u64, worker: String },
    /// The replica ended the session before the client was done (its
    /// worker died or was taken over, or the replica fenced itself), and
    /// the client got this error.
    SessionLost { session: u64, worker: String, error: String },
    /// The client lost the replica serving its session (no answer, or the
    /// replica told it to reconnect) and asks `replica` to go on with it.
    SessionReconnecting { session: u64, worker: String, replica: String },
    /// `replica` answered a reconnect: the session goes on, on `worker`.
    SessionResumed { session: u64, worker: String, replica: String },

    // --- replica (fleet) ---
    SpawnFailed { worker: String, reason: String },
    ReapFailed { reaper: String, pass: String, error: String },
    HeartbeatFailed { error: String },
    /// Core's word that it fenced itself (a label: the oracle goes by the
    /// host's `self_fenced` below).
    Fenced { reason: String },

    // --- fault injector ---
    /// Process killed: memory lost, nothing released.
    Crash { target: String },
    /// The host killed the process because core fenced itself; it starts
    /// again as a new instance shortly after.
    SelfFenced { target: String },
    /// Process started again (as a new instance, reported by its `started`).
    Restart { target: String },
    /// Graceful shutdown asked of a process.
    ShutdownRequested { target: String },
    /// The process is gone: `graceful` when it exited after its shutdown
    /// finished, false when killed after the grace period.
    Exited { target: String, graceful: bool },
    Pause { target: String, ms: u64 },
    Resume { target: String },
    /// Replica cut off from the store (network clog both ways).
    Partition { target: String },
    PartitionHealed { target: String },
    /// Replica cut off from the cluster API (both ways); the store is still
    /// reachable.
    ClusterPartition { target: String },
    ClusterPartitionHealed { target: String },
    /// Store answers this replica only after `ms` extra.
    StoreSlow { target: String, ms: u64 },
    StoreSlowHealed { target: String },
    /// Store writes fail before commit (`fail_pct`) or commit but lose the
    /// reply (`lost_reply_pct`).
    StoreFaults { fail_pct: u32, lost_reply_pct: u32 },
    StoreFaultsHealed,
    /// Every store request stalls until the stall ends.
    StoreStall { ms: u64 },
    StoreStallHealed,
    /// Every lease write (acquire, renew, release) fails before commit;
    /// the rest of the store works: nobody can lead.
    LeaseOutage { ms: u64 },
    LeaseOutageHealed,
    RollingDeploy,
    RollingDeployDone,
    /// Cluster faults: pod creation fails (`pct`), or the API is slow.
    PodFailures { pct: u32 },
    PodFailuresHealed,
    ClusterSlow { ms: u64 },
    ClusterSlowHealed,
    /// Cluster operations `ops` (`list_pods`, `list_secrets`, deletes) fail
    /// (`slow_ms` = 0) or answer `slow_ms` late; the rest works.
    ClusterOpsFault { ops: String, slow_ms: u64 },
    ClusterOpsHealed { ops: String },
    /// A running pod died.
    PodDied { name: String },
    /// The cluster refuses to delete pod `name` for `ms`.
    DeleteRefused { name: String, ms: u64 },
    DeleteRefusalHealed { name: String },
    /// A replica leaves for good (scale down) or joins (scale up).
    ScaleDown { target: String },
    ScaleUp { target: String },
    /// A planned fault found nothing to act on when it fired (its target
    /// was down, no pod or spare replica existed, ...): it did nothing.
    FaultSkipped { fault: String, reason: String },
    /// All faults healed; only liveness checks remain.
    QuietPeriod,
    RunEnd { events: u64 },

    // --- oracle ---
    Violation { invariant: String, message: String },
}

impl EventKind {
    /// The snake_case tag (`"lease_acquired"`, ...).
    pub fn tag(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m.get("ev").and_then(|v| v.as_str()).unwrap_or("?").to_string(),
            _ => "?".to_string(),
        }
    }
}
