//! Client nodes: each opens a session on a replica chosen at random, uses
//! its worker for a while, releases it, thinks, and goes again, until the
//! quiet period begins. Every choice comes from the world's seeded RNG.

use crate::replica_node::{SessionReply, SessionRequest};
use crate::addresses::replica_addr;
use crate::rpc::{Caller, SESSION_TAG};
use crate::options::Workload;
use crate::world::{Shared, World};
use haywire_traces::EventKind;
use madsim::net::Endpoint;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;

/// How long a client waits for a release to be acknowledged.
const RELEASE_PATIENCE: Duration = Duration::from_secs(5);

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
pub(crate) fn think(rng: &Shared<ChaCha8Rng>, mean_ms: u64) -> Duration {
    let u: f64 = rng.lock().gen_range(f64::EPSILON..1.0);
    Duration::from_millis((-(mean_ms as f64) * u.ln()) as u64)
}

/// Longest a client waits for a watch's answer beyond its keepalive before
/// it takes its replica for gone.
const WATCH_SLACK: Duration = Duration::from_secs(3);
/// How long one reconnect attempt waits for its answer.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(5);
/// Pause between reconnect attempts.
const RECONNECT_RETRY: Duration = Duration::from_secs(1);

/// One client's connection to the world.
struct Client<'a> {
    world: &'a World,
    name: String,
    caller: Caller,
    w: Workload,
}

impl Client<'_> {
    fn record(&self, kind: EventKind) {
        self.world.recorder.record(&self.name, None, kind);
    }

    fn now(&self) -> Duration {
        madsim::time::Instant::now().duration_since(self.world.recorder.origin())
    }

    /// The replicas in the deployment now, by index and name.
    fn enabled(&self) -> Vec<(usize, String)> {
        let p = self.world.processes.lock();
        (0..p.machines.len()).filter(|&i| p.machines[i].enabled).map(|i| (i, p.machines[i].name.clone())).collect()
    }

    fn name_of(&self, i: usize) -> String {
        self.world.processes.lock().machines[i].name.clone()
    }

    async fn call(&self, replica: usize, req: SessionRequest, patience: Duration) -> Option<SessionReply> {
        let call = self.caller.call::<_, SessionReply>(replica_addr(replica), SESSION_TAG, req);
        match crate::timer::timeout(patience, call).await {
            Ok(Ok(reply)) => Some(reply),
            _ => None,
        }
    }

    /// Use `worker` for `hold` from `replica`, watching for the session to
    /// end without the client asking; a replica that goes away (no answer,
    /// or an error saying the session may go on elsewhere) is replaced by
    /// reconnecting. Returns the replica the session ended on, or None if
    /// it was lost (the client was told why).
    async fn serve(&self, session: u64, worker: &str, mut replica: usize, hold: Duration) -> Option<usize> {
        let end = self.now() + hold;
        loop {
            let left = end.saturating_sub(self.now());
            if left.is_zero() {
                return Some(replica);
            }
            let patience = left.min(crate::replica_node::WATCH_KEEPALIVE + WATCH_SLACK);
            let gone = match self.call(replica, SessionRequest::Watch { session }, patience).await {
                Some(Ok(_)) => continue,
                None if self.now() >= end => return Some(replica),
                Some(Err(e)) if !e.reconnect || self.w.reconnect_ms == 0 => {
                    self.record(EventKind::SessionLost { session, worker: worker.into(), error: e.message });
                    return None;
                }
                Some(Err(_)) => true,
                None => self.w.reconnect_ms > 0,
            };
            if gone {
                replica = self.reconnect(session, worker, replica).await?;
            }
        }
    }

    /// Reconnect `session` through the replicas, for up to the workload's
    /// reconnect bound: attempts alternate between another replica and the
    /// one that went away, and some go through two replicas at once.
    async fn reconnect(&self, session: u64, worker: &str, from: usize) -> Option<usize> {
        let give_up = self.now() + Duration::from_millis(self.w.reconnect_ms);
        let mut attempt = 0u32;
        loop {
            if self.now() >= give_up {
                let error = format!("gave up reconnecting after {}ms", self.w.reconnect_ms);
                self.record(EventKind::SessionLost { session, worker: worker.into(), error });
                return None;
            }
            let targets = self.targets(from, attempt);
            attempt += 1;
            if targets.is_empty() {
                crate::timer::sleep(RECONNECT_RETRY).await;
                continue;
            }
            for &t in &targets {
                self.record(EventKind::SessionReconnecting { session, worker: worker.into(), replica: self.name_of(t) });
            }
            // Each answer is recorded when it comes, not when both have.
            let ask = |t: usize| async move {
                let reply = self.call(t, SessionRequest::Reconnect { session }, RECONNECT_PATIENCE).await;
                if let Some(Ok(got)) = &reply {
                    self.record(EventKind::SessionResumed { session, worker: got.clone(), replica: self.name_of(t) });
                }
                (t, reply)
            };
            let replies = futures_join(targets.iter().map(|&t| ask(t)).collect()).await;
            let (mut won, mut ended) = (None, None);
            for (t, reply) in replies {
                match reply {
                    Some(Ok(_)) => won = won.or(Some(t)),
                    Some(Err(e)) if !e.reconnect => ended = ended.or(Some(e.message)),
                    _ => {}
                }
            }
            if won.is_some() {
                return won;
            }
            if let Some(error) = ended {
                self.record(EventKind::SessionLost { session, worker: worker.into(), error });
                return None;
            }
            crate::timer::sleep(RECONNECT_RETRY).await;
        }
    }

    /// Where the next reconnect attempt goes: another replica on even
    /// attempts, the one that went away on odd ones (if still deployed);
    /// with the workload's duplicate chance, a second one at the same time.
    fn targets(&self, from: usize, attempt: u32) -> Vec<usize> {
        let enabled: Vec<usize> = self.enabled().into_iter().map(|(i, _)| i).collect();
        if enabled.is_empty() {
            return Vec::new();
        }
        let mut rng = self.world.rng.lock();
        let others: Vec<usize> = enabled.iter().copied().filter(|&i| i != from).collect();
        let first = if (attempt % 2 == 1 && enabled.contains(&from)) || others.is_empty() {
            from
        } else {
            others[rng.gen_range(0..others.len())]
        };
        let mut out = vec![first];
        let rest: Vec<usize> = enabled.into_iter().filter(|&i| i != first).collect();
        if !rest.is_empty() && rng.gen_range(0..100) < self.w.dup_reconnect_pct {
            out.push(rest[rng.gen_range(0..rest.len())]);
        }
        out
    }
}

