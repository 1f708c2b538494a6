//! Unit tests of the lease coordinator (and the replica around it), run on
//! madsim's simulated runtime: virtual time, so a minute of lease traffic
//! costs microseconds, and nothing here depends on real-time scheduling.
//!
//! Test doubles:
//! - every party shares one [`SystemClock`] (elapsed simulated time since the
//!   test began), so replica-side timestamps, observer timestamps and the
//!   store's `expires_at` are all in the same time domain and comparable;
//! - [`FaultyStore`]: a per-client view of one shared in-process store, with
//!   switches to partition the client (calls hang forever), fail its writes
//!   before commit, or commit a write and lose the reply; it logs every call;
//! - [`Log`] / [`RecordingObserver`]: every [`CoreEvent`] with its time and
//!   instance;
//! - [`TestWork`]: one leader-gated loop that records start, cancel and exit,
//!   and takes a configurable time to exit once cancelled.
//!
//! madsim picks among ready tasks at random (seeded), so every assertion here
//! holds for any interleaving; `MADSIM_TEST_NUM=50 cargo test -p haywire-core
//! lease::tests` runs each case under 50 seeds.

use super::{stop_requested, BoxLoop, Horizon, LeaderWork, LeaseCoordinator};
use crate::clock::{sleep_until, Clock, Millis, SystemClock};
use crate::cluster::{LocalCluster, MemCluster};
use crate::config::{LeaseConfig, ReplicaConfig};
use crate::ids::InstanceId;
use crate::mutants::{Mutant, Mutants};
use crate::observe::{CoreEvent, Observer};
use crate::replica::Replica;
use crate::store::{
    CasResult, LeaseRecord, LocalStore, MemStore, Reject, Store, StoreBackend, StoreError, StoreReply, StoreRequest,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use crate::signal as watch;

type Inner = LocalStore<MemStore, SystemClock>;

const A: InstanceId = InstanceId(1);
const B: InstanceId = InstanceId(2);
const C: InstanceId = InstanceId(3);

fn cfg() -> LeaseConfig {
    LeaseConfig::default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// FaultyStore

#[derive(Default)]
struct Faults {
    /// Partition: every call hangs forever (the request never arrives).
    hang: bool,
    /// Every write fails before commit with `StoreError::Failed`.
    fail_writes: bool,
    /// Per operation (`StoreRequest::op`): how many of the next such calls
    /// commit but have their reply lost (`StoreError::Unavailable`).
    lose_replies: HashMap<&'static str, u32>,
}

#[derive(Clone, Debug)]
enum Outcome {
    /// Never answered (partition).
    Hung,
    /// Refused before reaching the backend.
    Failed,
    /// Committed by the backend, reply lost; holds what the backend said.
    Lost(Result<StoreReply, StoreError>),
    Replied(Result<StoreReply, StoreError>),
}

#[derive(Clone, Debug)]
struct Call {
    at: Millis,
    req: StoreRequest,
    outcome: Outcome,
}

impl Call {
    fn op(&self) -> &'static str {
        self.req.op()
    }
    /// Did this call reach the store (not hung in a partition)?
    fn reached(&self) -> bool {
        !matches!(self.outcome, Outcome::Hung)
    }
}

/// One client's view of the shared store.
#[derive(Clone)]
struct FaultyStore {
    inner: Arc<Inner>,
    clock: SystemClock,
    faults: Arc<Mutex<Faults>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

enum Decision {
    Hang,
    Fail,
    Lose,
    Pass,
}

impl FaultyStore {
    fn new(inner: Arc<Inner>, clock: SystemClock) -> Self {
        FaultyStore { inner, clock, faults: Default::default(), calls: Default::default() }
    }

    fn set_hang(&self, on: bool) {
        lock(&self.faults).hang = on;
    }

    fn set_fail_writes(&self, on: bool) {
        lock(&self.faults).fail_writes = on;
    }

    fn lose_next_replies(&self, op: &'static str, n: u32) {
        lock(&self.faults).lose_replies.insert(op, n);
    }

    fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// Calls of operation `op` that reached the store.
    fn reached(&self, op: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.op() == op && c.reached()).collect()
    }

    fn decide(&self, req: &StoreRequest) -> Decision {
        let mut f = lock(&self.faults);
        if f.hang {
            return Decision::Hang;
        }
        if f.fail_writes && req.is_write() {
            return Decision::Fail;
        }
        if let Some(n) = f.lose_replies.get_mut(req.op()) {
            if *n > 0 {
                *n -= 1;
                return Decision::Lose;
            }
        }
        Decision::Pass
    }

    fn log(&self, at: Millis, req: StoreRequest, outcome: Outcome) {
        lock(&self.calls).push(Call { at, req, outcome });
    }
}

impl Store for FaultyStore {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        let at = self.clock.now();
        match self.decide(&req) {
            Decision::Hang => {
                self.log(at, req, Outcome::Hung);
                std::future::pending::<()>().await;
                unreachable!()
            }
            Decision::Fail => {
                self.log(at, req, Outcome::Failed);
                Err(StoreError::Failed("injected write failure".into()))
            }
            Decision::Lose => {
                let out = self.inner.call(req.clone()).await;
                self.log(at, req, Outcome::Lost(out));
                Err(StoreError::Unavailable("injected lost reply".into()))
            }
            Decision::Pass => {
                let out = self.inner.call(req.clone()).await;
                self.log(at, req, Outcome::Replied(out.clone()));
                out
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Recording observer

#[derive(Clone, Debug)]
struct Entry {
    at: Millis,
    who: InstanceId,
    ev: CoreEvent,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Entry>>>);

impl Log {
    fn of(&self, who: InstanceId) -> Vec<Entry> {
        lock(&self.0).iter().filter(|e| e.who == who).cloned().collect()
    }
    fn all(&self) -> Vec<Entry> {
        lock(&self.0).clone()
    }
    fn matching(&self, who: InstanceId, f: impl Fn(&CoreEvent) -> bool) -> Vec<Entry> {
        self.of(who).into_iter().filter(|e| f(&e.ev)).collect()
    }
    fn acquired(&self, who: InstanceId) -> Vec<u64> {
        self.of(who)
            .into_iter()
            .filter_map(|e| match e.ev {
                CoreEvent::LeaseAcquired { epoch } => Some(epoch),
                _ => None,
            })
            .collect()
    }
    fn renewed_at(&self, who: InstanceId) -> Vec<Millis> {
        self.matching(who, |e| matches!(e, CoreEvent::LeaseRenewed { .. })).iter().map(|e| e.at).collect()
    }
    fn stepped_down(&self, who: InstanceId) -> Vec<Entry> {
        self.matching(who, |e| matches!(e, CoreEvent::SteppedDown { .. }))
    }
    /// Index of the first event of `who` matching `f`, panicking if none.
    #[track_caller]
    fn index(&self, who: InstanceId, f: impl Fn(&CoreEvent) -> bool) -> usize {
        let evs = self.of(who);
        evs.iter().position(|e| f(&e.ev)).unwrap_or_else(|| panic!("no such event; events of {who}: {evs:#?}"))
    }
    #[track_caller]
    fn first(&self, who: InstanceId, f: impl Fn(&CoreEvent) -> bool) -> Entry {
        let i = self.index(who, f);
        self.of(who).swap_remove(i)
    }
}

struct RecordingObserver {
    who: InstanceId,
    clock: SystemClock,
    log: Log,
}

impl Observer for RecordingObserver {
    fn observe(&self, ev: CoreEvent) {
        lock(&self.log.0).push(Entry { at: self.clock.now(), who: self.who, ev });
    }
}

// ---------------------------------------------------------------------------
// Test leader work

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WorkEv {
    Started(u64),
    CancelSeen(u64),
    Exited(u64),
}

#[derive(Clone, Default)]
struct WorkLog(Arc<Mutex<Vec<(Millis, InstanceId, WorkEv)>>>);

impl WorkLog {
    fn of(&self, who: InstanceId) -> Vec<(Millis, WorkEv)> {
        lock(&self.0).iter().filter(|(_, w, _)| *w == who).map(|(t, _, e)| (*t, *e)).collect()
    }
    #[track_caller]
    fn time_of(&self, who: InstanceId, ev: WorkEv) -> Millis {
        self.of(who)
            .into_iter()
            .find(|(_, e)| *e == ev)
            .unwrap_or_else(|| panic!("no {ev:?} for {who}: {:?}", self.of(who)))
            .0
    }
}

/// One loop named "work" that idles until cancelled, then takes
/// `exit_delay_ms` to exit (a sweep finishing, a flush...).
struct TestWork {
    who: InstanceId,
    clock: SystemClock,
    exit_delay_ms: u64,
    log: WorkLog,
}

impl LeaderWork for TestWork {
    fn loops(&self, epoch: u64, mut cancel: watch::Receiver<bool>, _horizon: Horizon) -> Vec<(&'static str, BoxLoop)> {
        let (who, clock, delay, log) = (self.who, self.clock.clone(), self.exit_delay_ms, self.log.clone());
        let fut = async move {
            let push = |ev| lock(&log.0).push((clock.now(), who, ev));
            push(WorkEv::Started(epoch));
            stop_requested(&mut cancel).await;
            push(WorkEv::CancelSeen(epoch));
            clock.sleep(Duration::from_millis(delay)).await;
            push(WorkEv::Exited(epoch));
        };
        vec![("work", Box::pin(fut))]
    }
}

// ---------------------------------------------------------------------------
// The test world

struct World {
    clock: SystemClock,
    inner: Arc<Inner>,
    log: Log,
    work: WorkLog,
}

impl World {
    /// An empty cluster for a whole replica (its pool spawns nothing here).
    fn cluster(&self) -> Arc<LocalCluster<SystemClock>> {
        Arc::new(LocalCluster::new(MemCluster::new(), self.clock.clone()))
    }
}

/// A running coordinator.
struct Node {
    store: FaultyStore,
    shutdown_tx: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    is_leader: Arc<AtomicBool>,
}

impl Node {
    fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::SeqCst)
    }

    /// Graceful shutdown: ask, and wait for `run` to return.
    async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        self.handle.await.expect("coordinator task panicked");
    }
}

impl World {
    fn new() -> Self {
        let clock = SystemClock::new();
        let inner = Arc::new(LocalStore::new(MemStore::new(), clock.clone()));
        World { clock, inner, log: Log::default(), work: WorkLog::default() }
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Sleep until simulated time `t` (ms since the test began).
    async fn at(&self, t: Millis) {
        sleep_until(&self.clock, t).await;
        assert!(self.now() >= t);
    }

    fn observer(&self, who: InstanceId) -> Arc<dyn Observer> {
        Arc::new(RecordingObserver { who, clock: self.clock.clone(), log: self.log.clone() })
    }

    /// The lease record as the store holds it right now (no faults).
    fn record(&self) -> Option<LeaseRecord> {
        self.inner.with_backend(|b| b.read_lease(&cfg().name)).expect("read_lease")
    }

    fn spawn(&self, who: InstanceId, mutants: Mutants, exit_delay_ms: u64) -> Node {
        let store = FaultyStore::new(self.inner.clone(), self.clock.clone());
        self.spawn_on(who, store, mutants, exit_delay_ms)
    }

    /// Spawn a coordinator whose store client is `store` (faults may already
    /// be switched on).
    fn spawn_on(&self, who: InstanceId, store: FaultyStore, mutants: Mutants, exit_delay_ms: u64) -> Node {
        let work = TestWork { who, clock: self.clock.clone(), exit_delay_ms, log: self.work.clone() };
        let coord = LeaseCoordinator::new(
            who,
            cfg(),
            mutants,
            Arc::new(store.clone()),
            Arc::new(self.clock.clone()),
            Arc::new(work),
            self.observer(who),
        );
        let is_leader = coord.is_leader_metric();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let handle = tokio::spawn(coord.run(shutdown_rx));
        Node { store, shutdown_tx, handle, is_leader }
    }

    fn client(&self) -> FaultyStore {
        FaultyStore::new(self.inner.clone(), self.clock.clone())
    }
}

fn is_acquired(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::LeaseAcquired { .. })
}
fn is_stepped_down(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::SteppedDown { .. })
}
fn is_loop_stopped(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::LoopStopped { .. })
}
fn is_work_stopped(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::LeaderWorkStopped { .. })
}
fn is_released(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::LeaseReleased { .. })
}
fn is_release_failed(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::ReleaseFailed { .. })
}

