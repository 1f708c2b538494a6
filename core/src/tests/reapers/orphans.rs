//! Orphans: the workers of a dead instance (field report 002; and the
//! OrphansNotReapedByFallback mutant), and orphan pods and secrets, whose
//! passes each keep their own deadline (and the SharedReaperDeadline mutant
//! does not) and judge ages at the view's time.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::clock::Millis;
use crate::cluster::ClusterRequest;
use crate::config::FleetConfig;
use crate::mutants::{Mutant, Mutants};
use crate::registry::live_instances;
use crate::worker::pool::deployment_selector;
use crate::worker::{Gate, WorkerState};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A (one busy worker, one idle) stops heartbeating at 0; B heartbeats and
/// runs its fallback pass at 45 s. Returns the harness, A's pool and ids
/// (busy, idle), and B's idle worker.
async fn dead_instance_world(b_mutants: Mutants) -> (Harness, Arc<TPool>, [String; 2], String) {
    let w = Harness::new();
    let c = FleetConfig { hot_idle_ttl_ms: DAY, ..cfg() };
    let pool_a = w.pool(A, &c, Mutants::none());
    let pool_b = w.pool_on(B, w.client(), &c, Mutants::none());
    let reapers_b = w.reapers(&pool_b, w.client(), &c, b_mutants);
    w.beat(A).await;
    let beats_b = w.heartbeats(B, &c);
    let busy = pool_a.acquire("org", 1).await.unwrap();
    let idle = idle_worker(&pool_a, "org", 2).await;
    // Another org: B would claim A's idle worker of the same org.
    let b_idle = idle_worker(&pool_b, "b-org", 3).await;
    assert_eq!(w.slots().len(), 3);

    w.at(c.dead_after_ms + 15_000).await;
    let live = live_instances(&w.instances(), w.now(), c.dead_after_ms);
    assert_eq!(live.into_iter().collect::<Vec<_>>(), vec![B]);
    reapers_b.fallback_pass().await;
    beats_b.send(true).unwrap();
    (w, pool_a, [busy, idle], b_idle)
}

#[madsim::test]
async fn fallback_reaper_reaps_workers_of_a_dead_instance() {
    let (w, pool_a, a_ids, b_idle) = dead_instance_world(Mutants::none()).await;
    for id in &a_ids {
        assert_gone(&w, id, WorkerState::Lost);
        let r = w.row(id);
        assert_eq!((r.owner, r.owner_epoch), (B, 2), "claimed by B, ended in the same CAS");
    }
    let b = w.row(&b_idle);
    assert_eq!(b.state, WorkerState::HotIdle);
    assert!(w.has_pod(&b.pod));
    assert_eq!(w.slots(), vec![b_idle.clone()]);

    // A was only partitioned (a zombie): its late writes are fenced out and
    // nothing is resurrected.
    pool_a.release(1).await.unwrap();
    assert!(pool_a.acquire("org", 4).await.is_ok());
    for id in &a_ids {
        assert_eq!(w.row(id).state, WorkerState::Lost);
        assert!(owned(&pool_a, id).is_none(), "the zombie forgot {id}");
    }
}

/// A dead owner's session worker (hot, bound to a session) waits out the
/// resume window after the death, for its client to reconnect through
/// another replica (docs/design.md §2.5); its idle worker does not.
#[madsim::test]
async fn a_dead_owners_session_worker_waits_out_the_resume_window() {
    let w = Harness::new();
    let c = FleetConfig { hot_idle_ttl_ms: DAY, resume_window_ms: 60_000, ..cfg() };
    let pool_a = w.pool(A, &c, Mutants::none());
    let pool_b = w.pool_on(B, w.client(), &c, Mutants::none());
    let reapers_b = w.reapers(&pool_b, w.client(), &c, Mutants::none());
    w.beat(A).await;
    let busy = pool_a.acquire("org", 1).await.unwrap();
    let idle = idle_worker(&pool_a, "org", 2).await;
    w.at(c.dead_after_ms + 15_000).await;
    w.beat(B).await;
    reapers_b.fallback_pass().await;
    assert_gone(&w, &idle, WorkerState::Lost);
    assert_eq!(w.row(&busy).state, WorkerState::Hot, "kept for its client to reconnect");
    w.at(c.dead_after_ms + c.resume_window_ms + 1_000).await;
    w.beat(B).await;
    reapers_b.fallback_pass().await;
    assert_gone(&w, &busy, WorkerState::Lost);
}

