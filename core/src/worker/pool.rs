//! The worker pool of one replica: serves client sessions with a reusable
//! hot-idle worker (its own, or one claimed from the shared pool) or a new
//! spawn, parks workers hot-idle when sessions end, refreshes its workers'
//! credentials, and retires them on shutdown. How workers move between
//! replicas (shared claims, reconnect takeovers) is in `pool/takeover.rs`;
//! the bounded drain and silent clients in `pool/drain.rs`
//! (docs/design.md §2.5).
//!
//! Rules (docs/design.md §2.3): every transition is a CAS on `(worker, owner,
//! owner_epoch)`; the durable write comes first and the in-memory state
//! changes only after it succeeded; a failed write leaves the worker as it
//! was. A spawn reserves a capacity slot, freed at once if the spawn fails;
//! the secret is created before the pod; a long activation heartbeats its
//! row.
//!
//! What the pool believes about each worker (settled, unsure, refresh
//! pending, failed) is one state machine in `worker/belief.rs`, driven by
//! every store reply. Idle workers are kept or retired by the one floor
//! rule, documented in `worker/floor.rs`.

use super::belief::{step, Ask, Belief, Next, Reply};
use super::gate::Gate;
use super::WorkerState;
use crate::clock::{timeout, Clock};
use crate::cluster::{Cluster, ClusterExt, Labels, PodPhase};
use crate::config::{ms, FleetConfig};
use crate::ids::InstanceId;
use crate::mutants::{Mutant, Mutants};
use crate::observe::{CoreEvent, Observer};
use crate::store::{LeaseFence, SlotResult, Store, StoreError, StoreReply, StoreRequest, WorkerCas, WorkerRecord, WorkerReject};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use crate::signal as watch;
use super::health::dead_pods;

mod drain;
mod takeover;

/// Why a client request got no worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The org or the fleet is at its capacity cap.
    AtCapacity(String),
    /// The spawn failed (store, cluster, pod failure, activation timeout).
    SpawnFailed(String),
    /// The store could not be reached or refused.
    Store(String),
    /// Release of a session this replica does not serve.
    UnknownSession(u64),
    ShuttingDown,
    /// The session ended without its client asking: its worker died (pod
    /// failed or vanished), was taken over, or this replica fenced itself.
    SessionEnded(String),
    /// This instance fenced itself (docs/design.md §2.6): it serves nothing.
    Fenced,
    /// This replica is draining: the session goes on through another one
    /// (docs/design.md §2.5).
    HandedOff,
    /// A reconnect found the session's worker still owned by this live,
    /// non-draining instance: it is not given up (reconnect to it).
    OwnerAlive(InstanceId),
    /// A reconnect lost the takeover to another replica's.
    TakenOver(u64),
}

impl PoolError {
    /// Whether the client may reconnect the session through a replica
    /// (this one later, or another) and find it going on: the session's
    /// worker is not known to be gone (docs/design.md §2.5).
    pub fn reconnectable(&self) -> bool {
        matches!(
            self,
            PoolError::Store(_)
                | PoolError::ShuttingDown
                | PoolError::Fenced
                | PoolError::HandedOff
                | PoolError::OwnerAlive(_)
                // Another reconnect won: the session goes on through the
                // replica that took it (perhaps the client's own other
                // attempt, whose answer was lost).
                | PoolError::TakenOver(_)
                // A watch that reached a restarted replica: the session may
                // go on elsewhere.
                | PoolError::UnknownSession(_)
        )
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::AtCapacity(m) => write!(f, "at capacity: {m}"),
            PoolError::SpawnFailed(m) => write!(f, "spawn failed: {m}"),
            PoolError::Store(m) => write!(f, "store: {m}"),
            PoolError::UnknownSession(s) => write!(f, "unknown session {s}"),
            PoolError::ShuttingDown => write!(f, "shutting down"),
            PoolError::SessionEnded(why) => write!(f, "session ended: {why}"),
            PoolError::Fenced => write!(f, "replica fenced itself: its heartbeat was not confirmed in time"),
            PoolError::HandedOff => write!(f, "replica is draining: reconnect elsewhere"),
            PoolError::OwnerAlive(i) => write!(f, "the session's worker is still served by live instance {i}"),
            PoolError::TakenOver(s) => write!(f, "session {s} was resumed through another replica"),
        }
    }
}

impl std::error::Error for PoolError {}

/// What this replica knows of a worker it owns. What it believes about
/// the row is one state machine, [`Belief`] (see `belief.rs`), driven by
/// every reply the store gives; the epoch and the session are its data.
#[derive(Clone, Debug)]
struct Owned {
    org: String,
    belief: Belief,
    epoch: u64,
    session: Option<u64>,
    pod: String,
    secret: String,
    /// Which holding of the worker this is: a worker let go and claimed
    /// again is a new holding, and a task still busy with the old one must
    /// not drop the new one (see [`Pool::forget`]).
    gen: u64,
}

impl Owned {
    fn state(&self) -> WorkerState {
        self.belief.state()
    }

    /// Every change of what memory believes goes through here. The row
    /// only ever moves along the lifecycle table and memory only follows
    /// it, so a memory step the table forbids is a bug in the pool: stop
    /// rather than serve from an impossible state.
    fn believe(&mut self, id: &str, b: Belief) {
        let (from, to) = (self.state(), b.state());
        assert!(
            from == to || from.can_become(to),
            "worker lifecycle: {id} moved {from} -> {to} in memory, a step the lifecycle table forbids"
        );
        self.belief = b;
    }

