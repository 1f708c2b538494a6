//! Running one seed of one scenario: `run(scenario, seed, config) -> Outcome`.

use crate::faults::FaultPlan;
use crate::injector::{Injector, Servers};
use crate::bounds::oracle_params;
use crate::oracle::{Oracle, Violation};
use crate::options::{RunOptions, StoreKind};
use crate::{admin_node, client_node};
use crate::cluster_node::{self, CLUSTER_ADDR};
use crate::recorder::Recording;
use crate::replica_node;
use crate::scenario::Scenario;
use crate::store_node::{self, STORE_ADDR};
use crate::world::World;
use haywire_core::store::{MemStore, SqliteStore, StoreBackend};
use haywire_core::Mutant;
use haywire_traces::{EventKind, Trace, TraceHeader, FORMAT};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use crate::addresses::{admin_ip, client_ip, replica_ip};
use std::time::Duration;

/// How a run is set up beyond its seed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunConfig {
    /// Put one field-report bug back into core.
    pub mutant: Option<Mutant>,
    /// Override the scenario's store backend.
    pub store: Option<StoreKind>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Idle worker-time beyond TTL + one reap interval (ms), over the run
    /// and after the quiet period settled (the latter must be 0).
    pub idle_overdue_ms: u64,
    pub idle_overdue_quiet_ms: u64,
    /// Headroom placeholder pods: the most at once, and pod-ms over the run
    /// (what a core's headroom costs, to compare with the clean core's).
    pub placeholder_peak: u64,
    pub placeholder_ms: u64,
    pub sessions: u64,
    pub workers: u64,
    pub events: u64,
    /// Requests that reached the store node.
    pub store_requests: u64,
    pub sim_ms: u64,
    pub acquisitions: u64,
    pub effects: u64,
    pub faults: u64,
    /// Sessions whose replica went away (docs/design.md §2.5).
    pub continuity: Continuity,
    /// What became of cron's slots (docs/design.md §2.7).
    pub cron: CronTally,
}

/// Cron's slots over a run, from the store's fire records and the runs the
/// outside world saw: each slot that got a record was run, recorded missed
/// by the policy, or skipped at the fleet's cap; `duplicated` counts runs
/// of a slot beyond its first (C1 forbids any); lateness is from a slot to
/// its run record's commit.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CronTally {
    pub run: u64,
    pub missed: u64,
    pub at_cap: u64,
    pub duplicated: u64,
    pub worst_late_ms: u64,
    pub late_ms: Vec<u64>,
}

impl CronTally {
    fn of(events: &[haywire_traces::Event]) -> CronTally {
        let mut c = CronTally::default();
        let mut ran = std::collections::BTreeSet::new();
        for e in events {
            match &e.kind {
                EventKind::FireWrite { slot_ms, kind, result, .. } if result == "committed" => match kind.as_str() {
                    "run" => {
                        let late = (e.t / 1000).saturating_sub(*slot_ms);
                        c.run += 1;
                        c.worst_late_ms = c.worst_late_ms.max(late);
                        c.late_ms.push(late);
                    }
                    "missed" => c.missed += 1,
                    _ => c.at_cap += 1,
                },
                EventKind::RunStarted { job, slot_ms } => {
                    if !ran.insert((job.clone(), *slot_ms)) {
                        c.duplicated += 1;
                    }
                }
                _ => {}
            }
        }
        c
    }

    pub fn add(&mut self, other: &CronTally) {
        self.run += other.run;
        self.missed += other.missed;
        self.at_cap += other.at_cap;
        self.duplicated += other.duplicated;
        self.worst_late_ms = self.worst_late_ms.max(other.worst_late_ms);
        self.late_ms.extend_from_slice(&other.late_ms);
    }

    /// "cron: N slots settled: R run, M missed by policy, C skipped at the
    /// cap, D duplicated; run lateness median X s, worst Y s", or None
    /// without cron.
    pub fn summary(&self) -> Option<String> {
        let due = self.run + self.missed + self.at_cap;
        if due == 0 {
            return None;
        }
        let mut late = self.late_ms.clone();
        late.sort_unstable();
        let median = late.get(late.len() / 2).copied().unwrap_or(0);
        Some(format!(
            "cron: {due} slots settled: {} run, {} missed by policy, {} skipped at the cap, {} duplicated; run lateness \
             median {:.1}s, worst {:.1}s",
            self.run,
            self.missed,
            self.at_cap,
            self.duplicated,
            median as f64 / 1000.0,
            self.worst_late_ms as f64 / 1000.0
        ))
    }
}

