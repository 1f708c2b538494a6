//! Leader-gated work: loops that run only while this replica holds the lease.

use std::future::Future;
use std::pin::Pin;
use crate::signal as watch;

pub type BoxLoop = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Supplies the leader-gated loops for one epoch. Each loop must exit soon
/// after `cancel` turns true; the coordinator waits for all of them before it
/// releases the lease. Every effect a loop makes must carry `epoch`.
pub trait LeaderWork: Send + Sync + 'static {
    fn loops(&self, epoch: u64, cancel: watch::Receiver<bool>) -> Vec<(&'static str, BoxLoop)>;
}

/// No leader-gated work (tests).
pub struct NoWork;

impl LeaderWork for NoWork {
    fn loops(&self, _epoch: u64, _cancel: watch::Receiver<bool>) -> Vec<(&'static str, BoxLoop)> {
        Vec::new()
    }
}

/// Several kinds of leader-gated work under one lease.
pub struct AllOf(pub Vec<std::sync::Arc<dyn LeaderWork>>);

impl LeaderWork for AllOf {
    fn loops(&self, epoch: u64, cancel: watch::Receiver<bool>) -> Vec<(&'static str, BoxLoop)> {
        self.0.iter().flat_map(|w| w.loops(epoch, cancel.clone())).collect()
    }
}
