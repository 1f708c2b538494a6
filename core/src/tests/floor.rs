//! The floor (`min_hot_idle`): both reapers keep the newest idle workers.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::clock::Millis;
use crate::config::FleetConfig;
use crate::mutants::Mutants;
use crate::worker::{Gate, WorkerState};

/// Three workers of `pool` parked at 0 s, 1 s and 2 s.
async fn three_idle_workers(w: &Harness, pool: &TPool) -> Vec<String> {
    let mut out = Vec::new();
    for s in 1..=3u64 {
        out.push(pool.acquire("org", s).await.unwrap());
    }
    for s in 1..=3u64 {
        w.at((s - 1) * 1_000).await;
        pool.release(s).await.unwrap();
    }
    let idle: Vec<Millis> = out.iter().map(|id| w.row(id).idle_since).collect();
    assert!(idle[0] < idle[1] && idle[1] < idle[2], "{idle:?}");
    out
}

#[madsim::test]
async fn fallback_reaper_keeps_the_newest_idle_worker_as_the_floor() {
    let w = Harness::new();
    let c = FleetConfig { min_hot_idle: 1, ..cfg() };
    let (pool, reapers) = w.pool_and_reapers(&c, Mutants::none());
    let ids = three_idle_workers(&w, &pool).await;
    w.at(90_000).await;
    w.beat(A).await;
    reapers.fallback_pass().await;
    assert_gone(&w, &ids[0], WorkerState::Retired);
    assert_gone(&w, &ids[1], WorkerState::Retired);
    let newest = w.row(&ids[2]);
    assert_eq!(newest.state, WorkerState::HotIdle, "the floor keeps the newest");
    assert!(w.has_pod(&newest.pod));
    assert_eq!(w.slots(), vec![ids[2].clone()]);
    // A second pass changes nothing.
    reapers.fallback_pass().await;
    assert_eq!(w.row(&ids[2]).state, WorkerState::HotIdle);
}

#[madsim::test]
async fn janitor_keeps_the_newest_idle_worker_as_the_floor() {
    let w = Harness::new();
    let c = FleetConfig { min_hot_idle: 1, ..cfg() };
    let (pool, reapers) = w.pool_and_reapers(&c, Mutants::none());
    let epoch = w.hold_lease(A).await;
    let ids = three_idle_workers(&w, &pool).await;
    w.at(90_000).await;
    w.beat(A).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert_gone(&w, &ids[0], WorkerState::Retired);
    assert_gone(&w, &ids[1], WorkerState::Retired);
    assert_eq!(w.row(&ids[2]).state, WorkerState::HotIdle);
}
