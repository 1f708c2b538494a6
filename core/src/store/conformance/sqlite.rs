//! What only SQLite has: durability across reopen, the schema and its
//! migrations, WAL, several connections on one file.

use super::*;
use std::path::Path;

fn pragma_i64(path: &Path, name: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, name, |r| r.get(0)).unwrap()
}

#[test]
fn reopen_keeps_lease_and_effects() {
    let db = TempDb::new("reopen");
    let (lease, effects) = {
        let mut s = SqliteStore::open(&db.path).unwrap();
        applied(s.acquire_lease(L, id(1), None, 100, 0));
        let lease = applied(s.renew_lease(L, id(1), 1, 100, 10));
        assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "one", 20)), 1);
        assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "two", 30)), 2);
        (lease, s.effects().unwrap())
    };
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!(read(&mut s, L), Some(lease.clone()));
    assert_eq!(s.effects().unwrap(), effects);
    // And it carries on where it left off.
    assert_eq!(rejected(s.acquire_lease(L, id(2), Some(2), 100, 50)), (Reject::HeldByOther, Some(lease)));
    assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "three", 60)), 3);
    drop(s);
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!(s.effects().unwrap().len(), 3);
}

#[test]
fn file_uses_wal_and_records_schema_version() {
    let db = TempDb::new("wal");
    let _s = SqliteStore::open(&db.path).unwrap();
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    assert_eq!(pragma_i64(&db.path, "user_version"), 9);
}

#[test]
fn newer_schema_is_rejected() {
    let db = TempDb::new("schema");
    {
        let conn = rusqlite::Connection::open(&db.path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    match SqliteStore::open(&db.path) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("99") && msg.contains("newer"), "{msg}"),
        Err(e) => panic!("wrong error: {e:?}"),
        Ok(_) => panic!("opened a database with a newer schema"),
    }
    // Untouched.
    assert_eq!(pragma_i64(&db.path, "user_version"), 99);
}

#[test]
fn not_a_database_is_a_backend_error() {
    let db = TempDb::new("garbage");
    std::fs::write(&db.path, vec![0xA5u8; 8192]).unwrap();
    assert!(matches!(SqliteStore::open(&db.path), Err(StoreError::Backend(_))));
    let dir = TempDb::new("dir");
    std::fs::create_dir_all(&dir.path).unwrap();
    let res = SqliteStore::open(&dir.path);
    let _ = std::fs::remove_dir(&dir.path);
    assert!(matches!(res, Err(StoreError::Backend(_))));
}

#[test]
fn two_connections_share_one_file() {
    let db = TempDb::new("shared");
    let mut a = SqliteStore::open(&db.path).unwrap();
    let mut b = SqliteStore::open(&db.path).unwrap();
    let r = applied(a.acquire_lease(L, id(1), None, 100, 0));
    assert_eq!(read(&mut b, L), Some(r.clone()));
    // Both read version 1 and race: exactly one CAS wins.
    assert_eq!(rejected(b.acquire_lease(L, id(2), None, 100, 10)), (Reject::StaleVersion, Some(r.clone())));
    let r2 = applied(a.renew_lease(L, id(1), 1, 100, 10));
    assert_eq!(rejected(b.renew_lease(L, id(1), 1, 100, 10)), (Reject::StaleVersion, Some(r2.clone())));
    let r3 = applied(b.acquire_lease(L, id(2), Some(2), 100, 110));
    assert_eq!(r3, rec(Some(2), 2, 210, 3));
    assert_eq!(fence_reason(a.fenced_effect(L, id(1), 1, "deposed", 120)), FenceReject::NotHolder);
    assert_eq!(seq_of(b.fenced_effect(L, id(2), 2, "b1", 120)), 1);
    assert_eq!(seq_of(a.fenced_effect(L, id(2), 2, "via a", 121)), 2);
    assert_eq!(a.effects().unwrap(), b.effects().unwrap());
}