#[track_caller]
fn reason_of(e: &Entry) -> &str {
    match &e.ev {
        CoreEvent::SteppedDown { reason, .. } => reason,
        other => panic!("not a SteppedDown: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 1. Acquire and renew

/// A lone coordinator takes the free lease at epoch 1, starts its loops only
/// after LeaseAcquired, and renews every renew interval on the dot.
#[madsim::test]
async fn single_coordinator_acquires_free_lease_and_renews_every_interval() {
    let w = World::new();
    let a = w.spawn(A, Mutants::none(), 0);
    w.at(32_500).await;

    assert_eq!(w.log.acquired(A), vec![1]);
    let acq = w.log.first(A, is_acquired);
    assert!(acq.at < 10, "acquired at {}ms, expected at once", acq.at);
    let started = w.log.index(A, |e| matches!(e, CoreEvent::LoopStarted { name: "work", epoch: 1 }));
    assert!(w.log.index(A, is_acquired) < started, "loops must start after LeaseAcquired");
    assert_eq!(w.work.of(A).iter().map(|(_, e)| *e).collect::<Vec<_>>(), vec![WorkEv::Started(1)]);
    assert!(a.is_leader());

    // Renews at 5 s, 10 s, ..., 30 s: every renew interval, no sooner, no
    // later (sub-millisecond scheduling noise aside).
    let renews = w.log.renewed_at(A);
    assert_eq!(renews.len(), 6, "renews at {renews:?}");
    let interval = cfg().renew_interval_ms;
    let mut prev = acq.at;
    for t in &renews {
        assert!((interval..=interval + 2).contains(&(t - prev)), "renews at {renews:?} (acquired at {prev})");
        prev = *t;
    }
    assert!(w.log.stepped_down(A).is_empty());

    // The store agrees: one acquire, six renews, expiry TTL after the last.
    assert_eq!(a.store.reached("acquire_lease").len(), 1);
    assert_eq!(a.store.reached("renew_lease").len(), 6);
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch, rec.version), (Some(A), 1, 7));
    let last = *renews.last().unwrap();
    assert!((last + cfg().ttl_ms..=last + cfg().ttl_ms + 1).contains(&rec.expires_at), "{rec:?}");

    a.shutdown().await;
}

// ---------------------------------------------------------------------------
// 2. Contention

/// Three coordinators starting at the same instant: the CAS lets exactly one
/// win, once, and nobody else ever believes it leads.
#[madsim::test]
async fn three_contenders_exactly_one_leader() {
    let w = World::new();
    let nodes =
        [(A, w.spawn(A, Mutants::none(), 0)), (B, w.spawn(B, Mutants::none(), 0)), (C, w.spawn(C, Mutants::none(), 0))];
    w.at(60_000).await;

    let acquisitions: Vec<Entry> = w.log.all().into_iter().filter(|e| is_acquired(&e.ev)).collect();
    assert_eq!(acquisitions.len(), 1, "{acquisitions:#?}");
    let winner = acquisitions[0].who;
    assert!(matches!(acquisitions[0].ev, CoreEvent::LeaseAcquired { epoch: 1 }));

    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(winner), 1));
    for (who, node) in &nodes {
        assert_eq!(node.is_leader(), *who == winner, "{who}");
        assert!(w.log.stepped_down(*who).is_empty());
        if *who != winner {
            // The losers kept contending all along (every retry period) ...
            assert!(node.store.reached("read_lease").len() >= 25, "{who} stopped contending");
            // ... and never started leader-gated work.
            assert!(w.work.of(*who).is_empty());
            assert!(node.store.reached("renew_lease").is_empty());
        }
    }
    // The winner renewed throughout.
    assert!(w.log.renewed_at(winner).len() >= 11);

    for (_, node) in nodes {
        node.shutdown().await;
    }
}

