//! The lease builder: coordinators on the [`Harness`], each running one
//! recording [`TestWork`], and queries of the lease's events.

use super::{lock, Entry, EventLog, FaultyStore, Harness};
use crate::clock::{Clock, Millis, SystemClock};
use crate::config::LeaseConfig;
use crate::ids::InstanceId;
use crate::lease::{stop_requested, BoxLoop, Horizon, LeaderWork, LeaseCoordinator};
use crate::mutants::Mutants;
use crate::observe::CoreEvent;
use crate::signal as watch;
use crate::store::{LeaseRecord, StoreBackend};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn cfg() -> LeaseConfig {
    LeaseConfig::default()
}

// ---------------------------------------------------------------------------
// Test leader work

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkEv {
    Started(u64),
    CancelSeen(u64),
    Exited(u64),
}

#[derive(Clone, Default)]
pub struct WorkLog(Arc<Mutex<Vec<(Millis, InstanceId, WorkEv)>>>);

impl WorkLog {
    pub fn of(&self, who: InstanceId) -> Vec<(Millis, WorkEv)> {
        lock(&self.0).iter().filter(|(_, w, _)| *w == who).map(|(t, _, e)| (*t, *e)).collect()
    }

    #[track_caller]
    pub fn time_of(&self, who: InstanceId, ev: WorkEv) -> Millis {
        self.of(who)
            .into_iter()
            .find(|(_, e)| *e == ev)
            .unwrap_or_else(|| panic!("no {ev:?} for {who}: {:?}", self.of(who)))
            .0
    }
}

/// One loop named "work" that idles until cancelled, then takes
/// `exit_delay_ms` to exit (a sweep finishing, a flush...).
pub struct TestWork {
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
// Coordinators

/// A running coordinator.
pub struct Node {
    pub store: Arc<FaultyStore>,
    shutdown_tx: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    is_leader: Arc<AtomicBool>,
}

impl Node {
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::SeqCst)
    }

    /// Graceful shutdown: ask, and wait for `run` to return.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        self.handle.await.expect("coordinator task panicked");
    }
}

impl Harness {
    /// The lease record as the store holds it right now (no faults).
    pub fn record(&self) -> Option<LeaseRecord> {
        self.inner.with_backend(|b| b.read_lease(&cfg().name)).expect("read_lease")
    }

    /// Spawn a coordinator on a fresh client of the store.
    pub fn spawn(&self, who: InstanceId, mutants: Mutants, exit_delay_ms: u64) -> Node {
        self.spawn_on(who, self.client(), mutants, exit_delay_ms)
    }

    /// Spawn a coordinator whose store client is `store` (faults may already
    /// be switched on).
    pub fn spawn_on(&self, who: InstanceId, store: Arc<FaultyStore>, mutants: Mutants, exit_delay_ms: u64) -> Node {
        let work = TestWork { who, clock: self.clock.clone(), exit_delay_ms, log: self.work.clone() };
        let coord = LeaseCoordinator::new(
            who,
            cfg(),
            mutants,
            store.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(work),
            self.observer(who),
        );
        let is_leader = coord.is_leader_metric();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let handle = tokio::spawn(coord.run(shutdown_rx));
        Node { store, shutdown_tx, handle, is_leader }
    }
}

// ---------------------------------------------------------------------------
// Lease events

impl EventLog {
    pub fn acquired(&self, who: InstanceId) -> Vec<u64> {
        self.of(who)
            .into_iter()
            .filter_map(|e| match e.ev {
                CoreEvent::LeaseAcquired { epoch } => Some(epoch),
                _ => None,
            })
            .collect()
    }

    pub fn renewed_at(&self, who: InstanceId) -> Vec<Millis> {
        self.matching(who, |e| matches!(e, CoreEvent::LeaseRenewed { .. })).iter().map(|e| e.at).collect()
    }

    pub fn stepped_down(&self, who: InstanceId) -> Vec<Entry> {
        self.matching(who, |e| matches!(e, CoreEvent::SteppedDown { .. }))
    }
}

pub fn is_acquired(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::LeaseAcquired { .. })
}
pub fn is_stepped_down(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::SteppedDown { .. })
}
pub fn is_loop_stopped(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::LoopStopped { .. })
}
pub fn is_work_stopped(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::LeaderWorkStopped { .. })
}
pub fn is_released(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::LeaseReleased { .. })
}
pub fn is_release_failed(e: &CoreEvent) -> bool {
    matches!(e, CoreEvent::ReleaseFailed { .. })
}

#[track_caller]
pub fn reason_of(e: &Entry) -> &str {
    match &e.ev {
        CoreEvent::SteppedDown { reason, .. } => reason,
        other => panic!("not a SteppedDown: {other:?}"),
    }
}