#[test]
fn concurrent_writers_lose_no_update() {
    // Several threads, each with its own connection, hammer one lease
    // with read-then-CAS renews; every applied write bumps the version by
    // one, so the final version counts the applied writes exactly.
    let db = TempDb::new("threads");
    {
        let mut s = SqliteStore::open(&db.path).unwrap();
        applied(s.acquire_lease(L, id(1), None, u64::MAX / 4, 0));
    }
    let threads = 4;
    let per_thread = 25;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let path = db.path.clone();
            std::thread::spawn(move || {
                let mut s = SqliteStore::open(&path).unwrap();
                let mut applied_writes = 0u64;
                while applied_writes < per_thread {
                    let v = s.read_lease(L).unwrap().unwrap().version;
                    match s.renew_lease(L, InstanceId(1), v, 100, v) {
                        Ok(CasResult::Applied(_)) => applied_writes += 1,
                        Ok(CasResult::Rejected { reason: Reject::StaleVersion, .. }) => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
                applied_writes
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!(read(&mut s, L).unwrap().version, 1 + total);
    assert_eq!(total, threads * per_thread);
}

fn tables(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<Vec<String>, _>>().unwrap();
    names
}

/// Create `db` as schema `version` left it, then write `rows` into it
/// straight (no store to write them through), as a database an older
/// build left behind.
fn at_version(db: &TempDb, version: usize, rows: impl FnOnce(&rusqlite::Connection)) {
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    crate::store::sqlite::create_at_version(&conn, version).unwrap();
    rows(&conn);
}

#[test]
fn version_one_database_is_migrated() {
    let db = TempDb::new("migrate");
    at_version(&db, 1, |conn| {
        conn.execute("INSERT INTO leases VALUES ('leader', 1, 3, 500, 7)", []).unwrap();
        conn.execute("INSERT INTO effects VALUES (1, 'leader', 1, 3, 'old', 400)", []).unwrap();
    });
    assert_eq!(pragma_i64(&db.path, "user_version"), 1);
    assert_eq!(tables(&db.path), ["effects", "leases"]);
    let lease = rec(Some(1), 3, 500, 7);
    let old = EffectRow { seq: 1, lease: L.into(), holder: id(1), epoch: 3, effect: "old".into(), at: 400 };
    {
        let mut s = SqliteStore::open(&db.path).unwrap();
        // The old rows are kept...
        assert_eq!(read(&mut s, L), Some(lease.clone()));
        assert_eq!(s.effects().unwrap(), vec![old.clone()]);
        // ...and the fleet tables are there, empty and usable.
        assert_eq!(s.list_instances().unwrap(), vec![]);
        assert_eq!(slots(&mut s), vec![]);
        assert_eq!(workers(&mut s), vec![]);
        s.register_instance(id(1), None, 10).unwrap();
        assert_eq!(reserve(&mut s, "w1", "o", 1, 1, 10), SlotResult::Reserved);
        w_applied(s.insert_worker(&worker("w1", "o", S::Spawning, 1, 1), 10));
        // The old lease fences the new tables.
        let f = LeaseFence { lease: L.into(), holder: id(1), epoch: 3 };
        w_applied(s.update_worker("w1", id(1), 1, S::Spawning, S::Activating, None, Some(&f), 20));
        // The old effect's key is taken.
        assert_eq!(s.fenced_effect(L, id(1), 3, "old", 21), Ok(EffectResult::Duplicate { seq: 1 }));
    }
    assert_eq!(pragma_i64(&db.path, "user_version"), 9);
    assert_eq!(
        tables(&db.path),
        [
            "effects",
            "fires",
            "instances",
            "jobs",
            "leases",
            "settings",
            "slots",
            "unregistered_owners",
            "worker_owners",
            "workers"
        ]
    );
    // Reopening a migrated database changes nothing.
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!(pragma_i64(&db.path, "user_version"), 9);
    assert_eq!(read(&mut s, L), Some(lease));
    assert_eq!(s.effects().unwrap(), vec![old]);
    assert_eq!(s.list_instances().unwrap(), vec![inst(1, 10, 10)]);
    assert_eq!(slots(&mut s), vec![slot("w1", "o", 10)]);
    let w = workers(&mut s);
    assert_eq!((w.len(), w[0].state, w[0].version), (1, S::Activating, 2));
}

/// A version-2 database (the fleet tables, no key index on effects) is
/// migrated to 3: its rows are kept and an effect key commits at most
/// once, in the schema too.
#[test]
fn version_two_database_gains_the_effect_key_index() {
    let db = TempDb::new("migrate2");
    let key_index = |path: &Path| -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'effects_by_key'", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let old = {
        let mut s = SqliteStore::open(&db.path).unwrap();
        applied(s.acquire_lease(L, id(1), None, 100, 0));
        assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "e1", 1)), 1);
        s.effects().unwrap()
    };
    // Back to the schema version 2 wrote: everything but the index.
    {
        let conn = rusqlite::Connection::open(&db.path).unwrap();
        conn.execute_batch("DROP INDEX effects_by_key; ALTER TABLE instances DROP COLUMN draining; PRAGMA user_version = 2;")
            .unwrap();
    }
    assert_eq!((pragma_i64(&db.path, "user_version"), key_index(&db.path)), (2, 0));
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!((pragma_i64(&db.path, "user_version"), key_index(&db.path)), (9, 1));
    assert_eq!(s.effects().unwrap(), old);
    assert_eq!(s.fenced_effect(L, id(1), 1, "e1", 2), Ok(EffectResult::Duplicate { seq: 1 }));
    // The index itself refuses a second row for the key.
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let err = conn.execute("INSERT INTO effects (lease, holder, epoch, effect, at) VALUES (?1, 1, 1, 'e1', 3)", [L]).unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    conn.execute("INSERT INTO effects (lease, holder, epoch, effect, at) VALUES ('other', 1, 1, 'e1', 3)", []).unwrap();
    assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "e2", 4)), 3);
    assert_eq!(s.effects().unwrap().len(), 3);
}