// ---------------------------------------------------------------------------
// 3. Graceful shutdown order

/// Leads with loops that take 2 s to exit once cancelled, then shuts down at
/// 6 s. Returns the world for the caller's assertions.
async fn shutdown_with_slow_loops(mutants: Mutants) -> World {
    let w = World::new();
    let a = w.spawn(A, mutants, 2_000);
    w.at(6_000).await;
    assert!(a.is_leader());
    a.shutdown().await;
    w
}

/// Stop cancels the loops, waits for them (2 s), and only then releases.
#[madsim::test]
async fn graceful_shutdown_stops_loops_before_release() {
    let w = shutdown_with_slow_loops(Mutants::none()).await;

    let down = w.log.index(A, is_stepped_down);
    let loop_stopped = w.log.index(A, is_loop_stopped);
    let work_stopped = w.log.index(A, is_work_stopped);
    let released = w.log.index(A, is_released);
    assert!(down < loop_stopped && loop_stopped < work_stopped && work_stopped < released, "{:#?}", w.log.of(A));
    assert_eq!(reason_of(&w.log.first(A, is_stepped_down)), "Shutdown");
    assert!(matches!(w.log.first(A, is_released).ev, CoreEvent::LeaseReleased { epoch: 1 }));

    // The store: released (holder None), epoch kept, at a store time no
    // earlier than the loop's exit.
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (None, 1));
    let cancel_seen = w.work.time_of(A, WorkEv::CancelSeen(1));
    let exited = w.work.time_of(A, WorkEv::Exited(1));
    assert!(exited >= cancel_seen + 2_000);
    assert!(rec.expires_at >= exited, "released at {} before the loop exited at {exited}", rec.expires_at);
    assert!(w.log.first(A, is_released).at >= exited);
    assert!(w.log.all().iter().all(|e| !is_release_failed(&e.ev)));
}

