//! The store conformance suite. The rules live once, in `store/rules/`;
//! what can still differ between backends is how they load and write, so:
//!
//! - `lease.rs`, `fleet.rs`, `cron.rs`: one set of cases, generic over a backend
//!   factory, run against [`MemStore`] and [`SqliteStore`] in memory and on
//!   a file: every behaviour of every request, overflow included.
//! - `sqlite.rs`: what only SQLite has: reopening, the schema and its
//!   migrations, WAL, several connections on one file.
//! - `postgres.rs` (feature `postgres`): the same cases on [`PgStore`]
//!   (`postgres_schema::*`, a fresh schema on a throwaway server per
//!   store), and what only Postgres has: reconnecting, migrations, several
//!   pools racing the CAS writes and the capacity gates, the database clock.
//! - `model.rs`: a property test: random sequences of every request, sent
//!   through `StoreBackend::apply`, give the same replies and the same
//!   records on both backends and the bare rulebook (so it also pins the
//!   dispatch from a request to its typed operation).

mod cron;
mod fleet;
mod lease;
mod model;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use super::*;
use crate::clock::Millis;
use cron::*;
use fleet::*;
use lease::*;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use WorkerState as S;

const L: &str = "leader";

fn id(n: u64) -> InstanceId {
    InstanceId(n)
}

fn rec(holder: Option<u64>, epoch: u64, expires_at: u64, version: u64) -> LeaseRecord {
    LeaseRecord { name: L.to_string(), holder: holder.map(InstanceId), epoch, expires_at, version }
}

#[track_caller]
fn applied(r: Result<CasResult, StoreError>) -> LeaseRecord {
    match r {
        Ok(CasResult::Applied(rec)) => rec,
        other => panic!("expected Applied, got {other:?}"),
    }
}

