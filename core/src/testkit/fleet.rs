//! The fleet builder: pools, reapers and heartbeats on the [`Harness`], the
//! rows, slots, pods and secrets they leave, and the matchers and checks
//! the fleet tests share.

use super::{lock, Action, Call, EventLog, FaultyStore, Harness, A, B, J};
use crate::clock::{Millis, SystemClock};
use crate::cluster::{ClusterRequest, Labels};
use crate::config::FleetConfig;
use crate::ids::InstanceId;
use crate::mutants::Mutants;
use crate::observe::CoreEvent;
use crate::registry::heartbeat_loop;
use crate::signal as watch;
use crate::store::{
    CasResult, InstanceRecord, Store, StoreBackend, StoreExt, StoreReply, StoreRequest, WorkerCas, WorkerRecord,
};
use crate::worker::headroom::{is_placeholder, ROLE_LABEL};
use crate::worker::pool::{deployment_selector, INSTANCE_LABEL, SECRET_POD_LABEL};
use crate::worker::{Gate, Pool, Reapers, WorkerState};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub type TPool = Pool<FaultyStore, SystemClock, super::SlowCluster>;
pub type TReapers = Reapers<FaultyStore, SystemClock, super::SlowCluster>;

/// The lease the janitor's fenced writes name.
pub const LEASE: &str = "reconciler";
pub const DAY: u64 = 86_400_000;

/// The field-report settings: a 1-minute idle TTL, no floor unless a test
/// sets one, and no resume window (a dead owner's session worker is
/// reaped with the rest; `tests/reapers/orphans.rs` tests the window).
pub fn cfg() -> FleetConfig {
    FleetConfig { min_hot_idle: 0, resume_window_ms: 0, ..FleetConfig::default() }
}

// ---------------------------------------------------------------------------
// Building the fleet

impl Harness {
    /// A pool of `me` on the default client.
    pub fn pool(&self, me: InstanceId, cfg: &FleetConfig, mutants: Mutants) -> Arc<TPool> {
        self.pool_on(me, self.store.clone(), cfg, mutants)
    }

    pub fn pool_on(&self, me: InstanceId, store: Arc<FaultyStore>, cfg: &FleetConfig, mutants: Mutants) -> Arc<TPool> {
        Arc::new(Pool::new(
            me,
            cfg.clone(),
            mutants,
            store,
            Arc::new(self.clock.clone()),
            self.cluster.clone(),
            self.observer(me),
        ))
    }

    /// The reapers of `pool`'s replica, on `store`.
    pub fn reapers(&self, pool: &Arc<TPool>, store: Arc<FaultyStore>, cfg: &FleetConfig, mutants: Mutants) -> Arc<TReapers> {
        let me = pool.instance();
        Arc::new(Reapers {
            me,
            cfg: cfg.clone(),
            lease_name: LEASE.into(),
            mutants,
            store,
            clock: Arc::new(self.clock.clone()),
            cluster: self.cluster.clone(),
            obs: self.observer(me),
            pool: pool.clone(),
            janitor_last_ok: Arc::new(AtomicU64::new(0)),
            fallback_last_ok: Arc::new(AtomicU64::new(0)),
            unsettled: Default::default(),
        })
    }

    /// Replica A's pool (no mutants) and its reapers (with `reaper_mutants`),
    /// both on the default client.
    pub fn pool_and_reapers(&self, cfg: &FleetConfig, reaper_mutants: Mutants) -> (Arc<TPool>, Arc<TReapers>) {
        let pool = self.pool(A, cfg, Mutants::none());
        let reapers = self.reapers(&pool, self.store.clone(), cfg, reaper_mutants);
        (pool, reapers)
    }

    /// The janitor on another replica (J): its own store client (for its own
    /// faults), pool and reapers, holding the lease; with the epoch.
    pub async fn janitor_replica(&self, cfg: &FleetConfig) -> (Arc<FaultyStore>, Arc<TPool>, Arc<TReapers>, u64) {
        let jstore = self.client();
        let jpool = self.pool_on(J, jstore.clone(), cfg, Mutants::none());
        let janitor = self.reapers(&jpool, jstore.clone(), cfg, Mutants::none());
        let epoch = self.hold_lease(J).await;
        (jstore, jpool, janitor, epoch)
    }

