//! What only PostgreSQL has: durability across reconnects, the schema and
//! its migrations, several pools (processes) on one database racing the
//! gates, the database's clock, bad rows, dropped connections. Every store
//! here, and every conformance case's (`postgres_schema::*`), gets a fresh
//! schema on the throwaway server of [`pg_testserver`](crate::store::pg_testserver).
//! Without PostgreSQL installed these tests pass as skipped (outside CI).

use super::*;
use crate::store::pg_testserver::{server, TestServer};
use crate::store::rules::cron::Fire;
use ::postgres::{Client, NoTls};
use std::sync::Arc;
use std::time::Duration;

/// Runs `case` with a factory of stores, each on a fresh empty schema,
/// dropped once the case is done (a failed case leaves its schemas to the
/// server's removal at exit).
pub(super) fn with_schemas(tag: &str, case: impl FnOnce(&dyn Fn() -> PgStore)) {
    let Some(server) = server() else { return };
    let schemas = RefCell::new(Vec::new());
    let mk = || {
        let schema = server.fresh_schema(tag);
        let store = PgStore::connect(&server.url(&schema), 2, PgClock::Given).expect("connect to postgres");
        schemas.borrow_mut().push(schema);
        store
    };
    case(&mk);
    for schema in schemas.into_inner() {
        server.drop_schema(&schema);
    }
}

/// A fresh schema, dropped on drop.
struct Schema {
    server: &'static TestServer,
    name: String,
}

impl Schema {
    /// `None`: PostgreSQL is not installed (the test passes as skipped).
    fn new(tag: &str) -> Option<Schema> {
        let server = server()?;
        Some(Schema { server, name: server.fresh_schema(tag) })
    }

    fn url(&self) -> String {
        self.server.url(&self.name)
    }

    fn open(&self) -> Result<PgStore, StoreError> {
        PgStore::connect(&self.url(), 2, PgClock::Given)
    }

    fn store(&self) -> PgStore {
        self.open().expect("connect to postgres")
    }

    /// A plain session on the schema, to look at and tamper with rows.
    fn client(&self) -> Client {
        Client::connect(&self.url(), NoTls).expect("connect a plain client")
    }

    fn version(&self) -> i64 {
        self.client().query_one("SELECT version FROM schema_version", &[]).unwrap().get(0)
    }

    fn tables(&self) -> Vec<String> {
        let rows = self
            .client()
            .query("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", &[&self.name])
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        self.server.drop_schema(&self.name);
    }
}

fn fire(slot: Millis, cap: Option<u32>, hold_ms: u64) -> Fire {
    Fire { slot, owner: None, epoch: 0, kind: FireKind::Run, cap, hold_ms, late_after_ms: 0, spec: 1 }
}

const ALL_TABLES: [&str; 9] =
    ["effects", "fires", "instances", "jobs", "leases", "schema_version", "settings", "slots", "workers"];

#[test]
fn reopen_keeps_every_record() {
    let Some(db) = Schema::new("reopen") else { return };
    let (lease, before) = {
        let mut s = db.store();
        applied(s.acquire_lease(L, id(1), None, 100, 0));
        let lease = applied(s.renew_lease(L, id(1), 1, 100, 10));
        assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "one", 20)), 1);
        assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "two", 30)), 2);
        s.register_instance(id(u64::MAX), None, 5).unwrap();
        assert!(s.drain_instance(id(u64::MAX), None, 6).unwrap());
        assert_eq!(reserve(&mut s, "w1", "o", 2, 2, 7), SlotResult::Reserved);
        w_applied(s.insert_worker(&WorkerRecord { session: Some(3), ..worker("w1", "o", S::Hot, 1, 1) }, 8));
        w_applied(s.claim_worker("w1", id(1), 1, None, id(2), None, 10));
        assert!(matches!(s.create_job("j", &Schedule::Cron { expr: "*/5 * * * * *".into() }, 0).unwrap(), JobCas::Applied(_)));
        assert!(matches!(s.commit_fire("j", &fire(5_000, Some(1), 50), 5_000).unwrap(), FireResult::Committed(_)));
        assert_eq!(s.write_settings("x", 11).unwrap(), 1);
        (lease, Records::of(&mut s))
    };
    let mut s = db.store();
    assert_eq!(read(&mut s, L), Some(lease.clone()));
    assert_eq!(Records::of(&mut s), before);
    // And it carries on where it left off.
    assert_eq!(rejected(s.acquire_lease(L, id(2), Some(2), 100, 50)), (Reject::HeldByOther, Some(lease)));
    assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "three", 60)), 3);
    assert_eq!(w_rejected(s.claim_worker("w1", id(1), 1, None, id(1), None, 11)).0, WorkerReject::StaleOwner);
    assert_eq!(s.write_settings("y", 12).unwrap(), 2);
}

