//! The k8s-like cluster API as its own node, with its own faults: pod
//! creation failing, the API answering late, one kind of operation (pod
//! lists, secret lists, deletes) failing or late, pods dying, and traps that
//! crash a replica at a chosen moment of a spawn (right after its secret,
//! or mid-activation).

use crate::rpc::{self, CLUSTER_TAG};
use crate::world::{Trap, World};
use haywire_core::cluster::{ClusterError, ClusterReply, ClusterRequest, PodPhase};
use haywire_core::worker::headroom::is_placeholder;
use haywire_traces::EventKind;
use madsim::net::Endpoint;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

pub type Reply = Result<ClusterReply, ClusterError>;

/// The cluster node's main task.
pub async fn serve(world: Arc<World>) {
    let addr = world.lock().cluster_addr;
    let ep = match Endpoint::bind(addr).await {
        Ok(ep) => ep,
        Err(e) => panic!("cluster node cannot bind {addr}: {e}"),
    };
    rpc::serve(ep, CLUSTER_TAG, move |sender: rpc::Sender, req: ClusterRequest| {
        let world = world.clone();
        async move { handle(&world, sender, req).await }
    })
    .await
}

fn record(world: &World, kind: EventKind) {
    world.record("cluster", None, kind);
}

/// Apply one request through the fault layer. `None`: no reply (the caller
/// was crashed by a trap).
async fn handle(world: &World, sender: rpc::Sender, req: ClusterRequest) -> Option<Reply> {
    let rpc::Sender { from, replica, gated } = sender;
    let (result, trap_fires, op_slow_ms) = {
        let mut g = world.lock();
        let now = g.origin.elapsed().as_millis() as u64;
        if let ClusterRequest::DeletePod { name } = &req {
            if g.cluster_faults.refused.contains(name) {
                drop(g);
                let error = "injected: delete refused".to_string();
                record(world, EventKind::ClusterFailed { from, op: req.op().into(), error: error.clone() });
                return Some(Err(ClusterError::Failed(error)));
            }
        }
        // An operation fault: the first window on for this kind of request.
        let op_fault = g.cluster_faults.ops.iter().find(|(ops, _)| ops.requests().contains(&req.op())).map(|o| o.1);
        if op_fault == Some(0) {
            drop(g);
            let error = "injected: operation failed".to_string();
            record(world, EventKind::ClusterFailed { from, op: req.op().into(), error: error.clone() });
            return Some(Err(ClusterError::Failed(error)));
        }
        if let ClusterRequest::CreatePod { .. } = req {
            let pct = g.cluster_faults.pod_fail_pct;
            if pct > 0 && g.rng.gen_range(0..100) < pct {
                drop(g);
                let error = "injected pod creation failure".to_string();
                record(world, EventKind::ClusterFailed { from, op: req.op().into(), error: error.clone() });
                return Some(Err(ClusterError::Failed(error)));
            }
            let (lo, hi) = g.pod_start_ms;
            let start = if hi > lo { g.rng.gen_range(lo..=hi) } else { lo };
            g.cluster.set_next_start_ms(start);
        }
        let result = g.cluster.apply(&req, now);
        let trap = match (&req, &result, g.cluster_faults.trap) {
            (ClusterRequest::CreateSecret { .. }, Ok(_), Some(Trap::AfterSecret)) => true,
            (ClusterRequest::GetPod { .. }, Ok(ClusterReply::Pod(Some(p))), Some(Trap::InActivation)) => {
                p.phase == PodPhase::Pending
            }
            _ => false,
        };
        (result, trap && replica < g.slots.len(), op_fault.unwrap_or(0))
    };
    match (&req, &result) {
        (ClusterRequest::CreateSecret { name, .. }, Ok(_)) => {
            record(world, EventKind::SecretCreated { from, name: name.clone(), gated })
        }
        (ClusterRequest::DeleteSecret { name }, Ok(_)) => {
            record(world, EventKind::SecretDeleted { from, name: name.clone(), gated })
        }
        (ClusterRequest::CreatePod { name, labels }, Ok(_)) => {
            let start_ms = world.lock().cluster.start_delay(name).unwrap_or(0);
            let placeholder = is_placeholder(labels);
            record(world, EventKind::PodCreated { from, name: name.clone(), start_ms, placeholder, gated });
        }
        (ClusterRequest::DeletePod { name }, Ok(_)) => {
            record(world, EventKind::PodDeleted { from, name: name.clone(), gated })
        }
        _ => {}
    }
    if trap_fires {
        crash_requester(world, replica);
        return None;
    }
    // A slow API answers late; what it did, it did on arrival (so a call
    // the caller gave up on is still done, but never later than sent).
    let slow = world.lock().cluster_faults.slow_ms + op_slow_ms;
    if slow > 0 {
        madsim::time::sleep(Duration::from_millis(slow)).await;
    }
    Some(result)
}

/// A trap fired: kill the replica that made the request, right now.
fn crash_requester(world: &World, replica: usize) {
    let (node, name) = {
        let mut g = world.lock();
        g.cluster_faults.trap = None;
        g.cluster_faults.trapped = Some(replica);
        let slot = &mut g.slots[replica];
        slot.instance = None;
        (slot.node, slot.name.clone())
    };
    if let Some(node) = node {
        madsim::runtime::Handle::current().kill(node);
    }
    world.record("sim", None, EventKind::Crash { target: name });
}
