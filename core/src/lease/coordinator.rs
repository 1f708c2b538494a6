//! The lease coordinator: one per replica, contending for the lease forever.
//!
//! Life of a coordinator:
//! 1. contend: every retry period, read the record and CAS-acquire it (the
//!    store decides whether it is free or expired, in its own time);
//! 2. lead: start the leader-gated loops with the epoch as fencing token and
//!    renew every renew interval; if no renew is confirmed within the renew
//!    deadline of the last confirmed one being *sent*, step down;
//! 3. stop: cancel the loops, wait for every one to exit, and only then
//!    release the record (never the other way round);
//! 4. go back to 1, until shutdown.

use super::{stop_requested, BoxLoop, Horizon, LeaderWork};
use crate::clock::{sleep_until, timeout, Clock, Millis};
use crate::config::{ms, LeaseConfig};
use crate::ids::InstanceId;
use crate::mutants::{Mutant, Mutants};
use crate::observe::{CoreEvent, Observer};
use crate::store::{CasResult, LeaseRecord, Reject, Store, StoreExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use crate::signal as watch;

pub struct LeaseCoordinator<S, C, W> {
    instance: InstanceId,
    cfg: LeaseConfig,
    mutants: Mutants,
    store: Arc<S>,
    clock: Arc<C>,
    work: Arc<W>,
    obs: Arc<dyn Observer>,
    is_leader: Arc<AtomicBool>,
    /// The highest epoch this coordinator has held (0: none yet).
    highest_held: AtomicU64,
}

/// The lease as this coordinator last saw it confirmed.
struct Held {
    rec: LeaseRecord,
    /// Local time at which the confirming request was sent: the store's
    /// expiry is at least TTL after this.
    confirmed_sent: Millis,
}

/// Why leadership ended.
#[derive(Debug, PartialEq)]
enum StopReason {
    Shutdown,
    /// No renew confirmed before the renew deadline.
    Deadline,
    /// The store says someone else has it.
    Lost(Reject),
}

impl<S: Store, C: Clock, W: LeaderWork> LeaseCoordinator<S, C, W> {
    pub fn new(
        instance: InstanceId,
        cfg: LeaseConfig,
        mutants: Mutants,
        store: Arc<S>,
        clock: Arc<C>,
        work: Arc<W>,
        obs: Arc<dyn Observer>,
    ) -> Self {
        let is_leader = Arc::new(AtomicBool::new(false));
        LeaseCoordinator { instance, cfg, mutants, store, clock, work, obs, is_leader, highest_held: AtomicU64::new(0) }
    }

    /// Epochs only rise: the store bumps the epoch on every acquire and
    /// never lowers it, and this coordinator asks one thing at a time. A
    /// record naming us at an epoch below one we held means an epoch was
    /// handed out twice, which voids fencing by epoch: stop.
    fn check_epoch(&self, rec: &LeaseRecord) {
        let held = self.highest_held.load(Ordering::SeqCst);
        assert!(
            rec.holder != Some(self.instance) || rec.epoch >= held,
            "lease epoch fell while held: {} sees lease '{}' as its own at epoch {} after holding epoch {held}",
            self.instance,
            self.cfg.name,
            rec.epoch
        );
    }

    /// A confirmed record of ours (acquired or renewed).
    fn confirmed(&self, rec: &LeaseRecord) {
        self.check_epoch(rec);
        self.highest_held.fetch_max(rec.epoch, Ordering::SeqCst);
    }

    /// The "is leader" metric: true from a confirmed acquire until step-down.
    pub fn is_leader_metric(&self) -> Arc<AtomicBool> {
        self.is_leader.clone()
    }

    /// Contend, lead and stop until `shutdown` says true; on shutdown the
    /// loops are stopped and the lease released before this returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut first_wait_ms = 0;
        loop {
            let Some(held) = self.contend(&mut shutdown, first_wait_ms).await else { return };
            if self.lead(held, &mut shutdown).await == StopReason::Shutdown {
                return;
            }
            if self.mutants.on(Mutant::ElectorRunsOnce) {
                // The bug: the elector ran once; nothing runs it again.
                stop_requested(&mut shutdown).await;
                return;
            }
            // Having just given the lease up, leave the first try to others.
            first_wait_ms = self.cfg.retry_period_ms;
        }
    }

    fn emit(&self, e: CoreEvent) {
        self.obs.observe(e);
    }

    /// After `wait_ms`, try every retry period until the lease is ours
    /// (Some) or shutdown (None).
    async fn contend(&self, shutdown: &mut watch::Receiver<bool>, mut wait_ms: u64) -> Option<Held> {
        loop {
            if wait_ms > 0 {
                tokio::select! {
                    biased;
                    _ = stop_requested(shutdown) => break,
                    _ = self.clock.sleep(ms(wait_ms)) => {}
                }
            }
            // An attempt in flight is never abandoned: dropping it could leave
            // us holder in the store without knowing it.
            if let Some(held) = self.try_acquire().await {
                return Some(held);
            }
            wait_ms = self.cfg.retry_period_ms;
        }
        // The store may still name us: an attempt whose reply was lost, a
        // renew that committed after we stepped down, or a release that
        // failed. Give it back so failover does not wait for the TTL.
        self.release_if_mine().await;
        None
    }

    async fn try_acquire(&self) -> Option<Held> {
        let rpc = ms(self.cfg.rpc_timeout_ms);
        let rec = match timeout(&*self.clock, rpc, self.store.read_lease(&self.cfg.name)).await {
            Ok(Ok(rec)) => rec,
            _ => return None,
        };
        if let Some(r) = &rec {
            self.check_epoch(r);
        }
        let sent = self.clock.now();
        let res = match &rec {
            // Already ours in the store (an earlier acquire whose reply was
            // lost, or a release that failed): confirm it with a renew.
            Some(r) if r.holder == Some(self.instance) => {
                timeout(&*self.clock, rpc, self.store.renew_lease(&self.cfg.name, self.instance, r.version, self.cfg.ttl_ms))
                    .await
            }
            _ => {
                let expected = rec.as_ref().map(|r| r.version);
                timeout(&*self.clock, rpc, self.store.acquire_lease(&self.cfg.name, self.instance, expected, self.cfg.ttl_ms))
                    .await
            }
        };
        match res {
            Ok(Ok(CasResult::Applied(rec))) => {
                self.confirmed(&rec);
                Some(Held { rec, confirmed_sent: sent })
            }
            _ => None,
        }
    }

    /// Hold the lease: run the loops and renew until step-down or shutdown.
    async fn lead(&self, mut held: Held, shutdown: &mut watch::Receiver<bool>) -> StopReason {
        let epoch = held.rec.epoch;
        self.is_leader.store(true, Ordering::SeqCst);
        self.emit(CoreEvent::LeaseAcquired { epoch });
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let mut deadline = held.confirmed_sent + self.cfg.renew_deadline_ms;
        let horizon = Horizon::new(deadline);
        let loops = self.spawn_loops(epoch, cancel_rx, horizon.clone());

        let rpc = ms(self.cfg.rpc_timeout_ms);
        let mut next_renew = held.confirmed_sent + self.cfg.renew_interval_ms;
        let reason = loop {
            tokio::select! {
                biased;
                _ = stop_requested(shutdown) => break StopReason::Shutdown,
                _ = sleep_until(&*self.clock, deadline) => break StopReason::Deadline,
                _ = sleep_until(&*self.clock, next_renew) => {}
            }
            let sent = self.clock.now();
            let renew = self.store.renew_lease(&self.cfg.name, self.instance, held.rec.version, self.cfg.ttl_ms);
            let res = tokio::select! {
                biased;
                _ = stop_requested(shutdown) => break StopReason::Shutdown,
                _ = sleep_until(&*self.clock, deadline) => break StopReason::Deadline,
                r = timeout(&*self.clock, rpc, renew) => r,
            };
            match res {
                Ok(Ok(CasResult::Applied(rec))) => {
                    self.confirmed(&rec);
                    held = Held { rec, confirmed_sent: sent };
                    deadline = sent + self.cfg.renew_deadline_ms;
                    horizon.set(deadline);
                    next_renew = sent + self.cfg.renew_interval_ms;
                    self.emit(CoreEvent::LeaseRenewed { epoch });
                }
                // An earlier renew of ours committed but its reply was lost:
                // still ours, so renew again at the current version. That
                // read is not a confirmation; the next renew will be.
                Ok(Ok(CasResult::Rejected { reason: Reject::StaleVersion, current: Some(cur) }))
                    if cur.holder == Some(self.instance) && cur.epoch == epoch =>
                {
                    held.rec.version = cur.version;
                    next_renew = self.clock.now();
                }
                Ok(Ok(CasResult::Rejected { reason, current })) => {
                    if let Some(cur) = &current {
                        self.check_epoch(cur);
                    }
                    break StopReason::Lost(reason);
                }
                // Unknown or failed: retry soon; the deadline decides.
                Ok(Err(_)) | Err(_) => {
                    next_renew = self.clock.now() + self.cfg.retry_period_ms.min(self.cfg.renew_interval_ms);
                }
            }
        };
        // Nothing unfenceable goes out once leadership is over.
        horizon.set(0);
        self.stop(held, reason, cancel_tx, loops).await
    }

    fn spawn_loops(&self, epoch: u64, cancel: watch::Receiver<bool>, horizon: Horizon) -> Vec<tokio::task::JoinHandle<()>> {
        let loops: Vec<(&'static str, BoxLoop)> = self.work.loops(epoch, cancel, horizon);
        loops
            .into_iter()
            .map(|(name, fut)| {
                let obs = self.obs.clone();
                obs.observe(CoreEvent::LoopStarted { name, epoch });
                let fut = obs.leader_task(name, epoch, fut);
                tokio::spawn(async move {
                    fut.await;
                    obs.observe(CoreEvent::LoopStopped { name, epoch });
                })
            })
            .collect()
    }

    /// Step down: cancel the loops, wait for them, then release.
    async fn stop(
        &self,
        held: Held,
        reason: StopReason,
        cancel_tx: watch::Sender<bool>,
        loops: Vec<tokio::task::JoinHandle<()>>,
    ) -> StopReason {
        let epoch = held.rec.epoch;
        self.is_leader.store(false, Ordering::SeqCst);
        self.emit(CoreEvent::SteppedDown { epoch, reason: format!("{reason:?}") });
        // If the store already named someone else, there is nothing to release.
        let release = !matches!(reason, StopReason::Lost(_));
        if self.mutants.on(Mutant::ReleaseBeforeCancel) && release {
            // The bug: the record goes before the loops stop.
            self.release(&held.rec).await;
        }
        let _ = cancel_tx.send(true);
        for handle in loops {
            let _ = handle.await;
        }
        self.emit(CoreEvent::LeaderWorkStopped { epoch });
        if !self.mutants.on(Mutant::ReleaseBeforeCancel) && release {
            self.release(&held.rec).await;
        }
        reason
    }

    /// Release the lease at `rec`'s epoch, bounded by the release timeout.
    async fn release(&self, rec: &LeaseRecord) {
        let epoch = rec.epoch;
        let give_up = self.clock.now() + self.cfg.release_timeout_ms;
        let mut version = rec.version;
        let why = loop {
            let left = give_up.saturating_sub(self.clock.now());
            if left == 0 {
                break "release timed out".to_string();
            }
            let call = self.store.release_lease(&self.cfg.name, self.instance, version);
            match timeout(&*self.clock, ms(left.min(self.cfg.rpc_timeout_ms)), call).await {
                Ok(Ok(CasResult::Applied(_))) => {
                    self.emit(CoreEvent::LeaseReleased { epoch });
                    return;
                }
                // A renew of ours committed unseen: still ours, retry at the
                // current version.
                Ok(Ok(CasResult::Rejected { reason: Reject::StaleVersion, current: Some(cur) }))
                    if cur.holder == Some(self.instance) && cur.epoch == epoch =>
                {
                    version = cur.version;
                }
                Ok(Ok(CasResult::Rejected { reason, current })) => {
                    if let Some(cur) = &current {
                        self.check_epoch(cur);
                    }
                    break format!("no longer ours ({reason:?})");
                }
                Ok(Err(e)) => break e.to_string(),
                Err(_) => break "store call timed out".to_string(),
            }
        };
        self.emit(CoreEvent::ReleaseFailed { epoch, reason: why });
    }

    /// If the store names us as holder, give the lease back.
    async fn release_if_mine(&self) {
        let rpc = ms(self.cfg.rpc_timeout_ms);
        if let Ok(Ok(Some(rec))) = timeout(&*self.clock, rpc, self.store.read_lease(&self.cfg.name)).await {
            self.check_epoch(&rec);
            if rec.holder == Some(self.instance) {
                self.release(&rec).await;
            }
        }
    }
}
