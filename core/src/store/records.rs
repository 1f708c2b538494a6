//! Records, requests and replies of the store.

use super::cron_records::*;
use super::fleet_records::*;
use crate::clock::Millis;
use crate::ids::InstanceId;
use super::lifecycle::WorkerState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The durable lease record. `version` changes on every write (the CAS key);
/// `epoch` changes on every acquisition (the fencing token); `expires_at` is
/// in the store's time domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub name: String,
    pub holder: Option<InstanceId>,
    pub epoch: u64,
    pub expires_at: Millis,
    pub version: u64,
}

impl LeaseRecord {
    /// Free for the taking at store time `now`: released, or expired.
    pub fn is_free_at(&self, now: Millis) -> bool {
        self.holder.is_none() || self.expires_at <= now
    }
}

/// One committed leader-gated effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectRow {
    pub seq: u64,
    pub lease: String,
    pub holder: InstanceId,
    pub epoch: u64,
    pub effect: String,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreRequest {
    ReadLease { name: String },
    /// Take the lease if it is free or expired and its version is still
    /// `expected_version` (`None`: no record exists yet).
    AcquireLease { name: String, holder: InstanceId, expected_version: Option<u64>, ttl_ms: u64 },
    /// Extend the lease; only its holder, only at `expected_version`.
    RenewLease { name: String, holder: InstanceId, expected_version: u64, ttl_ms: u64 },
    /// Give the lease up; only its holder, only at `expected_version`.
    ReleaseLease { name: String, holder: InstanceId, expected_version: u64 },
    /// Commit a leader-gated effect iff `(holder, epoch)` still holds the
    /// lease, unexpired, at commit time.
    FencedEffect { name: String, holder: InstanceId, epoch: u64, effect: String },

    /// Register a fresh instance (heartbeat = now). With `dead_after_ms`,
    /// one already dead by it is refused ([`StoreReply::InstanceDead`]).
    RegisterInstance { id: InstanceId, dead_after_ms: Option<u64> },
    /// Stamp an instance's heartbeat with the store's now, unless it is
    /// already dead by `dead_after_ms` (then [`StoreReply::InstanceDead`]).
    HeartbeatInstance { id: InstanceId, dead_after_ms: Option<u64> },
    /// Mark an instance draining (shutting down, handing its sessions
    /// over); refused with [`StoreReply::InstanceDead`] if the store does
    /// not hold it alive by `dead_after_ms`.
    DrainInstance { id: InstanceId, dead_after_ms: Option<u64> },
    ListInstances,
    /// The records of `ids` the store holds, ordered by id: what a fallback
    /// pass asks of the owners its rows name, not the fleet's every
    /// instance (docs/design.md §12).
    ListInstancesOf { ids: BTreeSet<InstanceId> },
    /// Take a capacity slot for `worker` unless the org or the fleet is at
    /// its cap.
    ReserveSlot { worker: String, org: String, org_cap: u32, global_cap: u32 },
    FreeSlot { worker: String, fence: Option<LeaseFence> },
    ListSlots,
    /// The slots [`OwnScope`] names, ordered by worker (a fallback pass).
    ListSlotsOf { scope: OwnScope },
    /// Create a worker row (the store stamps its times; version 1).
    InsertWorker { worker: WorkerRecord },
    /// CAS a worker from `from` to `to` as `(owner, epoch)`, binding it to
    /// `session` (or none). `from == to` is a heartbeat.
    UpdateWorker {
        id: String,
        owner: InstanceId,
        epoch: u64,
        from: WorkerState,
        to: WorkerState,
        session: Option<u64>,
        fence: Option<LeaseFence>,
    },
    /// Take ownership: CAS on `(owner, epoch)` and, if `from` is given, the
    /// state; sets `new_owner` and bumps the epoch; moves the state to `to`
    /// in the same write if given (a reaper's take-over and its first step
    /// are one CAS, so the row never sits idle under the reaper's name).
    ClaimWorker {
        id: String,
        owner: InstanceId,
        epoch: u64,
        from: Option<WorkerState>,
        #[serde(default)]
        to: Option<WorkerState>,
        new_owner: InstanceId,
        fence: Option<LeaseFence>,
        /// Only if this floor lets the worker go, judged by the store in
        /// the same write.
        #[serde(default)]
        floor: Option<IdleFloor>,
    },
    ListWorkers,
    /// The rows [`OwnScope`] names, ordered by id (a fallback pass).
    ListWorkersOf { scope: OwnScope },
    /// The hot-idle rows of `org` bound to no session, ordered by id (a
    /// spawn looking for another replica's idle worker to claim).
    ListIdleWorkers { org: String },
    /// The rows bound to `session`, ordered by id (a reconnect).
    ListSessionWorkers { session: u64 },

    // --- cron coordination (docs/design.md §2.7) ---
    /// Create an active, unowned job (an admin's write).
    CreateJob { id: String, schedule: Schedule },
    /// Change a job's schedule, status or both (an admin's write).
    EditJob { id: String, schedule: Option<Schedule>, status: Option<JobStatus> },
    /// Move ownership by CAS on `(owner, epoch)`: claim, reassign, release.
    ClaimJob { id: String, owner: Option<InstanceId>, epoch: u64, new_owner: Option<InstanceId> },
    ListJobs,
    /// Commit the one record of `(job, slot)`, fenced by the job's
    /// ownership epoch ([`super::rules::cron::commit_fire`]).
    CommitFire {
        job: String,
        slot: Millis,
        owner: Option<InstanceId>,
        epoch: u64,
        kind: FireKind,
        cap: Option<u32>,
        hold_ms: u64,
        #[serde(default)]
        late_after_ms: u64,
        /// The job spec the firing timer was armed for.
        #[serde(default)]
        spec: u64,
    },
    /// Mark a run finished (frees its place against the cap).
    FinishFire { job: String, slot: Millis, owner: Option<InstanceId> },
    ReadFire { job: String, slot: Millis },
    /// The runs holding a place against the cap now.
    ListRunning,
    WriteSettings { value: String },
    ReadSettings,
}

