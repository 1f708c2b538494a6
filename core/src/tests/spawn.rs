//! A spawn that fails before its pod runs frees its slot on the spot (and
//! the SlotLeakOnSpawnFailure mutant keeps it), and creates nothing when its
//! row cannot be written (field report 002). Failures during activation are
//! in `activation.rs`.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::cluster::Labels;
use crate::config::FleetConfig;
use crate::mutants::{Mutant, Mutants};
use crate::worker::{PoolError, WorkerState};

async fn spawn_fails_on_existing_pod(mutants: Mutants) -> Harness {
    let w = Harness::new();
    let pool = w.pool(A, &cfg(), mutants);
    // Worker ids are `w<instance>.<n>`: the first spawn's pod name is taken.
    w.create_pod("pod-w1.1", Labels::new());
    let err = pool.acquire("org", 1).await.unwrap_err();
    assert!(matches!(&err, PoolError::SpawnFailed(m) if m.contains("create pod") && m.contains("already exists")), "{err:?}");
    let r = w.row("w1.1");
    assert_eq!(r.state, WorkerState::Retired);
    assert!(!w.has_secret(&r.secret), "secret deleted: {:?}", w.secrets());
    assert!(pool.owned().is_empty());
    assert_eq!(w.log.spawn_failures(A).len(), 1);
    w
}

#[madsim::test]
async fn failed_spawn_frees_its_slot_at_once() {
    let w = spawn_fails_on_existing_pod(Mutants::none()).await;
    assert!(w.slots().is_empty(), "slot freed right after the failure: {:?}", w.slots());
}

#[madsim::test]
async fn mutant_slot_leak_on_spawn_failure_keeps_the_slot() {
    let w = spawn_fails_on_existing_pod(Mutants::only(Mutant::SlotLeakOnSpawnFailure)).await;
    assert_eq!(w.slots(), vec!["w1.1".to_string()], "the slot leaks until the slow sweep");
}

/// A failed row insert: the slot is freed and nothing is created in the
/// cluster; the next spawn (store healed) succeeds.
#[madsim::test]
async fn failed_row_insert_frees_the_slot_and_creates_nothing() {
    let w = Harness::new();
    let c = FleetConfig { org_cap: 1, ..cfg() };
    let pool = w.pool(A, &c, Mutants::none());
    w.store.fail_all(is_op("insert_worker"));
    for s in 1..=3 {
        let err = pool.acquire("org", s).await.unwrap_err();
        assert!(matches!(&err, PoolError::SpawnFailed(m) if m.contains("insert worker")), "{err:?}");
        assert!(w.slots().is_empty(), "org_cap 1 would refuse the next spawn if the slot leaked");
    }
    assert!(w.rows().is_empty() && w.pods().is_empty() && w.secrets().is_empty());
    w.store.heal();
    assert_eq!(pool.acquire("org", 4).await.unwrap(), "w1.4");
}
