//! The idle pass: a worker idle past the TTL is retired by the janitor or
//! by its owner's fallback reaper (field report 002); the janitor takes one
//! over in one claim; a drain whose retire write failed, or that landed
//! unseen, is still finished.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::mutants::Mutants;
use crate::config::FleetConfig;
use crate::store::{IdleFloor, LeaseFence, Store, StoreReply, StoreRequest, WorkerCas, WorkerRecord, WorkerReject};
use std::sync::Arc;
use crate::worker::pool::WRITE_TRIES;
use crate::worker::{Gate, WorkerState};

/// One worker served one session at t=0 and sits hot-idle.
async fn one_idle_worker(w: &Harness) -> (Arc<TPool>, Arc<TReapers>, String) {
    let c = cfg();
    let (pool, reapers) = w.pool_and_reapers(&c, Mutants::none());
    let id = idle_worker(&pool, "org", 1).await;
    let r = w.row(&id);
    assert_eq!((r.state, r.session, r.owner, r.owner_epoch), (WorkerState::HotIdle, None, A, 1));
    assert!(w.has_pod(&r.pod) && w.has_secret(&r.secret));
    assert_eq!(w.slots(), vec![id.clone()]);
    (pool, reapers, id)
}

#[madsim::test]
async fn janitor_retires_a_worker_idle_past_the_ttl() {
    let w = Harness::new();
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
    let w = Harness::new();
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

/// A janitor's take-over of another live instance's expired hot-idle worker
/// is one claim CAS: it names the state listed and moves the row to
/// draining under the janitor's instance in the same write (so the row
/// never sits hot-idle under the janitor's name, where a floor would count
/// it). Then the objects go and one update, at the claim's epoch, retires
/// it.
#[madsim::test]
async fn janitor_takes_over_an_expired_idle_worker_in_one_claim_to_draining() {
    let w = Harness::new();
    let c = cfg();
    let IdleUnderJanitor { pool, id, jstore, janitor, epoch, .. } = w.idle_worker_under_janitor(&c).await;
    let fence = Some(LeaseFence { lease: LEASE.into(), holder: J, epoch });
    // The claim's reply is held back (within the call timeout), to look at
    // the row between the claim and the retire.
    jstore.slow_replies(500, is_op("claim_worker"));

    w.past_idle_ttl(&c).await;
    let listed = w.row(&id);
    assert_eq!((listed.state, listed.owner, listed.owner_epoch, listed.session), (WorkerState::HotIdle, A, 1, None));
    let pass = spawn_janitor_pass(&janitor, epoch);
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
            floor: Some(IdleFloor { keep: c.min_hot_idle, ttl_ms: c.hot_idle_ttl_ms }),
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
    assert_eq!(writes[0].reply(), Some(Ok(StoreReply::Worker(WorkerCas::Applied(claimed.clone())))));
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

/// A janitor on another replica drains an expired idle worker (claiming it)
/// and deletes its objects, then its write to retired fails. With the store
/// healed, the fleet's upkeep (janitor passes, both replicas' maintenance
/// and fallback passes) must finish it: retired, slot freed — not leave it
/// draining under a claim nobody resumes.
#[madsim::test]
async fn janitor_finishes_a_drain_whose_retire_write_failed() {
    let w = Harness::new();
    let c = cfg();
    let IdleUnderJanitor { pool, id, jstore, jpool, janitor, epoch } = w.idle_worker_under_janitor(&c).await;
    let reapers = w.reapers(&pool, w.store.clone(), &c, Mutants::none());
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
    let w = Harness::new();
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

/// The fallback reaper's drain of an expired idle worker commits with its
/// reply lost, its retries fail: the row is draining (objects still there),
/// memory says hot-idle, so neither the pool (a hot-idle worker) nor the
/// janitor (a draining row its pool holds) would finish it. The next
/// maintain adopts the row; the one after finishes the drain.
#[madsim::test]
async fn pool_adopts_a_drain_that_landed_unseen_and_finishes_it() {
    let w = Harness::new();
    let c = cfg();
    let (pool, reapers) = w.pool_and_reapers(&c, Mutants::none());
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

/// A's two workers, parked a second apart at about 0 (the older first),
/// A's floor one worker: past the TTL the older is beyond the floor, the
/// newer is the floor. Returns (older, newer) and their owner epoch.
async fn two_idle_workers(w: &Harness, pool: &TPool) -> (String, String, u64) {
    let old = pool.acquire("org", 1).await.expect("acquire");
    let new = pool.acquire("org", 2).await.expect("acquire");
    assert_ne!(old, new);
    pool.release(1).await.expect("release");
    w.sleep(1_000).await;
    pool.release(2).await.expect("release");
    let (o, n) = (w.row(&old), w.row(&new));
    assert!(o.idle_since < n.idle_since && o.state == WorkerState::HotIdle && n.state == WorkerState::HotIdle);
    assert_eq!(o.owner_epoch, n.owner_epoch);
    (old, new, n.owner_epoch)
}

/// Taking `id` as another replica's spawn takes a worker from the shared
/// idle pool: a claim of the hot-idle row for `to`.
async fn taken_from_the_idle_pool(w: &Harness, id: &str, epoch: u64, by: crate::ids::InstanceId) {
    let claim = StoreRequest::ClaimWorker {
        id: id.into(),
        owner: A,
        epoch,
        from: Some(WorkerState::HotIdle),
        to: None,
        new_owner: by,
        fence: None,
        floor: None,
    };
    assert!(matches!(w.inner.call(claim).await, Ok(StoreReply::Worker(WorkerCas::Applied(_)))));
}

/// docs/design.md §2.4: the janitor's idle pass decides on the view listed
/// when it began, which at fleet scale is seconds old by the time it
/// reaches a worker (fleet-scale seed 855: about 5 s at 229 replicas). The
/// view shows A's two idle workers, so the older is beyond A's floor; but
/// the newer is taken before the janitor's claim of the older lands, and
/// the older is then A's floor. The claim names the floor and the store
/// refuses it. Untaken, the same pass drains the older worker.
#[madsim::test]
async fn janitor_claim_is_judged_against_the_floor_as_it_is_when_it_lands() {
    for taken in [true, false] {
        let w = Harness::new();
        let c = FleetConfig { min_hot_idle: 1, ..cfg() };
        let pool = w.pool(A, &c, Mutants::none());
        let (old, new, epoch) = two_idle_workers(&w, &pool).await;
        let (jstore, _jpool, janitor, lease_epoch) = w.janitor_replica(&c).await;
        w.at(c.hot_idle_ttl_ms + 2_000).await;
        w.beat(A).await;
        w.beat(J).await;
        // The view's worker list is read, then its slot list takes 500 ms.
        jstore.slow_replies(500, is_op("list_slots"));
        let pass = spawn_janitor_pass(&janitor, lease_epoch);
        w.sleep(100).await;
        assert!(worker_writes(&jstore).is_empty(), "the pass is still reading its view");
        if taken {
            taken_from_the_idle_pool(&w, &new, epoch, B).await;
        }
        pass.await.unwrap();
        assert!(w.log.reap_failures(J).is_empty(), "{:?}", w.log.reap_failures(J));
        let claims: Vec<_> = worker_writes(&jstore).into_iter().filter(|c| c.op() == "claim_worker").collect();
        assert_eq!(claims.len(), 1, "{claims:#?}");
        if taken {
            let r = w.row(&old);
            assert_eq!((r.state, r.owner, r.owner_epoch), (WorkerState::HotIdle, A, epoch), "kept by A's floor: {r:?}");
            assert!(matches!(&claims[0].req, StoreRequest::ClaimWorker { id, floor: Some(_), .. } if *id == old));
            assert!(matches!(
                claims[0].reply(),
                Some(Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::InFloor, .. })))
            ));
            assert!(janitor.unsettled.lock().unwrap().is_empty(), "a refused claim is settled");
        } else {
            assert_gone(&w, &old, WorkerState::Retired);
            assert_eq!(w.row(&new).state, WorkerState::HotIdle, "the floor");
        }
    }
}

/// The same race on the janitor's own workers, which it retires without a
/// claim (a claim would fence its own pool out): its view shows its two
/// idle workers, a peer takes the newer from the shared idle pool before
/// the pass reaches the older, and the older, now its floor, stays. The
/// pass judges its own rows on a fresh read, not on its view.
#[madsim::test]
async fn janitor_judges_its_own_floor_on_its_rows_as_they_are_now() {
    for taken in [true, false] {
        let w = Harness::new();
        let c = FleetConfig { min_hot_idle: 1, ..cfg() };
        let (pool, reapers) = w.pool_and_reapers(&c, Mutants::none());
        let (old, new, epoch) = two_idle_workers(&w, &pool).await;
        let lease_epoch = w.hold_lease(A).await;
        w.at(c.hot_idle_ttl_ms + 2_000).await;
        w.beat(A).await;
        w.beat(B).await;
        w.store.slow_replies(500, is_op("list_slots"));
        let before = worker_writes(&w.store).len();
        let pass = spawn_janitor_pass(&reapers, lease_epoch);
        w.sleep(100).await;
        assert_eq!(worker_writes(&w.store).len(), before, "the pass is still reading its view");
        if taken {
            taken_from_the_idle_pool(&w, &new, epoch, B).await;
        }
        pass.await.unwrap();
        assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
        if taken {
            let r = w.row(&old);
            assert_eq!((r.state, r.owner), (WorkerState::HotIdle, A), "kept by A's floor: {r:?}");
            assert_eq!(w.row(&new).owner, B);
        } else {
            assert_gone(&w, &old, WorkerState::Retired);
            assert_eq!(w.row(&new).state, WorkerState::HotIdle, "the floor");
        }
    }
}
