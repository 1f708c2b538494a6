//! Unsettled take-overs: a claim that committed with its reply lost leaves
//! a row this instance owns but its pool does not hold; the fallback pass
//! settles it, even when a janitor's claim races it.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::mutants::Mutants;
use crate::store::{StoreReply, StoreRequest, WorkerCas, WorkerReject};
use crate::worker::{Gate, WorkerState};

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

/// The janitor (another replica) claims an expired idle worker, to draining
/// in the same CAS; the reply is lost. The row is J's, draining, with its
/// objects, and J's pool does not hold it (so neither J's pool nor its
/// janitor's own-worker path retires it). J's fallback pass finishes it;
/// A's stale memory is fenced out.
#[madsim::test]
async fn fallback_finishes_a_janitor_take_over_whose_claim_reply_was_lost() {
    let w = Harness::new();
    let c = cfg();
    let IdleUnderJanitor { pool, id, jstore, jpool, janitor, epoch } = w.idle_worker_under_janitor(&c).await;
    jstore.rule(Some(1), Action::SlowReply(c.call_timeout_ms + 500), is_op("claim_worker"));

    w.past_idle_ttl(&c).await;
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
    let w = Harness::new();
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
    let jan = spawn_janitor_pass(&reapers_b, epoch);
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
    assert!(matches!(claims[0].reply(), Some(Ok(StoreReply::Worker(WorkerCas::Applied(_))))), "{claims:#?}");
    // The janitor's: the stuck pass, fenced, at the epoch it listed.
    assert!(
        matches!(&claims[1].req, StoreRequest::ClaimWorker { owner: B, epoch: 2, from: Some(WorkerState::Draining), fence: Some(_), .. }),
        "{claims:#?}"
    );
    match &claims[1].reply() {
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
