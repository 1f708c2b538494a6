//! Core's unit tests, one file per subject; every one builds on the kit in
//! [`crate::testkit`] (the faulty store, the slow cluster, the event log and
//! the [`Harness`](crate::testkit::Harness)). Each mutant case runs the same
//! scenario as its correct-code case with one `Mutant` switched on, to show
//! the test is what catches the bug.
//!
//! Lease: `lease/`. Whole replica: `replica.rs`. Registry and heartbeats:
//! `registry.rs`. Leader-gated fenced effects: `reconciler.rs`. Workers, in the order of their life: `spawn.rs`,
//! `activation.rs`, `park.rs`, `capacity.rs`, `health.rs`, `fence.rs`,
//! `pool_shutdown.rs`. Sessions across replicas (shared idle pool,
//! reconnect, drain): `sessions.rs`. What the reapers keep: `floor.rs`, `headroom.rs`.
//! The reapers' passes: `reapers/`. Reapers racing owners: `races.rs`.

mod activation;
mod capacity;
mod cron;
mod fence;
mod floor;
mod headroom;
mod health;
mod lease;
mod park;
mod pool_shutdown;
mod races;
mod reapers;
mod reconciler;
mod registry;
mod replica;
mod sessions;
mod spawn;
