//! Faults: what the injector can do to the world, and a timed plan of them.
//!
//! A plan is drawn from the seed by a scenario before the run starts; the
//! injector follows it. Every fault heals by the end of the fault phase.

use serde::{Deserialize, Serialize};

/// Which replica a fault hits, resolved when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Replica by index (0-based).
    Replica(usize),
    /// Whoever holds the lease when the fault fires (a random replica if
    /// nobody does).
    Leader,
}

/// Which cluster operations a [`Fault::ClusterOps`] window hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterOps {
    PodLists,
    SecretLists,
    Deletes,
}

impl ClusterOps {
    pub const ALL: [ClusterOps; 3] = [ClusterOps::PodLists, ClusterOps::SecretLists, ClusterOps::Deletes];

    pub fn name(self) -> &'static str {
        match self {
            ClusterOps::PodLists => "pod_lists",
            ClusterOps::SecretLists => "secret_lists",
            ClusterOps::Deletes => "deletes",
        }
    }

    /// The cluster request kinds (`ClusterRequest::op`) it covers.
    pub fn requests(self) -> &'static [&'static str] {
        match self {
            ClusterOps::PodLists => &["list_pods"],
            ClusterOps::SecretLists => &["list_secrets"],
            ClusterOps::Deletes => &["delete_pod", "delete_secret"],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Fault {
    /// Kill the process (memory lost); restart it as a new instance after
    /// `down_ms`.
    Crash { target: Target, down_ms: u64 },
    /// Ask the process to shut down gracefully; kill it if it takes longer
    /// than the grace period; restart after `down_ms`.
    Shutdown { target: Target, down_ms: u64 },
    /// Shut down and restart every replica in turn, `gap_ms` apart.
    RollingDeploy { down_ms: u64, gap_ms: u64 },
    /// Cut the replica off from the store (both directions). Longer than
    /// the dead threshold, the fleet holds it dead while it still serves
    /// (a false-positive death, field report 001).
    Partition { target: Target, ms: u64 },
    /// Cut the replica off from the cluster API (both directions); the
    /// store stays reachable.
    ClusterPartition { target: Target, ms: u64 },
    /// The store answers this replica only after `extra_ms`.
    StoreSlow { target: Target, extra_ms: u64, ms: u64 },
    /// Writes fail before commit / commit but lose the reply.
    StoreFaults { fail_pct: u32, lost_reply_pct: u32, ms: u64 },
    /// Every store request waits until the stall ends.
    StoreStall { ms: u64 },
    /// Lease writes fail before commit while the rest of the store works
    /// (the lease table locked, a coordination API down): no leader.
    LeaseOutage { ms: u64 },
    /// Freeze the process (madsim pause), then resume it.
    Pause { target: Target, ms: u64 },
    /// Pod creation fails `pct` percent of the time.
    PodFailures { pct: u32, ms: u64 },
    /// A running pod (chosen when it fires) dies.
    PodDeath,
    /// The cluster API answers `extra_ms` late (what it does, it does on
    /// arrival).
    ClusterSlow { extra_ms: u64, ms: u64 },
    /// For `ms`, the cluster fails the operations `ops` (`slow_ms` = 0), or
    /// answers them `slow_ms` late (done on arrival); other operations work.
    ClusterOps { ops: ClusterOps, slow_ms: u64, ms: u64 },
    /// The cluster refuses to delete one pod (chosen when it fires) for
    /// `ms`: the pod stays, every delete of it fails.
    DeleteRefusal { ms: u64 },
    /// The next replica to create a secret crashes before creating its pod;
    /// it restarts after `down_ms`. Gives up after `wait_ms` with no spawn.
    CrashAfterSecret { down_ms: u64, wait_ms: u64 },
    /// The next replica to poll an activating pod crashes mid-activation.
    CrashInActivation { down_ms: u64, wait_ms: u64 },
    /// A running replica shuts down gracefully and does not come back.
    ScaleDown { target: Target },
    /// A spare replica starts.
    ScaleUp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedFault {
    pub at_ms: u64,
    pub fault: Fault,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub faults: Vec<PlannedFault>,
}

impl FaultPlan {
    pub fn push(&mut self, at_ms: u64, fault: Fault) {
        self.faults.push(PlannedFault { at_ms, fault });
    }

    /// Faults in firing order (stable for equal times).
    pub fn sorted(mut self) -> Self {
        self.faults.sort_by_key(|f| f.at_ms);
        self
    }
}
