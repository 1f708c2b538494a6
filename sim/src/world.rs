//! One run's world: the parts its nodes, injector and runner share, each
//! its own type in its own file. Everything a run touches lives here (no
//! statics), so seeds in one process never influence each other.
//!
//! Each node takes the parts it needs: the store node its
//! [`StoreNode`], the cluster node its [`ClusterNode`], replicas and the
//! injector the [`ProcessTable`], clients their [`Clients`]; all of them
//! record through the [`RunRecorder`].

use crate::client_node::Clients;
use crate::cluster_node::ClusterNode;
use crate::oracle::Oracle;
use crate::options::RunOptions;
use crate::processes::ProcessTable;
use crate::recorder::RunRecorder;
use crate::store_node::StoreNode;
use haywire_core::store::StoreBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex, MutexGuard};

/// One part of the world, shared by the tasks of one (single-threaded)
/// simulation. A lock is never held across an await.
pub struct Shared<T>(Mutex<T>);

impl<T> Shared<T> {
    pub fn new(part: T) -> Self {
        Shared(Mutex::new(part))
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        // A panic elsewhere must not hide the trace.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct World {
    pub recorder: RunRecorder,
    pub processes: Shared<ProcessTable>,
    pub store: Shared<StoreNode>,
    pub cluster: Shared<ClusterNode>,
    pub clients: Shared<Clients>,
    /// Draws the world's own random choices (store fault rolls, pod
    /// failures and start times, which pod a pod fault hits, which replica
    /// a "leader" fault hits when there is none, clients' choices), in
    /// event order: one stream, whichever part draws.
    pub rng: Shared<ChaCha8Rng>,
    /// Receive loops of the store and cluster nodes ([`crate::rpc::serve_from`]).
    pub serve_loops: usize,
}

/// Nodes per receive loop of a server node: worlds up to this size (every
/// scenario but `fleet-scale`) have one, as they always had.
const NODES_PER_LOOP: usize = 64;

impl World {
    pub fn new(opts: &RunOptions, seed: u64, backend: Box<dyn StoreBackend>, oracle: Oracle) -> Arc<World> {
        Arc::new(World {
            recorder: RunRecorder::new(oracle),
            processes: Shared::new(ProcessTable::new(opts)),
            store: Shared::new(StoreNode::new(backend, opts.replicas)),
            cluster: Shared::new(ClusterNode::new(opts.pod_start_ms)),
            clients: Shared::new(Clients::new(opts.workload.clone())),
            // A stream separate from madsim's and the plan's.
            rng: Shared::new(ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f_57_0e_e5)),
            serve_loops: 1 + (opts.replicas + opts.workload.clients) / NODES_PER_LOOP,
        })
    }
}
