//! Slots: a take-over whose slot free failed (or whose write to lost
//! failed first) leaves a slot held; later passes free it.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::config::FleetConfig;
use crate::mutants::Mutants;
use crate::store::StoreRequest;
use crate::worker::{Gate, WorkerState};

/// A dead instance's busy worker: the reaper's write to lost (the claim
/// itself, which moves the row to lost in the same CAS) fails, and the row
/// is left as it was; the next claim lands, but freeing the slot after it
/// fails, so the row is lost under a live instance with its slot held.
/// Later passes must still finish the job.
#[madsim::test]
async fn a_dead_owners_worker_is_reaped_after_a_failed_lost_write() {
    let w = Harness::new();
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
