//! A replica machine: a madsim node whose every (re)start runs a fresh core
//! `Replica` as a new instance, on its own skewed clock, talking to the
//! store node over the simulated network.

use crate::clock::SimClock;
use crate::cluster_node::CLUSTER_ADDR;
use crate::processes::ProcessTable;
use crate::recorder::RunRecorder;
use crate::remote_cluster::RemoteCluster;
use crate::remote_store::RemoteStore;
use crate::rpc::{self, Caller, SESSION_PORT, SESSION_TAG};
use crate::store_node::STORE_ADDR;
use crate::world::{Shared, World};
use haywire_core::lease::{stop_requested, BoxLoop};
use haywire_core::store::{Store, StoreRequest};
use haywire_core::worker::Sessions;
use haywire_core::cron::{JobRunner, SettingsCache};
use haywire_core::{CoreEvent, InstanceId, Observer, Replica, ReplicaConfig};
use haywire_core::clock::Clock;
use std::time::Duration;
use haywire_traces::EventKind;
use madsim::net::Endpoint;
use std::sync::Arc;
use haywire_core::signal as watch;

/// Turns core's observations into trace events.
pub struct TraceObserver {
    world: Arc<World>,
    node: String,
    inst: u64,
}

impl Observer for TraceObserver {
    fn observe(&self, e: CoreEvent) {
        if let Some(kind) = crate::core_events::event_kind(e) {
            self.world.recorder.record(&self.node, Some(self.inst), kind);
        }
    }

    /// The task probe: wraps each leader-gated task so that the trace shows
    /// when it really runs (first polled) and really finishes (returned),
    /// and so that every call it makes is marked as leader-gated for its
    /// epoch (see [`rpc::LEADER_TASK`]). A task that dies with its process
    /// records nothing: the injector's crash or exit closes it.
    fn leader_task(&self, name: &'static str, epoch: u64, task: BoxLoop) -> BoxLoop {
        let (world, node, inst) = (self.world.clone(), self.node.clone(), self.inst);
        Box::pin(async move {
            world.recorder.record(&node, Some(inst), EventKind::LoopStarted { name: name.into(), epoch });
            rpc::LEADER_TASK.scope(epoch, task).await;
            world.recorder.record(&node, Some(inst), EventKind::LoopStopped { name: name.into(), epoch });
        })
    }
}

/// A client's request to a replica.
pub enum SessionRequest {
    Acquire { org: String, session: u64 },
    Release { session: u64 },
    /// Answered with the error the client must see when the session ends
    /// without the client asking (its worker died, or the replica fenced
    /// itself or is draining), else with `Ok` after [`WATCH_KEEPALIVE`]:
    /// the client watches again, which tells the replica it is still there.
    Watch { session: u64 },
    /// Go on with a session whose replica went away (docs/design.md §2.5).
    Reconnect { session: u64 },
    /// The settings version this replica serves (empty: none yet).
    ReadSettings,
}

/// The replica's job runner: the outside world in which runs happen. It
/// records when a run really starts and ends (ground truth for C1 and C4),
/// and takes a seeded time. A run core cuts off (its timeout, a shutdown
/// past the drain timeout, a fence) ends `cut`; one that dies with its
/// process ends with the process.
struct SimRunner {
    world: Arc<World>,
    node: String,
    inst: u64,
    run_ms: (u64, u64),
}

/// Records a run's end when its future goes, however it goes.
struct RunEnd {
    world: Arc<World>,
    node: String,
    inst: u64,
    job: String,
    slot_ms: u64,
    done: bool,
}

impl Drop for RunEnd {
    fn drop(&mut self) {
        let how = if self.done { "done" } else { "cut" }.to_string();
        let (job, slot_ms) = (std::mem::take(&mut self.job), self.slot_ms);
        self.world.recorder.record(&self.node, Some(self.inst), EventKind::RunEnded { job, slot_ms, how });
    }
}

impl JobRunner for SimRunner {
    fn run(&self, job: &str, slot: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        use rand::Rng;
        let rec = &self.world.recorder;
        rec.record(&self.node, Some(self.inst), EventKind::RunStarted { job: job.to_string(), slot_ms: slot });
        let (lo, hi) = self.run_ms;
        let ms = if hi > lo { self.world.rng.lock().gen_range(lo..=hi) } else { lo };
        let end = RunEnd {
            world: self.world.clone(),
            node: self.node.clone(),
            inst: self.inst,
            job: job.to_string(),
            slot_ms: slot,
            done: false,
        };
        Box::pin(async move {
            // Moved whole into the future (not just its flag), so it drops
            // with the future.
            let mut end = end;
            crate::timer::sleep(Duration::from_millis(ms)).await;
            end.done = true;
        })
    }
}

/// How long one watch waits before answering that nothing happened.
pub const WATCH_KEEPALIVE: Duration = Duration::from_secs(2);

/// Why a request got no worker, and whether the client may reconnect the
/// session (through this replica later, or another one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionError {
    pub message: String,
    pub reconnect: bool,
}

impl SessionError {
    fn of(e: haywire_core::worker::PoolError) -> Self {
        SessionError { reconnect: e.reconnectable(), message: e.to_string() }
    }
}

/// The worker id (empty for a release or a quiet watch), or why not.
pub type SessionReply = Result<String, SessionError>;

/// How often a fenced process asks the store whether it answers again.
const REJOIN_POLL_MS: u64 = 1_000;

