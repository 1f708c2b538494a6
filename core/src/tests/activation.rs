//! Activation, from pod created to worker hot: a pod that fails or never
//! starts, and a hot write that fails (or lands unseen), all clean up; a
//! long activation heartbeats its row so the janitor's stuck pass spares
//! it (and the ReaperKillsLiveActivation mutant does not) (field report 002).

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::clock::Millis;
use crate::config::FleetConfig;
use crate::mutants::{Mutant, Mutants};
use crate::worker::pool::WRITE_TRIES;
use crate::worker::{Gate, PoolError, WorkerState};

/// A pod that fails while activating: spawn fails, row retired, objects and
/// slot gone.
#[madsim::test]
async fn pod_failing_during_activation_cleans_up() {
    let w = Harness::new();
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
    let w = Harness::new();
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
        let w = Harness::new();
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

/// The activating→hot write commits with its reply lost, and its retries
/// fail: the spawn fails. Undoing it finds the row hot (the write landed)
/// and its drain fails, so the pool still holds a worker whose pod and
/// secret are deleted, hot with no session in memory. It must never be
/// served; upkeep retires it and frees its slot.
#[madsim::test]
async fn a_failed_spawn_whose_hot_write_landed_unseen_is_never_served() {
    let w = Harness::new();
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

/// The pool waits up to 10 minutes for a pod; the janitor calls an
/// activating row stuck once it has not been written for 5 minutes.
fn activation_cfg() -> FleetConfig {
    FleetConfig { activation_timeout_ms: 600_000, stuck_activating_ms: 300_000, ..cfg() }
}

/// A worker whose pod takes `start_delay` ms to start, under the janitor
/// (same replica, lease held) passing every reap interval. Returns the
/// largest staleness of the activating row (`now - updated_at`) any pass
/// saw, and the result of the acquire.
async fn long_activation(start_delay: Millis, mutants: Mutants) -> (Harness, Millis, Result<String, PoolError>) {
    let w = Harness::new();
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
