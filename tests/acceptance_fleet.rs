//! Field report 004's acceptance cases for the worker fleet, as
//! deterministic simulations over many seeds (and field report 002's
//! `hot_idle_retired` e2e case):
//!
//! 1. A control-plane instance force-deleted while it owns workers has all
//!    its pods gone within 90 s: the pods of the workers the store held it
//!    owning then, save those a reconnecting client's session took over
//!    and those a live replica took from the shared idle pool for a new
//!    session before then (they live on, by design: docs/design.md §2.5).
//! 2. With a 1-minute TTL, once the last session has ended, the worker pod
//!    count reaches the floor (each live instance's newest `min_hot_idle`)
//!    within about 4 minutes.
//!
//! Each world is the fleet world of the named scenarios (clients, pods,
//! reapers; drawn from the seed) with a fixed fault plan, no headroom
//! placeholders (so every pod is a worker's), and a long quiet period.
//! Every fact is computed from the run's trace, and every run must also
//! pass the oracle.

use haywire_sim::{run, Fault, FaultPlan, FaultRates, Outcome, RunConfig, RunOptions, Scenario, Target};
use haywire_traces::{Event, EventKind};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

const S: u64 = 1_000_000;

/// The fleet world with a fixed plan: `crash_at` (seconds) force-deletes
/// replica r1 for the rest of the run; `None` runs without faults.
struct Fleet {
    name: &'static str,
    crash_at: Option<u64>,
}

impl Scenario for Fleet {
    fn name(&self) -> &'static str {
        self.name
    }

    fn about(&self) -> &'static str {
        "acceptance test: the fleet world with a fixed fault plan"
    }

    fn options(&self, rng: &mut ChaCha8Rng) -> RunOptions {
        let mut opts = haywire_scenarios::world::fleet(rng);
        opts.faults = FaultRates::default();
        opts.replicas = opts.replicas.max(2);
        opts.initial_replicas = opts.replicas;
        opts.clocks = haywire_scenarios::world::clocks(rng, opts.replicas, 2_000, 5_000);
        opts.replica.fleet.headroom_nodes = 0;
        opts.replica.fleet.hot_idle_ttl_ms = 60_000;
        opts.workload.clients = opts.workload.clients.max(4);
        haywire_scenarios::world::settle_bounds(&mut opts);
        // Room after the last session for the 4-minute bound.
        opts.quiet_ms = opts.quiet_ms.max(300_000);
        opts
    }

    fn plan(&self, opts: &RunOptions, _rng: &mut ChaCha8Rng) -> FaultPlan {
        let mut plan = FaultPlan::default();
        if let Some(at) = self.crash_at {
            // Down until the fault phase is nearly over (the deployment then
            // starts a new instance in its place).
            let down_ms = opts.fault_phase_ms.saturating_sub(at * 1_000 + 3_000);
            plan.push(at * 1_000, Fault::Crash { target: Target::Replica(1), down_ms });
        }
        plan
    }
}

fn run_ok(s: &dyn Scenario, seed: u64) -> Outcome {
    let o = run(s, seed, &RunConfig::default()).unwrap_or_else(|e| panic!("{} seed {seed}: world does not build: {e}", s.name()));
    assert!(o.violation.is_none(), "{} seed {seed}: oracle violation {:?}", s.name(), o.violation);
    o
}

/// Worker pods (not placeholders) alive at the end of `events`, by the
/// instance that created them.
fn worker_pods(events: &[Event]) -> BTreeMap<String, u64> {
    let mut pods = BTreeMap::new();
    for e in events {
        match &e.kind {
            EventKind::PodCreated { from, name, placeholder: false, .. } => {
                pods.insert(name.clone(), *from);
            }
            EventKind::PodDeleted { name, .. } => {
                pods.remove(name);
            }
            _ => {}
        }
    }
    pods
}

