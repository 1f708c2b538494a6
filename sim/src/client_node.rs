//! Client nodes: each opens a session on a replica chosen at random, uses
//! its worker for a while, releases it, thinks, and goes again, until the
//! quiet period begins. Every choice comes from the world's seeded RNG.

use crate::replica_node::{SessionReply, SessionRequest};
use crate::rpc::{Caller, SESSION_PORT, SESSION_TAG};
use crate::options::Workload;
use crate::world::{Shared, World};
use haywire_traces::EventKind;
use madsim::net::Endpoint;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long a client waits for a release to be acknowledged.
const RELEASE_PATIENCE: Duration = Duration::from_secs(5);

pub fn replica_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, (i + 1) as u8)), SESSION_PORT)
}

/// What the client nodes share.
pub struct Clients {
    pub workload: Workload,
    /// True once the quiet period began: clients open no new sessions.
    pub quiet: bool,
    next_session: u64,
}

impl Clients {
    pub fn new(workload: Workload) -> Self {
        Clients { workload, quiet: false, next_session: 1 }
    }

    /// A fresh session id.
    fn next_session(&mut self) -> u64 {
        let s = self.next_session;
        self.next_session += 1;
        s
    }
}

/// Exponential think time with the given mean.
fn think(rng: &Shared<ChaCha8Rng>, mean_ms: u64) -> Duration {
    let u: f64 = rng.lock().gen_range(f64::EPSILON..1.0);
    Duration::from_millis((-(mean_ms as f64) * u.ln()) as u64)
}

pub async fn run(world: Arc<World>, client: usize) {
    let name = format!("c{}", client + 1);
    let ep = match Endpoint::bind("0.0.0.0:0").await {
        Ok(ep) => ep,
        Err(e) => panic!("client {name} cannot bind a socket: {e}"),
    };
    let caller = Caller::new(ep, 0, usize::MAX, 1_000_000 + client as u64);
    let World { recorder, processes, clients, rng, .. } = &*world;
    let record = |kind| recorder.record(&name, None, kind);
    let w = clients.lock().workload.clone();
    loop {
        madsim::time::sleep(think(rng, w.think_ms)).await;
        if clients.lock().quiet {
            return;
        }
        let (replica, target) = {
            let p = processes.lock();
            let enabled: Vec<usize> = (0..p.machines.len()).filter(|&i| p.machines[i].enabled).collect();
            if enabled.is_empty() {
                continue;
            }
            let replica = enabled[rng.lock().gen_range(0..enabled.len())];
            (replica, p.machines[replica].name.clone())
        };
        let (org, hold) = {
            let mut rng = rng.lock();
            let org = format!("org{}", rng.gen_range(0..w.orgs.max(1)));
            let (lo, hi) = w.session_ms;
            (org, if hi > lo { rng.gen_range(lo..=hi) } else { lo })
        };
        let session = clients.lock().next_session();
        record(EventKind::SessionRequested { session, org: org.clone(), replica: target });
        let req = SessionRequest::Acquire { org, session };
        let patience = Duration::from_millis(w.patience_ms);
        let reply = madsim::time::timeout(patience, caller.call::<_, SessionReply>(replica_addr(replica), SESSION_TAG, req)).await;
        let worker = match reply {
            Ok(Ok(Ok(worker))) => worker,
            Ok(Ok(Err(error))) | Ok(Err(error)) => {
                record(EventKind::SessionRefused { session, error });
                continue;
            }
            Err(_) => {
                record(EventKind::SessionTimedOut { session });
                continue;
            }
        };
        record(EventKind::SessionStarted { session, worker: worker.clone() });
        // Use the worker for `hold`, watching for the replica to end the
        // session first with an error (its worker died, or it fenced itself).
        let watch = SessionRequest::Watch { session };
        let hold = Duration::from_millis(hold);
        let ended = madsim::time::timeout(hold, caller.call::<_, SessionReply>(replica_addr(replica), SESSION_TAG, watch));
        if let Ok(Ok(Err(error))) = ended.await {
            record(EventKind::SessionLost { session, worker, error });
            continue;
        }
        record(EventKind::SessionEnded { session, worker });
        let release = SessionRequest::Release { session };
        let _ = madsim::time::timeout(RELEASE_PATIENCE, caller.call::<_, SessionReply>(replica_addr(replica), SESSION_TAG, release)).await;
    }
}
