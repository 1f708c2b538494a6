//! The reconciler's loop (leader-gated fenced effects) on madsim's
//! simulated runtime, against the kit's in-process store whose lease the
//! tests rewrite directly.

use crate::clock::{Millis, SystemClock};
use crate::config::ReconcilerConfig;
use crate::ids::InstanceId;
use crate::lease::{Horizon, LeaderWork};
use crate::observe::CoreEvent;
use crate::reconciler::Reconciler;
use crate::signal as watch;
use crate::store::{CasResult, Store, StoreBackend, StoreError};
use crate::testkit::*;
use std::sync::Arc;

const LEASE: &str = "reconciler";
const X: InstanceId = InstanceId(7);
const Y: InstanceId = InstanceId(8);
const TTL: u64 = 60_000;

/// X's committed effects: (time, epoch, seq).
fn applied_effects(w: &Harness) -> Vec<(Millis, u64, u64)> {
    w.log
        .of(X)
        .into_iter()
        .filter_map(|e| match e.ev {
            CoreEvent::EffectApplied { epoch, seq } => Some((e.at, epoch, seq)),
            _ => None,
        })
        .collect()
}

/// X's fenced-out effects: (time, epoch, reason).
fn rejected_effects(w: &Harness) -> Vec<(Millis, u64, String)> {
    w.log
        .of(X)
        .into_iter()
        .filter_map(|e| match e.ev {
            CoreEvent::EffectRejected { epoch, reason } => Some((e.at, epoch, reason)),
            _ => None,
        })
        .collect()
}

fn reconciler<S: Store>(store: Arc<S>, w: &Harness) -> Reconciler<S, SystemClock> {
    Reconciler {
        instance: X,
        lease_name: LEASE.to_string(),
        cfg: ReconcilerConfig::default(),
        rpc_timeout_ms: 1_000,
        store,
        clock: Arc::new(w.clock.clone()),
        obs: w.observer(X),
    }
}

/// Start the reconciler's loops for `epoch` the way the coordinator does.
fn start<S: Store>(
    r: &Reconciler<S, SystemClock>,
    epoch: u64,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let mut loops = r.loops(epoch, rx, Horizon::new(u64::MAX));
    assert_eq!(loops.len(), 1);
    let (name, fut) = loops.pop().unwrap();
    assert_eq!(name, "reconciler");
    (tx, tokio::spawn(fut))
}

fn applied(r: Result<CasResult, StoreError>) -> crate::store::LeaseRecord {
    match r {
        Ok(CasResult::Applied(rec)) => rec,
        other => panic!("expected Applied, got {other:?}"),
    }
}

/// X holds the lease at epoch 2 (acquired, released, acquired again).
fn store_held_by_x_at_epoch_2(w: &Harness) -> Arc<Inner> {
    let store = w.inner.clone();
    store.with_backend(|b| {
        applied(b.acquire_lease(LEASE, X, None, TTL, 0));
        applied(b.release_lease(LEASE, X, 1, 0));
        let rec = applied(b.acquire_lease(LEASE, X, Some(2), TTL, 0));
        assert_eq!((rec.holder, rec.epoch), (Some(X), 2));
    });
    store
}

/// While its epoch holds, every effect commits, in order; once another
/// instance holds the lease the first effect of a sweep is rejected and
/// the rest of that sweep is skipped.
#[madsim::test]
async fn effects_apply_while_epoch_holds_then_are_fenced_out() {
    let w = Harness::new();
    let store = store_held_by_x_at_epoch_2(&w);
    let r = reconciler(store.clone(), &w);
    let (cancel, handle) = start(&r, 2);

    // Two sweeps: 3.0 s + 3 steps, then 3 s after the first ended.
    w.at(8_000).await;
    let got = applied_effects(&w);
    assert_eq!(
        got.iter().map(|(_, e, s)| (*e, *s)).collect::<Vec<_>>(),
        (1..=6).map(|s| (2, s)).collect::<Vec<_>>()
    );
    let times: Vec<Millis> = got.iter().map(|(t, ..)| *t).collect();
    assert_eq!(times, vec![3_250, 3_500, 3_750, 7_000, 7_250, 7_500]);
    assert!(rejected_effects(&w).is_empty());
    let rows = store.with_backend(|b| b.effects()).unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|row| row.holder == X && row.epoch == 2 && row.lease == LEASE));
    assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(rows[0].effect, "i7/e2/s1.0");

    // Y takes the lease over (epoch 3).
    store.with_backend(|b| {
        let rec = b.read_lease(LEASE).unwrap().unwrap();
        applied(b.release_lease(LEASE, X, rec.version, 8_000));
        let rec = applied(b.acquire_lease(LEASE, Y, Some(rec.version + 1), TTL, 8_000));
        assert_eq!(rec.epoch, 3);
    });
    w.at(15_000).await;
    // Sweep 3 starts at 10.5 s, sweep 4 at 13.75 s: one rejection each,
    // at the first step; the sweep ends there (a full sweep would put the
    // next one 3 s after its third step, and reject three times).
    let rejected = rejected_effects(&w);
    assert_eq!(
        rejected,
        vec![(10_750, 2, "NotHolder".to_string()), (14_000, 2, "NotHolder".to_string())],
        "{:#?}",
        w.log.all()
    );
    assert_eq!(applied_effects(&w).len(), 6, "nothing applied after the takeover");
    assert_eq!(store.with_backend(|b| b.effects()).unwrap().len(), 6);

    // Cancelled while idle between sweeps: exits at once.
    cancel.send(true).unwrap();
    handle.await.unwrap();
    assert_eq!(w.now(), 15_000);
}