/// With the ReleaseBeforeCancel mutant the order inverts: the store record is
/// released while the loops still run for 2 s.
#[madsim::test]
async fn mutant_release_before_cancel_releases_while_loops_run() {
    let w = shutdown_with_slow_loops(Mutants::only(Mutant::ReleaseBeforeCancel)).await;

    let down = w.log.index(A, is_stepped_down);
    let released = w.log.index(A, is_released);
    let loop_stopped = w.log.index(A, is_loop_stopped);
    let work_stopped = w.log.index(A, is_work_stopped);
    assert!(down < released && released < loop_stopped && loop_stopped < work_stopped, "{:#?}", w.log.of(A));

    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (None, 1));
    let exited = w.work.time_of(A, WorkEv::Exited(1));
    // Released first; the loop kept running for its whole 2 s exit time
    // after the lease was already free for anyone.
    assert!(rec.expires_at + 2_000 <= exited, "released at {}, loop exited at {exited}", rec.expires_at);
}

// ---------------------------------------------------------------------------
// 4. Renew deadline

/// Partitioned from the store after its first renew, the holder steps down
/// at the renew deadline and its loops have exited strictly before the lease
/// the store last granted it can expire.
#[madsim::test]
async fn partitioned_holder_steps_down_before_lease_expires() {
    let w = World::new();
    let a = w.spawn(A, Mutants::none(), 2_000);
    w.at(7_000).await;
    assert_eq!(w.log.renewed_at(A).len(), 1);
    a.store.set_hang(true);
    w.at(25_000).await;

    // The last renew the store applied, and when it was sent.
    let renews = a.store.reached("renew_lease");
    assert_eq!(renews.len(), 1, "{renews:#?}");
    let last_sent = renews[0].at;
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 1), "nobody released or took it");
    assert_eq!(
        rec.expires_at,
        match &renews[0].outcome {
            Outcome::Replied(Ok(StoreReply::Cas(CasResult::Applied(r)))) => r.expires_at,
            other => panic!("{other:?}"),
        }
    );

    let down = w.log.first(A, is_stepped_down);
    assert!(reason_of(&down).contains("Deadline"), "{down:?}");
    assert!(matches!(down.ev, CoreEvent::SteppedDown { epoch: 1, .. }));
    let deadline = last_sent + cfg().renew_deadline_ms;
    assert!((deadline..=deadline + 2).contains(&down.at), "stepped down at {}, deadline {deadline}", down.at);
    assert!(!a.is_leader());

    let work_stopped = w.log.first(A, is_work_stopped);
    assert!(matches!(work_stopped.ev, CoreEvent::LeaderWorkStopped { epoch: 1 }));
    assert!(w.work.time_of(A, WorkEv::Exited(1)) <= work_stopped.at);
    assert!(
        work_stopped.at < rec.expires_at,
        "loops stopped at {} but the lease expired at {}",
        work_stopped.at,
        rec.expires_at
    );
    // The release could not reach the store; it gave up rather than hang.
    assert!(w.log.index(A, is_work_stopped) < w.log.index(A, is_release_failed));
    assert_eq!(w.log.acquired(A), vec![1]);

    // Shutdown while still partitioned returns (bounded by the RPC timeout).
    let before = w.now();
    a.shutdown().await;
    assert!(w.now() - before <= cfg().rpc_timeout_ms + cfg().release_timeout_ms);
}

