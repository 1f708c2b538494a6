//! SQLite backend: the CAS rules of [`StoreBackend`] on a real database.
//!
//! Every write runs in one `BEGIN IMMEDIATE` transaction: it takes SQLite's
//! write lock up front, reads the current rows, asks the rulebook
//! ([`rules`](super::rules)), and writes its answer with one conditional
//! statement on what it read (`UPDATE ... WHERE name = ? AND version = ?` or
//! `INSERT ... ON CONFLICT DO NOTHING`) whose change count is checked before
//! commit: a mismatch is an error and nothing is committed. Several processes
//! can therefore share one database file (WAL mode, busy timeout) without
//! losing a CAS update.
//!
//! All `u64` values (instance ids, epochs, times, versions, seqs) are stored
//! as SQLite's signed 64-bit integers by a bit-preserving cast, so values
//! above `i64::MAX` round-trip exactly. Orderings (expiry) are therefore
//! compared in Rust on the decoded `u64`s, never in SQL.

/// Each table's columns as read, in its row decoder's order. Macros, not
/// consts, so that a statement naming them is one `concat!`ed `&'static
/// str` instead of a string formatted on every call (docs/design.md §12).
macro_rules! worker_columns {
    () => {
        "id, org, state, owner, owner_epoch, pod, secret, session, created_at, updated_at, idle_since, version"
    };
}
macro_rules! job_columns {
    () => {
        "id, schedule, status, owner, owner_epoch, since, last_slot, spec, version"
    };
}
macro_rules! fire_columns {
    () => {
        "job, slot, kind, owner, epoch, at, deadline, finished"
    };
}

use super::cron_records::*;
use super::fleet_records::*;
use super::records::*;
use super::lifecycle::WorkerState;
use super::rules::{self, Outcome};
use super::StoreBackend;
use crate::clock::Millis;
use crate::ids::InstanceId;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

/// The schema, one step per version, the version kept in `PRAGMA
/// user_version`: a database at version `k` has run the first `k` steps, and
/// opening runs the rest, so a database of an older version is migrated in
/// place, its tables kept as they are. The `CREATE` steps are idempotent
/// (`IF NOT EXISTS`); step 4's `ALTER TABLE` is not, so steps before the
/// found version are never run again.
///
/// - 1: `leases`, `effects`.
/// - 2: adds the worker fleet: `instances`, `slots`, `workers`.
/// - 3: a unique index on `effects (lease, effect)`: an effect key commits
///   at most once (docs/design.md §7, E1).
/// - 4: `instances.draining`: an instance shutting down hands its sessions
///   over (docs/design.md §2.5).
/// - 5: cron coordination: `jobs`, `fires` (one row per (job, slot), its
///   primary key: a slot commits at most once) and the one-row `settings`
///   (docs/design.md §2.7).
/// - 6: indexes on `workers` by owner, by (org, state) and by session: a
///   replica's own reaper, a spawn claiming another's idle worker and a
///   reconnect read the rows they act on rather than every row
///   (docs/design.md §12).
/// - 7: `worker_owners`, every instance that has owned a worker row, kept by
///   triggers on `workers` and filled from it when migrating: a fallback
///   pass finds the owners it may take over from in a table of one row per
///   instance rather than by a probe per owner (docs/design.md §12). It only
///   grows; an owner with no rows left reads none.
/// - 8: the index of unended rows by owner that a fallback pass walks.
/// - 9: an index on `instances (heartbeat_at)` and `unregistered_owners`
///   (the owners in `worker_owners` with no `instances` row, kept by
///   triggers on both): a fallback pass finds the owners not alive by their
///   heartbeat and in that table instead of reading every owner, which
///   every replica's pass did, so a fleet's passes cost the square of its
///   size (docs/design.md §12).
const SCHEMA: [&str; 9] = [
    "
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
",
    "
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
",
    "
CREATE UNIQUE INDEX IF NOT EXISTS effects_by_key ON effects (lease, effect);
",
    "
ALTER TABLE instances ADD COLUMN draining INTEGER NOT NULL DEFAULT 0;
",
    "
CREATE TABLE IF NOT EXISTS jobs (
    id          TEXT    PRIMARY KEY NOT NULL,
    schedule    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    owner       INTEGER NULL,
    owner_epoch INTEGER NOT NULL,
    since       INTEGER NOT NULL,
    last_slot   INTEGER NULL,
    spec        INTEGER NOT NULL,
    version     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fires (
    job      TEXT    NOT NULL,
    slot     INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    owner    INTEGER NULL,
    epoch    INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    finished INTEGER NULL,
    PRIMARY KEY (job, slot)
);
CREATE INDEX IF NOT EXISTS fires_unfinished ON fires (kind, finished);
CREATE TABLE IF NOT EXISTS settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    value      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
",
    "
CREATE INDEX IF NOT EXISTS workers_by_owner ON workers (owner);
CREATE INDEX IF NOT EXISTS workers_by_org_state ON workers (org, state);
CREATE INDEX IF NOT EXISTS workers_by_session ON workers (session);
",
    "
CREATE TABLE IF NOT EXISTS worker_owners (
    owner INTEGER PRIMARY KEY NOT NULL
);
INSERT OR IGNORE INTO worker_owners (owner) SELECT DISTINCT owner FROM workers;
CREATE TRIGGER IF NOT EXISTS worker_owners_on_insert AFTER INSERT ON workers
BEGIN
    INSERT OR IGNORE INTO worker_owners (owner) VALUES (NEW.owner);
END;
CREATE TRIGGER IF NOT EXISTS worker_owners_on_update AFTER UPDATE OF owner ON workers
BEGIN
    INSERT OR IGNORE INTO worker_owners (owner) VALUES (NEW.owner);
END;
",
    "
CREATE INDEX IF NOT EXISTS workers_unended_by_owner ON workers (owner) WHERE state NOT IN ('retired', 'lost');
",
    "
CREATE INDEX IF NOT EXISTS instances_by_heartbeat ON instances (heartbeat_at);
CREATE TABLE IF NOT EXISTS unregistered_owners (
    owner INTEGER PRIMARY KEY NOT NULL
);
INSERT OR IGNORE INTO unregistered_owners (owner)
    SELECT owner FROM worker_owners WHERE owner NOT IN (SELECT id FROM instances);
CREATE TRIGGER IF NOT EXISTS unregistered_owners_on_owner AFTER INSERT ON worker_owners
WHEN NOT EXISTS (SELECT 1 FROM instances WHERE id = NEW.owner)
BEGIN
    INSERT OR IGNORE INTO unregistered_owners (owner) VALUES (NEW.owner);
END;
CREATE TRIGGER IF NOT EXISTS unregistered_owners_on_register AFTER INSERT ON instances
BEGIN
    DELETE FROM unregistered_owners WHERE owner = NEW.id;
END;
",
];

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = SCHEMA.len() as i64;

/// How long a writer waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Create the tables of schema `version` in `conn`, exactly as a build of
/// that version did, and record the version: the migration tests' starting
/// point.
#[cfg(test)]
pub(super) fn create_at_version(conn: &Connection, version: usize) -> rusqlite::Result<()> {
    for step in &SCHEMA[..version] {
        conn.execute_batch(step)?;
    }
    conn.pragma_update(None, "user_version", version as i64)
}

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

/// Prepared statements kept per connection: more than the store's distinct
/// statements, dynamic ones (lists by state, batched writes) included.
const STATEMENT_CACHE: usize = 128;

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
        // The store has more distinct statements than rusqlite's default
        // cache of 16 holds: with it, statements were parsed again on most
        // calls (a tenth of a simulation's time; issue 14's profile).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
        for step in &SCHEMA[found as usize..] {
            tx.execute_batch(step).map_err(backend)?;
        }
        if found < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(SqliteStore { conn })
    }

    fn write_tx(&mut self) -> Result<WriteTx<'_>, StoreError> {
        WriteTx::begin(&self.conn)
    }
}

