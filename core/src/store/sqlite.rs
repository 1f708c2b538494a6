//! SQLite backend: the CAS rules of [`StoreBackend`] on a real database.
//!
//! Every write runs in one `BEGIN IMMEDIATE` transaction: it takes SQLite's
//! write lock up front, reads the current row, decides exactly as
//! [`MemStore`](super::MemStore) does, and writes with a conditional statement
//! (`UPDATE ... WHERE name = ? AND version = ?` or `INSERT ... ON CONFLICT DO
//! NOTHING`) whose change count is checked before commit. Several processes
//! can therefore share one database file (WAL mode, busy timeout) without
//! losing a CAS update.
//!
//! All `u64` values (instance ids, epochs, times, versions, seqs) are stored
//! as SQLite's signed 64-bit integers by a bit-preserving cast, so values
//! above `i64::MAX` round-trip exactly. Orderings (expiry) are therefore
//! compared in Rust on the decoded `u64`s, never in SQL.

use super::fleet_records::*;
use super::records::*;
use super::StoreBackend;
use crate::clock::Millis;
use crate::ids::InstanceId;
use crate::worker::WorkerState;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// The schema this code writes, kept in `PRAGMA user_version`.
///
/// - 1: `leases`, `effects`.
/// - 2: adds the worker fleet: `instances`, `slots`, `workers`. A version-1
///   database is migrated in place (its tables are kept as they are).
/// - 3: a unique index on `effects (lease, effect)`: an effect key commits
///   at most once (DESIGN.md, invariant E1).
const SCHEMA_VERSION: i64 = 3;

/// How long a writer waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT    PRIMARY KEY NOT NULL,
    holder     INTEGER NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS effects (
    seq    INTEGER PRIMARY KEY,
    lease  TEXT    NOT NULL,
    holder INTEGER NOT NULL,
    epoch  INTEGER NOT NULL,
    effect TEXT    NOT NULL,
    at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS effects_by_key ON effects (lease, effect);
CREATE TABLE IF NOT EXISTS instances (
    id           INTEGER PRIMARY KEY NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS slots (
    worker      TEXT    PRIMARY KEY NOT NULL,
    org         TEXT    NOT NULL,
    reserved_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS slots_by_org ON slots (org);
CREATE TABLE IF NOT EXISTS workers (
    id          TEXT    PRIMARY KEY NOT NULL,
    org         TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    owner       INTEGER NOT NULL,
    owner_epoch INTEGER NOT NULL,
    pod         TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    session     INTEGER NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    idle_since  INTEGER NOT NULL,
    version     INTEGER NOT NULL
);
";

/// A [`StoreBackend`] on one SQLite connection.
pub struct SqliteStore {
    conn: Connection,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.conn.path()).finish()
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

/// `u64` -> SQLite integer, bit-preserving.
fn enc(v: u64) -> i64 {
    v as i64
}

/// SQLite integer -> `u64`, bit-preserving (inverse of [`enc`]).
fn dec(v: i64) -> u64 {
    v as u64
}

fn read_row(conn: &Connection, name: &str) -> Result<Option<LeaseRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT holder, epoch, expires_at, version FROM leases WHERE name = ?1")
        .map_err(backend)?;
    stmt.query_row(params![name], |row| {
        Ok(LeaseRecord {
            name: name.to_string(),
            holder: row.get::<_, Option<i64>>(0)?.map(|h| InstanceId(dec(h))),
            epoch: dec(row.get(1)?),
            expires_at: dec(row.get(2)?),
            version: dec(row.get(3)?),
        })
    })
    .optional()
    .map_err(backend)
}

fn rejected(reason: Reject, current: Option<LeaseRecord>) -> CasResult {
    CasResult::Rejected { reason, current }
}

/// An arithmetic overflow on an applied write: refused before anything changed.
fn overflow(what: &str) -> StoreError {
    StoreError::Failed(format!("{what} overflows u64"))
}

impl SqliteStore {
    /// A private, non-durable database (tests, simulation).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        Self::init(conn, false)
    }

    /// A database file, created if missing; WAL mode so several processes can
    /// share it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = Connection::open(path.as_ref()).map_err(backend)?;
        Self::init(conn, true)
    }

    fn init(mut conn: Connection, file: bool) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
        if file {
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(backend)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend(format!("sqlite: could not enable WAL (journal_mode is {mode})")));
            }
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(backend)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "sqlite: database schema version {found} is newer than this build supports ({SCHEMA_VERSION})"
            )));
        }
        if found < 0 {
            return Err(StoreError::Backend(format!("sqlite: unknown database schema version {found}")));
        }
        tx.execute_batch(SCHEMA).map_err(backend)?;
        if found < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(SqliteStore { conn })
    }

    fn write_tx(&mut self) -> Result<Transaction<'_>, StoreError> {
        self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)
    }
}