/// What became of the sessions whose replica went away, from the clients'
/// events: each episode (from a client's first reconnect to its answer)
/// ended resumed, ended with an error to the client, or not at all by the
/// end of the run (lost: S7 forbids it).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Continuity {
    pub resumed: u64,
    pub ended_with_error: u64,
    pub lost: u64,
    /// How long each resumed episode took (ms), in trace order.
    pub resume_ms: Vec<u64>,
}

impl Continuity {
    fn of(events: &[haywire_traces::Event]) -> Continuity {
        let mut c = Continuity::default();
        let mut open: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
        for e in events {
            match &e.kind {
                EventKind::SessionReconnecting { session, .. } => {
                    open.entry(*session).or_insert(e.t);
                }
                EventKind::SessionResumed { session, .. } => {
                    if let Some(since) = open.remove(session) {
                        c.resumed += 1;
                        c.resume_ms.push((e.t - since) / 1000);
                    }
                }
                EventKind::SessionLost { session, .. } => {
                    if open.remove(session).is_some() {
                        c.ended_with_error += 1;
                    }
                }
                _ => {}
            }
        }
        c.lost = open.len() as u64;
        c
    }

    /// Add another run's.
    pub fn add(&mut self, other: &Continuity) {
        self.resumed += other.resumed;
        self.ended_with_error += other.ended_with_error;
        self.lost += other.lost;
        self.resume_ms.extend_from_slice(&other.resume_ms);
    }

    /// "N resumed, M ended with an error, K lost; time to resume: median X s,
    /// worst Y s", or None if no session's replica went away.
    pub fn summary(&self) -> Option<String> {
        if self.resumed + self.ended_with_error + self.lost == 0 {
            return None;
        }
        let mut times = self.resume_ms.clone();
        times.sort_unstable();
        let secs = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
        let timing = match (times.get(times.len() / 2), times.last()) {
            (Some(&median), Some(&worst)) => format!("; time to resume: median {}, worst {}", secs(median), secs(worst)),
            _ => String::new(),
        };
        Some(format!(
            "sessions whose replica went away: {} resumed, {} ended with an error, {} lost{timing}",
            self.resumed, self.ended_with_error, self.lost
        ))
    }
}

pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    /// The mutant and store override it ran with.
    pub config: RunConfig,
    pub options: RunOptions,
    pub plan: FaultPlan,
    pub trace: Trace,
    pub violation: Option<Violation>,
    pub stats: Stats,
    /// Where a replaced plan came from, for the replay command (set by the
    /// caller that read it).
    pub plan_file: Option<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }
}

/// Expand a seed into the options record and fault plan it stands for.
pub fn expand(scenario: &dyn Scenario, seed: u64, cfg: &RunConfig) -> Result<(RunOptions, FaultPlan), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut opts = scenario.options(&mut rng);
    if let Some(m) = cfg.mutant {
        opts.replica.mutants = haywire_core::Mutants::only(m);
    }
    if let Some(s) = cfg.store {
        opts.store = s;
    }
    opts.validate().map_err(|e| format!("scenario {} seed {seed}: {e}", scenario.name()))?;
    let plan = scenario.plan(&opts, &mut rng).sorted();
    Ok((opts, plan))
}

fn backend(kind: StoreKind) -> Result<Box<dyn StoreBackend>, String> {
    Ok(match kind {
        StoreKind::Memory => Box::new(MemStore::new()),
        StoreKind::Sqlite => Box::new(SqliteStore::open_in_memory().map_err(|e| e.to_string())?),
    })
}

/// Run one seed. `Err` only for a world that cannot be built (bad options,
/// store that will not open); a broken invariant is an `Ok` outcome with a
/// violation.
pub fn run(scenario: &dyn Scenario, seed: u64, cfg: &RunConfig) -> Result<Outcome, String> {
    run_with_plan(scenario, seed, cfg, None)
}