/// Everything a store holds, as its lists give it.
#[derive(Debug, PartialEq, Eq)]
struct Records {
    effects: Vec<EffectRow>,
    instances: Vec<InstanceRecord>,
    slots: Vec<SlotRecord>,
    workers: Vec<WorkerRecord>,
    jobs: Vec<JobRecord>,
    fires: Vec<FireRecord>,
    settings: Option<SettingsRecord>,
}

impl Records {
    fn of(s: &mut PgStore) -> Self {
        Records {
            effects: s.effects().unwrap(),
            instances: s.list_instances().unwrap(),
            slots: slots(s),
            workers: workers(s),
            jobs: s.list_jobs().unwrap(),
            fires: s.fires().unwrap(),
            settings: s.read_settings().unwrap(),
        }
    }
}

#[test]
fn open_creates_the_current_schema() {
    let Some(db) = Schema::new("schema") else { return };
    drop(db.store());
    assert_eq!(db.version(), PG_SCHEMA_VERSION);
    assert_eq!(db.tables(), ALL_TABLES);
    // Opening again changes nothing.
    drop(db.store());
    assert_eq!(db.version(), PG_SCHEMA_VERSION);
}

#[test]
fn newer_schema_is_rejected() {
    let Some(db) = Schema::new("newer") else { return };
    db.client()
        .batch_execute("CREATE TABLE schema_version (id SMALLINT PRIMARY KEY, version BIGINT NOT NULL); INSERT INTO schema_version VALUES (1, 99)")
        .unwrap();
    match db.open() {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("99") && msg.contains("newer"), "{msg}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    // Untouched.
    assert_eq!(db.version(), 99);
    assert_eq!(db.tables(), ["schema_version"]);
}

#[test]
fn every_older_version_is_migrated_in_place() {
    for version in 0..PG_SCHEMA_VERSION as usize {
        let Some(db) = Schema::new(&format!("migrate{version}")) else { return };
        let mut c = db.client();
        crate::store::postgres::create_at_version(&mut c, version).unwrap();
        if version >= 1 {
            c.batch_execute(
                "INSERT INTO leases VALUES ('leader'::bytea, 1, 3, 500, 7);
                 INSERT INTO effects VALUES (1, 'leader'::bytea, 1, 3, 'old'::bytea, 400);",
            )
            .unwrap();
        }
        if version >= 2 {
            c.batch_execute("INSERT INTO instances (id, started_at, heartbeat_at) VALUES (1, 10, 20)").unwrap();
        }
        let mut s = db.store();
        assert_eq!(db.version(), PG_SCHEMA_VERSION, "from version {version}");
        assert_eq!(db.tables(), ALL_TABLES, "from version {version}");
        // The old rows are kept...
        if version >= 1 {
            assert_eq!(read(&mut s, L), Some(rec(Some(1), 3, 500, 7)));
            assert_eq!(s.fenced_effect(L, id(1), 3, "old", 21), Ok(EffectResult::Duplicate { seq: 1 }));
        }
        if version >= 2 {
            assert_eq!(s.list_instances().unwrap(), vec![inst(1, 10, 20)]);
        }
        // ...and every table is usable.
        assert!(s.drain_instance(id(1), None, 30).unwrap() == (version >= 2));
        assert_eq!(reserve(&mut s, "w1", "o", 1, 1, 10), SlotResult::Reserved);
        w_applied(s.insert_worker(&worker("w1", "o", S::Spawning, 1, 1), 10));
        assert!(matches!(s.create_job("a", &Schedule::Every { ms: 10 }, 0).unwrap(), JobCas::Applied(_)));
        assert!(matches!(s.commit_fire("a", &fire(10, None, 5), 10).unwrap(), FireResult::Committed(_)));
        assert_eq!(s.write_settings("x", 1).unwrap(), 1);
    }
}

#[test]
fn concurrent_openers_migrate_once() {
    let Some(db) = Schema::new("openers") else { return };
    let url = Arc::new(db.url());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = Arc::clone(&url);
            std::thread::spawn(move || PgStore::connect(&url, 1, PgClock::Given).map(drop))
        })
        .collect();
    for h in handles {
        h.join().unwrap().expect("a concurrent opener failed");
    }
    assert_eq!(db.version(), PG_SCHEMA_VERSION);
    assert_eq!(db.tables(), ALL_TABLES);
}