/// The store names someone else (here: rewritten behind the holder's back):
/// the holder's next renew is rejected, it steps down with Lost, stops its
/// loops and does not try to release what is not its own.
#[madsim::test]
async fn holder_fenced_out_steps_down_without_release() {
    let w = World::new();
    let a = w.spawn(A, Mutants::none(), 500);
    w.at(6_000).await;
    let name = cfg().name;
    w.inner.with_backend(|b| {
        let now = w.clock.now();
        let v = b.read_lease(&name).unwrap().unwrap().version;
        assert!(matches!(b.release_lease(&name, A, v, now), Ok(CasResult::Applied(_))));
        assert!(matches!(b.acquire_lease(&name, B, Some(v + 1), 60_000, now), Ok(CasResult::Applied(_))));
    });
    w.at(20_000).await;

    let down = w.log.first(A, is_stepped_down);
    assert!(reason_of(&down).contains("Lost"), "{down:?}");
    assert!((10_000..10_010).contains(&down.at), "stepped down at the next renew, not at {}", down.at);
    assert!(w.log.index(A, is_stepped_down) < w.log.index(A, is_work_stopped));
    assert!(a.store.reached("release_lease").is_empty(), "released a lease it no longer held");
    assert!(w.log.all().iter().all(|e| !is_released(&e.ev) && !is_release_failed(&e.ev)));
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(B), 2));
    // Back to contending, but B holds it; having just lost the lease, it
    // leaves the first try to others (one retry period after its loops are
    // out).
    let stopped = w.log.first(A, is_work_stopped).at;
    assert!(stopped >= down.at + 500);
    let first_try = a.store.calls().into_iter().find(|c| c.at > down.at).expect("contends again");
    assert_eq!(first_try.op(), "read_lease");
    let retry = cfg().retry_period_ms;
    assert!((stopped + retry..=stopped + retry + 2).contains(&first_try.at), "first try at {}", first_try.at);
    assert!(a.store.reached("acquire_lease").len() > 1);
    assert_eq!(w.log.acquired(A), vec![1]);
    assert!(!a.is_leader());
    a.shutdown().await;
}

// ---------------------------------------------------------------------------
// 5. Contend again after losing the lease