#[track_caller]
fn rejected(r: Result<CasResult, StoreError>) -> (Reject, Option<LeaseRecord>) {
    match r {
        Ok(CasResult::Rejected { reason, current }) => (reason, current),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[track_caller]
fn seq_of(r: Result<EffectResult, StoreError>) -> u64 {
    match r {
        Ok(EffectResult::Applied { seq }) => seq,
        other => panic!("expected an applied effect, got {other:?}"),
    }
}

#[track_caller]
fn fence_reason(r: Result<EffectResult, StoreError>) -> FenceReject {
    match r {
        Ok(EffectResult::Rejected { reason }) => reason,
        other => panic!("expected a rejected effect, got {other:?}"),
    }
}

#[track_caller]
fn read<B: StoreBackend>(b: &mut B, name: &str) -> Option<LeaseRecord> {
    b.read_lease(name).expect("read_lease")
}

// ---------------------------------------------------------------------------
// Temporary database files.

/// A unique path under the temp dir; removes the database and its WAL/SHM
/// side files on drop.
struct TempDb {
    path: PathBuf,
}

impl TempDb {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("haywire-store-{}-{n}-{tag}.sqlite", std::process::id()));
        let db = TempDb { path };
        db.remove();
        db
    }

    fn side_files(&self) -> [PathBuf; 3] {
        let p = self.path.as_os_str();
        let with = |suffix: &str| {
            let mut s = p.to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        [self.path.clone(), with("-wal"), with("-shm")]
    }

    fn remove(&self) {
        for f in self.side_files() {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

// ---------------------------------------------------------------------------
// The worker fleet: instances, slots, workers.

/// The lease that fences fleet writes in these cases.
const FL: &str = "fleet";

fn fence(holder: u64, epoch: u64) -> LeaseFence {
    LeaseFence { lease: FL.to_string(), holder: id(holder), epoch }
}

/// A worker as a caller would insert it; the times and version are junk the
/// store must overwrite.
fn worker(wid: &str, org: &str, state: WorkerState, owner: u64, epoch: u64) -> WorkerRecord {
    WorkerRecord {
        id: wid.to_string(),
        org: org.to_string(),
        state,
        owner: id(owner),
        owner_epoch: epoch,
        pod: format!("pod-{wid}"),
        secret: format!("secret-{wid}"),
        session: None,
        created_at: 777,
        updated_at: 888,
        idle_since: 999,
        version: 55,
    }
}

fn inst(n: u64, started_at: Millis, heartbeat_at: Millis) -> InstanceRecord {
    InstanceRecord { id: id(n), started_at, heartbeat_at, draining: false }
}

fn slot(w: &str, org: &str, reserved_at: Millis) -> SlotRecord {
    SlotRecord { worker: w.to_string(), org: org.to_string(), reserved_at }
}

#[track_caller]
fn w_applied(r: Result<WorkerCas, StoreError>) -> WorkerRecord {
    match r {
        Ok(WorkerCas::Applied(rec)) => rec,
        other => panic!("expected an applied worker write, got {other:?}"),
    }
}

#[track_caller]
fn w_rejected(r: Result<WorkerCas, StoreError>) -> (WorkerReject, Option<WorkerRecord>) {
    match r {
        Ok(WorkerCas::Rejected { reason, current }) => (reason, current),
        other => panic!("expected a rejected worker write, got {other:?}"),
    }
}

#[track_caller]
fn workers<B: StoreBackend>(b: &mut B) -> Vec<WorkerRecord> {
    b.list_workers().expect("list_workers")
}

#[track_caller]
fn slots<B: StoreBackend>(b: &mut B) -> Vec<SlotRecord> {
    b.list_slots().expect("list_slots")
}

#[track_caller]
fn reserve<B: StoreBackend>(b: &mut B, w: &str, org: &str, org_cap: u32, global_cap: u32, now: Millis) -> SlotResult {
    b.reserve_slot(w, org, org_cap, global_cap, now).expect("reserve_slot")
}

#[track_caller]
fn free<B: StoreBackend>(b: &mut B, w: &str, f: Option<&LeaseFence>, now: Millis) -> SlotResult {
    b.free_slot(w, f, now).expect("free_slot")
}

/// `update_worker` without a session or fence.
fn step_worker<B: StoreBackend>(
    b: &mut B,
    wid: &str,
    owner: u64,
    epoch: u64,
    from: WorkerState,
    to: WorkerState,
    now: Millis,
) -> Result<WorkerCas, StoreError> {
    b.update_worker(wid, id(owner), epoch, from, to, None, None, now)
}

/// Runs `case` with a factory of file-backed stores, each on a temporary
/// file of its own, removed once the case is done (and its connections
/// closed).
fn with_files(tag: &str, case: impl FnOnce(&dyn Fn() -> SqliteStore)) {
    let files = RefCell::new(Vec::new());
    let mk = || {
        let db = TempDb::new(tag);
        let store = SqliteStore::open(&db.path).expect("open sqlite file");
        files.borrow_mut().push(db);
        store
    };
    case(&mk);
}

/// Stamps out one `#[test]` per case and backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $case() { super::$case(crate::store::MemStore::new); })*
        }
        mod sqlite_mem {
            $(#[test] fn $case() {
                super::$case(|| crate::store::SqliteStore::open_in_memory().expect("open in memory"));
            })*
        }
        mod sqlite_file {
            $(#[test] fn $case() { super::with_files(stringify!($case), |mk| super::$case(mk)); })*
        }
        #[cfg(feature = "postgres")]
        mod postgres_schema {
            $(#[test] fn $case() { super::postgres::with_schemas(stringify!($case), |mk| super::$case(mk)); })*
        }
    };
}

conformance!(
    acquire_free_creates_epoch_one,
    acquire_version_must_match,
    acquire_expired_bumps_epoch,
    acquire_held_is_rejected,
    renew_by_holder_only,
    stale_version_rejected,
    release_by_non_holder_rejected,
    release_then_acquire_bumps_epoch_by_one,
    long_chain_of_holders,
    no_record_for_renew_or_release,
    leases_are_independent,
    fenced_effects,
    effect_keys_commit_once,
    fence_reject_precedence,
    u64_values_round_trip,
    arithmetic_overflow_is_an_error_not_a_panic,
    instances_register_heartbeat_list,
    dead_instances_are_not_revived,
    draining_is_marked_once_and_kept,
    slots_respect_org_and_global_caps,
    slots_free_and_reserve_again,
    slots_free_is_fenced,
    workers_insert_stamps_times,
    worker_lifecycle,
    worker_heartbeat_keeps_idle_since,
    worker_update_rejections,
    terminal_workers_are_final,
    claim_worker_fences_stale_owners,
    claim_worker_only_from_the_state_seen,
    claim_worker_to_moves_the_state_in_the_same_write,
    claim_within_floor_judges_the_owners_idle_rows_now,
    fenced_worker_writes,
    fleet_lists_are_ordered,
    own_scope_lists_what_a_fallback_pass_reads,
    idle_and_session_lists,
    fleet_u64_values_round_trip,
    fleet_overflow_is_an_error_not_a_panic,
    jobs_are_created_edited_and_listed,
    job_ownership_moves_by_cas,
    a_slot_commits_once_from_the_owner,
    the_run_cap_holds_and_finishes_free_places,
    settings_versions_rise,
    cron_u64_values_round_trip,
);

