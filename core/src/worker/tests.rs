//! Acceptance tests of the worker pool, the reapers and the instance
//! registry, ported from field reports 002 (idle workers never retired,
//! stranded hot workers, leaked slots, reapers dark without a leader, live
//! activations reaped) and 004 (torn epoch reads, leaked secrets).
//!
//! They run on madsim's simulated runtime: virtual time, so an hour of idle
//! TTL costs microseconds. Test doubles:
//! - one [`SystemClock`] shared by every party (store, cluster, pools,
//!   reapers), so row timestamps, pod ages and `now` are comparable;
//! - [`FaultyStore`]: a client's view of one shared in-process store with
//!   rules that fail chosen requests before commit, or commit them and hold
//!   the reply back (a slow reply: the window of a race); it logs every call;
//! - a [`SlowCluster`]: a [`LocalCluster`] over a [`MemCluster`], shaped with
//!   `with()` (pod start delays, failed pods, pre-created objects with chosen
//!   labels and ages), whose chosen requests can be held back on the madsim
//!   clock (a slow list); it logs every request;
//! - [`RecordingObserver`]: every [`CoreEvent`] with its time.
//!
//! Each mutant case runs the same scenario as its correct-code case with one
//! [`Mutant`] switched on, to show the test is what catches the bug.

use super::pool::{deployment_selector, SECRET_POD_LABEL, WRITE_TRIES};
use super::{Pool, PoolError, Reapers, WorkerState};
use crate::clock::{sleep_until, Clock, Millis, SystemClock};
use super::headroom::{is_placeholder, placeholder_name, placeholder_selector, ROLE_LABEL};
use super::pool::INSTANCE_LABEL;
use crate::cluster::{Cluster, ClusterError, ClusterReply, ClusterRequest, Labels, LocalCluster, MemCluster};
use crate::config::{FleetConfig, ReplicaConfig};
use crate::ids::InstanceId;
use crate::mutants::{Mutant, Mutants};
use crate::observe::{CoreEvent, Observer};
use crate::registry::{heartbeat_and_fence, heartbeat_loop, is_dead, live_instances, SelfFence};
use crate::replica::Replica;
use crate::store::{
    CasResult, InstanceRecord, LeaseFence, LocalStore, MemStore, Store, StoreBackend, StoreError, StoreExt, StoreReply,
    StoreRequest, WorkerCas, WorkerRecord, WorkerReject,
};
use crate::worker::gate::Gate;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use crate::signal as watch;

type Inner = LocalStore<MemStore, SystemClock>;
type Kube = SlowCluster;
type TPool = Pool<FaultyStore, SystemClock, Kube>;
type TReapers = Reapers<FaultyStore, SystemClock, Kube>;

const A: InstanceId = InstanceId(1);
const B: InstanceId = InstanceId(2);
/// A janitor on another replica.
const J: InstanceId = InstanceId(9);
const LEASE: &str = "reconciler";
const DAY: u64 = 86_400_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The field-report settings: a 1-minute idle TTL, no floor unless a test
/// sets one.
fn cfg() -> FleetConfig {
    FleetConfig { min_hot_idle: 0, ..FleetConfig::default() }
}

// ---------------------------------------------------------------------------
// FaultyStore

type Matcher = Box<dyn Fn(&StoreRequest) -> bool + Send + Sync>;

#[derive(Clone, Copy, Debug)]
enum Action {
    /// Refused before commit (`StoreError::Failed`).
    Fail,
    /// Committed at once; the reply arrives this many ms later.
    SlowReply(u64),
}

struct Rule {
    matches: Matcher,
    action: Action,
    /// How many more matching calls it applies to (`None`: all).
    left: Option<u32>,
}

#[derive(Clone, Debug)]
struct Call {
    at: Millis,
    req: StoreRequest,
    /// `None`: refused before reaching the backend.
    reply: Option<Result<StoreReply, StoreError>>,
}

/// One client's view of the shared store.
#[derive(Clone)]
struct FaultyStore {
    inner: Arc<Inner>,
    clock: SystemClock,
    rules: Arc<Mutex<Vec<Rule>>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FaultyStore {
    fn new(inner: Arc<Inner>, clock: SystemClock) -> Self {
        FaultyStore { inner, clock, rules: Default::default(), calls: Default::default() }
    }

    fn rule(&self, left: Option<u32>, action: Action, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        lock(&self.rules).push(Rule { matches: Box::new(matches), action, left });
    }

    /// Fail the next `n` matching calls.
    fn fail_next(&self, n: u32, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        self.rule(Some(n), Action::Fail, matches);
    }

    /// Fail every matching call until healed.
    fn fail_all(&self, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        self.rule(None, Action::Fail, matches);
    }

    fn slow_replies(&self, ms: u64, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        self.rule(None, Action::SlowReply(ms), matches);
    }

    fn heal(&self) {
        lock(&self.rules).clear();
    }

    fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    fn decide(&self, req: &StoreRequest) -> Option<Action> {
        let mut rules = lock(&self.rules);
        for r in rules.iter_mut() {
            if r.left == Some(0) || !(r.matches)(req) {
                continue;
            }
            if let Some(n) = r.left.as_mut() {
                *n -= 1;
            }
            return Some(r.action);
        }
        None
    }
}

impl Store for FaultyStore {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        let at = self.clock.now();
        match self.decide(&req) {
            Some(Action::Fail) => {
                lock(&self.calls).push(Call { at, req, reply: None });
                Err(StoreError::Failed("injected failure".into()))
            }
            Some(Action::SlowReply(ms)) => {
                let out = self.inner.call(req.clone()).await;
                lock(&self.calls).push(Call { at, req, reply: Some(out.clone()) });
                self.clock.sleep(Duration::from_millis(ms)).await;
                out
            }
            None => {
                let out = self.inner.call(req.clone()).await;
                lock(&self.calls).push(Call { at, req, reply: Some(out.clone()) });
                out
            }
        }
    }
}

fn is_park(r: &StoreRequest) -> bool {
    matches!(r, StoreRequest::UpdateWorker { to: WorkerState::HotIdle, .. })
}
fn is_to_hot_from_activating(r: &StoreRequest) -> bool {
    matches!(r, StoreRequest::UpdateWorker { from: WorkerState::Activating, to: WorkerState::Hot, .. })
}
fn is_op(op: &'static str) -> impl Fn(&StoreRequest) -> bool + Send + Sync + 'static {
    move |r| r.op() == op
}

// ---------------------------------------------------------------------------
// SlowCluster

type ClusterMatcher = Box<dyn Fn(&ClusterRequest) -> bool + Send + Sync>;

/// A [`LocalCluster`] whose chosen requests are held this many ms (madsim
/// time) before they reach the cluster (so a slow list lists the cluster as
/// it is when it lands, at that time); it logs every request with its time.
struct SlowCluster {
    inner: LocalCluster<SystemClock>,
    clock: SystemClock,
    /// (matcher, delay ms, how many more matching calls: `None` all).
    delays: Mutex<Vec<(ClusterMatcher, u64, Option<u32>)>>,
    calls: Mutex<Vec<(Millis, ClusterRequest)>>,
}

impl SlowCluster {
    fn new(clock: SystemClock) -> Self {
        SlowCluster { inner: LocalCluster::new(MemCluster::new(), clock.clone()), clock, delays: Default::default(), calls: Default::default() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut MemCluster) -> T) -> T {
        self.inner.with(f)
    }

    /// Hold the next `left` (`None`: every) matching request `ms` ms.
    fn slow(&self, ms: u64, left: Option<u32>, matches: impl Fn(&ClusterRequest) -> bool + Send + Sync + 'static) {
        lock(&self.delays).push((Box::new(matches), ms, left));
    }

    fn calls(&self) -> Vec<(Millis, ClusterRequest)> {
        lock(&self.calls).clone()
    }

    fn delay(&self, req: &ClusterRequest) -> Option<u64> {
        let mut delays = lock(&self.delays);
        for (m, ms, left) in delays.iter_mut() {
            if *left == Some(0) || !m(req) {
                continue;
            }
            if let Some(n) = left.as_mut() {
                *n -= 1;
            }
            return Some(*ms);
        }
        None
    }
}

impl Cluster for SlowCluster {
    async fn call(&self, req: ClusterRequest) -> Result<ClusterReply, ClusterError> {
        if let Some(ms) = self.delay(&req) {
            self.clock.sleep(Duration::from_millis(ms)).await;
        }
        lock(&self.calls).push((self.clock.now(), req.clone()));
        self.inner.call(req).await
    }
}

/// A pod list of worker pods (not the headroom pass's placeholder list).
fn is_worker_pod_list(r: &ClusterRequest) -> bool {
    matches!(r, ClusterRequest::ListPods { selector } if !selector.contains_key(ROLE_LABEL))
}

// ---------------------------------------------------------------------------
// Observer

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Millis, InstanceId, CoreEvent)>>>);