    /// Judge one store reply to `ask`: memory and epoch follow it.
    fn judge(&mut self, id: &str, me: InstanceId, ask: Ask, reply: Result<StoreReply, StoreError>) -> Next {
        let s = step(self.belief, self.epoch, ask, Reply::classify(me, self.epoch, reply));
        self.believe(id, s.belief);
        self.epoch = s.epoch;
        s.next
    }
}

type Slot = Arc<tokio::sync::Mutex<Owned>>;

/// How many times one transition asks the store before it gives up: an
/// unknown outcome is safe to ask again (a landed write reads as ours).
pub(crate) const WRITE_TRIES: u32 = 3;

/// The labels of this deployment's objects.
pub fn deployment_selector(deployment: &str) -> Labels {
    [("app".to_string(), "haywire".to_string()), ("haywire/deployment".to_string(), deployment.to_string())]
        .into_iter()
        .collect()
}

/// Label on a worker's pod and secret naming the worker.
pub const WORKER_LABEL: &str = "haywire/worker";

/// Label on a secret naming the pod it belongs to.
pub const SECRET_POD_LABEL: &str = "haywire/worker-pod";

/// Label on a worker's pod and secret naming the instance that made them.
pub const INSTANCE_LABEL: &str = "haywire/instance";

pub struct Pool<S, C, K> {
    me: InstanceId,
    cfg: FleetConfig,
    mutants: Mutants,
    store: Arc<S>,
    clock: Arc<C>,
    cluster: Arc<K>,
    obs: Arc<dyn Observer>,
    /// Each worker behind its own lock: operations on one worker (and its
    /// epoch) are serialised; the map lock is never held across an await.
    workers: Mutex<BTreeMap<String, Slot>>,
    /// The holding ([`Owned::gen`]) each entry of `workers` is.
    gens: Mutex<BTreeMap<String, u64>>,
    next_gen: AtomicU64,
    /// Which worker serves which session.
    sessions: Mutex<BTreeMap<u64, String>>,
    /// Slots whose free failed or whose reserve had an unknown outcome:
    /// upkeep frees them (freeing is idempotent).
    pending_frees: Mutex<BTreeSet<String>>,
    /// Sessions that ended without their client asking, and why, until
    /// the client's watch collects the reason.
    ended: Mutex<BTreeMap<u64, PoolError>>,
    /// When each live session's client was last heard from (local time).
    seen: Mutex<BTreeMap<u64, u64>>,
    /// Workers a claim of this pool is under way for: one claim per worker
    /// at a time, so a landed claim read back as ours is this one's.
    claiming: Mutex<BTreeSet<String>>,
    /// Bumped whenever a session ends so, waking the watches.
    news: watch::Sender<bool>,
    next_worker: AtomicU64,
    shutting_down: std::sync::atomic::AtomicBool,
    /// Set once this instance has fenced itself: nothing more is served.
    fenced: std::sync::atomic::AtomicBool,
}

/// Outcome of one store call made by the pool.
enum Call<T> {
    Ok(T),
    /// Not ours any more (or never was): the reason.
    Rejected(WorkerReject),
    /// Still ours, but in this state, from which the step is impossible
    /// (memory now says so too).
    Moved(WorkerState),
    /// Unknown outcome.
    Err(String),
}

impl<S: Store, C: Clock, K: Cluster> Pool<S, C, K> {
    pub fn new(
        me: InstanceId,
        cfg: FleetConfig,
        mutants: Mutants,
        store: Arc<S>,
        clock: Arc<C>,
        cluster: Arc<K>,
        obs: Arc<dyn Observer>,
    ) -> Self {
        Pool {
            me,
            cfg,
            mutants,
            store,
            clock,
            cluster,
            obs,
            workers: Mutex::new(BTreeMap::new()),
            gens: Mutex::new(BTreeMap::new()),
            next_gen: AtomicU64::new(1),
            sessions: Mutex::new(BTreeMap::new()),
            pending_frees: Mutex::new(BTreeSet::new()),
            ended: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(BTreeMap::new()),
            claiming: Mutex::new(BTreeSet::new()),
            news: watch::channel(false).0,
            next_worker: AtomicU64::new(1),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            fenced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Vec<(String, Slot)> {
        self.map().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Hold `owned` as worker `id`, a new holding, locked by the caller
    /// before anyone else can see it (so no reuse slips in first).
    fn hold(&self, id: &str, mut owned: Owned) -> tokio::sync::OwnedMutexGuard<Owned> {
        owned.gen = self.next_gen.fetch_add(1, Ordering::SeqCst);
        let gen = owned.gen;
        let slot: Slot = Arc::new(tokio::sync::Mutex::new(owned));
        let guard = match slot.clone().try_lock_owned() {
            Ok(g) => g,
            Err(_) => unreachable!("a new slot is locked by nobody"),
        };
        let mut map = self.map();
        map.insert(id.to_string(), slot);
        self.gens.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), gen);
        guard
    }

    /// Whether holding `gen` of `id` is the pool's current one.
    fn holds(&self, id: &str, gen: u64) -> bool {
        self.gens.lock().unwrap_or_else(|p| p.into_inner()).get(id) == Some(&gen)
    }

    /// Let go of holding `gen` of `id`, if it is still the current one.
    fn let_go(&self, id: &str, gen: u64) -> bool {
        let mut map = self.map();
        let mut gens = self.gens.lock().unwrap_or_else(|p| p.into_inner());
        if gens.get(id) != Some(&gen) {
            return false;
        }
        gens.remove(id);
        map.remove(id);
        true
    }

    /// Drop holding `gen` of `id` from the pool. A session it still served
    /// ends with an error to its client: the worker is not ours to serve
    /// any more. A newer holding of the same worker (let go, then claimed
    /// again) is not this one's to drop.
    fn forget(&self, id: &str, gen: u64) {
        if !self.let_go(id, gen) {
            return;
        }
        let bound: Vec<u64> = self.bound_to(id);
        for session in bound {
            self.end_session(session, PoolError::SessionEnded(format!("worker {id} was taken over by another replica")));
        }
    }

    fn bound_to(&self, id: &str) -> Vec<u64> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.iter().filter(|(_, w)| w.as_str() == id).map(|(s, _)| *s).collect()
    }

