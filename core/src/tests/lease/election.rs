//! Electing a leader: a lone coordinator acquires and renews; contenders
//! racing for the CAS get exactly one leader; a coordinator that lost the
//! lease contends again (and the ElectorRunsOnce mutant does not); a
//! standby whose writes fail keeps retrying.

use crate::testkit::lease::*;
use crate::testkit::*;
use crate::mutants::{Mutant, Mutants};
use crate::observe::CoreEvent;
use crate::store::StoreRequest;

/// A lone coordinator takes the free lease at epoch 1, starts its loops only
/// after LeaseAcquired, and renews every renew interval on the dot.
#[madsim::test]
async fn single_coordinator_acquires_free_lease_and_renews_every_interval() {
    let w = Harness::new();
    let a = w.spawn(A, Mutants::none(), 0);
    w.at(32_500).await;

    assert_eq!(w.log.acquired(A), vec![1]);
    let acq = w.log.first(A, is_acquired);
    assert!(acq.at < 10, "acquired at {}ms, expected at once", acq.at);
    let started = w.log.index(A, |e| matches!(e, CoreEvent::LoopStarted { name: "work", epoch: 1 }));
    assert!(w.log.index(A, is_acquired) < started, "loops must start after LeaseAcquired");
    assert_eq!(w.work.of(A).iter().map(|(_, e)| *e).collect::<Vec<_>>(), vec![WorkEv::Started(1)]);
    assert!(a.is_leader());

    // Renews at 5 s, 10 s, ..., 30 s: every renew interval, no sooner, no
    // later (sub-millisecond scheduling noise aside).
    let renews = w.log.renewed_at(A);
    assert_eq!(renews.len(), 6, "renews at {renews:?}");
    let interval = cfg().renew_interval_ms;
    let mut prev = acq.at;
    for t in &renews {
        assert!((interval..=interval + 2).contains(&(t - prev)), "renews at {renews:?} (acquired at {prev})");
        prev = *t;
    }
    assert!(w.log.stepped_down(A).is_empty());

    // The store agrees: one acquire, six renews, expiry TTL after the last.
    assert_eq!(a.store.reached("acquire_lease").len(), 1);
    assert_eq!(a.store.reached("renew_lease").len(), 6);
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch, rec.version), (Some(A), 1, 7));
    let last = *renews.last().unwrap();
    assert!((last + cfg().ttl_ms..=last + cfg().ttl_ms + 1).contains(&rec.expires_at), "{rec:?}");

    a.shutdown().await;
}

/// Three coordinators starting at the same instant: the CAS lets exactly one
/// win, once, and nobody else ever believes it leads.
#[madsim::test]
async fn three_contenders_exactly_one_leader() {
    let w = Harness::new();
    let nodes =
        [(A, w.spawn(A, Mutants::none(), 0)), (B, w.spawn(B, Mutants::none(), 0)), (C, w.spawn(C, Mutants::none(), 0))];
    w.at(60_000).await;

    let acquisitions: Vec<Entry> = w.log.all().into_iter().filter(|e| is_acquired(&e.ev)).collect();
    assert_eq!(acquisitions.len(), 1, "{acquisitions:#?}");
    let winner = acquisitions[0].who;
    assert!(matches!(acquisitions[0].ev, CoreEvent::LeaseAcquired { epoch: 1 }));

    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(winner), 1));
    for (who, node) in &nodes {
        assert_eq!(node.is_leader(), *who == winner, "{who}");
        assert!(w.log.stepped_down(*who).is_empty());
        if *who != winner {
            // The losers kept contending all along (every retry period) ...
            assert!(node.store.reached("read_lease").len() >= 25, "{who} stopped contending");
            // ... and never started leader-gated work.
            assert!(w.work.of(*who).is_empty());
            assert!(node.store.reached("renew_lease").is_empty());
        }
    }
    // The winner renewed throughout.
    assert!(w.log.renewed_at(winner).len() >= 11);

    for (_, node) in nodes {
        node.shutdown().await;
    }
}

/// A leads, is partitioned past its TTL while B takes over (epoch 2), heals;
/// B shuts down gracefully at 40 s. Returns the harness after 60 s more.
async fn lose_then_recontend(mutants_a: Mutants) -> (Harness, Node) {
    let w = Harness::new();
    let a = w.spawn(A, mutants_a, 500);
    w.at(1_000).await;
    let b = w.spawn(B, Mutants::none(), 500);
    w.at(7_000).await;
    a.store.partition();
    w.at(30_000).await;
    assert_eq!(w.log.acquired(B), vec![2], "B takes over once A's lease expired");
    assert!(w.log.first(B, is_acquired).at >= 20_000);
    assert!(reason_of(&w.log.first(A, is_stepped_down)).contains("Deadline"));
    a.store.heal();
    w.at(40_000).await;
    assert_eq!(w.log.acquired(A), vec![1], "B still holds it");
    b.shutdown().await;
    assert!(w.log.of(B).iter().any(|e| e.ev == CoreEvent::LeaseReleased { epoch: 2 }));
    w.at(100_000).await;
    (w, a)
}

#[madsim::test]
async fn coordinator_contends_again_after_losing_the_lease() {
    let (w, a) = lose_then_recontend(Mutants::none()).await;
    assert_eq!(w.log.acquired(A), vec![1, 3]);
    let released = w.log.first(B, is_released).at;
    let reacquired = w.log.matching(A, is_acquired)[1].at;
    assert!(reacquired >= released && reacquired <= released + cfg().retry_period_ms + 10);
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (Some(A), 3));
    assert!(a.is_leader());
    a.shutdown().await;
}

/// With ElectorRunsOnce, A never contends again: the lease stays free for a
/// full minute after B let it go.
#[madsim::test]
async fn mutant_elector_runs_once_never_contends_again() {
    let (w, a) = lose_then_recontend(Mutants::only(Mutant::ElectorRunsOnce)).await;
    assert_eq!(w.log.acquired(A), vec![1]);
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch), (None, 2));
    assert!(a.store.calls().iter().all(|c| c.at < 30_000), "A made store calls after healing");
    assert!(!a.is_leader());
    a.shutdown().await;
}

/// Every write fails before commit: the standby never leads, retries every
/// retry period, and acquires at the first attempt after failures stop.
#[madsim::test]
async fn failed_writes_keep_standby_retrying_until_they_stop() {
    let w = Harness::new();
    let store = w.client();
    store.fail_all(StoreRequest::is_write);
    let a = w.spawn_on(A, store, Mutants::none(), 0);
    w.at(20_500).await;

    assert!(w.log.acquired(A).is_empty());
    assert!(!a.is_leader());
    assert_eq!(w.record(), None, "a failed write changes nothing");
    let attempts = a.store.reached("acquire_lease");
    assert_eq!(
        attempts.len(),
        11,
        "attempts at 0, 2, ..., 20 s: {:?}",
        attempts.iter().map(|c| c.at).collect::<Vec<_>>()
    );
    assert!(attempts.iter().all(|c| matches!(c.outcome, Outcome::Failed)));
    let retry = cfg().retry_period_ms;
    for pair in attempts.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!((retry..=retry + 1).contains(&gap), "gap {gap}");
    }

    a.store.heal();
    w.at(25_000).await;
    assert_eq!(w.log.acquired(A), vec![1]);
    let acq = w.log.first(A, is_acquired).at;
    assert!((22_000..22_010).contains(&acq), "acquired at {acq}");
    let rec = w.record().unwrap();
    assert_eq!((rec.holder, rec.epoch, rec.version), (Some(A), 1, 1));
    assert!(a.is_leader());
    a.shutdown().await;
}