#[test]
fn version_ten_is_rejected() {
    let db = TempDb::new("schema10");
    {
        let conn = rusqlite::Connection::open(&db.path).unwrap();
        conn.pragma_update(None, "user_version", 10).unwrap();
    }
    assert!(matches!(SqliteStore::open(&db.path), Err(StoreError::Backend(m)) if m.contains("newer")));
    assert_eq!(pragma_i64(&db.path, "user_version"), 10);
    assert_eq!(tables(&db.path), Vec::<String>::new());
}

/// A version-5 database gains the owner index a replica's own reaper
/// reads through, its rows kept.
#[test]
fn version_five_database_gains_the_owner_index() {
    let db = TempDb::new("migrate5");
    let owner_index = |path: &Path| -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'workers_by_owner'", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    at_version(&db, 5, |_| {});
    assert_eq!((pragma_i64(&db.path, "user_version"), owner_index(&db.path)), (5, 0));
    {
        let mut s = SqliteStore::open(&db.path).unwrap();
        w_applied(s.insert_worker(&worker("w1.1", "o", S::Spawning, 1, 1), 10));
    }
    assert_eq!((pragma_i64(&db.path, "user_version"), owner_index(&db.path)), (9, 1));
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!(workers(&mut s).len(), 1);
}

/// A worker row of `owner` in `state`, written straight into a database of
/// an older schema (no store to write it through).
fn insert_raw_worker(conn: &rusqlite::Connection, id: &str, state: &str, owner: u64) {
    conn.execute(
        "INSERT INTO workers VALUES (?1, 'o', ?2, ?3, 1, 'p', 's', NULL, 10, 10, 10, 1)",
        rusqlite::params![id, state, owner],
    )
    .unwrap();
}

/// The ids a fallback pass of instance 1 (minting `w1.`, owners dead after
/// 50 ms) reads at `now`.
fn listed_by_one(s: &mut SqliteStore, now: u64) -> Vec<String> {
    let scope = OwnScope { instance: id(1), minted_prefix: "w1.".into(), ids: vec![], dead_after_ms: 50 };
    s.list_workers_of(&scope, now).unwrap().into_iter().map(|w| w.id).collect()
}