/// One write transaction, `BEGIN IMMEDIATE` to `COMMIT` or `ROLLBACK`, run
/// as cached statements: rusqlite's `Transaction` parses them again on every
/// call (a twentieth of a simulation, issue 14). Dropped still open (an
/// error, or a failed commit) it rolls back, as rusqlite's does.
struct WriteTx<'c> {
    conn: &'c Connection,
}

impl<'c> WriteTx<'c> {
    fn begin(conn: &'c Connection) -> Result<Self, StoreError> {
        run_cached(conn, "BEGIN IMMEDIATE")?;
        Ok(WriteTx { conn })
    }

    fn commit(self) -> Result<(), StoreError> {
        run_cached(self.conn, "COMMIT")
    }

    fn rollback(self) -> Result<(), StoreError> {
        run_cached(self.conn, "ROLLBACK")
    }
}

impl Deref for WriteTx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = run_cached(self.conn, "ROLLBACK");
        }
    }
}

fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql).map_err(backend)?.execute([]).map_err(backend)?;
    Ok(())
}

/// Commit what the rule decided, written by `write` inside the same
/// transaction, or roll back when it decided to write nothing; answer its
/// reply. An error drops the transaction, which rolls it back.
fn settle<R, N>(
    tx: WriteTx<'_>,
    out: Outcome<R, N>,
    write: impl FnOnce(&Connection, &N) -> Result<(), StoreError>,
) -> Result<R, StoreError> {
    match &out.next {
        Some(next) => {
            write(&tx, next)?;
            tx.commit()?;
        }
        None => tx.rollback()?,
    }
    Ok(out.reply)
}

/// A conditional write must change exactly the one row the rule read (or
/// create exactly the one it found missing); anything else means the
/// database moved under the transaction, and nothing is committed.
fn changed_one(n: usize, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Backend(format!("sqlite: {} changed {n} rows, expected 1", what())))
    }
}