    /// End `session` without its client asking, telling it why (docs/design.md
    /// §2.6: a dead worker's session ends with a clear error).
    fn end_session(&self, session: u64, why: PoolError) {
        if self.unbind(session).is_none() {
            return;
        }
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).insert(session, why);
        let _ = self.news.send(true);
    }

    /// Resolves when `session` ends without its client asking, with the
    /// reason; at once with [`PoolError::UnknownSession`] if this pool does
    /// not serve it. Never resolves while the session goes on.
    pub async fn watch(&self, session: u64) -> PoolError {
        self.touch(session);
        let mut rx = self.news.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(why) = self.ended.lock().unwrap_or_else(|p| p.into_inner()).remove(&session) {
                return if self.fenced.load(Ordering::SeqCst) { PoolError::Fenced } else { why };
            }
            if !self.sessions.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&session) {
                return PoolError::UnknownSession(session);
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// This instance fenced itself: serve nothing more and end every live
    /// session with an error (docs/design.md §2.6). Its writes are stopped by
    /// the replica's store and cluster gates.
    pub fn fence(&self) {
        self.fenced.store(true, Ordering::SeqCst);
        self.shutting_down.store(true, Ordering::SeqCst);
        let all: Vec<u64> = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        for session in all {
            self.end_session(session, PoolError::Fenced);
        }
    }

    /// Whether `id` was minted by this instance's pool (ids are
    /// `w{instance}.{n}`), whether or not it is still held.
    pub fn minted_here(&self, id: &str) -> bool {
        id.starts_with(&self.minted_prefix())
    }

    /// How every id this instance mints begins (`w<instance>.`).
    pub fn minted_prefix(&self) -> String {
        format!("w{}.", self.me.0)
    }

    /// Whether this pool holds `id` in memory.
    pub fn owns(&self, id: &str) -> bool {
        self.map().contains_key(id)
    }

    /// Free `id`'s slot; if that fails, remember to retry.
    async fn free_slot(&self, id: &str) {
        let req = StoreRequest::FreeSlot { worker: id.to_string(), fence: None };
        let freed = matches!(self.store_call(req).await, Ok(StoreReply::Slot(SlotResult::Freed | SlotResult::NotFound)));
        let mut pending = self.pending_frees.lock().unwrap_or_else(|p| p.into_inner());
        if freed {
            pending.remove(id);
        } else {
            pending.insert(id.to_string());
        }
    }

    fn bind(&self, session: u64, id: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(session, id.to_string());
        self.touch(session);
    }

    fn unbind(&self, session: u64) -> Option<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(&session);
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&session)
    }

    /// The worker serving `session` here, if this pool serves it.
    fn bound(&self, session: u64) -> Option<String> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(&session).cloned()
    }

    /// `session`'s client was heard from now.
    fn touch(&self, session: u64) {
        if self.sessions.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&session) {
            self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(session, self.clock.now());
        }
    }

    fn live_sessions(&self) -> Vec<(u64, String)> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(s, w)| (*s, w.clone())).collect()
    }

    async fn bounded<T>(&self, f: impl Future<Output = Result<T, StoreError>>) -> Result<T, String> {
        match timeout(&*self.clock, ms(self.cfg.call_timeout_ms), f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("store call timed out".into()),
        }
    }

    async fn store_call(&self, req: StoreRequest) -> Result<StoreReply, String> {
        self.bounded(self.store.call(req)).await
    }

    /// One bounded store call, its error kept (a failure before commit is
    /// told apart from an unknown outcome; a timeout is unknown).
    async fn raw_call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        match timeout(&*self.clock, ms(self.cfg.call_timeout_ms), self.store.call(req)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable("store call timed out".into())),
        }
    }

    /// CAS one of this pool's workers to `to`. When the store shows the
    /// worker still ours but elsewhere than memory thinks (an earlier write
    /// or refresh of ours committed but its reply was lost), memory is
    /// brought in line and the step retried from where the row really is
    /// ([`step`] says which).
    async fn transition(&self, id: &str, w: &mut Owned, to: WorkerState, session: Option<u64>) -> Call<()> {
        let mut last_err = format!("{id}: the store kept moving");
        for _ in 0..WRITE_TRIES {
            let req = StoreRequest::UpdateWorker {
                id: id.to_string(),
                owner: self.me,
                epoch: w.epoch,
                from: w.state(),
                to,
                session,
                fence: None,
            };
            let reply = self.raw_call(req).await;
            let why = match &reply {
                Err(e) => e.to_string(),
                Ok(StoreReply::Worker(WorkerCas::Rejected { reason, .. })) => format!("{reason:?}"),
                Ok(other) => format!("unexpected reply {other:?}"),
            };
            let reason = match &reply {
                Ok(StoreReply::Worker(WorkerCas::Rejected { reason, .. })) => *reason,
                _ => WorkerReject::StaleOwner,
            };
            match w.judge(id, self.me, Ask::Move { to, session }, reply) {
                Next::Done => return Call::Ok(()),
                Next::Retry => {}
                Next::Moved => return Call::Moved(w.state()),
                // Asking again is safe: a retry sees a landed write as ours.
                // But an unknown outcome may also land after the retries
                // (the belief says so).
                Next::Unanswered => last_err = why,
                Next::Forget => return Call::Rejected(reason),
                Next::Gone => return Call::Rejected(WorkerReject::NoWorker),
            }
        }
        Call::Err(last_err)
    }

    /// A lifecycle step whose durable write comes first: memory takes the
    /// step only if the store took it (field report 002, fixes 3 and 4).
    /// `memory_first` is the bug those fixes removed: memory takes the
    /// step before the write and a failed write is swallowed, never undone
    /// (the worker's lock is held throughout, so no reader tells "before"
    /// from "whatever the write said").
    async fn persist_then_mutate(
        &self,
        id: &str,
        w: &mut Owned,
        to: WorkerState,
        session: Option<u64>,
        memory_first: bool,
    ) -> Call<()> {
        let call = self.transition(id, w, to, session).await;
        if !memory_first {
            return call;
        }
        let stepped = w.belief.with_state(to);
        w.believe(id, stepped);
        Call::Ok(())
    }

    /// Serve `session` for `org`: reuse an idle worker of ours, claim an
    /// idle one of the org from the shared pool in the store, or spawn one.
    pub async fn acquire(&self, org: &str, session: u64) -> Result<String, PoolError> {
        if self.fenced.load(Ordering::SeqCst) {
            return Err(PoolError::Fenced);
        }
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(PoolError::ShuttingDown);
        }
        for (id, slot) in self.snapshot() {
            // A worker busy elsewhere (spawning, parking) is not reusable
            // now; never wait on it.
            let Ok(mut w) = slot.try_lock() else { continue };
            // Not while a write of ours may still land: a stale park
            // arriving after the reuse would leave the row idle under the
            // new session. The next epoch refresh fences it out first.
            // Nor a failed one.
            if w.org != org || w.session.is_some() || !w.belief.reusable() {
                continue;
            }
            match self.transition(&id, &mut w, WorkerState::Hot, Some(session)).await {
                Call::Ok(()) => {
                    w.session = Some(session);
                    self.bind(session, &id);
                    return Ok(id);
                }
                // Taken from us (reaped, or its owner epoch moved on): not ours.
                Call::Rejected(_) => {
                    let gen = w.gen;
                    drop(w);
                    self.forget(&id, gen);
                }
                Call::Moved(_) => {}
                // Unknown outcome: it may be bound to this session now, which
                // the client will never release. Treat it as hot with no
                // session; upkeep parks it either way. (If every try failed
                // before commit, nothing landed and memory is still the row.)
                Call::Err(e) => {
                    if w.belief.is_unsure() {
                        let hot = w.belief.with_state(WorkerState::Hot);
                        w.believe(&id, hot);
                    }
                    return Err(PoolError::Store(e));
                }
            }
        }
        if let Some(id) = self.claim_shared_idle(org, session).await? {
            return Ok(id);
        }
        self.spawn(org, session).await
    }

    async fn spawn(&self, org: &str, session: u64) -> Result<String, PoolError> {
        let n = self.next_worker.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{n}", self.minted_prefix());
        let reserve = StoreRequest::ReserveSlot {
            worker: id.clone(),
            org: org.to_string(),
            org_cap: self.cfg.org_cap,
            global_cap: self.cfg.global_cap,
        };
        match self.store_call(reserve).await {
            Ok(StoreReply::Slot(SlotResult::Reserved)) => {}
            Ok(StoreReply::Slot(SlotResult::OrgCap)) => return Err(PoolError::AtCapacity(format!("org {org}"))),
            Ok(StoreReply::Slot(SlotResult::GlobalCap)) => return Err(PoolError::AtCapacity("fleet".into())),
            Ok(other) => return Err(PoolError::Store(format!("reserve slot: unexpected reply {other:?}"))),
            // Unknown outcome: a slot may exist with no row; upkeep frees it.
            Err(e) => {
                self.pending_frees.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
                return Err(PoolError::Store(e));
            }
        }
        let owned = Owned {
            org: org.to_string(),
            belief: Belief::Settled(WorkerState::Spawning),
            epoch: 1,
            session: Some(session),
            pod: format!("pod-{id}"),
            secret: format!("secret-{id}"),
            gen: 0,
        };
        let row = WorkerRecord {
            id: id.clone(),
            org: org.to_string(),
            state: WorkerState::Spawning,
            owner: self.me,
            owner_epoch: 1,
            pod: owned.pod.clone(),
            secret: owned.secret.clone(),
            session: Some(session),
            created_at: 0,
            updated_at: 0,
            idle_since: 0,
            version: 0,
        };
        let mut w = self.hold(&id, owned);
        match self.store_call(StoreRequest::InsertWorker { worker: row }).await {
            Ok(StoreReply::Worker(WorkerCas::Applied(_))) => {}
            // Unknown outcome: the row may exist, so it must be retired (or
            // found missing) before the slot is freed, or the caps break.
            Err(e) => return Err(self.fail_spawn(&id, &mut w, format!("insert worker: {e}"), true).await),
            Ok(other) => {
                let why = format!("insert worker: {other:?}");
                return Err(self.fail_spawn(&id, &mut w, why, false).await);
            }
        }
        let mut labels = deployment_selector(&self.cfg.deployment);
        labels.insert(WORKER_LABEL.into(), id.clone());
        labels.insert(INSTANCE_LABEL.into(), self.me.to_string());
        let mut secret_labels = labels.clone();
        secret_labels.insert(SECRET_POD_LABEL.into(), w.pod.clone());
        let call = ms(self.cfg.call_timeout_ms);
        if let Err(e) = flatten(timeout(&*self.clock, call, self.cluster.create_secret(&w.secret, secret_labels)).await) {
            return Err(self.fail_spawn(&id, &mut w, format!("create secret: {e}"), true).await);
        }
        if let Err(e) = flatten(timeout(&*self.clock, call, self.cluster.create_pod(&w.pod, labels)).await) {
            return Err(self.fail_spawn(&id, &mut w, format!("create pod: {e}"), true).await);
        }
        match self.transition(&id, &mut w, WorkerState::Activating, Some(session)).await {
            Call::Ok(()) => {}
            Call::Rejected(r) => return Err(self.fail_spawn(&id, &mut w, format!("to activating: {r:?}"), true).await),
            Call::Moved(st) => return Err(self.fail_spawn(&id, &mut w, format!("to activating: row is {st}"), true).await),
            Call::Err(e) => return Err(self.fail_spawn(&id, &mut w, format!("to activating: {e}"), true).await),
        }
        if let Err(why) = self.activate(&id, &mut w, session).await {
            return Err(self.fail_spawn(&id, &mut w, why, true).await);
        }
        let memory_first = self.mutants.on(Mutant::ActivateSplit);
        match self.persist_then_mutate(&id, &mut w, WorkerState::Hot, Some(session), memory_first).await {
            Call::Ok(()) => {
                self.bind(session, &id);
                Ok(id)
            }
            Call::Rejected(r) => Err(self.fail_spawn(&id, &mut w, format!("to hot: {r:?}"), true).await),
            Call::Moved(st) => Err(self.fail_spawn(&id, &mut w, format!("to hot: row is {st}"), true).await),
            Call::Err(e) => Err(self.fail_spawn(&id, &mut w, format!("to hot: {e}"), true).await),
        }
    }

    /// Wait for the pod to run, heartbeating the row so that it is not
    /// reaped as stuck while the activation is alive.
    async fn activate(&self, id: &str, w: &mut Owned, session: u64) -> Result<(), String> {
        let give_up = self.clock.now().saturating_add(self.cfg.activation_timeout_ms);
        let call = ms(self.cfg.call_timeout_ms);
        loop {
            match flatten(timeout(&*self.clock, call, self.cluster.get_pod(&w.pod)).await) {
                Ok(Some(p)) if p.phase == PodPhase::Running => return Ok(()),
                Ok(Some(p)) if p.phase == PodPhase::Failed => return Err("pod failed during activation".into()),
                Ok(None) => return Err("pod vanished during activation".into()),
                // Pending, or the API did not answer: keep waiting.
                _ => {}
            }
            if self.clock.now() >= give_up {
                return Err("activation timed out".into());
            }
            if self.fenced.load(Ordering::SeqCst) {
                return Err("replica fenced itself".into());
            }
            if !self.mutants.on(Mutant::ReaperKillsLiveActivation) {
                // A heartbeat is a same-state CAS; it bumps updated_at.
                match self.transition(id, w, WorkerState::Activating, Some(session)).await {
                    Call::Rejected(r) => return Err(format!("activation heartbeat rejected: {r:?}")),
                    Call::Moved(st) => return Err(format!("activation heartbeat: row is {st}")),
                    _ => {}
                }
            }
            self.clock.sleep(ms(self.cfg.activation_poll_ms)).await;
        }
    }

    /// Undo a failed spawn: retire the row (if still ours), delete pod and
    /// secret, and free the slot at once.
    async fn fail_spawn(&self, id: &str, w: &mut Owned, reason: String, row_exists: bool) -> PoolError {
        w.session = None;
        let failed = w.belief.failed();
        w.believe(id, failed);
        self.obs.observe(CoreEvent::SpawnFailed { worker: id.to_string(), reason: reason.clone() });
        if row_exists {
            self.retire_row(id, w).await;
        } else {
            let retired = w.belief.with_state(WorkerState::Retired);
            w.believe(id, retired);
        }
        self.finish_failed(id, w).await;
        PoolError::SpawnFailed(reason)
    }

    /// After a failed spawn: delete the pod and secret and free the slot at
    /// once, if the row is retired; a row the store would not retire yet
    /// keeps its slot (so caps hold) and upkeep tries again.
    async fn finish_failed(&self, id: &str, w: &mut Owned) {
        // Taken over meanwhile (the retire found another owner, and we
        // forgot it), or claimed back since as a new holding: its pod and
        // secret are not this holding's to delete.
        if !self.holds(id, w.gen) {
            return;
        }
        let call = ms(self.cfg.call_timeout_ms);
        let _ = timeout(&*self.clock, call, self.cluster.delete_pod(&w.pod)).await;
        let _ = timeout(&*self.clock, call, self.cluster.delete_secret(&w.secret)).await;
        if !w.state().is_terminal() {
            return;
        }
        if !self.mutants.on(Mutant::SlotLeakOnSpawnFailure) {
            self.free_slot(id).await;
        }
        self.forget(id, w.gen);
    }

    /// Retire our row from wherever it really is (a write whose reply was
    /// lost may have moved it on): hot ones drain first. Best effort.
    async fn retire_row(&self, id: &str, w: &mut Owned) {
        for _ in 0..4 {
            let to = match w.state() {
                WorkerState::Hot | WorkerState::HotIdle => WorkerState::Draining,
                s if s.is_terminal() => return,
                _ => WorkerState::Retired,
            };
            let req = StoreRequest::UpdateWorker {
                id: id.to_string(),
                owner: self.me,
                epoch: w.epoch,
                from: w.state(),
                to,
                session: None,
                fence: None,
            };
            let reply = self.raw_call(req).await;
            match w.judge(id, self.me, Ask::Move { to, session: None }, reply) {
                // Memory is where the row is: go on from there.
                Next::Done | Next::Retry | Next::Moved => {}
                // Taken over (a reaper claimed it): its new owner retires it
                // and frees its slot; we only forget it.
                Next::Forget => {
                    self.forget(id, w.gen);
                    return;
                }
                // The row never landed (an insert with unknown outcome that
                // did not commit): nothing durable to retire (memory says
                // retired).
                Next::Gone => return,
                Next::Unanswered => return,
            }
        }
    }

    /// The session ended: park its worker hot-idle (durable write first; if
    /// it fails the worker stays hot, and reusable, until a later park).
    pub async fn release(&self, session: u64) -> Result<(), PoolError> {
        let Some(id) = self.unbind(session) else { return Err(PoolError::UnknownSession(session)) };
        // Its watch (if any) is over.
        let _ = self.news.send(true);
        let Some(slot) = self.map().get(&id).cloned() else { return Ok(()) };
        let mut w = slot.lock().await;
        if w.session != Some(session) {
            return Ok(());
        }
        w.session = None;
        if w.state() == WorkerState::Hot {
            self.park(&id, &mut w).await;
        }
        Ok(())
    }

    async fn park(&self, id: &str, w: &mut Owned) {
        let memory_first = self.mutants.on(Mutant::MutateBeforePersist);
        match self.persist_then_mutate(id, w, WorkerState::HotIdle, None, memory_first).await {
            Call::Ok(()) => {}
            Call::Rejected(_) => self.forget(id, w.gen),
            // Stays hot and reusable (or already moved on); upkeep looks again.
            Call::Moved(_) | Call::Err(_) => {}
        }
    }

    /// Periodic upkeep: park hot workers whose session ended while the
    /// store was failing, and refresh every worker's credentials (which
    /// takes a new owner epoch, the fencing token of 004).
    pub async fn maintain(&self) {
        self.end_silent_sessions().await;
        let pending: Vec<String> = self.pending_frees.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        for id in pending {
            self.free_slot(&id).await;
        }
        for (id, slot) in self.snapshot() {
            // Busy workers (spawning, serving a call) are left for next time.
            let Ok(mut w) = slot.try_lock() else { continue };
            // A failed spawn, or a dead worker, whose row would not retire:
            // try again.
            if w.belief.is_failed() {
                self.retire_row(&id, &mut w).await;
                self.finish_failed(&id, &mut w).await;
                continue;
            }
            if w.state() == WorkerState::Hot && w.session.is_none() {
                self.park(&id, &mut w).await;
            }
            match w.state() {
                // A drain whose last steps failed: finish it.
                WorkerState::Draining => {
                    let _ = self.drain_own(&id, &mut w).await;
                }
                // Never served from these states once its spawn returned (a
                // row found still activating after the spawn claimed
                // success): retire.
                WorkerState::Spawning | WorkerState::Activating => {
                    self.retire_row(&id, &mut w).await;
                    self.finish_failed(&id, &mut w).await;
                }
                // A write of ours (a drain's last step, a lost mark) landed
                // unseen and memory found the row ended at our epoch: finish.
                WorkerState::Retired | WorkerState::Lost => self.finish_ended(&id, &mut w).await,
                WorkerState::Hot | WorkerState::HotIdle => {
                    // Epoch bump and in-memory update under the worker's
                    // lock: no reader sees the old epoch after the store
                    // moved on.
                    let claim = self.claim_request(&id, &w);
                    let reply = if self.mutants.on(Mutant::TornEpochRead) {
                        // The bug: the lock is let go while the bump is in
                        // flight, so readers use the old epoch after the
                        // store moved on.
                        drop(w);
                        let reply = self.raw_call(claim).await;
                        w = slot.lock().await;
                        reply
                    } else {
                        self.raw_call(claim).await
                    };
                    let next = self.judge_claim(&id, &mut w, reply);
                    // The new epoch fenced out any write of ours still in
                    // flight: the row is final, and memory went on from there
                    // (upkeep parks a hot one with no session, or finishes a
                    // drain).
                    if next == Next::Done && w.state() == WorkerState::HotIdle && w.session.is_some() {
                        // A stale park landed under a live session: bind it
                        // again.
                        let session = w.session;
                        let _ = self.transition(&id, &mut w, WorkerState::Hot, session).await;
                    }
                    // A takeover whose claim had an unknown outcome, found
                    // ours: serve its session here from now on (its client's
                    // reconnect resumes it, or the client timeout ends it).
                    if let (Next::Done, WorkerState::Hot, Some(session)) = (next, w.state(), w.session) {
                        if self.bound(session).is_none() {
                            self.bind(session, &id);
                        }
                    }
                }
            }
        }
    }

    /// A self-claim: a fresh owner epoch for a worker we own.
    fn claim_request(&self, id: &str, w: &Owned) -> StoreRequest {
        StoreRequest::ClaimWorker {
            id: id.to_string(),
            owner: self.me,
            epoch: w.epoch,
            from: None,
            to: None,
            new_owner: self.me,
            fence: None,
            floor: None,
        }
    }

    /// Memory and epoch follow a self-claim's reply ([`step`]), and a
    /// worker that is not ours any more is forgotten.
    fn judge_claim(&self, id: &str, w: &mut Owned, reply: Result<StoreReply, StoreError>) -> Next {
        let next = w.judge(id, self.me, Ask::Refresh, reply);
        if matches!(next, Next::Forget | Next::Gone) {
            self.forget(id, w.gen);
        }
        next
    }

    /// A row of ours found ended at our epoch: delete its pod and secret,
    /// free its slot, and drop it.
    async fn finish_ended(&self, id: &str, w: &mut Owned) {
        let _ = delete_objects(&*self.cluster, &*self.clock, self.cfg.call_timeout_ms, &Gate::none(), &w.pod, &w.secret).await;
        self.free_slot(id).await;
        self.forget(id, w.gen);
    }

    /// Every replica, every health interval: [`Self::health_check`].
    pub async fn health_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                biased;
                _ = crate::lease::stop_requested(&mut stop) => return,
                _ = self.clock.sleep(ms(self.cfg.health_check_ms)) => {}
            }
            self.health_check().await;
        }
    }

    /// The pool's health check (docs/design.md §2.6): one list of this
    /// instance's pods; a hot or hot-idle worker whose pod failed or
    /// vanished is marked lost, its session ended with the reason, its pod
    /// and secret deleted and its slot freed. Never served again either way.
    pub async fn health_check(&self) {
        // Judged only if hot or hot-idle before the list is asked for.
        let judged: Vec<(String, String)> = self
            .snapshot()
            .into_iter()
            .filter_map(|(id, slot)| {
                let w = slot.try_lock().ok()?;
                w.belief.health_checked().then(|| (id, w.pod.clone()))
            })
            .collect();
        if judged.is_empty() {
            return;
        }
        // The judged workers' own pods, by the worker label each carries
        // from its spawn (whoever made it): a list that follows this
        // replica's workers, never the fleet's, even when it holds workers
        // claimed from many others (docs/design.md §12).
        let selector = deployment_selector(&self.cfg.deployment);
        let call = ms(self.cfg.call_timeout_ms);
        let ids: BTreeSet<String> = judged.iter().map(|(id, _)| id.clone()).collect();
        let listed = flatten(timeout(&*self.clock, call, self.cluster.list_pods_in(selector, WORKER_LABEL, ids)).await);
        let Ok((_, pods)) = listed else { return };
        for (id, pod, death) in dead_pods(&judged, &pods, &self.mutants) {
            let Some(slot) = self.map().get(id).cloned() else { continue };
            let mut w = slot.lock().await;
            if !w.belief.health_checked() {
                continue;
            }
            self.mark_lost(id, &mut w, death.reason(id, pod)).await;
        }
    }

    /// Mark a dead worker of ours lost (a CAS on owner and epoch), end its
    /// session with `why`, delete its pod and secret and free its slot. If
    /// the write fails it is never served again and upkeep retires it.
    async fn mark_lost(&self, id: &str, w: &mut Owned, why: String) {
        for session in self.bound_to(id) {
            self.end_session(session, PoolError::SessionEnded(why.clone()));
        }
        w.session = None;
        match self.transition(id, w, WorkerState::Lost, None).await {
            Call::Ok(()) => self.finish_failed(id, w).await,
            Call::Rejected(_) => self.forget(id, w.gen),
            Call::Moved(_) | Call::Err(_) => {
                let failed = w.belief.failed();
                w.believe(id, failed);
            }
        }
    }

    /// Retire this replica's own hot-idle workers past the TTL beyond its
    /// floor (the one floor rule: see `worker/floor.rs`), judged over `rows`
    /// read at store time `now`: the fallback reaper's own view, or the
    /// janitor's fresh read of this replica's rows (its cluster deletes go
    /// out only while `gate` is open).
    pub async fn retire_expired_idle(&self, gate: &Gate, rows: &[WorkerRecord], now: u64) -> Result<(), String> {
        // Only the workers this pool serves from: a row our janitor claimed
        // from another owner to retire it is not one of our idle workers.
        let mine = rows.iter().filter(|r| self.owns(&r.id));
        let expired =
            super::floor::expired_beyond_floor(mine, Some(self.me), self.cfg.min_hot_idle, self.cfg.hot_idle_ttl_ms, now);
        let mut errors = Vec::new();
        for r in expired {
            let Some(slot) = self.map().get(&r.id).cloned() else { continue };
            let Ok(mut w) = slot.try_lock() else { continue };
            if w.state() != WorkerState::HotIdle || w.session.is_some() {
                continue; // reused since the list was taken
            }
            // A leader-gated caller stops once its lease is in doubt.
            if let Err(e) = gate.open() {
                errors.push(e);
                break;
            }
            if let Err(e) = self.drain_gated(gate, &r.id, &mut w).await {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// hot_idle → draining → (pod and secret deleted) → retired, slot
    /// freed; resumes a drain that stopped half way.
    async fn drain_own(&self, id: &str, w: &mut Owned) -> Result<(), String> {
        self.drain_gated(&Gate::none(), id, w).await
    }

    /// [`Self::drain_own`] for leader-gated callers: the cluster deletes go
    /// out only while `gate` is open (the row's writes are ours alone).
    async fn drain_gated(&self, gate: &Gate, id: &str, w: &mut Owned) -> Result<(), String> {
        if w.state() != WorkerState::Draining {
            match self.transition(id, w, WorkerState::Draining, None).await {
                Call::Ok(()) => {}
                Call::Rejected(r) => {
                    self.forget(id, w.gen);
                    return Err(format!("{id} to draining: {r:?}"));
                }
                Call::Moved(st) => return Err(format!("{id} to draining: row is {st}")),
                Call::Err(e) => return Err(format!("{id} to draining: {e}")),
            }
        }
        // A pod or secret that will not go is left to the janitor's orphan
        // pass: the row is retired either way.
        let _ = delete_objects(&*self.cluster, &*self.clock, self.cfg.call_timeout_ms, gate, &w.pod, &w.secret).await;
        match self.transition(id, w, WorkerState::Retired, None).await {
            Call::Ok(()) => {}
            // Taken over mid-drain (a janitor claimed the row): its new
            // owner finishes it. Forget it rather than retry it every upkeep.
            Call::Rejected(r) => {
                self.forget(id, w.gen);
                return Err(format!("{id} to retired: {r:?}"));
            }
            Call::Moved(st) => return Err(format!("{id} to retired: row is {st}")),
            Call::Err(e) => return Err(format!("{id} to retired: {e}")),
        }
        self.forget(id, w.gen);
        self.free_slot(id).await;
        Ok(())
    }

    /// The end of a graceful shutdown, once [`Self::drain_sessions`] handed
    /// the live sessions over: serve no more sessions and retire our idle
    /// workers. Idle includes a hot worker with no session: its session
    /// ended here but its park did not land (the store was failing), so the
    /// row is still hot and bound to that session; left so, the reapers
    /// would wait out the resume window for a client that is gone
    /// (docs/design.md §2.5).
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for (id, slot) in self.snapshot() {
            let Ok(mut w) = slot.try_lock() else { continue };
            if matches!(w.state(), WorkerState::HotIdle | WorkerState::Hot) && w.session.is_none() {
                let _ = self.drain_own(&id, &mut w).await;
            }
        }
    }

    /// The workers this replica believes it owns (id, state, epoch, session).
    pub fn owned(&self) -> Vec<(String, WorkerState, u64, Option<u64>)> {
        self.snapshot()
            .into_iter()
            .filter_map(|(id, slot)| slot.try_lock().ok().map(|w| (id, w.state(), w.epoch, w.session)))
            .collect()
    }

    pub fn instance(&self) -> InstanceId {
        self.me
    }

    pub fn fence_for(&self, lease: &str, epoch: u64) -> LeaseFence {
        LeaseFence { lease: lease.to_string(), holder: self.me, epoch }
    }
}

fn flatten<T, E: fmt::Display>(r: Result<Result<T, E>, crate::clock::Elapsed>) -> Result<T, String> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Delete a worker's pod, then its secret (missing ones are fine).
/// Each call goes out only while `gate` is open.
pub async fn delete_objects<K: Cluster, C: Clock>(
    cluster: &K,
    clock: &C,
    call_timeout_ms: u64,
    gate: &Gate,
    pod: &str,
    secret: &str,
) -> Result<(), String> {
    let call = ms(call_timeout_ms);
    gate.open()?;
    flatten(timeout(clock, call, cluster.delete_pod(pod)).await).map_err(|e| format!("delete pod {pod}: {e}"))?;
    gate.open()?;
    flatten(timeout(clock, call, cluster.delete_secret(secret)).await).map_err(|e| format!("delete secret {secret}: {e}"))
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What clients see of a replica: sessions served by its pool.
pub trait Sessions: Send + Sync {
    fn acquire(&self, org: String, session: u64) -> BoxFuture<'_, Result<String, PoolError>>;
    fn release(&self, session: u64) -> BoxFuture<'_, Result<(), PoolError>>;
    /// Resolves with the error its client must see when `session` ends
    /// without the client asking (see [`Pool::watch`]).
    fn watch(&self, session: u64) -> BoxFuture<'_, PoolError>;
    /// Go on with `session`, whose replica went away, through this one
    /// (see [`Pool::reconnect`]).
    fn reconnect(&self, session: u64) -> BoxFuture<'_, Result<String, PoolError>>;
}

impl<S: Store, C: Clock, K: Cluster> Sessions for Pool<S, C, K> {
    fn acquire(&self, org: String, session: u64) -> BoxFuture<'_, Result<String, PoolError>> {
        Box::pin(async move { Pool::acquire(self, &org, session).await })
    }
    fn release(&self, session: u64) -> BoxFuture<'_, Result<(), PoolError>> {
        Box::pin(Pool::release(self, session))
    }
    fn watch(&self, session: u64) -> BoxFuture<'_, PoolError> {
        Box::pin(Pool::watch(self, session))
    }
    fn reconnect(&self, session: u64) -> BoxFuture<'_, Result<String, PoolError>> {
        Box::pin(Pool::reconnect(self, session))
    }
}
