//! Health checks (docs/design.md §2.6, field report 004): the pool marks a
//! worker whose pod died lost and tells its client (and the NoHealthCheck
//! mutant serves it again); the janitor does the same for a live peer's.
//! A health claim racing a park is in `races.rs`.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::cluster::ClusterRequest;
use crate::mutants::{Mutant, Mutants};
use crate::worker::{Gate, PoolError, WorkerState};

/// A worker serving session 1 whose pod then dies: the pool's health check
/// marks it lost, the session's watch ends with the reason, the pod and
/// secret go and the slot is freed; the worker is never served again.
#[madsim::test]
async fn health_check_marks_a_dead_pod_lost_and_tells_its_client() {
    let w = Harness::new();
    let pool = w.pool(A, &cfg(), Mutants::none());
    let id = pool.acquire("org", 1).await.expect("acquire");
    let watch = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.watch(1).await })
    };
    pool.health_check().await;
    assert_eq!(w.row(&id).state, WorkerState::Hot, "a running pod is alive");
    assert!(!watch.is_finished());
    let pod = w.row(&id).pod;
    assert!(w.cluster.with(|c| c.fail_pod(&pod)));
    pool.health_check().await;
    assert_gone(&w, &id, WorkerState::Lost);
    let told = watch.await.unwrap();
    assert_eq!(told, PoolError::SessionEnded(format!("worker {id} lost: its pod {pod} failed")));
    assert!(!pool.owns(&id));
    assert_eq!(pool.release(1).await, Err(PoolError::UnknownSession(1)));
    // The next session gets a new worker.
    let next = pool.acquire("org", 2).await.expect("acquire");
    assert_ne!(next, id);
}

/// A hot-idle worker whose pod vanished is lost too; with the mutant it
/// stays and is handed to the next session.
#[madsim::test]
async fn health_check_finds_vanished_pods_and_the_mutant_does_not() {
    for (mutants, caught) in [(Mutants::none(), true), (Mutants::only(Mutant::NoHealthCheck), false)] {
        let w = Harness::new();
        let pool = w.pool(A, &cfg(), mutants);
        let id = idle_worker(&pool, "org", 1).await;
        let pod = w.row(&id).pod;
        w.cluster.with(|c| c.apply(&ClusterRequest::DeletePod { name: pod.clone() }, 0)).unwrap();
        pool.health_check().await;
        let again = pool.acquire("org", 2).await.expect("acquire");
        if caught {
            assert_gone(&w, &id, WorkerState::Lost);
            assert_ne!(again, id, "a dead worker is never served again");
        } else {
            assert_eq!(again, id, "the mutant serves the dead worker");
        }
    }
}

/// The janitor's fleet-wide health check takes over a live peer's worker
/// whose pod failed and marks it lost; the peer's session ends with an
/// error once its own pool notices it is no longer its worker.
#[madsim::test]
async fn janitor_marks_a_live_peers_dead_worker_lost() {
    let w = Harness::new();
    let c = cfg();
    let peer = w.pool(B, &c, Mutants::none());
    let janitor_pool = w.pool(A, &c, Mutants::none());
    let reapers = w.reapers(&janitor_pool, w.store.clone(), &c, Mutants::none());
    let id = peer.acquire("org", 1).await.expect("acquire");
    let watch = {
        let peer = peer.clone();
        tokio::spawn(async move { peer.watch(1).await })
    };
    let epoch = w.hold_lease(A).await;
    w.beat(A).await;
    w.beat(B).await;
    assert!(w.cluster.with(|k| k.fail_pod(&format!("pod-{id}"))));
    reapers.janitor_pass(&Gate::none(), epoch).await;
    let r = w.row(&id);
    assert_eq!((r.state, r.owner), (WorkerState::Lost, A), "{r:?}");
    assert_gone(&w, &id, WorkerState::Lost);
    // The peer finds out at its next upkeep (its refresh is fenced out).
    peer.maintain().await;
    assert!(matches!(watch.await.unwrap(), PoolError::SessionEnded(_)));
    assert!(!peer.owns(&id));
}