/// Write `next` over the lease the rule read (one conditional statement on
/// its version), or create it if there was none.
fn write_lease(tx: &Connection, read: Option<&LeaseRecord>, next: &LeaseRecord) -> Result<(), StoreError> {
    let holder = next.holder.map(|h| enc(h.0));
    let n = match read {
        None => tx
            .prepare_cached(
                "INSERT INTO leases (name, holder, epoch, expires_at, version) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO NOTHING",
            )
            .map_err(backend)?
            .execute(params![next.name, holder, enc(next.epoch), enc(next.expires_at), enc(next.version)]),
        Some(r) => tx
            .prepare_cached(
                "UPDATE leases SET holder = ?2, epoch = ?3, expires_at = ?4, version = ?5
                 WHERE name = ?1 AND version = ?6",
            )
            .map_err(backend)?
            .execute(params![next.name, holder, enc(next.epoch), enc(next.expires_at), enc(next.version), enc(r.version)]),
    }
    .map_err(backend)?;
    changed_one(n, || format!("CAS on lease {:?}", next.name))
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
        let out = rules::lease::acquire(current.as_ref(), name, holder, expected_version, ttl_ms, now)?;
        settle(tx, out, |tx, next| write_lease(tx, current.as_ref(), next))
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
        let current = read_row(&tx, name)?;
        let out = rules::lease::renew(current.as_ref(), holder, expected_version, ttl_ms, now)?;
        settle(tx, out, |tx, next| write_lease(tx, current.as_ref(), next))
    }

    fn release_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let tx = self.write_tx()?;
        let current = read_row(&tx, name)?;
        let out = rules::lease::release(current.as_ref(), holder, expected_version, now)?;
        settle(tx, out, |tx, next| write_lease(tx, current.as_ref(), next))
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
        let committed: Option<i64> = tx
            .prepare_cached("SELECT seq FROM effects WHERE lease = ?1 AND effect = ?2")
            .map_err(backend)?
            .query_row(params![name, effect], |row| row.get(0))
            .optional()
            .map_err(backend)?;
        let last_seq: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM effects")
            .map_err(backend)?
            .query_row([], |row| row.get(0))
            .map_err(backend)?;
        let lease = read_row(&tx, name)?;
        let out =
            rules::effects::commit(committed.map(dec), lease.as_ref(), name, holder, epoch, effect, dec(last_seq), now)?;
        settle(tx, out, |tx, row| {
            // The seq is the primary key and (lease, effect) a unique index:
            // a row that appeared meanwhile fails the insert.
            let n = tx
                .prepare_cached("INSERT INTO effects (seq, lease, holder, epoch, effect, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(backend)?
                .execute(params![enc(row.seq), row.lease, enc(row.holder.0), enc(row.epoch), row.effect, enc(row.at)])
                .map_err(backend)?;
            changed_one(n, || format!("insert of effect {:?}", row.effect))
        })
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
        let current = read_instance(&tx, id)?;
        let out = rules::instances::stamp(current.as_ref(), id, dead_after_ms, now);
        settle(tx, out, |tx, next| {
            let n = match &current {
                None => tx
                    .prepare_cached(
                        "INSERT INTO instances (id, started_at, heartbeat_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
                    )
                    .map_err(backend)?
                    .execute(params![enc(next.id.0), enc(next.started_at), enc(next.heartbeat_at)]),
                Some(cur) => tx
                    .prepare_cached(
                        "UPDATE instances SET started_at = ?2, heartbeat_at = ?3 WHERE id = ?1 AND heartbeat_at = ?4",
                    )
                    .map_err(backend)?
                    .execute(params![enc(next.id.0), enc(next.started_at), enc(next.heartbeat_at), enc(cur.heartbeat_at)]),
            }
            .map_err(backend)?;
            changed_one(n, || format!("heartbeat of instance {id}"))
        })
    }

    fn heartbeat_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.register_instance(id, dead_after_ms, now)
    }

    fn drain_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        let tx = self.write_tx()?;
        let current = read_instance(&tx, id)?;
        let out = rules::instances::drain(current.as_ref(), dead_after_ms, now);
        settle(tx, out, |tx, next| {
            let n = tx
                .prepare_cached("UPDATE instances SET draining = 1 WHERE id = ?1 AND heartbeat_at = ?2 AND draining = 0")
                .map_err(backend)?
                .execute(params![enc(next.id.0), enc(next.heartbeat_at)])
                .map_err(backend)?;
            changed_one(n, || format!("drain of instance {id}"))
        })
    }

    fn list_instances(&mut self) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, started_at, heartbeat_at, draining FROM instances").map_err(backend)?;
        let rows = stmt.query_map([], instance_from_row).map_err(backend)?;
        let mut list = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
        // By the decoded u64 id: SQL would order ids >= 2^63 first.
        list.sort_by_key(|r| r.id);
        Ok(list)
    }

    /// A primary-key read per id, in id order (the set's).
    fn list_instances_of(&mut self, ids: &BTreeSet<InstanceId>) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut list = Vec::with_capacity(ids.len());
        for &id in ids {
            list.extend(read_instance(&self.conn, id)?);
        }
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
        let held = read_slot(&tx, worker)?;
        let count = |sql: &str, org: Option<&str>| -> Result<usize, StoreError> {
            let mut stmt = tx.prepare_cached(sql).map_err(backend)?;
            let n: i64 = match org {
                Some(org) => stmt.query_row(params![org], |row| row.get(0)),
                None => stmt.query_row([], |row| row.get(0)),
            }
            .map_err(backend)?;
            usize::try_from(n).map_err(|_| StoreError::Backend(format!("sqlite: slot count {n}")))
        };
        let in_org = count("SELECT COUNT(*) FROM slots WHERE org = ?1", Some(org))?;
        let total = count("SELECT COUNT(*) FROM slots", None)?;
        let out = rules::slots::reserve(held.as_ref(), in_org, total, worker, org, org_cap, global_cap, now);
        settle(tx, out, |tx, slot| {
            let n = tx
                .prepare_cached(
                    "INSERT INTO slots (worker, org, reserved_at) VALUES (?1, ?2, ?3) ON CONFLICT (worker) DO NOTHING",
                )
                .map_err(backend)?
                .execute(params![slot.worker, slot.org, enc(slot.reserved_at)])
                .map_err(backend)?;
            changed_one(n, || format!("reservation of the slot of {worker:?}"))
        })
    }

    fn free_slot(&mut self, worker: &str, fence: Option<&LeaseFence>, now: Millis) -> Result<SlotResult, StoreError> {
        let tx = self.write_tx()?;
        let held = read_slot(&tx, worker)?;
        let fence_lease = read_fence_lease(&tx, fence)?;
        let reply = rules::slots::free(held.as_ref(), fence.map(|f| (f, fence_lease.as_ref())), now);
        let out = Outcome { reply, next: (reply == SlotResult::Freed).then_some(()) };
        settle(tx, out, |tx, ()| {
            let n = tx
                .prepare_cached("DELETE FROM slots WHERE worker = ?1")
                .map_err(backend)?
                .execute(params![worker])
                .map_err(backend)?;
            changed_one(n, || format!("freeing the slot of {worker:?}"))
        })
    }

    fn list_slots(&mut self) -> Result<Vec<SlotRecord>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT worker, org, reserved_at FROM slots ORDER BY worker").map_err(backend)?;
        let rows = stmt.query_map([], slot_from_row).map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn insert_worker(&mut self, worker: &WorkerRecord, now: Millis) -> Result<WorkerCas, StoreError> {
        let tx = self.write_tx()?;
        let current = read_worker(&tx, &worker.id)?;
        let out = rules::workers::insert(current.as_ref(), worker, now);
        settle(tx, out, |tx, rec| {
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
            changed_one(n, || format!("insert of worker {:?}", rec.id))
        })
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
        let current = read_worker(&tx, id)?;
        let fence_lease = read_fence_lease(&tx, fence)?;
        let fence = fence.map(|f| (f, fence_lease.as_ref()));
        let out = rules::workers::update(current.as_ref(), fence, owner, epoch, from, to, session, now)?;
        settle(tx, out, |tx, next| cas_update_worker(tx, next, current.as_ref()))
    }

    fn claim_worker_within_floor(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: Option<WorkerState>,
        to: Option<WorkerState>,
        new_owner: InstanceId,
        floor: Option<&IdleFloor>,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        let tx = self.write_tx()?;
        let current = read_worker(&tx, id)?;
        let owner_idle = match rules::workers::floor_owner(current.as_ref(), floor) {
            Some(o) => owner_idle_workers(&tx, o)?,
            None => Vec::new(),
        };
        let fence_lease = read_fence_lease(&tx, fence)?;
        let fence = fence.map(|f| (f, fence_lease.as_ref()));
        let (c, idle) = (current.as_ref(), owner_idle.as_slice());
        let out = rules::workers::claim(c, idle, floor, fence, owner, epoch, from, to, new_owner, now)?;
        settle(tx, out, |tx, next| cas_update_worker(tx, next, current.as_ref()))
    }

    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError> {
        workers_where(&self.conn, concat!("SELECT ", worker_columns!(), " FROM workers ORDER BY id"), [])
    }

    /// Through the indexes: the instance's rows by owner, its minted ids by
    /// key range, the take-overs by key, and the unended rows of owners not
    /// alive (found by heartbeat and among the unregistered owners).
    fn list_workers_of(&mut self, scope: &OwnScope, now: Millis) -> Result<Vec<WorkerRecord>, StoreError> {
        let conn = &self.conn;
        let mut rows = BTreeMap::new();
        // The owners whose rows are in scope: itself, and every owner a row
        // has named that is not alive (no instance row, or a heartbeat too
        // long ago). Found through the heartbeat index and the table of
        // unregistered owners, not by reading every owner: each replica's
        // pass did, so the passes of a fleet of n cost n² (issue 14).
        let mut owners: BTreeSet<i64> = BTreeSet::from([enc(scope.instance.0)]);
        let heard = |h: i64| !rules::instances::heard_too_long_ago(dec(h), now, scope.dead_after_ms);
        let mut add = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<(), StoreError> {
            let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
            let found = stmt.query_map(p, |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?)));
            for pair in found.map_err(backend)? {
                let (o, heartbeat) = pair.map_err(backend)?;
                if !heartbeat.is_some_and(heard) {
                    owners.insert(o);
                }
            }
            Ok(())
        };
        match dead_heartbeats(now, scope.dead_after_ms) {
            Some(at_most) => {
                add("SELECT owner, NULL FROM unregistered_owners", &[])?;
                add(
                    "SELECT i.id, i.heartbeat_at FROM instances i INDEXED BY instances_by_heartbeat
                     WHERE i.heartbeat_at BETWEEN 0 AND ?1 AND i.id IN (SELECT owner FROM worker_owners)",
                    &[&at_most],
                )?;
            }
            // Times the index cannot bound: every owner, each judged here.
            None => add("SELECT o.owner, i.heartbeat_at FROM worker_owners o LEFT JOIN instances i ON i.id = o.owner", &[])?,
        }
        // Its own rows whole; another owner's unended ones only (its ended
        // rows in scope are the minted and taken-over ones, read below).
        // Each row read here is in scope by `in_scope`'s first clause (its
        // own) or its last (unended, of an owner not alive), so none is
        // filtered: the conformance model holds this to the rulebook.
        let own = concat!("SELECT ", worker_columns!(), " FROM workers WHERE owner = ?1");
        // A dead owner's rows are mostly ended, and stay: the partial index
        // holds only the unended ones, so the walk skips the rest (its
        // WHERE must be spelt out for SQLite to use it).
        let unended = concat!(
            "SELECT ",
            worker_columns!(),
            " FROM workers INDEXED BY workers_unended_by_owner
             WHERE owner = ?1 AND state NOT IN ('retired', 'lost')"
        );
        for o in owners {
            let found = if dec(o) == scope.instance.0 {
                workers_where(conn, &own, params![o])?
            } else {
                workers_where(conn, &unended, params![o])?
            };
            for w in found {
                rows.insert(w.id.clone(), w);
            }
        }
        for w in minted(conn, &scope.minted_prefix)? {
            rows.insert(w.id.clone(), w);
        }
        for id in &scope.ids {
            if let Some(w) = read_worker(conn, id)? {
                rows.insert(w.id.clone(), w);
            }
        }
        Ok(rows.into_values().collect())
    }

    fn list_idle_workers(&mut self, org: &str) -> Result<Vec<WorkerRecord>, StoreError> {
        let sql = concat!("SELECT ", worker_columns!(), " FROM workers WHERE org = ?1 AND state = ?2 ORDER BY id");
        let rows = workers_where(&self.conn, &sql, params![org, WorkerState::HotIdle.name()])?;
        Ok(rows.into_iter().filter(|w| rules::workers::idle_in(w, org)).collect())
    }

    fn list_session_workers(&mut self, session: u64) -> Result<Vec<WorkerRecord>, StoreError> {
        let sql = concat!("SELECT ", worker_columns!(), " FROM workers WHERE session = ?1 ORDER BY id");
        workers_where(&self.conn, &sql, params![enc(session)])
    }

    fn list_slots_of(&mut self, scope: &OwnScope) -> Result<Vec<SlotRecord>, StoreError> {
        let conn = &self.conn;
        let mut slots = BTreeMap::new();
        {
            let (sql, range) = key_range("SELECT worker, org, reserved_at FROM slots", "worker", &scope.minted_prefix);
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            for s in stmt.query_map(rusqlite::params_from_iter(range), slot_from_row).map_err(backend)? {
                let s = s.map_err(backend)?;
                if s.worker.starts_with(&scope.minted_prefix) {
                    slots.insert(s.worker.clone(), s);
                }
            }
        }
        let sql = "SELECT s.worker, s.org, s.reserved_at FROM workers w JOIN slots s ON s.worker = w.id WHERE w.owner = ?1";
        let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
        for s in stmt.query_map(params![enc(scope.instance.0)], slot_from_row).map_err(backend)? {
            let s = s.map_err(backend)?;
            slots.insert(s.worker.clone(), s);
        }
        Ok(slots.into_values().collect())
    }

    fn create_job(&mut self, id: &str, schedule: &Schedule, now: Millis) -> Result<JobCas, StoreError> {
        let tx = self.write_tx()?;
        let current = read_job(&tx, id)?;
        let out = rules::cron::create(current.as_ref(), id, schedule, now);
        settle(tx, out, |tx, next| write_job(tx, next, None))
    }

    fn edit_job(
        &mut self,
        id: &str,
        schedule: Option<&Schedule>,
        status: Option<JobStatus>,
        now: Millis,
    ) -> Result<JobCas, StoreError> {
        let tx = self.write_tx()?;
        let current = read_job(&tx, id)?;
        let out = rules::cron::edit(current.as_ref(), schedule, status, now)?;
        settle(tx, out, |tx, next| write_job(tx, next, current.as_ref()))
    }

    fn claim_job(
        &mut self,
        id: &str,
        owner: Option<InstanceId>,
        epoch: u64,
        new_owner: Option<InstanceId>,
        _now: Millis,
    ) -> Result<JobCas, StoreError> {
        let tx = self.write_tx()?;
        let current = read_job(&tx, id)?;
        let out = rules::cron::claim(current.as_ref(), owner, epoch, new_owner)?;
        settle(tx, out, |tx, next| write_job(tx, next, current.as_ref()))
    }

    fn list_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs ORDER BY id");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt.query_map([], RawJob::from_row).map_err(backend)?;
        rows.map(|r| r.map_err(backend).and_then(RawJob::decode)).collect()
    }

    fn commit_fire(&mut self, job: &str, fire: &rules::cron::Fire, now: Millis) -> Result<FireResult, StoreError> {
        let tx = self.write_tx()?;
        let current = read_job(&tx, job)?;
        let existing = read_fire(&tx, job, fire.slot)?;
        let running = unfinished_runs(&tx)?.iter().filter(|f| f.running_at(now)).count();
        let out = rules::cron::commit_fire(current.as_ref(), existing.as_ref(), running, fire, now)?;
        settle(tx, out, |tx, (rec, next)| {
            insert_fire(tx, rec)?;
            write_job(tx, next, current.as_ref())
        })
    }

    fn finish_fire(&mut self, job: &str, slot: Millis, owner: Option<InstanceId>, now: Millis) -> Result<FireResult, StoreError> {
        let tx = self.write_tx()?;
        let existing = read_fire(&tx, job, slot)?;
        let out = rules::cron::finish_fire(existing.as_ref(), owner, now);
        settle(tx, out, |tx, done| {
            let n = tx
                .prepare_cached("UPDATE fires SET finished = ?3 WHERE job = ?1 AND slot = ?2 AND finished IS NULL")
                .map_err(backend)?
                .execute(params![done.job, enc(done.slot), done.finished.map(enc)])
                .map_err(backend)?;
            changed_one(n, || format!("finish of fire ({:?}, {})", done.job, done.slot))
        })
    }

    fn read_fire(&mut self, job: &str, slot: Millis) -> Result<Option<FireRecord>, StoreError> {
        read_fire(&self.conn, job, slot)
    }

    fn fires(&mut self) -> Result<Vec<FireRecord>, StoreError> {
        let sql = concat!("SELECT ", fire_columns!(), " FROM fires");
        let mut all = query_fires(&self.conn, &sql)?;
        // Slots are compared as u64s, never in SQL (see the module doc).
        all.sort_by(|a, b| (&a.job, a.slot).cmp(&(&b.job, b.slot)));
        Ok(all)
    }

    fn list_running(&mut self, now: Millis) -> Result<Vec<FireRecord>, StoreError> {
        let mut all: Vec<FireRecord> = unfinished_runs(&self.conn)?.into_iter().filter(|f| f.running_at(now)).collect();
        all.sort_by(|a, b| (&a.job, a.slot).cmp(&(&b.job, b.slot)));
        Ok(all)
    }

    fn write_settings(&mut self, value: &str, now: Millis) -> Result<u64, StoreError> {
        let tx = self.write_tx()?;
        let current = read_settings(&tx)?;
        let out = rules::cron::write_settings(current.as_ref(), value, now)?;
        settle(tx, out, |tx, next| {
            let n = match &current {
                None => tx
                    .prepare_cached(
                        "INSERT INTO settings (id, value, version, updated_at) VALUES (1, ?1, ?2, ?3)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .map_err(backend)?
                    .execute(params![next.value, enc(next.version), enc(next.updated_at)]),
                Some(read) => tx
                    .prepare_cached("UPDATE settings SET value = ?1, version = ?2, updated_at = ?3 WHERE id = 1 AND version = ?4")
                    .map_err(backend)?
                    .execute(params![next.value, enc(next.version), enc(next.updated_at), enc(read.version)]),
            }
            .map_err(backend)?;
            changed_one(n, || "write of settings".to_string())
        })
    }

    fn read_settings(&mut self) -> Result<Option<SettingsRecord>, StoreError> {
        read_settings(&self.conn)
    }
}