impl StoreRequest {
    /// Short name of the operation, for traces and errors.
    pub fn op(&self) -> &'static str {
        match self {
            StoreRequest::ReadLease { .. } => "read_lease",
            StoreRequest::AcquireLease { .. } => "acquire_lease",
            StoreRequest::RenewLease { .. } => "renew_lease",
            StoreRequest::ReleaseLease { .. } => "release_lease",
            StoreRequest::FencedEffect { .. } => "fenced_effect",
            StoreRequest::RegisterInstance { .. } => "register_instance",
            StoreRequest::HeartbeatInstance { .. } => "heartbeat_instance",
            StoreRequest::DrainInstance { .. } => "drain_instance",
            // The same read, narrowed: one name in traces and faults.
            StoreRequest::ListInstances | StoreRequest::ListInstancesOf { .. } => "list_instances",
            StoreRequest::ReserveSlot { .. } => "reserve_slot",
            StoreRequest::FreeSlot { .. } => "free_slot",
            StoreRequest::ListSlots => "list_slots",
            StoreRequest::ListSlotsOf { .. } => "list_slots_of",
            StoreRequest::InsertWorker { .. } => "insert_worker",
            StoreRequest::UpdateWorker { .. } => "update_worker",
            StoreRequest::ClaimWorker { .. } => "claim_worker",
            StoreRequest::ListWorkers => "list_workers",
            StoreRequest::ListWorkersOf { .. } => "list_workers_of",
            StoreRequest::ListIdleWorkers { .. } => "list_idle_workers",
            StoreRequest::ListSessionWorkers { .. } => "list_session_workers",
            StoreRequest::CreateJob { .. } => "create_job",
            StoreRequest::EditJob { .. } => "edit_job",
            StoreRequest::ClaimJob { .. } => "claim_job",
            StoreRequest::ListJobs => "list_jobs",
            StoreRequest::CommitFire { .. } => "commit_fire",
            StoreRequest::FinishFire { .. } => "finish_fire",
            StoreRequest::ReadFire { .. } => "read_fire",
            StoreRequest::ListRunning => "list_running",
            StoreRequest::WriteSettings { .. } => "write_settings",
            StoreRequest::ReadSettings => "read_settings",
        }
    }

    /// The lease fence a leader-gated write carries, if any.
    pub fn fence(&self) -> Option<&LeaseFence> {
        match self {
            StoreRequest::FreeSlot { fence, .. }
            | StoreRequest::UpdateWorker { fence, .. }
            | StoreRequest::ClaimWorker { fence, .. } => fence.as_ref(),
            _ => None,
        }
    }

    /// Whether the request can change durable state.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            StoreRequest::ReadLease { .. }
                | StoreRequest::ListInstances
                | StoreRequest::ListInstancesOf { .. }
                | StoreRequest::ListSlots
                | StoreRequest::ListSlotsOf { .. }
                | StoreRequest::ListWorkers
                | StoreRequest::ListWorkersOf { .. }
                | StoreRequest::ListIdleWorkers { .. }
                | StoreRequest::ListSessionWorkers { .. }
                | StoreRequest::ListJobs
                | StoreRequest::ReadFire { .. }
                | StoreRequest::ListRunning
                | StoreRequest::ReadSettings
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreReply {
    Lease(Option<LeaseRecord>),
    Cas(CasResult),
    Effect(EffectResult),
    Done,
    /// A heartbeat or registration of an instance the store already holds
    /// dead: refused, nothing changed.
    InstanceDead,
    /// Lists carry the store's `now`, so callers judge ages in store time.
    Instances { now: Millis, list: Vec<InstanceRecord> },
    Slot(SlotResult),
    Slots { now: Millis, list: Vec<SlotRecord> },
    Worker(WorkerCas),
    Workers { now: Millis, list: Vec<WorkerRecord> },
    Job(JobCas),
    Jobs { now: Millis, list: Vec<JobRecord> },
    Fire(FireResult),
    FireRead(Option<FireRecord>),
    Running { now: Millis, list: Vec<FireRecord> },
    Settings(Option<SettingsRecord>),
    SettingsWritten { version: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CasResult {
    Applied(LeaseRecord),
    Rejected { reason: Reject, current: Option<LeaseRecord> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reject {
    /// The record's version is not the one the caller read.
    StaleVersion,
    /// Someone else holds an unexpired lease.
    HeldByOther,
    /// Renew or release by an instance that does not hold the lease.
    NotHolder,
    /// Renew or release of a lease that was never created.
    NoRecord,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EffectResult {
    Applied { seq: u64 },
    Rejected { reason: FenceReject },
    /// This effect key already committed (at `seq`): nothing was written.
    Duplicate { seq: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FenceReject {
    NoLease,
    NotHolder,
    StaleEpoch,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreError {
    /// No answer in time (network, timeout, lost reply): the request may or
    /// may not have committed.
    Unavailable(String),
    /// The write failed before commit: nothing changed.
    Failed(String),
    /// The backend itself failed (e.g. an SQLite error).
    Backend(String),
    /// A reply of the wrong shape for the request.
    Protocol(String),
}

impl StoreError {
    pub(crate) fn protocol(op: &str, got: &StoreReply) -> Self {
        StoreError::Protocol(format!("{op}: unexpected reply {got:?}"))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "store unavailable: {m}"),
            StoreError::Failed(m) => write!(f, "store write failed before commit: {m}"),
            StoreError::Backend(m) => write!(f, "store backend error: {m}"),
            StoreError::Protocol(m) => write!(f, "store protocol error: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}
