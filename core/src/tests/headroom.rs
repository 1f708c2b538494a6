//! Headroom: the janitor keeps exactly `headroom_nodes` placeholder pods,
//! which are no workers (and the HeadroomCountsIdle mutant sizes them from
//! demand) (field report 002 fix 6).

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::config::FleetConfig;
use crate::mutants::{Mutant, Mutants};
use crate::worker::headroom::{placeholder_name, placeholder_selector};
use crate::worker::pool::deployment_selector;
use crate::worker::{Gate, PoolError, WorkerState};

fn names(deployment: &str, n: std::ops::Range<u32>) -> Vec<String> {
    n.map(|i| placeholder_name(deployment, i)).collect()
}

/// With `headroom_nodes = N` the janitor keeps exactly N placeholders, makes
/// no churn on later passes, grows and shrinks with N, and 0 deletes them
/// all. Placeholders are no workers: no row, no slot, no capacity, and the
/// orphan-pod pass never deletes one however old.
#[madsim::test]
async fn headroom_keeps_exactly_the_configured_placeholders() {
    let w = Harness::new();
    let dep = cfg().deployment;
    let with = |n: u32| FleetConfig { headroom_nodes: n, global_cap: 2, ..cfg() };
    let pool = w.pool(A, &with(3), Mutants::none());
    let epoch = w.hold_lease(A).await;
    w.beat(A).await;
    let pass = |n: u32| {
        let r = w.reapers(&pool, w.store.clone(), &with(n), Mutants::none());
        async move { r.janitor_pass(&Gate::none(), epoch).await }
    };

    pass(3).await;
    assert_eq!(w.placeholders(), names(&dep, 0..3));
    let now = w.now();
    for p in w.cluster.with(|c| c.pods(now)) {
        assert_eq!(p.labels, placeholder_selector(&dep), "{p:?}");
    }
    assert!(w.rows().is_empty() && w.slots().is_empty(), "placeholders are no workers");

    // They take no capacity: the whole global cap (2) is still there.
    let a = pool.acquire("org", 1).await.expect("first within the cap");
    let b = pool.acquire("org", 2).await.expect("second within the cap");
    assert_eq!(pool.acquire("org", 3).await, Err(PoolError::AtCapacity("fleet".into())), "the cap is 2 workers, placeholders aside");
    let mut held = w.slots();
    held.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(held, want);

    // An orphan pod next to them, and time past the orphan age: the orphan
    // pod pass deletes the orphan only; no placeholder churn.
    w.create_pod("pod-orphan", deployment_selector(&dep));
    w.at(cfg().orphan_min_age_ms + 5_000).await;
    w.beat(A).await;
    let from = w.cluster.calls().len();
    pass(3).await;
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    assert!(!w.has_pod("pod-orphan"), "the orphan pass ran");
    assert_eq!(w.pod_writes(from, false), vec!["pod-orphan".to_string()], "no placeholder deleted");
    assert!(w.pod_writes(from, true).is_empty(), "none created again");
    assert_eq!(w.placeholders(), names(&dep, 0..3));
    assert!(w.has_pod(&w.row(&a).pod) && w.has_pod(&w.row(&b).pod));

    // Grows: only the new ones are created.
    let from = w.cluster.calls().len();
    pass(5).await;
    assert_eq!(w.placeholders(), names(&dep, 0..5));
    assert_eq!(w.pod_writes(from, true), names(&dep, 3..5));
    assert!(w.pod_writes(from, false).is_empty());

    // Shrinks: the extras are deleted.
    let from = w.cluster.calls().len();
    pass(2).await;
    assert_eq!(w.placeholders(), names(&dep, 0..2));
    assert_eq!(w.pod_writes(from, false), names(&dep, 2..5));
    assert!(w.pod_writes(from, true).is_empty());

    // 0 deletes every one; worker pods stay.
    pass(0).await;
    assert!(w.placeholders().is_empty(), "{:?}", w.placeholders());
    assert!(w.has_pod(&w.row(&a).pod) && w.has_pod(&w.row(&b).pod));
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
}

/// One busy worker and two hot-idle ones, `headroom_nodes = 1`: the fixed
/// janitor keeps 1 placeholder; the pre-fix rule sizes it from demand
/// counting the idle rows, ceil(0.75 x 3) = 3, and grows with an idle leak.
#[madsim::test]
async fn headroom_is_a_constant_and_the_mutant_follows_idle_demand() {
    for (mutants, want) in [(Mutants::none(), [1, 1]), (Mutants::only(Mutant::HeadroomCountsIdle), [3, 4])] {
        let w = Harness::new();
        let c = FleetConfig { headroom_nodes: 1, hot_idle_ttl_ms: DAY, ..cfg() };
        let (pool, reapers) = w.pool_and_reapers(&c, mutants.clone());
        let epoch = w.hold_lease(A).await;
        w.beat(A).await;
        for s in 1..=3 {
            pool.acquire("org", s).await.expect("acquire");
        }
        pool.release(2).await.unwrap();
        pool.release(3).await.unwrap();
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert_eq!(w.placeholders().len(), want[0], "{mutants:?}: {:?}", w.placeholders());
        // An idle leak: two more hot-idle workers (sessions 4 and 5 reuse
        // the two idle ones, 6 and 7 spawn two more; all four park), so
        // demand is 1 hot + 4 hot-idle = 5, and ceil(0.75 x 5) = 4.
        for s in 4..=7 {
            pool.acquire("org", s).await.expect("acquire");
        }
        for s in 4..=7 {
            pool.release(s).await.unwrap();
        }
        let idle = w.rows().iter().filter(|r| r.state == WorkerState::HotIdle).count();
        assert_eq!(idle, 4, "{:#?}", w.rows());
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert_eq!(w.placeholders().len(), want[1], "{mutants:?}: {:?}", w.placeholders());
        assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    }
}
