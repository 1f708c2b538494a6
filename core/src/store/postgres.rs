//! PostgreSQL backend: the CAS rules of [`StoreBackend`] on a database
//! server that several processes share.
//!
//! Every write is one `READ COMMITTED` transaction that locks the rows it
//! reads (`SELECT ... FOR UPDATE`; the lease a fence names `FOR SHARE`, so
//! it cannot change before the write commits), asks the rulebook
//! ([`rules`](super::rules)) exactly as [`SqliteStore`](super::SqliteStore)
//! does, and writes its answer with one conditional statement on what it
//! read (`UPDATE ... WHERE ... AND version = $n`, or `INSERT ... ON CONFLICT
//! DO NOTHING`) whose row count is checked before `COMMIT`.
//!
//! A row that does not exist yet cannot be locked: two writers creating it
//! both find it missing, and the second one's `INSERT` waits for the first
//! and then inserts nothing. That transaction is rolled back and run again
//! from the top, so it reads the row the winner wrote and the rule answers
//! (`StaleVersion`, `Exists`) as it would have had the two run one after the
//! other; so is one that hits a deadlock or serialization failure.
//!
//! Writes that decide on rows they do not lock take a transaction-scoped
//! advisory lock first, one constant key per gate (field report 003 gates
//! capacity the same way), so that across processes they run one at a time:
//! slot reservation (it counts the org's and the fleet's slots against the
//! caps), `commit_fire` (it counts the fleet's running jobs against the run
//! cap) and `fenced_effect` (the new row's seq is the newest one plus one,
//! so seqs stay dense and in commit order, as SQLite's are; a `BIGSERIAL`
//! would leave gaps on rollback and hand seqs out in start order). This
//! relies on `READ COMMITTED`, set explicitly on every transaction: each
//! statement reads a fresh snapshot, so the counts read after the lock see
//! every write committed before it (`REPEATABLE READ` would read the
//! snapshot taken before the lock was granted).
//!
//! All `u64` values are stored as `BIGINT` by a bit-preserving cast, as in
//! SQLite, so orderings are taken in Rust on the decoded values. Strings
//! (ids, names, effect keys, schedules) are stored as `BYTEA`: `TEXT` cannot
//! hold a NUL, and `BYTEA` compares byte-wise, as Rust's strings do, whatever
//! the database's collation.

use super::cron_records::*;
use super::fleet_records::*;
use super::lifecycle::WorkerState;
use super::records::*;
use super::rules::{self, cron::Fire, Outcome};
use super::StoreBackend;
use crate::clock::Millis;
use crate::ids::InstanceId;
use postgres::error::SqlState;
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Row, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use std::time::Duration;

/// The schema, one step per version, the same steps (and so the same
/// version numbers) as SQLite's; `schema_version` holds how many have run.
/// Opening runs the missing ones, each in a transaction of its own that
/// also records it.
///
/// - 1: `leases`, `effects`. The effect seq is an explicit counter (see the
///   module doc), not a `BIGSERIAL`.
/// - 2: the worker fleet: `instances`, `slots`, `workers`.
/// - 3: a unique index on `effects (lease, effect)`: an effect key commits
///   at most once.
/// - 4: `instances.draining`.
/// - 5: cron coordination: `jobs`, `fires` (primary key `(job, slot)`: a
///   slot commits at most once), the one-row `settings`.
const SCHEMA: [&str; 5] = [
    "
CREATE TABLE IF NOT EXISTS leases (
    name       BYTEA  PRIMARY KEY,
    holder     BIGINT NULL,
    epoch      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    version    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS effects (
    seq    BIGINT PRIMARY KEY,
    lease  BYTEA  NOT NULL,
    holder BIGINT NOT NULL,
    epoch  BIGINT NOT NULL,
    effect BYTEA  NOT NULL,
    at     BIGINT NOT NULL
);
",
    "
CREATE TABLE IF NOT EXISTS instances (
    id           BIGINT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS slots (
    worker      BYTEA  PRIMARY KEY,
    org         BYTEA  NOT NULL,
    reserved_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS slots_by_org ON slots (org);
CREATE TABLE IF NOT EXISTS workers (
    id          BYTEA  PRIMARY KEY,
    org         BYTEA  NOT NULL,
    state       TEXT   NOT NULL,
    owner       BIGINT NOT NULL,
    owner_epoch BIGINT NOT NULL,
    pod         BYTEA  NOT NULL,
    secret      BYTEA  NOT NULL,
    session     BIGINT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    idle_since  BIGINT NOT NULL,
    version     BIGINT NOT NULL
);
",
    "
CREATE UNIQUE INDEX IF NOT EXISTS effects_by_key ON effects (lease, effect);
",
    "
ALTER TABLE instances ADD COLUMN IF NOT EXISTS draining BOOLEAN NOT NULL DEFAULT FALSE;
",
    "
CREATE TABLE IF NOT EXISTS jobs (
    id          BYTEA  PRIMARY KEY,
    schedule    BYTEA  NOT NULL,
    status      TEXT   NOT NULL,
    owner       BIGINT NULL,
    owner_epoch BIGINT NOT NULL,
    since       BIGINT NOT NULL,
    last_slot   BIGINT NULL,
    spec        BIGINT NOT NULL,
    version     BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS fires (
    job      BYTEA  NOT NULL,
    slot     BIGINT NOT NULL,
    kind     TEXT   NOT NULL,
    owner    BIGINT NULL,
    epoch    BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    finished BIGINT NULL,
    PRIMARY KEY (job, slot)
);
CREATE INDEX IF NOT EXISTS fires_unfinished ON fires (job) WHERE kind = 'run' AND finished IS NULL;
CREATE TABLE IF NOT EXISTS settings (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    value      BYTEA    NOT NULL,
    version    BIGINT   NOT NULL,
    updated_at BIGINT   NOT NULL
);
",
];

/// The schema version this code writes.
pub const PG_SCHEMA_VERSION: i64 = SCHEMA.len() as i64;

const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (id SMALLINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)";

/// How long opening a connection may take (unless the URL says).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a write that lost a race is run again before giving up.
const ATTEMPTS: u32 = 8;

/// Advisory lock keys, one per gate: "hayw" in the high half, so as not to
/// meet another application's keys on a shared database.
#[derive(Clone, Copy, Debug)]
enum Gate {
    Migration = 1,
    Slots = 2,
    Runs = 3,
    Effects = 4,
}

impl Gate {
    fn key(self) -> i64 {
        (0x6861_7977_i64 << 32) | self as i64
    }
}

/// Whose clock is the store's `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgClock {
    /// The `now` each call is given (the host's clock; the simulator and the
    /// conformance suite drive it).
    Given,
    /// The database server's clock, read inside each write after its rows
    /// are locked: every process on the database shares one clock, and a
    /// write that waited for another reads a later time. The `now` argument
    /// is ignored (but see [`PgStore::database_now`] for the `now` that list
    /// replies carry).
    Database,
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// A [`StoreBackend`] on a PostgreSQL database, through a connection pool.
/// Clones share the pool, so threads can each hold one.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    clock: PgClock,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("clock", &self.clock).field("pool", &self.pool.state()).finish()
    }
}

/// Why a transaction stopped: it lost a race (run it again), or an error
/// for the caller.
enum Fail {
    Retry(String),
    Store(StoreError),
}

type Res<T> = Result<T, Fail>;

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        match e.code() {
            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE => {
                Fail::Retry(e.to_string())
            }
            _ => Fail::Store(backend(e)),
        }
    }
}