impl Log {
    fn events(&self, who: InstanceId) -> Vec<CoreEvent> {
        lock(&self.0).iter().filter(|(_, w, _)| *w == who).map(|(_, _, e)| e.clone()).collect()
    }
    fn spawn_failures(&self, who: InstanceId) -> Vec<String> {
        self.events(who)
            .into_iter()
            .filter_map(|e| match e {
                CoreEvent::SpawnFailed { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }
    fn reap_failures(&self, who: InstanceId) -> Vec<(&'static str, &'static str, String)> {
        self.events(who)
            .into_iter()
            .filter_map(|e| match e {
                CoreEvent::ReapFailed { reaper, pass, error } => Some((reaper, pass, error)),
                _ => None,
            })
            .collect()
    }
}

struct RecordingObserver {
    who: InstanceId,
    clock: SystemClock,
    log: Log,
}

impl Observer for RecordingObserver {
    fn observe(&self, ev: CoreEvent) {
        lock(&self.log.0).push((self.clock.now(), self.who, ev));
    }
}

// ---------------------------------------------------------------------------
// The test world

struct World {
    clock: SystemClock,
    inner: Arc<Inner>,
    /// The default client (pools and reapers built by `pool`/`reapers`).
    store: Arc<FaultyStore>,
    cluster: Arc<Kube>,
    log: Log,
}

impl World {
    fn new() -> Self {
        let clock = SystemClock::new();
        let inner = Arc::new(LocalStore::new(MemStore::new(), clock.clone()));
        let store = Arc::new(FaultyStore::new(inner.clone(), clock.clone()));
        let cluster = Arc::new(SlowCluster::new(clock.clone()));
        World { clock, inner, store, cluster, log: Log::default() }
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Sleep until simulated time `t` (ms since the test began).
    async fn at(&self, t: Millis) {
        sleep_until(&self.clock, t).await;
    }

    async fn sleep(&self, ms: u64) {
        self.clock.sleep(Duration::from_millis(ms)).await;
    }

    fn observer(&self, who: InstanceId) -> Arc<dyn Observer> {
        Arc::new(RecordingObserver { who, clock: self.clock.clone(), log: self.log.clone() })
    }

    /// Another client of the same store, with its own faults and log.
    fn client(&self) -> Arc<FaultyStore> {
        Arc::new(FaultyStore::new(self.inner.clone(), self.clock.clone()))
    }

    fn pool(&self, me: InstanceId, cfg: &FleetConfig, mutants: Mutants) -> Arc<TPool> {
        self.pool_on(me, self.store.clone(), cfg, mutants)
    }

    fn pool_on(&self, me: InstanceId, store: Arc<FaultyStore>, cfg: &FleetConfig, mutants: Mutants) -> Arc<TPool> {
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

    /// The reapers of `pool`'s replica (same store client as the pool).
    fn reapers(&self, pool: &Arc<TPool>, store: Arc<FaultyStore>, cfg: &FleetConfig, mutants: Mutants) -> Arc<TReapers> {
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

    /// The janitor on another replica (J): its own store client (for its own
    /// faults), pool and reapers, holding the lease; with the epoch.
    async fn janitor_replica(&self, cfg: &FleetConfig) -> (Arc<FaultyStore>, Arc<TPool>, Arc<TReapers>, u64) {
        let jstore = self.client();
        let jpool = self.pool_on(J, jstore.clone(), cfg, Mutants::none());
        let janitor = self.reapers(&jpool, jstore.clone(), cfg, Mutants::none());
        let epoch = self.hold_lease(J).await;
        (jstore, jpool, janitor, epoch)
    }

    /// Make `who` the lease holder (a day-long TTL), so its janitor's fenced
    /// writes hold; returns the epoch.
    async fn hold_lease(&self, who: InstanceId) -> u64 {
        match self.inner.acquire_lease(LEASE, who, None, DAY).await.unwrap() {
            CasResult::Applied(rec) => rec.epoch,
            other => panic!("lease not acquired: {other:?}"),
        }
    }

    /// A heartbeat of `who` now (registers it).
    async fn beat(&self, who: InstanceId) {
        assert_eq!(self.inner.call(StoreRequest::HeartbeatInstance { id: who, dead_after_ms: None }).await.unwrap(), StoreReply::Done);
    }

    /// Run `who`'s heartbeat loop until the returned sender says stop.
    fn heartbeats(&self, who: InstanceId, cfg: &FleetConfig) -> watch::Sender<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(heartbeat_loop(who, cfg.clone(), self.inner.clone(), Arc::new(self.clock.clone()), self.observer(who), rx));
        tx
    }

    fn rows(&self) -> Vec<WorkerRecord> {
        self.inner.with_backend(|b| b.list_workers()).unwrap()
    }

    #[track_caller]
    fn row(&self, id: &str) -> WorkerRecord {
        self.rows().into_iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no row {id}: {:#?}", self.rows()))
    }

    fn slots(&self) -> Vec<String> {
        self.inner.with_backend(|b| b.list_slots()).unwrap().into_iter().map(|s| s.worker).collect()
    }

    fn instances(&self) -> Vec<InstanceRecord> {
        self.inner.with_backend(|b| b.list_instances()).unwrap()
    }

    fn pods(&self) -> Vec<String> {
        let now = self.now();
        self.cluster.with(|c| c.pods(now)).into_iter().map(|p| p.name).collect()
    }

    fn secrets(&self) -> Vec<String> {
        self.cluster.with(|c| c.secrets()).into_iter().map(|s| s.name).collect()
    }

    fn has_pod(&self, name: &str) -> bool {
        self.pods().iter().any(|p| p == name)
    }

    fn has_secret(&self, name: &str) -> bool {
        self.secrets().iter().any(|s| s == name)
    }

    /// Create a secret of `deployment` for `pod`, timestamped now.
    /// B mid-spawn: its row `w2.1` (spawning, for session 7) is in the
    /// store; its secret and pod are the caller's to make.
    async fn insert_b_spawning(&self) {
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

    fn create_secret(&self, name: &str, deployment: &str, pod: &str) {
        let mut labels = deployment_selector(deployment);
        labels.insert(SECRET_POD_LABEL.into(), pod.into());
        let now = self.now();
        self.cluster.with(|c| c.apply(&ClusterRequest::CreateSecret { name: name.into(), labels }, now)).unwrap();
    }

    fn create_pod(&self, name: &str, labels: Labels) {
        let now = self.now();
        self.cluster.with(|c| c.apply(&ClusterRequest::CreatePod { name: name.into(), labels }, now)).unwrap();
    }
}

/// What the pool believes about `id`: (state, epoch, session).
fn owned(pool: &TPool, id: &str) -> Option<(WorkerState, u64, Option<u64>)> {
    pool.owned().into_iter().find(|(w, ..)| w == id).map(|(_, s, e, sess)| (s, e, sess))
}

/// Every owner epoch the store reported for `id` in an applied write, with
/// the time of the call, in call order.
fn epochs_seen(store: &FaultyStore, id: &str) -> Vec<(Millis, u64)> {
    store
        .calls()
        .into_iter()
        .filter_map(|c| match c.reply {
            Some(Ok(StoreReply::Worker(WorkerCas::Applied(r)))) if r.id == id => Some((c.at, r.owner_epoch)),
            _ => None,
        })
        .collect()
}

/// A worker that served one session and was parked hot-idle at once.
async fn idle_worker(pool: &TPool, org: &str, session: u64) -> String {
    let id = pool.acquire(org, session).await.expect("acquire");
    pool.release(session).await.expect("release");
    assert_eq!(owned(pool, &id).map(|o| o.0), Some(WorkerState::HotIdle));
    id
}

#[track_caller]
fn assert_gone(w: &World, id: &str, state: WorkerState) {
    let r = w.row(id);
    assert_eq!(r.state, state, "{r:?}");
    assert!(!w.has_pod(&r.pod), "pod {} left: {:?}", r.pod, w.pods());
    assert!(!w.has_secret(&r.secret), "secret {} left: {:?}", r.secret, w.secrets());
    assert!(!w.slots().contains(&r.id), "slot of {id} still held: {:?}", w.slots());
}

// ---------------------------------------------------------------------------
// 1. An idle worker past the 1-minute TTL is actually retired (002)

/// One worker served one session at t=0 and sits hot-idle.
async fn one_idle_worker(w: &World) -> (Arc<TPool>, Arc<TReapers>, String) {
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    let id = idle_worker(&pool, "org", 1).await;
    let r = w.row(&id);
    assert_eq!((r.state, r.session, r.owner, r.owner_epoch), (WorkerState::HotIdle, None, A, 1));
    assert!(w.has_pod(&r.pod) && w.has_secret(&r.secret));
    assert_eq!(w.slots(), vec![id.clone()]);
    (pool, reapers, id)
}

#[madsim::test]
async fn janitor_retires_a_worker_idle_past_the_ttl() {
    let w = World::new();
    let (pool, reapers, id) = one_idle_worker(&w).await;
    let epoch = w.hold_lease(A).await;

    // Before the TTL: kept.
    w.at(50_000).await;
    w.beat(A).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert_eq!(w.row(&id).state, WorkerState::HotIdle);

    // Past TTL + one reap interval: retired, pod and secret deleted, slot freed.
    w.at(cfg().hot_idle_ttl_ms + cfg().reap_interval_ms + 1).await;
    w.beat(A).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert_gone(&w, &id, WorkerState::Retired);
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    assert_eq!(reapers.janitor_last_ok.load(std::sync::atomic::Ordering::SeqCst), w.now());

    // The pool no longer reuses it: a new session gets a new worker.
    let next = pool.acquire("org", 2).await.unwrap();
    assert_ne!(next, id);
}

#[madsim::test]
async fn fallback_reaper_retires_a_worker_idle_past_the_ttl() {
    let w = World::new();
    let (pool, reapers, id) = one_idle_worker(&w).await;

    w.at(50_000).await;
    w.beat(A).await;
    reapers.fallback_pass().await;
    assert_eq!(w.row(&id).state, WorkerState::HotIdle);

    w.at(cfg().hot_idle_ttl_ms + cfg().reap_interval_ms + 1).await;
    w.beat(A).await;
    reapers.fallback_pass().await;
    assert_gone(&w, &id, WorkerState::Retired);
    let r = w.row(&id);
    assert_eq!((r.owner, r.owner_epoch), (A, 1), "the owner retires its own worker, no claim");
    assert!(owned(&pool, &id).is_none(), "the pool forgot it");
    assert!(pool.owned().is_empty());
    assert_eq!(reapers.fallback_last_ok.load(std::sync::atomic::Ordering::SeqCst), w.now());
}

// ---------------------------------------------------------------------------
// 2. A failed hot→hot_idle write leaves the worker hot and reusable (002)

#[madsim::test]
async fn failed_park_leaves_the_worker_hot_and_reusable() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let id = pool.acquire("org", 1).await.unwrap();
    w.store.fail_next(2 * WRITE_TRIES, is_park);

    pool.release(1).await.unwrap();
    assert_eq!(w.row(&id).state, WorkerState::Hot, "the park write failed: durable hot");
    assert_eq!(owned(&pool, &id), Some((WorkerState::Hot, 1, None)), "memory agrees: hot, no session");

    // The next session of the org reuses it: no spawn, no new slot.
    let again = pool.acquire("org", 2).await.unwrap();
    assert_eq!(again, id);
    assert_eq!(w.slots(), vec![id.clone()]);
    assert_eq!(w.rows().len(), 1);
    assert_eq!(w.row(&id).session, Some(2));

    // Its park fails too; then the store heals and maintenance parks it.
    pool.release(2).await.unwrap();
    assert_eq!(w.row(&id).state, WorkerState::Hot);
    assert_eq!(w.store.calls().iter().filter(|c| is_park(&c.req) && c.reply.is_none()).count(), 2 * WRITE_TRIES as usize);
    pool.maintain().await;
    let r = w.row(&id);
    assert_eq!((r.state, r.session), (WorkerState::HotIdle, None));
    assert_eq!(owned(&pool, &id), Some((WorkerState::HotIdle, r.owner_epoch, None)));
}

#[madsim::test]
async fn mutant_mutate_before_persist_strands_the_worker() {
    let w = World::new();
    let c = cfg();
    let mutants = Mutants::only(Mutant::MutateBeforePersist);
    let pool = w.pool(A, &c, mutants.clone());
    let reapers = w.reapers(&pool, w.store.clone(), &c, mutants);
    let id = pool.acquire("org", 1).await.unwrap();
    w.store.fail_next(WRITE_TRIES, is_park);

    pool.release(1).await.unwrap();
    // Split: durable hot, memory hot_idle.
    assert_eq!(w.row(&id).state, WorkerState::Hot);
    assert_eq!(owned(&pool, &id).map(|o| o.0), Some(WorkerState::HotIdle));

    // Upkeep never parks it (memory says it is parked) and no reaper retires
    // it (the row says hot): it outlives its TTL many times over.
    for k in 1..=10 {
        w.at(k * c.hot_idle_ttl_ms).await;
        w.beat(A).await;
        pool.maintain().await;
        reapers.fallback_pass().await;
    }
    assert_eq!(w.row(&id).state, WorkerState::Hot, "stranded: durable hot for good");
    assert_eq!(w.slots(), vec![id.clone()], "and holding its slot");
}

// ---------------------------------------------------------------------------
// 3. A failed spawn frees its slot on the spot (002)

async fn spawn_fails_on_existing_pod(mutants: Mutants) -> World {
    let w = World::new();
    let pool = w.pool(A, &cfg(), mutants);
    // Worker ids are `w<instance>.<n>`: the first spawn's pod name is taken.
    w.create_pod("pod-w1.1", Labels::new());
    let err = pool.acquire("org", 1).await.unwrap_err();
    assert!(matches!(&err, PoolError::SpawnFailed(m) if m.contains("create pod") && m.contains("already exists")), "{err:?}");
    let r = w.row("w1.1");
    assert_eq!(r.state, WorkerState::Retired);
    assert!(!w.has_secret(&r.secret), "secret deleted: {:?}", w.secrets());
    assert!(pool.owned().is_empty());
    assert_eq!(w.log.spawn_failures(A).len(), 1);
    w
}

#[madsim::test]
async fn failed_spawn_frees_its_slot_at_once() {
    let w = spawn_fails_on_existing_pod(Mutants::none()).await;
    assert!(w.slots().is_empty(), "slot freed right after the failure: {:?}", w.slots());
}

#[madsim::test]
async fn mutant_slot_leak_on_spawn_failure_keeps_the_slot() {
    let w = spawn_fails_on_existing_pod(Mutants::only(Mutant::SlotLeakOnSpawnFailure)).await;
    assert_eq!(w.slots(), vec!["w1.1".to_string()], "the slot leaks until the slow sweep");
}

/// A failed row insert: the slot is freed and nothing is created in the
/// cluster; the next spawn (store healed) succeeds.
#[madsim::test]
async fn failed_row_insert_frees_the_slot_and_creates_nothing() {
    let w = World::new();
    let c = FleetConfig { org_cap: 1, ..cfg() };
    let pool = w.pool(A, &c, Mutants::none());
    w.store.fail_all(is_op("insert_worker"));
    for s in 1..=3 {
        let err = pool.acquire("org", s).await.unwrap_err();
        assert!(matches!(&err, PoolError::SpawnFailed(m) if m.contains("insert worker")), "{err:?}");
        assert!(w.slots().is_empty(), "org_cap 1 would refuse the next spawn if the slot leaked");
    }
    assert!(w.rows().is_empty() && w.pods().is_empty() && w.secrets().is_empty());
    w.store.heal();
    assert_eq!(pool.acquire("org", 4).await.unwrap(), "w1.4");
}

/// A pod that fails while activating: spawn fails, row retired, objects and
/// slot gone.
#[madsim::test]
async fn pod_failing_during_activation_cleans_up() {
    let w = World::new();
    let pool = w.pool(A, &cfg(), Mutants::none());
    w.cluster.with(|c| c.set_next_start_ms(10_000));
    let p = pool.clone();
    let acq = tokio::spawn(async move { p.acquire("org", 1).await });
    w.at(2_500).await;
    assert_eq!(w.row("w1.1").state, WorkerState::Activating);
    assert!(w.cluster.with(|c| c.fail_pod("pod-w1.1")));
    let err = acq.await.unwrap().unwrap_err();
    assert_eq!(err, PoolError::SpawnFailed("pod failed during activation".into()));
    assert_gone(&w, "w1.1", WorkerState::Retired);
    assert!(pool.owned().is_empty());
}

/// A pod that never starts: activation gives up at the timeout, cleans up.
#[madsim::test]
async fn activation_timeout_cleans_up() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    w.cluster.with(|k| k.set_next_start_ms(c.activation_timeout_ms * 2));
    let err = pool.acquire("org", 1).await.unwrap_err();
    assert_eq!(err, PoolError::SpawnFailed("activation timed out".into()));
    let t = w.now();
    assert!((c.activation_timeout_ms..c.activation_timeout_ms + c.activation_poll_ms + 100).contains(&t), "gave up at {t}");
    assert_gone(&w, "w1.1", WorkerState::Retired);
}

/// The activation's hot write fails: the spawn fails cleanly (no split).
/// With ActivateSplit the pool serves a session on a row still activating.
#[madsim::test]
async fn failed_hot_write_after_activation_fails_the_spawn_cleanly() {
    for (mutants, split) in [(Mutants::none(), false), (Mutants::only(Mutant::ActivateSplit), true)] {
        let w = World::new();
        let pool = w.pool(A, &cfg(), mutants);
        w.store.fail_next(WRITE_TRIES, is_to_hot_from_activating);
        let out = pool.acquire("org", 1).await;
        if split {
            assert_eq!(out, Ok("w1.1".to_string()));
            assert_eq!(owned(&pool, "w1.1").map(|o| o.0), Some(WorkerState::Hot));
            assert_eq!(w.row("w1.1").state, WorkerState::Activating, "the split: durable activating");
        } else {
            assert!(matches!(&out, Err(PoolError::SpawnFailed(m)) if m.contains("to hot")), "{out:?}");
            assert_gone(&w, "w1.1", WorkerState::Retired);
        }
    }
}

// ---------------------------------------------------------------------------
// 4. The fallback reaper keeps the floor, and does nothing when disabled

/// Three workers of `pool` parked at 0 s, 1 s and 2 s.
async fn three_idle_workers(w: &World, pool: &TPool) -> Vec<String> {
    let mut out = Vec::new();
    for s in 1..=3u64 {
        out.push(pool.acquire("org", s).await.unwrap());
    }
    for s in 1..=3u64 {
        w.at((s - 1) * 1_000).await;
        pool.release(s).await.unwrap();
    }
    let idle: Vec<Millis> = out.iter().map(|id| w.row(id).idle_since).collect();
    assert!(idle[0] < idle[1] && idle[1] < idle[2], "{idle:?}");
    out
}

#[madsim::test]
async fn fallback_reaper_keeps_the_newest_idle_worker_as_the_floor() {
    let w = World::new();
    let c = FleetConfig { min_hot_idle: 1, ..cfg() };
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    let ids = three_idle_workers(&w, &pool).await;
    w.at(90_000).await;
    w.beat(A).await;
    reapers.fallback_pass().await;
    assert_gone(&w, &ids[0], WorkerState::Retired);
    assert_gone(&w, &ids[1], WorkerState::Retired);
    let newest = w.row(&ids[2]);
    assert_eq!(newest.state, WorkerState::HotIdle, "the floor keeps the newest");
    assert!(w.has_pod(&newest.pod));
    assert_eq!(w.slots(), vec![ids[2].clone()]);
    // A second pass changes nothing.
    reapers.fallback_pass().await;
    assert_eq!(w.row(&ids[2]).state, WorkerState::HotIdle);
}

#[madsim::test]
async fn janitor_keeps_the_newest_idle_worker_as_the_floor() {
    let w = World::new();
    let c = FleetConfig { min_hot_idle: 1, ..cfg() };
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    let epoch = w.hold_lease(A).await;
    let ids = three_idle_workers(&w, &pool).await;
    w.at(90_000).await;
    w.beat(A).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert_gone(&w, &ids[0], WorkerState::Retired);
    assert_gone(&w, &ids[1], WorkerState::Retired);
    assert_eq!(w.row(&ids[2]).state, WorkerState::HotIdle);
}

/// Run the upkeep loop (heartbeats on) for ten reap intervals over two idle
/// workers; returns the states of their rows.
async fn upkeep_for_a_while(c: FleetConfig, mutants: Mutants) -> Vec<WorkerState> {
    let w = World::new();
    let pool = w.pool(A, &c, mutants.clone());
    let reapers = w.reapers(&pool, w.store.clone(), &c, mutants);
    let beats = w.heartbeats(A, &c);
    let ids = vec![idle_worker(&pool, "org", 1).await, pool.acquire("org", 2).await.unwrap()];
    pool.release(2).await.unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let upkeep = tokio::spawn(reapers.clone().upkeep_loop(stop_rx));
    w.at(10 * c.reap_interval_ms + 500).await;
    stop_tx.send(true).unwrap();
    upkeep.await.unwrap();
    beats.send(true).unwrap();
    // Upkeep ran: maintenance refreshed the epochs of the workers it kept.
    let states: Vec<WorkerState> = ids.iter().map(|id| w.row(id).state).collect();
    for id in &ids {
        let r = w.row(id);
        if r.state == WorkerState::HotIdle {
            assert!(r.owner_epoch >= 10, "maintain ran every interval: {r:?}");
        }
    }
    states
}

#[madsim::test]
async fn upkeep_loop_runs_the_fallback_reaper() {
    assert_eq!(upkeep_for_a_while(cfg(), Mutants::none()).await, vec![WorkerState::Retired; 2]);
}

#[madsim::test]
async fn upkeep_loop_without_fallback_reaper_retires_nothing() {
    let c = FleetConfig { fallback_reaper: false, ..cfg() };
    assert_eq!(upkeep_for_a_while(c, Mutants::none()).await, vec![WorkerState::HotIdle; 2]);
}

#[madsim::test]
async fn mutant_no_fallback_reaper_retires_nothing() {
    assert_eq!(upkeep_for_a_while(cfg(), Mutants::only(Mutant::NoFallbackReaper)).await, vec![WorkerState::HotIdle; 2]);
}

// ---------------------------------------------------------------------------
// 5. The secret reaper (janitor, orphan objects) (004)

struct Objects {
    live_worker: WorkerRecord,
}

/// A janitor pass at 40 s over: A's live hot worker (its own secret, plus a
/// rotated secret for the same pod), an orphan secret and an orphan pod (old,
/// nothing owns them), a young secret, one with an empty pod label, B's
/// spawning worker's secret (old, pod not created yet), and another
/// deployment's old secret and pod.
async fn secret_reaper_world(mutants: Mutants) -> (World, Objects) {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, mutants);
    let epoch = w.hold_lease(A).await;

    let id = pool.acquire("org", 1).await.unwrap();
    let live = w.row(&id);
    w.create_secret("secret-rotated", &c.deployment, &live.pod);
    w.create_secret("secret-orphan", &c.deployment, "pod-crashed");
    w.create_pod("pod-orphan", deployment_selector(&c.deployment));
    w.create_secret("secret-unlabelled", &c.deployment, "");
    w.create_secret("secret-other-deploy", "other", "pod-gone");
    w.create_pod("pod-other-deploy", deployment_selector("other"));
    // B is alive and mid-spawn: its row and secret exist, its pod not yet.
    w.insert_b_spawning().await;
    w.create_secret("secret-w2.1", &c.deployment, "pod-w2.1");

    w.at(40_000).await;
    w.create_secret("secret-young", &c.deployment, "pod-never");
    w.beat(A).await;
    w.beat(B).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    (w, Objects { live_worker: live })
}

#[madsim::test]
async fn secret_reaper_deletes_only_orphan_secrets() {
    let (w, o) = secret_reaper_world(Mutants::none()).await;
    assert!(!w.has_secret("secret-orphan"), "the orphan secret is deleted: {:?}", w.secrets());
    assert!(!w.has_pod("pod-orphan"), "the orphan pod is deleted");
    for kept in [o.live_worker.secret.as_str(), "secret-rotated", "secret-young", "secret-unlabelled", "secret-w2.1", "secret-other-deploy"] {
        assert!(w.has_secret(kept), "{kept} must be kept: {:?}", w.secrets());
    }
    assert!(w.has_pod(&o.live_worker.pod) && w.has_pod("pod-other-deploy"));
    assert_eq!(w.row(&o.live_worker.id).state, WorkerState::Hot);
    assert_eq!(w.row("w2.1").state, WorkerState::Spawning, "B's spawn is left alone");
}

#[madsim::test]
async fn mutant_no_secret_reaper_leaks_the_orphan_secret() {
    let (w, _) = secret_reaper_world(Mutants::only(Mutant::NoSecretReaper)).await;
    assert!(w.has_secret("secret-orphan"), "leaked forever");
    assert!(!w.has_pod("pod-orphan"), "orphan pods are still reaped");
}

// ---------------------------------------------------------------------------
// 6. Workers of a dead instance are reaped by the fallback reaper (002)

/// A (one busy worker, one idle) stops heartbeating at 0; B heartbeats and
/// runs its fallback pass at 45 s. Returns the world, A's pool and ids
/// (busy, idle), and B's idle worker.
async fn dead_instance_world(b_mutants: Mutants) -> (World, Arc<TPool>, [String; 2], String) {
    let w = World::new();
    let c = FleetConfig { hot_idle_ttl_ms: DAY, ..cfg() };
    let pool_a = w.pool(A, &c, Mutants::none());
    let pool_b = w.pool_on(B, w.client(), &c, Mutants::none());
    let reapers_b = w.reapers(&pool_b, w.client(), &c, b_mutants);
    w.beat(A).await;
    let beats_b = w.heartbeats(B, &c);
    let busy = pool_a.acquire("org", 1).await.unwrap();
    let idle = idle_worker(&pool_a, "org", 2).await;
    let b_idle = idle_worker(&pool_b, "org", 3).await;
    assert_eq!(w.slots().len(), 3);

    w.at(c.dead_after_ms + 15_000).await;
    let live = live_instances(&w.instances(), w.now(), c.dead_after_ms);
    assert_eq!(live.into_iter().collect::<Vec<_>>(), vec![B]);
    reapers_b.fallback_pass().await;
    beats_b.send(true).unwrap();
    (w, pool_a, [busy, idle], b_idle)
}

#[madsim::test]
async fn fallback_reaper_reaps_workers_of_a_dead_instance() {
    let (w, pool_a, a_ids, b_idle) = dead_instance_world(Mutants::none()).await;
    for id in &a_ids {
        assert_gone(&w, id, WorkerState::Lost);
        let r = w.row(id);
        assert_eq!((r.owner, r.owner_epoch), (B, 2), "claimed by B, ended in the same CAS");
    }
    let b = w.row(&b_idle);
    assert_eq!(b.state, WorkerState::HotIdle);
    assert!(w.has_pod(&b.pod));
    assert_eq!(w.slots(), vec![b_idle.clone()]);

    // A was only partitioned (a zombie): its late writes are fenced out and
    // nothing is resurrected.
    pool_a.release(1).await.unwrap();
    assert!(pool_a.acquire("org", 4).await.is_ok());
    for id in &a_ids {
        assert_eq!(w.row(id).state, WorkerState::Lost);
        assert!(owned(&pool_a, id).is_none(), "the zombie forgot {id}");
    }
}

#[madsim::test]
async fn mutant_orphans_not_reaped_by_fallback_leaves_them() {
    let (w, _, [busy, idle], _) = dead_instance_world(Mutants::only(Mutant::OrphansNotReapedByFallback)).await;
    assert_eq!(w.row(&busy).state, WorkerState::Hot);
    assert_eq!(w.row(&idle).state, WorkerState::HotIdle);
    assert!(w.has_pod(&w.row(&busy).pod) && w.has_pod(&w.row(&idle).pod));
    assert_eq!(w.slots().len(), 3, "slots of a dead instance leak");
}

// ---------------------------------------------------------------------------
// 7. A long activation heartbeats its row and is not reaped (002)

/// The pool waits up to 10 minutes for a pod; the janitor calls an
/// activating row stuck once it has not been written for 5 minutes.
fn activation_cfg() -> FleetConfig {
    FleetConfig { activation_timeout_ms: 600_000, stuck_activating_ms: 300_000, ..cfg() }
}

/// A worker whose pod takes `start_delay` ms to start, under the janitor
/// (same replica, lease held) passing every reap interval. Returns the
/// largest staleness of the activating row (`now - updated_at`) any pass
/// saw, and the result of the acquire.
async fn long_activation(start_delay: Millis, mutants: Mutants) -> (World, Millis, Result<String, PoolError>) {
    let w = World::new();
    let c = activation_cfg();
    let pool = w.pool(A, &c, mutants.clone());
    let reapers = w.reapers(&pool, w.store.clone(), &c, mutants);
    let epoch = w.hold_lease(A).await;
    let beats = w.heartbeats(A, &c);
    w.cluster.with(|k| k.set_next_start_ms(start_delay));
    let p = pool.clone();
    let acq = tokio::spawn(async move { p.acquire("org", 1).await });

    let mut stalest = 0;
    while w.now() + c.reap_interval_ms < start_delay {
        w.sleep(c.reap_interval_ms).await;
        let before = w.row("w1.1");
        reapers.janitor_pass(&Gate::none(), epoch).await;
        if before.state == WorkerState::Activating {
            stalest = stalest.max(w.now() - before.updated_at);
        }
        if w.row("w1.1").state != WorkerState::Activating {
            break;
        }
    }
    let out = acq.await.unwrap();
    beats.send(true).unwrap();
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    (w, stalest, out)
}

/// A 3-minute activation (below both limits): the row is heartbeated every
/// poll, stays activating under the janitor's passes, and ends hot.
#[madsim::test]
async fn long_activation_heartbeats_its_row_and_ends_hot() {
    let c = activation_cfg();
    let (w, stalest, out) = long_activation(180_000, Mutants::none()).await;
    assert!(stalest <= c.activation_poll_ms + 10, "the row is heartbeated every poll: stalest {stalest} ms");
    assert_eq!(out, Ok("w1.1".to_string()));
    let r = w.row("w1.1");
    assert_eq!((r.state, r.session, r.owner_epoch), (WorkerState::Hot, Some(1), 1), "never claimed by the janitor");
    assert!(w.now() >= 180_000);
}

/// The same 3 minutes with the mutant: the row is never written while the
/// pod starts, so it ages with the activation (it survives only because 3
/// minutes is below the stuck threshold).
#[madsim::test]
async fn mutant_reaper_kills_live_activation_does_not_refresh_the_row() {
    let (w, stalest, out) = long_activation(180_000, Mutants::only(Mutant::ReaperKillsLiveActivation)).await;
    assert!(stalest >= 160_000, "no heartbeat: the row ages with the activation ({stalest} ms)");
    assert_eq!(out, Ok("w1.1".to_string()));
    assert_eq!(w.row("w1.1").state, WorkerState::Hot);
}

/// A 6-minute activation: longer than the janitor's stuck threshold (5 min),
/// within the pool's activation timeout (10 min). Heartbeated, it is never
/// taken for stuck and ends hot.
#[madsim::test]
async fn activation_longer_than_the_stuck_threshold_is_not_reaped() {
    let c = activation_cfg();
    let (w, stalest, out) = long_activation(360_000, Mutants::none()).await;
    assert!(stalest <= c.activation_poll_ms + 10, "stalest {stalest}");
    assert_eq!(out, Ok("w1.1".to_string()));
    let r = w.row("w1.1");
    assert_eq!((r.state, r.owner_epoch), (WorkerState::Hot, 1));
    assert!(w.has_pod(&r.pod) && w.has_secret(&r.secret));
}

/// With the mutant the same 6-minute activation is reaped as stuck at 5
/// minutes, mid-activation: the client's spawn fails.
#[madsim::test]
async fn mutant_reaper_kills_live_activation_is_reaped_mid_activation() {
    let c = activation_cfg();
    let (w, _, out) = long_activation(360_000, Mutants::only(Mutant::ReaperKillsLiveActivation)).await;
    assert_eq!(out, Err(PoolError::SpawnFailed("pod vanished during activation".into())));
    assert_gone(&w, "w1.1", WorkerState::Retired);
    let t = w.now();
    assert!((c.stuck_activating_ms..c.stuck_activating_ms + c.reap_interval_ms + 2_000).contains(&t), "killed at {t}");
}

// ---------------------------------------------------------------------------
// 8. Fencing: a stale owner's write is rejected (004)

#[madsim::test]
async fn janitor_claim_fences_out_the_original_owner() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let idle = idle_worker(&pool, "org", 1).await;
    // The janitor on another replica; its claim is slow to answer, so the
    // pool acts while the janitor is mid-take.
    let (jstore, _, janitor, epoch) = w.janitor_replica(&c).await;
    jstore.slow_replies(500, is_op("claim_worker"));

    w.at(c.hot_idle_ttl_ms + 1_000).await;
    w.beat(A).await;
    w.beat(J).await;
    let jan = janitor.clone();
    let pass = tokio::spawn(async move { jan.janitor_pass(&Gate::none(), epoch).await });
    w.sleep(100).await;
    let r = w.row(&idle);
    assert_eq!(
        (r.state, r.owner, r.owner_epoch),
        (WorkerState::Draining, J, 2),
        "claimed and moved to draining in the one CAS, not yet retired"
    );

    // The original owner's reuse is rejected as stale: it spawns instead.
    let next = pool.acquire("org", 2).await.unwrap();
    assert_ne!(next, idle);
    assert!(owned(&pool, &idle).is_none());
    // So is any other write at the old epoch.
    let stale = StoreRequest::UpdateWorker {
        id: idle.clone(),
        owner: A,
        epoch: 1,
        from: WorkerState::HotIdle,
        to: WorkerState::Hot,
        session: Some(3),
        fence: None,
    };
    match w.store.call(stale).await.unwrap() {
        StoreReply::Worker(WorkerCas::Rejected { reason, .. }) => assert_eq!(reason, WorkerReject::StaleOwner),
        other => panic!("stale write applied: {other:?}"),
    }

    pass.await.unwrap();
    assert_gone(&w, &idle, WorkerState::Retired);
    assert_eq!(w.row(&next).state, WorkerState::Hot);
    // Owner epochs only grow, across both clients' writes in time order.
    let mut seen: Vec<(Millis, u64)> = epochs_seen(&w.store, &idle);
    seen.extend(epochs_seen(&jstore, &idle));
    seen.sort_by_key(|(at, _)| *at);
    assert!(seen.windows(2).all(|p| p[0].1 <= p[1].1), "{seen:?}");
    assert_eq!(seen.first().map(|s| s.1), Some(1));
    assert_eq!(seen.last().map(|s| s.1), Some(2));
}

/// The worker writes (claims and updates) a store client made, in order.
fn worker_writes(store: &FaultyStore) -> Vec<Call> {
    store
        .calls()
        .into_iter()
        .filter(|c| matches!(c.req, StoreRequest::ClaimWorker { .. } | StoreRequest::UpdateWorker { .. }))
        .collect()
}

/// A janitor's take-over of another live instance's expired hot-idle worker
/// is one claim CAS: it names the state listed and moves the row to
/// draining under the janitor's instance in the same write (so the row
/// never sits hot-idle under the janitor's name, where a floor would count
/// it). Then the objects go and one update, at the claim's epoch, retires
/// it.
#[madsim::test]
async fn janitor_takes_over_an_expired_idle_worker_in_one_claim_to_draining() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let id = idle_worker(&pool, "org", 1).await;
    let (jstore, _, janitor, epoch) = w.janitor_replica(&c).await;
    let fence = Some(LeaseFence { lease: LEASE.into(), holder: J, epoch });
    // The claim's reply is held back (within the call timeout), to look at
    // the row between the claim and the retire.
    jstore.slow_replies(500, is_op("claim_worker"));

    w.at(c.hot_idle_ttl_ms + 1_000).await;
    w.beat(A).await;
    w.beat(J).await;
    let listed = w.row(&id);
    assert_eq!((listed.state, listed.owner, listed.owner_epoch, listed.session), (WorkerState::HotIdle, A, 1, None));
    let jan = janitor.clone();
    let pass = tokio::spawn(async move { jan.janitor_pass(&Gate::none(), epoch).await });
    w.sleep(100).await;

    let writes = worker_writes(&jstore);
    assert_eq!(writes.len(), 1, "the claim alone so far: {writes:#?}");
    assert_eq!(
        writes[0].req,
        StoreRequest::ClaimWorker {
            id: id.clone(),
            owner: A,
            epoch: 1,
            from: Some(WorkerState::HotIdle),
            to: Some(WorkerState::Draining),
            new_owner: J,
            fence: fence.clone(),
        }
    );
    let claimed = w.row(&id);
    assert_eq!(
        claimed,
        WorkerRecord {
            state: WorkerState::Draining,
            owner: J,
            owner_epoch: 2,
            updated_at: writes[0].at,
            version: listed.version + 1,
            ..listed.clone()
        },
        "one write: owner, epoch and state"
    );
    assert_eq!(writes[0].reply, Some(Ok(StoreReply::Worker(WorkerCas::Applied(claimed.clone())))));
    assert!(w.has_pod(&claimed.pod) && w.has_secret(&claimed.secret), "not drained yet");
    assert!(w.slots().contains(&id));

    pass.await.unwrap();
    assert!(w.log.reap_failures(J).is_empty(), "{:?}", w.log.reap_failures(J));
    assert_gone(&w, &id, WorkerState::Retired);
    let reqs: Vec<StoreRequest> = worker_writes(&jstore).into_iter().map(|c| c.req).collect();
    assert_eq!(
        reqs[1..],
        [StoreRequest::UpdateWorker {
            id: id.clone(),
            owner: J,
            epoch: 2,
            from: WorkerState::Draining,
            to: WorkerState::Retired,
            session: None,
            fence,
        }],
        "no separate write to draining; one update retires it: {reqs:#?}"
    );
    let r = w.row(&id);
    assert_eq!((r.owner, r.owner_epoch, r.version), (J, 2, listed.version + 2), "{r:?}");
    // A's memory of the worker is stale and fenced out: it is not served.
    assert_ne!(pool.acquire("org", 2).await.unwrap(), id);
}

// ---------------------------------------------------------------------------
// 9. Capacity

#[madsim::test]
async fn org_and_global_caps_are_enforced() {
    let w = World::new();
    let c = FleetConfig { org_cap: 2, global_cap: 3, ..cfg() };
    let pool = w.pool(A, &c, Mutants::none());
    let a1 = pool.acquire("a", 1).await.unwrap();
    pool.acquire("a", 2).await.unwrap();
    assert_eq!(pool.acquire("a", 3).await, Err(PoolError::AtCapacity("org a".into())));
    pool.acquire("b", 4).await.unwrap();
    assert_eq!(pool.acquire("c", 5).await, Err(PoolError::AtCapacity("fleet".into())));
    assert_eq!(w.slots().len(), 3);
    assert_eq!(w.rows().len(), 3, "a refused spawn leaves no row");
    // A parked worker keeps its slot, and serves the org's next session.
    pool.release(1).await.unwrap();
    assert_eq!(pool.acquire("a", 6).await, Ok(a1));
    assert_eq!(pool.acquire("b", 7).await, Err(PoolError::AtCapacity("fleet".into())));
    assert_eq!(pool.release(99).await, Err(PoolError::UnknownSession(99)));
}

// ---------------------------------------------------------------------------
// 10. torn-epoch-read (004)

/// `maintain()` refreshes the epoch of a busy worker; its claim's reply is
/// slow (committed at once, answered 400 ms later). The session ends at
/// 200 ms, inside that window. Returns the world, the pool and the worker.
async fn release_during_maintain(mutants: Mutants) -> (World, Arc<TPool>, String) {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, mutants);
    let id = pool.acquire("org", 1).await.unwrap();
    w.store.slow_replies(400, is_op("claim_worker"));
    let p = pool.clone();
    let maintain = tokio::spawn(async move { p.maintain().await });
    w.sleep(200).await;
    assert_eq!(w.row(&id).owner_epoch, 2, "the claim has committed");
    pool.release(1).await.unwrap();
    maintain.await.unwrap();
    w.store.heal();
    (w, pool, id)
}

#[madsim::test]
async fn release_during_maintain_parks_with_the_fresh_epoch() {
    let (w, pool, id) = release_during_maintain(Mutants::none()).await;
    let r = w.row(&id);
    assert_eq!((r.state, r.owner_epoch, r.session), (WorkerState::HotIdle, 2, None));
    assert_eq!(owned(&pool, &id), Some((WorkerState::HotIdle, 2, None)));
    assert!(w.store.calls().iter().all(|c| !matches!(
        c.reply,
        Some(Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::StaleOwner, .. })))
    )));
    assert_eq!(pool.acquire("org", 2).await, Ok(id));
}