// ---------------------------------------------------------------------------
// Cron helpers.


/// A job row as SQLite returns it, before its text columns are parsed.
struct RawJob {
    id: String,
    schedule: String,
    status: String,
    owner: Option<i64>,
    owner_epoch: i64,
    since: i64,
    last_slot: Option<i64>,
    spec: i64,
    version: i64,
}

impl RawJob {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawJob {
            id: row.get(0)?,
            schedule: row.get(1)?,
            status: row.get(2)?,
            owner: row.get(3)?,
            owner_epoch: row.get(4)?,
            since: row.get(5)?,
            last_slot: row.get(6)?,
            spec: row.get(7)?,
            version: row.get(8)?,
        })
    }

    fn decode(self) -> Result<JobRecord, StoreError> {
        let bad = |e: String| StoreError::Backend(format!("sqlite: job {:?}: {e}", self.id));
        Ok(JobRecord {
            schedule: Schedule::decode(&self.schedule).map_err(bad)?,
            status: JobStatus::parse(&self.status).map_err(bad)?,
            owner: self.owner.map(|o| InstanceId(dec(o))),
            owner_epoch: dec(self.owner_epoch),
            since: dec(self.since),
            last_slot: self.last_slot.map(dec),
            spec: dec(self.spec),
            version: dec(self.version),
            id: self.id,
        })
    }
}