impl Fail {
    fn into_store(self) -> StoreError {
        match self {
            Fail::Store(e) => e,
            Fail::Retry(m) => StoreError::Backend(format!("postgres: {m}")),
        }
    }
}

fn backend(e: postgres::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

fn bad_data(m: String) -> Fail {
    Fail::Store(StoreError::Backend(format!("postgres: {m}")))
}

/// `u64` -> `BIGINT`, bit-preserving.
fn enc(v: u64) -> i64 {
    v as i64
}

/// `BIGINT` -> `u64`, bit-preserving (inverse of [`enc`]).
fn dec(v: i64) -> u64 {
    v as u64
}

fn int(row: &Row, i: usize) -> Res<u64> {
    Ok(dec(row.try_get::<_, i64>(i)?))
}

fn opt_int(row: &Row, i: usize) -> Res<Option<u64>> {
    Ok(row.try_get::<_, Option<i64>>(i)?.map(dec))
}

/// A `BYTEA` column holding a Rust string.
fn text(row: &Row, i: usize) -> Res<String> {
    let bytes: &[u8] = row.try_get(i)?;
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| {
        let col = row.columns().get(i).map_or("?", |c| c.name());
        bad_data(format!("column {col} is not UTF-8: {e}"))
    })
}

/// A `TEXT` column (the fixed vocabularies: states, statuses, kinds).
fn word(row: &Row, i: usize) -> Res<String> {
    Ok(row.try_get(i)?)
}

/// How a read inside a write locks what it reads.
#[derive(Clone, Copy)]
enum Lock {
    None,
    /// The row the write will change.
    Update,
    /// A row the write depends on but leaves (a fence's lease).
    Share,
}

impl Lock {
    fn sql(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::Update => " FOR UPDATE",
            Lock::Share => " FOR SHARE",
        }
    }
}

/// One write transaction in flight.
struct Tx<'c> {
    tx: Transaction<'c>,
    clock: PgClock,
    given: Millis,
}

impl Tx<'_> {
    /// The store's now for this write. Called after the write has locked
    /// its rows (see [`PgClock::Database`]).
    fn now(&mut self) -> Res<Millis> {
        match self.clock {
            PgClock::Given => Ok(self.given),
            PgClock::Database => db_now(&mut self.tx),
        }
    }
}

fn db_now(c: &mut impl GenericClient) -> Res<Millis> {
    let row = c.query_one("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint", &[])?;
    let ms: i64 = row.try_get(0)?;
    u64::try_from(ms).map_err(|_| bad_data(format!("the server's clock reads {ms} ms before the epoch")))
}

/// What a write decided: its reply, and whether to commit.
struct Done<T> {
    reply: T,
    commit: bool,
}