#[madsim::test]
async fn mutant_torn_epoch_read_strands_the_worker() {
    let (w, pool, id) = release_during_maintain(Mutants::only(Mutant::TornEpochRead)).await;
    // The park used the old epoch, was rejected as stale, and the pool
    // dropped a worker that is still its own.
    let r = w.row(&id);
    assert_eq!((r.state, r.owner, r.owner_epoch, r.session), (WorkerState::Hot, A, 2, Some(1)));
    assert!(owned(&pool, &id).is_none());
    assert_ne!(pool.acquire("org", 2).await.unwrap(), id, "never reused");
    // And never reaped: a hot worker of a live instance.
    let c = cfg();
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::only(Mutant::TornEpochRead));
    let epoch = w.hold_lease(A).await;
    w.at(c.hot_idle_ttl_ms * 2).await;
    w.beat(A).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    reapers.fallback_pass().await;
    assert_eq!(w.row(&id).state, WorkerState::Hot);
    assert!(w.slots().contains(&id), "its slot leaks");
}

// ---------------------------------------------------------------------------
// 11. The replica: sessions and reap metrics

#[madsim::test]
async fn replica_serves_sessions_and_stamps_reaps_only_after_success() {
    let w = World::new();
    let config = ReplicaConfig::default();
    let fleet = config.fleet.clone();
    let store_a = w.client();
    let store_b = w.client();
    let cluster = Arc::new(LocalCluster::new(MemCluster::new(), w.clock.clone()));
    let a = Replica::start(A, config.clone(), store_a.clone(), Arc::new(w.clock.clone()), cluster.clone(), w.observer(A)).unwrap();
    w.sleep(100).await;
    let b = Replica::start(B, config, store_b.clone(), Arc::new(w.clock.clone()), cluster.clone(), w.observer(B)).unwrap();
    store_a.fail_all(is_op("list_workers"));
    store_b.fail_all(is_op("list_workers"));

    let sessions = a.sessions();
    let id = sessions.acquire("org".into(), 1).await.unwrap();
    assert_eq!(w.row(&id).state, WorkerState::Hot);
    sessions.release(1).await.unwrap();
    assert_eq!(w.row(&id).state, WorkerState::HotIdle);
    assert!(cluster.with(|k| k.pods(0)).iter().any(|p| p.name == w.row(&id).pod));

    // Three reap intervals of failing lists: nothing stamped.
    w.at(3 * fleet.reap_interval_ms + 500).await;
    assert!(a.is_leader() && !b.is_leader());
    for r in [&a, &b] {
        let m = r.metrics();
        assert_eq!((m.janitor_last_reap, m.fallback_last_reap), (0, 0), "{m:?}");
    }
    assert!(w.log.reap_failures(A).iter().any(|f| f.0 == "janitor" && f.1 == "list"));
    assert!(w.log.reap_failures(A).iter().any(|f| f.0 == "fallback" && f.1 == "list"));
    assert!(w.log.reap_failures(B).iter().all(|f| f.0 == "fallback"), "B runs no janitor");

    // Healed: the next passes stamp their store time.
    let healed = w.now();
    store_a.heal();
    store_b.heal();
    w.at(healed + fleet.reap_interval_ms + 500).await;
    let (ma, mb) = (a.metrics(), b.metrics());
    assert!(ma.is_leader);
    assert!(ma.janitor_last_reap > healed && ma.fallback_last_reap > healed, "{ma:?}");
    assert!(mb.fallback_last_reap > healed, "{mb:?}");
    assert_eq!(mb.janitor_last_reap, 0, "only the leader runs the janitor");

    // Still within its TTL the idle worker stays; graceful shutdown retires it.
    assert_eq!(w.row(&id).state, WorkerState::HotIdle);
    a.shutdown().await;
    assert_eq!(w.row(&id).state, WorkerState::Retired);
    assert_eq!(sessions.acquire("org".into(), 2).await, Err(PoolError::ShuttingDown));
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// 12. The registry

#[madsim::test]
async fn heartbeat_loop_registers_then_beats_every_interval() {
    let w = World::new();
    let c = cfg();
    let store = w.client();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(heartbeat_loop(A, c.clone(), store.clone(), Arc::new(w.clock.clone()), w.observer(A), rx));
    w.at(50_000).await;
    let calls: Vec<(Millis, &'static str)> = store.calls().iter().map(|c| (c.at, c.req.op())).collect();
    let ops: Vec<&str> = calls.iter().map(|c| c.1).collect();
    assert_eq!(ops, ["register_instance", "heartbeat_instance", "heartbeat_instance", "heartbeat_instance"]);
    for (i, (at, _)) in calls.iter().enumerate() {
        let want = i as u64 * c.heartbeat_ms;
        assert!((want..=want + 5).contains(at), "beat {i} at {at}: {calls:?}");
    }
    let rec = w.instances().into_iter().find(|r| r.id == A).unwrap();
    assert!(rec.started_at <= 5 && rec.heartbeat_at >= 45_000, "{rec:?}");
    tx.send(true).unwrap();
    task.await.unwrap();
    w.at(100_000).await;
    assert_eq!(store.calls().len(), 4, "no beat after stop");
    assert!(w.log.events(A).is_empty());
}

#[madsim::test]
async fn heartbeat_loop_retries_registration_until_it_lands() {
    let w = World::new();
    let c = cfg();
    let store = w.client();
    store.fail_next(3, is_op("register_instance"));
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(heartbeat_loop(A, c.clone(), store.clone(), Arc::new(w.clock.clone()), w.observer(A), rx));
    w.at(20_000).await;
    tx.send(true).unwrap();
    task.await.unwrap();
    let calls: Vec<(Millis, &'static str, bool)> =
        store.calls().iter().map(|c| (c.at, c.req.op(), c.reply.is_some())).collect();
    let ops: Vec<(&str, bool)> = calls.iter().map(|c| (c.1, c.2)).collect();
    assert_eq!(
        ops,
        [
            ("register_instance", false),
            ("register_instance", false),
            ("register_instance", false),
            ("register_instance", true),
            ("heartbeat_instance", true)
        ],
        "{calls:?}"
    );
    // Retried every second until registered, then every heartbeat interval.
    assert!((3_000..=3_020).contains(&calls[3].0) && (18_000..=18_030).contains(&calls[4].0), "{calls:?}");
    let failed = w.log.events(A).into_iter().filter(|e| matches!(e, CoreEvent::HeartbeatFailed { .. })).count();
    assert_eq!(failed, 3);
}

/// Self-fencing: registration lands (its reply 600 ms late), then the store
/// is unreachable. The fenced signal fires `self_fence_after_ms` of local
/// time after the registration was *sent* (not when its reply came), and
/// not a moment before; failed heartbeats are retried within a second; the
/// loop stops at the fence.
#[madsim::test]
async fn heartbeat_and_fence_fences_after_the_deadline_from_the_last_confirmed_send() {
    let w = World::new();
    let config = ReplicaConfig::default();
    let c = config.fleet.clone();
    let after = config.self_fence_after_ms();
    assert!(after > c.heartbeat_ms && after < c.dead_after_ms, "{after}");
    let store = w.client();
    store.rule(Some(1), Action::SlowReply(600), is_op("register_instance"));
    store.fail_all(is_op("heartbeat_instance"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (fenced_tx, fenced) = watch::channel(false);
    let stops = Arc::new(AtomicUsize::new(0));
    let stopped = stops.clone();
    let stop = Box::new(move || {
        stopped.fetch_add(1, Ordering::SeqCst);
    });
    let fence = Some(SelfFence { after_ms: after, stop, fenced: fenced_tx });
    let threshold = Some(c.dead_after_ms);
    let task =
        tokio::spawn(heartbeat_and_fence(A, c.clone(), store.clone(), Arc::new(w.clock.clone()), w.observer(A), stop_rx, fence, threshold));

    w.at(700).await;
    let reg = store.calls()[0].clone();
    assert_eq!((reg.req.op(), reg.reply), ("register_instance", Some(Ok(StoreReply::Done))));
    let sent = reg.at;
    assert!(sent <= 5, "registered at once: {sent}");
    let is_fenced = |e: &CoreEvent| matches!(e, CoreEvent::Fenced { .. });

    w.at(sent + after - 1).await;
    assert!(!*fenced.borrow(), "fenced before the deadline");
    assert!(!w.log.events(A).iter().any(is_fenced), "{:?}", w.log.events(A));
    assert!(!task.is_finished());
    assert_eq!(stops.load(Ordering::SeqCst), 0);
    w.at(sent + after + 1).await;
    assert!(*fenced.borrow(), "not fenced at the deadline ({after} ms after the send at {sent})");
    assert_eq!(stops.load(Ordering::SeqCst), 1, "the instance is stopped once, before the fence is told");
    let fenced_at: Vec<Millis> =
        lock(&w.log.0).iter().filter(|(_, who, e)| *who == A && is_fenced(e)).map(|(at, ..)| *at).collect();
    assert!(matches!(fenced_at.as_slice(), [at] if (sent + after..=sent + after + 1).contains(at)), "one fence, at the deadline: {fenced_at:?}");
    task.await.unwrap();

    // The first heartbeat went out an interval after the registration was
    // confirmed; each failed one was retried a second later, until the fence.
    let beats: Vec<Millis> = store.calls().iter().filter(|c| c.req.op() == "heartbeat_instance").map(|c| c.at).collect();
    assert!(!beats.is_empty() && beats.iter().all(|&at| at < sent + after), "{beats:?}");
    let first = sent + 600 + c.heartbeat_ms;
    assert!((first..=first + 5).contains(&beats[0]), "{beats:?}");
    assert!(beats.windows(2).all(|p| (1_000..=1_005).contains(&(p[1] - p[0]))), "{beats:?}");
    assert!(beats.last().unwrap() + 1_000 >= sent + after, "retried up to the fence: {beats:?}");
    let failed = w.log.events(A).into_iter().filter(|e| matches!(e, CoreEvent::HeartbeatFailed { .. })).count();
    assert_eq!(failed, beats.len());
    // Nothing more once fenced.
    let n = store.calls().len();
    w.at(sent + after + 10_000).await;
    assert_eq!(store.calls().len(), n, "no heartbeat after the fence");
    drop(stop_tx);
}

/// DESIGN.md part 6: heartbeats name the dead threshold, so the store
/// refuses one of an instance it already holds dead; the instance fences at
/// once, without waiting for its own deadline.
#[madsim::test]
async fn a_heartbeat_the_store_refuses_fences_at_once() {
    let w = World::new();
    let c = ReplicaConfig::default().fleet;
    let store = w.client();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (fenced_tx, fenced) = watch::channel(false);
    // A deadline far away: only the store's refusal can fence here.
    let fence = Some(SelfFence { after_ms: 100 * c.dead_after_ms, stop: Box::new(|| {}), fenced: fenced_tx });
    let task = tokio::spawn(heartbeat_and_fence(
        A,
        c.clone(),
        store.clone(),
        Arc::new(w.clock.clone()),
        w.observer(A),
        stop_rx,
        fence,
        Some(c.dead_after_ms),
    ));
    w.at(100).await;
    // Heartbeats lost for longer than the threshold: the registry holds A
    // dead. The next one that gets through is refused and changes nothing.
    store.fail_all(is_op("heartbeat_instance"));
    w.at(c.dead_after_ms + 2_000).await;
    assert!(!*fenced.borrow());
    store.heal();
    w.at(c.dead_after_ms + 3_500).await;
    assert!(*fenced.borrow(), "a refused heartbeat fences: {:?}", store.calls());
    let last = store.calls().last().cloned().unwrap();
    assert_eq!((last.req.op(), last.reply), ("heartbeat_instance", Some(Ok(StoreReply::InstanceDead))));
    assert!(store.calls().iter().all(|call| match &call.req {
        StoreRequest::RegisterInstance { dead_after_ms, .. } | StoreRequest::HeartbeatInstance { dead_after_ms, .. } =>
            *dead_after_ms == Some(c.dead_after_ms),
        _ => true,
    }));
    let rec = w.instances().into_iter().find(|r| r.id == A).unwrap();
    assert!(rec.heartbeat_at < 100, "not revived: {rec:?}");
    task.await.unwrap();
    drop(stop_tx);
}

#[test]
fn is_dead_and_live_instances_use_the_threshold() {
    let rec = |id, heartbeat_at| InstanceRecord { id: InstanceId(id), started_at: 0, heartbeat_at };
    let dead_after = 30_000;
    assert!(!is_dead(&rec(1, 100), 30_099, dead_after));
    assert!(is_dead(&rec(1, 100), 30_100, dead_after), "dead exactly at heartbeat + threshold");
    assert!(!is_dead(&rec(1, 100), 0, dead_after), "a heartbeat from the future is not dead");
    // Saturating: near the end of time a heartbeat cannot overflow.
    assert!(is_dead(&rec(1, u64::MAX - 5), u64::MAX, dead_after));
    let list = [rec(1, 0), rec(2, 10_000), rec(3, 20_000)];
    let ids = |now| live_instances(&list, now, dead_after).into_iter().map(|i| i.0).collect::<Vec<_>>();
    assert_eq!(ids(29_999), [1, 2, 3]);
    assert_eq!(ids(30_000), [2, 3]);
    assert_eq!(ids(45_000), [3]);
    assert_eq!(ids(50_000), Vec::<u64>::new());
    assert!(live_instances(&[], 5, dead_after).is_empty());
}

// ---------------------------------------------------------------------------
// Shutdown

#[madsim::test]
async fn pool_shutdown_retires_idle_workers_and_keeps_busy_ones() {
    let w = World::new();
    let pool = w.pool(A, &cfg(), Mutants::none());
    let idle = idle_worker(&pool, "org", 1).await;
    let busy = pool.acquire("other-org", 2).await.unwrap();
    pool.shutdown().await;
    assert_gone(&w, &idle, WorkerState::Retired);
    let r = w.row(&busy);
    assert_eq!(r.state, WorkerState::Hot, "a busy worker is left to the reapers");
    assert!(w.has_pod(&r.pod));
    assert_eq!(pool.acquire("org", 3).await, Err(PoolError::ShuttingDown));
}

// ---------------------------------------------------------------------------
// Partial failures and races of the reapers

/// The janitor lists an idle worker as expired; before it claims it, the
/// owner reuses it for a new session (a reuse does not bump the owner
/// epoch). The janitor must not drain a worker that is serving a session.
/// The race: A's worker expires idle; J's janitor pass starts, with the
/// reply to `slow_op` (one of the lists of its view) held back 500 ms; in
/// that window A reuses the worker for session 2. Returns after the pass.
async fn janitor_pass_racing_a_reuse(slow_op: &'static str) -> (World, Arc<TPool>, Arc<FaultyStore>, Arc<TReapers>, String) {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let id = idle_worker(&pool, "org", 1).await;
    let (jstore, _, janitor, epoch) = w.janitor_replica(&c).await;
    jstore.slow_replies(500, is_op(slow_op));

    w.at(c.hot_idle_ttl_ms + 1_000).await;
    w.beat(A).await;
    w.beat(J).await;
    let jan = janitor.clone();
    let pass = tokio::spawn(async move { jan.janitor_pass(&Gate::none(), epoch).await });
    w.sleep(100).await;
    assert_eq!(pool.acquire("org", 2).await, Ok(id.clone()), "reused before the janitor's claim");
    pass.await.unwrap();
    (w, pool, jstore, janitor, id)
}

#[madsim::test]
async fn janitor_does_not_retire_a_worker_reused_after_its_list() {
    // The janitor's view is slow to complete: the worker list is taken, the
    // slot list's reply arrives late.
    let (w, _pool, _jstore, _janitor, id) = janitor_pass_racing_a_reuse("list_slots").await;
    let r = w.row(&id);
    assert_eq!((r.state, r.session), (WorkerState::Hot, Some(2)), "the session's worker was reaped: {r:?}");
    assert!(w.has_pod(&r.pod), "the session's pod was deleted");
}

/// A dead instance's busy worker: the reaper's write to lost (the claim
/// itself, which moves the row to lost in the same CAS) fails, and the row
/// is left as it was; the next claim lands, but freeing the slot after it
/// fails, so the row is lost under a live instance with its slot held.
/// Later passes must still finish the job.
#[madsim::test]
async fn a_dead_owners_worker_is_reaped_after_a_failed_lost_write() {
    let w = World::new();
    let c = FleetConfig { hot_idle_ttl_ms: DAY, ..cfg() };
    let pool_a = w.pool(A, &c, Mutants::none());
    let bstore = w.client();
    let pool_b = w.pool_on(B, bstore.clone(), &c, Mutants::none());
    let reapers_b = w.reapers(&pool_b, bstore.clone(), &c, Mutants::none());
    w.beat(A).await;
    let beats_b = w.heartbeats(B, &c);
    let busy = pool_a.acquire("org", 1).await.unwrap();
    let before = w.row(&busy);
    bstore.fail_next(1, |r| matches!(r, StoreRequest::ClaimWorker { to: Some(WorkerState::Lost), .. }));

    w.at(c.dead_after_ms + 15_000).await;
    reapers_b.fallback_pass().await;
    assert_one_failure(&w, B, "fallback", "dead-owners", "injected failure");
    assert_eq!(w.row(&busy), before, "a failed claim to lost changes nothing");
    // The next pass's claim lands (to lost, B's), but its slot free fails.
    bstore.fail_next(1, is_op("free_slot"));
    w.sleep(c.reap_interval_ms).await;
    reapers_b.fallback_pass().await;
    assert_eq!(w.log.reap_failures(B).len(), 2, "{:?}", w.log.reap_failures(B));
    let r = w.row(&busy);
    assert_eq!((r.state, r.owner, r.owner_epoch), (WorkerState::Lost, B, 2), "{r:?}");
    assert!(w.slots().contains(&busy), "the failed free left its slot: {:?}", w.slots());
    // The store has healed; the fallback reaper keeps running, and so does a
    // janitor.
    let (_, _, janitor, epoch) = w.janitor_replica(&c).await;
    for _ in 0..30 {
        w.sleep(c.reap_interval_ms).await;
        w.beat(J).await;
        reapers_b.fallback_pass().await;
        janitor.janitor_pass(&Gate::none(), epoch).await;
    }
    beats_b.send(true).unwrap();
    let r = w.row(&busy);
    assert!(r.state.is_terminal(), "stranded after a failed reap: {r:?}; slots {:?}", w.slots());
    assert_gone(&w, &busy, r.state);
}

/// A janitor on another replica drains an expired idle worker (claiming it)
/// and deletes its objects, then its write to retired fails. With the store
/// healed, the fleet's upkeep (janitor passes, both replicas' maintenance
/// and fallback passes) must finish it: retired, slot freed — not leave it
/// draining under a claim nobody resumes.
#[madsim::test]
async fn janitor_finishes_a_drain_whose_retire_write_failed() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    let id = idle_worker(&pool, "org", 1).await;
    let (jstore, jpool, janitor, epoch) = w.janitor_replica(&c).await;
    jstore.fail_next(1, |r| matches!(r, StoreRequest::UpdateWorker { to: WorkerState::Retired, .. }));
    w.at(c.hot_idle_ttl_ms + 1_000).await;
    for _ in 0..30 {
        w.beat(A).await;
        w.beat(J).await;
        janitor.janitor_pass(&Gate::none(), epoch).await;
        for (p, r) in [(&pool, &reapers), (&jpool, &janitor)] {
            p.maintain().await;
            r.fallback_pass().await;
        }
        w.sleep(c.reap_interval_ms).await;
    }
    assert_eq!(w.log.reap_failures(J).len(), 1, "{:?}", w.log.reap_failures(J));
    assert_gone(&w, &id, WorkerState::Retired);
}

/// Same for the fallback reaper retiring its own expired idle worker.
#[madsim::test]
async fn fallback_finishes_a_drain_whose_retire_write_failed() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let id = idle_worker(&pool, "org", 1).await;
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    w.store.fail_next(WRITE_TRIES, |r| matches!(r, StoreRequest::UpdateWorker { to: WorkerState::Retired, .. }));
    w.at(c.hot_idle_ttl_ms + 1_000).await;
    for _ in 0..30 {
        w.beat(A).await;
        pool.maintain().await;
        reapers.fallback_pass().await;
        w.sleep(c.reap_interval_ms).await;
    }
    assert_eq!(w.log.reap_failures(A).len(), 1, "{:?}", w.log.reap_failures(A));
    assert_gone(&w, &id, WorkerState::Retired);
}

// ---------------------------------------------------------------------------
// Unknown outcomes: unsettled take-overs, failed spawns, adoption

fn is_update_to(to: WorkerState) -> impl Fn(&StoreRequest) -> bool + Send + Sync + Clone + 'static {
    move |r| matches!(r, StoreRequest::UpdateWorker { to: t, .. } if *t == to)
}

/// The next matching call commits but its reply comes after the call
/// timeout (the caller gives up, unsure); the `retries` matching calls after
/// it fail before reaching the store.
fn lose_reply_then_fail(
    store: &FaultyStore,
    c: &FleetConfig,
    retries: u32,
    matches: impl Fn(&StoreRequest) -> bool + Send + Sync + Clone + 'static,
) {
    store.rule(Some(1), Action::SlowReply(c.call_timeout_ms + 500), matches.clone());
    store.fail_next(retries, matches);
}

/// A's busy worker; A stops heartbeating at 0. At 45 s (A dead) B is alive
/// and about to reap. Returns the world, B's pool, reapers and store client,
/// and A's worker.
async fn dead_owner_and_reaper(c: &FleetConfig) -> (World, Arc<TPool>, Arc<TReapers>, Arc<FaultyStore>, String) {
    let w = World::new();
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

/// The row was taken over by `pool`'s instance (claimed at `epoch`, left in
/// `state`, objects and slot still there) while its pool does not hold it:
/// only the reapers' unsettled set remembers it.
#[track_caller]
fn assert_taken_not_held(w: &World, pool: &TPool, reapers: &TReapers, id: &str, state: WorkerState, epoch: u64) {
    let r = w.row(id);
    assert_eq!((r.state, r.owner, r.owner_epoch), (state, pool.instance(), epoch), "{r:?}");
    assert!(!pool.owns(id), "the pool does not hold {id}");
    assert!(lock(&reapers.unsettled).contains_key(id), "not unsettled: {:?}", lock(&reapers.unsettled));
    assert!(w.has_pod(&r.pod) && w.has_secret(&r.secret), "objects already deleted");
    assert!(w.slots().contains(&r.id));
}

#[track_caller]
fn assert_one_failure(w: &World, who: InstanceId, reaper: &str, pass: &str, error_has: &str) {
    let fails = w.log.reap_failures(who);
    assert!(
        matches!(fails.as_slice(), [(r, p, e)] if *r == reaper && *p == pass && e.contains(error_has)),
        "{fails:?}"
    );
}

/// The fallback reaper's claim of a dead owner's worker commits, but its
/// reply is lost: the claim moved the row to lost in the same CAS, so it is
/// ended, B's, with its objects and slot still there, and B's pool does not
/// hold it. B's next fallback pass settles it (no second claim) and frees
/// its slot; the janitor's orphan passes delete its pod and secret.
#[madsim::test]
async fn fallback_finishes_a_take_over_whose_claim_reply_was_lost() {
    let c = cfg();
    let (w, pool_b, reapers_b, bstore, id) = dead_owner_and_reaper(&c).await;
    bstore.rule(Some(1), Action::SlowReply(c.call_timeout_ms + 500), is_op("claim_worker"));
    reapers_b.fallback_pass().await;
    assert_one_failure(&w, B, "fallback", "dead-owners", "timed out");
    assert_taken_not_held(&w, &pool_b, &reapers_b, &id, WorkerState::Lost, 2);

    w.sleep(c.reap_interval_ms).await;
    w.beat(B).await;
    reapers_b.fallback_pass().await;
    let r = w.row(&id);
    assert_eq!((r.state, r.owner, r.owner_epoch), (WorkerState::Lost, B, 2), "ended by the lost claim itself: {r:?}");
    assert!(!w.slots().contains(&id), "its slot is freed: {:?}", w.slots());
    assert!(lock(&reapers_b.unsettled).is_empty(), "settled: {:?}", lock(&reapers_b.unsettled));
    assert_eq!(w.log.reap_failures(B).len(), 1, "the second pass failed nothing: {:?}", w.log.reap_failures(B));
    let claims = bstore.calls().into_iter().filter(|c| c.req.op() == "claim_worker").count();
    assert_eq!(claims, 1, "no second claim of an ended row");
    assert!(pool_b.owned().is_empty());

    // The objects of an ended row are the orphan passes' (they are old).
    let epoch = w.hold_lease(B).await;
    reapers_b.janitor_pass(&Gate::none(), epoch).await;
    assert_gone(&w, &id, WorkerState::Lost);
    assert_eq!(w.log.reap_failures(B).len(), 1, "{:?}", w.log.reap_failures(B));
}

/// The claim (to lost in the same CAS) lands and is answered, the objects
/// are deleted, then freeing the slot fails: the row is ended, B's, with
/// its slot held. The next fallback pass frees it (no janitor needed).
#[madsim::test]
async fn fallback_finishes_a_take_over_whose_slot_free_failed() {
    let c = cfg();
    let (w, pool_b, reapers_b, bstore, id) = dead_owner_and_reaper(&c).await;
    bstore.fail_next(1, is_op("free_slot"));
    reapers_b.fallback_pass().await;
    assert_one_failure(&w, B, "fallback", "dead-owners", "injected failure");
    let r = w.row(&id);
    assert_eq!((r.state, r.owner, r.owner_epoch), (WorkerState::Lost, B, 2), "{r:?}");
    assert!(!w.has_pod(&r.pod) && !w.has_secret(&r.secret), "objects deleted before the free");
    assert_eq!(w.slots(), vec![id.clone()], "the slot is still held");
    assert!(!pool_b.owns(&id));
    // The row is ended: nothing is left to take over.
    assert!(lock(&reapers_b.unsettled).is_empty(), "{:?}", lock(&reapers_b.unsettled));

    w.sleep(c.reap_interval_ms).await;
    w.beat(B).await;
    reapers_b.fallback_pass().await;
    assert_gone(&w, &id, WorkerState::Lost);
    assert_eq!((w.row(&id).owner, w.row(&id).owner_epoch), (B, 2));
    assert_eq!(w.log.reap_failures(B).len(), 1, "{:?}", w.log.reap_failures(B));
}

/// The janitor (another replica) claims an expired idle worker, to draining
/// in the same CAS; the reply is lost. The row is J's, draining, with its
/// objects, and J's pool does not hold it (so neither J's pool nor its
/// janitor's own-worker path retires it). J's fallback pass finishes it;
/// A's stale memory is fenced out.
#[madsim::test]
async fn fallback_finishes_a_janitor_take_over_whose_claim_reply_was_lost() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let id = idle_worker(&pool, "org", 1).await;
    let (jstore, jpool, janitor, epoch) = w.janitor_replica(&c).await;
    jstore.rule(Some(1), Action::SlowReply(c.call_timeout_ms + 500), is_op("claim_worker"));

    w.at(c.hot_idle_ttl_ms + 1_000).await;
    w.beat(A).await;
    w.beat(J).await;
    janitor.janitor_pass(&Gate::none(), epoch).await;
    assert_one_failure(&w, J, "janitor", "idle", "timed out");
    assert_taken_not_held(&w, &jpool, &janitor, &id, WorkerState::Draining, 2);

    w.sleep(c.reap_interval_ms).await;
    w.beat(A).await;
    w.beat(J).await;
    janitor.fallback_pass().await;
    assert_gone(&w, &id, WorkerState::Retired);
    let r = w.row(&id);
    assert_eq!((r.owner, r.owner_epoch), (J, 3), "ended by J, under a fresh claim of its own: {r:?}");
    assert!(lock(&janitor.unsettled).is_empty());
    assert_eq!(w.log.reap_failures(J).len(), 1, "{:?}", w.log.reap_failures(J));
    let next = pool.acquire("org", 2).await.unwrap();
    assert_ne!(next, id, "the retired worker is not served");
    assert!(owned(&pool, &id).is_none());
}

/// B is the leader. Its janitor's take-over of A's expired idle worker
/// (claimed to draining in one CAS) loses its reply: the row is B's,
/// draining, unsettled. Two reap intervals later a janitor pass lists the
/// quiet draining row as stuck; before that janitor claims it, B's fallback
/// pass resumes the take-over with a claim of its own (reply lost again).
/// The janitor's claim, at the epoch it listed, is refused as stale with the
/// row still B's and not ended: that must not drop the unsettled take-over,
/// which the next fallback pass finishes.
#[madsim::test]
async fn janitor_claim_refused_because_this_instance_took_the_row_keeps_it_unsettled() {
    let w = World::new();
    let c = cfg();
    let pool_a = w.pool(A, &c, Mutants::none());
    let id = idle_worker(&pool_a, "org", 1).await;
    let bstore = w.client();
    let pool_b = w.pool_on(B, bstore.clone(), &c, Mutants::none());
    let reapers_b = w.reapers(&pool_b, bstore.clone(), &c, Mutants::none());
    let epoch = w.hold_lease(B).await;
    let lose_claim_reply = || bstore.rule(Some(1), Action::SlowReply(c.call_timeout_ms + 500), is_op("claim_worker"));

    w.at(c.hot_idle_ttl_ms + 1_000).await;
    w.beat(A).await;
    w.beat(B).await;
    lose_claim_reply();
    reapers_b.janitor_pass(&Gate::none(), epoch).await;
    assert_one_failure(&w, B, "janitor", "idle", "timed out");
    assert_taken_not_held(&w, &pool_b, &reapers_b, &id, WorkerState::Draining, 2);

    // Quiet for two reap intervals: stuck to the janitor.
    w.at(w.row(&id).updated_at + 2 * c.reap_interval_ms + 1_000).await;
    w.beat(A).await;
    w.beat(B).await;
    // The janitor's worker list is taken at once; its slot list answers
    // 300 ms later. The fallback pass starts 100 ms in; its claim (the
    // first of this round) commits with its reply lost.
    let before = bstore.calls().len();
    bstore.rule(Some(1), Action::SlowReply(300), is_op("list_slots"));
    lose_claim_reply();
    let r = reapers_b.clone();
    let jan = tokio::spawn(async move { r.janitor_pass(&Gate::none(), epoch).await });
    w.sleep(100).await;
    reapers_b.fallback_pass().await;
    jan.await.unwrap();

    let claims: Vec<Call> = bstore.calls()[before..].iter().filter(|c| c.req.op() == "claim_worker").cloned().collect();
    assert_eq!(claims.len(), 2, "{claims:#?}");
    // The fallback's: resumes the drain at the epoch it is ours at.
    assert!(
        matches!(&claims[0].req, StoreRequest::ClaimWorker { owner: B, epoch: 2, from: Some(WorkerState::Draining), to: None, fence: None, .. }),
        "{claims:#?}"
    );
    assert!(matches!(claims[0].reply, Some(Ok(StoreReply::Worker(WorkerCas::Applied(_))))), "{claims:#?}");
    // The janitor's: the stuck pass, fenced, at the epoch it listed.
    assert!(
        matches!(&claims[1].req, StoreRequest::ClaimWorker { owner: B, epoch: 2, from: Some(WorkerState::Draining), fence: Some(_), .. }),
        "{claims:#?}"
    );
    match &claims[1].reply {
        Some(Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::StaleOwner, current: Some(cur) })))
            if cur.owner == B && cur.owner_epoch == 3 && cur.state == WorkerState::Draining => {}
        other => panic!("the janitor's claim should be refused, the row B's: {other:?}"),
    }
    assert!(claims[0].at < claims[1].at);
    let fails = w.log.reap_failures(B);
    assert_eq!(fails.len(), 2, "{fails:?}");
    assert!(matches!(&fails[1], ("fallback", "unsettled", e) if e.contains("timed out")), "{fails:?}");
    assert_taken_not_held(&w, &pool_b, &reapers_b, &id, WorkerState::Draining, 3);

    w.sleep(c.reap_interval_ms).await;
    w.beat(A).await;
    w.beat(B).await;
    reapers_b.fallback_pass().await;
    assert_gone(&w, &id, WorkerState::Retired);
    assert_eq!((w.row(&id).owner, w.row(&id).owner_epoch), (B, 4));
    assert!(lock(&reapers_b.unsettled).is_empty());
    assert_eq!(w.log.reap_failures(B).len(), 2, "{:?}", w.log.reap_failures(B));
}

