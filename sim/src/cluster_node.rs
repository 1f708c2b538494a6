//! The k8s-like cluster API as its own node, with its own faults: pod
//! creation failing, the API answering late, one kind of operation (pod
//! lists, secret lists, deletes) failing or late, pods dying, deletes
//! refused, and traps that crash a replica at a chosen moment of a spawn
//! (right after its secret, or mid-activation). The node holds the cluster
//! itself, those fault switches and traps, and how long its pods take to
//! start.

use crate::faults::ClusterOps;
use crate::processes::ProcessTable;
use crate::recorder::RunRecorder;
use crate::rpc::{self, CLUSTER_TAG};
use crate::world::{Shared, World};
use haywire_core::cluster::{ClusterError, ClusterReply, ClusterRequest, MemCluster, PodPhase};
use haywire_core::worker::headroom::is_placeholder;
use haywire_traces::EventKind;
use madsim::net::Endpoint;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub type ClusterResult = Result<ClusterReply, ClusterError>;

/// Where the cluster node listens.
pub const CLUSTER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)), 5000);

/// The cluster node's state.
pub struct ClusterNode {
    pub cluster: MemCluster,
    pub faults: ClusterFaultState,
    pub traps: Traps,
    /// Pod start times are drawn in [lo, hi].
    pub pod_start_ms: (u64, u64),
}

/// Cluster-side fault switches.
#[derive(Default)]
pub struct ClusterFaultState {
    pub pod_fail_pct: u32,
    pub slow_ms: u64,
    /// Pods the cluster refuses to delete.
    pub refused: BTreeSet<String>,
    /// Operation faults on now: (kind, slow ms; 0 = fail), one per window.
    pub ops: Vec<(ClusterOps, u64)>,
}

/// A crash armed to fire at a moment inside a spawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// Right after a replica's secret is created (before its pod).
    AfterSecret,
    /// While a replica polls a pod that is still starting.
    InActivation,
}

/// The crash traps: at most one armed or sprung at a time.
#[derive(Default)]
pub struct Traps {
    armed: Option<Trap>,
    /// The replica a trap crashed, for the injector to restart.
    sprung: Option<usize>,
}

impl Traps {
    /// Arm `trap`; false while another is armed, or sprung and not yet
    /// seen by its task (which still owes that replica its restart).
    pub fn arm(&mut self, trap: Trap) -> bool {
        if self.armed.is_some() || self.sprung.is_some() {
            return false;
        }
        self.armed = Some(trap);
        true
    }

    pub fn disarm(&mut self) {
        self.armed = None;
    }

    /// The replica the armed trap crashed, if it sprang.
    pub fn take_sprung(&mut self) -> Option<usize> {
        self.sprung.take()
    }

    /// Does `req`, which the cluster did with `result`, spring the trap?
    fn springs(&self, req: &ClusterRequest, result: &ClusterResult) -> bool {
        match (req, result, self.armed) {
            (ClusterRequest::CreateSecret { .. }, Ok(_), Some(Trap::AfterSecret)) => true,
            (ClusterRequest::GetPod { .. }, Ok(ClusterReply::Pod(Some(p))), Some(Trap::InActivation)) => {
                p.phase == PodPhase::Pending
            }
            _ => false,
        }
    }

    fn spring(&mut self, replica: usize) {
        self.armed = None;
        self.sprung = Some(replica);
    }
}

impl ClusterNode {
    pub fn new(pod_start_ms: (u64, u64)) -> Self {
        ClusterNode { cluster: MemCluster::new(), faults: ClusterFaultState::default(), traps: Traps::default(), pod_start_ms }
    }
}

/// The cluster node's main task.
pub async fn serve(world: Arc<World>) {
    let ep = match Endpoint::bind(CLUSTER_ADDR).await {
        Ok(ep) => ep,
        Err(e) => panic!("cluster node cannot bind {CLUSTER_ADDR}: {e}"),
    };
    let loops = world.serve_loops;
    rpc::serve_from(ep, CLUSTER_TAG, loops, move |sender: rpc::Requester, req: ClusterRequest| {
        let world = world.clone();
        async move { handle(&world.cluster, &world.rng, &world.recorder, &world.processes, sender, req).await }
    })
    .await
}

