//! Records of the worker fleet: workers, instances and capacity slots, and
//! the requests and replies that change them.

use crate::clock::Millis;
use crate::ids::InstanceId;
use super::lifecycle::WorkerState;
use serde::{Deserialize, Serialize};

/// One worker (a pod plus its secret). Every change is a CAS on
/// `(id, owner, owner_epoch)`; taking ownership bumps `owner_epoch`, so a
/// stale owner's write is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub id: String,
    pub org: String,
    pub state: WorkerState,
    pub owner: InstanceId,
    pub owner_epoch: u64,
    pub pod: String,
    pub secret: String,
    /// The client session the worker serves, if any.
    pub session: Option<u64>,
    pub created_at: Millis,
    /// Last write (a heartbeat during a long activation bumps it).
    pub updated_at: Millis,
    /// When it last became hot-idle.
    pub idle_since: Millis,
    /// +1 on every applied write.
    pub version: u64,
}

/// A registered process incarnation and its last heartbeat (store time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
    /// The instance is shutting down: it takes no new sessions and hands
    /// its live ones over, so another replica may take a session's worker
    /// from it (docs/design.md §2.5). Set once, never cleared.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
}

/// A capacity slot held by one worker from spawn until it is retired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub worker: String,
    pub org: String,
    pub reserved_at: Millis,
}

/// The part of the fleet one replica's own reaper can act on (docs/design.md
/// §2.4, §12): instead of every row, the store answers with the rows (or
/// slots) a fallback pass reads, through its indexes, so that a replica's
/// pass costs what its own share of the fleet costs, not the whole fleet.
/// The rule is [`super::rules::workers::in_scope`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnScope {
    /// The reaping instance: every row it owns.
    pub instance: InstanceId,
    /// Every worker it minted: ids starting with this.
    pub minted_prefix: String,
    /// Rows it is in the middle of taking over, whatever their owner.
    pub ids: Vec<String>,
    /// And the unended rows of every owner the store does not hold alive by
    /// this threshold at its `now` (dead, or unknown to it).
    pub dead_after_ms: u64,
}

/// Leader-gated writes carry the lease epoch that authorised them; the
/// store applies them only while `holder` holds the lease at `epoch`,
/// unexpired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFence {
    pub lease: String,
    pub holder: InstanceId,
    pub epoch: u64,
}

/// The idle floor a reaper's claim of another owner's hot-idle worker
/// names (docs/design.md §2.4, "Reapers"): the store takes the worker only
/// if, at its own `now` and in the claim's own write, the worker is idle
/// past `ttl_ms` and outside its owner's newest `keep` hot-idle workers
/// (`worker/floor.rs`). A view listed before the claim cannot see the
/// owner's newer idle worker taken meanwhile; at fleet scale a janitor's
/// pass works through a view seconds old.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleFloor {
    pub keep: u32,
    pub ttl_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerReject {
    NoWorker,
    /// Insert of an id that exists.
    Exists,
    /// `(owner, owner_epoch)` is not the current one.
    StaleOwner,
    /// The worker is not in the expected `from` state.
    WrongState,
    /// `from → to` is not a lifecycle step.
    BadTransition,
    /// The lease fence does not hold.
    Fenced,
    /// A claim naming an [`IdleFloor`] of a worker the floor keeps (or not
    /// yet idle past the TTL, or not hot-idle at all).
    InFloor,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerCas {
    Applied(WorkerRecord),
    Rejected { reason: WorkerReject, current: Option<WorkerRecord> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotResult {
    Reserved,
    /// The org already holds `org_cap` slots.
    OrgCap,
    /// The fleet already holds `global_cap` slots.
    GlobalCap,
    /// This worker already holds a slot.
    Exists,
    Freed,
    NotFound,
    Fenced,
}
