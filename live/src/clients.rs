//! Live clients, in the driver process: each opens a session on a replica
//! chosen at random, uses its worker for a while (watching for the session
//! to end under it, reconnecting through other replicas when its replica
//! goes away), releases it, thinks, and goes again until the quiet period.
//! The same protocol as the simulator's client nodes
//! (sim/src/client_node.rs), over TCP; what each client saw is journaled,
//! as ground truth for the session checks.

use crate::journal::Journal;
use crate::replica::{SessionReply, SessionRequest, WATCH_KEEPALIVE};
use crate::wire;
use haywire_sim::Workload;
use haywire_traces::EventKind;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RELEASE_PATIENCE: Duration = Duration::from_secs(5);
const WATCH_SLACK: Duration = Duration::from_secs(3);
const RECONNECT_PATIENCE: Duration = Duration::from_secs(5);
const RECONNECT_RETRY: Duration = Duration::from_secs(1);

/// Where each replica serves sessions now (`None` while its process is down).
pub type Ports = Arc<Mutex<Vec<Option<u16>>>>;

/// What the clients share.
pub struct ClientWorld {
    pub journal: Arc<Journal>,
    pub ports: Ports,
    pub workload: Workload,
    pub quiet: AtomicBool,
    pub rng: Mutex<ChaCha8Rng>,
    next_session: AtomicU64,
}

