//! The bug zoo: each field-report bug as a named switch, off by default.
//!
//! A mutant puts one real bug back into core so the simulator can prove it
//! catches it. Production code never turns one on.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mutant {
    /// Field report 002: after losing the lease the coordinator never
    /// contends again.
    ElectorRunsOnce,
    /// Field report 000: shutdown releases the lease before stopping the
    /// leader-gated loops.
    ReleaseBeforeCancel,
    /// Field report 000: process shutdown does not wait for the coordinator,
    /// so the release never happens and failover waits for the TTL.
    ShutdownNoWait,
    /// Field report 002: only the leader reaps; no per-replica fallback.
    NoFallbackReaper,
    /// Field report 002: hot→hot_idle changes memory first; a failed write
    /// strands the worker (durable hot, in-memory hot_idle).
    MutateBeforePersist,
    /// Field report 002: activation's hot write failure leaves memory hot
    /// and the row activating.
    ActivateSplit,
    /// Field report 002: a failed spawn keeps its capacity slot until the
    /// slow sweep.
    SlotLeakOnSpawnFailure,
    /// Field report 004: the epoch bump and the in-memory epoch update are
    /// not atomic to readers.
    TornEpochRead,
    /// Field report 004: a crash between secret and pod leaks the secret
    /// forever.
    NoSecretReaper,
    /// Field report 002: the fallback reaper ignores workers of dead
    /// instances.
    OrphansNotReapedByFallback,
    /// Field report 002: a long activation does not heartbeat its row and is
    /// reaped mid-session.
    ReaperKillsLiveActivation,
    /// Field report 003 (review finding 3): the janitor returns on its first
    /// failing pass and skips the rest.
    JanitorStopsAtFirstError,
    /// Field report 004: no health check; a worker whose pod died keeps
    /// its session and is handed to the next one.
    NoHealthCheck,
    /// Field report 001 (failure mode 4): a replica held dead keeps running
    /// as a zombie: it never fences itself, and its heartbeat revives the
    /// dead instance.
    ZombieInstance,
    /// Field report 002 (fix 6): headroom placeholders sized from demand,
    /// counting hot-idle workers, so an idle leak is amplified ~1.75x.
    HeadroomCountsIdle,
    /// Field report 004: the orphan-secret pass deletes any deployment
    /// secret whose pod is not listed, whoever owns it, rows or not.
    SecretReaperUnscoped,
    /// Field report 004: the orphan pod and secret passes share one
    /// deadline, pods first, so a slow pod list starves the secret pass.
    SharedReaperDeadline,
}

impl Mutant {
    pub const ALL: [Mutant; 17] = [
        Mutant::ElectorRunsOnce,
        Mutant::ReleaseBeforeCancel,
        Mutant::ShutdownNoWait,
        Mutant::NoFallbackReaper,
        Mutant::MutateBeforePersist,
        Mutant::ActivateSplit,
        Mutant::SlotLeakOnSpawnFailure,
        Mutant::TornEpochRead,
        Mutant::NoSecretReaper,
        Mutant::OrphansNotReapedByFallback,
        Mutant::ReaperKillsLiveActivation,
        Mutant::JanitorStopsAtFirstError,
        Mutant::NoHealthCheck,
        Mutant::ZombieInstance,
        Mutant::HeadroomCountsIdle,
        Mutant::SecretReaperUnscoped,
        Mutant::SharedReaperDeadline,
    ];

