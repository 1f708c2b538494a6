//! The whole replica (coordinator, reconciler, pool, reapers): shutdown
//! waits for the release (and the ShutdownNoWait mutant does not), an
//! invalid configuration is refused, a dropped replica releases nothing, and
//! it serves sessions and stamps its reap metrics only after a success.
//! Its self-fencing is in `fence.rs`.

use crate::testkit::lease::*;
use crate::testkit::*;
use crate::config::ReplicaConfig;
use crate::mutants::{Mutant, Mutants};
use crate::observe::CoreEvent;
use crate::clock::Millis;
use crate::worker::{PoolError, WorkerState};
use crate::store::{StoreBackend, StoreRequest};

/// A replica (real reconciler) leading since 0; shutdown at 3.1 s lands
/// mid-sweep (sweep 1 runs 3.0-3.75 s).
async fn replica_shutdown_mid_sweep(mutants: Mutants) -> (Harness, Millis) {
    let w = Harness::new();
    let config = ReplicaConfig { mutants, ..Default::default() };
    let replica = w.replica(A, config, w.inner.clone()).unwrap();
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

/// An invalid configuration is refused before anything starts.
#[madsim::test]
async fn replica_start_rejects_invalid_config() {
    let w = Harness::new();
    let mut config = ReplicaConfig::default();
    config.lease.renew_interval_ms = config.lease.renew_deadline_ms;
    let err = w.replica(A, config, w.inner.clone()).err().unwrap();
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
    let w = Harness::new();
    let replica =
        w.replica(A, ReplicaConfig::default(), w.inner.clone()).unwrap();
    w.at(1_000).await;
    assert!(replica.is_leader());
    drop(replica);
    w.at(2_000).await;
    let rec = w.record().unwrap();
    assert_eq!(rec.holder, Some(A), "events after drop: {:#?}", w.log.of(A));
}

#[madsim::test]
async fn replica_serves_sessions_and_stamps_reaps_only_after_success() {
    let w = Harness::new();
    let config = ReplicaConfig::default();
    let fleet = config.fleet.clone();
    let store_a = w.client();
    let store_b = w.client();
    let a = w.replica(A, config.clone(), store_a.clone()).unwrap();
    w.sleep(100).await;
    let b = w.replica(B, config, store_b.clone()).unwrap();
    // The janitor's list of every row and the fallback's of its own.
    let lists = |r: &StoreRequest| matches!(r.op(), "list_workers" | "list_workers_of");
    store_a.fail_all(lists);
    store_b.fail_all(lists);

    let sessions = a.sessions();
    let id = sessions.acquire("org".into(), 1).await.unwrap();
    assert_eq!(w.row(&id).state, WorkerState::Hot);
    sessions.release(1).await.unwrap();
    assert_eq!(w.row(&id).state, WorkerState::HotIdle);
    assert!(w.cluster.with(|k| k.pods(0)).iter().any(|p| p.name == w.row(&id).pod));

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