fn read_job(conn: &Connection, id: &str) -> Result<Option<JobRecord>, StoreError> {
    let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?1");
    let raw = conn
        .prepare_cached(&sql)
        .map_err(backend)?
        .query_row(params![id], RawJob::from_row)
        .optional()
        .map_err(backend)?;
    raw.map(RawJob::decode).transpose()
}

/// Write `next` over the job the rule read (one conditional statement on
/// its version), or create it if there was none.
fn write_job(tx: &Connection, next: &JobRecord, read: Option<&JobRecord>) -> Result<(), StoreError> {
    let values = params![
        next.id,
        next.schedule.encode(),
        next.status.name(),
        next.owner.map(|o| enc(o.0)),
        enc(next.owner_epoch),
        enc(next.since),
        next.last_slot.map(enc),
        enc(next.spec),
        enc(next.version),
        read.map(|r| enc(r.version)),
    ];
    let sql = match read {
        None => {
            "INSERT INTO jobs (id, schedule, status, owner, owner_epoch, since, last_slot, spec, version)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE ?10 IS NULL
             ON CONFLICT (id) DO NOTHING"
        }
        Some(_) => {
            "UPDATE jobs SET schedule = ?2, status = ?3, owner = ?4, owner_epoch = ?5, since = ?6,
                    last_slot = ?7, spec = ?8, version = ?9
             WHERE id = ?1 AND version = ?10"
        }
    };
    let n = tx.prepare_cached(sql).map_err(backend)?.execute(values).map_err(backend)?;
    changed_one(n, || format!("write of job {:?}", next.id))
}

