//! Field report 001's test plan for cron coordination (docs/design.md
//! §2.7), as deterministic simulations over a few seeds of a cron world
//! with a fixed fault plan:
//!
//! 1. One replica fires every job normally: each due slot runs once.
//! 2. Two replicas share the jobs.
//! 3. Killing the owner of jobs moves them within the dead threshold (30 s)
//!    plus one reconcile (15 s).
//! 4. Scaling 1 -> 2 -> 3 -> 1 replicas loses and duplicates no run.
//!
//! Every fact is computed from the run's trace (the store's job and fire
//! writes, the runs the job runner saw), and every run must also pass the
//! oracle, whose C1–C5 judge the same things on every seed of every
//! scenario; these cases show them happen.

use haywire_core::cron::MissPolicy;
use haywire_sim::{run, Fault, FaultPlan, FaultRates, Outcome, RunConfig, RunOptions, Scenario, Target};
use haywire_traces::{Event, EventKind};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

const SEEDS: u64 = 3;
const S: u64 = 1_000_000;

/// A cron world with `replicas` machines, `initial` of them running, no
/// drawn faults, and a fixed plan.
struct Cron {
    name: &'static str,
    replicas: usize,
    initial: usize,
    plan: fn() -> Vec<(u64, Fault)>,
}

impl Scenario for Cron {
    fn name(&self) -> &'static str {
        self.name
    }

    fn about(&self) -> &'static str {
        "acceptance test: cron jobs through a fixed plan"
    }

    fn options(&self, rng: &mut ChaCha8Rng) -> RunOptions {
        let mut opts = haywire_scenarios::world::base(rng);
        opts.replicas = self.replicas;
        opts.initial_replicas = self.initial;
        opts.clocks = haywire_scenarios::world::clocks(rng, self.replicas, 2_000, 5_000);
        haywire_scenarios::world::with_cron(&mut opts, rng);
        opts.faults = FaultRates::default();
        opts.fault_phase_ms = 200_000;
        // Every slot runs, however late: no policy or cap skips one, so a
        // lost run cannot hide as a skip.
        opts.replica.cron.policy = MissPolicy::CatchUp { limit: 100 };
        opts.replica.cron.max_concurrent_runs = 0;
        opts.workload.cron.jobs = 6;
        haywire_scenarios::world::settle_bounds(&mut opts);
        opts
    }

    fn plan(&self, _opts: &RunOptions, _rng: &mut ChaCha8Rng) -> FaultPlan {
        let mut plan = FaultPlan::default();
        for (at, f) in (self.plan)() {
            plan.push(at, f);
        }
        plan
    }
}

fn run_ok(s: &dyn Scenario, seed: u64) -> Outcome {
    let o = run(s, seed, &RunConfig::default()).unwrap_or_else(|e| panic!("{} seed {seed}: world does not build: {e}", s.name()));
    assert!(o.violation.is_none(), "{} seed {seed}: oracle violation {:?}", s.name(), o.violation);
    o
}

/// What the trace says of cron: each committed record's kind by (job,
/// slot), the runs started (with their instance), and each job's owner
/// changes (time, new owner).
#[derive(Default)]
struct Story {
    records: BTreeMap<(String, u64), String>,
    runs: Vec<((String, u64), u64)>,
    owners: BTreeMap<String, Vec<(u64, Option<u64>)>>,
}

fn story(events: &[Event]) -> Story {
    let mut s = Story::default();
    for e in events {
        match &e.kind {
            EventKind::FireWrite { job, slot_ms, kind, result, .. } if result == "committed" => {
                s.records.insert((job.clone(), *slot_ms), kind.clone());
            }
            EventKind::RunStarted { job, slot_ms } => s.runs.push(((job.clone(), *slot_ms), e.inst.unwrap_or(0))),
            EventKind::JobWrite { id, op, applied: true, job: Some(row), .. } if op == "claim" => {
                s.owners.entry(id.clone()).or_default().push((e.t, row.owner));
            }
            _ => {}
        }
    }
    s
}

impl Story {
    /// Every record is a run, and every run record ran exactly once.
    fn every_slot_ran_once(&self, what: &str) {
        let mut seen = BTreeSet::new();
        for (key, inst) in &self.runs {
            assert!(seen.insert(key.clone()), "{what}: slot {key:?} ran twice (again on i{inst})");
        }
        for (key, kind) in &self.records {
            assert_eq!(kind, "run", "{what}: slot {key:?} was {kind}, not run");
            assert!(seen.contains(key), "{what}: slot {key:?} committed a run that never started");
        }
        assert!(self.records.len() >= 20, "{what}: only {} slots ran", self.records.len());
    }