    /// A's worker idle since 0, under the janitor on another replica (J).
    /// The caller sets J's faults, then moves [`Harness::past_idle_ttl`].
    pub async fn idle_worker_under_janitor(&self, cfg: &FleetConfig) -> IdleUnderJanitor {
        let pool = self.pool(A, cfg, Mutants::none());
        let id = idle_worker(&pool, "org", 1).await;
        let (jstore, jpool, janitor, epoch) = self.janitor_replica(cfg).await;
        IdleUnderJanitor { pool, id, jstore, jpool, janitor, epoch }
    }

    /// A second past the idle TTL of a worker parked at 0, with A and J
    /// alive (just heartbeated).
    pub async fn past_idle_ttl(&self, cfg: &FleetConfig) {
        self.at(cfg.hot_idle_ttl_ms + 1_000).await;
        self.beat(A).await;
        self.beat(J).await;
    }

    /// Make `who` the lease holder (a day-long TTL), so its janitor's fenced
    /// writes hold; returns the epoch.
    pub async fn hold_lease(&self, who: InstanceId) -> u64 {
        match self.inner.acquire_lease(LEASE, who, None, DAY).await.unwrap() {
            CasResult::Applied(rec) => rec.epoch,
            other => panic!("lease not acquired: {other:?}"),
        }
    }

    /// A heartbeat of `who` now (registers it).
    pub async fn beat(&self, who: InstanceId) {
        assert_eq!(self.inner.call(StoreRequest::HeartbeatInstance { id: who, dead_after_ms: None }).await.unwrap(), StoreReply::Done);
    }

    /// Run `who`'s heartbeat loop until the returned sender says stop.
    pub fn heartbeats(&self, who: InstanceId, cfg: &FleetConfig) -> watch::Sender<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(heartbeat_loop(who, cfg.clone(), self.inner.clone(), Arc::new(self.clock.clone()), self.observer(who), rx));
        tx
    }

    // -----------------------------------------------------------------------
    // Objects made behind the fleet's back

    /// B mid-spawn: its row `w2.1` (spawning, for session 7) is in the
    /// store; its secret and pod are the caller's to make.
    pub async fn insert_b_spawning(&self) {
        let row = WorkerRecord {
            id: "w2.1".into(),
            org: "org".into(),
            state: WorkerState::Spawning,
            owner: B,
            owner_epoch: 1,
            pod: "pod-w2.1".into(),
            secret: "secret-w2.1".into(),
            session: Some(7),
            created_at: 0,
            updated_at: 0,
            idle_since: 0,
            version: 0,
        };
        assert!(matches!(
            self.inner.call(StoreRequest::InsertWorker { worker: row }).await.unwrap(),
            StoreReply::Worker(WorkerCas::Applied(_))
        ));
    }

    /// Create a secret of `deployment` for `pod`, timestamped now.
    pub fn create_secret(&self, name: &str, deployment: &str, pod: &str) {
        let mut labels = deployment_selector(deployment);
        labels.insert(SECRET_POD_LABEL.into(), pod.into());
        let now = self.now();
        self.cluster.with(|c| c.apply(&ClusterRequest::CreateSecret { name: name.into(), labels }, now)).unwrap();
    }

    /// A secret of this deployment for `pod`, made by `owner`, timestamped now.
    pub fn create_secret_of(&self, name: &str, pod: &str, owner: InstanceId) {
        let mut labels = deployment_selector(&cfg().deployment);
        labels.insert(SECRET_POD_LABEL.into(), pod.into());
        labels.insert(INSTANCE_LABEL.into(), owner.to_string());
        let now = self.now();
        self.cluster.with(|c| c.apply(&ClusterRequest::CreateSecret { name: name.into(), labels }, now)).unwrap();
    }

    pub fn create_pod(&self, name: &str, labels: Labels) {
        let now = self.now();
        self.cluster.with(|c| c.apply(&ClusterRequest::CreatePod { name: name.into(), labels }, now)).unwrap();
    }

    // -----------------------------------------------------------------------
    // What the store and the cluster hold now

    pub fn rows(&self) -> Vec<WorkerRecord> {
        self.inner.with_backend(|b| b.list_workers()).unwrap()
    }

    #[track_caller]
    pub fn row(&self, id: &str) -> WorkerRecord {
        self.rows().into_iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no row {id}: {:#?}", self.rows()))
    }

    pub fn slots(&self) -> Vec<String> {
        self.inner.with_backend(|b| b.list_slots()).unwrap().into_iter().map(|s| s.worker).collect()
    }

    pub fn instances(&self) -> Vec<InstanceRecord> {
        self.inner.with_backend(|b| b.list_instances()).unwrap()
    }

    pub fn pods(&self) -> Vec<String> {
        let now = self.now();
        self.cluster.with(|c| c.pods(now)).into_iter().map(|p| p.name).collect()
    }

    pub fn secrets(&self) -> Vec<String> {
        self.cluster.with(|c| c.secrets()).into_iter().map(|s| s.name).collect()
    }

    pub fn has_pod(&self, name: &str) -> bool {
        self.pods().iter().any(|p| p == name)
    }

    pub fn has_secret(&self, name: &str) -> bool {
        self.secrets().iter().any(|s| s == name)
    }

    /// This deployment's placeholder pods, by name.
    pub fn placeholders(&self) -> Vec<String> {
        let now = self.now();
        self.cluster.with(|c| c.pods(now)).into_iter().filter(|p| is_placeholder(&p.labels)).map(|p| p.name).collect()
    }

    /// Names of the pods created (`create`) or deleted since call `from`.
    pub fn pod_writes(&self, from: usize, create: bool) -> Vec<String> {
        self.cluster.calls()[from..]
            .iter()
            .filter_map(|(_, r)| match r {
                ClusterRequest::CreatePod { name, .. } if create => Some(name.clone()),
                ClusterRequest::DeletePod { name } if !create => Some(name.clone()),
                _ => None,
            })
            .collect()
    }
}