fn fire_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(FireRecord, String)> {
    let kind: String = row.get(2)?;
    let rec = FireRecord {
        job: row.get(0)?,
        slot: dec(row.get(1)?),
        kind: FireKind::Run,
        owner: row.get::<_, Option<i64>>(3)?.map(|o| InstanceId(dec(o))),
        epoch: dec(row.get(4)?),
        at: dec(row.get(5)?),
        deadline: dec(row.get(6)?),
        finished: row.get::<_, Option<i64>>(7)?.map(dec),
    };
    Ok((rec, kind))
}

fn decode_fire((rec, kind): (FireRecord, String)) -> Result<FireRecord, StoreError> {
    let kind = FireKind::parse(&kind).map_err(|e| StoreError::Backend(format!("sqlite: fire ({:?}, {}): {e}", rec.job, rec.slot)))?;
    Ok(FireRecord { kind, ..rec })
}

fn query_fires(conn: &Connection, sql: &str) -> Result<Vec<FireRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt.query_map([], fire_from_row).map_err(backend)?;
    rows.map(|r| r.map_err(backend).and_then(decode_fire)).collect()
}

fn read_fire(conn: &Connection, job: &str, slot: Millis) -> Result<Option<FireRecord>, StoreError> {
    let sql = concat!("SELECT ", fire_columns!(), " FROM fires WHERE job = ?1 AND slot = ?2");
    let raw = conn
        .prepare_cached(&sql)
        .map_err(backend)?
        .query_row(params![job, enc(slot)], fire_from_row)
        .optional()
        .map_err(backend)?;
    raw.map(decode_fire).transpose()
}

