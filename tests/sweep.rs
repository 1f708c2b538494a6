//! The unmodified core passes every seed of every scenario.
//!
//! By default 1,000 seeds per lease scenario and `FLEET_SEEDS` per fleet
//! scenario, `CRON_SEEDS` per cron scenario (a fleet seed runs clients,
//! pods and reapers for minutes of
//! simulated time, so it costs several lease seeds; the CLI sweep covers
//! 1,000+ of each, see the README). `HAYWIRE_SEEDS=20000` (or a range such as
//! `HAYWIRE_SEEDS=5000..10000`) sets the sweep of every scenario. A failure
//! prints the seed, the events leading to it and the command replaying it.

mod common;

use haywire_sim::sweep::sweep;
use haywire_sim::RunConfig;

/// Default seeds per fleet scenario in `cargo test`.
const FLEET_SEEDS: u64 = 150;
/// Default seeds per cron scenario: each simulates a few minutes of jobs,
/// runs and settings reads.
const CRON_SEEDS: u64 = 100;
/// `fleet-scale` simulates fleets of up to 300 replicas and 2,000 clients
/// for up to an hour per seed: a handful by default (the CLI sweep and
/// `HAYWIRE_SEEDS` run more).
const FLEET_SCALE_SEEDS: u64 = 4;
/// `long-activation` simulates up to ten minutes of minute-long pod starts
/// per seed (about ten times a typical fleet seed): fewer by default.
const LONG_ACTIVATION_SEEDS: u64 = 60;

fn sweep_scenario(name: &str) {
    let scenario = haywire_scenarios::by_name(name).expect("scenario exists");
    let default = match (name, scenario.fleet) {
        ("long-activation", _) => LONG_ACTIVATION_SEEDS,
        ("fleet-scale", _) => FLEET_SCALE_SEEDS,
        (n, _) if n.starts_with("cron-") => CRON_SEEDS,
        (_, true) => FLEET_SEEDS,
        (_, false) => 1000,
    };
    let seeds = common::sweep_seeds(default);
    let res = sweep(scenario, seeds.clone(), &RunConfig::default(), common::jobs(), true);
    assert!(res.errors.is_empty(), "worlds that could not be built: {:?}", res.errors);
    if let Some(f) = res.first_failure() {
        panic!("{name}: seed {} failed\n{}", f.seed, f.report.as_deref().unwrap_or(""));
    }
    assert_eq!(res.seeds.len() as u128, haywire_sim::sweep::seeds_in(&seeds), "every seed ran");
}

#[test]
fn steady() {
    sweep_scenario("steady");
}

#[test]
fn leader_crash() {
    sweep_scenario("leader-crash");
}

#[test]
fn graceful_failover() {
    sweep_scenario("graceful-failover");
}

#[test]
fn renewal_blip() {
    sweep_scenario("renewal-blip");
}

#[test]
fn store_faults() {
    sweep_scenario("store-faults");
}

#[test]
fn rolling_deploy() {
    sweep_scenario("rolling-deploy");
}

#[test]
fn pause_and_skew() {
    sweep_scenario("pause-and-skew");
}

#[test]
fn chaos() {
    sweep_scenario("chaos");
}

#[test]
fn idle_churn() {
    sweep_scenario("idle-churn");
}

#[test]
fn owner_crash() {
    sweep_scenario("owner-crash");
}

#[test]
fn spawn_faults() {
    sweep_scenario("spawn-faults");
}

#[test]
fn persist_faults() {
    sweep_scenario("persist-faults");
}

#[test]
fn rollout_orphans() {
    sweep_scenario("rollout-orphans");
}

#[test]
fn long_activation() {
    sweep_scenario("long-activation");
}

#[test]
fn scale_up_down() {
    sweep_scenario("scale-up-down");
}

#[test]
fn cluster_partition() {
    sweep_scenario("cluster-partition");
}

#[test]
fn false_death() {
    sweep_scenario("false-death");
}

#[test]
fn slow_cluster_lists() {
    sweep_scenario("slow-cluster-lists");
}

#[test]
fn shared_pool() {
    sweep_scenario("shared-pool");
}

#[test]
fn reconnect_storm() {
    sweep_scenario("reconnect-storm");
}

#[test]
fn fleet_scale() {
    sweep_scenario("fleet-scale");
}

#[test]
fn every_scenario_has_a_sweep_test() {
    let src = include_str!("sweep.rs");
    for name in haywire_scenarios::names() {
        assert!(src.contains(&format!("sweep_scenario(\"{name}\")")), "scenario {name} is not swept");
    }
}

#[test]
fn cron_failover() {
    sweep_scenario("cron-failover");
}

#[test]
fn cron_scale() {
    sweep_scenario("cron-scale");
}

#[test]
fn cron_skew() {
    sweep_scenario("cron-skew");
}

#[test]
fn cron_edits() {
    sweep_scenario("cron-edits");
}
