//! Field report 003's acceptance cases for sessions that outlive their
//! replica (docs/design.md §2.5), as deterministic simulations over a few
//! seeds of the fleet world with a fixed fault plan:
//!
//! 1. A session survives its replica's crash and continues on the same
//!    worker, through another replica.
//! 2. A rolling deploy of every replica loses no session.
//! 3. Two simultaneous reconnects of one session (every reconnect goes
//!    through two replicas at once) leave exactly one replica serving it.
//!
//! Every fact is computed from the run's trace, and every run must also
//! pass the oracle (S7 judges the same things on every seed of every
//! scenario; these cases show them happen).

use haywire_sim::{run, Fault, FaultPlan, FaultRates, Outcome, RunConfig, RunOptions, Scenario, Target};
use haywire_traces::{Event, EventKind};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

const SEEDS: u64 = 4;
const S: u64 = 1_000_000;

/// The fleet world, long sessions, no drawn faults, and one fixed fault.
struct Sessions {
    name: &'static str,
    fault: fn(&RunOptions) -> Fault,
    dup_reconnect_pct: u32,
}

impl Scenario for Sessions {
    fn name(&self) -> &'static str {
        self.name
    }

    fn about(&self) -> &'static str {
        "acceptance test: long sessions through one fixed fault"
    }

    fn options(&self, rng: &mut ChaCha8Rng) -> RunOptions {
        let mut opts = haywire_scenarios::world::fleet(rng);
        opts.faults = FaultRates::default();
        opts.replicas = opts.replicas.max(3);
        opts.initial_replicas = opts.replicas;
        opts.clocks = haywire_scenarios::world::clocks(rng, opts.replicas, 2_000, 5_000);
        opts.fault_phase_ms = 200_000;
        opts.workload.clients = opts.workload.clients.max(4);
        // Longer than a drain, and than a crash takes to be noticed.
        opts.workload.session_ms = (40_000, 90_000);
        opts.workload.dup_reconnect_pct = self.dup_reconnect_pct;
        haywire_scenarios::world::settle_bounds(&mut opts);
        opts
    }

    fn plan(&self, opts: &RunOptions, _rng: &mut ChaCha8Rng) -> FaultPlan {
        let mut plan = FaultPlan::default();
        plan.push(30_000, (self.fault)(opts));
        plan
    }
}

fn run_ok(s: &dyn Scenario, seed: u64) -> Outcome {
    let o = run(s, seed, &RunConfig::default()).unwrap_or_else(|e| panic!("{} seed {seed}: world does not build: {e}", s.name()));
    assert!(o.violation.is_none(), "{} seed {seed}: oracle violation {:?}", s.name(), o.violation);
    o
}

/// What happened to each session after it started, from the clients'
/// events: the worker it started on, the workers it resumed on, and how it
/// ended (the error, if it was lost).
#[derive(Default, Debug)]
struct Story {
    started_on: String,
    resumed_on: Vec<String>,
    lost: Option<String>,
    ended: bool,
}

fn stories(events: &[Event]) -> BTreeMap<u64, Story> {
    let mut out: BTreeMap<u64, Story> = BTreeMap::new();
    for e in events {
        match &e.kind {
            EventKind::SessionStarted { session, worker } => out.entry(*session).or_default().started_on = worker.clone(),
            EventKind::SessionResumed { session, worker, .. } => out.entry(*session).or_default().resumed_on.push(worker.clone()),
            EventKind::SessionLost { session, error, .. } => out.entry(*session).or_default().lost = Some(error.clone()),
            EventKind::SessionEnded { session, .. } => out.entry(*session).or_default().ended = true,
            _ => {}
        }
    }
    out
}

/// Sessions that had started through `replica` and were still going on
/// at `t`.
fn live_through(events: &[Event], replica: &str, t: u64) -> BTreeSet<u64> {
    let mut asked: BTreeMap<u64, String> = BTreeMap::new();
    let mut live = BTreeSet::new();
    for e in events.iter().take_while(|e| e.t <= t) {
        match &e.kind {
            EventKind::SessionRequested { session, replica: r, .. } => {
                asked.insert(*session, r.clone());
            }
            EventKind::SessionStarted { session, .. } if asked.get(session).is_some_and(|r| r == replica) => {
                live.insert(*session);
            }
            EventKind::SessionEnded { session, .. } | EventKind::SessionLost { session, .. } => {
                live.remove(session);
            }
            _ => {}
        }
    }
    live
}