impl ClientWorld {
    pub fn new(journal: Arc<Journal>, ports: Ports, workload: Workload, rng: ChaCha8Rng) -> Arc<Self> {
        Arc::new(ClientWorld { journal, ports, workload, quiet: AtomicBool::new(false), rng: Mutex::new(rng), next_session: AtomicU64::new(1) })
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, ChaCha8Rng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn replicas(&self) -> usize {
        self.ports.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn addr(&self, i: usize) -> Option<SocketAddr> {
        let port = self.ports.lock().unwrap_or_else(|p| p.into_inner()).get(i).copied().flatten()?;
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Exponential think time with the given mean.
    fn think(&self, mean_ms: u64) -> Duration {
        let u: f64 = self.rng().gen_range(f64::EPSILON..1.0);
        Duration::from_millis((-(mean_ms as f64) * u.ln()) as u64)
    }
}

fn name_of(i: usize) -> String {
    format!("r{}", i + 1)
}

struct Client {
    world: Arc<ClientWorld>,
    name: String,
}

impl Client {
    fn record(&self, kind: EventKind) {
        self.world.journal.record(&self.name, None, kind);
    }

    /// `None`: no answer within `patience`. A refused or broken connection
    /// (the process is down, or died mid-call) is no answer either, and is
    /// known only once the patience is over: as in the simulator, a client
    /// cannot tell a dead replica from a slow one.
    async fn call(&self, replica: usize, req: SessionRequest, patience: Duration) -> Option<SessionReply> {
        let asked = Instant::now();
        let reply = match self.world.addr(replica) {
            Some(addr) => tokio::time::timeout(patience, wire::call::<_, SessionReply>(addr, &req)).await.ok().and_then(Result::ok),
            None => None,
        };
        if reply.is_none() {
            tokio::time::sleep(patience.saturating_sub(asked.elapsed())).await;
        }
        reply
    }

    /// Use `worker` for `hold`, watching; reconnect when the replica goes
    /// away. The replica the session ended on, or None if it was lost.
    async fn serve(&self, session: u64, worker: &str, mut replica: usize, hold: Duration) -> Option<usize> {
        let w = &self.world.workload;
        let end = Instant::now() + hold;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(replica);
            }
            let patience = left.min(WATCH_KEEPALIVE + WATCH_SLACK);
            let gone = match self.call(replica, SessionRequest::Watch { session }, patience).await {
                Some(Ok(_)) => continue,
                None if Instant::now() >= end => return Some(replica),
                Some(Err(e)) if !e.reconnect || w.reconnect_ms == 0 => {
                    self.record(EventKind::SessionLost { session, worker: worker.into(), error: e.message });
                    return None;
                }
                Some(Err(_)) => true,
                None => w.reconnect_ms > 0,
            };
            if gone {
                replica = self.reconnect(session, worker, replica).await?;
            }
        }
    }

    async fn reconnect(&self, session: u64, worker: &str, from: usize) -> Option<usize> {
        let w = &self.world.workload;
        let give_up = Instant::now() + Duration::from_millis(w.reconnect_ms);
        let mut attempt = 0u32;
        loop {
            if Instant::now() >= give_up {
                let error = format!("gave up reconnecting after {}ms", w.reconnect_ms);
                self.record(EventKind::SessionLost { session, worker: worker.into(), error });
                return None;
            }
            let targets = self.targets(from, attempt);
            attempt += 1;
            for &t in &targets {
                self.record(EventKind::SessionReconnecting { session, worker: worker.into(), replica: name_of(t) });
            }
            let ask = |t: usize| async move {
                let reply = self.call(t, SessionRequest::Reconnect { session }, RECONNECT_PATIENCE).await;
                if let Some(Ok(got)) = &reply {
                    self.record(EventKind::SessionResumed { session, worker: got.clone(), replica: name_of(t) });
                }
                (t, reply)
            };
            let mut replies = Vec::new();
            let mut asks: Vec<_> = targets.iter().map(|&t| Box::pin(ask(t))).collect();
            // Each answer is recorded when it comes, not when all have.
            while !asks.is_empty() {
                let (done, _, rest) = futures_select(asks).await;
                replies.push(done);
                asks = rest;
            }
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
            tokio::time::sleep(RECONNECT_RETRY).await;
        }
    }

    /// Another replica on even attempts, the one that went away on odd
    /// ones; with the workload's duplicate chance, a second one at once.
    fn targets(&self, from: usize, attempt: u32) -> Vec<usize> {
        let n = self.world.replicas();
        let mut rng = self.world.rng();
        let others: Vec<usize> = (0..n).filter(|&i| i != from).collect();
        let first = if attempt % 2 == 1 || others.is_empty() { from } else { others[rng.gen_range(0..others.len())] };
        let mut out = vec![first];
        let rest: Vec<usize> = (0..n).filter(|&i| i != first).collect();
        if !rest.is_empty() && rng.gen_range(0..100) < self.world.workload.dup_reconnect_pct {
            out.push(rest[rng.gen_range(0..rest.len())]);
        }
        out
    }
}

/// The first of `futs` to finish, its index, and the rest.
async fn futures_select<F: std::future::Future + Unpin>(mut futs: Vec<F>) -> (F::Output, usize, Vec<F>) {
    std::future::poll_fn(move |cx| {
        for i in 0..futs.len() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(&mut futs[i]).poll(cx) {
                let mut rest = std::mem::take(&mut futs);
                rest.remove(i);
                return std::task::Poll::Ready((v, i, rest));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// One client's loop, until the quiet period.
pub async fn run(world: Arc<ClientWorld>, client: usize) {
    let c = Client { world: world.clone(), name: format!("c{}", client + 1) };
    let w = world.workload.clone();
    loop {
        tokio::time::sleep(world.think(w.think_ms)).await;
        if world.quiet.load(Ordering::SeqCst) {
            return;
        }
        let (replica, org, hold) = {
            let mut rng = world.rng();
            let replica = rng.gen_range(0..world.replicas().max(1));
            let org = format!("org{}", rng.gen_range(0..w.orgs.max(1)));
            let (lo, hi) = w.session_ms;
            (replica, org, if hi > lo { rng.gen_range(lo..=hi) } else { lo })
        };
        let session = world.next_session.fetch_add(1, Ordering::SeqCst);
        c.record(EventKind::SessionRequested { session, org: org.clone(), replica: name_of(replica) });
        let patience = Duration::from_millis(w.patience_ms);
        let worker = match c.call(replica, SessionRequest::Acquire { org, session }, patience).await {
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
