//! The bug zoo: each field-report bug as a named switch, off by default.
//!
//! A mutant puts one real bug back into core so the simulator can prove it
//! catches it. Each sits at one site in core, and all but two are a skip or
//! a reorder of one step there; `SecretReaperUnscoped` and
//! `HeadroomCountsIdle` swap in the pre-fix rule their field report replaced.
//! Every mutant is declared once, in the [`registry!`] invocation below;
//! its enum variant, name, listing, home scenario and detection test all
//! come from that one entry.
//!
//! Without the `mutants` cargo feature (and outside core's own unit tests)
//! [`Mutants::on`] is a constant `false`: a production build of core
//! carries no live switch. The simulator (haywire-sim) turns the feature on.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Whether switches are live in this build of core (the `mutants`
/// feature, or core's own unit tests).
pub const LIVE: bool = cfg!(any(test, feature = "mutants"));

/// How many seeds of its home scenario a mutant's sweep runs, unless its
/// entry says otherwise.
pub const DEFAULT_SEED_BUDGET: u64 = 200;

/// One mutant's metadata, as its registry entry declares it.
#[derive(Debug)]
pub struct Entry {
    pub mutant: Mutant,
    /// The switch's name on the command line.
    pub name: &'static str,
    /// The field report it comes from (a file in `shared/seeds/`).
    pub field_report: &'static str,
    pub description: &'static str,
    /// The scenario (by name) whose sweep must catch it.
    pub home: &'static str,
    /// The invariants that may catch it there: the ones the bug breaks.
    pub caught_by: &'static [&'static str],
    /// Seeds of the home scenario within which it must be caught.
    pub seed_budget: u64,
}

/// Declares every mutant: the enum, [`Mutant::REGISTRY`] (one [`Entry`]
/// each, in declaration order) and `haywire_core::for_each_mutant!`, which
/// hands the variant names to another macro (one detection test each).
macro_rules! registry {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal {
            report: $report:literal,
            about: $about:literal,
            home: $home:literal,
            caught_by: [$($inv:literal),+ $(,)?],
            $(budget: $budget:literal,)?
        }
    )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Mutant {
            $(
                #[doc = concat!("Field report ", $report, ": ", $about, ".")]
                #[doc = ""]
                $(#[doc = $doc])*
                $variant,
            )*
        }

        /// How many mutants there are.
        pub const COUNT: usize = [$(stringify!($variant)),*].len();

        impl Mutant {
            /// Every mutant's entry, indexed by the variant (declaration order).
            pub const REGISTRY: [Entry; COUNT] = [$(
                Entry {
                    mutant: Mutant::$variant,
                    name: $name,
                    field_report: $report,
                    description: $about,
                    home: $home,
                    caught_by: &[$($inv),+],
                    seed_budget: { let _b = DEFAULT_SEED_BUDGET; $(let _b = $budget;)? _b },
                },
            )*];

            pub const ALL: [Mutant; COUNT] = [$(Mutant::$variant),*];
        }

        /// Calls `$callback! { Variant Variant ... }` with every mutant, in
        /// registry order: the integration tests generate one test each.
        #[macro_export]
        macro_rules! for_each_mutant {
            ($callback:ident) => { $callback! { $($variant)* } };
        }
    };
}

