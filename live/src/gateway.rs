//! The store gateway and the cluster API, in the driver process: where a
//! live run's ground truth is recorded, as the simulator's store and
//! cluster nodes record it (docs/design.md §11).
//!
//! Replicas reach the store through the gateway over TCP, so the oracle
//! learns what the store committed from the one place that committed it,
//! in commit order: each request runs on a blocking thread, under the
//! gateway's lock, and its event is journaled before the lock is let go.
//! The backend is the real one (a SQLite file, or PostgreSQL through
//! `PgStore`'s pool), and its time is the run's clock, so store times and
//! trace times are one domain, as in the simulator. The cluster is core's
//! in-memory `MemCluster` (a live run has no Kubernetes), with pod start
//! times drawn from the run's seed.

use crate::clock::RunClock;
use crate::journal::Journal;
use haywire_core::cluster::{ClusterError, ClusterReply, ClusterRequest, MemCluster};
use haywire_core::store::{StoreBackend, StoreError, StoreReply, StoreRequest};
use haywire_core::worker::headroom::is_placeholder;
use haywire_core::InstanceId;
use haywire_sim::store_events::describe;
use haywire_traces::EventKind;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a replica process asks the driver.
#[derive(Debug, Serialize, Deserialize)]
pub enum GatewayRequest {
    Store { from: u64, req: StoreRequest },
    /// `gated`: the lease epoch of the leader-gated task that made the
    /// call, if one did (the replica's task probe knows).
    Cluster { from: u64, gated: Option<u64>, req: ClusterRequest },
    /// A process of replica `replica` starts a new instance: its id.
    Mint { replica: usize },
    /// Round trip only (the jitter probe).
    Ping,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum GatewayReply {
    Store(Result<StoreReply, StoreError>),
    Cluster(Result<ClusterReply, ClusterError>),
    Minted(u64),
    Pong,
}

/// Opens the backend again (a database restart, or the SQLite file reopened).
pub type Reopen = Box<dyn Fn() -> Result<Box<dyn StoreBackend>, StoreError> + Send + Sync>;

pub struct Gateway {
    store: Mutex<Option<Box<dyn StoreBackend>>>,
    cluster: Mutex<ClusterState>,
    instances: Mutex<Instances>,
    journal: Arc<Journal>,
    clock: RunClock,
    lease_name: String,
    /// The last sweep a leader began, as the store saw it: the instance
    /// whose first effect of a sweep (key `…/s<sweep>.0`) committed, and
    /// when (trace µs). The fault driver's "mid-sweep" moment.
    sweep_began: Mutex<Option<(u64, u64)>>,
}

struct ClusterState {
    cluster: MemCluster,
    rng: ChaCha8Rng,
    pod_start_ms: (u64, u64),
}

#[derive(Default)]
struct Instances {
    next: u64,
    /// Instance id -> replica index.
    of: BTreeMap<u64, usize>,
    /// Replica index -> the instance its process started last.
    current: BTreeMap<usize, u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gateway {
    pub fn new(
        backend: Box<dyn StoreBackend>,
        journal: Arc<Journal>,
        lease_name: &str,
        rng: ChaCha8Rng,
        pod_start_ms: (u64, u64),
    ) -> Arc<Gateway> {
        let clock = journal.clock();
        Arc::new(Gateway {
            store: Mutex::new(Some(backend)),
            cluster: Mutex::new(ClusterState { cluster: MemCluster::new(), rng, pod_start_ms }),
            instances: Mutex::new(Instances { next: 1, ..Default::default() }),
            journal,
            clock,
            lease_name: lease_name.to_string(),
            sweep_began: Mutex::new(None),
        })
    }

    pub async fn handle(self: Arc<Self>, req: GatewayRequest) -> Option<GatewayReply> {
        Some(match req {
            GatewayRequest::Ping => GatewayReply::Pong,
            GatewayRequest::Mint { replica } => {
                let mut i = lock(&self.instances);
                let id = i.next;
                i.next += 1;
                i.of.insert(id, replica);
                i.current.insert(replica, id);
                GatewayReply::Minted(id)
            }
            GatewayRequest::Store { from, req } => {
                let me = self.clone();
                let done = tokio::task::spawn_blocking(move || me.apply_store(from, req)).await;
                GatewayReply::Store(done.unwrap_or_else(|e| Err(StoreError::Unavailable(format!("gateway: {e}")))))
            }
            GatewayRequest::Cluster { from, gated, req } => GatewayReply::Cluster(self.apply_cluster(from, gated, req)),
        })
    }

    /// One store request, its event journaled under the same lock (so the
    /// journal's order is the commit order).
    fn apply_store(&self, from: u64, req: StoreRequest) -> Result<StoreReply, StoreError> {
        let mut g = lock(&self.store);
        let Some(backend) = g.as_mut() else {
            let result = Err(StoreError::Unavailable("the database is restarting".into()));
            if req.is_write() {
                self.journal.record("store", None, EventKind::StoreFailed { from, op: format!("{} (restarting)", req.op()) });
            }
            return result;
        };
        let result = backend.apply(&req, self.clock.now_ms());
        if let Some(event) = describe(InstanceId(from), &req, &result, false) {
            if let EventKind::EffectWrite { applied: true, key, .. } = &event {
                if key.ends_with(".0") {
                    *lock(&self.sweep_began) = Some((from, self.clock.now_us()));
                }
            }
            self.journal.record("store", None, event);
        }
        result
    }

    fn apply_cluster(&self, from: u64, gated: Option<u64>, req: ClusterRequest) -> Result<ClusterReply, ClusterError> {
        let mut g = lock(&self.cluster);
        if let ClusterRequest::CreatePod { .. } = req {
            let (lo, hi) = g.pod_start_ms;
            let start = if hi > lo { g.rng.gen_range(lo..=hi) } else { lo };
            g.cluster.set_next_start_ms(start);
        }
        let result = g.cluster.apply(&req, self.clock.now_ms());
        let record = |kind| self.journal.record("cluster", None, kind);
        match (&req, &result) {
            (ClusterRequest::CreateSecret { name, .. }, Ok(_)) => {
                record(EventKind::SecretCreated { from, name: name.clone(), gated })
            }
            (ClusterRequest::DeleteSecret { name }, Ok(_)) => {
                record(EventKind::SecretDeleted { from, name: name.clone(), gated })
            }
            (ClusterRequest::CreatePod { name, labels }, Ok(_)) => {
                let start_ms = g.cluster.start_delay(name).unwrap_or(0);
                let placeholder = is_placeholder(labels);
                record(EventKind::PodCreated { from, name: name.clone(), start_ms, placeholder, gated });
            }
            (ClusterRequest::DeletePod { name }, Ok(_)) => record(EventKind::PodDeleted { from, name: name.clone(), gated }),
            _ => {}
        }
        result
    }

    /// The lease holder now per the store, and its replica, if the holder
    /// is the instance that replica's process runs now (read straight from
    /// the backend, not journaled: the fault driver aiming a fault).
    pub fn leader(&self) -> Option<(u64, usize)> {
        let now = self.clock.now_ms();
        let lease = lock(&self.store).as_mut()?.read_lease(&self.lease_name).ok()??;
        let holder = lease.holder.filter(|_| lease.expires_at > now)?.0;
        let i = lock(&self.instances);
        let replica = *i.of.get(&holder)?;
        (i.current.get(&replica) == Some(&holder)).then_some((holder, replica))
    }

    /// When `inst` last began a sweep (its first effect committed), if ever.
    pub fn sweep_began(&self, inst: u64) -> Option<u64> {
        lock(&self.sweep_began).filter(|(i, _)| *i == inst).map(|(_, t)| t)
    }

    /// Close the backend (on a blocking thread: PostgreSQL's client blocks).
    pub fn close(&self) {
        lock(&self.store).take();
    }

    /// A database restart: the backend is closed (requests fail as
    /// unavailable meanwhile), `restart` runs, and the backend is opened
    /// again. The journal says when the store was away.
    pub fn restart_store(&self, restart: impl FnOnce() -> Result<(), String>, reopen: &Reopen) -> Result<(), String> {
        self.journal.record("sim", None, EventKind::StoreStall { ms: 0 });
        lock(&self.store).take();
        let restarted = restart();
        // Reopen whatever happened, so the run goes on; retry while the
        // server comes up.
        let mut last = String::new();
        for _ in 0..100 {
            match reopen() {
                Ok(b) => {
                    *lock(&self.store) = Some(b);
                    self.journal.record("sim", None, EventKind::StoreStallHealed);
                    return restarted;
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(format!("the store did not come back after the restart: {last}"))
    }
}
