//! Self-fencing's stop switch (docs/design.md §2.6): once a replica fences
//! itself it makes no more calls as that instance. Every store and cluster
//! call of the replica goes through a [`Gated`] handle; when the switch is
//! thrown, calls not yet sent fail at once ("nothing happened"), so no task
//! of the fenced instance, however deep in a spawn or a drain, writes again.

use crate::cluster::{Cluster, ClusterError, ClusterReply, ClusterRequest};
use crate::store::{Store, StoreError, StoreReply, StoreRequest};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Thrown once, never reset: a fenced instance never comes back (its
/// process rejoins as a new instance).
#[derive(Clone, Debug, Default)]
pub struct FenceSwitch(Arc<AtomicBool>);

impl FenceSwitch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn throw(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn thrown(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

const WHY: &str = "this instance fenced itself";

/// A store or cluster whose calls stop when the switch is thrown.
pub struct Gated<T> {
    inner: Arc<T>,
    switch: FenceSwitch,
}

impl<T> Gated<T> {
    pub fn new(inner: Arc<T>, switch: FenceSwitch) -> Self {
        Gated { inner, switch }
    }
}

impl<S: Store> Store for Gated<S> {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        if self.switch.thrown() {
            return Err(StoreError::Failed(WHY.into()));
        }
        self.inner.call(req).await
    }
}

impl<K: Cluster> Cluster for Gated<K> {
    async fn call(&self, req: ClusterRequest) -> Result<ClusterReply, ClusterError> {
        if self.switch.thrown() {
            return Err(ClusterError::Failed(WHY.into()));
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::cluster::{LocalCluster, MemCluster};
    use crate::store::{LocalStore, MemStore};

    #[tokio::test]
    async fn calls_fail_once_the_switch_is_thrown() {
        let clock = SystemClock::new();
        let switch = FenceSwitch::new();
        let store = Gated::new(Arc::new(LocalStore::new(MemStore::new(), clock.clone())), switch.clone());
        let cluster = Gated::new(Arc::new(LocalCluster::new(MemCluster::new(), clock)), switch.clone());
        assert_eq!(store.call(StoreRequest::ListInstances).await.map(|_| ()), Ok(()));
        let list = ClusterRequest::ListPods { selector: Default::default() };
        assert!(cluster.call(list.clone()).await.is_ok());
        switch.throw();
        assert_eq!(store.call(StoreRequest::ListInstances).await, Err(StoreError::Failed(WHY.into())));
        assert_eq!(cluster.call(list).await, Err(ClusterError::Failed(WHY.into())));
        assert!(switch.thrown());
    }
}
