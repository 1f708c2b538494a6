//! The state of one run's world, shared by its nodes, injector and oracle.
//!
//! Everything a run touches lives here (no statics), so seeds in one process
//! never influence each other. Every event goes through [`World::record`],
//! which stamps it with global simulated time, appends it to the trace and
//! hands it to the oracle at once.

use crate::oracle::{Oracle, Violation};
use crate::options::{ClockSpec, RunOptions};
use haywire_core::cluster::MemCluster;
use haywire_core::store::StoreBackend;
use haywire_traces::{Event, EventKind};
use madsim::task::NodeId;
use madsim::time::Instant;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use haywire_core::signal as watch;
use tokio::sync::Notify;

/// One replica machine (a madsim node that restarts as new instances).
pub struct Slot {
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
    /// How many partition / slow-store / pause faults currently hold this
    /// replica: overlapping faults nest, and the replica heals when the
    /// last one ends.
    pub depth: FaultDepth,
}

#[derive(Default, Clone, Copy, Debug)]
pub struct FaultDepth {
    pub partition: u32,
    pub cluster_partition: u32,
    pub slow: u32,
    pub pause: u32,
}

/// A crash armed to fire at a moment inside a spawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// Right after a replica's secret is created (before its pod).
    AfterSecret,
    /// While a replica polls a pod that is still starting.
    InActivation,
}

/// Cluster-side fault switches and traps.
#[derive(Default)]
pub struct ClusterFaultState {
    pub pod_fail_pct: u32,
    pub slow_ms: u64,
    pub trap: Option<Trap>,
    /// The replica a trap crashed, for the injector to restart.
    pub trapped: Option<usize>,
    /// Pods the cluster refuses to delete.
    pub refused: std::collections::BTreeSet<String>,
    /// Operation faults on now: (kind, slow ms; 0 = fail), one per window.
    pub ops: Vec<(crate::faults::ClusterOps, u64)>,
}

/// Store-side fault switches, set by the injector, read per request.
#[derive(Default)]
pub struct StoreFaultState {
    pub fail_pct: u32,
    pub lost_reply_pct: u32,
    pub stall_until: Option<Instant>,
    /// Lease writes fail before commit.
    pub lease_outage: bool,
    /// Extra latency per replica index.
    pub slow_ms: Vec<u64>,
}

pub struct Inner {
    pub origin: Instant,
    pub events: Vec<Event>,
    pub oracle: Oracle,
    pub violation: Option<Violation>,
    next_instance: u64,
    pub slots: Vec<Slot>,
    pub store_addr: SocketAddr,
    pub store_node: Option<NodeId>,
    pub backend: Box<dyn StoreBackend>,
    pub store_faults: StoreFaultState,
    pub cluster_addr: SocketAddr,
    pub cluster_node: Option<NodeId>,
    pub cluster: MemCluster,
    pub cluster_faults: ClusterFaultState,
    /// Pod start times are drawn in [lo, hi].
    pub pod_start_ms: (u64, u64),
    next_session: u64,
    /// True once the quiet period began: clients open no new sessions.
    pub quiet: bool,
    pub workload: crate::options::Workload,
    /// Draws the world's own random choices (store fault rolls, which
    /// replica a "leader" fault hits when there is none), in event order.
    pub rng: ChaCha8Rng,
}

pub struct World {
    inner: Mutex<Inner>,
    /// Notified once when the oracle reports a violation.
    pub violated: Notify,
}

