//! A live replica process: `haywire live-replica`, started by the driver.
//!
//! It hosts the unchanged core `Replica` on real tokio as the simulator's
//! replica node does (sim/src/replica_node.rs): every start of the process,
//! and every rejoin after it fenced itself, is a fresh instance whose id the
//! gateway mints; it serves client sessions over TCP; SIGTERM is a graceful
//! shutdown, after which the process exits 0. Its store and cluster calls go
//! to the driver's gateway; its events go to its own journal.

use crate::clock::RunClock;
use crate::gateway::{GatewayReply, GatewayRequest};
use crate::journal::Journal;
use crate::wire;
use haywire_core::cluster::{Cluster, ClusterError, ClusterReply, ClusterRequest};
use haywire_core::lease::BoxLoop;
use haywire_core::store::{Store, StoreError, StoreReply, StoreRequest};
use haywire_core::worker::{PoolError, Sessions};
use haywire_core::{CoreEvent, InstanceId, Observer, Replica, SystemClock};
use haywire_sim::RunOptions;
use haywire_traces::EventKind;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// How the driver starts a replica process.
#[derive(Clone, Debug)]
pub struct ReplicaArgs {
    /// 0-based; the trace names it `r{index+1}`.
    pub index: usize,
    pub gateway: SocketAddr,
    /// The run's origin on the machine's monotonic clock (µs).
    pub origin_us: u64,
    pub journal: PathBuf,
    /// The run's options record (JSON): the replica config among them.
    pub options: PathBuf,
}

/// A client's request to a replica (as the simulator's `SessionRequest`).
#[derive(Debug, Serialize, Deserialize)]
pub enum SessionRequest {
    Acquire { org: String, session: u64 },
    Release { session: u64 },
    /// Answered with the error the client must see when the session ends
    /// without the client asking, else `Ok` after [`WATCH_KEEPALIVE`].
    Watch { session: u64 },
    Reconnect { session: u64 },
}

/// Why a request got no worker, and whether the client may reconnect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionError {
    pub message: String,
    pub reconnect: bool,
}

impl SessionError {
    fn of(e: PoolError) -> Self {
        SessionError { reconnect: e.reconnectable(), message: e.to_string() }
    }
}

/// The worker id (empty for a release or a quiet watch), or why not.
pub type SessionReply = Result<String, SessionError>;

pub const WATCH_KEEPALIVE: Duration = Duration::from_secs(2);
const REJOIN_POLL: Duration = Duration::from_secs(1);

tokio::task_local! {
    /// The epoch of the leader-gated task running now (set by the probe).
    static LEADER_TASK: u64;
}

/// Core's store seam as calls to the gateway.
struct GatewayStore {
    gateway: SocketAddr,
    from: u64,
}

impl Store for GatewayStore {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        match wire::call(self.gateway, &GatewayRequest::Store { from: self.from, req }).await {
            Ok(GatewayReply::Store(r)) => r,
            Ok(other) => Err(StoreError::Unavailable(format!("gateway answered {other:?}"))),
            Err(e) => Err(StoreError::Unavailable(e)),
        }
    }
}

/// Core's cluster seam as calls to the gateway.
struct GatewayCluster {
    gateway: SocketAddr,
    from: u64,
}

impl Cluster for GatewayCluster {
    async fn call(&self, req: ClusterRequest) -> Result<ClusterReply, ClusterError> {
        let gated = LEADER_TASK.try_with(|e| *e).ok();
        match wire::call(self.gateway, &GatewayRequest::Cluster { from: self.from, gated, req }).await {
            Ok(GatewayReply::Cluster(r)) => r,
            Ok(other) => Err(ClusterError::Unavailable(format!("gateway answered {other:?}"))),
            Err(e) => Err(ClusterError::Unavailable(e)),
        }
    }
}

/// Core's observations into the journal, and the task probe (see the
/// simulator's `TraceObserver`).
struct JournalObserver {
    journal: Arc<Journal>,
    node: String,
    inst: u64,
}

impl Observer for JournalObserver {
    fn observe(&self, e: CoreEvent) {
        if let Some(kind) = haywire_sim::core_events::event_kind(e) {
            self.journal.record(&self.node, Some(self.inst), kind);
        }
    }