/// A leads, is partitioned past its TTL while B takes over (epoch 2), heals;
/// B shuts down gracefully at 40 s. Returns the world after 60 s more.
async fn lose_then_recontend(mutants_a: Mutants) -> (World, Node) {
    let w = World::new();
    let a = w.spawn(A, mutants_a, 500);
    w.at(1_000).await;
    let b = w.spawn(B, Mutants::none(), 500);
    w.at(7_000).await;
    a.store.set_hang(true);
    w.at(30_000).await;
    assert_eq!(w.log.acquired(B), vec![2], "B takes over once A's lease expired");
    assert!(w.log.first(B, is_acquired).at >= 20_000);
    assert!(reason_of(&w.log.first(A, is_stepped_down)).contains("Deadline"));
    a.store.set_hang(false);
    w.at(40_000).await;
    assert_eq!(w.log.acquired(A), vec![1], "B still holds it");
    b.shutdown().await;
    assert!(w.log.of(B).iter().any(|e| e.ev == CoreEvent::LeaseReleased { epoch: 2 }));
    w.at(100_000).await;
    (w, a)
}

#[madsim::test]
async fn coordinator_contends_again_after_losing_the_lease() {
    let (w, a) = lose_then_recontend(Mutants::none()).await;
    assert_eq!(w.log.acquired(A), vec![1, 3]);
    let released = w.log.first(B, is_released).at;
    let reacquired = w.log.matching(A, is_acquired)[1].at;
    assert!(reacquired >= released && reacquired <= released + cfg().retry_period_ms + 10);
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 3));
    assert!(a.is_leader());
    a.shutdown().await;
}

/// With ElectorRunsOnce, A never contends again: the lease stays free for a
/// full minute after B let it go.
#[madsim::test]
async fn mutant_elector_runs_once_never_contends_again() {
    let (w, a) = lose_then_recontend(Mutants::only(Mutant::ElectorRunsOnce)).await;
    assert_eq!(w.log.acquired(A), vec![1]);
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (None, 2));
    assert!(a.store.calls().iter().all(|c| c.at < 30_000), "A made store calls after healing");
    assert!(!a.is_leader());
    a.shutdown().await;
}

// ---------------------------------------------------------------------------
// 6, 7. Lost replies

/// The first acquire commits but its reply is lost. On the next attempt the
/// coordinator reads itself as holder, confirms with a renew and leads at
/// epoch 1: no second acquire, no epoch bump.
#[madsim::test]
async fn lost_acquire_reply_is_discovered_on_next_attempt() {
    let w = World::new();
    let store = w.client();
    store.lose_next_replies("acquire_lease", 1);
    let a = w.spawn_on(A, store, Mutants::none(), 0);
    w.at(1_000).await;
    assert!(w.log.acquired(A).is_empty(), "must not lead on an unconfirmed acquire");
    assert!(!a.is_leader());
    assert_eq!(w.record().unwrap().holder, Some(A), "yet the store names it");
    w.at(30_000).await;

    assert_eq!(w.log.acquired(A), vec![1]);
    let acq = w.log.first(A, is_acquired);
    let retry = cfg().retry_period_ms;
    assert!((retry..retry + 10).contains(&acq.at), "acquired at {}", acq.at);

    let calls = a.store.calls();
    let acquires: Vec<&Call> = calls.iter().filter(|c| c.op() == "acquire_lease").collect();
    assert_eq!(acquires.len(), 1, "{calls:#?}");
    assert!(matches!(acquires[0].outcome, Outcome::Lost(Ok(StoreReply::Cas(CasResult::Applied(_))))));
    // The confirming call is a renew of the version the lost acquire wrote.
    let confirm = calls.iter().find(|c| c.op() == "renew_lease").unwrap();
    assert!(matches!(confirm.req, StoreRequest::RenewLease { expected_version: 1, .. }), "{confirm:?}");
    assert!(confirm.at >= retry && confirm.at < acq.at + 1);

    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 1));
    assert!(w.log.stepped_down(A).is_empty());
    assert_eq!(w.log.renewed_at(A).len(), 5, "renews every interval from the confirmation on");
    assert!(a.is_leader());
    a.shutdown().await;
}

