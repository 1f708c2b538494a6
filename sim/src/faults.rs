//! Faults: what the injector can do to the world, and a timed plan of them.
//!
//! A plan is drawn from the seed by a scenario before the run starts; the
//! injector follows it. Every fault heals by the end of the fault phase.
//! A plan read from a file is checked against the world it is replayed in
//! first ([`FaultPlan::problems`]): every problem is named, none is
//! silently bent into range.

use crate::options::RunOptions;
use serde::{Deserialize, Serialize};

/// Which replica a fault hits, resolved when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Target {
    /// Replica by number, counted from 1 as the timeline names them
    /// (`Replica(1)` is r1).
    Replica(usize),
    /// Whoever holds the lease when the fault fires (a random replica if
    /// nobody does).
    Leader,
}

/// Which cluster operations a [`Fault::ClusterOps`] window hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterOps {
    PodLists,
    SecretLists,
    Deletes,
}

impl ClusterOps {
    pub const ALL: [ClusterOps; 3] = [ClusterOps::PodLists, ClusterOps::SecretLists, ClusterOps::Deletes];

    pub fn name(self) -> &'static str {
        match self {
            ClusterOps::PodLists => "pod_lists",
            ClusterOps::SecretLists => "secret_lists",
            ClusterOps::Deletes => "deletes",
        }
    }

    /// The cluster request kinds (`ClusterRequest::op`) it covers.
    pub fn requests(self) -> &'static [&'static str] {
        match self {
            ClusterOps::PodLists => &["list_pods"],
            ClusterOps::SecretLists => &["list_secrets"],
            ClusterOps::Deletes => &["delete_pod", "delete_secret"],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Fault {
    /// Kill the process (memory lost); restart it as a new instance after
    /// `down_ms`.
    Crash { target: Target, down_ms: u64 },
    /// Ask the process to shut down gracefully; kill it if it takes longer
    /// than the grace period; restart after `down_ms`.
    Shutdown { target: Target, down_ms: u64 },
    /// Shut down and restart every replica in turn, `gap_ms` apart.
    RollingDeploy { down_ms: u64, gap_ms: u64 },
    /// Cut the replica off from the store (both directions). Longer than
    /// the dead threshold, the fleet holds it dead while it still serves
    /// (a false-positive death, field report 001).
    Partition { target: Target, ms: u64 },
    /// Cut the replica off from the cluster API (both directions); the
    /// store stays reachable.
    ClusterPartition { target: Target, ms: u64 },
    /// The store answers this replica only after `extra_ms`.
    StoreSlow { target: Target, extra_ms: u64, ms: u64 },
    /// Writes fail before commit / commit but lose the reply.
    StoreFaults { fail_pct: u32, lost_reply_pct: u32, ms: u64 },
    /// Every store request waits until the stall ends.
    StoreStall { ms: u64 },
    /// Lease writes fail before commit while the rest of the store works
    /// (the lease table locked, a coordination API down): no leader.
    LeaseOutage { ms: u64 },
    /// Freeze the process (madsim pause), then resume it.
    Pause { target: Target, ms: u64 },
    /// Pod creation fails `pct` percent of the time.
    PodFailures { pct: u32, ms: u64 },
    /// A running pod (chosen when it fires) dies.
    PodDeath,
    /// The cluster API answers `extra_ms` late (what it does, it does on
    /// arrival).
    ClusterSlow { extra_ms: u64, ms: u64 },
    /// For `ms`, the cluster fails the operations `ops` (`slow_ms` = 0), or
    /// answers them `slow_ms` late (done on arrival); other operations work.
    ClusterOps { ops: ClusterOps, slow_ms: u64, ms: u64 },
    /// The cluster refuses to delete one pod (chosen when it fires) for
    /// `ms`: the pod stays, every delete of it fails.
    DeleteRefusal { ms: u64 },
    /// The next replica to create a secret crashes before creating its pod;
    /// it restarts after `down_ms`. Gives up after `wait_ms` with no spawn.
    CrashAfterSecret { down_ms: u64, wait_ms: u64 },
    /// The next replica to poll an activating pod crashes mid-activation.
    CrashInActivation { down_ms: u64, wait_ms: u64 },
    /// A running replica shuts down gracefully and does not come back.
    ScaleDown { target: Target },
    /// A spare replica starts.
    ScaleUp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedFault {
    pub at_ms: u64,
    pub fault: Fault,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    pub faults: Vec<PlannedFault>,
}

impl FaultPlan {
    pub fn push(&mut self, at_ms: u64, fault: Fault) {
        self.faults.push(PlannedFault { at_ms, fault });
    }

    /// Faults in firing order (stable for equal times).
    pub fn sorted(mut self) -> Self {
        self.faults.sort_by_key(|f| f.at_ms);
        self
    }
}

impl Fault {
    /// The snake_case name the timeline and error messages use.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Crash { .. } => "crash",
            Fault::Shutdown { .. } => "shutdown",
            Fault::RollingDeploy { .. } => "rolling_deploy",
            Fault::Partition { .. } => "partition",
            Fault::ClusterPartition { .. } => "cluster_partition",
            Fault::StoreSlow { .. } => "store_slow",
            Fault::StoreFaults { .. } => "store_faults",
            Fault::StoreStall { .. } => "store_stall",
            Fault::LeaseOutage { .. } => "lease_outage",
            Fault::Pause { .. } => "pause",
            Fault::PodFailures { .. } => "pod_failures",
            Fault::PodDeath => "pod_death",
            Fault::ClusterSlow { .. } => "cluster_slow",
            Fault::ClusterOps { .. } => "cluster_ops",
            Fault::DeleteRefusal { .. } => "delete_refusal",
            Fault::CrashAfterSecret { .. } => "crash_after_secret",
            Fault::CrashInActivation { .. } => "crash_in_activation",
            Fault::ScaleDown { .. } => "scale_down",
            Fault::ScaleUp => "scale_up",
        }
    }

    fn target(&self) -> Option<Target> {
        match self {
            Fault::Crash { target, .. }
            | Fault::Shutdown { target, .. }
            | Fault::Partition { target, .. }
            | Fault::ClusterPartition { target, .. }
            | Fault::StoreSlow { target, .. }
            | Fault::Pause { target, .. }
            | Fault::ScaleDown { target } => Some(*target),
            _ => None,
        }
    }

    /// How long after it fires the fault has healed, by its own fields
    /// (a rolling deploy's shutdowns take what they take on top).
    fn span_ms(&self, replicas: usize) -> u64 {
        match self {
            Fault::Crash { down_ms, .. } | Fault::Shutdown { down_ms, .. } => *down_ms,
            Fault::RollingDeploy { down_ms, gap_ms } => down_ms.saturating_add(*gap_ms).saturating_mul(replicas as u64),
            Fault::Partition { ms, .. }
            | Fault::ClusterPartition { ms, .. }
            | Fault::StoreSlow { ms, .. }
            | Fault::StoreFaults { ms, .. }
            | Fault::StoreStall { ms }
            | Fault::LeaseOutage { ms }
            | Fault::Pause { ms, .. }
            | Fault::PodFailures { ms, .. }
            | Fault::ClusterSlow { ms, .. }
            | Fault::ClusterOps { ms, .. }
            | Fault::DeleteRefusal { ms } => *ms,
            Fault::CrashAfterSecret { down_ms, wait_ms } | Fault::CrashInActivation { down_ms, wait_ms } => {
                wait_ms.saturating_add(*down_ms)
            }
            Fault::PodDeath | Fault::ScaleDown { .. } | Fault::ScaleUp => 0,
        }
    }

    fn percentages(&self) -> Vec<(&'static str, u32)> {
        match self {
            Fault::StoreFaults { fail_pct, lost_reply_pct, .. } => {
                vec![("fail_pct", *fail_pct), ("lost_reply_pct", *lost_reply_pct)]
            }
            Fault::PodFailures { pct, .. } => vec![("pct", *pct)],
            _ => vec![],
        }
    }

    /// Delays a fault adds to each answer: longer than the fault phase, a
    /// single answer would outlast the whole run.
    fn delays(&self) -> Vec<(&'static str, u64)> {
        match self {
            Fault::StoreSlow { extra_ms, .. } | Fault::ClusterSlow { extra_ms, .. } => vec![("extra_ms", *extra_ms)],
            Fault::ClusterOps { slow_ms, .. } => vec![("slow_ms", *slow_ms)],
            _ => vec![],
        }
    }

    /// Faults that act on workers and their pods: they need a world whose
    /// clients ask for sessions.
    fn needs_workers(&self) -> bool {
        matches!(
            self,
            Fault::PodFailures { .. }
                | Fault::PodDeath
                | Fault::DeleteRefusal { .. }
                | Fault::CrashAfterSecret { .. }
                | Fault::CrashInActivation { .. }
        )
    }
}

impl FaultPlan {
    /// Everything wrong with this plan for a world with options `opts`, one
    /// line per problem (empty: it can run as written). A plan must fit the
    /// world: faults start inside the fault phase and heal by its end,
    /// targets name replicas the world has, percentages are percentages,
    /// and every fault has something to act on.
    pub fn problems(&self, opts: &RunOptions) -> Vec<String> {
        let phase = opts.fault_phase_ms;
        let mut out = Vec::new();
        for (i, p) in self.faults.iter().enumerate() {
            let f = &p.fault;
            let mut bad = |what: String| out.push(format!("fault {} ({} at {} ms): {what}", i + 1, f.name(), p.at_ms));
            let span = f.span_ms(opts.replicas);
            if p.at_ms >= phase {
                bad(format!("at_ms {} is not inside the fault phase (0..{phase} ms)", p.at_ms));
                if span > phase {
                    bad(format!("lasts {span} ms, longer than the whole fault phase ({phase} ms)"));
                }
            } else if p.at_ms.saturating_add(span) > phase {
                bad(format!(
                    "lasts {span} ms, past the end of the fault phase at {phase} ms (at most {} ms from here)",
                    phase - p.at_ms
                ));
            }
            if let Some(Target::Replica(n)) = f.target() {
                if n == 0 || n > opts.replicas {
                    bad(format!("target Replica({n}) is not a replica of this world (r1..r{})", opts.replicas));
                }
            }
            for (field, pct) in f.percentages() {
                if pct > 100 {
                    bad(format!("{field} {pct} is not a percentage (0..=100)"));
                }
            }
            for (field, ms) in f.delays() {
                if ms > phase {
                    bad(format!("{field} {ms} is longer than the fault phase ({phase} ms)"));
                }
            }
            // Whether a spare replica exists depends on what ran before (a
            // scale-down makes one): the injector says at run time when a
            // scale-up found none.
            if f.needs_workers() && opts.workload.clients == 0 {
                bad("this world has no clients, so no workers or pods for it to act on".into())
            }
        }
        out
    }
}

/// A fault plan as a file holds it (`shrink --out`, read by `replay --plan`
/// and `shrink --plan`): the plan, and the run it came from, so a replay
/// can say when it is not replaying that run. Only `faults` is required.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// The haywire version that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub haywire: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    pub faults: Vec<PlannedFault>,
}

