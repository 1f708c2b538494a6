//! Configuration of a replica, with defaults close to the field reports.

use crate::mutants::Mutants;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The leader lease (docs/design.md §2.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseConfig {
    pub name: String,
    /// How long an acquire or renew keeps the lease, in store time.
    pub ttl_ms: u64,
    /// How often the holder renews.
    pub renew_interval_ms: u64,
    /// If no renew has been confirmed this long after the last confirmed one
    /// was *sent*, the holder steps down. Must leave room before the TTL for
    /// drift, pauses and the loops to exit.
    pub renew_deadline_ms: u64,
    /// How often a non-holder tries to acquire.
    pub retry_period_ms: u64,
    /// Bound on one store call; past it the outcome is unknown.
    pub rpc_timeout_ms: u64,
    /// Bound on how long a release may take during stop.
    pub release_timeout_ms: u64,
    /// Assumed bound on this process's clock drift, in parts per million.
    pub max_drift_ppm: u64,
    /// Assumed bound on a process pause (GC, VM stall) within one TTL.
    pub max_pause_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            name: "reconciler".to_string(),
            ttl_ms: 15_000,
            renew_interval_ms: 5_000,
            renew_deadline_ms: 10_000,
            retry_period_ms: 2_000,
            rpc_timeout_ms: 1_000,
            release_timeout_ms: 2_000,
            max_drift_ppm: 10_000,
            max_pause_ms: 1_000,
        }
    }
}

/// The leader-gated reconciler (stand-in for the field report's watch and
/// reconcile loops): every `interval_ms` it runs a sweep of
/// `effects_per_sweep` fenced effects, `step_ms` apart. Like the field
/// report's sweep, it notices cancellation only between sweeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconcilerConfig {
    pub interval_ms: u64,
    pub effects_per_sweep: u32,
    pub step_ms: u64,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig { interval_ms: 3_000, effects_per_sweep: 3, step_ms: 250 }
    }
}

impl ReconcilerConfig {
    /// Longest a sweep can run once started: this bounds how long stopping
    /// the leader-gated loops can take.
    /// Saturates rather than overflowing on absurd settings.
    pub fn max_sweep_ms(&self, rpc_timeout_ms: u64) -> u64 {
        (self.effects_per_sweep as u64).saturating_mul(self.step_ms.saturating_add(rpc_timeout_ms))
    }
}

/// The worker fleet (docs/design.md §2.2–2.4): instance registry, pool and
/// reapers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetConfig {
    /// Label value that scopes this deployment's pods and secrets.
    pub deployment: String,
    pub heartbeat_ms: u64,
    /// An instance whose heartbeat is older than this is dead.
    pub dead_after_ms: u64,
    /// Capacity: live + spawning workers per org and in all.
    pub org_cap: u32,
    pub global_cap: u32,
    /// A hot-idle worker older than this is retired...
    pub hot_idle_ttl_ms: u64,
    /// ...unless that would leave fewer than this many hot-idle workers.
    pub min_hot_idle: u32,
    pub reap_interval_ms: u64,
    /// An activation (waiting for the pod to run) gives up after this.
    pub activation_timeout_ms: u64,
    /// An activating row not written for this long is stuck (a live
    /// activation heartbeats its row, so only a dead one gets here).
    pub stuck_activating_ms: u64,
    /// How often an activation polls its pod and heartbeats its row.
    pub activation_poll_ms: u64,
    /// A spawning row (or a slot without a row) older than this is stale.
    pub stale_spawn_ms: u64,
    /// Pods and secrets younger than this are never reaped as orphans.
    pub orphan_min_age_ms: u64,
    /// Bound on one store or cluster call.
    pub call_timeout_ms: u64,
    /// Bound on each orphan-object pass (its list and its deletes): the pod
    /// pass and the secret pass each get their own, so a slow list of one
    /// never starves the other (field report 004; docs/design.md §2.4). A list
    /// may take up to this, longer than one call timeout.
    #[serde(default = "default_orphan_pass_deadline_ms")]
    pub orphan_pass_deadline_ms: u64,
    /// Placeholder pods the janitor keeps so the cluster holds spare nodes
    /// for spawns: a constant, never sized from demand (field report 002,
    /// fix 6; docs/design.md §2.6). 0: none, and existing ones are deleted.
    /// At most `global_cap`.
    #[serde(default)]
    pub headroom_nodes: u32,
    /// Every replica also runs its own reaper (off only for tests).
    pub fallback_reaper: bool,
    /// A replica that cannot confirm its heartbeat in time fences itself
    /// (off only for tests).
    #[serde(default = "yes")]
    pub self_fence: bool,
    /// How often each replica checks its own workers' pods (docs/design.md
    /// §2.6); the janitor checks the fleet's every reap interval.
    #[serde(default = "health_check_default")]
    pub health_check_ms: u64,
    /// A replica asked to stop lets its live sessions finish for this long,
    /// then tells their clients to reconnect elsewhere and exits
    /// (docs/design.md §2.5).
    #[serde(default = "drain_timeout_default")]
    pub drain_timeout_ms: u64,
    /// A session's worker whose owner died is kept this long after the
    /// death for its client to reconnect through another replica; then
    /// the reapers take it (docs/design.md §2.5).
    #[serde(default = "resume_window_default")]
    pub resume_window_ms: u64,
    /// A session whose client has not been heard from (no watch, no
    /// release) for this long is over: its worker is parked, so a client
    /// that vanished or whose release was lost strands nothing.
    #[serde(default = "client_timeout_default")]
    pub client_timeout_ms: u64,
}