/// `threads` threads, half on each of two pools on one schema (two
/// processes, as far as the database can tell), each running `work` with
/// its thread number on a clone of its pool's store.
fn on_two_pools<T: Send + 'static>(
    db: &Schema,
    threads: usize,
    work: impl Fn(usize, PgStore) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let pools = [
        PgStore::connect(&db.url(), 3, PgClock::Given).unwrap(),
        PgStore::connect(&db.url(), 3, PgClock::Given).unwrap(),
    ];
    let work = Arc::new(work);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, work) = (pools[t % 2].clone(), Arc::clone(&work));
            std::thread::spawn(move || work(t, store))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn racing_reservations_never_pass_the_caps() {
    // (org cap, global cap, what binds): 3 orgs of 8 > 20; 3 orgs of 5 < 100.
    // A few rounds each: a race lost without the gate shows only sometimes.
    let rounds = [(8u32, 20u32, 20usize), (5, 100, 15)].into_iter().flat_map(|caps| [caps; 3]);
    for (org_cap, global_cap, want) in rounds {
        let Some(db) = Schema::new("slots") else { return };
        let reserved: usize = on_two_pools(&db, 6, move |t, mut s| {
            (0..10)
                .filter(|k| match s.reserve_slot(&format!("t{t}-{k}"), &format!("org{}", k % 3), org_cap, global_cap, 0) {
                    Ok(SlotResult::Reserved) => true,
                    Ok(SlotResult::OrgCap | SlotResult::GlobalCap) => false,
                    other => panic!("unexpected {other:?}"),
                })
                .count()
        })
        .into_iter()
        .sum();
        let rows = slots(&mut db.store());
        assert_eq!((reserved, rows.len()), (want, want), "caps {org_cap}/{global_cap}");
        for org in ["org0", "org1", "org2"] {
            assert!(rows.iter().filter(|r| r.org == org).count() <= org_cap as usize);
        }
    }
}

