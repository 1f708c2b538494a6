//! [`Harness`]: the world of one unit test. The lease and fleet builders add
//! their own methods in [`super::lease`] and [`super::fleet`].

use super::lease::WorkLog;
use super::{EventLog, FaultyStore, Inner, RecordingObserver, SlowCluster};
use crate::clock::{sleep_until, Clock, Millis, SystemClock};
use crate::config::{ConfigError, ReplicaConfig};
use crate::ids::InstanceId;
use crate::observe::Observer;
use crate::replica::Replica;
use crate::store::{LocalStore, MemStore, Store};
use std::sync::Arc;
use std::time::Duration;

/// One clock, one shared store, one cluster and one event log; every
/// replica, coordinator, pool and reaper of a test is built from it.
pub struct Harness {
    pub clock: SystemClock,
    /// The shared store, without faults (for set-up and for reading rows).
    pub inner: Arc<Inner>,
    /// The default client: the one `pool` and the fleet builders use.
    pub store: Arc<FaultyStore>,
    pub cluster: Arc<SlowCluster>,
    pub log: EventLog,
    /// What the lease tests' leader-gated work did.
    pub work: WorkLog,
}

impl Harness {
    pub fn new() -> Self {
        let clock = SystemClock::new();
        let inner = Arc::new(LocalStore::new(MemStore::new(), clock.clone()));
        let store = Arc::new(FaultyStore::new(inner.clone(), clock.clone()));
        let cluster = Arc::new(SlowCluster::new(clock.clone()));
        Harness { clock, inner, store, cluster, log: EventLog::default(), work: WorkLog::default() }
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Sleep until simulated time `t` (ms since the test began).
    pub async fn at(&self, t: Millis) {
        sleep_until(&self.clock, t).await;
        assert!(self.now() >= t);
    }

    pub async fn sleep(&self, ms: u64) {
        self.clock.sleep(Duration::from_millis(ms)).await;
    }

    pub fn observer(&self, who: InstanceId) -> Arc<dyn Observer> {
        Arc::new(RecordingObserver { who, clock: self.clock.clone(), log: self.log.clone() })
    }

    /// Another client of the same store, with its own faults and log.
    pub fn client(&self) -> Arc<FaultyStore> {
        Arc::new(FaultyStore::new(self.inner.clone(), self.clock.clone()))
    }

    /// A whole replica `who` on `store` (the shared store itself, or a
    /// client of it) and the test's cluster.
    pub fn replica<S: Store>(&self, who: InstanceId, config: ReplicaConfig, store: Arc<S>) -> Result<Replica, ConfigError> {
        Replica::start(who, config, store, Arc::new(self.clock.clone()), self.cluster.clone(), self.observer(who))
    }
}
