//! Races between a reaper and the owner (field report 004): a reuse,
//! a park or a release that lands between a reaper's view and its claim,
//! or inside the window of a slow claim reply (and the TornEpochRead
//! mutant). The lease's own CAS race is in `lease/election.rs`.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::mutants::{Mutant, Mutants};
use crate::store::{StoreReply, StoreRequest, WorkerCas, WorkerReject};
use std::sync::Arc;
use crate::worker::{Gate, WorkerState};

/// The janitor lists an idle worker as expired; before it claims it, the
/// owner reuses it for a new session (a reuse does not bump the owner
/// epoch). The janitor must not drain a worker that is serving a session.
/// The race: A's worker expires idle; J's janitor pass starts, with the
/// reply to `slow_op` (one of the lists of its view) held back 500 ms; in
/// that window A reuses the worker for session 2. Returns after the pass.
async fn janitor_pass_racing_a_reuse(slow_op: &'static str) -> (Harness, Arc<TPool>, Arc<FaultyStore>, Arc<TReapers>, String) {
    let w = Harness::new();
    let c = cfg();
    let IdleUnderJanitor { pool, id, jstore, janitor, epoch, .. } = w.idle_worker_under_janitor(&c).await;
    jstore.slow_replies(500, is_op(slow_op));

    w.past_idle_ttl(&c).await;
    let pass = spawn_janitor_pass(&janitor, epoch);
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
                        c.reply(),
                        Some(Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::WrongState, .. })))
                    ),
                    "{:?}",
                    c.reply()
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

/// `maintain()` refreshes the epoch of a busy worker; its claim's reply is
/// slow (committed at once, answered 400 ms later). The session ends at
/// 200 ms, inside that window. Returns the harness, the pool and the worker.
async fn release_during_maintain(mutants: Mutants) -> (Harness, Arc<TPool>, String) {
    let w = Harness::new();
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
        c.reply(),
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

/// The janitor's health pass finds B's hot worker's pod failed, but before
/// its claim lands B parks the worker (hot -> hot-idle): the claim, naming
/// hot, is refused. That pass must leave the live worker alone: row, slot,
/// pod and secret, and no unsettled take-over. The next pass claims the
/// hot-idle row and marks it lost.
#[madsim::test]
async fn janitor_health_pass_that_loses_its_claim_frees_nothing() {
    let w = Harness::new();
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
    let pass = spawn_janitor_pass(&janitor, epoch);
    w.sleep(250).await;
    peer.release(1).await.unwrap();
    pass.await.unwrap();

    let claims: Vec<Call> = jstore.calls().into_iter().filter(|c| c.req.op() == "claim_worker").collect();
    assert_eq!(claims.len(), 1, "{claims:#?}");
    assert!(
        matches!(&claims[0].reply(), Some(Ok(StoreReply::Worker(WorkerCas::Rejected { .. })))),
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