/// Overwrite the record at `expected_version` with `next` (one conditional
/// statement); fails unless exactly that row changed.
fn cas_update(tx: &Transaction<'_>, next: &LeaseRecord, expected_version: u64) -> Result<(), StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE leases SET holder = ?1, epoch = ?2, expires_at = ?3, version = ?4
             WHERE name = ?5 AND version = ?6",
        )
        .map_err(backend)?
        .execute(params![
            next.holder.map(|h| enc(h.0)),
            enc(next.epoch),
            enc(next.expires_at),
            enc(next.version),
            next.name,
            enc(expected_version),
        ])
        .map_err(backend)?;
    if n != 1 {
        return Err(StoreError::Backend(format!("sqlite: CAS on lease {:?} changed {n} rows, expected 1", next.name)));
    }
    Ok(())
}

fn finish<T>(tx: Transaction<'_>, out: T) -> Result<T, StoreError> {
    tx.commit().map_err(backend)?;
    Ok(out)
}

fn abandon<T>(tx: Transaction<'_>, out: T) -> Result<T, StoreError> {
    tx.rollback().map_err(backend)?;
    Ok(out)
}

impl StoreBackend for SqliteStore {
    fn read_lease(&mut self, name: &str) -> Result<Option<LeaseRecord>, StoreError> {
        read_row(&self.conn, name)
    }

    fn acquire_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: Option<u64>,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let tx = self.write_tx()?;
        let current = read_row(&tx, name)?;
        if current.as_ref().map(|r| r.version) != expected_version {
            return abandon(tx, rejected(Reject::StaleVersion, current));
        }
        match current {
            None => {
                let expires_at = now.checked_add(ttl_ms).ok_or_else(|| overflow("now + ttl"))?;
                let next =
                    LeaseRecord { name: name.to_string(), holder: Some(holder), epoch: 1, expires_at, version: 1 };
                let n = tx
                    .prepare_cached(
                        "INSERT INTO leases (name, holder, epoch, expires_at, version) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .map_err(backend)?
                    .execute(params![name, enc(holder.0), enc(next.epoch), enc(next.expires_at), enc(next.version)])
                    .map_err(backend)?;
                if n != 1 {
                    return Err(StoreError::Backend(format!("sqlite: lease {name:?} appeared during its creation")));
                }
                finish(tx, CasResult::Applied(next))
            }
            Some(r) if !r.is_free_at(now) => abandon(tx, rejected(Reject::HeldByOther, Some(r))),
            Some(r) => {
                let next = LeaseRecord {
                    name: name.to_string(),
                    holder: Some(holder),
                    epoch: r.epoch.checked_add(1).ok_or_else(|| overflow("epoch"))?,
                    expires_at: now.checked_add(ttl_ms).ok_or_else(|| overflow("now + ttl"))?,
                    version: r.version.checked_add(1).ok_or_else(|| overflow("version"))?,
                };
                cas_update(&tx, &next, r.version)?;
                finish(tx, CasResult::Applied(next))
            }
        }
    }

