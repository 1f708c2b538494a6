//! The per-org and fleet-wide caps on workers.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::config::FleetConfig;
use crate::mutants::Mutants;
use crate::worker::PoolError;

#[madsim::test]
async fn org_and_global_caps_are_enforced() {
    let w = Harness::new();
    let c = FleetConfig { org_cap: 2, global_cap: 3, ..cfg() };
    let pool = w.pool(A, &c, Mutants::none());
    let a1 = pool.acquire("a", 1).await.unwrap();
    pool.acquire("a", 2).await.unwrap();
    assert_eq!(pool.acquire("a", 3).await, Err(PoolError::AtCapacity("org a".into())));
    pool.acquire("b", 4).await.unwrap();
    assert_eq!(pool.acquire("c", 5).await, Err(PoolError::AtCapacity("fleet".into())));
    assert_eq!(w.slots().len(), 3);
    assert_eq!(w.rows().len(), 3, "a refused spawn leaves no row");
    // A parked worker keeps its slot, and serves the org's next session.
    pool.release(1).await.unwrap();
    assert_eq!(pool.acquire("a", 6).await, Ok(a1));
    assert_eq!(pool.acquire("b", 7).await, Err(PoolError::AtCapacity("fleet".into())));
    assert_eq!(pool.release(99).await, Err(PoolError::UnknownSession(99)));
}
