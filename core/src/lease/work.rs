//! Leader-gated work: loops that run only while this replica holds the lease.

use crate::clock::Millis;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use crate::signal as watch;

pub type BoxLoop = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Until when (local ms, the replica's own clock) one epoch's lease is
/// safely held: the renew deadline of the last confirmed acquire or renew.
/// The coordinator moves it on every confirmed renew and closes it when it
/// steps down. Effects no store can fence (cluster calls) are sent only
/// before it, so even a task that runs before the coordinator notices the
/// deadline (after a long pause, say) sends nothing late (docs/design.md §7, S1).
#[derive(Clone, Debug, Default)]
pub struct Horizon(Arc<AtomicU64>);

impl Horizon {
    pub fn new(until: Millis) -> Self {
        Horizon(Arc::new(AtomicU64::new(until)))
    }
    pub fn until(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
    pub fn set(&self, until: Millis) {
        self.0.store(until, Ordering::SeqCst);
    }
    /// Whether local time `now` is still inside the safe window.
    pub fn holds(&self, now: Millis) -> bool {
        now < self.until()
    }
}

/// Supplies the leader-gated loops for one epoch. Each loop must exit soon
/// after `cancel` turns true; the coordinator waits for all of them before it
/// releases the lease. Every effect a loop makes must carry `epoch`, and
/// unfenceable ones must be sent while `horizon` holds.
pub trait LeaderWork: Send + Sync + 'static {
    fn loops(&self, epoch: u64, cancel: watch::Receiver<bool>, horizon: Horizon) -> Vec<(&'static str, BoxLoop)>;
}

/// No leader-gated work (tests).
pub struct NoWork;

impl LeaderWork for NoWork {
    fn loops(&self, _epoch: u64, _cancel: watch::Receiver<bool>, _horizon: Horizon) -> Vec<(&'static str, BoxLoop)> {
        Vec::new()
    }
}

/// Several kinds of leader-gated work under one lease.
pub struct AllOf(pub Vec<std::sync::Arc<dyn LeaderWork>>);

impl LeaderWork for AllOf {
    fn loops(&self, epoch: u64, cancel: watch::Receiver<bool>, horizon: Horizon) -> Vec<(&'static str, BoxLoop)> {
        self.0.iter().flat_map(|w| w.loops(epoch, cancel.clone(), horizon.clone())).collect()
    }
}
