//! The pool's shutdown: idle workers retired, busy ones left to the
//! reapers, new sessions refused.

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