/// A renew commits but its reply is lost. The retry is rejected as
/// StaleVersion naming this holder at this epoch; the coordinator adopts the
/// version and keeps leading.
#[madsim::test]
async fn lost_renew_reply_keeps_leading() {
    let w = World::new();
    let store = w.client();
    store.lose_next_replies("renew_lease", 1);
    let a = w.spawn_on(A, store, Mutants::none(), 0);
    w.at(30_000).await;

    assert_eq!(w.log.acquired(A), vec![1]);
    assert!(w.log.stepped_down(A).is_empty(), "{:#?}", w.log.of(A));
    assert!(a.is_leader());
    assert!(w.work.of(A).iter().all(|(_, e)| *e == WorkEv::Started(1)), "loops never cancelled");

    let renews: Vec<Call> = a.store.calls().into_iter().filter(|c| c.op() == "renew_lease").collect();
    // 5 s: committed, reply lost.
    assert!(matches!(renews[0].outcome, Outcome::Lost(Ok(StoreReply::Cas(CasResult::Applied(_))))));
    // A retry period later, at the old version: StaleVersion, still ours.
    match &renews[1].outcome {
        Outcome::Replied(Ok(StoreReply::Cas(CasResult::Rejected {
            reason: Reject::StaleVersion,
            current: Some(cur),
        }))) => {
            assert_eq!((cur.holder, cur.epoch, cur.version), (Some(A), 1, 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(renews[1].req, StoreRequest::RenewLease { expected_version: 1, .. }));
    // At once, at the current version: applied.
    assert!(matches!(renews[2].req, StoreRequest::RenewLease { expected_version: 2, .. }));
    assert!(matches!(renews[2].outcome, Outcome::Replied(Ok(StoreReply::Cas(CasResult::Applied(_))))));
    assert!(renews[2].at - renews[1].at <= 1);
    assert!(renews[1].at < cfg().renew_deadline_ms, "recovered well before the deadline");

    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 1));
    a.shutdown().await;
}

// ---------------------------------------------------------------------------
// 8. Replica shutdown

/// A replica (real reconciler) leading since 0; shutdown at 3.1 s lands
/// mid-sweep (sweep 1 runs 3.0-3.75 s).
async fn replica_shutdown_mid_sweep(mutants: Mutants) -> (World, Millis) {
    let w = World::new();
    let config = ReplicaConfig { mutants, ..Default::default() };
    let replica = Replica::start(A, config, w.inner.clone(), Arc::new(w.clock.clone()), w.cluster(), w.observer(A)).unwrap();
    assert_eq!(replica.instance(), A);
    w.at(3_100).await;
    assert!(replica.is_leader());
    replica.shutdown().await;
    (w, 3_100)
}

#[madsim::test]
async fn replica_shutdown_waits_for_release() {
    let (w, asked) = replica_shutdown_mid_sweep(Mutants::none()).await;
    let returned = w.now();
    // The lease is free the moment shutdown() returns.
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (None, 1));
    // It waited for the sweep in progress to finish (3 effects) first.
    let sweep_end = 3_000 + 3 * ReplicaConfig::default().reconciler.step_ms;
    assert!(returned >= sweep_end && returned > asked, "returned at {returned}");
    let effects = w.inner.with_backend(|b| b.effects()).unwrap();
    assert_eq!(effects.len(), 3);
    assert!(effects.iter().all(|e| e.at <= rec.expires_at), "effects committed before the release");
    let evs = w.log.of(A);
    let pos = |f: fn(&CoreEvent) -> bool| evs.iter().position(|e| f(&e.ev)).unwrap();
    assert!(pos(|e| matches!(e, CoreEvent::Started { .. })) < pos(is_acquired));
    assert!(pos(|e| *e == CoreEvent::ShutdownBegan) < pos(is_stepped_down));
    assert!(pos(is_work_stopped) < pos(is_released));
    assert!(pos(is_released) < pos(|e| *e == CoreEvent::ShutdownDone));
    assert_eq!(evs.last().unwrap().ev, CoreEvent::ShutdownDone);
}

/// With ShutdownNoWait, shutdown() returns at once while the store still
/// names the instance: a process exiting now leaves the lease to the TTL.
#[madsim::test]
async fn mutant_shutdown_no_wait_returns_while_still_holder() {
    let (w, asked) = replica_shutdown_mid_sweep(Mutants::only(Mutant::ShutdownNoWait)).await;
    assert_eq!(w.now(), asked, "returned without waiting");
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 1));
    let evs = w.log.of(A);
    assert_eq!(evs.last().unwrap().ev, CoreEvent::ShutdownDone);
    assert!(!evs.iter().any(|e| is_released(&e.ev)));
}

// ---------------------------------------------------------------------------
// 9. Failed writes

/// Every write fails before commit: the standby never leads, retries every
/// retry period, and acquires at the first attempt after failures stop.
#[madsim::test]
async fn failed_writes_keep_standby_retrying_until_they_stop() {
    let w = World::new();
    let store = w.client();
    store.set_fail_writes(true);
    let a = w.spawn_on(A, store, Mutants::none(), 0);
    w.at(20_500).await;

    assert!(w.log.acquired(A).is_empty());
    assert!(!a.is_leader());
    assert_eq!(w.record(), None, "a failed write changes nothing");
    let attempts = a.store.reached("acquire_lease");
    assert_eq!(
        attempts.len(),
        11,
        "attempts at 0, 2, ..., 20 s: {:?}",
        attempts.iter().map(|c| c.at).collect::<Vec<_>>()
    );
    assert!(attempts.iter().all(|c| matches!(c.outcome, Outcome::Failed)));
    let retry = cfg().retry_period_ms;
    for pair in attempts.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!((retry..=retry + 1).contains(&gap), "gap {gap}");
    }

    a.store.set_fail_writes(false);
    w.at(25_000).await;
    assert_eq!(w.log.acquired(A), vec![1]);
    let acq = w.log.first(A, is_acquired).at;
    assert!((22_000..22_010).contains(&acq), "acquired at {acq}");
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch, rec.version), (Some(A), 1, 1));
    assert!(a.is_leader());
    a.shutdown().await;
}

