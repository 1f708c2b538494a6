//! haywire-core: the system under test.
//!
//! Real library code for a horizontally scaled control plane: a store-backed
//! leader lease with epoch fencing and the leader-gated loops it guards. It is
//! written only against the seams in [`clock`], [`store`] and [`observe`], so
//! the same code runs in production (system clock, SQLite) and inside
//! haywire's simulator. Nothing in this crate knows about the simulator.

pub mod clock;
pub mod cluster;
pub mod config;
pub mod cron;
pub mod fence;
pub mod ids;
pub mod lease;
pub mod mutants;
pub mod observe;
pub mod reconciler;
pub mod registry;
pub mod replica;
pub mod signal;
pub mod store;
pub mod worker;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use clock::{Clock, Millis, SystemClock, WallClock};
pub use config::{ConfigError, FleetConfig, LeaseConfig, ReconcilerConfig, ReplicaConfig};
pub use ids::InstanceId;
pub use mutants::{Mutant, Mutants};
pub use observe::{CoreEvent, NullObserver, Observer, TracingObserver};
pub use replica::{Metrics, Replica};
