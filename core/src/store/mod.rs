//! The store seam: durable records changed only by compare-and-swap.
//!
//! Two layers:
//! - [`StoreBackend`]: a synchronous, single-writer home for the records
//!   ([`SqliteStore`], [`MemStore`], and with the `postgres` feature
//!   `PgStore`); each loads and writes, and leaves every
//!   decision to the one rulebook ([`rules`]). `now` is passed in by whoever
//!   hosts the backend: lease expiry lives in the store's time domain, so a
//!   replica's clock skew never decides who holds the lease.
//! - [`Store`]: what core's async code talks to. [`LocalStore`] hosts a
//!   backend in-process; the simulator puts one behind a simulated network.
//!
//! Requests and replies are plain data ([`StoreRequest`], [`StoreReply`]) so
//! that any transport (and any fault layer) can carry them unchanged.

mod backend;
mod cron_records;
mod fleet_records;
mod lifecycle;
mod local;
mod memory;
#[cfg(feature = "postgres")]
mod pg_server;
#[cfg(all(test, feature = "postgres"))]
mod pg_testserver;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
pub mod rules;
mod sqlite;

pub use backend::StoreBackend;
pub use lifecycle::WorkerState;
pub use local::LocalStore;
pub use memory::MemStore;
#[cfg(feature = "postgres")]
pub use self::pg_server::PgServer;
#[cfg(feature = "postgres")]
pub use self::postgres::{PgClock, PgStore, PG_SCHEMA_VERSION};
pub use cron_records::{
    FireKind, FireRecord, FireResult, JobCas, JobRecord, JobReject, JobStatus, Schedule, SettingsRecord,
};
pub use fleet_records::{
    IdleFloor, InstanceRecord, LeaseFence, OwnScope, SlotRecord, SlotResult, WorkerCas, WorkerRecord, WorkerReject,
};
pub use records::{
    CasResult, EffectResult, EffectRow, FenceReject, LeaseRecord, Reject, StoreError, StoreReply, StoreRequest,
};
pub use rules::instances::{gives_up_sessions, is_dead};
pub use sqlite::SqliteStore;

use crate::ids::InstanceId;
use std::future::Future;

/// Async access to the durable store, as core sees it.
///
/// An `Err(StoreError::Unavailable)` means the outcome is unknown: the request
/// may or may not have committed. Callers must resolve that by re-reading.
pub trait Store: Send + Sync + 'static {
    fn call(&self, req: StoreRequest) -> impl Future<Output = Result<StoreReply, StoreError>> + Send;
}

/// Typed wrappers over [`Store::call`].
pub trait StoreExt: Store {
    fn read_lease(&self, name: &str) -> impl Future<Output = Result<Option<LeaseRecord>, StoreError>> + Send {
        let req = StoreRequest::ReadLease { name: name.to_string() };
        async move {
            match self.call(req).await? {
                StoreReply::Lease(rec) => Ok(rec),
                other => Err(StoreError::protocol("ReadLease", &other)),
            }
        }
    }

    fn acquire_lease(
        &self,
        name: &str,
        holder: InstanceId,
        expected_version: Option<u64>,
        ttl_ms: u64,
    ) -> impl Future<Output = Result<CasResult, StoreError>> + Send {
        let req = StoreRequest::AcquireLease { name: name.to_string(), holder, expected_version, ttl_ms };
        async move { expect_cas(self.call(req).await?, "AcquireLease") }
    }

    fn renew_lease(
        &self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        ttl_ms: u64,
    ) -> impl Future<Output = Result<CasResult, StoreError>> + Send {
        let req = StoreRequest::RenewLease { name: name.to_string(), holder, expected_version, ttl_ms };
        async move { expect_cas(self.call(req).await?, "RenewLease") }
    }

    fn release_lease(
        &self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
    ) -> impl Future<Output = Result<CasResult, StoreError>> + Send {
        let req = StoreRequest::ReleaseLease { name: name.to_string(), holder, expected_version };
        async move { expect_cas(self.call(req).await?, "ReleaseLease") }
    }

    fn fenced_effect(
        &self,
        name: &str,
        holder: InstanceId,
        epoch: u64,
        effect: String,
    ) -> impl Future<Output = Result<EffectResult, StoreError>> + Send {
        let req = StoreRequest::FencedEffect { name: name.to_string(), holder, epoch, effect };
        async move {
            match self.call(req).await? {
                StoreReply::Effect(r) => Ok(r),
                other => Err(StoreError::protocol("FencedEffect", &other)),
            }
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

fn expect_cas(reply: StoreReply, op: &str) -> Result<CasResult, StoreError> {
    match reply {
        StoreReply::Cas(r) => Ok(r),
        other => Err(StoreError::protocol(op, &other)),
    }
}

#[cfg(test)]
mod conformance;