/// Runs not yet finished (their deadlines are judged in Rust, as `u64`s).
fn unfinished_runs(conn: &Connection) -> Result<Vec<FireRecord>, StoreError> {
    query_fires(conn, concat!("SELECT ", fire_columns!(), " FROM fires WHERE kind = 'run' AND finished IS NULL"))
}

fn insert_fire(tx: &Connection, rec: &FireRecord) -> Result<(), StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT INTO fires (job, slot, kind, owner, epoch, at, deadline, finished)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (job, slot) DO NOTHING",
        )
        .map_err(backend)?
        .execute(params![
            rec.job,
            enc(rec.slot),
            rec.kind.name(),
            rec.owner.map(|o| enc(o.0)),
            enc(rec.epoch),
            enc(rec.at),
            enc(rec.deadline),
            rec.finished.map(enc),
        ])
        .map_err(backend)?;
    changed_one(n, || format!("insert of fire ({:?}, {})", rec.job, rec.slot))
}

fn read_settings(conn: &Connection) -> Result<Option<SettingsRecord>, StoreError> {
    conn.prepare_cached("SELECT value, version, updated_at FROM settings WHERE id = 1")
        .map_err(backend)?
        .query_row([], |row| {
            Ok(SettingsRecord { value: row.get(0)?, version: dec(row.get(1)?), updated_at: dec(row.get(2)?) })
        })
        .optional()
        .map_err(backend)
}

// ---------------------------------------------------------------------------
// Fleet helpers.

/// The lease a fence names, read inside the caller's transaction (no
/// fence: nothing to read).
fn read_fence_lease(conn: &Connection, fence: Option<&LeaseFence>) -> Result<Option<LeaseRecord>, StoreError> {
    match fence {
        Some(f) => read_row(conn, &f.lease),
        None => Ok(None),
    }
}

fn instance_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<InstanceRecord> {
    Ok(InstanceRecord {
        id: InstanceId(dec(row.get(0)?)),
        started_at: dec(row.get(1)?),
        heartbeat_at: dec(row.get(2)?),
        draining: row.get::<_, i64>(3)? != 0,
    })
}

fn read_instance(conn: &Connection, id: InstanceId) -> Result<Option<InstanceRecord>, StoreError> {
    conn.prepare_cached("SELECT id, started_at, heartbeat_at, draining FROM instances WHERE id = ?1")
        .map_err(backend)?
        .query_row(params![enc(id.0)], instance_from_row)
        .optional()
        .map_err(backend)
}

fn slot_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SlotRecord> {
    Ok(SlotRecord { worker: row.get(0)?, org: row.get(1)?, reserved_at: dec(row.get(2)?) })
}

fn read_slot(conn: &Connection, worker: &str) -> Result<Option<SlotRecord>, StoreError> {
    conn.prepare_cached("SELECT worker, org, reserved_at FROM slots WHERE worker = ?1")
        .map_err(backend)?
        .query_row(params![worker], slot_from_row)
        .optional()
        .map_err(backend)
}

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
    /// Columns in `worker_columns!` order.
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

/// `select` narrowed to the keys `column` starting with `prefix`, as a
/// range of the key's index, and the range's bounds: `[prefix, above)`,
/// with `above` the prefix's last byte below 0x7f raised by one (SQLite
/// compares text bytewise, as `str` does); no upper bound when there is no
/// such byte. Callers still check the prefix of what it returns.
fn key_range(select: &str, column: &str, prefix: &str) -> (String, Vec<String>) {
    let mut above = prefix.as_bytes().to_vec();
    while let Some(last) = above.pop() {
        if last < 0x7f {
            above.push(last + 1);
            if let Ok(above) = String::from_utf8(above) {
                let sql = format!("{select} WHERE {column} >= ?1 AND {column} < ?2 ORDER BY {column}");
                return (sql, vec![prefix.to_string(), above]);
            }
            break;
        }
    }
    (format!("{select} WHERE {column} >= ?1 ORDER BY {column}"), vec![prefix.to_string()])
}