/// The activating→hot write commits with its reply lost, and its retries
/// fail: the spawn fails. Undoing it finds the row hot (the write landed)
/// and its drain fails, so the pool still holds a worker whose pod and
/// secret are deleted, hot with no session in memory. It must never be
/// served; upkeep retires it and frees its slot.
#[madsim::test]
async fn a_failed_spawn_whose_hot_write_landed_unseen_is_never_served() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    lose_reply_then_fail(&w.store, &c, WRITE_TRIES - 1, is_to_hot_from_activating);
    w.store.fail_next(1, is_update_to(WorkerState::Draining));
    let out = pool.acquire("org", 1).await;
    assert!(matches!(&out, Err(PoolError::SpawnFailed(m)) if m.contains("to hot")), "{out:?}");
    assert_eq!(w.log.spawn_failures(A).len(), 1);
    let r = w.row("w1.1");
    assert_eq!((r.state, r.session, r.owner_epoch), (WorkerState::Hot, Some(1), 1), "the lost write landed: {r:?}");
    assert!(!w.has_pod(&r.pod) && !w.has_secret(&r.secret), "its objects are deleted");
    assert_eq!(owned(&pool, "w1.1"), Some((WorkerState::Hot, 1, None)), "held: hot, no session");
    assert_eq!(w.slots(), vec!["w1.1".to_string()], "its slot is kept until the row is retired");

    let next = pool.acquire("org", 2).await.unwrap();
    assert_ne!(next, "w1.1", "a failed spawn was served");
    assert_eq!(w.row("w1.1").session, Some(1), "not bound to the new session");
    let n = w.row(&next);
    assert_eq!((n.state, n.session), (WorkerState::Hot, Some(2)));

    pool.maintain().await;
    assert_gone(&w, "w1.1", WorkerState::Retired);
    assert!(owned(&pool, "w1.1").is_none());
    assert_eq!(w.slots(), vec![next.clone()]);
    assert_eq!(w.row(&next).state, WorkerState::Hot);
    // Even with the row retired, the next session never gets it.
    pool.release(2).await.unwrap();
    assert_eq!(pool.acquire("org", 3).await, Ok(next));
}