impl World {
    pub fn new(opts: &RunOptions, seed: u64, backend: Box<dyn StoreBackend>, oracle: Oracle) -> Arc<World> {
        let slots = (0..opts.replicas)
            .map(|i| Slot {
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
        Arc::new(World {
            inner: Mutex::new(Inner {
                origin: Instant::now(),
                events: Vec::new(),
                oracle,
                violation: None,
                next_instance: 1,
                slots,
                store_addr: "10.0.0.1:5000".parse().expect("static address"),
                store_node: None,
                backend,
                store_faults: StoreFaultState { slow_ms: vec![0; opts.replicas], ..Default::default() },
                cluster_addr: "10.0.0.2:5000".parse().expect("static address"),
                cluster_node: None,
                cluster: MemCluster::new(),
                cluster_faults: ClusterFaultState::default(),
                pod_start_ms: opts.pod_start_ms,
                next_session: 1,
                quiet: false,
                workload: opts.workload.clone(),
                // A stream separate from madsim's and the plan's.
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f_57_0e_e5),
            }),
            violated: Notify::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not hide the trace.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Global simulated time since the run began, in microseconds.
    pub fn now_us(&self) -> u64 {
        self.lock().origin.elapsed().as_micros() as u64
    }

    /// Record an event and let the oracle judge it.
    pub fn record(&self, node: &str, inst: Option<u64>, kind: EventKind) {
        let mut g = self.lock();
        if g.violation.is_some() {
            return; // the run is over; keep the trace ending at the violation
        }
        let t = g.origin.elapsed().as_micros() as u64;
        let event = Event { t, node: node.to_string(), inst, kind };
        let verdict = g.oracle.observe(&event);
        g.events.push(event);
        if let Some(v) = verdict {
            self.violate(&mut g, v);
        }
    }

    /// Let the oracle check deadlines that expire without any event.
    pub fn tick(&self) {
        let mut g = self.lock();
        if g.violation.is_some() {
            return;
        }
        let t = g.origin.elapsed().as_micros() as u64;
        if let Some(v) = g.oracle.check_time(t) {
            self.violate(&mut g, v);
        }
    }

    /// End-of-run checks, after the quiet period.
    pub fn finish(&self) {
        let mut g = self.lock();
        if g.violation.is_some() {
            return;
        }
        let t = g.origin.elapsed().as_micros() as u64;
        if let Some(v) = g.oracle.check_time(t).or_else(|| g.oracle.finish(t)) {
            self.violate(&mut g, v);
        }
    }

    fn violate(&self, g: &mut Inner, v: Violation) {
        let t = g.origin.elapsed().as_micros() as u64;
        g.events.push(Event {
            t,
            node: "sim".into(),
            inst: None,
            kind: EventKind::Violation { invariant: v.invariant.to_string(), message: v.message.clone() },
        });
        g.violation = Some(v);
        self.violated.notify_one();
    }

    pub fn is_violated(&self) -> bool {
        self.lock().violation.is_some()
    }

    /// A fresh instance id for a process start.
    pub fn mint_instance(&self, slot: usize) -> u64 {
        let mut g = self.lock();
        let id = g.next_instance;
        g.next_instance += 1;
        g.slots[slot].instance = Some(id);
        g.slots[slot].exited = false;
        id
    }

    /// Replica `slot`'s instance fenced itself and its host dropped it: no
    /// task of it runs any more. The process stays up and rejoins as a new
    /// instance once the store answers (see `replica_node::process`).
    pub fn fenced(&self, slot: usize) {
        let name = {
            let mut g = self.lock();
            g.slots[slot].instance = None;
            g.slots[slot].name.clone()
        };
        self.record("sim", None, EventKind::SelfFenced { target: name });
    }

    /// A fresh client session id.
    pub fn next_session(&self) -> u64 {
        let mut g = self.lock();
        let s = g.next_session;
        g.next_session += 1;
        s
    }

    /// Roll the store fault dice for one request: (fail before commit, lose
    /// the reply). Reads are never failed.
    pub fn roll_store_faults(&self, is_write: bool) -> (bool, bool) {
        let mut g = self.lock();
        let (fail, lost) = (g.store_faults.fail_pct, g.store_faults.lost_reply_pct);
        if !is_write || (fail == 0 && lost == 0) {
            return (false, false);
        }
        let f = g.rng.gen_range(0..100) < fail;
        let l = !f && g.rng.gen_range(0..100) < lost;
        (f, l)
    }
}