/// Await every future, in order (madsim runs them on one thread).
async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

pub async fn run(world: Arc<World>, client: usize) {
    let name = format!("c{}", client + 1);
    let ep = match Endpoint::bind("0.0.0.0:0").await {
        Ok(ep) => ep,
        Err(e) => panic!("client {name} cannot bind a socket: {e}"),
    };
    let caller = Caller::new(ep, 0, usize::MAX, 1_000_000 + client as u64);
    let w = world.clients.lock().workload.clone();
    let c = Client { world: &world, name, caller, w: w.clone() };
    let World { processes, clients, rng, .. } = &*world;
    loop {
        crate::timer::sleep(think(rng, w.think_ms)).await;
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
        c.record(EventKind::SessionRequested { session, org: org.clone(), replica: target });
        let req = SessionRequest::Acquire { org, session };
        let patience = Duration::from_millis(w.patience_ms);
        let worker = match c.call(replica, req, patience).await {
            Some(Ok(worker)) => worker,
            Some(Err(error)) => {
                c.record(EventKind::SessionRefused { session, error: error.message });
                continue;
            }
            None => {
                c.record(EventKind::SessionTimedOut { session });
                continue;
            }
        };
        c.record(EventKind::SessionStarted { session, worker: worker.clone() });
        let Some(last) = c.serve(session, &worker, replica, Duration::from_millis(hold)).await else { continue };
        c.record(EventKind::SessionEnded { session, worker });
        let _ = c.call(last, SessionRequest::Release { session }, RELEASE_PATIENCE).await;
    }
}
