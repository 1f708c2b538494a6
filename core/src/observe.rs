//! The observation seam: what core reports about itself.
//!
//! Core calls an [`Observer`] at every step that matters; production logs
//! through `tracing`, the simulator turns the calls into trace events and
//! feeds its oracle.

use crate::ids::InstanceId;
use crate::lease::BoxLoop;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreEvent {
    /// The process started with this instance id.
    Started { instance: InstanceId },
    /// The store confirmed this instance as holder at `epoch`; leader-gated
    /// work may start.
    LeaseAcquired { epoch: u64 },
    LeaseRenewed { epoch: u64 },
    /// The holder gave up leadership (it may still be the holder in the
    /// store until it releases or the lease expires).
    SteppedDown { epoch: u64, reason: String },
    LeaseReleased { epoch: u64 },
    ReleaseFailed { epoch: u64, reason: String },
    LoopStarted { name: &'static str, epoch: u64 },
    LoopStopped { name: &'static str, epoch: u64 },
    /// Every leader-gated loop of this epoch has exited.
    LeaderWorkStopped { epoch: u64 },
    EffectApplied { epoch: u64, seq: u64 },
    EffectRejected { epoch: u64, reason: String },
    EffectUnknown { epoch: u64, error: String },
    /// Graceful shutdown began / finished.
    ShutdownBegan,
    ShutdownDone,
    HeartbeatFailed { error: String },
    /// No heartbeat confirmed in time: this instance may be dead to the
    /// registry, so it fences itself (its host restarts it as a new one).
    Fenced { reason: String },
    /// A spawn failed; its slot, row, secret and pod were cleaned up (as far
    /// as the store and cluster allowed).
    SpawnFailed { worker: String, reason: String },
    /// One pass of a reaper (`janitor` or `fallback`) failed; the others ran.
    ReapFailed { reaper: &'static str, pass: &'static str, error: String },
}

pub trait Observer: Send + Sync + 'static {
    fn observe(&self, event: CoreEvent);

    /// Core hands every leader-gated task it is about to spawn through
    /// here, so that a host can watch the task itself run and finish (the
    /// simulator's task probe: S2 judges leadership from when leader tasks
    /// really run, not from what core reports). The default runs it as is.
    fn leader_task(&self, _name: &'static str, _epoch: u64, task: BoxLoop) -> BoxLoop {
        task
    }
}

/// Drops everything.
pub struct NullObserver;

impl Observer for NullObserver {
    fn observe(&self, _event: CoreEvent) {}
}

/// Logs every event through `tracing`.
pub struct TracingObserver {
    pub instance: InstanceId,
}

impl Observer for TracingObserver {
    fn observe(&self, event: CoreEvent) {
        tracing::info!(instance = %self.instance, ?event, "haywire-core");
    }
}