#[madsim::test]
async fn mutant_orphans_not_reaped_by_fallback_leaves_them() {
    let (w, _, [busy, idle], _) = dead_instance_world(Mutants::only(Mutant::OrphansNotReapedByFallback)).await;
    assert_eq!(w.row(&busy).state, WorkerState::Hot);
    assert_eq!(w.row(&idle).state, WorkerState::HotIdle);
    assert!(w.has_pod(&w.row(&busy).pod) && w.has_pod(&w.row(&idle).pod));
    assert_eq!(w.slots().len(), 3, "slots of a dead instance leak");
}

/// The worker pod list takes longer than the orphan pass deadline. The
/// orphan-pod pass fails on its deadline; the secret pass, on its own
/// deadline, still deletes its orphan in the same janitor pass. With one
/// shared deadline, pods first, the secret pass never runs.
#[madsim::test]
async fn a_slow_pod_list_does_not_starve_the_secret_pass() {
    for (mutants, reaped) in [(Mutants::none(), true), (Mutants::only(Mutant::SharedReaperDeadline), false)] {
        let w = Harness::new();
        let c = cfg();
        let (_pool, reapers) = w.pool_and_reapers(&c, mutants.clone());
        let epoch = w.hold_lease(A).await;
        w.create_secret("secret-orphan", &c.deployment, "pod-crashed");
        w.create_pod("pod-orphan", deployment_selector(&c.deployment));
        w.at(c.orphan_min_age_ms + 10_000).await;
        w.beat(A).await;
        w.cluster.slow(c.orphan_pass_deadline_ms + 2_000, Some(1), is_worker_pod_list);
        let started = w.now();
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert!(w.now() < started + c.orphan_pass_deadline_ms * 2 + 1_000, "each pass bounded: {}", w.now() - started);
        assert!(w.has_pod("pod-orphan"), "the pod pass did not get its list in time");
        assert_eq!(!w.has_secret("secret-orphan"), reaped, "{mutants:?}: {:?}", w.secrets());
        // The pod pass fails on its deadline; with the shared deadline the
        // secret pass is left none and fails without starting.
        let failures = w.log.reap_failures(A);
        assert_eq!(failures.len(), if reaped { 1 } else { 2 }, "{failures:?}");
        assert_eq!((failures[0].0, failures[0].1), ("janitor", "orphan-pods"));
        assert!(failures.iter().all(|f| f.2.contains("pass deadline")), "{failures:?}");
        if !reaped {
            assert_eq!((failures[1].0, failures[1].1), ("janitor", "orphan-secrets"));
        }
        assert_eq!(reapers.janitor_last_ok.load(Ordering::SeqCst), 0, "a failed pass is not stamped");

        // The list is fast again: the next pass deletes what is left.
        w.beat(A).await;
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert!(!w.has_pod("pod-orphan") && !w.has_secret("secret-orphan"));
    }
}

/// The janitor's worker list is slow (committed at 40 s, its reply 40 s
/// later). A pod and a secret made at 45 s, after the view, are 35 s old by
/// the cluster's clock when listed, past the 30 s minimum age, but younger
/// than the view: kept. Ones made at 5 s are reaped in the same pass.
#[madsim::test]
async fn orphan_ages_are_judged_at_the_views_time() {
    let w = Harness::new();
    let c = FleetConfig { call_timeout_ms: 60_000, orphan_pass_deadline_ms: 60_000, ..cfg() };
    let (_pool, reapers) = w.pool_and_reapers(&c, Mutants::none());
    let epoch = w.hold_lease(A).await;
    w.at(5_000).await;
    w.create_secret("secret-old", &c.deployment, "pod-gone");
    w.create_pod("pod-old", deployment_selector(&c.deployment));
    w.at(40_000).await;
    w.beat(A).await;
    w.store.slow_replies(40_000, is_op("list_workers"));
    let pass = spawn_janitor_pass(&reapers, epoch);
    w.at(45_000).await;
    w.create_secret("secret-late", &c.deployment, "pod-unborn");
    w.create_pod("pod-late", deployment_selector(&c.deployment));
    pass.await.unwrap();
    let listed: Vec<Millis> = w
        .cluster
        .calls()
        .into_iter()
        .filter(|(_, r)| matches!(r, ClusterRequest::ListSecrets { .. }) || is_worker_pod_list(r))
        .map(|(t, _)| t)
        .collect();
    assert!(!listed.is_empty() && listed.iter().all(|t| *t >= 45_000 + c.orphan_min_age_ms), "listed at {listed:?}");
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    assert!(!w.has_secret("secret-old") && !w.has_pod("pod-old"), "older than the view less the age: reaped");
    assert!(w.has_secret("secret-late"), "made after the view: kept ({:?})", w.secrets());
    assert!(w.has_pod("pod-late"), "made after the view: kept ({:?})", w.pods());
}