/// Run one seed with its fault plan replaced by `plan` (a shrunk or edited
/// one); the rest of the world is still the seed's.
pub fn run_with_plan(
    scenario: &dyn Scenario,
    seed: u64,
    cfg: &RunConfig,
    plan: Option<FaultPlan>,
) -> Result<Outcome, String> {
    let (opts, drawn) = expand(scenario, seed, cfg)?;
    if let Some(p) = &plan {
        let problems = p.problems(&opts);
        if !problems.is_empty() {
            return Err(format!(
                "the plan does not fit scenario {} seed {seed} ({} replicas, fault phase {} ms):\n  {}",
                scenario.name(),
                opts.replicas,
                opts.fault_phase_ms,
                problems.join("\n  ")
            ));
        }
    }
    let custom = plan.is_some();
    let plan = plan.map(FaultPlan::sorted).unwrap_or(drawn);
    warm_up_sqlite();
    // Each run gets a thread of its own: std's HashMap keys are per thread
    // and seeded once, and madsim can make them deterministic only on a
    // thread that has built no HashMap yet. Nothing may build one before the
    // runtime (the SQLite backend does, so it is opened after).
    let ((events, violation, overdue, headroom), store_requests) = std::thread::scope(|s| {
        s.spawn(|| simulate_seed(seed, &opts, &plan))
            .join()
            .map_err(|p| format!("scenario {} seed {seed} panicked: {}", scenario.name(), panic_message(&p)))
    })??;
    let options_json = serde_json::to_value(&opts).map_err(|e| e.to_string())?;
    let trace = Trace {
        header: TraceHeader {
            haywire_trace: FORMAT,
            scenario: scenario.name().to_string(),
            seed,
            mutant: cfg.mutant.map(|m| m.name().to_string()),
            options: options_json,
            plan: if custom { Some(serde_json::to_value(&plan).map_err(|e| e.to_string())?) } else { None },
            live: None,
        },
        events,
    };
    let mut stats = stats(&trace, plan.faults.len());
    stats.store_requests = store_requests;
    (stats.idle_overdue_ms, stats.idle_overdue_quiet_ms) = (overdue.0 / 1000, overdue.1 / 1000);
    (stats.placeholder_peak, stats.placeholder_ms) = (headroom.0 as u64, (headroom.1 / 1000) as u64);
    Ok(Outcome {
        scenario: scenario.name().to_string(),
        seed,
        config: cfg.clone(),
        options: opts,
        plan,
        trace,
        violation,
        stats,
        plan_file: None,
    })
}

/// SQLite initialises process-wide state the first time it is used, and
/// doing that inside a simulation perturbs it: the first seed run in a
/// process would differ from the same seed run later (so a fresh `replay`
/// would not reproduce a sweep). Do it once, outside any simulation, going
/// through every kind of operation.
fn warm_up_sqlite() {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let Ok(mut b) = SqliteStore::open_in_memory() else { return };
        let (a, b_) = (haywire_core::InstanceId(1), haywire_core::InstanceId(2));
        let _ = b.read_lease("warm");
        let _ = b.acquire_lease("warm", a, None, 10, 0);
        let _ = b.acquire_lease("warm", b_, Some(1), 10, 1);
        let _ = b.renew_lease("warm", a, 1, 10, 2);
        let _ = b.renew_lease("warm", b_, 2, 10, 3);
        let _ = b.fenced_effect("warm", a, 1, "e", 4);
        let _ = b.fenced_effect("warm", b_, 1, "e", 5);
        let _ = b.release_lease("warm", b_, 2, 6);
        let _ = b.release_lease("warm", a, 2, 7);
        let _ = b.effects();
        let _ = b.register_instance(a, Some(10), 8);
        let _ = b.drain_instance(a, Some(10), 9);
        let _ = b.list_instances();
    });
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// One seed on the current (fresh) thread: what its recorder recorded.
fn simulate_seed(seed: u64, opts: &RunOptions, plan: &FaultPlan) -> Result<(Recording, u64), String> {
    let mut config = madsim::Config::default();
    let (lo, hi) = opts.latency_ms;
    config.net.send_latency = Duration::from_millis(lo)..Duration::from_millis(hi.max(lo + 1));
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, config);
    let backend = backend(opts.store)?;
    let params = oracle_params(opts);
    let world_opts = opts.clone();
    let world_plan = plan.clone();
    Ok(rt.block_on(async move {
        let oracle = Oracle::new(params, world_opts.replicas);
        let world = World::new(&world_opts, seed, backend, oracle);
        let nodes = simulate(world.clone(), &world_opts, world_plan).await;
        let requests = world.store.lock().requests;
        let recording = world.recorder.take();
        tear_down(&nodes).await;
        (recording, requests)
    }))
}

