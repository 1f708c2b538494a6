//! The store as its own node, reached over the simulated network, with the
//! store fault layer madsim does not have: fail before commit, commit with
//! the reply lost, stall, lease outage and per-replica slowness. The node
//! holds the backend and its fault switches (set by the injector, read per
//! request).

use crate::recorder::RunRecorder;
use crate::rpc::{self, STORE_TAG};
use crate::store_events::describe;
use crate::world::{Shared, World};
use haywire_core::store::{StoreBackend, StoreError, StoreRequest};
use haywire_core::InstanceId;
use haywire_traces::EventKind;
use madsim::net::Endpoint;
use madsim::time::Instant;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::store_events::StoreResult;

/// Where the store node listens.
pub const STORE_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)), 5000);

/// The store node's state: the backend and the faults on it.
pub struct StoreNode {
    pub backend: Box<dyn StoreBackend>,
    pub faults: StoreFaultState,
    /// Requests that reached the node (the bench's per-request cost).
    pub requests: u64,
}

/// Store-side fault switches.
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

impl StoreNode {
    pub fn new(backend: Box<dyn StoreBackend>, replicas: usize) -> Self {
        StoreNode { backend, faults: StoreFaultState { slow_ms: vec![0; replicas], ..Default::default() }, requests: 0 }
    }
}

impl StoreFaultState {
    /// Roll the fault dice for one request: (fail before commit, lose the
    /// reply). Reads are never failed, and nothing is drawn while no write
    /// fault is on.
    fn roll(&self, is_write: bool, rng: &mut ChaCha8Rng) -> (bool, bool) {
        let (fail, lost) = (self.fail_pct, self.lost_reply_pct);
        if !is_write || (fail == 0 && lost == 0) {
            return (false, false);
        }
        let f = rng.gen_range(0..100) < fail;
        let l = !f && rng.gen_range(0..100) < lost;
        (f, l)
    }
}

/// The store node's main task.
pub async fn serve(world: Arc<World>) {
    let ep = match Endpoint::bind(STORE_ADDR).await {
        Ok(ep) => ep,
        Err(e) => panic!("store node cannot bind {STORE_ADDR}: {e}"),
    };
    let loops = world.serve_loops;
    rpc::serve_from(ep, STORE_TAG, loops, move |sender: rpc::Requester, req: StoreRequest| {
        let world = world.clone();
        async move {
            let from = (InstanceId(sender.from), sender.replica);
            handle(&world.store, &world.rng, &world.recorder, from, req).await
        }
    })
    .await
}

/// Apply one request through the fault layer. `None`: the reply is lost.
async fn handle(
    store: &Shared<StoreNode>,
    rng: &Shared<ChaCha8Rng>,
    recorder: &RunRecorder,
    (from, replica): (InstanceId, usize),
    req: StoreRequest,
) -> Option<StoreResult> {
    let slow = {
        let mut node = store.lock();
        node.requests += 1;
        node.faults.slow_ms.get(replica).copied().unwrap_or(0)
    };
    if slow > 0 {
        crate::timer::sleep(Duration::from_millis(slow)).await;
    }
    loop {
        let until = store.lock().faults.stall_until;
        match until {
            Some(until) if until > madsim::time::Instant::now() => crate::timer::sleep_until(until).await,
            _ => break,
        }
    }
    let failed = |why: &str| {
        recorder.record("store", None, EventKind::StoreFailed { from: from.0, op: req.op().to_string() });
        Some(Err(StoreError::Failed(why.into())))
    };
    let lease_write = matches!(
        req,
        StoreRequest::AcquireLease { .. } | StoreRequest::RenewLease { .. } | StoreRequest::ReleaseLease { .. }
    );
    if lease_write && store.lock().faults.lease_outage {
        return failed("lease outage");
    }
    let (fail, lost) = store.lock().faults.roll(req.is_write(), &mut rng.lock());
    if fail {
        return failed("injected failure before commit");
    }
    let result = store.lock().backend.apply(&req, recorder.now_ms());
    if let Some(event) = describe(from, &req, &result, lost) {
        recorder.record("store", None, event);
    }
    if lost {
        None
    } else {
        Some(result)
    }
}