/// Cancellation is noticed only between sweeps: cancelled mid-sweep, the
/// loop finishes the sweep (all its effects commit) and exits at its end.
#[madsim::test]
async fn cancel_mid_sweep_exits_at_the_end_of_the_sweep() {
    let w = Harness::new();
    let store = store_held_by_x_at_epoch_2(&w);
    let r = reconciler(store.clone(), &w);
    let (cancel, handle) = start(&r, 2);

    w.at(3_100).await;
    assert_eq!(applied_effects(&w).len(), 0, "the first step is at 3.25 s");
    cancel.send(true).unwrap();
    handle.await.unwrap();
    assert_eq!(w.now(), 3_750, "exited when the sweep ended, not before");
    assert_eq!(applied_effects(&w).iter().map(|(t, ..)| *t).collect::<Vec<_>>(), vec![3_250, 3_500, 3_750]);

    w.at(20_000).await;
    assert_eq!(store.with_backend(|b| b.effects()).unwrap().len(), 3, "nothing after exit");
}

#[madsim::test]
async fn cancel_between_sweeps_exits_at_once() {
    let w = Harness::new();
    let store = store_held_by_x_at_epoch_2(&w);
    let r = reconciler(store.clone(), &w);
    let (cancel, handle) = start(&r, 2);
    w.at(1_000).await;
    cancel.send(true).unwrap();
    handle.await.unwrap();
    assert_eq!(w.now(), 1_000);
    assert!(w.log.all().is_empty());
    assert!(store.with_backend(|b| b.effects()).unwrap().is_empty());

    // Already cancelled before it starts: never sweeps.
    let (cancel, handle) = start(&r, 2);
    drop(cancel);
    handle.await.unwrap();
    assert_eq!(w.now(), 1_000);
}

/// An effect carrying an older epoch than the store's is fenced out.
#[madsim::test]
async fn stale_epoch_is_rejected() {
    let w = Harness::new();
    let store = store_held_by_x_at_epoch_2(&w);
    let r = reconciler(store.clone(), &w);
    let (cancel, handle) = start(&r, 1);
    w.at(4_000).await;
    assert_eq!(rejected_effects(&w), vec![(3_250, 1, "StaleEpoch".to_string())]);
    assert!(store.with_backend(|b| b.effects()).unwrap().is_empty());
    cancel.send(true).unwrap();
    handle.await.unwrap();
}

/// An effect after the lease's expiry is fenced out, even at the right
/// epoch and holder.
#[madsim::test]
async fn expired_lease_is_rejected() {
    let w = Harness::new();
    let store = w.inner.clone();
    store.with_backend(|b| applied(b.acquire_lease(LEASE, X, None, 5_000, 0)));
    let r = reconciler(store.clone(), &w);
    let (cancel, handle) = start(&r, 1);
    w.at(8_000).await;
    assert_eq!(applied_effects(&w).len(), 3, "sweep 1 (3.25-3.75 s) before expiry at 5 s");
    assert_eq!(rejected_effects(&w), vec![(7_000, 1, "Expired".to_string())]);
    cancel.send(true).unwrap();
    handle.await.unwrap();
}

/// With the store unreachable each effect's outcome is unknown after the
/// RPC timeout and the sweep carries on: a cancelled sweep takes exactly
/// `max_sweep_ms`, the bound config validation budgets for.
#[madsim::test]
async fn unreachable_store_sweep_takes_max_sweep_ms() {
    let w = Harness::new();
    w.store.partition();
    let r = reconciler(w.store.clone(), &w);
    let (cancel, handle) = start(&r, 1);
    w.at(3_100).await;
    cancel.send(true).unwrap();
    handle.await.unwrap();
    let max = r.cfg.max_sweep_ms(r.rpc_timeout_ms);
    assert_eq!(w.now(), 3_000 + max);
    let unknown: Vec<_> =
        w.log.all().into_iter().filter(|e| matches!(e.ev, CoreEvent::EffectUnknown { .. })).collect();
    assert_eq!(unknown.len(), 3);
    assert!(unknown.iter().all(|e| e.ev == CoreEvent::EffectUnknown { epoch: 1, error: "timed out".into() }));
}
