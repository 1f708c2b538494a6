//! The coordinator's graceful shutdown: loops stop before the release (and
//! the ReleaseBeforeCancel mutant inverts it); a lease won unseen, a
//! standby's and a failed release are each handled on the way out.

use crate::testkit::lease::*;
use crate::testkit::*;
use crate::mutants::{Mutant, Mutants};
use crate::observe::CoreEvent;
use crate::store::{CasResult, Reject, StoreReply};

/// Leads with loops that take 2 s to exit once cancelled, then shuts down at
/// 6 s. Returns the harness for the caller's assertions.
async fn shutdown_with_slow_loops(mutants: Mutants) -> Harness {
    let w = Harness::new();
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

/// Shut down while the store names this instance only through an acquire
/// whose reply was lost: the contend phase gives the lease back on the way
/// out, so failover does not wait for the TTL.
#[madsim::test]
async fn shutdown_while_contending_releases_a_lease_won_unseen() {
    let w = Harness::new();
    let store = w.client();
    store.lose_next(1, is_op("acquire_lease"));
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
    let w = Harness::new();
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

/// After a deadline step-down whose release could not reach the store, a
/// graceful shutdown during the wait before contending again still gives the
/// lease back (it does not leave failover to the TTL).
#[madsim::test]
async fn shutdown_after_failed_release_still_releases() {
    let w = Harness::new();
    let a = w.spawn(A, Mutants::none(), 500);
    w.at(7_000).await;
    a.store.partition();
    // Deadline at 15 s, loops out at 15.5 s, release times out at 17.5 s.
    w.at(18_000).await;
    assert!(reason_of(&w.log.first(A, is_stepped_down)).contains("Deadline"));
    assert!(w.log.of(A).iter().any(|e| is_release_failed(&e.ev)));
    let rec = w.record().unwrap();
    assert_eq!(rec.holder, Some(A));
    let expires = rec.expires_at;
    a.store.heal();
    w.at(18_500).await;
    assert!(a.store.calls().iter().all(|c| c.at < 18_000), "still in the post-step-down wait");
    a.shutdown().await;
    assert!(w.now() < expires);
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (None, 1), "released before the TTL ran out");
    assert!(matches!(w.log.first(A, is_released).ev, CoreEvent::LeaseReleased { epoch: 1 }));
}