/// The workers the store holds `inst` owning (live rows) at `at`, and the
/// ones a live replica put back to use after `at`: a reconnect's takeover
/// (claimed with the row kept hot and bound to its session), or, before
/// `by`, the shared idle pool (a hot-idle worker claimed from any owner and
/// bound to a new session, docs/design.md §2.5).
fn owned_then_resumed(events: &[Event], inst: u64, at: u64, by: u64) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut owner: BTreeMap<String, u64> = BTreeMap::new();
    let mut resumed = BTreeSet::new();
    let mut owned = None;
    for e in events {
        if e.t > at && owned.is_none() {
            owned = Some(owner.iter().filter(|(_, o)| **o == inst).map(|(id, _)| id.clone()).collect::<BTreeSet<_>>());
        }
        if let EventKind::WorkerWrite { op, id, applied: true, worker: Some(row), .. } = &e.kind {
            if row.state.is_terminal() {
                owner.remove(id);
            } else {
                owner.insert(id.clone(), row.owner);
            }
            let serving = row.state == haywire_traces::Lifecycle::Hot && row.session.is_some();
            let takeover = *op == haywire_traces::WorkerOp::Claim && serving;
            let reused = serving && row.owner != inst && e.t <= by;
            if e.t > at && (takeover || reused) {
                resumed.insert(id.clone());
            }
        }
    }
    (owned.unwrap_or_default(), resumed)
}

/// The instance r1 ran when it was force-deleted, and when.
fn crashed(events: &[Event]) -> Option<(u64, u64)> {
    let mut inst = None;
    for e in events {
        match (&e.kind, e.inst) {
            (EventKind::Started, Some(i)) if e.node == "r1" => inst = Some(i),
            (EventKind::Crash { target }, _) if target == "r1" => return inst.map(|i| (i, e.t)),
            _ => {}
        }
    }
    None
}

/// 004: "force-delete a CP owning workers -> its pods gone within 90 s".
#[test]
fn a_force_deleted_instance_has_all_its_pods_gone_within_90_s() {
    let s = Fleet { name: "acceptance-force-delete", crash_at: Some(60) };
    let mut owning = 0;
    for seed in 0..16 {
        let o = run_ok(&s, seed);
        let events = &o.trace.events;
        let (inst, at) = crashed(events).expect("r1 was force-deleted");
        let before: Vec<Event> = events.iter().take_while(|e| e.t <= at).cloned().collect();
        let alive = worker_pods(&before);
        let by = at + 90 * S;
        let (workers, resumed) = owned_then_resumed(events, inst, at, by);
        let owned: BTreeSet<String> = workers
            .difference(&resumed)
            .map(|id| format!("pod-{id}"))
            .filter(|pod| alive.contains_key(pod))
            .collect();
        if owned.is_empty() {
            continue;
        }
        owning += 1;
        let mut left = owned.clone();
        for e in events.iter().filter(|e| e.t <= by) {
            if let EventKind::PodDeleted { name, .. } = &e.kind {
                left.remove(name);
            }
        }
        assert!(
            left.is_empty(),
            "seed {seed}: i{inst} force-deleted at {:.1}s owned pods {owned:?}; still there 90 s later: {left:?}",
            at as f64 / 1e6
        );
    }
    assert!(owning >= 8, "only {owning} of 16 seeds had r1 owning pods when it was force-deleted");
}

/// 002 / 004: "hot_idle_retired (1 m TTL pod count reaches 0 within ~4 min)":
/// here, the floor (each live instance keeps its newest `min_hot_idle`).
#[test]
fn after_the_last_session_the_pod_count_reaches_the_floor_within_4_minutes() {
    let s = Fleet { name: "acceptance-ttl", crash_at: None };
    for seed in 0..16 {
        let o = run_ok(&s, seed);
        let events = &o.trace.events;
        let last_end = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::SessionEnded { .. } | EventKind::SessionLost { .. }))
            .map(|e| e.t)
            .max()
            .expect("sessions ran");
        let by = last_end + 240 * S;
        assert!(events.last().is_some_and(|e| e.t >= by), "seed {seed}: the run ends before the 4-minute mark");
        let upto: Vec<Event> = events.iter().filter(|e| e.t <= by).cloned().collect();
        let pods = worker_pods(&upto);
        let floor = o.options.replica.fleet.min_hot_idle as usize * o.options.replicas;
        assert!(
            pods.len() <= floor,
            "seed {seed}: {} worker pods 4 minutes after the last session ended at {:.1}s (floor {floor}): {:?}",
            pods.len(),
            last_end as f64 / 1e6,
            pods.keys().collect::<Vec<_>>()
        );
    }
}