fn health_check_default() -> u64 {
    2_000
}

fn drain_timeout_default() -> u64 {
    10_000
}

fn resume_window_default() -> u64 {
    30_000
}

fn client_timeout_default() -> u64 {
    60_000
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            deployment: "haywire".to_string(),
            heartbeat_ms: 15_000,
            dead_after_ms: 30_000,
            org_cap: 8,
            global_cap: 20,
            hot_idle_ttl_ms: 60_000,
            min_hot_idle: 1,
            reap_interval_ms: 10_000,
            activation_timeout_ms: 600_000,
            stuck_activating_ms: 300_000,
            activation_poll_ms: 1_000,
            stale_spawn_ms: 600_000,
            orphan_min_age_ms: 30_000,
            call_timeout_ms: 1_000,
            orphan_pass_deadline_ms: default_orphan_pass_deadline_ms(),
            headroom_nodes: 0,
            fallback_reaper: true,
            self_fence: true,
            health_check_ms: health_check_default(),
            drain_timeout_ms: drain_timeout_default(),
            resume_window_ms: resume_window_default(),
            client_timeout_ms: client_timeout_default(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaConfig {
    pub lease: LeaseConfig,
    pub reconciler: ReconcilerConfig,
    #[serde(default)]
    pub fleet: FleetConfig,
    #[serde(default)]
    pub mutants: Mutants,
    /// Cron coordination and the settings poller (docs/design.md §2.7).
    #[serde(default)]
    pub cron: crate::cron::CronConfig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ReplicaConfig {
    /// How long after the send time of its last confirmed heartbeat a
    /// replica fences itself, on its own clock: the registry's threshold
    /// less the drift bound (on its clock and the store's), a pause within
    /// bounds and one call, so it has stopped before anyone can hold it dead.
    pub fn self_fence_after_ms(&self) -> u64 {
        let (f, l) = (&self.fleet, &self.lease);
        let drift = (f.dead_after_ms as u128 * l.max_drift_ppm as u128 * 2 / 1_000_000) as u64;
        f.dead_after_ms.saturating_sub(drift.saturating_add(l.max_pause_ms).saturating_add(f.call_timeout_ms))
    }

    /// Check that the timings can keep the lease safe: a holder that stops
    /// hearing from the store must have stepped down, and its loops exited,
    /// before the lease can expire for anyone else.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.lease;
        let err = |m: String| Err(ConfigError(m));
        self.cron.validate()?;
        if l.name.is_empty() {
            return err("lease name is empty".into());
        }
        for (what, v) in [
            ("ttl_ms", l.ttl_ms),
            ("renew_interval_ms", l.renew_interval_ms),
            ("renew_deadline_ms", l.renew_deadline_ms),
            ("retry_period_ms", l.retry_period_ms),
            ("rpc_timeout_ms", l.rpc_timeout_ms),
            ("reconciler.interval_ms", self.reconciler.interval_ms),
        ] {
            if v == 0 {
                return err(format!("{what} must be positive"));
            }
        }
        if l.renew_interval_ms >= l.renew_deadline_ms {
            return err(format!(
                "renew_interval_ms ({}) must be below renew_deadline_ms ({})",
                l.renew_interval_ms, l.renew_deadline_ms
            ));
        }
        // In u128, so absurd values are rejected rather than wrapped around.
        let f = &self.fleet;
        for (what, v) in [
            ("fleet.heartbeat_ms", f.heartbeat_ms),
            ("fleet.reap_interval_ms", f.reap_interval_ms),
            ("fleet.activation_poll_ms", f.activation_poll_ms),
            ("fleet.call_timeout_ms", f.call_timeout_ms),
            ("fleet.health_check_ms", f.health_check_ms),
            ("fleet.drain_timeout_ms", f.drain_timeout_ms),
            ("fleet.client_timeout_ms", f.client_timeout_ms),
        ] {
            if v == 0 {
                return err(format!("{what} must be positive"));
            }
        }
        if f.dead_after_ms <= f.heartbeat_ms {
            return err(format!(
                "fleet.dead_after_ms ({}) must exceed heartbeat_ms ({}), or live instances look dead",
                f.dead_after_ms, f.heartbeat_ms
            ));
        }
        if f.self_fence && self.self_fence_after_ms() <= f.heartbeat_ms.saturating_add(2 * f.call_timeout_ms) {
            return err(format!(
                "fleet.dead_after_ms ({}) leaves a self-fence deadline of {}ms after drift, pause and a call, which \
                 must exceed a heartbeat interval ({}) plus two calls, or live replicas fence themselves",
                f.dead_after_ms,
                self.self_fence_after_ms(),
                f.heartbeat_ms
            ));
        }
        if f.activation_poll_ms >= f.activation_timeout_ms.min(f.stuck_activating_ms) {
            return err(
                "fleet.activation_poll_ms must be below activation_timeout_ms and stuck_activating_ms (the row is heartbeated once a poll)"
                    .into(),
            );
        }
        if f.org_cap == 0 || f.global_cap == 0 {
            return err("fleet caps must be positive".into());
        }
        if f.headroom_nodes > f.global_cap {
            return err(format!(
                "fleet.headroom_nodes ({}) must not exceed global_cap ({}): headroom is a few spare nodes, not a fleet",
                f.headroom_nodes, f.global_cap
            ));
        }
        if f.orphan_pass_deadline_ms < f.call_timeout_ms || f.orphan_pass_deadline_ms >= f.reap_interval_ms {
            return err(format!(
                "fleet.orphan_pass_deadline_ms ({}) must be at least one call timeout ({}) and below the reap interval ({})",
                f.orphan_pass_deadline_ms, f.call_timeout_ms, f.reap_interval_ms
            ));
        }
        let drifted = l.renew_deadline_ms as u128 + l.renew_deadline_ms as u128 * l.max_drift_ppm as u128 / 1_000_000;
        // The slowest leader-gated loop to stop: the reconciler finishes its
        // sweep; the janitor stops within a pod and a secret delete, or
        // one orphan pass's list (bounded by its deadline).
        let stop = (self.reconciler.effects_per_sweep as u128
            * (self.reconciler.step_ms as u128 + l.rpc_timeout_ms as u128))
            .max(2 * f.call_timeout_ms as u128)
            .max(f.orphan_pass_deadline_ms as u128);
        let needed = drifted + stop + l.max_pause_ms as u128;
        if needed >= l.ttl_ms as u128 {
            return err(format!(
                "renew deadline {}ms (+drift {}ppm) + loop stop {}ms + pause {}ms = {}ms must stay below the TTL {}ms",
                l.renew_deadline_ms, l.max_drift_ppm, stop, l.max_pause_ms, needed, l.ttl_ms
            ));
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

/// A few call timeouts: one slow list plus a delete or two.
fn default_orphan_pass_deadline_ms() -> u64 {
    3_000
}

pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn rejected(c: &ReplicaConfig) -> String {
        match c.validate() {
            Err(e) => {
                let shown = e.to_string();
                assert!(shown.starts_with("invalid configuration: "), "{shown}");
                e.0
            }
            Ok(()) => panic!("accepted: {c:#?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ReplicaConfig::default().validate(), Ok(()));
        assert!(!ReplicaConfig::default().mutants.iter().any(|_| true), "no mutant on by default");
    }

    #[test]
    fn empty_name_is_rejected() {
        let mut c = ReplicaConfig::default();
        c.lease.name.clear();
        assert_eq!(rejected(&c), "lease name is empty");
    }

    #[test]
    fn zero_values_are_rejected() {
        type Set = fn(&mut ReplicaConfig);
        let cases: [(&str, Set); 6] = [
            ("ttl_ms", |c| c.lease.ttl_ms = 0),
            ("renew_interval_ms", |c| c.lease.renew_interval_ms = 0),
            ("renew_deadline_ms", |c| c.lease.renew_deadline_ms = 0),
            ("retry_period_ms", |c| c.lease.retry_period_ms = 0),
            ("rpc_timeout_ms", |c| c.lease.rpc_timeout_ms = 0),
            ("reconciler.interval_ms", |c| c.reconciler.interval_ms = 0),
        ];
        for (what, set) in cases {
            let mut c = ReplicaConfig::default();
            set(&mut c);
            assert_eq!(rejected(&c), format!("{what} must be positive"));
        }
    }

    #[test]
    fn renew_interval_must_be_below_deadline() {
        let mut c = ReplicaConfig::default();
        c.lease.renew_interval_ms = c.lease.renew_deadline_ms;
        assert_eq!(rejected(&c), "renew_interval_ms (10000) must be below renew_deadline_ms (10000)");
        c.lease.renew_interval_ms = 12_000;
        assert_eq!(rejected(&c), "renew_interval_ms (12000) must be below renew_deadline_ms (10000)");
        c.lease.renew_interval_ms = 9_999;
        assert_eq!(c.validate(), Ok(()));
    }

    /// Defaults: 10000 + 1% drift (100) + loop stop 3 x (250 + 1000) + pause
    /// 1000 = 14850 ms, so a TTL of 14850 is rejected and 14851 accepted.
    #[test]
    fn ttl_must_exceed_deadline_drift_loop_stop_and_pause() {
        let mut c = ReplicaConfig::default();
        c.lease.ttl_ms = 14_850;
        assert_eq!(
            rejected(&c),
            "renew deadline 10000ms (+drift 10000ppm) + loop stop 3750ms + pause 1000ms = 14850ms must stay below the TTL 14850ms"
        );
        c.lease.ttl_ms = 14_851;
        assert_eq!(c.validate(), Ok(()));

        // Each term counts: with 149 ms of slack left at the default TTL,
        // eating it through any one of them is rejected.
        type Set = fn(&mut ReplicaConfig);
        let cases: [(&str, Set); 5] = [
            ("deadline", |c| c.lease.renew_deadline_ms += 149), // +1 ms of drift too
            ("drift", |c| c.lease.max_drift_ppm += 15_000),
            ("pause", |c| c.lease.max_pause_ms += 150),
            ("sweep steps", |c| c.reconciler.step_ms += 50),
            ("effects per sweep", |c| c.reconciler.effects_per_sweep += 1),
        ];
        for (term, set) in cases {
            let mut c = ReplicaConfig::default();
            set(&mut c);
            let msg = rejected(&c);
            assert!(msg.contains("must stay below the TTL 15000ms"), "{term}: {msg}");
        }
        let mut c = ReplicaConfig::default();
        c.lease.max_pause_ms += 149;
        assert_eq!(c.validate(), Ok(()), "one ms of slack left");
        // A slower RPC lengthens the loop stop too.
        c.lease.rpc_timeout_ms += 1;
        assert!(rejected(&c).contains("loop stop 3753ms"));
    }

    /// Values read from a config file can be absurd; validate must reject
    /// them, not overflow. (Before the fix, u64 arithmetic panicked in debug
    /// and wrapped in release, where a pause of ~1.8e19 ms or an rpc timeout
    /// of ~6.1e18 ms came out *below* the TTL and was accepted.)
    #[test]
    fn absurd_values_are_rejected_without_overflow() {
        type Set = fn(&mut ReplicaConfig);
        let cases: [(&str, Set); 4] = [
            ("drift", |c| c.lease.max_drift_ppm = u64::MAX),
            ("step", |c| c.reconciler.step_ms = u64::MAX / 2),
            ("pause", |c| c.lease.max_pause_ms = u64::MAX - 13_000),
            ("rpc timeout", |c| c.lease.rpc_timeout_ms = u64::MAX / 3),
        ];
        let mut bad = Vec::new();
        for (what, set) in cases {
            let mut c = ReplicaConfig::default();
            set(&mut c);
            match std::panic::catch_unwind(|| c.validate()) {
                Ok(Err(_)) => {}
                Ok(Ok(())) => bad.push(format!("{what}: accepted")),
                Err(_) => bad.push(format!("{what}: panicked")),
            }
        }
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn headroom_and_orphan_deadline_are_bounded() {
        let mut c = ReplicaConfig::default();
        c.fleet.headroom_nodes = c.fleet.global_cap;
        assert_eq!(c.validate(), Ok(()));
        c.fleet.headroom_nodes += 1;
        assert!(rejected(&c).starts_with("fleet.headroom_nodes (21) must not exceed global_cap (20)"));
        let mut c = ReplicaConfig::default();
        c.fleet.orphan_pass_deadline_ms = c.fleet.call_timeout_ms - 1;
        assert!(rejected(&c).starts_with("fleet.orphan_pass_deadline_ms (999)"));
        c.fleet.orphan_pass_deadline_ms = c.fleet.reap_interval_ms;
        assert!(rejected(&c).starts_with("fleet.orphan_pass_deadline_ms (10000)"));
    }

    /// Older config files have neither field: no headroom, the default
    /// per-pass deadline.
    #[test]
    fn new_fleet_fields_default_when_absent() {
        let mut v = serde_json::to_value(FleetConfig::default()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("headroom_nodes");
        o.remove("orphan_pass_deadline_ms");
        let f: FleetConfig = serde_json::from_value(v).unwrap();
        assert_eq!(f, FleetConfig::default());
    }

    #[test]
    fn ms_is_milliseconds() {
        assert_eq!(ms(1_500), Duration::from_millis(1_500));
    }
}
