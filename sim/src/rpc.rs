//! Request/reply over madsim's simulated network: one message out, one
//! back on a per-call tag. A reply that never comes (lost, node killed,
//! link clogged) leaves the caller waiting: callers bound every call with
//! their own clock.

use madsim::net::Endpoint;
use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Message tags of the servers (replies use per-call tags above 2^16).
pub const STORE_TAG: u64 = 1;
pub const CLUSTER_TAG: u64 = 2;
pub const SESSION_TAG: u64 = 3;

/// Port replicas serve client sessions on.
pub const SESSION_PORT: u16 = 7000;

/// Who sent a request, as the simulator (not the sender) knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    /// Instance of the sender (0 for clients).
    pub from: u64,
    /// Replica index of the sender (usize::MAX for clients).
    pub replica: usize,
    /// The lease epoch of the leader-gated task that made the call, if a
    /// leader-gated task made it (seen by the task probe).
    pub gated: Option<u64>,
}

/// A request on the wire, with who sent it.
pub struct Envelope<R> {
    pub reply_tag: u64,
    pub sender: Requester,
    pub req: R,
}

tokio::task_local! {
    /// Set by the task probe around every leader-gated task of a replica:
    /// the epoch it runs for.
    pub static LEADER_TASK: u64;
}

/// The epoch of the leader-gated task running now, if any.
pub fn current_leader_task() -> Option<u64> {
    LEADER_TASK.try_with(|e| *e).ok()
}

/// The calling side of one connection.
pub struct Caller {
    ep: Endpoint,
    from: u64,
    replica: usize,
    next_tag: AtomicU64,
}

impl Caller {
    pub fn new(ep: Endpoint, from: u64, replica: usize, tag_base: u64) -> Self {
        // Tags unique per caller and above the server tags.
        Caller { ep, from, replica, next_tag: AtomicU64::new((tag_base << 32) | (1 << 16)) }
    }

    pub async fn call<Req, Rep>(&self, to: SocketAddr, tag: u64, req: Req) -> Result<Rep, String>
    where
        Req: Any + Send + Sync,
        Rep: Any + Send + Sync,
    {
        let reply_tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let sender = Requester { from: self.from, replica: self.replica, gated: current_leader_task() };
        let env = Envelope { reply_tag, sender, req };
        self.ep.send_to_raw(to, tag, Box::new(env)).await.map_err(|e| e.to_string())?;
        let (payload, _) = self.ep.recv_from_raw(reply_tag).await.map_err(|e| e.to_string())?;
        payload.downcast::<Rep>().map(|b| *b).map_err(|_| "reply of unexpected type".to_string())
    }
}

/// Serve requests of type `Req` on `tag`: each is handled in its own task;
/// a handler returning `None` sends no reply (a lost reply).
pub async fn serve<Req, Rep, F, Fut>(ep: Endpoint, tag: u64, handler: F)
where
    Req: Any + Send + Sync,
    Rep: Any + Send + Sync,
    F: Fn(Requester, Req) -> Fut,
    Fut: std::future::Future<Output = Option<Rep>> + Send + 'static,
{
    accept(&ep, tag, &handler).await
}

/// [`serve`] from `loops` receive loops at once (at least one). madsim
/// delays every receive a little, so a node with one loop takes in about a
/// thousand requests a simulated second, fewer than a fleet of hundreds of
/// replicas sends its store: a real database takes requests on many
/// connections at once (docs/design.md §12).
pub async fn serve_from<Req, Rep, F, Fut>(ep: Endpoint, tag: u64, loops: usize, handler: F)
where
    Req: Any + Send + Sync,
    Rep: Any + Send + Sync,
    F: Fn(Requester, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<Rep>> + Send + 'static,
{
    for _ in 1..loops {
        let (ep, handler) = (ep.clone(), handler.clone());
        madsim::task::spawn(async move { accept(&ep, tag, &handler).await });
    }
    accept(&ep, tag, &handler).await
}

async fn accept<Req, Rep, F, Fut>(ep: &Endpoint, tag: u64, handler: &F)
where
    Req: Any + Send + Sync,
    Rep: Any + Send + Sync,
    F: Fn(Requester, Req) -> Fut,
    Fut: std::future::Future<Output = Option<Rep>> + Send + 'static,
{
    loop {
        let Ok((payload, from_addr)) = ep.recv_from_raw(tag).await else { continue };
        let Ok(env) = payload.downcast::<Envelope<Req>>() else { continue };
        let Envelope { reply_tag, sender, req } = *env;
        let reply = handler(sender, req);
        let ep = ep.clone();
        madsim::task::spawn(async move {
            if let Some(rep) = reply.await {
                let _ = ep.send_to_raw(from_addr, reply_tag, Box::new(rep)).await;
            }
        });
    }
}
