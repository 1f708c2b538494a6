//! Writes that commit with their reply lost: the coordinator discovers a
//! lost acquire on its next attempt and adopts a lost renew, without an
//! epoch bump or a step-down.

use crate::testkit::lease::*;
use crate::testkit::*;
use crate::mutants::Mutants;
use crate::store::{CasResult, Reject, StoreReply, StoreRequest};

/// The first acquire commits but its reply is lost. On the next attempt the
/// coordinator reads itself as holder, confirms with a renew and leads at
/// epoch 1: no second acquire, no epoch bump.
#[madsim::test]
async fn lost_acquire_reply_is_discovered_on_next_attempt() {
    let w = Harness::new();
    let store = w.client();
    store.lose_next(1, is_op("acquire_lease"));
    let a = w.spawn_on(A, store, Mutants::none(), 0);
    w.at(1_000).await;
    assert!(w.log.acquired(A).is_empty(), "must not lead on an unconfirmed acquire");
    assert!(!a.is_leader());
    assert_eq!(w.record().unwrap().holder, Some(A), "yet the store names it");
    w.at(30_000).await;

    assert_eq!(w.log.acquired(A), vec![1]);
    let acq = w.log.first(A, is_acquired);
    let retry = cfg().retry_period_ms;
    assert!((retry..retry + 10).contains(&acq.at), "acquired at {}", acq.at);

    let calls = a.store.calls();
    let acquires: Vec<&Call> = calls.iter().filter(|c| c.op() == "acquire_lease").collect();
    assert_eq!(acquires.len(), 1, "{calls:#?}");
    assert!(matches!(acquires[0].outcome, Outcome::Lost(Ok(StoreReply::Cas(CasResult::Applied(_))))));
    // The confirming call is a renew of the version the lost acquire wrote.
    let confirm = calls.iter().find(|c| c.op() == "renew_lease").unwrap();
    assert!(matches!(confirm.req, StoreRequest::RenewLease { expected_version: 1, .. }), "{confirm:?}");
    assert!(confirm.at >= retry && confirm.at < acq.at + 1);

    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 1));
    assert!(w.log.stepped_down(A).is_empty());
    assert_eq!(w.log.renewed_at(A).len(), 5, "renews every interval from the confirmation on");
    assert!(a.is_leader());
    a.shutdown().await;
}

/// A renew commits but its reply is lost. The retry is rejected as
/// StaleVersion naming this holder at this epoch; the coordinator adopts the
/// version and keeps leading.
#[madsim::test]
async fn lost_renew_reply_keeps_leading() {
    let w = Harness::new();
    let store = w.client();
    store.lose_next(1, is_op("renew_lease"));
    let a = w.spawn_on(A, store, Mutants::none(), 0);
    w.at(30_000).await;

    assert_eq!(w.log.acquired(A), vec![1]);
    assert!(w.log.stepped_down(A).is_empty(), "{:#?}", w.log.of(A));
    assert!(a.is_leader());
    assert!(w.work.of(A).iter().all(|(_, e)| *e == WorkEv::Started(1)), "loops never cancelled");

    let renews: Vec<Call> = a.store.calls().into_iter().filter(|c| c.op() == "renew_lease").collect();
    // 5 s: committed, reply lost.
    assert!(matches!(renews[0].outcome, Outcome::Lost(Ok(StoreReply::Cas(CasResult::Applied(_))))));
    // A retry period later, at the old version: StaleVersion, still ours.
    match &renews[1].outcome {
        Outcome::Replied(Ok(StoreReply::Cas(CasResult::Rejected {
            reason: Reject::StaleVersion,
            current: Some(cur),
        }))) => {
            assert_eq!((cur.holder, cur.epoch, cur.version), (Some(A), 1, 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(renews[1].req, StoreRequest::RenewLease { expected_version: 1, .. }));
    // At once, at the current version: applied.
    assert!(matches!(renews[2].req, StoreRequest::RenewLease { expected_version: 2, .. }));
    assert!(matches!(renews[2].outcome, Outcome::Replied(Ok(StoreReply::Cas(CasResult::Applied(_))))));
    assert!(renews[2].at - renews[1].at <= 1);
    assert!(renews[1].at < cfg().renew_deadline_ms, "recovered well before the deadline");

    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 1));
    a.shutdown().await;
}
