//! Parking (hot -> hot-idle at session end): a failed park leaves the
//! worker hot and reusable (and the MutateBeforePersist mutant strands it),
//! and a park that landed unseen is adopted (field report 002).

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::mutants::{Mutant, Mutants};
use crate::worker::pool::WRITE_TRIES;
use crate::worker::WorkerState;

#[madsim::test]
async fn failed_park_leaves_the_worker_hot_and_reusable() {
    let w = Harness::new();
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
    assert_eq!(w.store.calls().iter().filter(|c| is_park(&c.req) && c.reply().is_none()).count(), 2 * WRITE_TRIES as usize);
    pool.maintain().await;
    let r = w.row(&id);
    assert_eq!((r.state, r.session), (WorkerState::HotIdle, None));
    assert_eq!(owned(&pool, &id), Some((WorkerState::HotIdle, r.owner_epoch, None)));
}

#[madsim::test]
async fn mutant_mutate_before_persist_strands_the_worker() {
    let w = Harness::new();
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

/// A park commits with its reply lost, its retries fail: memory says hot,
/// the row hot-idle. The next maintain (which refreshes the epoch) brings
/// memory to the row; the worker then ages out and is retired as usual.
#[madsim::test]
async fn pool_adopts_a_park_that_landed_unseen() {
    let w = Harness::new();
    let c = cfg();
    let (pool, reapers) = w.pool_and_reapers(&c, Mutants::none());
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