/// Kill every node and let the executor drop their tasks. madsim does not
/// cancel the tasks still pending when its runtime drops
/// (madsim-rs/madsim#242), and each holds the world: without this every
/// seed leaked its whole world (store, oracle, trace), about a megabyte
/// a chaos seed, until a 1,000-seed sweep of every scenario ran out of
/// memory.
async fn tear_down(nodes: &[madsim::task::NodeId]) {
    let handle = madsim::runtime::Handle::current();
    for &id in nodes {
        handle.kill(id);
    }
    crate::timer::sleep(Duration::from_millis(1)).await;
}

/// The simulation itself, inside madsim; the nodes it made.
async fn simulate(world: std::sync::Arc<World>, opts: &RunOptions, plan: FaultPlan) -> Vec<madsim::task::NodeId> {
    let handle = madsim::runtime::Handle::current();
    let w = world.clone();
    let store = handle
        .create_node()
        .name("store")
        .ip(STORE_ADDR.ip())
        .init(move || store_node::serve(w.clone()))
        .build();
    let w = world.clone();
    let cluster = handle
        .create_node()
        .name("cluster")
        .ip(CLUSTER_ADDR.ip())
        .init(move || cluster_node::serve(w.clone()))
        .build();
    let servers = Servers { store: store.id(), cluster: cluster.id() };
    let mut nodes = vec![store.id(), cluster.id()];
    for i in 0..opts.replicas {
        let w = world.clone();
        let config = opts.replica.clone();
        let name = world.processes.lock().machines[i].name.clone();
        let node = handle
            .create_node()
            .name(name)
            .ip(replica_ip(i))
            .init(move || replica_node::process(w.clone(), i, config.clone()))
            .build();
        world.processes.lock().machines[i].node = Some(node.id());
        nodes.push(node.id());
    }

    for c in 0..opts.workload.clients {
        let w = world.clone();
        let node = handle
            .create_node()
            .name(format!("c{}", c + 1))
            .ip(client_ip(c))
            .init(move || client_node::run(w.clone(), c))
            .build();
        nodes.push(node.id());
    }

    if opts.workload.cron.jobs > 0 {
        let (a, r) = (world.clone(), world.clone());
        let node = handle
            .create_node()
            .name("admin")
            .ip(admin_ip())
            .init(move || {
                let (a, r) = (a.clone(), r.clone());
                async move {
                    madsim::task::spawn(admin_node::readers(r));
                    admin_node::admin(a).await
                }
            })
            .build();
        nodes.push(node.id());
    }

    let injector = Injector::new(world.clone(), servers, opts);
    let injector = injector.run(plan);
    let fault_phase = Duration::from_millis(opts.fault_phase_ms);
    let quiet = Duration::from_millis(opts.quiet_ms);
    // The quiet period starts when the fault phase is over *and* every
    // fault has healed (a slow shutdown can outlast the phase).
    let phases = async {
        tokio::join!(crate::timer::sleep(fault_phase), injector);
        world.clients.lock().quiet = true;
        world.recorder.record("sim", None, EventKind::QuietPeriod);
        crate::timer::sleep(quiet).await;
    };
    tokio::select! {
        biased;
        _ = world.recorder.violated() => {}
        _ = phases => world.recorder.finish(),
    }
    world.recorder.end_run();
    nodes
}

fn stats(trace: &Trace, faults: usize) -> Stats {
    let mut s = Stats { events: trace.events.len() as u64, faults: faults as u64, ..Default::default() };
    s.sim_ms = trace.events.last().map(|e| e.t / 1000).unwrap_or(0);
    s.continuity = Continuity::of(&trace.events);
    s.cron = CronTally::of(&trace.events);
    for e in &trace.events {
        match e.kind {
            EventKind::LeaseAcquired { .. } => s.acquisitions += 1,
            EventKind::EffectWrite { applied: true, .. } => s.effects += 1,
            EventKind::SessionRequested { .. } => s.sessions += 1,
            EventKind::WorkerWrite { applied: true, op: haywire_traces::WorkerOp::Insert, .. } => s.workers += 1,
            _ => {}
        }
    }
    s
}

