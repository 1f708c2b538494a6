//! The bare-madsim baseline (issue 14): haywire's node layout and message
//! pattern with nothing of haywire in it. Three replica nodes send
//! request/reply calls, each bounded by a timeout as core bounds its own, to
//! a store node that applies one compare-and-set in an in-memory SQLite
//! database (each replica moves its own row's epoch forward, as a renewal
//! does) and replies with the new epoch. No core, no oracle, no trace:
//! what the simulator itself costs per store request, the floor haywire's
//! per-request and per-event costs are quoted against. The same calls to a
//! `BTreeMap` instead ([`Backend::BTreeMap`]) give the simulator's own
//! share, to set beside haywire on its reference-model store
//! (docs/design.md §12, "Against bare madsim").

use madsim::net::Endpoint;
use rusqlite::{params, Connection};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const STORE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 5000);
const REQUEST_TAG: u64 = 1;
pub const REPLICAS: u64 = 3;
/// Requests each replica makes per seed.
pub const REQUESTS_PER_REPLICA: u64 = 1_000;

struct Cas {
    reply_tag: u64,
    holder: u64,
    expect: i64,
}

/// What the store node applies each CAS to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An in-memory SQLite database, one `UPDATE ... RETURNING` a request.
    Sqlite,
    /// A `BTreeMap` of epochs: the simulator's cost alone.
    BTreeMap,
}

/// The store node's rows: each replica's epoch.
enum Rows {
    Sqlite(Connection),
    BTreeMap(BTreeMap<u64, i64>),
}

impl Rows {
    fn new(backend: Backend) -> Rows {
        match backend {
            Backend::Sqlite => {
                let db = Connection::open_in_memory().expect("sqlite opens");
                db.execute_batch("CREATE TABLE leases (holder INTEGER PRIMARY KEY, epoch INTEGER NOT NULL)").expect("schema");
                for i in 0..REPLICAS {
                    db.execute("INSERT INTO leases VALUES (?1, 0)", params![i as i64]).expect("row");
                }
                Rows::Sqlite(db)
            }
            Backend::BTreeMap => Rows::BTreeMap((0..REPLICAS).map(|i| (i, 0)).collect()),
        }
    }

    /// Move `holder`'s epoch forward if it is still `expect`: the new epoch,
    /// or `None` if it had moved.
    fn cas(&mut self, holder: u64, expect: i64) -> Option<i64> {
        match self {
            Rows::Sqlite(db) => {
                let mut stmt = db
                    .prepare_cached("UPDATE leases SET epoch = epoch + 1 WHERE holder = ?1 AND epoch = ?2 RETURNING epoch")
                    .expect("statement");
                stmt.query_row(params![holder as i64, expect], |r| r.get(0)).ok()
            }
            Rows::BTreeMap(rows) => {
                let epoch = rows.get_mut(&holder).filter(|e| **e == expect)?;
                *epoch += 1;
                Some(*epoch)
            }
        }
    }
}

/// One seed of the baseline on a fresh thread (as haywire runs a seed):
/// the number of requests the store applied.
pub fn seed(seed: u64, backend: Backend) -> u64 {
    std::thread::spawn(move || run(seed, backend)).join().expect("baseline seed ran")
}

fn run(seed: u64, backend: Backend) -> u64 {
    let mut config = madsim::Config::default();
    // Inside the range haywire's scenarios draw from (1 ms to 2–20 ms).
    config.net.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, config);
    rt.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        handle.create_node().name("store").ip(STORE.ip()).init(move || store(backend)).build();
        let mut replicas = Vec::new();
        for i in 0..REPLICAS {
            let node = handle.create_node().name(format!("r{}", i + 1)).ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8 + 1))).build();
            replicas.push(node.spawn(replica(i)));
        }
        let mut applied = 0;
        for r in replicas {
            applied += r.await.expect("replica task finished");
        }
        applied
    })
}

async fn store(backend: Backend) {
    let ep = Endpoint::bind(STORE).await.expect("store binds");
    let mut rows = Rows::new(backend);
    loop {
        let Ok((payload, from)) = ep.recv_from_raw(REQUEST_TAG).await else { continue };
        let Ok(cas) = payload.downcast::<Cas>() else { continue };
        let epoch = rows.cas(cas.holder, cas.expect);
        let ep = ep.clone();
        // A reply in its own task, as haywire's RPC server sends it.
        madsim::task::spawn(async move {
            let _ = ep.send_to_raw(from, cas.reply_tag, Box::new(epoch)).await;
        });
    }
}

/// A replica: CAS its row forward, taking the epoch from each reply, with
/// a short think time between calls so timers fire as renewals do.
async fn replica(i: u64) -> u64 {
    let ep = Endpoint::bind("0.0.0.0:0").await.expect("replica binds");
    let mut next_tag = 1 << 16;
    let (mut expect, mut applied) = (0i64, 0u64);
    for _ in 0..REQUESTS_PER_REPLICA {
        next_tag += 1;
        let cas = Cas { reply_tag: next_tag, holder: i, expect };
        if ep.send_to_raw(STORE, REQUEST_TAG, Box::new(cas)).await.is_err() {
            continue;
        }
        let reply = madsim::time::timeout(Duration::from_secs(1), ep.recv_from_raw(next_tag)).await;
        if let Ok(Ok((payload, _))) = reply {
            if let Ok(Some(epoch)) = payload.downcast::<Option<i64>>().map(|b| *b) {
                expect = epoch;
                applied += 1;
            }
        }
        madsim::time::sleep(Duration::from_millis(20)).await;
    }
    applied
}
