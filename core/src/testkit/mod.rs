//! The test kit of core's unit tests (`cfg(test)` only): the doubles and the
//! one harness every test in [`crate::tests`] builds on.
//!
//! Everything runs on madsim's simulated runtime: virtual time, so a minute
//! of lease traffic or an hour of idle TTL costs microseconds, and nothing
//! depends on real-time scheduling. madsim picks among ready tasks at random
//! (seeded), so every assertion must hold for any interleaving;
//! `MADSIM_TEST_NUM=50 cargo test -p haywire-core tests::` runs each case
//! under 50 seeds.
//!
//! - every party shares one [`SystemClock`](crate::clock::SystemClock)
//!   (simulated time since the test began), so row timestamps, pod ages,
//!   lease expiries and observer timestamps are all comparable;
//! - [`FaultyStore`]: one client's view of one shared in-process store, with
//!   rules that partition it, fail chosen requests before commit, or commit
//!   them and lose or hold back the reply; it logs every call;
//! - [`SlowCluster`]: a `LocalCluster` over a `MemCluster` whose chosen
//!   requests can be held back (a slow list); it logs every request;
//! - [`EventLog`] / [`RecordingObserver`]: every `CoreEvent` with its time
//!   and instance;
//! - [`Harness`]: the clock, the store, the cluster and the log of one test,
//!   with two small builders on top: [`lease`] (coordinators running a
//!   recording [`lease::TestWork`]) and [`fleet`] (pools, reapers,
//!   heartbeats and the rows, pods and secrets they leave).

mod faulty_store;
pub mod fleet;
mod harness;
pub mod lease;
mod recorder;
mod slow_cluster;

pub use faulty_store::{is_op, Action, Call, FaultyStore, Inner, Outcome};
pub use harness::Harness;
pub use recorder::{Entry, EventLog, RecordingObserver};
pub use slow_cluster::SlowCluster;

use crate::ids::InstanceId;
use std::sync::Mutex;

pub const A: InstanceId = InstanceId(1);
pub const B: InstanceId = InstanceId(2);
pub const C: InstanceId = InstanceId(3);
/// An instance that registered and then died (fleet tests).
pub const D: InstanceId = InstanceId(4);
/// An instance that never registered (fleet tests).
pub const U: InstanceId = InstanceId(5);
/// A janitor on another replica (fleet tests).
pub const J: InstanceId = InstanceId(9);

/// Lock, ignoring poison: a test that panicked holding a lock has already
/// failed, and its log is still worth reading.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