    fn renew_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let tx = self.write_tx()?;
        let Some(r) = read_row(&tx, name)? else {
            return abandon(tx, rejected(Reject::NoRecord, None));
        };
        if let Some(reason) = Reject::holder_check(&r, holder, expected_version) {
            return abandon(tx, rejected(reason, Some(r)));
        }
        let next = LeaseRecord {
            expires_at: now.checked_add(ttl_ms).ok_or_else(|| overflow("now + ttl"))?,
            version: r.version.checked_add(1).ok_or_else(|| overflow("version"))?,
            ..r.clone()
        };
        cas_update(&tx, &next, r.version)?;
        finish(tx, CasResult::Applied(next))
    }

    fn release_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let tx = self.write_tx()?;
        let Some(r) = read_row(&tx, name)? else {
            return abandon(tx, rejected(Reject::NoRecord, None));
        };
        if let Some(reason) = Reject::holder_check(&r, holder, expected_version) {
            return abandon(tx, rejected(reason, Some(r)));
        }
        let next = LeaseRecord {
            holder: None,
            expires_at: now,
            version: r.version.checked_add(1).ok_or_else(|| overflow("version"))?,
            ..r.clone()
        };
        cas_update(&tx, &next, r.version)?;
        finish(tx, CasResult::Applied(next))
    }

    fn fenced_effect(
        &mut self,
        name: &str,
        holder: InstanceId,
        epoch: u64,
        effect: &str,
        now: Millis,
    ) -> Result<EffectResult, StoreError> {
        let tx = self.write_tx()?;
        // At most once per key: a retry after an unknown outcome finds the
        // first commit, whatever the lease says now.
        let done: Option<i64> = tx
            .prepare_cached("SELECT seq FROM effects WHERE lease = ?1 AND effect = ?2")
            .map_err(backend)?
            .query_row(params![name, effect], |row| row.get(0))
            .optional()
            .map_err(backend)?;
        if let Some(seq) = done {
            return abandon(tx, EffectResult::Duplicate { seq: dec(seq) });
        }
        let reason = match read_row(&tx, name)? {
            None => Some(FenceReject::NoLease),
            Some(r) if r.holder != Some(holder) => Some(FenceReject::NotHolder),
            Some(r) if r.epoch != epoch => Some(FenceReject::StaleEpoch),
            Some(r) if r.expires_at <= now => Some(FenceReject::Expired),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return abandon(tx, EffectResult::Rejected { reason });
        }
        let seq: i64 = tx
            .prepare_cached(
                "INSERT INTO effects (seq, lease, holder, epoch, effect, at)
                 VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM effects), ?1, ?2, ?3, ?4, ?5)
                 RETURNING seq",
            )
            .map_err(backend)?
            .query_row(params![name, enc(holder.0), enc(epoch), effect, enc(now)], |row| row.get(0))
            .map_err(backend)?;
        finish(tx, EffectResult::Applied { seq: dec(seq) })
    }

    fn effects(&mut self) -> Result<Vec<EffectRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, lease, holder, epoch, effect, at FROM effects ORDER BY seq")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |row| {
                Ok(EffectRow {
                    seq: dec(row.get(0)?),
                    lease: row.get(1)?,
                    holder: InstanceId(dec(row.get(2)?)),
                    epoch: dec(row.get(3)?),
                    effect: row.get(4)?,
                    at: dec(row.get(5)?),
                })
            })
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn register_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        let tx = self.write_tx()?;
        // Dead by the threshold: refused, nothing changes. Same rule as
        // `registry::is_dead`, in SQL; NULL threshold is a plain upsert.
        let dead: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM instances WHERE id = ?1 AND ?2 IS NOT NULL AND heartbeat_at + ?2 <= ?3)")
            .map_err(backend)?
            .query_row(params![enc(id.0), dead_after_ms.map(enc), enc(now)], |r| r.get(0))
            .map_err(backend)?;
        if dead {
            return finish(tx, false);
        }
        let n = tx
            .prepare_cached(
                "INSERT INTO instances (id, started_at, heartbeat_at) VALUES (?1, ?2, ?2)
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            )
            .map_err(backend)?
            .execute(params![enc(id.0), enc(now)])
            .map_err(backend)?;
        if n != 1 {
            return Err(StoreError::Backend(format!("sqlite: upsert of instance {id} changed {n} rows, expected 1")));
        }
        finish(tx, true)
    }

    fn heartbeat_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.register_instance(id, dead_after_ms, now)
    }

    fn list_instances(&mut self) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, started_at, heartbeat_at FROM instances").map_err(backend)?;
        let rows = stmt
            .query_map([], |row| {
                Ok(InstanceRecord {
                    id: InstanceId(dec(row.get(0)?)),
                    started_at: dec(row.get(1)?),
                    heartbeat_at: dec(row.get(2)?),
                })
            })
            .map_err(backend)?;
        let mut list = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
        // By the decoded u64 id: SQL would order ids >= 2^63 first.
        list.sort_by_key(|r| r.id);
        Ok(list)
    }

    fn reserve_slot(
        &mut self,
        worker: &str,
        org: &str,
        org_cap: u32,
        global_cap: u32,
        now: Millis,
    ) -> Result<SlotResult, StoreError> {
        let tx = self.write_tx()?;
        let exists: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM slots WHERE worker = ?1)")
            .map_err(backend)?
            .query_row(params![worker], |row| row.get(0))
            .map_err(backend)?;
        if exists {
            return abandon(tx, SlotResult::Exists);
        }
        let in_org: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM slots WHERE org = ?1")
            .map_err(backend)?
            .query_row(params![org], |row| row.get(0))
            .map_err(backend)?;
        if in_org >= i64::from(org_cap) {
            return abandon(tx, SlotResult::OrgCap);
        }
        let total: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM slots")
            .map_err(backend)?
            .query_row([], |row| row.get(0))
            .map_err(backend)?;
        if total >= i64::from(global_cap) {
            return abandon(tx, SlotResult::GlobalCap);
        }
        let n = tx
            .prepare_cached(
                "INSERT INTO slots (worker, org, reserved_at) VALUES (?1, ?2, ?3) ON CONFLICT (worker) DO NOTHING",
            )
            .map_err(backend)?
            .execute(params![worker, org, enc(now)])
            .map_err(backend)?;
        if n != 1 {
            return Err(StoreError::Backend(format!("sqlite: slot of {worker:?} appeared during its reservation")));
        }
        finish(tx, SlotResult::Reserved)
    }

    fn free_slot(&mut self, worker: &str, fence: Option<&LeaseFence>, now: Millis) -> Result<SlotResult, StoreError> {
        let tx = self.write_tx()?;
        if !fence_holds(&tx, fence, now)? {
            return abandon(tx, SlotResult::Fenced);
        }
        let n = tx
            .prepare_cached("DELETE FROM slots WHERE worker = ?1")
            .map_err(backend)?
            .execute(params![worker])
            .map_err(backend)?;
        match n {
            0 => abandon(tx, SlotResult::NotFound),
            1 => finish(tx, SlotResult::Freed),
            n => Err(StoreError::Backend(format!("sqlite: freeing the slot of {worker:?} removed {n} rows"))),
        }
    }

    fn list_slots(&mut self) -> Result<Vec<SlotRecord>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT worker, org, reserved_at FROM slots ORDER BY worker").map_err(backend)?;
        let rows = stmt
            .query_map([], |row| {
                Ok(SlotRecord { worker: row.get(0)?, org: row.get(1)?, reserved_at: dec(row.get(2)?) })
            })
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn insert_worker(&mut self, worker: &WorkerRecord, now: Millis) -> Result<WorkerCas, StoreError> {
        let tx = self.write_tx()?;
        if let Some(w) = read_worker(&tx, &worker.id)? {
            return abandon(tx, WorkerCas::Rejected { reason: WorkerReject::Exists, current: Some(w) });
        }
        let rec = WorkerRecord { created_at: now, updated_at: now, idle_since: now, version: 1, ..worker.clone() };
        let n = tx
            .prepare_cached(
                "INSERT INTO workers (id, org, state, owner, owner_epoch, pod, secret, session,
                                      created_at, updated_at, idle_since, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO NOTHING",
            )
            .map_err(backend)?
            .execute(params![
                rec.id,
                rec.org,
                rec.state.name(),
                enc(rec.owner.0),
                enc(rec.owner_epoch),
                rec.pod,
                rec.secret,
                rec.session.map(enc),
                enc(rec.created_at),
                enc(rec.updated_at),
                enc(rec.idle_since),
                enc(rec.version),
            ])
            .map_err(backend)?;
        if n != 1 {
            return Err(StoreError::Backend(format!("sqlite: worker {:?} appeared during its insert", rec.id)));
        }
        finish(tx, WorkerCas::Applied(rec))
    }

    fn update_worker(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: WorkerState,
        to: WorkerState,
        session: Option<u64>,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        let tx = self.write_tx()?;
        let w = match worker_guard(&tx, id, owner, epoch, fence, now)? {
            Ok(w) => w,
            Err(rejected) => return abandon(tx, rejected),
        };
        let reason = if w.state != from {
            Some(WorkerReject::WrongState)
        } else if !from.can_become(to) {
            Some(WorkerReject::BadTransition)
        } else {
            None
        };
        if let Some(reason) = reason {
            return abandon(tx, WorkerCas::Rejected { reason, current: Some(w) });
        }
        let next = WorkerRecord {
            state: to,
            session,
            updated_at: now,
            idle_since: if to == WorkerState::HotIdle && from != WorkerState::HotIdle { now } else { w.idle_since },
            version: w.version.checked_add(1).ok_or_else(|| overflow("worker version"))?,
            ..w.clone()
        };
        cas_update_worker(&tx, &next, w.version)?;
        finish(tx, WorkerCas::Applied(next))
    }

    fn claim_worker_to(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: Option<WorkerState>,
        to: Option<WorkerState>,
        new_owner: InstanceId,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        let tx = self.write_tx()?;
        let w = match worker_guard(&tx, id, owner, epoch, fence, now)? {
            Ok(w) => w,
            Err(rejected) => return abandon(tx, rejected),
        };
        if w.state.is_terminal() || from.is_some_and(|f| f != w.state) {
            return abandon(tx, WorkerCas::Rejected { reason: WorkerReject::WrongState, current: Some(w) });
        }
        if to.is_some_and(|to| !w.state.can_become(to)) {
            return abandon(tx, WorkerCas::Rejected { reason: WorkerReject::BadTransition, current: Some(w) });
        }
        let (state, session, idle_since) = match to {
            Some(to) => {
                let idle_since = if to == WorkerState::HotIdle && w.state != WorkerState::HotIdle { now } else { w.idle_since };
                (to, None, idle_since)
            }
            None => (w.state, w.session, w.idle_since),
        };
        let next = WorkerRecord {
            state,
            session,
            idle_since,
            owner: new_owner,
            owner_epoch: w.owner_epoch.checked_add(1).ok_or_else(|| overflow("owner epoch"))?,
            updated_at: now,
            version: w.version.checked_add(1).ok_or_else(|| overflow("worker version"))?,
            ..w.clone()
        };
        cas_update_worker(&tx, &next, w.version)?;
        finish(tx, WorkerCas::Applied(next))
    }

    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError> {
        let sql = format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY id");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt.query_map([], RawWorker::from_row).map_err(backend)?;
        rows.map(|r| r.map_err(backend).and_then(RawWorker::decode)).collect()
    }
}