/// The process's main: start as a new instance, serve client sessions, run
/// until asked to shut down, shut down gracefully, then exit (killing
/// whatever still runs). An instance that fences itself is dropped (its
/// tasks end) and the process rejoins as a fresh instance once the store
/// answers (docs/design.md §2.6). A replica not (or no longer) part of the
/// deployment does nothing.
pub async fn process(world: Arc<World>, i: usize, config: ReplicaConfig) {
    let (recorder, processes) = (&world.recorder, &world.processes);
    let (tx, mut rx) = watch::channel(false);
    let (name, clock_spec) = {
        let mut p = processes.lock();
        let m = &mut p.machines[i];
        if !m.enabled {
            return;
        }
        m.shutdown = Some(tx);
        (m.name.clone(), m.clock)
    };
    // Sessions and settings are served by whichever instance the process
    // runs now.
    type Serving = Option<(Arc<dyn Sessions>, Option<Arc<SettingsCache>>)>;
    let current: Arc<std::sync::Mutex<Serving>> = Arc::default();
    let server = match Endpoint::bind(("0.0.0.0", SESSION_PORT)).await {
        Ok(ep) => ep,
        Err(e) => panic!("replica {name} cannot bind its session port: {e}"),
    };
    let serving = current.clone();
    madsim::task::spawn(rpc::serve(server, SESSION_TAG, move |_, req: SessionRequest| {
        let sessions = serving.lock().unwrap_or_else(|p| p.into_inner()).clone();
        async move {
            let Some((sessions, settings)) = sessions else {
                return Some(Err(SessionError { message: "replica is starting".into(), reconnect: true }));
            };
            let reply: SessionReply = match req {
                SessionRequest::Acquire { org, session } => sessions.acquire(org, session).await.map_err(SessionError::of),
                SessionRequest::Release { session } => {
                    sessions.release(session).await.map(|_| String::new()).map_err(SessionError::of)
                }
                SessionRequest::Watch { session } => tokio::select! {
                    biased;
                    e = sessions.watch(session) => Err(SessionError::of(e)),
                    _ = crate::timer::sleep(WATCH_KEEPALIVE) => Ok(String::new()),
                },
                SessionRequest::Reconnect { session } => sessions.reconnect(session).await.map_err(SessionError::of),
                SessionRequest::ReadSettings => {
                    Ok(settings.and_then(|s| s.current()).map(|r| r.version.to_string()).unwrap_or_default())
                }
            };
            Some(reply)
        }
    }));
    loop {
        let inst = processes.lock().mint_instance(i);
        let ep = match Endpoint::bind("0.0.0.0:0").await {
            Ok(ep) => ep,
            Err(e) => panic!("replica {name} cannot bind a socket: {e}"),
        };
        let caller = Arc::new(Caller::new(ep, inst, i, inst));
        let store = Arc::new(RemoteStore::new(caller.clone(), STORE_ADDR));
        let cluster = Arc::new(RemoteCluster::new(caller, CLUSTER_ADDR));
        let clock = Arc::new(SimClock::new(recorder.origin(), clock_spec));
        let obs = Arc::new(TraceObserver { world: world.clone(), node: name.clone(), inst });
        // The process is up as this instance: the host's word, not core's.
        recorder.record(&name, Some(inst), EventKind::Started);
        // Options are validated before the run, so this cannot fail here.
        let runner: Option<Arc<dyn JobRunner>> = config.cron.enabled.then(|| {
            let run_ms = world.clients.lock().workload.cron.run_ms;
            Arc::new(SimRunner { world: world.clone(), node: name.clone(), inst, run_ms }) as Arc<dyn JobRunner>
        });
        let started = Replica::start_with_runner(InstanceId(inst), config.clone(), store.clone(), clock.clone(), cluster, obs, runner);
        let replica = match started {
            Ok(r) => r,
            Err(e) => panic!("replica config rejected after validation: {e}"),
        };
        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some((replica.sessions(), replica.settings_cache()));
        let fenced = replica.fenced();
        let graceful = async {
            stop_requested(&mut rx).await;
            replica.shutdown().await;
        };
        tokio::select! {
            biased;
            _ = fenced => {}
            _ = graceful => break,
        }
        // Fenced: the instance has stopped itself; dropping it ends its
        // tasks. It serves nothing until the process rejoins.
        *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        drop_fenced(processes, recorder, i);
        let store_answers = async {
            loop {
                let probe = StoreRequest::ListInstances;
                let call = crate::timer::timeout(Duration::from_millis(REJOIN_POLL_MS), store.call(probe));
                if let Ok(Ok(_)) = call.await {
                    return;
                }
                clock.sleep(Duration::from_millis(REJOIN_POLL_MS)).await;
            }
        };
        tokio::select! {
            biased;
            _ = stop_requested(&mut rx) => break,
            _ = store_answers => {}
        }
    }
    // Process exit: nothing of this incarnation runs past this point.
    {
        let mut p = processes.lock();
        p.machines[i].exited = true;
        p.machines[i].shutdown = None;
    }
    recorder.record("sim", None, EventKind::Exited { target: name, graceful: true });
    madsim::runtime::Handle::current().kill(madsim::plugin::node());
}

/// Replica `i`'s instance fenced itself and its host dropped it: no task of
/// it runs any more. The process stays up and rejoins as a new instance once
/// the store answers (see [`process`]).
fn drop_fenced(processes: &Shared<ProcessTable>, recorder: &RunRecorder, i: usize) {
    let name = {
        let mut p = processes.lock();
        p.machines[i].instance = None;
        p.machines[i].name.clone()
    };
    recorder.record("sim", None, EventKind::SelfFenced { target: name });
}
