//! haywire-live: the same core, live (docs/design.md §11).
//!
//! `haywire live` starts N replica processes of the unchanged core on real
//! tokio, a store gateway in front of a SQLite file or a PostgreSQL server,
//! the cluster API, clients that open and close sessions, and a fault
//! driver that sends real signals (SIGKILL, SIGSTOP/SIGCONT, SIGTERM) on a
//! seeded schedule and restarts the database. Every process writes its
//! events to its own JSONL journal; after the run they are merged into one
//! haywire trace and judged by the simulator's oracle, its bounds widened by
//! a real-time jitter allowance measured before the run.
//!
//! One module per part: [`clock`] (the time every process stamps events
//! with), [`journal`] (a process's events on disk), [`wire`] (JSON lines over
//! loopback TCP), [`gateway`] (store and cluster, recording ground truth),
//! [`replica`] (the replica process), [`clients`], [`schedule`] (the fault
//! plan), [`driver`] (the run), [`judge`] (merge, measure and judge).

#![cfg(not(madsim))]

pub mod clients;
pub mod clock;
pub mod driver;
pub mod gateway;
pub mod journal;
pub mod judge;
pub mod replica;
pub mod schedule;
pub mod wire;

pub use driver::{run, LiveArgs, LiveReport, StoreSpec};
pub use replica::{replica_main, ReplicaArgs};