/// The stored heartbeats (as encoded) of the instances dead at `now`, if
/// they are one range of the index: `0 ..= now - dead_after_ms` when `now`
/// is at least `dead_after_ms` and below 2^63. A heartbeat `h` is dead when
/// `h + dead_after_ms <= now` (saturating); below 2^63 that is `h <= now -
/// dead_after_ms`, stored as itself; at 2^63 or above (stored negative) it
/// is never dead, as `h + dead_after_ms > now`. Else None: the caller reads
/// every owner.
fn dead_heartbeats(now: Millis, dead_after_ms: u64) -> Option<i64> {
    let at_most = now.checked_sub(dead_after_ms)?;
    (now <= i64::MAX as u64).then(|| enc(at_most))
}

/// The rows `sql` (selecting `worker_columns!`) finds.
fn workers_where(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<WorkerRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt.query_map(params, RawWorker::from_row).map_err(backend)?;
    rows.map(|r| r.map_err(backend).and_then(RawWorker::decode)).collect()
}

/// The rows whose ids start with `prefix`, by key range.
fn minted(conn: &Connection, prefix: &str) -> Result<Vec<WorkerRecord>, StoreError> {
    let (sql, range) = key_range(concat!("SELECT ", worker_columns!(), " FROM workers"), "id", prefix);
    let rows = workers_where(conn, &sql, rusqlite::params_from_iter(range))?;
    Ok(rows.into_iter().filter(|w| w.id.starts_with(prefix)).collect())
}

/// Every hot-idle row of `owner` (what a floor claim is judged over),
/// through the partial index of unended rows by owner (its WHERE spelt out
/// for SQLite to use it): a live owner's ended rows are most of its rows.
fn owner_idle_workers(conn: &Connection, owner: InstanceId) -> Result<Vec<WorkerRecord>, StoreError> {
    let sql = concat!(
        "SELECT ",
        worker_columns!(),
        " FROM workers
         WHERE owner = ?1 AND state NOT IN ('retired', 'lost') AND state = ?2 ORDER BY id"
    );
    workers_where(conn, &sql, params![enc(owner.0), WorkerState::HotIdle.name()])
}

fn read_worker(conn: &Connection, id: &str) -> Result<Option<WorkerRecord>, StoreError> {
    let sql = concat!("SELECT ", worker_columns!(), " FROM workers WHERE id = ?1");
    let raw = conn
        .prepare_cached(&sql)
        .map_err(backend)?
        .query_row(params![id], RawWorker::from_row)
        .optional()
        .map_err(backend)?;
    raw.map(RawWorker::decode).transpose()
}

/// Write `next` over the worker row the rule read (one conditional
/// statement on its version), setting only the columns that change: SQLite
/// rewrites the entry of every index whose column a SET names, changed or
/// not, and runs the `worker_owners` trigger whenever it names `owner`. A
/// claim or a state change touches two or three of the eleven, and naming
/// all of them was a twelfth of a 300-replica run (design §12).
fn cas_update_worker(tx: &Connection, next: &WorkerRecord, read: Option<&WorkerRecord>) -> Result<(), StoreError> {
    use rusqlite::types::Value;
    let Some(read) = read else {
        return Err(StoreError::Backend(format!("sqlite: CAS on worker {:?} that was not read", next.id)));
    };
    let int = |v: u64| Value::Integer(enc(v));
    let text = |v: &str| Value::Text(v.to_string());
    let changes = [
        ("org", (next.org != read.org).then(|| text(&next.org))),
        ("state", (next.state != read.state).then(|| text(next.state.name()))),
        ("owner", (next.owner != read.owner).then(|| int(next.owner.0))),
        ("owner_epoch", (next.owner_epoch != read.owner_epoch).then(|| int(next.owner_epoch))),
        ("pod", (next.pod != read.pod).then(|| text(&next.pod))),
        ("secret", (next.secret != read.secret).then(|| text(&next.secret))),
        ("session", (next.session != read.session).then(|| next.session.map_or(Value::Null, int))),
        ("created_at", (next.created_at != read.created_at).then(|| int(next.created_at))),
        ("updated_at", (next.updated_at != read.updated_at).then(|| int(next.updated_at))),
        ("idle_since", (next.idle_since != read.idle_since).then(|| int(next.idle_since))),
    ];
    let mut sql = String::from("UPDATE workers SET version = ?1");
    let mut values = vec![int(next.version)];
    for (column, value) in changes {
        if let Some(value) = value {
            values.push(value);
            sql += &format!(", {column} = ?{}", values.len());
        }
    }
    values.extend([Value::Text(next.id.clone()), int(read.version)]);
    sql += &format!(" WHERE id = ?{} AND version = ?{}", values.len() - 1, values.len());
    let n = tx
        .prepare_cached(&sql)
        .map_err(backend)?
        .execute(rusqlite::params_from_iter(values))
        .map_err(backend)?;
    changed_one(n, || format!("CAS on worker {:?}", next.id))
}
