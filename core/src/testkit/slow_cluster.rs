//! [`SlowCluster`]: the cluster API of a test, with requests that can be
//! held back.

use super::lock;
use crate::clock::{Clock, Millis, SystemClock};
use crate::cluster::{Cluster, ClusterError, ClusterReply, ClusterRequest, LocalCluster, MemCluster};
use std::sync::Mutex;
use std::time::Duration;

type ClusterMatcher = Box<dyn Fn(&ClusterRequest) -> bool + Send + Sync>;

/// A [`LocalCluster`] whose chosen requests are held this many ms (madsim
/// time) before they reach the cluster (so a slow list lists the cluster as
/// it is when it lands, at that time); it logs every request with its time.
/// Shape it with `with()`: pod start delays, failed pods, pre-created
/// objects with chosen labels and ages.
pub struct SlowCluster {
    inner: LocalCluster<SystemClock>,
    clock: SystemClock,
    /// (matcher, delay ms, how many more matching calls: `None` all).
    delays: Mutex<Vec<(ClusterMatcher, u64, Option<u32>)>>,
    calls: Mutex<Vec<(Millis, ClusterRequest)>>,
}

impl SlowCluster {
    pub fn new(clock: SystemClock) -> Self {
        SlowCluster { inner: LocalCluster::new(MemCluster::new(), clock.clone()), clock, delays: Default::default(), calls: Default::default() }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut MemCluster) -> T) -> T {
        self.inner.with(f)
    }

    /// Hold the next `left` (`None`: every) matching request `ms` ms.
    pub fn slow(&self, ms: u64, left: Option<u32>, matches: impl Fn(&ClusterRequest) -> bool + Send + Sync + 'static) {
        lock(&self.delays).push((Box::new(matches), ms, left));
    }

    pub fn calls(&self) -> Vec<(Millis, ClusterRequest)> {
        lock(&self.calls).clone()
    }

    fn delay(&self, req: &ClusterRequest) -> Option<u64> {
        let mut delays = lock(&self.delays);
        for (m, ms, left) in delays.iter_mut() {
            if *left == Some(0) || !m(req) {
                continue;
            }
            if let Some(n) = left.as_mut() {
                *n -= 1;
            }
            return Some(*ms);
        }
        None
    }
}

impl Cluster for SlowCluster {
    async fn call(&self, req: ClusterRequest) -> Result<ClusterReply, ClusterError> {
        if let Some(ms) = self.delay(&req) {
            self.clock.sleep(Duration::from_millis(ms)).await;
        }
        lock(&self.calls).push((self.clock.now(), req.clone()));
        self.inner.call(req).await
    }
}
