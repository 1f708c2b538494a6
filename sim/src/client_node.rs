//! Client nodes: each opens a session on a replica chosen at random, uses
//! its worker for a while, releases it, thinks, and goes again, until the
//! quiet period begins. Every choice comes from the world's seeded RNG.

use crate::replica_node::{SessionReply, SessionRequest};
use crate::rpc::{Caller, SESSION_PORT, SESSION_TAG};
use crate::world::World;
use haywire_traces::EventKind;
use madsim::net::Endpoint;
use rand::Rng;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long a client waits for a release to be acknowledged.
const RELEASE_PATIENCE: Duration = Duration::from_secs(5);

pub fn replica_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, (i + 1) as u8)), SESSION_PORT)
}

/// Exponential think time with the given mean.
fn think(world: &World, mean_ms: u64) -> Duration {
    let u: f64 = world.lock().rng.gen_range(f64::EPSILON..1.0);
    Duration::from_millis((-(mean_ms as f64) * u.ln()) as u64)
}

pub async fn run(world: Arc<World>, client: usize) {
    let name = format!("c{}", client + 1);
    let ep = match Endpoint::bind("0.0.0.0:0").await {
        Ok(ep) => ep,
        Err(e) => panic!("client {name} cannot bind a socket: {e}"),
    };
    let caller = Caller::new(ep, 0, usize::MAX, 1_000_000 + client as u64);
    let w = world.lock().workload.clone();
    loop {
        madsim::time::sleep(think(&world, w.think_ms)).await;
        let (replica, org, hold) = {
            let mut g = world.lock();
            if g.quiet {
                return;
            }
            let enabled: Vec<usize> = (0..g.slots.len()).filter(|&i| g.slots[i].enabled).collect();
            if enabled.is_empty() {
                continue;
            }
            let replica = enabled[g.rng.gen_range(0..enabled.len())];
            let org = format!("org{}", g.rng.gen_range(0..w.orgs.max(1)));
            let (lo, hi) = w.session_ms;
            let hold = if hi > lo { g.rng.gen_range(lo..=hi) } else { lo };
            (replica, org, hold)
        };
        let session = world.next_session();
        let target = world.lock().slots[replica].name.clone();
        world.record(&name, None, EventKind::SessionRequested { session, org: org.clone(), replica: target });
        let req = SessionRequest::Acquire { org, session };
        let patience = Duration::from_millis(w.patience_ms);
        let reply = madsim::time::timeout(patience, caller.call::<_, SessionReply>(replica_addr(replica), SESSION_TAG, req)).await;
        let worker = match reply {
            Ok(Ok(Ok(worker))) => worker,
            Ok(Ok(Err(error))) | Ok(Err(error)) => {
                world.record(&name, None, EventKind::SessionRefused { session, error });
                continue;
            }
            Err(_) => {
                world.record(&name, None, EventKind::SessionTimedOut { session });
                continue;
            }
        };
        world.record(&name, None, EventKind::SessionStarted { session, worker: worker.clone() });
        // Use the worker for `hold`, watching for the replica to end the
        // session first with an error (its worker died, or it fenced itself).
        let watch = SessionRequest::Watch { session };
        let hold = Duration::from_millis(hold);
        let ended = madsim::time::timeout(hold, caller.call::<_, SessionReply>(replica_addr(replica), SESSION_TAG, watch));
        if let Ok(Ok(Err(error))) = ended.await {
            world.record(&name, None, EventKind::SessionLost { session, worker, error });
            continue;
        }
        world.record(&name, None, EventKind::SessionEnded { session, worker });
        let release = SessionRequest::Release { session };
        let _ = madsim::time::timeout(RELEASE_PATIENCE, caller.call::<_, SessionReply>(replica_addr(replica), SESSION_TAG, release)).await;
    }
}
