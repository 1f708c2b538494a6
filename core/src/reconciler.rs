//! The leader-gated reconciler: the work the lease protects.
//!
//! Stand-in for the field report's watch and reconcile loops. Every interval
//! it runs a sweep of fenced effects through the store, each carrying the
//! epoch that authorised it; the store commits one only while that epoch is
//! current. Like the field report's sweep, it notices cancellation only
//! between sweeps, which is why the coordinator must wait for it.

use crate::clock::{timeout, Clock};
use crate::config::{ms, ReconcilerConfig};
use crate::ids::InstanceId;
use crate::lease::{stop_requested, BoxLoop, Horizon, LeaderWork};
use crate::observe::{CoreEvent, Observer};
use crate::store::{EffectResult, Store, StoreExt};
use std::collections::VecDeque;
use std::sync::Arc;
use crate::signal as watch;

pub struct Reconciler<S, C> {
    pub instance: InstanceId,
    pub lease_name: String,
    pub cfg: ReconcilerConfig,
    pub rpc_timeout_ms: u64,
    pub store: Arc<S>,
    pub clock: Arc<C>,
    pub obs: Arc<dyn Observer>,
}

impl<S: Store, C: Clock> LeaderWork for Reconciler<S, C> {
    fn loops(&self, epoch: u64, cancel: watch::Receiver<bool>, _horizon: Horizon) -> Vec<(&'static str, BoxLoop)> {
        let me = Reconciler {
            instance: self.instance,
            lease_name: self.lease_name.clone(),
            cfg: self.cfg.clone(),
            rpc_timeout_ms: self.rpc_timeout_ms,
            store: self.store.clone(),
            clock: self.clock.clone(),
            obs: self.obs.clone(),
        };
        vec![("reconciler", Box::pin(me.run(epoch, cancel)))]
    }
}