// ---------------------------------------------------------------------------
// More edges

/// Shut down while the store names this instance only through an acquire
/// whose reply was lost: the contend phase gives the lease back on the way
/// out, so failover does not wait for the TTL.
#[madsim::test]
async fn shutdown_while_contending_releases_a_lease_won_unseen() {
    let w = World::new();
    let store = w.client();
    store.lose_next_replies("acquire_lease", 1);
    let a = w.spawn_on(A, store.clone(), Mutants::none(), 0);
    w.at(1_000).await;
    assert_eq!(w.record().unwrap().holder, Some(A));
    assert!(w.log.acquired(A).is_empty());
    a.shutdown().await;
    assert!(w.now() < 1_010, "shutdown did not wait for a retry period");
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (None, 1));
    assert_eq!(store.reached("release_lease").len(), 1);
    assert!(matches!(w.log.first(A, is_released).ev, CoreEvent::LeaseReleased { epoch: 1 }));
    assert!(w.log.acquired(A).is_empty() && w.log.stepped_down(A).is_empty(), "never led");
}

/// Shut down while a standby (someone else holds the lease): nothing of the
/// holder's is touched.
#[madsim::test]
async fn standby_shutdown_leaves_the_holders_lease_alone() {
    let w = World::new();
    let a = w.spawn(A, Mutants::none(), 0);
    w.at(500).await;
    let b = w.spawn(B, Mutants::none(), 0);
    w.at(5_500).await;
    let b_store = b.store.clone();
    b.shutdown().await;
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 1));
    assert!(w.log.of(B).is_empty(), "{:#?}", w.log.of(B));
    // B only ever read and tried to acquire (rejected: held by A).
    let calls = b_store.calls();
    assert!(calls.iter().all(|c| c.op() == "read_lease" || c.op() == "acquire_lease"), "{calls:#?}");
    assert!(calls.iter().filter(|c| c.op() == "acquire_lease").all(|c| matches!(
        c.outcome,
        Outcome::Replied(Ok(StoreReply::Cas(CasResult::Rejected { reason: Reject::HeldByOther, .. })))
    )));
    assert!(a.is_leader());
    a.shutdown().await;
}

/// An invalid configuration is refused before anything starts.
#[madsim::test]
async fn replica_start_rejects_invalid_config() {
    let w = World::new();
    let mut config = ReplicaConfig::default();
    config.lease.renew_interval_ms = config.lease.renew_deadline_ms;
    let err = Replica::start(A, config, w.inner.clone(), Arc::new(w.clock.clone()), w.cluster(), w.observer(A)).err().unwrap();
    assert!(err.0.contains("renew_interval_ms"), "{err}");
    w.at(30_000).await;
    assert!(w.log.all().is_empty());
    assert_eq!(w.record(), None);
}

/// Dropping a Replica without `shutdown()` is a crash: the coordinator is
/// aborted, nothing is released. (Before the fix the dropped shutdown sender
/// read as a stop request and the detached coordinator released the lease in
/// the background.)
#[madsim::test]
async fn dropping_a_replica_releases_nothing() {
    let w = World::new();
    let replica =
        Replica::start(A, ReplicaConfig::default(), w.inner.clone(), Arc::new(w.clock.clone()), w.cluster(), w.observer(A)).unwrap();
    w.at(1_000).await;
    assert!(replica.is_leader());
    drop(replica);
    w.at(2_000).await;
    let rec = w.record().unwrap();
    assert_eq!(rec.holder, Some(A), "events after drop: {:#?}", w.log.of(A));
}

/// After a deadline step-down whose release could not reach the store, a
/// graceful shutdown during the wait before contending again still gives the
/// lease back (it does not leave failover to the TTL).
#[madsim::test]
async fn shutdown_after_failed_release_still_releases() {
    let w = World::new();
    let a = w.spawn(A, Mutants::none(), 500);
    w.at(7_000).await;
    a.store.set_hang(true);
    // Deadline at 15 s, loops out at 15.5 s, release times out at 17.5 s.
    w.at(18_000).await;
    assert!(reason_of(&w.log.first(A, is_stepped_down)).contains("Deadline"));
    assert!(w.log.of(A).iter().any(|e| is_release_failed(&e.ev)));
    let rec = w.record().unwrap();
    assert_eq!(rec.holder, Some(A));
    let expires = rec.expires_at;
    a.store.set_hang(false);
    w.at(18_500).await;
    assert!(a.store.calls().iter().all(|c| c.at < 18_000), "still in the post-step-down wait");
    a.shutdown().await;
    assert!(w.now() < expires);
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (None, 1), "released before the TTL ran out");
    assert!(matches!(w.log.first(A, is_released).ev, CoreEvent::LeaseReleased { epoch: 1 }));
}