#[test]
fn racing_fires_never_pass_the_run_cap() {
    let Some(db) = Schema::new("runcap") else { return };
    let jobs = 8;
    {
        let mut s = db.store();
        for j in 0..jobs {
            assert!(matches!(s.create_job(&format!("j{j}"), &Schedule::Every { ms: 10 }, 0).unwrap(), JobCas::Applied(_)));
        }
    }
    let kinds = on_two_pools(&db, jobs, |j, mut s| match s.commit_fire(&format!("j{j}"), &fire(10, Some(3), 1_000), 10) {
        Ok(FireResult::Committed(rec)) => rec.kind,
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(kinds.iter().filter(|k| **k == FireKind::Run).count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == FireKind::AtCap).count(), jobs - 3, "{kinds:?}");
    assert_eq!(db.store().list_running(10).unwrap().len(), 3);
}

#[test]
fn racing_writers_lose_no_cas() {
    let Some(db) = Schema::new("cas") else { return };
    {
        let mut s = db.store();
        applied(s.acquire_lease(L, id(1), None, u64::MAX / 4, 0));
        w_applied(s.insert_worker(&worker("w", "o", S::Hot, 0, 1), 0));
    }
    // Read-then-CAS renews: the final version counts the applied writes.
    let (threads, per_thread) = (4, 25u64);
    let renewed: u64 = on_two_pools(&db, threads, move |_, mut s| {
        let mut applied_writes = 0;
        while applied_writes < per_thread {
            let v = s.read_lease(L).unwrap().unwrap().version;
            match s.renew_lease(L, id(1), v, 100, v) {
                Ok(CasResult::Applied(_)) => applied_writes += 1,
                Ok(CasResult::Rejected { reason: Reject::StaleVersion, .. }) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        applied_writes
    })
    .into_iter()
    .sum();
    assert_eq!(renewed, threads as u64 * per_thread);
    assert_eq!(read(&mut db.store(), L).unwrap().version, 1 + renewed);
    // Claims: every epoch from 2 on is won exactly once.
    let mut epochs: Vec<u64> = on_two_pools(&db, threads, move |me, mut s| {
        let mut won = vec![];
        while (won.len() as u64) < per_thread {
            let cur = s.list_workers().unwrap().remove(0);
            match s.claim_worker("w", cur.owner, cur.owner_epoch, None, id(me as u64 + 1), None, 0).unwrap() {
                WorkerCas::Applied(r) => won.push(r.owner_epoch),
                WorkerCas::Rejected { reason: WorkerReject::StaleOwner, .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        won
    })
    .into_iter()
    .flatten()
    .collect();
    epochs.sort();
    assert_eq!(epochs, (2..2 + threads as u64 * per_thread).collect::<Vec<_>>());
    // Creating a missing row: one wins, the others see it (they lost the
    // insert race and ran again).
    let first = on_two_pools(&db, 6, |t, mut s| match s.acquire_lease("new", id(t as u64 + 1), None, 100, 0).unwrap() {
        CasResult::Applied(_) => 1,
        CasResult::Rejected { reason: Reject::StaleVersion, current: Some(_) } => 0,
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(first.iter().sum::<i32>(), 1);
    let made = on_two_pools(&db, 6, |t, mut s| match s.insert_worker(&worker("x", "o", S::Hot, t as u64, 1), 0).unwrap() {
        WorkerCas::Applied(_) => 1,
        WorkerCas::Rejected { reason: WorkerReject::Exists, .. } => 0,
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(made.iter().sum::<i32>(), 1);
    // Effects from both pools: dense seqs, each key once.
    let seqs: Vec<u64> = on_two_pools(&db, 4, |t, mut s| {
        (0..5).map(|k| seq_of(s.fenced_effect(L, id(1), 1, &format!("t{t}-{k}"), 1))).collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(sorted, (1..=20).collect::<Vec<_>>());
    let log = db.store().effects().unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), sorted);
}

#[test]
fn database_clock_stamps_the_servers_time() {
    let Some(db) = Schema::new("clock") else { return };
    let mut s = PgStore::connect(&db.url(), 2, PgClock::Database).unwrap();
    assert_eq!(s.clock(), PgClock::Database);
    let before = s.database_now().unwrap();
    // The given now is ignored.
    s.register_instance(id(1), None, 0).unwrap();
    let lease = applied(s.acquire_lease(L, id(1), None, 1_000, u64::MAX));
    assert!(matches!(s.create_job("j", &Schedule::Every { ms: 1 }, 0).unwrap(), JobCas::Applied(_)));
    let after = s.database_now().unwrap();
    let beat = s.list_instances().unwrap()[0].heartbeat_at;
    assert!((before..=after).contains(&beat), "{before} <= {beat} <= {after}");
    assert!((before..=after).contains(&(lease.expires_at - 1_000)), "{before} <= {} <= {after}", lease.expires_at - 1_000);
    // It is the real time, give or take.
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(wall.abs_diff(after) < 60_000, "server {after}, here {wall}");
    // A fire due by the database's clock commits, and runs by it.
    let since = s.list_jobs().unwrap()[0].since;
    std::thread::sleep(Duration::from_millis(5));
    match s.commit_fire("j", &fire(since + 1, Some(1), 60_000), 0).unwrap() {
        FireResult::Committed(rec) => assert!(rec.at > since && rec.deadline == rec.at + 60_000, "{rec:?}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(s.list_running(u64::MAX).unwrap().len(), 1);
    // The same rows, given clock: u64::MAX is past every deadline.
    assert_eq!(db.store().list_running(u64::MAX).unwrap().len(), 0);
}

#[test]
fn bad_rows_are_backend_errors() {
    let Some(db) = Schema::new("badrows") else { return };
    let mut s = db.store();
    w_applied(s.insert_worker(&worker("w1", "o", S::Hot, 1, 1), 0));
    w_applied(s.insert_worker(&worker("w2", "o", S::Hot, 1, 1), 0));
    assert!(matches!(s.create_job("j", &Schedule::Every { ms: 10 }, 0).unwrap(), JobCas::Applied(_)));
    let mut c = db.client();
    assert_eq!(c.execute("UPDATE workers SET state = 'idle' WHERE id = 'w1'::bytea", &[]).unwrap(), 1);
    assert_eq!(c.execute("UPDATE jobs SET schedule = '\\xff00'::bytea", &[]).unwrap(), 1);
    let is_backend = |r: Result<WorkerCas, StoreError>| match r {
        Err(StoreError::Backend(m)) => assert!(m.contains("idle"), "{m}"),
        other => panic!("expected a backend error, got {other:?}"),
    };
    assert!(matches!(s.list_workers(), Err(StoreError::Backend(m)) if m.contains("idle")));
    is_backend(s.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, None, 1));
    is_backend(s.claim_worker("w1", id(1), 1, None, id(2), None, 1));
    is_backend(s.insert_worker(&worker("w1", "o", S::Hot, 1, 1), 1));
    assert!(matches!(s.list_jobs(), Err(StoreError::Backend(m)) if m.contains("UTF-8")));
    assert!(matches!(s.edit_job("j", None, Some(JobStatus::Paused), 1), Err(StoreError::Backend(_))));
    // Other rows are unaffected, and the failed writes left no lock behind.
    w_applied(s.update_worker("w2", id(1), 1, S::Hot, S::HotIdle, None, None, 2));
    assert_eq!(reserve(&mut s, "w2", "o", 1, 1, 2), SlotResult::Reserved);
}

#[test]
fn a_dropped_connection_is_replaced_before_use() {
    let Some(db) = Schema::new("dropped") else { return };
    let app = format!("hw_victim_{}", db.name);
    let mut s = PgStore::connect(&format!("{}&application_name={app}", db.url()), 1, PgClock::Given).unwrap();
    applied(s.acquire_lease(L, id(1), None, 100, 0));
    // The server drops the pool's one connection (as a restart or an idle
    // timeout would); wait until its backend is gone.
    let mut admin = db.server.admin();
    let sessions = "SELECT pid FROM pg_stat_activity WHERE application_name = $1";
    let killed = admin.query(&format!("SELECT pg_terminate_backend(pid) FROM ({sessions}) s"), &[&app]).unwrap();
    assert_eq!(killed.len(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !admin.query(sessions, &[&app]).unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the backend did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(admin);
    // The check-out finds it dead and connects anew: no call fails.
    applied(s.renew_lease(L, id(1), 1, 100, 10));
    assert_eq!(read(&mut s, L), Some(rec(Some(1), 1, 110, 2)));
}

#[test]
fn a_bad_connection_string_is_a_backend_error() {
    assert!(matches!(PgStore::connect("host=127.0.0.1 port=notaport", 1, PgClock::Given), Err(StoreError::Backend(_))));
    assert!(matches!(PgStore::connect("host=127.0.0.1 bogus_key=1", 1, PgClock::Given), Err(StoreError::Backend(_))));
}

#[test]
fn stores_on_two_schemas_are_private() {
    let (Some(db_a), Some(db_b)) = (Schema::new("private_a"), Schema::new("private_b")) else { return };
    let (mut a, mut b) = (db_a.store(), db_b.store());
    applied(a.acquire_lease(L, id(1), None, 100, 0));
    assert_eq!(read(&mut b, L), None);
    // The gates are per database, not per schema: still no interference.
    assert_eq!(reserve(&mut a, "w", "o", 1, 1, 0), SlotResult::Reserved);
    assert_eq!(reserve(&mut b, "w", "o", 1, 1, 0), SlotResult::Reserved);
}
