//! Sessions across replicas (docs/design.md §2.5, field report 003): the
//! shared idle pool, reconnect with a takeover recheck, and the bounded
//! drain. Each review finding's mutant runs the same case as the correct
//! code, to show the case is what catches it.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::mutants::{Mutant, Mutants};
use crate::config::FleetConfig;
use crate::worker::{PoolError, WorkerState};

/// A session `session` of `org` served by `pool`, its instance registered.
async fn serving(w: &Harness, pool: &TPool, org: &str, session: u64) -> String {
    w.beat(pool.instance()).await;
    pool.acquire(org, session).await.expect("acquire")
}

/// Past the dead threshold of every instance's last heartbeat (at 0).
async fn all_dead(w: &Harness) {
    w.at(cfg().dead_after_ms + 1_000).await;
}

/// Another replica serving the org claims A's idle worker (one CAS that
/// bumps the owner epoch) instead of spawning; A's next write about it is
/// refused and A drops it.
#[madsim::test]
async fn an_idle_worker_is_claimed_across_replicas_and_its_former_owner_drops_it() {
    let w = Harness::new();
    let (a, b) = (w.pool(A, &cfg(), Mutants::none()), w.pool(B, &cfg(), Mutants::none()));
    let idle = idle_worker(&a, "org", 1).await;
    let epoch = w.row(&idle).owner_epoch;
    assert_eq!(b.acquire("org", 2).await, Ok(idle.clone()), "claimed, not spawned");
    let row = w.row(&idle);
    assert_eq!((row.owner, row.owner_epoch, row.state, row.session), (B, epoch + 1, WorkerState::Hot, Some(2)));
    assert!(a.owns(&idle), "A does not know yet");
    a.maintain().await;
    assert!(!a.owns(&idle), "A's refresh was refused: it dropped the worker");
    assert_eq!(w.row(&idle).owner, B);
    // A spawns for its next session rather than reuse what it lost.
    assert_ne!(a.acquire("org", 3).await.expect("acquire"), idle);
}

/// Two replicas claim one idle worker at once: exactly one wins, the other
/// spawns.
#[madsim::test]
async fn of_two_replicas_claiming_one_idle_worker_exactly_one_wins() {
    let w = Harness::new();
    let a = w.pool(A, &cfg(), Mutants::none());
    let (b, c) = (w.pool(B, &cfg(), Mutants::none()), w.pool(C, &cfg(), Mutants::none()));
    let idle = idle_worker(&a, "org", 1).await;
    let (got_b, got_c) = tokio::join!(b.acquire("org", 2), c.acquire("org", 3));
    let (got_b, got_c) = (got_b.expect("b"), got_c.expect("c"));
    assert_ne!(got_b, got_c);
    assert!(got_b == idle || got_c == idle, "one of them claimed it");
    let winner = if got_b == idle { B } else { C };
    assert_eq!(w.row(&idle).owner, winner);
    assert_eq!(w.row(&idle).owner_epoch, 2, "one claim landed");
}

/// A reconnect through another replica is refused while the session's
/// owner is alive and not draining; the row does not move.
#[madsim::test]
async fn a_reconnect_is_refused_while_the_owner_lives() {
    let w = Harness::new();
    let (a, b) = (w.pool(A, &cfg(), Mutants::none()), w.pool(B, &cfg(), Mutants::none()));
    let id = serving(&w, &a, "org", 1).await;
    let before = w.row(&id);
    assert_eq!(b.reconnect(1).await, Err(PoolError::OwnerAlive(A)));
    assert_eq!(w.row(&id), before);
    assert!(PoolError::OwnerAlive(A).reconnectable(), "the client may try again, or reconnect to its owner");
    // Through its own replica it simply goes on.
    assert_eq!(a.reconnect(1).await, Ok(id));
}

/// Finding 4's mutant: the takeover trusts the client's word that its
/// replica went away, and takes a live owner's session.
#[madsim::test]
async fn without_the_recheck_a_live_owners_session_is_taken() {
    let w = Harness::new();
    let a = w.pool(A, &cfg(), Mutants::none());
    let b = w.pool(B, &cfg(), Mutants::only(Mutant::TakeoverNoLivenessRecheck));
    let id = serving(&w, &a, "org", 1).await;
    assert_eq!(b.reconnect(1).await, Ok(id.clone()));
    assert_eq!(w.row(&id).owner, B, "taken from a live owner");
}