/// What [`Harness::idle_worker_under_janitor`] built: A's pool and its idle
/// worker `id`; J's store client, pool and reapers, and J's lease epoch.
pub struct IdleUnderJanitor {
    pub pool: Arc<TPool>,
    pub id: String,
    pub jstore: Arc<FaultyStore>,
    pub jpool: Arc<TPool>,
    pub janitor: Arc<TReapers>,
    pub epoch: u64,
}

/// Start a janitor pass of `reapers` as its own task, so the test can act
/// inside its window.
pub fn spawn_janitor_pass(reapers: &Arc<TReapers>, epoch: u64) -> tokio::task::JoinHandle<()> {
    let r = reapers.clone();
    tokio::spawn(async move { r.janitor_pass(&Gate::none(), epoch).await })
}

/// A's busy worker; A stops heartbeating at 0. At 45 s (A dead) B is alive
/// and about to reap. Returns the harness, B's pool, reapers and store client,
/// and A's worker.
pub async fn dead_owner_and_reaper(c: &FleetConfig) -> (Harness, Arc<TPool>, Arc<TReapers>, Arc<FaultyStore>, String) {
    let w = Harness::new();
    let pool_a = w.pool(A, c, Mutants::none());
    let bstore = w.client();
    let pool_b = w.pool_on(B, bstore.clone(), c, Mutants::none());
    let reapers_b = w.reapers(&pool_b, bstore.clone(), c, Mutants::none());
    w.beat(A).await;
    let busy = pool_a.acquire("org", 1).await.unwrap();
    w.at(c.dead_after_ms + 15_000).await;
    w.beat(B).await;
    (w, pool_b, reapers_b, bstore, busy)
}

/// A worker that served one session and was parked hot-idle at once.
pub async fn idle_worker(pool: &TPool, org: &str, session: u64) -> String {
    let id = pool.acquire(org, session).await.expect("acquire");
    pool.release(session).await.expect("release");
    assert_eq!(owned(pool, &id).map(|o| o.0), Some(WorkerState::HotIdle));
    id
}

/// What the pool believes about `id`: (state, epoch, session).
pub fn owned(pool: &TPool, id: &str) -> Option<(WorkerState, u64, Option<u64>)> {
    pool.owned().into_iter().find(|(w, ..)| w == id).map(|(_, s, e, sess)| (s, e, sess))
}

// ---------------------------------------------------------------------------
// Requests: matchers, faults, and what a client sent

pub fn is_park(r: &StoreRequest) -> bool {
    matches!(r, StoreRequest::UpdateWorker { to: WorkerState::HotIdle, .. })
}

pub fn is_to_hot_from_activating(r: &StoreRequest) -> bool {
    matches!(r, StoreRequest::UpdateWorker { from: WorkerState::Activating, to: WorkerState::Hot, .. })
}