    fn run_instances(&self) -> BTreeSet<u64> {
        self.runs.iter().map(|(_, i)| *i).collect()
    }
}

#[test]
fn one_replica_fires_every_slot_once() {
    let s = Cron { name: "cron-one-replica", replicas: 1, initial: 1, plan: Vec::new };
    for seed in 0..SEEDS {
        let st = story(&run_ok(&s, seed).trace.events);
        st.every_slot_ran_once(&format!("seed {seed}"));
        assert_eq!(st.run_instances().len(), 1, "seed {seed}");
    }
}

#[test]
fn two_replicas_share_the_jobs() {
    let s = Cron { name: "cron-two-replicas", replicas: 2, initial: 2, plan: Vec::new };
    for seed in 0..SEEDS {
        let st = story(&run_ok(&s, seed).trace.events);
        st.every_slot_ran_once(&format!("seed {seed}"));
        assert_eq!(st.run_instances().len(), 2, "seed {seed}: both replicas run jobs");
        let mut first_owner: BTreeMap<Option<u64>, usize> = BTreeMap::new();
        for owners in st.owners.values() {
            *first_owner.entry(owners[0].1).or_default() += 1;
        }
        let counts: Vec<usize> = first_owner.values().copied().collect();
        assert!(counts.len() == 2 && counts.iter().all(|c| *c == 3), "seed {seed}: least-loaded split 3/3, got {first_owner:?}");
    }
}

#[test]
fn killing_the_owner_moves_its_jobs_within_the_threshold_and_a_reconcile() {
    const CRASH: u64 = 60_000;
    let s = Cron {
        name: "cron-owner-killed",
        replicas: 3,
        initial: 3,
        plan: || vec![(CRASH, Fault::Crash { target: Target::Replica(1), down_ms: 120_000 })],
    };
    for seed in 0..SEEDS {
        let o = run_ok(&s, seed);
        let events = &o.trace.events;
        let victim = events
            .iter()
            .find(|e| e.node == "r1" && matches!(e.kind, EventKind::Started))
            .and_then(|e| e.inst)
            .expect("r1 started");
        let st = story(events);
        st.every_slot_ran_once(&format!("seed {seed}"));
        let mut moved = 0;
        for (job, owners) in &st.owners {
            let owned_at_crash = owners.iter().rev().find(|(t, _)| *t <= CRASH * 1000).and_then(|(_, o)| *o);
            if owned_at_crash != Some(victim) {
                continue;
            }
            let (t, new) = owners.iter().find(|(t, _)| *t > CRASH * 1000).copied().unwrap_or_else(|| panic!("seed {seed}: {job} never moved"));
            assert!(new.is_some() && new != Some(victim), "seed {seed}: {job} moved to {new:?}");
            let took = t - CRASH * 1000;
            assert!(took <= (30 + 15 + 2) * S, "seed {seed}: {job} moved {}ms after the crash", took / 1000);
            moved += 1;
        }
        assert!(moved > 0, "seed {seed}: the crashed replica owned no job");
    }
}

#[test]
fn scaling_one_two_three_one_loses_and_duplicates_no_run() {
    let s = Cron {
        name: "cron-scale-1-2-3-1",
        replicas: 3,
        initial: 1,
        plan: || {
            vec![
                (40_000, Fault::ScaleUp),
                (80_000, Fault::ScaleUp),
                (120_000, Fault::ScaleDown { target: Target::Replica(2) }),
                (150_000, Fault::ScaleDown { target: Target::Replica(3) }),
            ]
        },
    };
    for seed in 0..SEEDS {
        let o = run_ok(&s, seed);
        let st = story(&o.trace.events);
        st.every_slot_ran_once(&format!("seed {seed}"));
        assert!(st.run_instances().len() >= 2, "seed {seed}: the joiners ran jobs too");
        // The last word on every job: owned by the one replica left.
        let last: BTreeSet<Option<u64>> = st.owners.values().map(|o| o.last().map(|(_, o)| *o).unwrap_or(None)).collect();
        assert_eq!(last.len(), 1, "seed {seed}: jobs end with one owner, got {last:?}");
        assert!(last.iter().all(|o| o.is_some()), "seed {seed}: a job ended unowned");
    }
}