// ---------------------------------------------------------------------------
// Fleet helpers.

/// Whether `fence` holds at `now`, read inside the caller's transaction:
/// `holder` holds the lease at `epoch` and it has not expired (absent: holds).
fn fence_holds(conn: &Connection, fence: Option<&LeaseFence>, now: Millis) -> Result<bool, StoreError> {
    let Some(f) = fence else {
        return Ok(true);
    };
    Ok(read_row(conn, &f.lease)?
        .is_some_and(|l| l.holder == Some(f.holder) && l.epoch == f.epoch && l.expires_at > now))
}

const WORKER_COLUMNS: &str =
    "id, org, state, owner, owner_epoch, pod, secret, session, created_at, updated_at, idle_since, version";

/// A `workers` row as stored; [`RawWorker::decode`] parses the state.
struct RawWorker {
    id: String,
    org: String,
    state: String,
    owner: i64,
    owner_epoch: i64,
    pod: String,
    secret: String,
    session: Option<i64>,
    created_at: i64,
    updated_at: i64,
    idle_since: i64,
    version: i64,
}

impl RawWorker {
    /// Columns in [`WORKER_COLUMNS`] order.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawWorker {
            id: row.get(0)?,
            org: row.get(1)?,
            state: row.get(2)?,
            owner: row.get(3)?,
            owner_epoch: row.get(4)?,
            pod: row.get(5)?,
            secret: row.get(6)?,
            session: row.get(7)?,
            created_at: row.get(8)?,
            updated_at: row.get(9)?,
            idle_since: row.get(10)?,
            version: row.get(11)?,
        })
    }

    fn decode(self) -> Result<WorkerRecord, StoreError> {
        let state = self
            .state
            .parse::<WorkerState>()
            .map_err(|e| StoreError::Backend(format!("sqlite: worker {:?}: {e}", self.id)))?;
        Ok(WorkerRecord {
            id: self.id,
            org: self.org,
            state,
            owner: InstanceId(dec(self.owner)),
            owner_epoch: dec(self.owner_epoch),
            pod: self.pod,
            secret: self.secret,
            session: self.session.map(dec),
            created_at: dec(self.created_at),
            updated_at: dec(self.updated_at),
            idle_since: dec(self.idle_since),
            version: dec(self.version),
        })
    }
}

