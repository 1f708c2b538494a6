//! The instance registry: the heartbeat loop registers and beats, retries
//! a failed registration, fences itself past its deadline or when the store
//! refuses a beat; and the dead threshold.

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::clock::Millis;
use crate::config::ReplicaConfig;
use crate::ids::InstanceId;
use crate::observe::CoreEvent;
use crate::registry::{heartbeat_and_fence, heartbeat_loop, is_dead, live_instances, SelfFence};
use crate::signal as watch;
use crate::store::{InstanceRecord, StoreReply, StoreRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[madsim::test]
async fn heartbeat_loop_registers_then_beats_every_interval() {
    let w = Harness::new();
    let c = cfg();
    let store = w.client();
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(heartbeat_loop(A, c.clone(), store.clone(), Arc::new(w.clock.clone()), w.observer(A), rx));
    w.at(50_000).await;
    let calls: Vec<(Millis, &'static str)> = store.calls().iter().map(|c| (c.at, c.req.op())).collect();
    let ops: Vec<&str> = calls.iter().map(|c| c.1).collect();
    assert_eq!(ops, ["register_instance", "heartbeat_instance", "heartbeat_instance", "heartbeat_instance"]);
    for (i, (at, _)) in calls.iter().enumerate() {
        let want = i as u64 * c.heartbeat_ms;
        assert!((want..=want + 5).contains(at), "beat {i} at {at}: {calls:?}");
    }
    let rec = w.instances().into_iter().find(|r| r.id == A).unwrap();
    assert!(rec.started_at <= 5 && rec.heartbeat_at >= 45_000, "{rec:?}");
    tx.send(true).unwrap();
    task.await.unwrap();
    w.at(100_000).await;
    assert_eq!(store.calls().len(), 4, "no beat after stop");
    assert!(w.log.events(A).is_empty());
}

#[madsim::test]
async fn heartbeat_loop_retries_registration_until_it_lands() {
    let w = Harness::new();
    let c = cfg();
    let store = w.client();
    store.fail_next(3, is_op("register_instance"));
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(heartbeat_loop(A, c.clone(), store.clone(), Arc::new(w.clock.clone()), w.observer(A), rx));
    w.at(20_000).await;
    tx.send(true).unwrap();
    task.await.unwrap();
    let calls: Vec<(Millis, &'static str, bool)> =
        store.calls().iter().map(|c| (c.at, c.req.op(), c.reply().is_some())).collect();
    let ops: Vec<(&str, bool)> = calls.iter().map(|c| (c.1, c.2)).collect();
    assert_eq!(
        ops,
        [
            ("register_instance", false),
            ("register_instance", false),
            ("register_instance", false),
            ("register_instance", true),
            ("heartbeat_instance", true)
        ],
        "{calls:?}"
    );
    // Retried every second until registered, then every heartbeat interval.
    assert!((3_000..=3_020).contains(&calls[3].0) && (18_000..=18_030).contains(&calls[4].0), "{calls:?}");
    let failed = w.log.events(A).into_iter().filter(|e| matches!(e, CoreEvent::HeartbeatFailed { .. })).count();
    assert_eq!(failed, 3);
}

/// Self-fencing: registration lands (its reply 600 ms late), then the store
/// is unreachable. The fenced signal fires `self_fence_after_ms` of local
/// time after the registration was *sent* (not when its reply came), and
/// not a moment before; failed heartbeats are retried within a second; the
/// loop stops at the fence.
#[madsim::test]
async fn heartbeat_and_fence_fences_after_the_deadline_from_the_last_confirmed_send() {
    let w = Harness::new();
    let config = ReplicaConfig::default();
    let c = config.fleet.clone();
    let after = config.self_fence_after_ms();
    assert!(after > c.heartbeat_ms && after < c.dead_after_ms, "{after}");
    let store = w.client();
    store.rule(Some(1), Action::SlowReply(600), is_op("register_instance"));
    store.fail_all(is_op("heartbeat_instance"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (fenced_tx, fenced) = watch::channel(false);
    let stops = Arc::new(AtomicUsize::new(0));
    let stopped = stops.clone();
    let stop = Box::new(move || {
        stopped.fetch_add(1, Ordering::SeqCst);
    });
    let fence = Some(SelfFence { after_ms: after, stop, fenced: fenced_tx });
    let threshold = Some(c.dead_after_ms);
    let task =
        tokio::spawn(heartbeat_and_fence(A, c.clone(), store.clone(), Arc::new(w.clock.clone()), w.observer(A), stop_rx, fence, threshold));

    w.at(700).await;
    let reg = store.calls()[0].clone();
    assert_eq!((reg.req.op(), reg.reply()), ("register_instance", Some(Ok(StoreReply::Done))));
    let sent = reg.at;
    assert!(sent <= 5, "registered at once: {sent}");
    let is_fenced = |e: &CoreEvent| matches!(e, CoreEvent::Fenced { .. });

    w.at(sent + after - 1).await;
    assert!(!*fenced.borrow(), "fenced before the deadline");
    assert!(!w.log.events(A).iter().any(is_fenced), "{:?}", w.log.events(A));
    assert!(!task.is_finished());
    assert_eq!(stops.load(Ordering::SeqCst), 0);
    w.at(sent + after + 1).await;
    assert!(*fenced.borrow(), "not fenced at the deadline ({after} ms after the send at {sent})");
    assert_eq!(stops.load(Ordering::SeqCst), 1, "the instance is stopped once, before the fence is told");
    let fenced_at: Vec<Millis> =
        w.log.matching(A, is_fenced).iter().map(|e| e.at).collect();
    assert!(matches!(fenced_at.as_slice(), [at] if (sent + after..=sent + after + 1).contains(at)), "one fence, at the deadline: {fenced_at:?}");
    task.await.unwrap();

    // The first heartbeat went out an interval after the registration was
    // confirmed; each failed one was retried a second later, until the fence.
    let beats: Vec<Millis> = store.calls().iter().filter(|c| c.req.op() == "heartbeat_instance").map(|c| c.at).collect();
    assert!(!beats.is_empty() && beats.iter().all(|&at| at < sent + after), "{beats:?}");
    let first = sent + 600 + c.heartbeat_ms;
    assert!((first..=first + 5).contains(&beats[0]), "{beats:?}");
    assert!(beats.windows(2).all(|p| (1_000..=1_005).contains(&(p[1] - p[0]))), "{beats:?}");
    assert!(beats.last().unwrap() + 1_000 >= sent + after, "retried up to the fence: {beats:?}");
    let failed = w.log.events(A).into_iter().filter(|e| matches!(e, CoreEvent::HeartbeatFailed { .. })).count();
    assert_eq!(failed, beats.len());
    // Nothing more once fenced.
    let n = store.calls().len();
    w.at(sent + after + 10_000).await;
    assert_eq!(store.calls().len(), n, "no heartbeat after the fence");
    drop(stop_tx);
}

/// docs/design.md §2.6: heartbeats name the dead threshold, so the store
/// refuses one of an instance it already holds dead; the instance fences at
/// once, without waiting for its own deadline.
#[madsim::test]
async fn a_heartbeat_the_store_refuses_fences_at_once() {
    let w = Harness::new();
    let c = ReplicaConfig::default().fleet;
    let store = w.client();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (fenced_tx, fenced) = watch::channel(false);
    // A deadline far away: only the store's refusal can fence here.
    let fence = Some(SelfFence { after_ms: 100 * c.dead_after_ms, stop: Box::new(|| {}), fenced: fenced_tx });
    let task = tokio::spawn(heartbeat_and_fence(
        A,
        c.clone(),
        store.clone(),
        Arc::new(w.clock.clone()),
        w.observer(A),
        stop_rx,
        fence,
        Some(c.dead_after_ms),
    ));
    w.at(100).await;
    // Heartbeats lost for longer than the threshold: the registry holds A
    // dead. The next one that gets through is refused and changes nothing.
    store.fail_all(is_op("heartbeat_instance"));
    w.at(c.dead_after_ms + 2_000).await;
    assert!(!*fenced.borrow());
    store.heal();
    w.at(c.dead_after_ms + 3_500).await;
    assert!(*fenced.borrow(), "a refused heartbeat fences: {:?}", store.calls());
    let last = store.calls().last().cloned().unwrap();
    assert_eq!((last.req.op(), last.reply()), ("heartbeat_instance", Some(Ok(StoreReply::InstanceDead))));
    assert!(store.calls().iter().all(|call| match &call.req {
        StoreRequest::RegisterInstance { dead_after_ms, .. } | StoreRequest::HeartbeatInstance { dead_after_ms, .. } =>
            *dead_after_ms == Some(c.dead_after_ms),
        _ => true,
    }));
    let rec = w.instances().into_iter().find(|r| r.id == A).unwrap();
    assert!(rec.heartbeat_at < 100, "not revived: {rec:?}");
    task.await.unwrap();
    drop(stop_tx);
}

#[test]
fn is_dead_and_live_instances_use_the_threshold() {
    let rec = |id, heartbeat_at| InstanceRecord { id: InstanceId(id), started_at: 0, heartbeat_at, draining: false };
    let dead_after = 30_000;
    assert!(!is_dead(&rec(1, 100), 30_099, dead_after));
    assert!(is_dead(&rec(1, 100), 30_100, dead_after), "dead exactly at heartbeat + threshold");
    assert!(!is_dead(&rec(1, 100), 0, dead_after), "a heartbeat from the future is not dead");
    // Saturating: near the end of time a heartbeat cannot overflow.
    assert!(is_dead(&rec(1, u64::MAX - 5), u64::MAX, dead_after));
    let list = [rec(1, 0), rec(2, 10_000), rec(3, 20_000)];
    let ids = |now| live_instances(&list, now, dead_after).into_iter().map(|i| i.0).collect::<Vec<_>>();
    assert_eq!(ids(29_999), [1, 2, 3]);
    assert_eq!(ids(30_000), [2, 3]);
    assert_eq!(ids(45_000), [3]);
    assert_eq!(ids(50_000), Vec::<u64>::new());
    assert!(live_instances(&[], 5, dead_after).is_empty());
}