/// r1 crashes at 30 s and stays down until near the end of the fault phase.
fn crash_of_r1(name: &'static str, dup_reconnect_pct: u32) -> Sessions {
    Sessions {
        name,
        fault: |opts| Fault::Crash { target: Target::Replica(1), down_ms: opts.fault_phase_ms - 40_000 },
        dup_reconnect_pct,
    }
}

#[test]
fn a_session_survives_its_replicas_crash_on_the_same_worker() {
    let world = crash_of_r1("acceptance-crash", 0);
    let mut survived = 0;
    for seed in 0..SEEDS {
        let o = run_ok(&world, seed);
        let all = stories(&o.trace.events);
        for s in live_through(&o.trace.events, "r1", 30 * S) {
            let story = &all[&s];
            assert_eq!(story.lost, None, "seed {seed}: session {s} was lost: {story:?}");
            assert!(story.ended, "seed {seed}: session {s} never ended: {story:?}");
            assert!(!story.resumed_on.is_empty(), "seed {seed}: session {s} went on without a reconnect: {story:?}");
            assert!(story.resumed_on.iter().all(|w| *w == story.started_on), "seed {seed}: session {s} moved: {story:?}");
            survived += 1;
        }
    }
    assert!(survived >= SEEDS as usize, "only {survived} sessions were on r1 when it crashed");
}

#[test]
fn a_rolling_deploy_of_every_replica_loses_no_session() {
    let world = Sessions {
        name: "acceptance-rolling-deploy",
        fault: |_| Fault::RollingDeploy { down_ms: 2_000, gap_ms: 3_000 },
        dup_reconnect_pct: 0,
    };
    let mut handed_over = 0;
    for seed in 0..SEEDS {
        let o = run_ok(&world, seed);
        let all = stories(&o.trace.events);
        let lost: Vec<(&u64, &Story)> = all.iter().filter(|(_, s)| s.lost.is_some()).collect();
        assert!(lost.is_empty(), "seed {seed}: sessions lost in a rolling deploy: {lost:?}");
        handed_over += all.values().filter(|s| !s.resumed_on.is_empty()).count();
        let deployed = o.trace.events.iter().filter(|e| matches!(e.kind, EventKind::ShutdownRequested { .. })).count();
        assert_eq!(deployed, o.options.replicas, "seed {seed}: every replica rolled");
    }
    assert!(handed_over > 0, "no session was live across a drain: the case proves nothing");
}

#[test]
fn two_simultaneous_reconnects_leave_exactly_one() {
    let world = crash_of_r1("acceptance-double-reconnect", 100);
    let mut doubles_resumed = 0;
    for seed in 0..SEEDS {
        let o = run_ok(&world, seed);
        // Per session, per attempt (its reconnect events at one instant):
        // how many replicas were asked, and how many answered with a worker
        // before the next attempt.
        let mut attempts: BTreeMap<u64, Vec<(u64, usize, usize)>> = BTreeMap::new();
        for e in &o.trace.events {
            match &e.kind {
                EventKind::SessionReconnecting { session, .. } => {
                    let list = attempts.entry(*session).or_default();
                    match list.last_mut() {
                        Some((t, asked, _)) if *t == e.t => *asked += 1,
                        _ => list.push((e.t, 1, 0)),
                    }
                }
                EventKind::SessionResumed { session, .. } => {
                    if let Some(last) = attempts.get_mut(session).and_then(|l| l.last_mut()) {
                        last.2 += 1;
                    }
                }
                _ => {}
            }
        }
        for (session, list) in &attempts {
            for &(t, asked, answered) in list {
                assert!(answered <= 1, "seed {seed}: session {session}'s reconnect at {t}us was answered {answered} times");
                if asked == 2 && answered == 1 {
                    doubles_resumed += 1;
                }
            }
        }
    }
    assert!(doubles_resumed > 0, "no reconnect through two replicas resumed: the case proves nothing");
}
