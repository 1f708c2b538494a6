//! Stepping down while leading: at the renew deadline when partitioned
//! from the store (loops out before the lease can expire), and at once when
//! fenced out by another holder.

use crate::testkit::lease::*;
use crate::testkit::*;
use crate::mutants::Mutants;
use crate::observe::CoreEvent;
use crate::clock::Clock;
use crate::store::{CasResult, StoreBackend, StoreReply};

/// Partitioned from the store after its first renew, the holder steps down
/// at the renew deadline and its loops have exited strictly before the lease
/// the store last granted it can expire.
#[madsim::test]
async fn partitioned_holder_steps_down_before_lease_expires() {
    let w = Harness::new();
    let a = w.spawn(A, Mutants::none(), 2_000);
    w.at(7_000).await;
    assert_eq!(w.log.renewed_at(A).len(), 1);
    a.store.partition();
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
    let w = Harness::new();
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
