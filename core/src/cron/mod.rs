//! Cron coordination across replicas, and settings convergence
//! (docs/design.md §2.7, field report 001).
//!
//! Jobs live in the store with a schedule, a status and an owner. Each
//! replica's reconcile loop ([`scheduler`]) claims unowned jobs and those of
//! dead instances least-loaded first ([`assign`]), keeps one timer per job
//! it owns and re-arms it when the job changes. A timer fires a slot only by
//! first committing that slot's fire record, fenced by the job's ownership
//! epoch ([`crate::store::rules::cron`]), so a slot commits at most once
//! however the replicas' clocks and pauses line up; slots that fell due
//! while nobody could fire follow the missed-slot policy ([`policy`]).
//! [`settings`] polls the fleet's settings row so every replica serves a
//! settings change within one poll.

pub mod assign;
pub mod policy;
pub mod schedule;
pub mod scheduler;
pub mod settings;

pub use policy::MissPolicy;
pub use scheduler::Cron;
pub use settings::SettingsCache;

use crate::clock::Millis;
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// What actually runs a fired slot (a job's payload): the seam through
/// which the outside world sees runs start. Core bounds each run by
/// [`CronConfig::run_timeout_ms`] by dropping the future.
pub trait JobRunner: Send + Sync + 'static {
    fn run(&self, job: &str, slot: Millis) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronConfig {
    /// Run the scheduler and the settings poller (off: the replica does
    /// neither).
    pub enabled: bool,
    /// Reconcile every this long: claim, reassign, re-arm (field report 001: 15 s).
    pub reconcile_ms: u64,
    /// A slot found this long after it fell due is missed, and the policy
    /// decides what happens to it.
    pub misfire_after_ms: u64,
    pub policy: MissPolicy,
    /// A run is cut off after this long (field report 001: 5 min).
    pub run_timeout_ms: u64,
    /// Beyond the timeout, how long a run's record keeps its place against
    /// the cap (the finish write's time).
    pub run_grace_ms: u64,
    /// The fleet-wide cap on concurrent runs (0: none).
    pub max_concurrent_runs: u32,
    /// Poll the settings row every this long (field report 001: 30 s).
    pub settings_poll_ms: u64,
}

impl Default for CronConfig {
    fn default() -> Self {
        CronConfig {
            enabled: false,
            reconcile_ms: 15_000,
            misfire_after_ms: 5_000,
            policy: MissPolicy::FireOnce,
            run_timeout_ms: 300_000,
            run_grace_ms: 5_000,
            max_concurrent_runs: 5,
            settings_poll_ms: 30_000,
        }
    }
}

impl CronConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        for (what, v) in [
            ("cron.reconcile_ms", self.reconcile_ms),
            ("cron.run_timeout_ms", self.run_timeout_ms),
            ("cron.settings_poll_ms", self.settings_poll_ms),
        ] {
            if v == 0 {
                return Err(ConfigError(format!("{what} must be positive")));
            }
        }
        if let MissPolicy::CatchUp { limit: 0 } = self.policy {
            return Err(ConfigError("cron.policy catch_up needs a limit of at least 1 (or use skip)".into()));
        }
        if self.run_timeout_ms.checked_add(self.run_grace_ms).is_none() {
            return Err(ConfigError("cron.run_timeout_ms + run_grace_ms overflows".into()));
        }
        Ok(())
    }

    /// How long a run's record holds its place against the cap.
    pub fn hold_ms(&self) -> u64 {
        self.run_timeout_ms.saturating_add(self.run_grace_ms)
    }

    /// The cap the store checks (`None`: no cap).
    pub fn cap(&self) -> Option<u32> {
        (self.max_concurrent_runs > 0).then_some(self.max_concurrent_runs)
    }
}