/// The owner died: the reconnect takes the same worker over with an epoch
/// bump and the session goes on there, still bound to it.
#[madsim::test]
async fn a_session_survives_its_owners_death_on_the_same_worker() {
    let w = Harness::new();
    let (a, b) = (w.pool(A, &cfg(), Mutants::none()), w.pool(B, &cfg(), Mutants::none()));
    let id = serving(&w, &a, "org", 1).await;
    let epoch = w.row(&id).owner_epoch;
    all_dead(&w).await;
    w.beat(B).await;
    assert_eq!(b.reconnect(1).await, Ok(id.clone()));
    let row = w.row(&id);
    assert_eq!((row.owner, row.owner_epoch, row.state, row.session), (B, epoch + 1, WorkerState::Hot, Some(1)));
    assert_eq!(b.reconnect(1).await, Ok(id.clone()), "asked again: served here already");
    b.release(1).await.expect("release");
    assert_eq!(w.row(&id).state, WorkerState::HotIdle, "the new owner parks it when the session ends");
}

/// Two reconnects of one session through two replicas at once, both
/// having read the row before either claims (their rechecks answer late):
/// exactly one wins, the other gets a clear error. Finding 2's mutant: the
/// loser claims again from the winner, and both answer.
#[madsim::test]
async fn two_simultaneous_reconnects_leave_exactly_one() {
    for (mutants, both) in [(Mutants::none(), false), (Mutants::only(Mutant::ReconnectRace), true)] {
        let w = Harness::new();
        let a = w.pool(A, &cfg(), Mutants::none());
        let (bstore, cstore) = (w.client(), w.client());
        bstore.slow_replies(500, is_op("list_instances"));
        cstore.slow_replies(600, is_op("list_instances"));
        let b = w.pool_on(B, bstore, &cfg(), mutants.clone());
        let c = w.pool_on(C, cstore, &cfg(), mutants);
        let id = serving(&w, &a, "org", 1).await;
        all_dead(&w).await;
        w.beat(B).await;
        w.beat(C).await;
        let (rb, rc) = tokio::join!(b.reconnect(1), c.reconnect(1));
        let won = [&rb, &rc].iter().filter(|r| r.as_ref().is_ok_and(|got| *got == id)).count();
        if both {
            assert_eq!(won, 2, "the mutant answers both: {rb:?} {rc:?}");
        } else {
            assert_eq!(won, 1, "exactly one: {rb:?} {rc:?}");
            let lost = if rb.is_ok() { rc } else { rb };
            assert_eq!(lost, Err(PoolError::TakenOver(1)));
            assert!(PoolError::TakenOver(1).reconnectable(), "the client goes on through the winner");
            let row = w.row(&id);
            assert_eq!((row.state, row.session), (WorkerState::Hot, Some(1)), "no worker or session orphaned");
        }
    }
}

/// The worker's pod died while its owner was gone: the reconnect takes it
/// over, finds the pod dead, marks it lost and tells the client. Finding 5's
/// mutant tells the client only: the row still says the session goes on.
#[madsim::test]
async fn a_failed_reconnect_is_persisted() {
    for (mutants, persisted) in [(Mutants::none(), true), (Mutants::only(Mutant::ReconnectFailureNotPersisted), false)] {
        let w = Harness::new();
        let (a, b) = (w.pool(A, &cfg(), Mutants::none()), w.pool(B, &cfg(), mutants));
        let id = serving(&w, &a, "org", 1).await;
        all_dead(&w).await;
        w.beat(B).await;
        let pod = w.row(&id).pod;
        assert!(w.cluster.with(|k| k.fail_pod(&pod)));
        let got = b.reconnect(1).await;
        assert!(matches!(&got, Err(PoolError::SessionEnded(why)) if why.contains("is gone")), "{got:?}");
        assert!(!got.unwrap_err().reconnectable());
        if persisted {
            assert_gone(&w, &id, WorkerState::Lost);
        } else {
            let row = w.row(&id);
            assert_eq!((row.state, row.owner, row.session), (WorkerState::Hot, B, Some(1)), "the record lies");
        }
    }
}