/// A park commits with its reply lost, its retries fail: memory says hot,
/// the row hot-idle. The next maintain (which refreshes the epoch) brings
/// memory to the row; the worker then ages out and is retired as usual.
#[madsim::test]
async fn pool_adopts_a_park_that_landed_unseen() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    let id = pool.acquire("org", 1).await.unwrap();
    lose_reply_then_fail(&w.store, &c, WRITE_TRIES - 1, is_park);
    pool.release(1).await.unwrap();
    let parked = w.row(&id);
    assert_eq!((parked.state, parked.session, parked.owner_epoch), (WorkerState::HotIdle, None, 1), "the park landed");
    assert_eq!(owned(&pool, &id), Some((WorkerState::Hot, 1, None)), "memory is behind the row");

    w.store.heal();
    pool.maintain().await;
    let r = w.row(&id);
    assert_eq!((r.state, r.session, r.owner_epoch), (WorkerState::HotIdle, None, 2), "{r:?}");
    assert_eq!(owned(&pool, &id), Some((r.state, r.owner_epoch, r.session)), "memory matches the row");
    assert_eq!(r.idle_since, parked.idle_since, "idle since the park that landed");

    w.at(parked.idle_since + c.hot_idle_ttl_ms + 1_000).await;
    w.beat(A).await;
    pool.maintain().await;
    reapers.fallback_pass().await;
    assert_gone(&w, &id, WorkerState::Retired);
    assert!(pool.owned().is_empty());
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
}