registry! {
    ElectorRunsOnce = "elector-runs-once" {
        report: "002",
        about: "after losing the lease the coordinator never contends again",
        home: "renewal-blip",
        caught_by: ["L1"],
    }
    ReleaseBeforeCancel = "release-before-cancel" {
        report: "000",
        about: "shutdown releases the lease before stopping leader-gated loops",
        home: "graceful-failover",
        caught_by: ["S2"],
    }
    ShutdownNoWait = "shutdown-no-wait" {
        report: "000",
        about: "shutdown does not wait for the coordinator, so release never happens and failover waits for TTL",
        home: "graceful-failover",
        caught_by: ["L1"],
    }
    NoFallbackReaper = "no-fallback-reaper" {
        report: "002",
        about: "only the leader reaps",
        home: "owner-crash",
        caught_by: ["L2"],
    }
    /// The stranded worker leaks (L2), or, memory saying hot_idle while the
    /// row is still hot, is handed out against a row bound to no session (S6).
    MutateBeforePersist = "mutate-before-persist" {
        report: "002",
        about: "hot->hot_idle changes memory first; a failed write strands the worker",
        home: "persist-faults",
        caught_by: ["L2", "S6"],
    }
    /// The served worker's row stays activating: the client starts on a row
    /// the store does not hold hot for it (S6), a reaper ends it under its
    /// live session (S5), or it is stranded past its TTL (L2).
    ActivateSplit = "activate-split" {
        report: "002",
        about: "activation's hot write failure leaves memory hot, durable activating",
        home: "persist-faults",
        caught_by: ["S6", "S5", "L2"],
    }
    SlotLeakOnSpawnFailure = "slot-leak-on-spawn-failure" {
        report: "002",
        about: "a failed spawn keeps its capacity slot until the slow sweep",
        home: "spawn-faults",
        caught_by: ["L2"],
    }
    /// A path that uses the old epoch meanwhile is refused as stale and
    /// drops a worker that is still its own: it leaks (L2).
    TornEpochRead = "torn-epoch-read" {
        report: "004",
        about: "the epoch bump and the in-memory epoch update are not atomic to readers",
        home: "idle-churn",
        caught_by: ["L2"],
    }
    NoSecretReaper = "no-secret-reaper" {
        report: "004",
        about: "a crash between secret and pod leaks the secret forever",
        home: "spawn-faults",
        caught_by: ["L2"],
    }
    OrphansNotReapedByFallback = "orphans-not-reaped-by-fallback" {
        report: "002",
        about: "the fallback reaper ignores workers of dead instances",
        home: "rollout-orphans",
        caught_by: ["L2"],
    }
    ReaperKillsLiveActivation = "reaper-kills-live-activation" {
        report: "002",
        about: "a long activation is reaped mid-session",
        home: "long-activation",
        caught_by: ["S5"],
    }
    /// A pod the cluster will not delete fails the orphan-pod pass on every
    /// run; the passes after it (orphan secrets, slots) never run, so an
    /// orphan secret outlives its deadline.
    JanitorStopsAtFirstError = "janitor-stops-at-first-error" {
        report: "003",
        about: "the janitor returns on its first failing pass and skips the rest",
        home: "spawn-faults",
        caught_by: ["L2"],
    }
    /// A client holds a worker whose pod died and is never told (L3), or a
    /// new session gets the dead worker (S5).
    NoHealthCheck = "no-health-check" {
        report: "004",
        about: "no health check: a worker whose pod died keeps serving and is handed out again",
        home: "cluster-partition",
        caught_by: ["L3", "S5"],
    }
    /// Held dead but never fenced: the fleet takes over its workers while
    /// its clients still hold them (S5), or its heartbeat revives the dead
    /// instance (I2).
    ZombieInstance = "zombie-instance" {
        report: "001",
        about: "a replica held dead never fences itself, and its heartbeat revives the instance",
        home: "false-death",
        caught_by: ["S5", "I2"],
    }
    /// Placeholders sized as 0.75 x (hot + hot-idle rows) leave the
    /// configured constant as soon as there is demand.
    HeadroomCountsIdle = "headroom-counts-idle" {
        report: "002",
        about: "headroom placeholders grow with demand, hot-idle workers counted (~1.75x)",
        home: "idle-churn",
        caught_by: ["H1"],
    }
    /// Keyed on the cluster's pod list alone, it keeps the secret of a
    /// worker whose pod the cluster will not delete, long after its row
    /// ended (and may reap a peer's secret whose pod is not listed yet).
    SecretReaperUnscoped = "secret-reaper-unscoped" {
        report: "004",
        about: "the secret reaper deletes any secret whose pod is not listed, a live peer's too",
        home: "spawn-faults",
        caught_by: ["L2", "S5"],
    }
    /// A pod list slower than the orphan-pass deadline starves the secret
    /// pass that shares it, and a dead owner's orphan secret outlives its
    /// deadline while secret calls are calm.
    SharedReaperDeadline = "shared-reaper-deadline" {
        report: "004",
        about: "pod and secret orphan passes share one deadline; a slow pod list starves secrets",
        home: "slow-cluster-lists",
        caught_by: ["L2"],
    }
    /// Two reconnects of one session race; the loser, refused by the
    /// winner's claim, claims again from the winner (alive, serving it)
    /// without rechecking that owner: both answer the client (finding 2).
    ReconnectRace = "reconnect-race" {
        report: "003",
        about: "a reconnect that loses the takeover race claims again from the winner: two replicas serve one session",
        home: "reconnect-storm",
        caught_by: ["S7"],
    }
    /// The takeover never rechecks the old owner: it trusts the client's
    /// earlier judgement that its replica went away, and takes a live
    /// owner's session (finding 4).
    TakeoverNoLivenessRecheck = "takeover-no-liveness-recheck" {
        report: "003",
        about: "a reconnect takes the worker over without rechecking, at takeover time, that its owner is gone",
        home: "reconnect-storm",
        caught_by: ["S7"],
    }
    /// A reconnect that took the worker over but found its pod dead answers
    /// the client with an error and drops the worker, leaving the row hot
    /// and bound to the session under a live owner: a session nobody
    /// serves, forever (finding 5).
    ReconnectFailureNotPersisted = "reconnect-failure-not-persisted" {
        report: "003",
        about: "a failed reconnect leaves the durable record saying the session is live on its worker",
        home: "reconnect-storm",
        caught_by: ["S7", "L2"],
    }
    /// A draining replica still takes reconnects: a session handed off by
    /// a drain lands back on a replica that is about to exit (finding 9).
    ReconnectIgnoresDraining = "reconnect-ignores-draining" {
        report: "003",
        about: "a reconnect lands on a replica that is draining",
        home: "reconnect-storm",
        caught_by: ["S7"],
    }
    /// The drain waits for every live session to end, however long: a
    /// rolling deploy stalls behind long sessions until the host kills the
    /// replica (finding 8).
    DrainWaitsForever = "drain-waits-forever" {
        report: "003",
        about: "a draining replica waits for long sessions without bound",
        home: "reconnect-storm",
        caught_by: ["L4"],
    }
    ScheduleEditIgnored = "schedule-edit-ignored" {
        report: "001",
        about: "an owner keeps firing a job's old schedule after an edit (it re-arms only on a change of owner)",
        home: "cron-edits",
        caught_by: ["C4", "C2"],
    }
    PausedJobLostOnOwnerDeath = "paused-job-lost-on-owner-death" {
        report: "001",
        about: "only active jobs of a dead instance are reassigned: its paused ones stay with the dead",
        home: "cron-edits",
        caught_by: ["C3"],
    }
    DeadInstanceDeletedWithoutTarget = "dead-instance-deleted-without-target" {
        report: "001",
        about: "a dead instance is written off after one reassignment pass even when its jobs did not move",
        home: "cron-failover",
        caught_by: ["C3"],
    }
    AppClockCutoffs = "app-clock-cutoffs" {
        report: "001",
        about: "death and due slots are judged on the replica's own clock, not the store's",
        home: "cron-skew",
        caught_by: ["C3", "C2", "C1"],
    }
    CheckThenLockFire = "check-then-lock-fire" {
        report: "001",
        about: "a fire checks that its slot has no record, runs, and only then commits the record",
        home: "cron-failover",
        caught_by: ["C1"],
    }
    TimerLeakedOnRearm = "timer-leaked-on-rearm" {
        report: "001",
        about: "re-arming a job's timer leaves the old timer running its old schedule",
        home: "cron-edits",
        caught_by: ["C4"],
    }
    MissedSlotsDropped = "missed-slots-dropped" {
        report: "001",
        about: "slots that fell due while nobody could fire are neither run nor recorded missed",
        home: "cron-failover",
        caught_by: ["C2"],
    }
    ShutdownKeepsLock = "shutdown-keeps-lock" {
        report: "001",
        about: "a stopping replica neither releases its jobs nor finishes its runs: failover waits for the dead threshold",
        home: "cron-scale",
        caught_by: ["C3"],
    }
    CapCountThenLock = "cap-count-then-lock" {
        report: "001",
        about: "the fleet's run cap is checked by counting runs, then a run is committed without the store checking it",
        home: "cron-edits",
        caught_by: ["C4"],
    }
    ConfigPollStopsOnError = "config-poll-stops-on-error" {
        report: "001",
        about: "the settings poller exits on its first store error: the replica serves a stale value forever",
        home: "cron-edits",
        caught_by: ["C5"],
    }
}