/// A stopping replica takes no new session and no reconnect; sessions that
/// end within the drain timeout end normally, the rest are handed off when
/// it runs out (their rows untouched, the instance marked draining), and a
/// reconnect through another replica takes them over at once.
#[madsim::test]
async fn a_drain_is_bounded_and_hands_its_sessions_over() {
    let w = Harness::new();
    let c = FleetConfig { drain_timeout_ms: 5_000, ..cfg() };
    let (a, b) = (w.pool(A, &c, Mutants::none()), w.pool(B, &c, Mutants::none()));
    w.beat(B).await;
    let short = serving(&w, &a, "org", 1).await;
    let long = serving(&w, &a, "org", 2).await;
    let watch = {
        let a = a.clone();
        tokio::spawn(async move { a.watch(2).await })
    };
    let start = w.now();
    let drain = {
        let a = a.clone();
        tokio::spawn(async move { a.drain_sessions().await })
    };
    w.sleep(100).await;
    assert_eq!(a.acquire("org", 3).await, Err(PoolError::ShuttingDown));
    assert_eq!(a.reconnect(9).await, Err(PoolError::ShuttingDown));
    assert!(w.instances().iter().any(|r| r.id == A && r.draining));
    a.release(1).await.expect("a session that ends in time ends normally");
    assert_eq!(w.row(&short).state, WorkerState::HotIdle);
    drain.await.unwrap();
    let took = w.now() - start;
    assert!((5_000..5_500).contains(&took), "the drain waited its timeout, no more: {took} ms");
    assert_eq!(watch.await.unwrap(), PoolError::HandedOff);
    assert!(PoolError::HandedOff.reconnectable());
    let row = w.row(&long);
    assert_eq!((row.state, row.owner, row.session), (WorkerState::Hot, A, Some(2)), "handed over untouched");
    assert!(!a.owns(&long));
    assert_eq!(b.reconnect(2).await, Ok(long.clone()), "a draining owner's session is taken over at once");
    assert_eq!(w.row(&long).owner, B);
}

/// With no live session a drain returns at once and marks nothing.
#[madsim::test]
async fn a_drain_with_no_sessions_ends_at_once() {
    let w = Harness::new();
    let a = w.pool(A, &cfg(), Mutants::none());
    w.beat(A).await;
    let _idle = idle_worker(&a, "org", 1).await;
    let start = w.now();
    a.drain_sessions().await;
    assert_eq!(w.now(), start);
    assert!(w.instances().iter().all(|r| !r.draining));
}

/// Finding 8's mutant: the drain waits for a long session without bound.
#[madsim::test]
async fn drain_waits_forever_waits_for_the_session() {
    let w = Harness::new();
    let c = FleetConfig { drain_timeout_ms: 5_000, ..cfg() };
    let a = w.pool(A, &c, Mutants::only(Mutant::DrainWaitsForever));
    serving(&w, &a, "org", 1).await;
    let drain = {
        let a = a.clone();
        tokio::spawn(async move { a.drain_sessions().await })
    };
    w.sleep(60_000).await;
    assert!(!drain.is_finished(), "still waiting a minute later");
    a.release(1).await.expect("release");
    drain.await.unwrap();
}

/// Finding 9's mutant: a draining replica takes a reconnect (here, of a
/// dead owner's session).
#[madsim::test]
async fn a_draining_replica_refuses_reconnects_unless_the_mutant_ignores_it() {
    for (mutants, refused) in [(Mutants::none(), true), (Mutants::only(Mutant::ReconnectIgnoresDraining), false)] {
        let w = Harness::new();
        let (a, b) = (w.pool(A, &cfg(), Mutants::none()), w.pool(B, &cfg(), mutants));
        let id = serving(&w, &a, "org", 1).await;
        all_dead(&w).await;
        w.beat(B).await;
        b.drain_sessions().await;
        let got = b.reconnect(1).await;
        if refused {
            assert_eq!(got, Err(PoolError::ShuttingDown));
        } else {
            assert_eq!(got, Ok(id), "the mutant lands the session back on the draining replica");
        }
    }
}

/// A client not heard from for the client timeout is gone: its session is
/// over and its worker parked (a lost release strands nothing).
#[madsim::test]
async fn a_silent_clients_session_is_over_after_the_client_timeout() {
    let w = Harness::new();
    let a = w.pool(A, &cfg(), Mutants::none());
    let id = serving(&w, &a, "org", 1).await;
    w.at(cfg().client_timeout_ms - 1_000).await;
    a.maintain().await;
    assert_eq!(w.row(&id).state, WorkerState::Hot, "not yet");
    w.at(cfg().client_timeout_ms + 1_000).await;
    a.maintain().await;
    assert_eq!(w.row(&id).state, WorkerState::HotIdle);
    assert_eq!(a.release(1).await, Err(PoolError::UnknownSession(1)));
}