/// Apply one request through the fault layer. `None`: no reply (the caller
/// was crashed by a trap).
async fn handle(
    node: &Shared<ClusterNode>,
    rng: &Shared<ChaCha8Rng>,
    recorder: &RunRecorder,
    processes: &Shared<ProcessTable>,
    sender: rpc::Requester,
    req: ClusterRequest,
) -> Option<ClusterResult> {
    let rpc::Requester { from, replica, gated } = sender;
    let record = |kind| recorder.record("cluster", None, kind);
    let failed = |error: &str| {
        record(EventKind::ClusterFailed { from, op: req.op().into(), error: error.into() });
        Some(Err(ClusterError::Failed(error.into())))
    };
    let (result, trap_fires, op_slow_ms) = {
        let mut g = node.lock();
        let now = recorder.now_ms();
        if let ClusterRequest::DeletePod { name } = &req {
            if g.faults.refused.contains(name) {
                drop(g);
                return failed("injected: delete refused");
            }
        }
        // An operation fault: the first window on for this kind of request.
        let op_fault = g.faults.ops.iter().find(|(ops, _)| ops.requests().contains(&req.op())).map(|o| o.1);
        if op_fault == Some(0) {
            drop(g);
            return failed("injected: operation failed");
        }
        if let ClusterRequest::CreatePod { .. } = req {
            let mut rng = rng.lock();
            let pct = g.faults.pod_fail_pct;
            if pct > 0 && rng.gen_range(0..100) < pct {
                drop(g);
                return failed("injected pod creation failure");
            }
            let (lo, hi) = g.pod_start_ms;
            let start = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
            g.cluster.set_next_start_ms(start);
        }
        let result = g.cluster.apply(&req, now);
        let trap = g.traps.springs(&req, &result);
        (result, trap && replica < processes.lock().machines.len(), op_fault.unwrap_or(0))
    };
    match (&req, &result) {
        (ClusterRequest::CreateSecret { name, .. }, Ok(_)) => {
            record(EventKind::SecretCreated { from, name: name.clone(), gated })
        }
        (ClusterRequest::DeleteSecret { name }, Ok(_)) => record(EventKind::SecretDeleted { from, name: name.clone(), gated }),
        (ClusterRequest::CreatePod { name, labels }, Ok(_)) => {
            let start_ms = node.lock().cluster.start_delay(name).unwrap_or(0);
            let placeholder = is_placeholder(labels);
            record(EventKind::PodCreated { from, name: name.clone(), start_ms, placeholder, gated });
        }
        (ClusterRequest::DeletePod { name }, Ok(_)) => record(EventKind::PodDeleted { from, name: name.clone(), gated }),
        _ => {}
    }
    if trap_fires {
        crash_requester(node, recorder, processes, replica);
        return None;
    }
    // A slow API answers late; what it did, it did on arrival (so a call
    // the caller gave up on is still done, but never later than sent).
    let slow = node.lock().faults.slow_ms + op_slow_ms;
    if slow > 0 {
        crate::timer::sleep(Duration::from_millis(slow)).await;
    }
    Some(result)
}

/// A trap fired: kill the replica that made the request, right now.
fn crash_requester(node: &Shared<ClusterNode>, recorder: &RunRecorder, processes: &Shared<ProcessTable>, replica: usize) {
    node.lock().traps.spring(replica);
    let (id, name) = {
        let mut p = processes.lock();
        let m = &mut p.machines[replica];
        m.instance = None;
        (m.node, m.name.clone())
    };
    if let Some(id) = id {
        madsim::runtime::Handle::current().kill(id);
    }
    recorder.record("sim", None, EventKind::Crash { target: name });
}