/// A version-6 database gains the table of owners a fallback pass reads,
/// filled from the rows it has: a dead owner's row written before the
/// migration is still found, and rows inserted or claimed after it name
/// their owners through the triggers.
#[test]
fn version_six_database_gains_the_owners_table() {
    let db = TempDb::new("migrate6");
    at_version(&db, 6, |conn| {
        insert_raw_worker(conn, "w9.1", "hot", 9);
    });
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!(pragma_i64(&db.path, "user_version"), 9);
    s.register_instance(id(1), None, 100).unwrap();
    s.register_instance(id(2), None, 100).unwrap();
    w_applied(s.insert_worker(&worker("w2.1", "o", S::Hot, 2, 1), 100));
    // 9 never registered: its row is ours to take over; 2 is live.
    assert_eq!(listed_by_one(&mut s, 100), ["w9.1"]);
    // Claimed by 3, which never registers either: found under its new owner.
    w_applied(s.claim_worker("w9.1", id(9), 1, None, id(3), None, 120));
    assert_eq!(listed_by_one(&mut s, 120), ["w9.1"]);
    // 2 dies: its row is found too.
    assert_eq!(listed_by_one(&mut s, 200), ["w2.1", "w9.1"]);
}

/// A version-7 database gains the index of unended rows by owner that a
/// fallback pass walks for a dead owner: its ended rows are skipped, its
/// unended ones found, whether written before the migration or after.
#[test]
fn version_seven_database_gains_the_unended_owner_index() {
    let db = TempDb::new("migrate7");
    at_version(&db, 7, |conn| {
        for (id, state) in [("w9.1", "hot"), ("w9.2", "retired"), ("w9.3", "lost"), ("w9.4", "draining")] {
            insert_raw_worker(conn, id, state, 9);
        }
    });
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!(pragma_i64(&db.path, "user_version"), 9);
    assert_eq!(listed_by_one(&mut s, 100), ["w9.1", "w9.4"]);
    // Ended after the migration: out of the index, so out of the pass.
    w_applied(s.update_worker("w9.4", id(9), 1, S::Draining, S::Retired, None, None, 110));
    assert_eq!(listed_by_one(&mut s, 100), ["w9.1"]);
}

/// A version-8 database gains the heartbeat index and the table of owners
/// with no instance row, filled from the owners its rows name: a fallback
/// pass finds an owner that never registered until it registers, an owner
/// once its heartbeat is too old, and an unregistered owner of a row
/// written after the migration.
#[test]
fn version_eight_database_finds_the_owners_not_alive_by_heartbeat() {
    let db = TempDb::new("migrate8");
    at_version(&db, 8, |conn| {
        conn.execute("INSERT INTO instances (id, started_at, heartbeat_at) VALUES (2, 10, 10)", []).unwrap();
        insert_raw_worker(conn, "w9.1", "hot", 9);
        insert_raw_worker(conn, "w2.1", "hot", 2);
    });
    let mut s = SqliteStore::open(&db.path).unwrap();
    assert_eq!(pragma_i64(&db.path, "user_version"), 9);
    // 2 was heard at 10; 9 never registered.
    assert_eq!(listed_by_one(&mut s, 40), ["w9.1"]);
    // Registered, 9 is alive.
    assert!(s.register_instance(id(9), None, 45).unwrap());
    assert!(listed_by_one(&mut s, 59).is_empty());
    // 2 is dead at 10 + 50 = 60, not a millisecond before.
    assert_eq!(listed_by_one(&mut s, 60), ["w2.1"]);
    // 7 never registers: its row, written now, names it through the triggers.
    w_applied(s.insert_worker(&worker("w7.1", "o", S::Hot, 7, 1), 61));
    assert_eq!(listed_by_one(&mut s, 61), ["w2.1", "w7.1"]);
    assert_eq!(listed_by_one(&mut s, 95), ["w2.1", "w7.1", "w9.1"]);
}