/// The fallback reaper's drain of an expired idle worker commits with its
/// reply lost, its retries fail: the row is draining (objects still there),
/// memory says hot-idle, so neither the pool (a hot-idle worker) nor the
/// janitor (a draining row its pool holds) would finish it. The next
/// maintain adopts the row; the one after finishes the drain.
#[madsim::test]
async fn pool_adopts_a_drain_that_landed_unseen_and_finishes_it() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    let id = idle_worker(&pool, "org", 1).await;
    w.at(c.hot_idle_ttl_ms + 1_000).await;
    w.beat(A).await;
    lose_reply_then_fail(&w.store, &c, WRITE_TRIES - 1, is_update_to(WorkerState::Draining));
    reapers.fallback_pass().await;
    assert_one_failure(&w, A, "fallback", "own-idle", "to draining");
    let r = w.row(&id);
    assert_eq!((r.state, r.owner, r.owner_epoch), (WorkerState::Draining, A, 1), "the drain landed: {r:?}");
    assert!(w.has_pod(&r.pod) && w.has_secret(&r.secret));
    assert_eq!(owned(&pool, &id), Some((WorkerState::HotIdle, 1, None)), "memory is behind the row");

    w.store.heal();
    pool.maintain().await;
    let r = w.row(&id);
    assert_eq!((r.state, r.owner_epoch), (WorkerState::Draining, 2), "{r:?}");
    assert_eq!(owned(&pool, &id), Some((WorkerState::Draining, 2, None)), "memory adopted the row");
    assert_eq!(pool.acquire("org", 2).await.map(|n| n == id), Ok(false), "a draining worker is not served");

    w.sleep(c.reap_interval_ms).await;
    w.beat(A).await;
    pool.maintain().await;
    assert_gone(&w, &id, WorkerState::Retired);
    assert!(owned(&pool, &id).is_none());
}

