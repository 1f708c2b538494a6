//! The process table: one machine per replica (a madsim node that restarts
//! as new instances), the instance ids minted for its starts, and how many
//! faults of each nesting kind hold it now.

use crate::options::{ClockSpec, RunOptions};
use haywire_core::signal as watch;
use madsim::task::NodeId;

/// One replica machine.
pub struct Machine {
    pub name: String,
    pub node: Option<NodeId>,
    pub clock: ClockSpec,
    /// The running incarnation, if the process is up.
    pub instance: Option<u64>,
    /// Set by the running process: send `true` to shut it down gracefully.
    pub shutdown: Option<watch::Sender<bool>>,
    /// Set when the process finished a graceful shutdown.
    pub exited: bool,
    /// Whether the replica is part of the deployment (spares join on scale
    /// up; scaled-down ones leave).
    pub enabled: bool,
    /// Faults holding this machine now, per kind.
    pub depth: FaultDepth,
}

/// The faults on one machine that nest: overlapping faults of one kind
/// count up, and the machine heals when the last one ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nested {
    Partition,
    ClusterPartition,
    StoreSlow,
    Pause,
}

#[derive(Default, Clone, Copy, Debug)]
pub struct FaultDepth {
    partition: u32,
    cluster_partition: u32,
    store_slow: u32,
    pause: u32,
}

impl FaultDepth {
    fn of(&mut self, kind: Nested) -> &mut u32 {
        match kind {
            Nested::Partition => &mut self.partition,
            Nested::ClusterPartition => &mut self.cluster_partition,
            Nested::StoreSlow => &mut self.store_slow,
            Nested::Pause => &mut self.pause,
        }
    }

    /// One more fault of `kind`; true if it is the first (the world changes).
    pub fn enter(&mut self, kind: Nested) -> bool {
        let d = self.of(kind);
        *d += 1;
        *d == 1
    }

    /// One fault of `kind` ended; true if it was the last (the world heals).
    pub fn leave(&mut self, kind: Nested) -> bool {
        let d = self.of(kind);
        *d = d.saturating_sub(1);
        *d == 0
    }
}

pub struct ProcessTable {
    pub machines: Vec<Machine>,
    next_instance: u64,
}

impl ProcessTable {
    pub fn new(opts: &RunOptions) -> Self {
        let machines = (0..opts.replicas)
            .map(|i| Machine {
                name: format!("r{}", i + 1),
                node: None,
                clock: opts.clocks[i],
                instance: None,
                shutdown: None,
                exited: false,
                enabled: i < opts.initial_replicas,
                depth: FaultDepth::default(),
            })
            .collect();
        ProcessTable { machines, next_instance: 1 }
    }

    /// A fresh instance id for a start of machine `i`.
    pub fn mint_instance(&mut self, i: usize) -> u64 {
        let id = self.next_instance;
        self.next_instance += 1;
        self.machines[i].instance = Some(id);
        self.machines[i].exited = false;
        id
    }

    /// The machine running instance `inst`, if any.
    pub fn running(&self, inst: u64) -> Option<usize> {
        self.machines.iter().position(|m| m.instance == Some(inst))
    }

    /// Machines in the deployment with a process up.
    pub fn up_in_deployment(&self) -> usize {
        self.machines.iter().filter(|m| m.enabled && m.instance.is_some()).count()
    }
}