/// Times the heartbeat index cannot bound (before `dead_after_ms` has
/// passed, and from 2^63 on, where a stored heartbeat is negative) read
/// every owner and judge each: the same rows as the rulebook's.
#[test]
fn owners_not_alive_are_found_at_any_time() {
    let top = u64::MAX - 10;
    let mut s = SqliteStore::open_in_memory().unwrap();
    assert!(s.register_instance(id(2), None, 10).unwrap());
    w_applied(s.insert_worker(&worker("w2.1", "o", S::Hot, 2, 1), 10));
    w_applied(s.insert_worker(&worker("w9.1", "o", S::Hot, 9, 1), 10));
    assert_eq!(listed_by_one(&mut s, 20), ["w9.1"]);
    assert_eq!(listed_by_one(&mut s, 60), ["w2.1", "w9.1"]);
    assert!(s.register_instance(id(3), None, top).unwrap());
    w_applied(s.insert_worker(&worker("w3.1", "o", S::Hot, 3, 1), top));
    assert_eq!(listed_by_one(&mut s, top), ["w2.1", "w9.1"]);
    // Heard at u64::MAX - 10, 3 is dead only when the sum saturates to now.
    assert_eq!(listed_by_one(&mut s, u64::MAX), ["w2.1", "w3.1", "w9.1"]);
    assert_eq!(listed_by_one(&mut s, (1 << 63) + 5), ["w2.1", "w9.1"]);
}

/// The partial index spells the ended states out; they must be the names
/// the rows are written with.
#[test]
fn unended_owner_index_names_the_ended_states() {
    let db = TempDb::new("unended-names");
    let _s = SqliteStore::open(&db.path).unwrap();
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let sql: String = conn
        .query_row("SELECT sql FROM sqlite_master WHERE name = 'workers_unended_by_owner'", [], |r| r.get(0))
        .unwrap();
    let ended: Vec<_> = S::ALL.iter().filter(|s| s.is_terminal()).map(|s| format!("'{}'", s.name())).collect();
    assert_eq!(ended.len(), 2);
    assert!(sql.ends_with(&format!("WHERE state NOT IN ({})", ended.join(", "))), "{sql}");
}

#[test]
fn concurrent_claims_have_one_winner_per_epoch() {
    let db = TempDb::new("claim-threads");
    {
        let mut s = SqliteStore::open(&db.path).unwrap();
        w_applied(s.insert_worker(&worker("w", "o", S::Hot, 0, 1), 0));
    }
    let (threads, per_thread) = (4u64, 10u64);
    let handles: Vec<_> = (1..=threads)
        .map(|me| {
            let path = db.path.clone();
            std::thread::spawn(move || {
                let mut s = SqliteStore::open(&path).unwrap();
                let mut won = vec![];
                while (won.len() as u64) < per_thread {
                    let cur = s.list_workers().unwrap().remove(0);
                    match s.claim_worker("w", cur.owner, cur.owner_epoch, None, InstanceId(me), None, 0).unwrap() {
                        WorkerCas::Applied(r) => won.push(r.owner_epoch),
                        WorkerCas::Rejected { reason: WorkerReject::StaleOwner, .. } => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut epochs: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    epochs.sort();
    // Every epoch from 2 on was won exactly once.
    assert_eq!(epochs, (2..2 + threads * per_thread).collect::<Vec<_>>());
    let mut s = SqliteStore::open(&db.path).unwrap();
    let w = workers(&mut s).remove(0);
    assert_eq!((w.owner_epoch, w.version), (1 + threads * per_thread, 1 + threads * per_thread));
}

#[test]
fn in_memory_stores_are_private() {
    let mut a = SqliteStore::open_in_memory().unwrap();
    let mut b = SqliteStore::open_in_memory().unwrap();
    applied(a.acquire_lease(L, id(1), None, 100, 0));
    assert_eq!(read(&mut b, L), None);
}