pub fn is_update_to(to: WorkerState) -> impl Fn(&StoreRequest) -> bool + Send + Sync + Clone + 'static {
    move |r| matches!(r, StoreRequest::UpdateWorker { to: t, .. } if *t == to)
}

/// A pod list of worker pods (not the headroom pass's placeholder list).
pub fn is_worker_pod_list(r: &ClusterRequest) -> bool {
    matches!(r, ClusterRequest::ListPods { selector } if !selector.contains_key(ROLE_LABEL))
}

/// The next matching call commits but its reply comes after the call
/// timeout (the caller gives up, unsure); the `retries` matching calls after
/// it fail before reaching the store.
pub fn lose_reply_then_fail(
    store: &FaultyStore,
    c: &FleetConfig,
    retries: u32,
    matches: impl Fn(&StoreRequest) -> bool + Send + Sync + Clone + 'static,
) {
    store.rule(Some(1), Action::SlowReply(c.call_timeout_ms + 500), matches.clone());
    store.fail_next(retries, matches);
}

/// The worker writes (claims and updates) a store client made, in order.
pub fn worker_writes(store: &FaultyStore) -> Vec<Call> {
    store
        .calls()
        .into_iter()
        .filter(|c| matches!(c.req, StoreRequest::ClaimWorker { .. } | StoreRequest::UpdateWorker { .. }))
        .collect()
}

/// Every owner epoch the store reported for `id` in an applied write, with
/// the time of the call, in call order.
pub fn epochs_seen(store: &FaultyStore, id: &str) -> Vec<(Millis, u64)> {
    store
        .calls()
        .into_iter()
        .filter_map(|c| match c.reply() {
            Some(Ok(StoreReply::Worker(WorkerCas::Applied(r)))) if r.id == id => Some((c.at, r.owner_epoch)),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Fleet events

impl EventLog {
    pub fn spawn_failures(&self, who: InstanceId) -> Vec<String> {
        self.events(who)
            .into_iter()
            .filter_map(|e| match e {
                CoreEvent::SpawnFailed { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }

    pub fn reap_failures(&self, who: InstanceId) -> Vec<(&'static str, &'static str, String)> {
        self.events(who)
            .into_iter()
            .filter_map(|e| match e {
                CoreEvent::ReapFailed { reaper, pass, error } => Some((reaper, pass, error)),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Checks shared by several subjects (each names what it checks)

/// The worker ended in `state`, and its pod, secret and slot are gone.
#[track_caller]
pub fn assert_gone(w: &Harness, id: &str, state: WorkerState) {
    let r = w.row(id);
    assert_eq!(r.state, state, "{r:?}");
    assert!(!w.has_pod(&r.pod), "pod {} left: {:?}", r.pod, w.pods());
    assert!(!w.has_secret(&r.secret), "secret {} left: {:?}", r.secret, w.secrets());
    assert!(!w.slots().contains(&r.id), "slot of {id} still held: {:?}", w.slots());
}

/// `who` logged exactly one reap failure, of `reaper`'s `pass`, whose error
/// contains `error_has`.
#[track_caller]
pub fn assert_one_failure(w: &Harness, who: InstanceId, reaper: &str, pass: &str, error_has: &str) {
    let fails = w.log.reap_failures(who);
    assert!(
        matches!(fails.as_slice(), [(r, p, e)] if *r == reaper && *p == pass && e.contains(error_has)),
        "{fails:?}"
    );
}

/// The row was taken over by `pool`'s instance (claimed at `epoch`, left in
/// `state`, objects and slot still there) while its pool does not hold it:
/// only the reapers' unsettled set remembers it.
#[track_caller]
pub fn assert_taken_not_held(w: &Harness, pool: &TPool, reapers: &TReapers, id: &str, state: WorkerState, epoch: u64) {
    let r = w.row(id);
    assert_eq!((r.state, r.owner, r.owner_epoch), (state, pool.instance(), epoch), "{r:?}");
    assert!(!pool.owns(id), "the pool does not hold {id}");
    assert!(lock(&reapers.unsettled).contains_key(id), "not unsettled: {:?}", lock(&reapers.unsettled));
    assert!(w.has_pod(&r.pod) && w.has_secret(&r.secret), "objects already deleted");
    assert!(w.slots().contains(&r.id));
}
