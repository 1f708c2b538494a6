//! The pool's shutdown: idle workers retired (one whose park did not land
//! among them), busy ones left to the reapers, new sessions refused.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::mutants::Mutants;
use crate::worker::{PoolError, WorkerState};

#[madsim::test]
async fn pool_shutdown_retires_idle_workers_and_keeps_busy_ones() {
    let w = Harness::new();
    let pool = w.pool(A, &cfg(), Mutants::none());
    let idle = idle_worker(&pool, "org", 1).await;
    let busy = pool.acquire("other-org", 2).await.unwrap();
    pool.shutdown().await;
    assert_gone(&w, &idle, WorkerState::Retired);
    let r = w.row(&busy);
    assert_eq!(r.state, WorkerState::Hot, "a busy worker is left to the reapers");
    assert!(w.has_pod(&r.pod));
    assert_eq!(pool.acquire("org", 3).await, Err(PoolError::ShuttingDown));
}

/// A session ended here while the store was failing, so its worker's park
/// never landed: the row is still hot and bound to the ended session, and
/// memory knows the session is over. Shutdown retires it with the idle
/// ones; left hot, the reapers would wait out the resume window for a
/// client that is gone (chaos seed 612: L2 after the quiet period).
#[madsim::test]
async fn pool_shutdown_retires_a_worker_whose_park_did_not_land() {
    let w = Harness::new();
    let pool = w.pool(A, &cfg(), Mutants::none());
    let id = pool.acquire("org", 1).await.unwrap();
    w.store.fail_next(crate::worker::pool::WRITE_TRIES, is_park);
    pool.release(1).await.unwrap();
    let r = w.row(&id);
    assert_eq!((r.state, r.session), (WorkerState::Hot, Some(1)), "the park did not land");
    assert_eq!(owned(&pool, &id).map(|o| (o.0, o.2)), Some((WorkerState::Hot, None)), "memory: the session is over");
    pool.shutdown().await;
    assert_gone(&w, &id, WorkerState::Retired);
}