fn read_worker(conn: &Connection, id: &str) -> Result<Option<WorkerRecord>, StoreError> {
    let sql = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE id = ?1");
    let raw = conn
        .prepare_cached(&sql)
        .map_err(backend)?
        .query_row(params![id], RawWorker::from_row)
        .optional()
        .map_err(backend)?;
    raw.map(RawWorker::decode).transpose()
}

/// The common checks of a worker CAS, as in `MemStore`: NoWorker, Fenced,
/// StaleOwner. `Ok(Err(..))` is a rejection to return as is.
fn worker_guard(
    tx: &Transaction<'_>,
    id: &str,
    owner: InstanceId,
    epoch: u64,
    fence: Option<&LeaseFence>,
    now: Millis,
) -> Result<Result<WorkerRecord, WorkerCas>, StoreError> {
    let Some(w) = read_worker(tx, id)? else {
        return Ok(Err(WorkerCas::Rejected { reason: WorkerReject::NoWorker, current: None }));
    };
    if !fence_holds(tx, fence, now)? {
        return Ok(Err(WorkerCas::Rejected { reason: WorkerReject::Fenced, current: Some(w) }));
    }
    if w.owner != owner || w.owner_epoch != epoch {
        return Ok(Err(WorkerCas::Rejected { reason: WorkerReject::StaleOwner, current: Some(w) }));
    }
    Ok(Ok(w))
}

/// Overwrite the worker row at `expected_version` with `next` (one
/// conditional statement); fails unless exactly that row changed.
fn cas_update_worker(tx: &Transaction<'_>, next: &WorkerRecord, expected_version: u64) -> Result<(), StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE workers SET org = ?1, state = ?2, owner = ?3, owner_epoch = ?4, pod = ?5, secret = ?6,
                    session = ?7, created_at = ?8, updated_at = ?9, idle_since = ?10, version = ?11
             WHERE id = ?12 AND version = ?13",
        )
        .map_err(backend)?
        .execute(params![
            next.org,
            next.state.name(),
            enc(next.owner.0),
            enc(next.owner_epoch),
            next.pod,
            next.secret,
            next.session.map(enc),
            enc(next.created_at),
            enc(next.updated_at),
            enc(next.idle_since),
            enc(next.version),
            next.id,
            enc(expected_version),
        ])
        .map_err(backend)?;
    if n != 1 {
        return Err(StoreError::Backend(format!("sqlite: CAS on worker {:?} changed {n} rows, expected 1", next.id)));
    }
    Ok(())
}
