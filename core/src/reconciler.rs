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