/// The janitor's worker list (slow to answer) shows an expired hot-idle
/// worker; before the janitor claims it, its owner reuses it for a new
/// session (same epoch). The claim names the state it saw, so it is refused:
/// the worker is neither taken nor drained and serves its session.
#[madsim::test]
async fn janitor_claim_names_the_state_it_saw_and_spares_a_reused_worker() {
    let (w, pool, jstore, janitor, id) = janitor_pass_racing_a_reuse("list_workers").await;
    let janitor_writes: Vec<StoreRequest> = jstore
        .calls()
        .into_iter()
        .filter(|c| matches!(c.req, StoreRequest::ClaimWorker { .. } | StoreRequest::UpdateWorker { .. }))
        .map(|c| {
            if let StoreRequest::ClaimWorker { from, to, .. } = &c.req {
                assert_eq!(*from, Some(WorkerState::HotIdle), "the claim names the state listed");
                assert_eq!(*to, Some(WorkerState::Draining), "and the drain it would start");
                assert!(
                    matches!(
                        c.reply,
                        Some(Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::WrongState, .. })))
                    ),
                    "{:?}",
                    c.reply
                );
            }
            c.req
        })
        .collect();
    assert_eq!(janitor_writes.len(), 1, "one refused claim, no drain: {janitor_writes:#?}");
    let r = w.row(&id);
    assert_eq!((r.state, r.session, r.owner, r.owner_epoch), (WorkerState::Hot, Some(2), A, 1), "{r:?}");
    assert!(w.has_pod(&r.pod) && w.has_secret(&r.secret));
    assert!(lock(&janitor.unsettled).is_empty(), "someone else's: settled");
    assert!(w.log.reap_failures(J).is_empty(), "{:?}", w.log.reap_failures(J));
    assert_eq!(owned(&pool, &id), Some((WorkerState::Hot, 1, Some(2))));
    pool.release(2).await.unwrap();
    assert_eq!(w.row(&id).state, WorkerState::HotIdle);
}

// ---------------------------------------------------------------------------
// Health checks and self-fencing (DESIGN.md part 6, field report 004)

/// A worker serving session 1 whose pod then dies: the pool's health check
/// marks it lost, the session's watch ends with the reason, the pod and
/// secret go and the slot is freed; the worker is never served again.
#[madsim::test]
async fn health_check_marks_a_dead_pod_lost_and_tells_its_client() {
    let w = World::new();
    let pool = w.pool(A, &cfg(), Mutants::none());
    let id = pool.acquire("org", 1).await.expect("acquire");
    let watch = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.watch(1).await })
    };
    pool.health_check().await;
    assert_eq!(w.row(&id).state, WorkerState::Hot, "a running pod is alive");
    assert!(!watch.is_finished());
    let pod = w.row(&id).pod;
    assert!(w.cluster.with(|c| c.fail_pod(&pod)));
    pool.health_check().await;
    assert_gone(&w, &id, WorkerState::Lost);
    let told = watch.await.unwrap();
    assert_eq!(told, PoolError::SessionEnded(format!("worker {id} lost: its pod {pod} failed")));
    assert!(!pool.owns(&id));
    assert_eq!(pool.release(1).await, Err(PoolError::UnknownSession(1)));
    // The next session gets a new worker.
    let next = pool.acquire("org", 2).await.expect("acquire");
    assert_ne!(next, id);
}

/// A hot-idle worker whose pod vanished is lost too; with the mutant it
/// stays and is handed to the next session.
#[madsim::test]
async fn health_check_finds_vanished_pods_and_the_mutant_does_not() {
    for (mutants, caught) in [(Mutants::none(), true), (Mutants::only(Mutant::NoHealthCheck), false)] {
        let w = World::new();
        let pool = w.pool(A, &cfg(), mutants);
        let id = idle_worker(&pool, "org", 1).await;
        let pod = w.row(&id).pod;
        w.cluster.with(|c| c.apply(&ClusterRequest::DeletePod { name: pod.clone() }, 0)).unwrap();
        pool.health_check().await;
        let again = pool.acquire("org", 2).await.expect("acquire");
        if caught {
            assert_gone(&w, &id, WorkerState::Lost);
            assert_ne!(again, id, "a dead worker is never served again");
        } else {
            assert_eq!(again, id, "the mutant serves the dead worker");
        }
    }
}

/// The janitor's fleet-wide health check takes over a live peer's worker
/// whose pod failed and marks it lost; the peer's session ends with an
/// error once its own pool notices it is no longer its worker.
#[madsim::test]
async fn janitor_marks_a_live_peers_dead_worker_lost() {
    let w = World::new();
    let c = cfg();
    let peer = w.pool(B, &c, Mutants::none());
    let janitor_pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&janitor_pool, w.store.clone(), &c, Mutants::none());
    let id = peer.acquire("org", 1).await.expect("acquire");
    let watch = {
        let peer = peer.clone();
        tokio::spawn(async move { peer.watch(1).await })
    };
    let epoch = w.hold_lease(A).await;
    w.beat(A).await;
    w.beat(B).await;
    assert!(w.cluster.with(|k| k.fail_pod(&format!("pod-{id}"))));
    reapers.janitor_pass(&Gate::none(), epoch).await;
    let r = w.row(&id);
    assert_eq!((r.state, r.owner), (WorkerState::Lost, A), "{r:?}");
    assert_gone(&w, &id, WorkerState::Lost);
    // The peer finds out at its next upkeep (its refresh is fenced out).
    peer.maintain().await;
    assert!(matches!(watch.await.unwrap(), PoolError::SessionEnded(_)));
    assert!(!peer.owns(&id));
}

/// A replica that fences itself ends its sessions with an error, refuses
/// new ones, and sends nothing more to the store or the cluster.
#[madsim::test]
async fn a_fenced_replica_ends_its_sessions_and_makes_no_more_calls() {
    let w = World::new();
    let mut config = ReplicaConfig::default();
    config.fleet = cfg();
    let store = w.client();
    let replica = Replica::start(A, config, store.clone(), Arc::new(w.clock.clone()), w.cluster.clone(), w.observer(A)).unwrap();
    let sessions = replica.sessions();
    let id = sessions.acquire("org".into(), 1).await.expect("acquire");
    let watch = {
        let sessions = sessions.clone();
        tokio::spawn(async move { sessions.watch(1).await })
    };
    w.sleep(1_000).await;
    // Cut off from the store: the heartbeat cannot be confirmed.
    store.fail_all(|_| true);
    let fenced = replica.fenced();
    tokio::time::timeout(Duration::from_millis(cfg().dead_after_ms), fenced).await.expect("fenced before the dead threshold");
    assert_eq!(watch.await.unwrap(), PoolError::Fenced);
    assert_eq!(sessions.acquire("org".into(), 2).await, Err(PoolError::Fenced));
    store.heal();
    let (calls, pods) = (store.calls().len(), w.pods());
    w.sleep(3 * cfg().reap_interval_ms).await;
    assert_eq!(store.calls().len(), calls, "no store call after the fence: {:?}", &store.calls()[calls..]);
    assert_eq!(w.pods(), pods);
    assert_eq!(w.row(&id).owner, A);
    drop(replica);
}

// ---------------------------------------------------------------------------
// Headroom, secret reaper scoping, per-pass deadlines, view-time ageing,
// lost health claims (field reports 002 fix 6 and 004)

const D: InstanceId = InstanceId(4);
const U: InstanceId = InstanceId(5);

impl World {
    /// This deployment's placeholder pods, by name.
    fn placeholders(&self) -> Vec<String> {
        let now = self.now();
        self.cluster.with(|c| c.pods(now)).into_iter().filter(|p| is_placeholder(&p.labels)).map(|p| p.name).collect()
    }

