//! Every mutant (a field-report bug put back into core) is caught by the
//! default sweep of its home scenario within 200 seeds, and the invariant
//! that catches it is the one the bug breaks.

mod common;

use haywire_core::Mutant;
use haywire_sim::sweep::sweep;
use haywire_sim::RunConfig;

const BUDGET: u64 = 200;

fn caught(m: Mutant, expected: &[&str]) {
    let home = haywire_scenarios::home_of(m);
    let cfg = RunConfig { mutant: Some(m), store: None };
    let res = sweep(home, 0..BUDGET, &cfg, common::jobs(), true);
    let f = res
        .first_failure()
        .unwrap_or_else(|| panic!("mutant {m} not caught in {} within {BUDGET} seeds", home.name));
    let v = f.violation.as_ref().expect("a failure has a violation");
    assert!(
        expected.contains(&v.invariant),
        "mutant {m} caught at seed {} by {} ({}), expected one of {expected:?}",
        f.seed,
        v.invariant,
        v.message
    );
    let report = f.report.as_deref().unwrap_or("");
    assert!(report.contains(&format!("--seed {} --mutant {m}", f.seed)), "report names the replay command:\n{report}");
}

#[test]
fn elector_runs_once_is_caught() {
    caught(Mutant::ElectorRunsOnce, &["L1"]);
}

#[test]
fn release_before_cancel_is_caught() {
    caught(Mutant::ReleaseBeforeCancel, &["S2"]);
}

#[test]
fn shutdown_no_wait_is_caught() {
    caught(Mutant::ShutdownNoWait, &["L1"]);
}

#[test]
fn no_fallback_reaper_is_caught() {
    caught(Mutant::NoFallbackReaper, &["L2"]);
}

#[test]
fn mutate_before_persist_is_caught() {
    // The stranded worker leaks (L2), or, memory saying hot_idle while the
    // row is still hot, is handed out against a row bound to no session (S6).
    caught(Mutant::MutateBeforePersist, &["L2", "S6"]);
}

#[test]
fn activate_split_is_caught() {
    // The served worker's row stays activating: the client starts on a row
    // the store does not hold hot for it (S6), a reaper ends it under its
    // live session (S5), or it is stranded past its TTL (L2).
    caught(Mutant::ActivateSplit, &["S6", "S5", "L2"]);
}

#[test]
fn slot_leak_on_spawn_failure_is_caught() {
    caught(Mutant::SlotLeakOnSpawnFailure, &["L2"]);
}

#[test]
fn torn_epoch_read_is_caught() {
    caught(Mutant::TornEpochRead, &["L2"]);
}

#[test]
fn no_secret_reaper_is_caught() {
    caught(Mutant::NoSecretReaper, &["L2"]);
}

#[test]
fn orphans_not_reaped_by_fallback_is_caught() {
    caught(Mutant::OrphansNotReapedByFallback, &["L2"]);
}

#[test]
fn reaper_kills_live_activation_is_caught() {
    caught(Mutant::ReaperKillsLiveActivation, &["S5"]);
}

#[test]
fn janitor_stops_at_first_error_is_caught() {
    // A pod the cluster will not delete fails the orphan-pod pass on every
    // run; the passes after it (orphan secrets, slots) never run, so an
    // orphan secret outlives its deadline.
    caught(Mutant::JanitorStopsAtFirstError, &["L2"]);
}

#[test]
fn no_health_check_is_caught() {
    // A client holds a worker whose pod died and is never told (L3), or a
    // new session gets the dead worker (S5).
    caught(Mutant::NoHealthCheck, &["L3", "S5"]);
}

#[test]
fn zombie_instance_is_caught() {
    // Held dead but never fenced: the fleet takes over its workers while
    // its clients still hold them (S5), or its heartbeat revives the dead
    // instance (I2).
    caught(Mutant::ZombieInstance, &["S5", "I2"]);
}

#[test]
fn headroom_counts_idle_is_caught() {
    // Placeholders sized as 0.75 x (hot + hot-idle rows) leave the
    // configured constant as soon as there is demand.
    caught(Mutant::HeadroomCountsIdle, &["H1"]);
}

#[test]
fn secret_reaper_unscoped_is_caught() {
    // Keyed on the cluster's pod list alone, it keeps the secret of a
    // worker whose pod the cluster will not delete, long after its row
    // ended (and may reap a peer's secret whose pod is not listed yet).
    caught(Mutant::SecretReaperUnscoped, &["L2", "S5"]);
}

#[test]
fn shared_reaper_deadline_is_caught() {
    // A pod list slower than the orphan-pass deadline starves the secret
    // pass that shares it, and a dead owner's orphan secret outlives its
    // deadline while secret calls are calm.
    caught(Mutant::SharedReaperDeadline, &["L2"]);
}

#[test]
fn every_mutant_has_a_test() {
    let src = include_str!("mutants.rs");
    for m in Mutant::ALL {
        assert!(src.contains(&format!("caught(Mutant::{m:?}")), "mutant {m} has no detection test");
    }
}