impl Mutant {
    /// This mutant's registry entry.
    pub const fn entry(self) -> &'static Entry {
        &Mutant::REGISTRY[self as usize]
    }

    /// The switch's name on the command line.
    pub const fn name(self) -> &'static str {
        self.entry().name
    }

    /// The field report it comes from (a file in `shared/seeds/`).
    pub const fn field_report(self) -> &'static str {
        self.entry().field_report
    }

    pub const fn description(self) -> &'static str {
        self.entry().description
    }

    /// The name of the scenario whose sweep must catch it.
    pub const fn home(self) -> &'static str {
        self.entry().home
    }

    /// The invariants that may catch it in its home scenario.
    pub const fn caught_by(self) -> &'static [&'static str] {
        self.entry().caught_by
    }

    /// How many seeds of its home scenario may pass before it is caught.
    pub const fn seed_budget(self) -> u64 {
        self.entry().seed_budget
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
    /// Whether `m` is switched on: every mutant site asks this.
    #[cfg(any(test, feature = "mutants"))]
    pub fn on(&self, m: Mutant) -> bool {
        self.0.contains(&m)
    }
    /// Without the `mutants` feature no switch is live: every site's
    /// branch is dead code the compiler drops.
    #[cfg(not(any(test, feature = "mutants")))]
    #[inline(always)]
    pub const fn on(&self, _m: Mutant) -> bool {
        false
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
        }
        let mut names: Vec<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Mutant::ALL.len(), "names are distinct");
    }

    #[test]
    fn every_entry_is_complete_and_in_variant_order() {
        assert_eq!(Mutant::ALL.len(), Mutant::REGISTRY.len());
        for (i, (m, e)) in Mutant::ALL.into_iter().zip(&Mutant::REGISTRY).enumerate() {
            assert_eq!((m as usize, e.mutant), (i, m), "entry {i}");
            assert!(!e.description.is_empty() && !e.home.is_empty(), "{m}");
            assert!(["000", "001", "002", "003", "004"].contains(&e.field_report), "{m}");
            assert!(!e.caught_by.is_empty() && e.seed_budget > 0, "{m}");
            // Kebab-case names, the CLI's spelling.
            assert!(e.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{m}");
        }
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
        assert!(LIVE, "core's own tests see live switches");
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
