//! The upkeep loop runs the fallback reaper every interval, and retires
//! nothing when it is disabled (or under the NoFallbackReaper mutant).

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::config::FleetConfig;
use crate::mutants::{Mutant, Mutants};
use crate::signal as watch;
use crate::worker::WorkerState;

/// Run the upkeep loop (heartbeats on) for ten reap intervals over two idle
/// workers; returns the states of their rows.
async fn upkeep_for_a_while(c: FleetConfig, mutants: Mutants) -> Vec<WorkerState> {
    let w = Harness::new();
    let pool = w.pool(A, &c, mutants.clone());
    let reapers = w.reapers(&pool, w.store.clone(), &c, mutants);
    let beats = w.heartbeats(A, &c);
    let ids = vec![idle_worker(&pool, "org", 1).await, pool.acquire("org", 2).await.unwrap()];
    pool.release(2).await.unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let upkeep = tokio::spawn(reapers.clone().upkeep_loop(stop_rx));
    w.at(10 * c.reap_interval_ms + 500).await;
    stop_tx.send(true).unwrap();
    upkeep.await.unwrap();
    beats.send(true).unwrap();
    // Upkeep ran: maintenance refreshed the epochs of the workers it kept.
    let states: Vec<WorkerState> = ids.iter().map(|id| w.row(id).state).collect();
    for id in &ids {
        let r = w.row(id);
        if r.state == WorkerState::HotIdle {
            assert!(r.owner_epoch >= 10, "maintain ran every interval: {r:?}");
        }
    }
    states
}

#[madsim::test]
async fn upkeep_loop_runs_the_fallback_reaper() {
    assert_eq!(upkeep_for_a_while(cfg(), Mutants::none()).await, vec![WorkerState::Retired; 2]);
}

#[madsim::test]
async fn upkeep_loop_without_fallback_reaper_retires_nothing() {
    let c = FleetConfig { fallback_reaper: false, ..cfg() };
    assert_eq!(upkeep_for_a_while(c, Mutants::none()).await, vec![WorkerState::HotIdle; 2]);
}

#[madsim::test]
async fn mutant_no_fallback_reaper_retires_nothing() {
    assert_eq!(upkeep_for_a_while(cfg(), Mutants::only(Mutant::NoFallbackReaper)).await, vec![WorkerState::HotIdle; 2]);
}
