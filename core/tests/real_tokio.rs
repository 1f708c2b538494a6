//! Core on the real tokio runtime (built without `--cfg madsim`): a store
//! call that the database stalls must not stall the caller's timers. Runs
//! with the live build:
//!
//! ```sh
//! RUSTFLAGS= cargo test -p haywire-core --target-dir target/live --test real_tokio
//! ```
//!
//! Under the simulator (plain `cargo test`) this file is empty: madsim's
//! time is virtual, so a blocked thread is the one thing it cannot show.
#![cfg(not(madsim))]

use haywire_core::lease::{LeaseCoordinator, NoWork};
use haywire_core::store::{LocalStore, SqliteStore};
use haywire_core::{CoreEvent, InstanceId, LeaseConfig, Mutants, Observer, SystemClock};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records what the coordinator said, and when (since the test began).
struct Recorder {
    log: Arc<Mutex<Vec<(Duration, CoreEvent)>>>,
    origin: Instant,
}

impl Observer for Recorder {
    fn observe(&self, e: CoreEvent) {
        self.log.lock().unwrap().push((self.origin.elapsed(), e));
    }
}

fn temp_db(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("haywire-real-tokio-{tag}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
    p
}

/// Another process takes SQLite's write lock on the lease's database for
/// longer than the renew deadline; the holder's renew waits on SQLite's
/// busy timeout (5 s). The holder must still step down at its deadline,
/// not when SQLite gives up: on a current-thread runtime a store call run
/// inline would freeze every timer of the replica with it.
#[tokio::test(flavor = "current_thread")]
async fn a_renew_stalled_by_the_database_still_steps_down_at_the_deadline() {
    let path = temp_db("stall");
    let cfg = LeaseConfig {
        name: "leader".into(),
        ttl_ms: 10_000,
        renew_interval_ms: 500,
        renew_deadline_ms: 2_000,
        retry_period_ms: 500,
        rpc_timeout_ms: 1_000,
        release_timeout_ms: 1_000,
        ..LeaseConfig::default()
    };
    haywire_core::ReplicaConfig { lease: cfg.clone(), ..Default::default() }.validate().expect("safe lease timings");
    let clock = SystemClock::new();
    let store = Arc::new(LocalStore::new(SqliteStore::open(&path).expect("open sqlite file"), clock.clone()));
    let origin = Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let obs = Arc::new(Recorder { log: log.clone(), origin });
    let coordinator =
        LeaseCoordinator::new(InstanceId(1), cfg.clone(), Mutants::none(), store, Arc::new(clock), Arc::new(NoWork), obs);
    let (stop_tx, stop_rx) = haywire_core::signal::channel(false);
    let run = tokio::spawn(coordinator.run(stop_rx));

    let seen = |pred: &dyn Fn(&CoreEvent) -> bool| log.lock().unwrap().iter().find(|(_, e)| pred(e)).map(|(t, _)| *t);
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen(&|e| matches!(e, CoreEvent::LeaseRenewed { .. })).is_none() {
        assert!(Instant::now() < deadline, "no renew within 10 s: {:?}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The other process: SQLite's write lock, held on a thread of its own.
    let locked_at = origin.elapsed();
    let p = path.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&p).expect("second connection");
        c.execute_batch("BEGIN EXCLUSIVE").expect("take the write lock");
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(6_500));
        c.execute_batch("COMMIT").expect("release the write lock");
    });
    locked_rx.recv().unwrap();

    let down_by = Instant::now() + Duration::from_secs(8);
    let stepped = loop {
        if let Some(t) = seen(&|e| matches!(e, CoreEvent::SteppedDown { .. })) {
            break t;
        }
        assert!(Instant::now() < down_by, "no step-down 8 s into the stall: {:?}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let last_renew = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, e)| *t <= locked_at + Duration::from_millis(50) && matches!(e, CoreEvent::LeaseRenewed { .. }))
        .map(|(t, _)| *t)
        .last()
        .expect("a renew before the stall");
    // The deadline runs from the last confirmed renew's *send*, which was
    // before its confirmation: stepping down by confirmation + deadline +
    // slack is in time; SQLite's 5 s busy timeout would be far past it.
    let bound = last_renew + Duration::from_millis(cfg.renew_deadline_ms + 300);
    assert!(stepped <= bound, "stepped down at {stepped:?}, the deadline bound was {bound:?} (stall began {locked_at:?})");
    let reason = log.lock().unwrap().iter().find_map(|(_, e)| match e {
        CoreEvent::SteppedDown { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("Deadline"));

    let _ = stop_tx.send(true);
    holder.join().unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