    /// Names of the pods created (`create`) or deleted since call `from`.
    fn pod_writes(&self, from: usize, create: bool) -> Vec<String> {
        self.cluster.calls()[from..]
            .iter()
            .filter_map(|(_, r)| match r {
                ClusterRequest::CreatePod { name, .. } if create => Some(name.clone()),
                ClusterRequest::DeletePod { name } if !create => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// A secret of this deployment for `pod`, made by `owner`, timestamped now.
    fn create_secret_of(&self, name: &str, pod: &str, owner: InstanceId) {
        let mut labels = deployment_selector(&cfg().deployment);
        labels.insert(SECRET_POD_LABEL.into(), pod.into());
        labels.insert(INSTANCE_LABEL.into(), owner.to_string());
        let now = self.now();
        self.cluster.with(|c| c.apply(&ClusterRequest::CreateSecret { name: name.into(), labels }, now)).unwrap();
    }
}

fn names(deployment: &str, n: std::ops::Range<u32>) -> Vec<String> {
    n.map(|i| placeholder_name(deployment, i)).collect()
}

/// With `headroom_nodes = N` the janitor keeps exactly N placeholders, makes
/// no churn on later passes, grows and shrinks with N, and 0 deletes them
/// all. Placeholders are no workers: no row, no slot, no capacity, and the
/// orphan-pod pass never deletes one however old.
#[madsim::test]
async fn headroom_keeps_exactly_the_configured_placeholders() {
    let w = World::new();
    let dep = cfg().deployment;
    let with = |n: u32| FleetConfig { headroom_nodes: n, global_cap: 2, ..cfg() };
    let pool = w.pool(A, &with(3), Mutants::none());
    let epoch = w.hold_lease(A).await;
    w.beat(A).await;
    let pass = |n: u32| {
        let r = w.reapers(&pool, w.store.clone(), &with(n), Mutants::none());
        async move { r.janitor_pass(&Gate::none(), epoch).await }
    };

    pass(3).await;
    assert_eq!(w.placeholders(), names(&dep, 0..3));
    let now = w.now();
    for p in w.cluster.with(|c| c.pods(now)) {
        assert_eq!(p.labels, placeholder_selector(&dep), "{p:?}");
    }
    assert!(w.rows().is_empty() && w.slots().is_empty(), "placeholders are no workers");

    // They take no capacity: the whole global cap (2) is still there.
    let a = pool.acquire("org", 1).await.expect("first within the cap");
    let b = pool.acquire("org", 2).await.expect("second within the cap");
    assert_eq!(pool.acquire("org", 3).await, Err(PoolError::AtCapacity("fleet".into())), "the cap is 2 workers, placeholders aside");
    let mut held = w.slots();
    held.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(held, want);

    // An orphan pod next to them, and time past the orphan age: the orphan
    // pod pass deletes the orphan only; no placeholder churn.
    w.create_pod("pod-orphan", deployment_selector(&dep));
    w.at(cfg().orphan_min_age_ms + 5_000).await;
    w.beat(A).await;
    let from = w.cluster.calls().len();
    pass(3).await;
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    assert!(!w.has_pod("pod-orphan"), "the orphan pass ran");
    assert_eq!(w.pod_writes(from, false), vec!["pod-orphan".to_string()], "no placeholder deleted");
    assert!(w.pod_writes(from, true).is_empty(), "none created again");
    assert_eq!(w.placeholders(), names(&dep, 0..3));
    assert!(w.has_pod(&w.row(&a).pod) && w.has_pod(&w.row(&b).pod));

    // Grows: only the new ones are created.
    let from = w.cluster.calls().len();
    pass(5).await;
    assert_eq!(w.placeholders(), names(&dep, 0..5));
    assert_eq!(w.pod_writes(from, true), names(&dep, 3..5));
    assert!(w.pod_writes(from, false).is_empty());

    // Shrinks: the extras are deleted.
    let from = w.cluster.calls().len();
    pass(2).await;
    assert_eq!(w.placeholders(), names(&dep, 0..2));
    assert_eq!(w.pod_writes(from, false), names(&dep, 2..5));
    assert!(w.pod_writes(from, true).is_empty());

    // 0 deletes every one; worker pods stay.
    pass(0).await;
    assert!(w.placeholders().is_empty(), "{:?}", w.placeholders());
    assert!(w.has_pod(&w.row(&a).pod) && w.has_pod(&w.row(&b).pod));
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
}

/// One busy worker and two hot-idle ones, `headroom_nodes = 1`: the fixed
/// janitor keeps 1 placeholder; the pre-fix rule sizes it from demand
/// counting the idle rows, ceil(0.75 x 3) = 3, and grows with an idle leak.
#[madsim::test]
async fn headroom_is_a_constant_and_the_mutant_follows_idle_demand() {
    for (mutants, want) in [(Mutants::none(), [1, 1]), (Mutants::only(Mutant::HeadroomCountsIdle), [3, 4])] {
        let w = World::new();
        let c = FleetConfig { headroom_nodes: 1, hot_idle_ttl_ms: DAY, ..cfg() };
        let pool = w.pool(A, &c, Mutants::none());
        let reapers = w.reapers(&pool, w.store.clone(), &c, mutants.clone());
        let epoch = w.hold_lease(A).await;
        w.beat(A).await;
        for s in 1..=3 {
            pool.acquire("org", s).await.expect("acquire");
        }
        pool.release(2).await.unwrap();
        pool.release(3).await.unwrap();
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert_eq!(w.placeholders().len(), want[0], "{mutants:?}: {:?}", w.placeholders());
        // An idle leak: two more hot-idle workers (sessions 4 and 5 reuse
        // the two idle ones, 6 and 7 spawn two more; all four park), so
        // demand is 1 hot + 4 hot-idle = 5, and ceil(0.75 x 5) = 4.
        for s in 4..=7 {
            pool.acquire("org", s).await.expect("acquire");
        }
        for s in 4..=7 {
            pool.release(s).await.unwrap();
        }
        let idle = w.rows().iter().filter(|r| r.state == WorkerState::HotIdle).count();
        assert_eq!(idle, 4, "{:#?}", w.rows());
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert_eq!(w.placeholders().len(), want[1], "{mutants:?}: {:?}", w.placeholders());
        assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    }
}

/// Orphan secrets (no live row, pod gone, older than the minimum age) of a
/// dead instance, of one never registered and of the janitor's own are
/// deleted by the janitor; a live peer's is left to the peer, whose own
/// fallback pass deletes it; one with an empty pod label and a young one
/// survive.
#[madsim::test]
async fn secret_reaper_is_scoped_by_instance() {
    let w = World::new();
    let c = cfg();
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    let pool_b = w.pool_on(B, w.client(), &c, Mutants::none());
    let reapers_b = w.reapers(&pool_b, w.client(), &c, Mutants::none());
    let epoch = w.hold_lease(A).await;
    w.beat(D).await;
    w.create_secret_of("s-dead", "pod-dead", D);
    w.create_secret_of("s-unknown", "pod-unknown", U);
    w.create_secret_of("s-own", "pod-own", A);
    w.create_secret_of("s-peer", "pod-peer", B);
    w.create_secret_of("s-no-pod", "", D);

    w.at(c.orphan_min_age_ms + 10_000).await;
    w.create_secret_of("s-young", "pod-young", D);
    w.beat(A).await;
    w.beat(B).await;
    let live = live_instances(&w.instances(), w.now(), c.dead_after_ms);
    assert_eq!(live.into_iter().collect::<Vec<_>>(), vec![A, B], "D is dead, U unknown");
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    for gone in ["s-dead", "s-unknown", "s-own"] {
        assert!(!w.has_secret(gone), "{gone} is the janitor's to delete: {:?}", w.secrets());
    }
    for kept in ["s-peer", "s-no-pod", "s-young"] {
        assert!(w.has_secret(kept), "{kept} must survive the janitor: {:?}", w.secrets());
    }

    // The peer's own fallback pass deletes its own orphan, nothing else.
    reapers_b.fallback_pass().await;
    assert!(w.log.reap_failures(B).is_empty(), "{:?}", w.log.reap_failures(B));
    assert!(!w.has_secret("s-peer"), "the peer reaps its own orphan secret");
    assert!(w.has_secret("s-no-pod") && w.has_secret("s-young"), "{:?}", w.secrets());
    // The young one goes once it is old enough.
    w.at(2 * c.orphan_min_age_ms + 10_001).await;
    w.beat(A).await;
    w.beat(B).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert_eq!(w.secrets(), vec!["s-no-pod".to_string()], "an empty pod label is never judged");
}

/// A live peer (B) is mid-spawn: its row and secret exist, its pod does
/// not yet; and it has an orphan secret of its own. The scoped janitor
/// leaves both; the pre-fix unscoped reaper deletes both, the spawning
/// worker's secret included.
#[madsim::test]
async fn secret_reaper_leaves_a_live_peers_secrets_and_the_mutant_does_not() {
    for (mutants, kept) in [(Mutants::none(), true), (Mutants::only(Mutant::SecretReaperUnscoped), false)] {
        let w = World::new();
        let c = cfg();
        let pool = w.pool(A, &c, Mutants::none());
        let reapers = w.reapers(&pool, w.store.clone(), &c, mutants.clone());
        let epoch = w.hold_lease(A).await;
        w.insert_b_spawning().await;
        w.create_secret_of("secret-w2.1", "pod-w2.1", B);
        w.create_secret_of("s-peer", "pod-peer", B);
        w.at(c.orphan_min_age_ms + 10_000).await;
        w.beat(A).await;
        w.beat(B).await;
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
        assert_eq!(w.has_secret("secret-w2.1"), kept, "{mutants:?}: the spawning worker's secret: {:?}", w.secrets());
        assert_eq!(w.has_secret("s-peer"), kept, "{mutants:?}: the live peer's orphan: {:?}", w.secrets());
        assert_eq!(w.row("w2.1").state, WorkerState::Spawning);
    }
}

/// The worker pod list takes longer than the orphan pass deadline. The
/// orphan-pod pass fails on its deadline; the secret pass, on its own
/// deadline, still deletes its orphan in the same janitor pass. With one
/// shared deadline, pods first, the secret pass never runs.
#[madsim::test]
async fn a_slow_pod_list_does_not_starve_the_secret_pass() {
    for (mutants, reaped) in [(Mutants::none(), true), (Mutants::only(Mutant::SharedReaperDeadline), false)] {
        let w = World::new();
        let c = cfg();
        let pool = w.pool(A, &c, Mutants::none());
        let reapers = w.reapers(&pool, w.store.clone(), &c, mutants.clone());
        let epoch = w.hold_lease(A).await;
        w.create_secret("secret-orphan", &c.deployment, "pod-crashed");
        w.create_pod("pod-orphan", deployment_selector(&c.deployment));
        w.at(c.orphan_min_age_ms + 10_000).await;
        w.beat(A).await;
        w.cluster.slow(c.orphan_pass_deadline_ms + 2_000, Some(1), is_worker_pod_list);
        let started = w.now();
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert!(w.now() < started + c.orphan_pass_deadline_ms * 2 + 1_000, "each pass bounded: {}", w.now() - started);
        assert!(w.has_pod("pod-orphan"), "the pod pass did not get its list in time");
        assert_eq!(!w.has_secret("secret-orphan"), reaped, "{mutants:?}: {:?}", w.secrets());
        let failures = w.log.reap_failures(A);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!((failures[0].0, failures[0].1), ("janitor", "orphan-pods"));
        assert!(failures[0].2.contains("pass deadline"), "{failures:?}");
        assert_eq!(reapers.janitor_last_ok.load(Ordering::SeqCst), 0, "a failed pass is not stamped");

        // The list is fast again: the next pass deletes what is left.
        w.beat(A).await;
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert!(!w.has_pod("pod-orphan") && !w.has_secret("secret-orphan"));
    }
}

/// The janitor's worker list is slow (committed at 40 s, its reply 40 s
/// later). A pod and a secret made at 45 s, after the view, are 35 s old by
/// the cluster's clock when listed, past the 30 s minimum age, but younger
/// than the view: kept. Ones made at 5 s are reaped in the same pass.
#[madsim::test]
async fn orphan_ages_are_judged_at_the_views_time() {
    let w = World::new();
    let c = FleetConfig { call_timeout_ms: 60_000, orphan_pass_deadline_ms: 60_000, ..cfg() };
    let pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
    let epoch = w.hold_lease(A).await;
    w.at(5_000).await;
    w.create_secret("secret-old", &c.deployment, "pod-gone");
    w.create_pod("pod-old", deployment_selector(&c.deployment));
    w.at(40_000).await;
    w.beat(A).await;
    w.store.slow_replies(40_000, is_op("list_workers"));
    let pass = {
        let r = reapers.clone();
        tokio::spawn(async move { r.janitor_pass(&Gate::none(), epoch).await })
    };
    w.at(45_000).await;
    w.create_secret("secret-late", &c.deployment, "pod-unborn");
    w.create_pod("pod-late", deployment_selector(&c.deployment));
    pass.await.unwrap();
    let listed: Vec<Millis> = w
        .cluster
        .calls()
        .into_iter()
        .filter(|(_, r)| matches!(r, ClusterRequest::ListSecrets { .. }) || is_worker_pod_list(r))
        .map(|(t, _)| t)
        .collect();
    assert!(!listed.is_empty() && listed.iter().all(|t| *t >= 45_000 + c.orphan_min_age_ms), "listed at {listed:?}");
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    assert!(!w.has_secret("secret-old") && !w.has_pod("pod-old"), "older than the view less the age: reaped");
    assert!(w.has_secret("secret-late"), "made after the view: kept ({:?})", w.secrets());
    assert!(w.has_pod("pod-late"), "made after the view: kept ({:?})", w.pods());
}

/// The janitor's health pass finds B's hot worker's pod failed, but before
/// its claim lands B parks the worker (hot -> hot-idle): the claim, naming
/// hot, is refused. That pass must leave the live worker alone: row, slot,
/// pod and secret, and no unsettled take-over. The next pass claims the
/// hot-idle row and marks it lost.
#[madsim::test]
async fn janitor_health_pass_that_loses_its_claim_frees_nothing() {
    let w = World::new();
    let c = cfg();
    let peer = w.pool_on(B, w.client(), &c, Mutants::none());
    let (jstore, _jpool, janitor, epoch) = w.janitor_replica(&c).await;
    let id = peer.acquire("org", 1).await.expect("acquire");
    w.beat(J).await;
    w.beat(B).await;
    let before = w.row(&id);
    assert!(w.cluster.with(|k| k.fail_pod(&before.pod)));
    // The health pass's pod list lands 500 ms late (inside the call
    // timeout); the park lands in between.
    w.cluster.slow(500, Some(1), is_worker_pod_list);
    let pass = {
        let j = janitor.clone();
        tokio::spawn(async move { j.janitor_pass(&Gate::none(), epoch).await })
    };
    w.sleep(250).await;
    peer.release(1).await.unwrap();
    pass.await.unwrap();

    let claims: Vec<Call> = jstore.calls().into_iter().filter(|c| c.req.op() == "claim_worker").collect();
    assert_eq!(claims.len(), 1, "{claims:#?}");
    assert!(
        matches!(&claims[0].reply, Some(Ok(StoreReply::Worker(WorkerCas::Rejected { .. })))),
        "{claims:#?}"
    );
    let r = w.row(&id);
    assert_eq!((r.state, r.owner, r.owner_epoch), (WorkerState::HotIdle, B, before.owner_epoch), "{r:?}");
    assert_eq!(w.slots(), vec![id.clone()], "a live worker's slot is not freed");
    assert!(w.has_pod(&r.pod) && w.has_secret(&r.secret));
    assert!(janitor.unsettled.lock().unwrap().is_empty(), "not ours: nothing unsettled");
    assert!(peer.owns(&id));

    // The next pass judges the hot-idle row and takes it.
    w.beat(J).await;
    w.beat(B).await;
    janitor.janitor_pass(&Gate::none(), epoch).await;
    let r = w.row(&id);
    assert_eq!((r.state, r.owner), (WorkerState::Lost, J), "{r:?}");
    assert_gone(&w, &id, WorkerState::Lost);
}