impl PlanFile {
    pub fn plan(&self) -> FaultPlan {
        FaultPlan { faults: self.faults.clone() }
    }

    /// Where the file's record of its run disagrees with the run asked
    /// for: one line each ("scenario: the plan came from X, this is Y").
    pub fn disagreements(&self, scenario: &str, seed: u64, mutant: Option<&str>, store: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: &str, theirs: Option<String>, ours: String| {
            if let Some(t) = theirs.filter(|t| *t != ours) {
                out.push(format!("{what}: the plan came from {t}, this run is {ours}"));
            }
        };
        check("scenario", self.scenario.clone(), scenario.to_string());
        check("seed", self.seed.map(|s| s.to_string()), seed.to_string());
        // A recorded run with no mutant says so by leaving the field out
        // only when it recorded the run at all.
        let recorded = self.scenario.is_some();
        let theirs_mutant = if recorded { Some(self.mutant.clone().unwrap_or_else(|| "none".into())) } else { None };
        check("mutant", theirs_mutant, mutant.unwrap_or("none").to_string());
        check("store", self.store.clone(), store.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> RunOptions {
        RunOptions {
            replicas: 3,
            store: crate::options::StoreKind::Memory,
            fault_phase_ms: 60_000,
            quiet_ms: 30_000,
            latency_ms: (1, 5),
            shutdown_grace_ms: 30_000,
            clocks: vec![crate::options::ClockSpec { skew_ms: 0, drift_ppm: 0 }; 3],
            faults: Default::default(),
            replica: Default::default(),
            initial_replicas: 3,
            workload: Default::default(),
            pod_start_ms: (500, 3_000),
            bounds: Default::default(),
        }
    }

    fn one(at_ms: u64, fault: Fault) -> FaultPlan {
        FaultPlan { faults: vec![PlannedFault { at_ms, fault }] }
    }

    #[test]
    fn a_plan_that_fits_has_no_problems() {
        let p = one(1_000, Fault::Shutdown { target: Target::Replica(3), down_ms: 5_000 });
        assert!(p.problems(&world()).is_empty(), "{:?}", p.problems(&world()));
    }

    #[test]
    fn each_problem_is_named_once() {
        let plan = FaultPlan {
            faults: vec![
                PlannedFault { at_ms: 1_000, fault: Fault::Shutdown { target: Target::Leader, down_ms: u64::MAX } },
                PlannedFault { at_ms: u64::MAX, fault: Fault::LeaseOutage { ms: u64::MAX } },
                PlannedFault { at_ms: 1_000, fault: Fault::Crash { target: Target::Replica(99), down_ms: 10 } },
                PlannedFault { at_ms: 1_000, fault: Fault::Crash { target: Target::Replica(0), down_ms: 10 } },
                PlannedFault { at_ms: 1_000, fault: Fault::StoreFaults { fail_pct: 250, lost_reply_pct: 5, ms: 10 } },
                PlannedFault { at_ms: 1_000, fault: Fault::PodDeath },
                PlannedFault { at_ms: 1_000, fault: Fault::StoreSlow { target: Target::Leader, extra_ms: u64::MAX, ms: 5 } },
            ],
        };
        let problems = plan.problems(&world());
        assert_eq!(problems.len(), 8, "{problems:#?}");
        assert!(problems[0].starts_with("fault 1 (shutdown at 1000 ms): lasts"), "{}", problems[0]);
        assert!(problems[1].contains("not inside the fault phase"));
        assert!(problems[2].contains("longer than the whole fault phase"));
        assert!(problems[3].contains("Replica(99) is not a replica of this world (r1..r3)"));
        assert!(problems[4].contains("Replica(0)"));
        assert!(problems[5].contains("fail_pct 250 is not a percentage"));
        assert!(problems[6].contains("no clients"));
        assert!(problems[7].contains("extra_ms"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = r#"{"faults":[{"at_ms":1,"fault":{"Crash":{"target":"Leader","down_ms":1,"extra":2}}}]}"#;
        assert!(serde_json::from_str::<PlanFile>(bad).unwrap_err().to_string().contains("unknown field"));
        let bad = r#"{"faults":[],"color":"red"}"#;
        assert!(serde_json::from_str::<PlanFile>(bad).unwrap_err().to_string().contains("unknown field"));
        let bad = r#"{"faults":[{"at_ms":1,"when":3,"fault":"PodDeath"}]}"#;
        assert!(serde_json::from_str::<PlanFile>(bad).is_err());
        let good = r#"{"faults":[{"at_ms":1,"fault":"PodDeath"}]}"#;
        assert_eq!(serde_json::from_str::<PlanFile>(good).unwrap().faults.len(), 1);
    }

    #[test]
    fn a_plan_file_says_where_it_disagrees() {
        let f = PlanFile { scenario: Some("chaos".into()), seed: Some(3), store: Some("sqlite".into()), ..Default::default() };
        assert!(f.disagreements("chaos", 3, None, "sqlite").is_empty());
        let d = f.disagreements("steady", 4, Some("elector-runs-once"), "memory");
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d[2].contains("the plan came from none"));
        // A bare plan (faults only) records no run: nothing to disagree with.
        assert!(PlanFile::default().disagreements("steady", 4, Some("x"), "memory").is_empty());
    }
}
