//! haywire-scenarios: the named scenarios.
//!
//! Each scenario is a file: it takes the default world of [`world::base`]
//! and tunes it for one kind of trouble, drawing the fault mix from the seed
//! (swarm testing); [`world::plan`] turns that mix into timed faults.

mod chaos;
mod cluster_partition;
mod cron_edits;
mod cron_failover;
mod cron_scale;
mod cron_skew;
mod false_death;
pub mod fleet_scale;
mod graceful_failover;
mod idle_churn;
mod leader_crash;
mod long_activation;
mod owner_crash;
mod pause_and_skew;
mod persist_faults;
mod reconnect_storm;
mod renewal_blip;
mod rolling_deploy;
mod rollout_orphans;
mod scale_up_down;
mod shared_pool;
mod slow_cluster_lists;
mod spawn_faults;
mod steady;
mod store_faults;
pub mod world;

use haywire_core::Mutant;
use haywire_sim::{FaultPlan, RunOptions, Scenario};
use rand_chacha::ChaCha8Rng;

/// A scenario defined by how it tunes the base world.
pub struct Named {
    pub name: &'static str,
    pub about: &'static str,
    /// Starts from [`world::fleet`] (clients and workers) rather than
    /// [`world::base`] (the lease alone).
    pub fleet: bool,
    pub tune: fn(&mut RunOptions, &mut ChaCha8Rng),
}

impl Scenario for Named {
    fn name(&self) -> &'static str {
        self.name
    }
    fn about(&self) -> &'static str {
        self.about
    }
    fn options(&self, rng: &mut ChaCha8Rng) -> RunOptions {
        let mut opts = if self.fleet { world::fleet(rng) } else { world::base(rng) };
        (self.tune)(&mut opts, rng);
        world::settle_bounds(&mut opts);
        opts
    }
    fn plan(&self, opts: &RunOptions, rng: &mut ChaCha8Rng) -> FaultPlan {
        world::plan(opts, rng)
    }
}

/// Every scenario, in the order `haywire list` shows them.
pub static ALL: [&Named; 25] = [
    &steady::SCENARIO,
    &leader_crash::SCENARIO,
    &graceful_failover::SCENARIO,
    &renewal_blip::SCENARIO,
    &store_faults::SCENARIO,
    &rolling_deploy::SCENARIO,
    &pause_and_skew::SCENARIO,
    &idle_churn::SCENARIO,
    &owner_crash::SCENARIO,
    &spawn_faults::SCENARIO,
    &persist_faults::SCENARIO,
    &rollout_orphans::SCENARIO,
    &long_activation::SCENARIO,
    &scale_up_down::SCENARIO,
    &cluster_partition::SCENARIO,
    &false_death::SCENARIO,
    &slow_cluster_lists::SCENARIO,
    &shared_pool::SCENARIO,
    &reconnect_storm::SCENARIO,
    &fleet_scale::SCENARIO,
    &cron_failover::SCENARIO,
    &cron_scale::SCENARIO,
    &cron_skew::SCENARIO,
    &cron_edits::SCENARIO,
    &chaos::SCENARIO,
];

pub fn by_name(name: &str) -> Option<&'static Named> {
    ALL.iter().copied().find(|s| s.name == name)
}

pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|s| s.name).collect()
}

/// The scenario in which each mutant's bug shows (its sweep must catch
/// it): the one its registry entry names.
pub fn home_of(m: Mutant) -> &'static Named {
    by_name(m.home()).unwrap_or_else(|| panic!("mutant {m}: its home '{}' is no scenario", m.home()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutant_home_names_a_scenario() {
        for m in Mutant::ALL {
            assert!(by_name(m.home()).is_some(), "mutant {m}: home '{}' is no scenario (known: {:?})", m.home(), names());
            assert_eq!(home_of(m).name, m.home());
        }
    }

    /// What a scenario draws, a replayed plan may say: the check that
    /// refuses a hand-edited plan accepts every seed's own.
    #[test]
    fn every_drawn_plan_fits_its_world() {
        for s in ALL {
            for seed in 0..200 {
                let (opts, plan) = haywire_sim::expand(s, seed, &Default::default()).expect("options are valid");
                let problems = plan.problems(&opts);
                assert!(problems.is_empty(), "{} seed {seed}: {problems:#?}", s.name);
            }
        }
    }
}