impl<S: Store, C: Clock> Reconciler<S, C> {
    async fn run(self, epoch: u64, mut cancel: watch::Receiver<bool>) {
        let mut sweep = 0u64;
        // Keys whose outcome is unknown (timed out, reply lost, failed): sent
        // again first, under the same key, so the store commits each at most
        // once (docs/design.md §7, E1). Retries share the sweep's budget of calls,
        // so a sweep never takes longer than `max_sweep_ms`.
        let mut unsure: VecDeque<String> = VecDeque::new();
        loop {
            tokio::select! {
                biased;
                _ = stop_requested(&mut cancel) => return,
                _ = self.clock.sleep(ms(self.cfg.interval_ms)) => {}
            }
            sweep += 1;
            let mut fresh = (0..self.cfg.effects_per_sweep).map(|step| format!("{}/e{epoch}/s{sweep}.{step}", self.instance));
            for _ in 0..self.cfg.effects_per_sweep {
                let Some(effect) = unsure.pop_front().or_else(|| fresh.next()) else { break };
                self.clock.sleep(ms(self.cfg.step_ms)).await;
                let call = self.store.fenced_effect(&self.lease_name, self.instance, epoch, effect.clone());
                match timeout(&*self.clock, ms(self.rpc_timeout_ms), call).await {
                    Ok(Ok(EffectResult::Applied { seq } | EffectResult::Duplicate { seq })) => {
                        self.obs.observe(CoreEvent::EffectApplied { epoch, seq })
                    }
                    Ok(Ok(EffectResult::Rejected { reason })) => {
                        // Fenced out: this epoch is over; the rest of the
                        // sweep would be rejected too.
                        self.obs.observe(CoreEvent::EffectRejected { epoch, reason: format!("{reason:?}") });
                        break;
                    }
                    Ok(Err(e)) => {
                        self.obs.observe(CoreEvent::EffectUnknown { epoch, error: e.to_string() });
                        unsure.push_back(effect);
                    }
                    Err(_) => {
                        self.obs.observe(CoreEvent::EffectUnknown { epoch, error: "timed out".into() });
                        unsure.push_back(effect);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The reconciler's loop on madsim's simulated runtime, against an
    //! in-process store whose lease the tests rewrite directly.

    use super::*;
    use crate::clock::{sleep_until, Millis, SystemClock};
    use crate::store::{CasResult, LocalStore, MemStore, StoreBackend, StoreError, StoreReply, StoreRequest};
    use std::sync::Mutex;

    const LEASE: &str = "reconciler";
    const X: InstanceId = InstanceId(7);
    const Y: InstanceId = InstanceId(8);
    const TTL: u64 = 60_000;

    type Local = LocalStore<MemStore, SystemClock>;

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<(Millis, CoreEvent)>>>);

    impl Log {
        fn all(&self) -> Vec<(Millis, CoreEvent)> {
            self.0.lock().unwrap().clone()
        }
        fn applied(&self) -> Vec<(Millis, u64, u64)> {
            self.all()
                .into_iter()
                .filter_map(|(t, e)| match e {
                    CoreEvent::EffectApplied { epoch, seq } => Some((t, epoch, seq)),
                    _ => None,
                })
                .collect()
        }
        fn rejected(&self) -> Vec<(Millis, u64, String)> {
            self.all()
                .into_iter()
                .filter_map(|(t, e)| match e {
                    CoreEvent::EffectRejected { epoch, reason } => Some((t, epoch, reason)),
                    _ => None,
                })
                .collect()
        }
    }

    struct Recorder {
        clock: SystemClock,
        log: Log,
    }

    impl Observer for Recorder {
        fn observe(&self, event: CoreEvent) {
            self.log.0.lock().unwrap().push((self.clock.now(), event));
        }
    }

    /// A store that never answers (partition).
    struct Silent;

    impl Store for Silent {
        async fn call(&self, _req: StoreRequest) -> Result<StoreReply, StoreError> {
            std::future::pending().await
        }
    }

    fn reconciler<S: Store>(store: Arc<S>, clock: &SystemClock, log: &Log) -> Reconciler<S, SystemClock> {
        Reconciler {
            instance: X,
            lease_name: LEASE.to_string(),
            cfg: ReconcilerConfig::default(),
            rpc_timeout_ms: 1_000,
            store,
            clock: Arc::new(clock.clone()),
            obs: Arc::new(Recorder { clock: clock.clone(), log: log.clone() }),
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
    fn store_held_by_x_at_epoch_2(clock: &SystemClock) -> Arc<Local> {
        let store = Arc::new(LocalStore::new(MemStore::new(), clock.clone()));
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
        let clock = SystemClock::new();
        let log = Log::default();
        let store = store_held_by_x_at_epoch_2(&clock);
        let r = reconciler(store.clone(), &clock, &log);
        let (cancel, handle) = start(&r, 2);

        // Two sweeps: 3.0 s + 3 steps, then 3 s after the first ended.
        sleep_until(&clock, 8_000).await;
        let got = log.applied();
        assert_eq!(
            got.iter().map(|(_, e, s)| (*e, *s)).collect::<Vec<_>>(),
            (1..=6).map(|s| (2, s)).collect::<Vec<_>>()
        );
        let times: Vec<Millis> = got.iter().map(|(t, ..)| *t).collect();
        assert_eq!(times, vec![3_250, 3_500, 3_750, 7_000, 7_250, 7_500]);
        assert!(log.rejected().is_empty());
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
        sleep_until(&clock, 15_000).await;
        // Sweep 3 starts at 10.5 s, sweep 4 at 13.75 s: one rejection each,
        // at the first step; the sweep ends there (a full sweep would put the
        // next one 3 s after its third step, and reject three times).
        let rejected = log.rejected();
        assert_eq!(
            rejected,
            vec![(10_750, 2, "NotHolder".to_string()), (14_000, 2, "NotHolder".to_string())],
            "{:#?}",
            log.all()
        );
        assert_eq!(log.applied().len(), 6, "nothing applied after the takeover");
        assert_eq!(store.with_backend(|b| b.effects()).unwrap().len(), 6);

        // Cancelled while idle between sweeps: exits at once.
        cancel.send(true).unwrap();
        handle.await.unwrap();
        assert_eq!(clock.now(), 15_000);
    }

    /// Cancellation is noticed only between sweeps: cancelled mid-sweep, the
    /// loop finishes the sweep (all its effects commit) and exits at its end.
    #[madsim::test]
    async fn cancel_mid_sweep_exits_at_the_end_of_the_sweep() {
        let clock = SystemClock::new();
        let log = Log::default();
        let store = store_held_by_x_at_epoch_2(&clock);
        let r = reconciler(store.clone(), &clock, &log);
        let (cancel, handle) = start(&r, 2);

        sleep_until(&clock, 3_100).await;
        assert_eq!(log.applied().len(), 0, "the first step is at 3.25 s");
        cancel.send(true).unwrap();
        handle.await.unwrap();
        assert_eq!(clock.now(), 3_750, "exited when the sweep ended, not before");
        assert_eq!(log.applied().iter().map(|(t, ..)| *t).collect::<Vec<_>>(), vec![3_250, 3_500, 3_750]);

        sleep_until(&clock, 20_000).await;
        assert_eq!(store.with_backend(|b| b.effects()).unwrap().len(), 3, "nothing after exit");
    }

    #[madsim::test]
    async fn cancel_between_sweeps_exits_at_once() {
        let clock = SystemClock::new();
        let log = Log::default();
        let store = store_held_by_x_at_epoch_2(&clock);
        let r = reconciler(store.clone(), &clock, &log);
        let (cancel, handle) = start(&r, 2);
        sleep_until(&clock, 1_000).await;
        cancel.send(true).unwrap();
        handle.await.unwrap();
        assert_eq!(clock.now(), 1_000);
        assert!(log.all().is_empty());
        assert!(store.with_backend(|b| b.effects()).unwrap().is_empty());

        // Already cancelled before it starts: never sweeps.
        let (cancel, handle) = start(&r, 2);
        drop(cancel);
        handle.await.unwrap();
        assert_eq!(clock.now(), 1_000);
    }

    /// An effect carrying an older epoch than the store's is fenced out.
    #[madsim::test]
    async fn stale_epoch_is_rejected() {
        let clock = SystemClock::new();
        let log = Log::default();
        let store = store_held_by_x_at_epoch_2(&clock);
        let r = reconciler(store.clone(), &clock, &log);
        let (cancel, handle) = start(&r, 1);
        sleep_until(&clock, 4_000).await;
        assert_eq!(log.rejected(), vec![(3_250, 1, "StaleEpoch".to_string())]);
        assert!(store.with_backend(|b| b.effects()).unwrap().is_empty());
        cancel.send(true).unwrap();
        handle.await.unwrap();
    }

    /// An effect after the lease's expiry is fenced out, even at the right
    /// epoch and holder.
    #[madsim::test]
    async fn expired_lease_is_rejected() {
        let clock = SystemClock::new();
        let log = Log::default();
        let store = Arc::new(LocalStore::new(MemStore::new(), clock.clone()));
        store.with_backend(|b| applied(b.acquire_lease(LEASE, X, None, 5_000, 0)));
        let r = reconciler(store.clone(), &clock, &log);
        let (cancel, handle) = start(&r, 1);
        sleep_until(&clock, 8_000).await;
        assert_eq!(log.applied().len(), 3, "sweep 1 (3.25-3.75 s) before expiry at 5 s");
        assert_eq!(log.rejected(), vec![(7_000, 1, "Expired".to_string())]);
        cancel.send(true).unwrap();
        handle.await.unwrap();
    }

    /// With the store unreachable each effect's outcome is unknown after the
    /// RPC timeout and the sweep carries on: a cancelled sweep takes exactly
    /// `max_sweep_ms`, the bound config validation budgets for.
    #[madsim::test]
    async fn unreachable_store_sweep_takes_max_sweep_ms() {
        let clock = SystemClock::new();
        let log = Log::default();
        let r = reconciler(Arc::new(Silent), &clock, &log);
        let (cancel, handle) = start(&r, 1);
        sleep_until(&clock, 3_100).await;
        cancel.send(true).unwrap();
        handle.await.unwrap();
        let max = r.cfg.max_sweep_ms(r.rpc_timeout_ms);
        assert_eq!(clock.now(), 3_000 + max);
        let unknown: Vec<_> =
            log.all().into_iter().filter(|(_, e)| matches!(e, CoreEvent::EffectUnknown { .. })).collect();
        assert_eq!(unknown.len(), 3);
        assert!(unknown.iter().all(|(_, e)| *e == CoreEvent::EffectUnknown { epoch: 1, error: "timed out".into() }));
    }
}