/// Write what the rule decided, or nothing; the caller commits or rolls
/// back accordingly.
fn settle<R, N>(
    tx: &mut Tx<'_>,
    out: Outcome<R, N>,
    write: impl FnOnce(&mut Transaction<'_>, &N) -> Res<()>,
) -> Res<Done<R>> {
    let commit = match &out.next {
        Some(next) => {
            write(&mut tx.tx, next)?;
            true
        }
        None => false,
    };
    Ok(Done { reply: out.reply, commit })
}

/// A conditional write must change exactly the one row the rule read (or
/// create the one it found missing). Zero rows: a concurrent writer created it
/// first, so the transaction runs again.
fn changed_one(n: u64, what: impl FnOnce() -> String) -> Res<()> {
    match n {
        1 => Ok(()),
        0 => Err(Fail::Retry(format!("{} lost a race with a concurrent write", what()))),
        n => Err(bad_data(format!("{} changed {n} rows, expected 1", what()))),
    }
}

impl PgStore {
    /// Connect to the database at `url` (a libpq-style URL or key=value
    /// string; `options=-c search_path=...` picks a schema) with a pool of
    /// up to `pool_size` connections, and create or migrate the schema.
    pub fn connect(url: &str, pool_size: u32, clock: PgClock) -> Result<PgStore, StoreError> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| StoreError::Backend(format!("postgres: bad connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            // Each check-out tests the connection (one empty query), so one
            // the server dropped meanwhile (restart, failover, idle kill) is
            // replaced before a call fails on it.
            .test_on_check_out(true)
            .connection_timeout(CONNECT_TIMEOUT)
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| StoreError::Backend(format!("postgres: cannot connect: {e}")))?;
        let store = PgStore { pool, clock };
        store.migrate()?;
        Ok(store)
    }

    pub fn clock(&self) -> PgClock {
        self.clock
    }

    /// The database server's clock (ms since the epoch). A host of a
    /// [`PgClock::Database`] store passes it as `apply`'s `now`, so that the
    /// `now` list replies carry is the database's too.
    pub fn database_now(&self) -> Result<Millis, StoreError> {
        self.read(db_now)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        self.pool.get().map_err(|e| StoreError::Backend(format!("postgres: no connection: {e}")))
    }

    /// Run the schema steps the database lacks, each in one transaction
    /// under the migration gate, so concurrent openers run each step once.
    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        loop {
            let mut tx = conn.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().map_err(backend)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&Gate::Migration.key()]).map_err(backend)?;
            let found = schema_version(&mut tx).map_err(Fail::into_store)?;
            if found > PG_SCHEMA_VERSION {
                return Err(StoreError::Backend(format!(
                    "postgres: database schema version {found} is newer than this build supports ({PG_SCHEMA_VERSION})"
                )));
            }
            let Ok(step) = usize::try_from(found) else {
                return Err(StoreError::Backend(format!("postgres: unknown database schema version {found}")));
            };
            let Some(sql) = SCHEMA.get(step) else {
                return tx.rollback().map_err(backend);
            };
            tx.batch_execute(VERSION_TABLE).map_err(backend)?;
            tx.batch_execute(sql).map_err(backend)?;
            set_schema_version(&mut tx, found + 1).map_err(backend)?;
            tx.commit().map_err(backend)?;
        }
    }

    /// Run `body` as one write transaction (after taking `gate`, if any),
    /// again from the top whenever it lost a race, and commit or roll back
    /// as it decided.
    fn write<T>(
        &self,
        given: Millis,
        gate: Option<Gate>,
        mut body: impl FnMut(&mut Tx<'_>) -> Res<Done<T>>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let mut lost = String::new();
        for _ in 0..ATTEMPTS {
            match self.attempt(&mut conn, given, gate, &mut body) {
                Ok(reply) => return Ok(reply),
                Err(Fail::Retry(why)) => lost = why,
                Err(Fail::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Failed(format!("postgres: gave up after {ATTEMPTS} attempts: {lost}")))
    }

    fn attempt<T>(
        &self,
        conn: &mut Client,
        given: Millis,
        gate: Option<Gate>,
        body: &mut impl FnMut(&mut Tx<'_>) -> Res<Done<T>>,
    ) -> Res<T> {
        let tx = conn.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start()?;
        let mut tx = Tx { tx, clock: self.clock, given };
        if let Some(gate) = gate {
            tx.tx.execute("SELECT pg_advisory_xact_lock($1)", &[&gate.key()])?;
        }
        // An error drops `tx`, which rolls it back.
        let done = body(&mut tx)?;
        if done.commit {
            tx.tx.commit().map_err(|e| Fail::Store(commit_error(e)))?;
        } else {
            tx.tx.rollback()?;
        }
        Ok(done.reply)
    }

    /// A read outside any transaction.
    fn read<T>(&self, f: impl FnOnce(&mut Client) -> Res<T>) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        f(&mut conn).map_err(Fail::into_store)
    }
}

/// A failed `COMMIT`: refused by the server (nothing committed), or no
/// answer (the outcome is unknown).
fn commit_error(e: postgres::Error) -> StoreError {
    if e.as_db_error().is_some() {
        backend(e)
    } else {
        StoreError::Unavailable(format!("postgres: commit: {e}"))
    }
}

/// The schema version recorded (0: none yet).
fn schema_version(c: &mut impl GenericClient) -> Res<i64> {
    let exists: bool = c.query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?.try_get(0)?;
    if !exists {
        return Ok(0);
    }
    match c.query_opt("SELECT version FROM schema_version WHERE id = 1", &[])? {
        Some(row) => Ok(row.try_get(0)?),
        None => Ok(0),
    }
}

fn set_schema_version(c: &mut impl GenericClient, version: i64) -> Result<u64, postgres::Error> {
    c.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
        &[&version],
    )
}

/// Create the tables of schema `version` exactly as a build of that
/// version did, and record it: the migration tests' starting point.
#[cfg(test)]
pub(super) fn create_at_version(c: &mut Client, version: usize) -> Result<(), postgres::Error> {
    c.batch_execute(VERSION_TABLE)?;
    for step in &SCHEMA[..version] {
        c.batch_execute(step)?;
    }
    set_schema_version(c, version as i64).map(drop)
}

// ---------------------------------------------------------------------------
// Leases and effects.

fn read_lease(c: &mut impl GenericClient, name: &str, lock: Lock) -> Res<Option<LeaseRecord>> {
    let sql = format!("SELECT holder, epoch, expires_at, version FROM leases WHERE name = $1{}", lock.sql());
    let Some(row) = c.query_opt(sql.as_str(), &[&name.as_bytes()])? else { return Ok(None) };
    Ok(Some(LeaseRecord {
        name: name.to_string(),
        holder: opt_int(&row, 0)?.map(InstanceId),
        epoch: int(&row, 1)?,
        expires_at: int(&row, 2)?,
        version: int(&row, 3)?,
    }))
}

/// The lease a fence names, locked for share (no fence: nothing to read).
fn read_fence_lease(c: &mut impl GenericClient, fence: Option<&LeaseFence>) -> Res<Option<LeaseRecord>> {
    match fence {
        Some(f) => read_lease(c, &f.lease, Lock::Share),
        None => Ok(None),
    }
}

/// Write `next` over the lease the rule read (conditional on its version),
/// or create it if there was none.
fn write_lease(tx: &mut Transaction<'_>, read: Option<&LeaseRecord>, next: &LeaseRecord) -> Res<()> {
    let holder = next.holder.map(|h| enc(h.0));
    let (name, epoch, expires, version) = (next.name.as_bytes(), enc(next.epoch), enc(next.expires_at), enc(next.version));
    let n = match read {
        None => tx.execute(
            "INSERT INTO leases (name, holder, epoch, expires_at, version) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &holder, &epoch, &expires, &version],
        )?,
        Some(r) => tx.execute(
            "UPDATE leases SET holder = $2, epoch = $3, expires_at = $4, version = $5 WHERE name = $1 AND version = $6",
            &[&name, &holder, &epoch, &expires, &version, &enc(r.version)],
        )?,
    };
    changed_one(n, || format!("CAS on lease {:?}", next.name))
}

fn effect_from_row(row: &Row) -> Res<EffectRow> {
    Ok(EffectRow {
        seq: int(row, 0)?,
        lease: text(row, 1)?,
        holder: InstanceId(int(row, 2)?),
        epoch: int(row, 3)?,
        effect: text(row, 4)?,
        at: int(row, 5)?,
    })
}

// ---------------------------------------------------------------------------
// Fleet helpers.

fn instance_from_row(row: &Row) -> Res<InstanceRecord> {
    Ok(InstanceRecord {
        id: InstanceId(int(row, 0)?),
        started_at: int(row, 1)?,
        heartbeat_at: int(row, 2)?,
        draining: row.try_get(3)?,
    })
}

fn read_instance(c: &mut impl GenericClient, id: InstanceId, lock: Lock) -> Res<Option<InstanceRecord>> {
    let sql = format!("SELECT id, started_at, heartbeat_at, draining FROM instances WHERE id = $1{}", lock.sql());
    c.query_opt(sql.as_str(), &[&enc(id.0)])?.as_ref().map(instance_from_row).transpose()
}

fn slot_from_row(row: &Row) -> Res<SlotRecord> {
    Ok(SlotRecord { worker: text(row, 0)?, org: text(row, 1)?, reserved_at: int(row, 2)? })
}

fn read_slot(c: &mut impl GenericClient, worker: &str) -> Res<Option<SlotRecord>> {
    let row = c.query_opt("SELECT worker, org, reserved_at FROM slots WHERE worker = $1 FOR UPDATE", &[&worker.as_bytes()])?;
    row.as_ref().map(slot_from_row).transpose()
}

fn count(c: &mut impl GenericClient, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Res<usize> {
    let n: i64 = c.query_one(sql, params)?.try_get(0)?;
    usize::try_from(n).map_err(|_| bad_data(format!("row count {n}")))
}

const WORKER_COLUMNS: &str =
    "id, org, state, owner, owner_epoch, pod, secret, session, created_at, updated_at, idle_since, version";

/// Columns in [`WORKER_COLUMNS`] order.
fn worker_from_row(row: &Row) -> Res<WorkerRecord> {
    let id = text(row, 0)?;
    let state = word(row, 2)?.parse::<WorkerState>().map_err(|e| bad_data(format!("worker {id:?}: {e}")))?;
    Ok(WorkerRecord {
        org: text(row, 1)?,
        state,
        owner: InstanceId(int(row, 3)?),
        owner_epoch: int(row, 4)?,
        pod: text(row, 5)?,
        secret: text(row, 6)?,
        session: opt_int(row, 7)?,
        created_at: int(row, 8)?,
        updated_at: int(row, 9)?,
        idle_since: int(row, 10)?,
        version: int(row, 11)?,
        id,
    })
}

/// Every hot-idle row of `owner`, locked: a concurrent write that moves one
/// out of hot-idle waits for this transaction, or commits first and is
/// seen (a row re-read after the lock wait that no longer matches is left
/// out), so the floor is judged on the rows as they are.
fn owner_idle_workers(c: &mut impl GenericClient, owner: InstanceId) -> Res<Vec<WorkerRecord>> {
    let sql = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE owner = $1 AND state = $2 ORDER BY id FOR UPDATE");
    let rows = c.query(sql.as_str(), &[&enc(owner.0), &WorkerState::HotIdle.name()])?;
    rows.iter().map(worker_from_row).collect()
}

fn read_worker(c: &mut impl GenericClient, id: &str) -> Res<Option<WorkerRecord>> {
    let sql = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE id = $1 FOR UPDATE");
    c.query_opt(sql.as_str(), &[&id.as_bytes()])?.as_ref().map(worker_from_row).transpose()
}

/// Write `next` over the worker row the rule read (conditional on its
/// version).
fn cas_update_worker(tx: &mut Transaction<'_>, next: &WorkerRecord, read: Option<&WorkerRecord>) -> Res<()> {
    let Some(read) = read else {
        return Err(bad_data(format!("CAS on worker {:?} that was not read", next.id)));
    };
    let n = tx.execute(
        "UPDATE workers SET org = $1, state = $2, owner = $3, owner_epoch = $4, pod = $5, secret = $6,
                session = $7, created_at = $8, updated_at = $9, idle_since = $10, version = $11
         WHERE id = $12 AND version = $13",
        &[
            &next.org.as_bytes(),
            &next.state.name(),
            &enc(next.owner.0),
            &enc(next.owner_epoch),
            &next.pod.as_bytes(),
            &next.secret.as_bytes(),
            &next.session.map(enc),
            &enc(next.created_at),
            &enc(next.updated_at),
            &enc(next.idle_since),
            &enc(next.version),
            &next.id.as_bytes(),
            &enc(read.version),
        ],
    )?;
    changed_one(n, || format!("CAS on worker {:?}", next.id))
}

// ---------------------------------------------------------------------------
// Cron helpers.

const JOB_COLUMNS: &str = "id, schedule, status, owner, owner_epoch, since, last_slot, spec, version";
const FIRE_COLUMNS: &str = "job, slot, kind, owner, epoch, at, deadline, finished";

fn job_from_row(row: &Row) -> Res<JobRecord> {
    let id = text(row, 0)?;
    let bad = |e: String| bad_data(format!("job {id:?}: {e}"));
    Ok(JobRecord {
        schedule: Schedule::decode(&text(row, 1)?).map_err(bad)?,
        status: JobStatus::parse(&word(row, 2)?).map_err(bad)?,
        owner: opt_int(row, 3)?.map(InstanceId),
        owner_epoch: int(row, 4)?,
        since: int(row, 5)?,
        last_slot: opt_int(row, 6)?,
        spec: int(row, 7)?,
        version: int(row, 8)?,
        id,
    })
}

fn read_job(c: &mut impl GenericClient, id: &str) -> Res<Option<JobRecord>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE");
    c.query_opt(sql.as_str(), &[&id.as_bytes()])?.as_ref().map(job_from_row).transpose()
}

/// Write `next` over the job the rule read (conditional on its version),
/// or create it if there was none.
fn write_job(tx: &mut Transaction<'_>, next: &JobRecord, read: Option<&JobRecord>) -> Res<()> {
    let schedule = next.schedule.encode();
    let values: [&(dyn postgres::types::ToSql + Sync); 9] = [
        &next.id.as_bytes(),
        &schedule.as_bytes(),
        &next.status.name(),
        &next.owner.map(|o| enc(o.0)),
        &enc(next.owner_epoch),
        &enc(next.since),
        &next.last_slot.map(enc),
        &enc(next.spec),
        &enc(next.version),
    ];
    let n = match read {
        None => tx.execute(
            "INSERT INTO jobs (id, schedule, status, owner, owner_epoch, since, last_slot, spec, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
            &values,
        )?,
        Some(r) => {
            let mut with_version = values.to_vec();
            let read_version = enc(r.version);
            with_version.push(&read_version);
            tx.execute(
                "UPDATE jobs SET schedule = $2, status = $3, owner = $4, owner_epoch = $5, since = $6,
                        last_slot = $7, spec = $8, version = $9
                 WHERE id = $1 AND version = $10",
                &with_version,
            )?
        }
    };
    changed_one(n, || format!("write of job {:?}", next.id))
}

fn fire_from_row(row: &Row) -> Res<FireRecord> {
    let job = text(row, 0)?;
    let slot = int(row, 1)?;
    let kind = FireKind::parse(&word(row, 2)?).map_err(|e| bad_data(format!("fire ({job:?}, {slot}): {e}")))?;
    Ok(FireRecord {
        job,
        slot,
        kind,
        owner: opt_int(row, 3)?.map(InstanceId),
        epoch: int(row, 4)?,
        at: int(row, 5)?,
        deadline: int(row, 6)?,
        finished: opt_int(row, 7)?,
    })
}

/// Fires by (job, slot), slots compared as `u64`s.
fn sorted_fires(rows: Vec<Row>) -> Res<Vec<FireRecord>> {
    let mut all = rows.iter().map(fire_from_row).collect::<Res<Vec<_>>>()?;
    all.sort_by(|a, b| (&a.job, a.slot).cmp(&(&b.job, b.slot)));
    Ok(all)
}

fn read_fire(c: &mut impl GenericClient, job: &str, slot: Millis, lock: Lock) -> Res<Option<FireRecord>> {
    let sql = format!("SELECT {FIRE_COLUMNS} FROM fires WHERE job = $1 AND slot = $2{}", lock.sql());
    c.query_opt(sql.as_str(), &[&job.as_bytes(), &enc(slot)])?.as_ref().map(fire_from_row).transpose()
}

/// Runs not yet finished (their deadlines are judged in Rust, as `u64`s).
fn unfinished_runs(c: &mut impl GenericClient) -> Res<Vec<FireRecord>> {
    let sql = format!("SELECT {FIRE_COLUMNS} FROM fires WHERE kind = 'run' AND finished IS NULL");
    sorted_fires(c.query(sql.as_str(), &[])?)
}

fn insert_fire(tx: &mut Transaction<'_>, rec: &FireRecord) -> Res<()> {
    let n = tx.execute(
        "INSERT INTO fires (job, slot, kind, owner, epoch, at, deadline, finished)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (job, slot) DO NOTHING",
        &[
            &rec.job.as_bytes(),
            &enc(rec.slot),
            &rec.kind.name(),
            &rec.owner.map(|o| enc(o.0)),
            &enc(rec.epoch),
            &enc(rec.at),
            &enc(rec.deadline),
            &rec.finished.map(enc),
        ],
    )?;
    changed_one(n, || format!("insert of fire ({:?}, {})", rec.job, rec.slot))
}

fn read_settings(c: &mut impl GenericClient, lock: Lock) -> Res<Option<SettingsRecord>> {
    let sql = format!("SELECT value, version, updated_at FROM settings WHERE id = 1{}", lock.sql());
    let Some(row) = c.query_opt(sql.as_str(), &[])? else { return Ok(None) };
    Ok(Some(SettingsRecord { value: text(&row, 0)?, version: int(&row, 1)?, updated_at: int(&row, 2)? }))
}

// ---------------------------------------------------------------------------

impl StoreBackend for PgStore {
    fn read_lease(&mut self, name: &str) -> Result<Option<LeaseRecord>, StoreError> {
        self.read(|c| read_lease(c, name, Lock::None))
    }

    fn acquire_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: Option<u64>,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        self.write(now, None, |tx| {
            let current = read_lease(&mut tx.tx, name, Lock::Update)?;
            let now = tx.now()?;
            let out = rules::lease::acquire(current.as_ref(), name, holder, expected_version, ttl_ms, now)?;
            settle(tx, out, |tx, next| write_lease(tx, current.as_ref(), next))
        })
    }

    fn renew_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        self.write(now, None, |tx| {
            let current = read_lease(&mut tx.tx, name, Lock::Update)?;
            let now = tx.now()?;
            let out = rules::lease::renew(current.as_ref(), holder, expected_version, ttl_ms, now)?;
            settle(tx, out, |tx, next| write_lease(tx, current.as_ref(), next))
        })
    }

    fn release_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        self.write(now, None, |tx| {
            let current = read_lease(&mut tx.tx, name, Lock::Update)?;
            let now = tx.now()?;
            let out = rules::lease::release(current.as_ref(), holder, expected_version, now)?;
            settle(tx, out, |tx, next| write_lease(tx, current.as_ref(), next))
        })
    }

    fn fenced_effect(
        &mut self,
        name: &str,
        holder: InstanceId,
        epoch: u64,
        effect: &str,
        now: Millis,
    ) -> Result<EffectResult, StoreError> {
        self.write(now, Some(Gate::Effects), |tx| {
            let committed = tx
                .tx
                .query_opt("SELECT seq FROM effects WHERE lease = $1 AND effect = $2", &[&name.as_bytes(), &effect.as_bytes()])?
                .map(|row| int(&row, 0))
                .transpose()?;
            let last_seq = dec(tx.tx.query_one("SELECT COALESCE(MAX(seq), 0) FROM effects", &[])?.try_get(0)?);
            let lease = read_lease(&mut tx.tx, name, Lock::Share)?;
            let now = tx.now()?;
            let out = rules::effects::commit(committed, lease.as_ref(), name, holder, epoch, effect, last_seq, now)?;
            settle(tx, out, |tx, row| {
                let n = tx.execute(
                    "INSERT INTO effects (seq, lease, holder, epoch, effect, at) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT DO NOTHING",
                    &[&enc(row.seq), &row.lease.as_bytes(), &enc(row.holder.0), &enc(row.epoch), &row.effect.as_bytes(), &enc(row.at)],
                )?;
                changed_one(n, || format!("insert of effect {:?}", row.effect))
            })
        })
    }

    fn effects(&mut self) -> Result<Vec<EffectRow>, StoreError> {
        self.read(|c| {
            let rows = c.query("SELECT seq, lease, holder, epoch, effect, at FROM effects", &[])?;
            let mut all = rows.iter().map(effect_from_row).collect::<Res<Vec<_>>>()?;
            all.sort_by_key(|r| r.seq);
            Ok(all)
        })
    }

    fn register_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.write(now, None, |tx| {
            let current = read_instance(&mut tx.tx, id, Lock::Update)?;
            let now = tx.now()?;
            let out = rules::instances::stamp(current.as_ref(), id, dead_after_ms, now);
            settle(tx, out, |tx, next| {
                let (nid, started, beat) = (enc(next.id.0), enc(next.started_at), enc(next.heartbeat_at));
                let n = match &current {
                    None => tx.execute(
                        "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                        &[&nid, &started, &beat],
                    )?,
                    Some(cur) => tx.execute(
                        "UPDATE instances SET started_at = $2, heartbeat_at = $3 WHERE id = $1 AND heartbeat_at = $4",
                        &[&nid, &started, &beat, &enc(cur.heartbeat_at)],
                    )?,
                };
                changed_one(n, || format!("heartbeat of instance {id}"))
            })
        })
    }

    fn heartbeat_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.register_instance(id, dead_after_ms, now)
    }

    fn drain_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.write(now, None, |tx| {
            let current = read_instance(&mut tx.tx, id, Lock::Update)?;
            let now = tx.now()?;
            let out = rules::instances::drain(current.as_ref(), dead_after_ms, now);
            settle(tx, out, |tx, next| {
                let n = tx.execute(
                    "UPDATE instances SET draining = TRUE WHERE id = $1 AND heartbeat_at = $2 AND NOT draining",
                    &[&enc(next.id.0), &enc(next.heartbeat_at)],
                )?;
                changed_one(n, || format!("drain of instance {id}"))
            })
        })
    }

    fn list_instances(&mut self) -> Result<Vec<InstanceRecord>, StoreError> {
        self.read(|c| {
            let rows = c.query("SELECT id, started_at, heartbeat_at, draining FROM instances", &[])?;
            let mut list = rows.iter().map(instance_from_row).collect::<Res<Vec<_>>>()?;
            // By the decoded u64 id: SQL would order ids >= 2^63 first.
            list.sort_by_key(|r| r.id);
            Ok(list)
        })
    }

    fn reserve_slot(
        &mut self,
        worker: &str,
        org: &str,
        org_cap: u32,
        global_cap: u32,
        now: Millis,
    ) -> Result<SlotResult, StoreError> {
        // The slots gate: every reservation counts and inserts alone.
        self.write(now, Some(Gate::Slots), |tx| {
            let held = read_slot(&mut tx.tx, worker)?;
            let in_org = count(&mut tx.tx, "SELECT COUNT(*) FROM slots WHERE org = $1", &[&org.as_bytes()])?;
            let total = count(&mut tx.tx, "SELECT COUNT(*) FROM slots", &[])?;
            let now = tx.now()?;
            let out = rules::slots::reserve(held.as_ref(), in_org, total, worker, org, org_cap, global_cap, now);
            settle(tx, out, |tx, slot| {
                let n = tx.execute(
                    "INSERT INTO slots (worker, org, reserved_at) VALUES ($1, $2, $3) ON CONFLICT (worker) DO NOTHING",
                    &[&slot.worker.as_bytes(), &slot.org.as_bytes(), &enc(slot.reserved_at)],
                )?;
                changed_one(n, || format!("reservation of the slot of {worker:?}"))
            })
        })
    }

    fn free_slot(&mut self, worker: &str, fence: Option<&LeaseFence>, now: Millis) -> Result<SlotResult, StoreError> {
        self.write(now, None, |tx| {
            let held = read_slot(&mut tx.tx, worker)?;
            let fence_lease = read_fence_lease(&mut tx.tx, fence)?;
            let now = tx.now()?;
            let reply = rules::slots::free(held.as_ref(), fence.map(|f| (f, fence_lease.as_ref())), now);
            let out = Outcome { reply, next: (reply == SlotResult::Freed).then_some(()) };
            settle(tx, out, |tx, ()| {
                let n = tx.execute("DELETE FROM slots WHERE worker = $1", &[&worker.as_bytes()])?;
                changed_one(n, || format!("freeing the slot of {worker:?}"))
            })
        })
    }

    fn list_slots(&mut self) -> Result<Vec<SlotRecord>, StoreError> {
        self.read(|c| {
            let rows = c.query("SELECT worker, org, reserved_at FROM slots", &[])?;
            let mut list = rows.iter().map(slot_from_row).collect::<Res<Vec<_>>>()?;
            list.sort_by(|a, b| a.worker.cmp(&b.worker));
            Ok(list)
        })
    }

    fn insert_worker(&mut self, worker: &WorkerRecord, now: Millis) -> Result<WorkerCas, StoreError> {
        self.write(now, None, |tx| {
            let current = read_worker(&mut tx.tx, &worker.id)?;
            let now = tx.now()?;
            let out = rules::workers::insert(current.as_ref(), worker, now);
            settle(tx, out, |tx, rec| {
                let n = tx.execute(
                    "INSERT INTO workers (id, org, state, owner, owner_epoch, pod, secret, session,
                                          created_at, updated_at, idle_since, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ON CONFLICT (id) DO NOTHING",
                    &[
                        &rec.id.as_bytes(),
                        &rec.org.as_bytes(),
                        &rec.state.name(),
                        &enc(rec.owner.0),
                        &enc(rec.owner_epoch),
                        &rec.pod.as_bytes(),
                        &rec.secret.as_bytes(),
                        &rec.session.map(enc),
                        &enc(rec.created_at),
                        &enc(rec.updated_at),
                        &enc(rec.idle_since),
                        &enc(rec.version),
                    ],
                )?;
                changed_one(n, || format!("insert of worker {:?}", rec.id))
            })
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
        self.write(now, None, |tx| {
            let current = read_worker(&mut tx.tx, id)?;
            let fence_lease = read_fence_lease(&mut tx.tx, fence)?;
            let now = tx.now()?;
            let fence = fence.map(|f| (f, fence_lease.as_ref()));
            let out = rules::workers::update(current.as_ref(), fence, owner, epoch, from, to, session, now)?;
            settle(tx, out, |tx, next| cas_update_worker(tx, next, current.as_ref()))
        })
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
        self.write(now, None, |tx| {
            let current = read_worker(&mut tx.tx, id)?;
            let owner_idle = match rules::workers::floor_owner(current.as_ref(), floor) {
                Some(o) => owner_idle_workers(&mut tx.tx, o)?,
                None => Vec::new(),
            };
            let fence_lease = read_fence_lease(&mut tx.tx, fence)?;
            let now = tx.now()?;
            let fence = fence.map(|f| (f, fence_lease.as_ref()));
            let (c, idle) = (current.as_ref(), owner_idle.as_slice());
            let out = rules::workers::claim(c, idle, floor, fence, owner, epoch, from, to, new_owner, now)?;
            settle(tx, out, |tx, next| cas_update_worker(tx, next, current.as_ref()))
        })
    }

    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.read(|c| {
            let rows = c.query(format!("SELECT {WORKER_COLUMNS} FROM workers").as_str(), &[])?;
            let mut list = rows.iter().map(worker_from_row).collect::<Res<Vec<_>>>()?;
            list.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(list)
        })
    }

    fn create_job(&mut self, id: &str, schedule: &Schedule, now: Millis) -> Result<JobCas, StoreError> {
        self.write(now, None, |tx| {
            let current = read_job(&mut tx.tx, id)?;
            let now = tx.now()?;
            let out = rules::cron::create(current.as_ref(), id, schedule, now);
            settle(tx, out, |tx, next| write_job(tx, next, None))
        })
    }

    fn edit_job(
        &mut self,
        id: &str,
        schedule: Option<&Schedule>,
        status: Option<JobStatus>,
        now: Millis,
    ) -> Result<JobCas, StoreError> {
        self.write(now, None, |tx| {
            let current = read_job(&mut tx.tx, id)?;
            let now = tx.now()?;
            let out = rules::cron::edit(current.as_ref(), schedule, status, now)?;
            settle(tx, out, |tx, next| write_job(tx, next, current.as_ref()))
        })
    }

    fn claim_job(
        &mut self,
        id: &str,
        owner: Option<InstanceId>,
        epoch: u64,
        new_owner: Option<InstanceId>,
        now: Millis,
    ) -> Result<JobCas, StoreError> {
        self.write(now, None, |tx| {
            let current = read_job(&mut tx.tx, id)?;
            let out = rules::cron::claim(current.as_ref(), owner, epoch, new_owner)?;
            settle(tx, out, |tx, next| write_job(tx, next, current.as_ref()))
        })
    }

    fn list_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        self.read(|c| {
            let rows = c.query(format!("SELECT {JOB_COLUMNS} FROM jobs").as_str(), &[])?;
            let mut list = rows.iter().map(job_from_row).collect::<Res<Vec<_>>>()?;
            list.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(list)
        })
    }

    fn commit_fire(&mut self, job: &str, fire: &Fire, now: Millis) -> Result<FireResult, StoreError> {
        // The runs gate: every fire counts the fleet's running jobs and
        // inserts alone, so the run cap holds across processes.
        self.write(now, Some(Gate::Runs), |tx| {
            let current = read_job(&mut tx.tx, job)?;
            let existing = read_fire(&mut tx.tx, job, fire.slot, Lock::Update)?;
            let unfinished = unfinished_runs(&mut tx.tx)?;
            let now = tx.now()?;
            let running = unfinished.iter().filter(|f| f.running_at(now)).count();
            let out = rules::cron::commit_fire(current.as_ref(), existing.as_ref(), running, fire, now)?;
            settle(tx, out, |tx, (rec, next)| {
                insert_fire(tx, rec)?;
                write_job(tx, next, current.as_ref())
            })
        })
    }

    fn finish_fire(&mut self, job: &str, slot: Millis, owner: Option<InstanceId>, now: Millis) -> Result<FireResult, StoreError> {
        self.write(now, None, |tx| {
            let existing = read_fire(&mut tx.tx, job, slot, Lock::Update)?;
            let now = tx.now()?;
            let out = rules::cron::finish_fire(existing.as_ref(), owner, now);
            settle(tx, out, |tx, done| {
                let n = tx.execute(
                    "UPDATE fires SET finished = $3 WHERE job = $1 AND slot = $2 AND finished IS NULL",
                    &[&done.job.as_bytes(), &enc(done.slot), &done.finished.map(enc)],
                )?;
                changed_one(n, || format!("finish of fire ({:?}, {})", done.job, done.slot))
            })
        })
    }

    fn read_fire(&mut self, job: &str, slot: Millis) -> Result<Option<FireRecord>, StoreError> {
        self.read(|c| read_fire(c, job, slot, Lock::None))
    }

    fn fires(&mut self) -> Result<Vec<FireRecord>, StoreError> {
        self.read(|c| sorted_fires(c.query(format!("SELECT {FIRE_COLUMNS} FROM fires").as_str(), &[])?))
    }

    fn list_running(&mut self, now: Millis) -> Result<Vec<FireRecord>, StoreError> {
        let clock = self.clock;
        self.read(|c| {
            let now = match clock {
                PgClock::Given => now,
                PgClock::Database => db_now(c)?,
            };
            Ok(unfinished_runs(c)?.into_iter().filter(|f| f.running_at(now)).collect())
        })
    }

    fn write_settings(&mut self, value: &str, now: Millis) -> Result<u64, StoreError> {
        self.write(now, None, |tx| {
            let current = read_settings(&mut tx.tx, Lock::Update)?;
            let now = tx.now()?;
            let out = rules::cron::write_settings(current.as_ref(), value, now)?;
            settle(tx, out, |tx, next| {
                let (value, version, at) = (next.value.as_bytes(), enc(next.version), enc(next.updated_at));
                let n = match &current {
                    None => tx.execute(
                        "INSERT INTO settings (id, value, version, updated_at) VALUES (1, $1, $2, $3)
                         ON CONFLICT (id) DO NOTHING",
                        &[&value, &version, &at],
                    )?,
                    Some(read) => tx.execute(
                        "UPDATE settings SET value = $1, version = $2, updated_at = $3 WHERE id = 1 AND version = $4",
                        &[&value, &version, &at, &enc(read.version)],
                    )?,
                };
                changed_one(n, || "write of settings".to_string())
            })
        })
    }

    fn read_settings(&mut self) -> Result<Option<SettingsRecord>, StoreError> {
        self.read(|c| read_settings(c, Lock::None))
    }
}
