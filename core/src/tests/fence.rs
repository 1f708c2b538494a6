//! Fencing: a stale owner's write is rejected once the janitor claimed its
//! worker (field report 004), and a replica that fenced itself ends its
//! sessions and calls nothing more. The heartbeat that decides to fence is
//! in `registry.rs`.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::clock::Millis;
use crate::config::ReplicaConfig;
use crate::store::{Store, StoreReply, StoreRequest, WorkerCas, WorkerReject};
use crate::worker::{PoolError, WorkerState};
use std::time::Duration;

#[madsim::test]
async fn janitor_claim_fences_out_the_original_owner() {
    let w = Harness::new();
    let c = cfg();
    // The janitor on another replica; its claim is slow to answer, so the
    // pool acts while the janitor is mid-take.
    let IdleUnderJanitor { pool, id: idle, jstore, janitor, epoch, .. } = w.idle_worker_under_janitor(&c).await;
    jstore.slow_replies(500, is_op("claim_worker"));

    w.past_idle_ttl(&c).await;
    let pass = spawn_janitor_pass(&janitor, epoch);
    w.sleep(100).await;
    let r = w.row(&idle);
    assert_eq!(
        (r.state, r.owner, r.owner_epoch),
        (WorkerState::Draining, J, 2),
        "claimed and moved to draining in the one CAS, not yet retired"
    );

    // The original owner's reuse is rejected as stale: it spawns instead.
    let next = pool.acquire("org", 2).await.unwrap();
    assert_ne!(next, idle);
    assert!(owned(&pool, &idle).is_none());
    // So is any other write at the old epoch.
    let stale = StoreRequest::UpdateWorker {
        id: idle.clone(),
        owner: A,
        epoch: 1,
        from: WorkerState::HotIdle,
        to: WorkerState::Hot,
        session: Some(3),
        fence: None,
    };
    match w.store.call(stale).await.unwrap() {
        StoreReply::Worker(WorkerCas::Rejected { reason, .. }) => assert_eq!(reason, WorkerReject::StaleOwner),
        other => panic!("stale write applied: {other:?}"),
    }

    pass.await.unwrap();
    assert_gone(&w, &idle, WorkerState::Retired);
    assert_eq!(w.row(&next).state, WorkerState::Hot);
    // Owner epochs only grow, across both clients' writes in time order.
    let mut seen: Vec<(Millis, u64)> = epochs_seen(&w.store, &idle);
    seen.extend(epochs_seen(&jstore, &idle));
    seen.sort_by_key(|(at, _)| *at);
    assert!(seen.windows(2).all(|p| p[0].1 <= p[1].1), "{seen:?}");
    assert_eq!(seen.first().map(|s| s.1), Some(1));
    assert_eq!(seen.last().map(|s| s.1), Some(2));
}

/// A replica that fences itself ends its sessions with an error, refuses
/// new ones, and sends nothing more to the store or the cluster.
#[madsim::test]
async fn a_fenced_replica_ends_its_sessions_and_makes_no_more_calls() {
    let w = Harness::new();
    let mut config = ReplicaConfig::default();
    config.fleet = cfg();
    let store = w.client();
    let replica = w.replica(A, config, store.clone()).unwrap();
    let sessions = replica.sessions();
    let id = sessions.acquire("org".into(), 1).await.expect("acquire");
    let watch = {
        let sessions = sessions.clone();
        tokio::spawn(async move { sessions.watch(1).await })
    };
    w.sleep(1_000).await;
    // Cut off from the store: the heartbeat cannot be confirmed.
    store.fail_all(|_| true);
    let fenced = replica.fenced();
    tokio::time::timeout(Duration::from_millis(cfg().dead_after_ms), fenced).await.expect("fenced before the dead threshold");
    assert_eq!(watch.await.unwrap(), PoolError::Fenced);
    assert_eq!(sessions.acquire("org".into(), 2).await, Err(PoolError::Fenced));
    store.heal();
    let (calls, pods) = (store.calls().len(), w.pods());
    w.sleep(3 * cfg().reap_interval_ms).await;
    assert_eq!(store.calls().len(), calls, "no store call after the fence: {:?}", &store.calls()[calls..]);
    assert_eq!(w.pods(), pods);
    assert_eq!(w.row(&id).owner, A);
    drop(replica);
}