    /// The switch's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::ElectorRunsOnce => "elector-runs-once",
            Mutant::ReleaseBeforeCancel => "release-before-cancel",
            Mutant::ShutdownNoWait => "shutdown-no-wait",
            Mutant::NoFallbackReaper => "no-fallback-reaper",
            Mutant::MutateBeforePersist => "mutate-before-persist",
            Mutant::ActivateSplit => "activate-split",
            Mutant::SlotLeakOnSpawnFailure => "slot-leak-on-spawn-failure",
            Mutant::TornEpochRead => "torn-epoch-read",
            Mutant::NoSecretReaper => "no-secret-reaper",
            Mutant::OrphansNotReapedByFallback => "orphans-not-reaped-by-fallback",
            Mutant::ReaperKillsLiveActivation => "reaper-kills-live-activation",
            Mutant::JanitorStopsAtFirstError => "janitor-stops-at-first-error",
            Mutant::NoHealthCheck => "no-health-check",
            Mutant::ZombieInstance => "zombie-instance",
            Mutant::HeadroomCountsIdle => "headroom-counts-idle",
            Mutant::SecretReaperUnscoped => "secret-reaper-unscoped",
            Mutant::SharedReaperDeadline => "shared-reaper-deadline",
        }
    }

    /// The field report it comes from (a file in `shared/seeds/`).
    pub fn field_report(self) -> &'static str {
        match self {
            Mutant::ReleaseBeforeCancel | Mutant::ShutdownNoWait => "000",
            Mutant::TornEpochRead
            | Mutant::NoSecretReaper
            | Mutant::NoHealthCheck
            | Mutant::SecretReaperUnscoped
            | Mutant::SharedReaperDeadline => "004",
            Mutant::ZombieInstance => "001",
            Mutant::JanitorStopsAtFirstError => "003",
            _ => "002",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Mutant::ElectorRunsOnce => "after losing the lease the coordinator never contends again",
            Mutant::ReleaseBeforeCancel => "shutdown releases the lease before stopping leader-gated loops",
            Mutant::ShutdownNoWait => {
                "shutdown does not wait for the coordinator, so release never happens and failover waits for TTL"
            }
            Mutant::NoFallbackReaper => "only the leader reaps",
            Mutant::MutateBeforePersist => "hot->hot_idle changes memory first; a failed write strands the worker",
            Mutant::ActivateSplit => "activation's hot write failure leaves memory hot, durable activating",
            Mutant::SlotLeakOnSpawnFailure => "a failed spawn keeps its capacity slot until the slow sweep",
            Mutant::TornEpochRead => "the epoch bump and the in-memory epoch update are not atomic to readers",
            Mutant::NoSecretReaper => "a crash between secret and pod leaks the secret forever",
            Mutant::OrphansNotReapedByFallback => "the fallback reaper ignores workers of dead instances",
            Mutant::ReaperKillsLiveActivation => "a long activation is reaped mid-session",
            Mutant::JanitorStopsAtFirstError => "the janitor returns on its first failing pass and skips the rest",
            Mutant::NoHealthCheck => "no health check: a worker whose pod died keeps serving and is handed out again",
            Mutant::ZombieInstance => "a replica held dead never fences itself, and its heartbeat revives the instance",
            Mutant::HeadroomCountsIdle => "headroom placeholders grow with demand, hot-idle workers counted (~1.75x)",
            Mutant::SecretReaperUnscoped => "the secret reaper deletes any secret whose pod is not listed, a live peer's too",
            Mutant::SharedReaperDeadline => "pod and secret orphan passes share one deadline; a slow pod list starves secrets",
        }
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mutant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mutant::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
            format!("unknown mutant '{s}' (known: {})", names.join(", "))
        })
    }
}

/// The set of switched-on mutants (normally empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutants(Vec<Mutant>);

impl Mutants {
    pub fn none() -> Self {
        Mutants(Vec::new())
    }
    pub fn only(m: Mutant) -> Self {
        Mutants(vec![m])
    }
    pub fn on(&self, m: Mutant) -> bool {
        self.0.contains(&m)
    }
    pub fn iter(&self) -> impl Iterator<Item = Mutant> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for m in Mutant::ALL {
            assert_eq!(m.name().parse::<Mutant>(), Ok(m));
            assert_eq!(m.to_string(), m.name());
            assert!(!m.description().is_empty());
            assert!(["000", "001", "002", "003", "004"].contains(&m.field_report()), "{m}");
        }
        let mut names: Vec<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Mutant::ALL.len(), "names are distinct");
    }

    #[test]
    fn all_lists_every_variant() {
        // Adding a variant without listing it in ALL fails to compile here.
        for m in Mutant::ALL {
            match m {
                Mutant::ElectorRunsOnce
                | Mutant::ReleaseBeforeCancel
                | Mutant::ShutdownNoWait
                | Mutant::NoFallbackReaper
                | Mutant::MutateBeforePersist
                | Mutant::ActivateSplit
                | Mutant::SlotLeakOnSpawnFailure
                | Mutant::TornEpochRead
                | Mutant::NoSecretReaper
                | Mutant::OrphansNotReapedByFallback
                | Mutant::ReaperKillsLiveActivation
                | Mutant::JanitorStopsAtFirstError
                | Mutant::NoHealthCheck
                | Mutant::ZombieInstance
                | Mutant::HeadroomCountsIdle
                | Mutant::SecretReaperUnscoped
                | Mutant::SharedReaperDeadline => {}
            }
        }
        assert_eq!(Mutant::ALL.len(), 17);
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        for bad in ["", "nope", "Elector-Runs-Once", "elector-runs-once ", "ElectorRunsOnce"] {
            let err = bad.parse::<Mutant>().unwrap_err();
            let known: Vec<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
            assert_eq!(err, format!("unknown mutant '{bad}' (known: {})", known.join(", ")));
            for m in Mutant::ALL {
                assert!(err.contains(m.name()));
            }
        }
    }

    #[test]
    fn mutant_sets() {
        assert!(Mutant::ALL.iter().all(|m| !Mutants::none().on(*m)));
        assert_eq!(Mutants::default(), Mutants::none());
        for m in Mutant::ALL {
            let s = Mutants::only(m);
            assert!(s.on(m));
            assert_eq!(s.iter().collect::<Vec<_>>(), vec![m]);
            assert!(Mutant::ALL.iter().filter(|o| **o != m).all(|o| !s.on(*o)));
        }
    }
}