    fn leader_task(&self, name: &'static str, epoch: u64, task: BoxLoop) -> BoxLoop {
        let (journal, node, inst) = (self.journal.clone(), self.node.clone(), self.inst);
        Box::pin(async move {
            journal.record(&node, Some(inst), EventKind::LoopStarted { name: name.into(), epoch });
            LEADER_TASK.scope(epoch, task).await;
            journal.record(&node, Some(inst), EventKind::LoopStopped { name: name.into(), epoch });
        })
    }
}

/// The process's main. Exit 0 after a graceful shutdown; 2 when it cannot
/// start (bad arguments, unreadable options, no gateway).
pub fn replica_main(args: ReplicaArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("haywire live-replica: cannot start tokio: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("haywire live-replica: {e}");
            ExitCode::from(2)
        }
    }
}

type Serving = Arc<Mutex<Option<Arc<dyn Sessions>>>>;

async fn run(args: ReplicaArgs) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot catch SIGTERM: {e}"))?;
    // A replica outlives no driver: if the driver dies (killed, Ctrl-C'd
    // past its cleanup), this process is re-parented and exits.
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(3);
            }
        }
    });
    let text = std::fs::read_to_string(&args.options).map_err(|e| format!("read {}: {e}", args.options.display()))?;
    let opts: RunOptions = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.options.display()))?;
    let journal = Arc::new(Journal::create(&args.journal, RunClock { origin_us: args.origin_us })?);
    let name = format!("r{}", args.index + 1);
    let serving: Serving = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(wire::serve(listener, {
        let serving = serving.clone();
        move |req: SessionRequest| serve_session(serving.clone(), req)
    }));
    // The driver reads this line to find the process's session port.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "port {port}");
    let _ = out.flush();

    loop {
        let inst = match wire::call(args.gateway, &GatewayRequest::Mint { replica: args.index }).await {
            Ok(GatewayReply::Minted(id)) => id,
            other => return Err(format!("the gateway minted no instance id: {other:?}")),
        };
        let store = Arc::new(GatewayStore { gateway: args.gateway, from: inst });
        let cluster = Arc::new(GatewayCluster { gateway: args.gateway, from: inst });
        let clock = Arc::new(SystemClock::new());
        let obs = Arc::new(JournalObserver { journal: journal.clone(), node: name.clone(), inst });
        // The process is up as this instance: the host's word, not core's.
        journal.record(&name, Some(inst), EventKind::Started);
        let replica = Replica::start(InstanceId(inst), opts.replica.clone(), store.clone(), clock, cluster, obs)
            .map_err(|e| format!("replica config rejected: {e}"))?;
        *serving.lock().unwrap_or_else(|p| p.into_inner()) = Some(replica.sessions());
        let fenced = replica.fenced();
        tokio::select! {
            biased;
            _ = fenced => {}
            _ = term.recv() => {
                replica.shutdown().await;
                return Ok(());
            }
        }
        // Fenced: drop the instance (its tasks end), serve nothing, and
        // rejoin as a new instance once the store answers (docs/design.md §2.6).
        *serving.lock().unwrap_or_else(|p| p.into_inner()) = None;
        drop(replica);
        journal.record("sim", None, EventKind::SelfFenced { target: name.clone() });
        loop {
            let probe = tokio::time::timeout(REJOIN_POLL, store.call(StoreRequest::ListInstances));
            tokio::select! {
                biased;
                _ = term.recv() => return Ok(()),
                answered = probe => if let Ok(Ok(_)) = answered { break },
            }
            tokio::time::sleep(REJOIN_POLL).await;
        }
    }
}

async fn serve_session(serving: Serving, req: SessionRequest) -> Option<SessionReply> {
    let sessions = serving.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(sessions) = sessions else {
        return Some(Err(SessionError { message: "replica is starting".into(), reconnect: true }));
    };
    Some(match req {
        SessionRequest::Acquire { org, session } => sessions.acquire(org, session).await.map_err(SessionError::of),
        SessionRequest::Release { session } => sessions.release(session).await.map(|_| String::new()).map_err(SessionError::of),
        SessionRequest::Watch { session } => tokio::select! {
            biased;
            e = sessions.watch(session) => Err(SessionError::of(e)),
            _ = tokio::time::sleep(WATCH_KEEPALIVE) => Ok(String::new()),
        },
        SessionRequest::Reconnect { session } => sessions.reconnect(session).await.map_err(SessionError::of),
    })
}
