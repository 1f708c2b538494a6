//! The instance registry: every process start registers a fresh instance
//! id and heartbeats it; an instance whose heartbeat is older than the
//! threshold is dead, and what it owned is orphaned.

use crate::clock::{sleep_until, timeout, Clock, Millis};
use crate::config::{ms, FleetConfig};
use crate::ids::InstanceId;
use crate::lease::stop_requested;
use crate::observe::{CoreEvent, Observer};
use crate::store::{InstanceRecord, Store, StoreReply, StoreRequest};
use std::collections::BTreeSet;
use std::sync::Arc;
use crate::signal as watch;

/// Dead at store time `now`: no heartbeat for `dead_after_ms`. A store rule
/// (the store refuses a dead instance's heartbeat), so it lives there.
pub use crate::store::is_dead;

/// The instances that are alive at store time `now`. Anything not in this
/// set (dead, or never registered) owns nothing any more.
pub fn live_instances(list: &[InstanceRecord], now: Millis, dead_after_ms: u64) -> BTreeSet<InstanceId> {
    list.iter().filter(|r| !is_dead(r, now, dead_after_ms)).map(|r| r.id).collect()
}

/// Heartbeat `me` every `heartbeat_ms` until `stop`. Registration is the
/// first heartbeat; it retries until it lands.
pub async fn heartbeat_loop<S: Store, C: Clock>(
    me: InstanceId,
    cfg: FleetConfig,
    store: Arc<S>,
    clock: Arc<C>,
    obs: Arc<dyn Observer>,
    stop: watch::Receiver<bool>,
) {
    let threshold = Some(cfg.dead_after_ms);
    heartbeat_and_fence(me, cfg, store, clock, obs, stop, None, threshold).await
}

/// When to fence: this long (local ms) after the send time of the last
/// heartbeat the store confirmed, and whom to tell.
pub struct SelfFence {
    pub after_ms: u64,
    /// Called once, before `fenced` is told: stops the instance (closes its
    /// store and cluster gates, ends its sessions).
    pub stop: Box<dyn Fn() + Send + Sync>,
    pub fenced: watch::Sender<bool>,
}

/// [`heartbeat_loop`], and self-fencing (docs/design.md §2.6,
/// "Health and self-fencing"): once registered, if no heartbeat has been confirmed
/// within `fence.after_ms` of the last confirmed one being sent, the
/// instance may already be dead to the registry, and others may act on
/// that; it says so on `fence.fenced` and stops. A failed heartbeat is
/// retried within a second, so one lost write does not cost a fence.
///
/// Each heartbeat names `threshold` (normally the dead threshold), so the
/// store refuses it once the instance is dead; a refused one fences at
/// once: the fleet may already have taken what this instance owned. `None`
/// sends the plain upsert that revives a dead instance (the zombie mutant).
#[allow(clippy::too_many_arguments)]
pub async fn heartbeat_and_fence<S: Store, C: Clock>(
    me: InstanceId,
    cfg: FleetConfig,
    store: Arc<S>,
    clock: Arc<C>,
    obs: Arc<dyn Observer>,
    mut stop: watch::Receiver<bool>,
    fence: Option<SelfFence>,
    threshold: Option<u64>,
) {
    let mut registered = false;
    // Local send time of the last heartbeat the store confirmed.
    let mut confirmed_sent: Millis = 0;
    // No deadline before registration: nobody can hold us dead yet.
    let fence_at = |registered: bool, sent: Millis| match &fence {
        Some(f) if registered => Some(sent.saturating_add(f.after_ms)),
        _ => None,
    };
    let until = |at: Option<Millis>| {
        let clock = clock.clone();
        async move {
            match at {
                Some(at) => sleep_until(&*clock, at).await,
                None => std::future::pending().await,
            }
        }
    };
    let fenced = |why: String| {
        if let Some(f) = &fence {
            obs.observe(CoreEvent::Fenced { reason: why });
            (f.stop)();
            let _ = f.fenced.send(true);
        }
    };
    loop {
        let req = if registered {
            StoreRequest::HeartbeatInstance { id: me, dead_after_ms: threshold }
        } else {
            StoreRequest::RegisterInstance { id: me, dead_after_ms: threshold }
        };
        let sent = clock.now();
        let deadline = fence_at(registered, confirmed_sent);
        let call = timeout(&*clock, ms(cfg.call_timeout_ms), store.call(req));
        let res = tokio::select! {
            biased;
            _ = stop_requested(&mut stop) => return,
            _ = until(deadline) => return fenced(format!("no heartbeat confirmed since {confirmed_sent}")),
            r = call => r,
        };
        let ok = match res {
            Ok(Ok(StoreReply::Done)) => true,
            Ok(Ok(StoreReply::InstanceDead)) => {
                obs.observe(CoreEvent::HeartbeatFailed { error: "the store holds this instance dead".into() });
                if fence.is_some() {
                    return fenced("the store holds this instance dead".into());
                }
                false
            }
            Ok(Ok(other)) => {
                obs.observe(CoreEvent::HeartbeatFailed { error: format!("unexpected reply {other:?}") });
                false
            }
            Ok(Err(e)) => {
                obs.observe(CoreEvent::HeartbeatFailed { error: e.to_string() });
                false
            }
            Err(_) => {
                obs.observe(CoreEvent::HeartbeatFailed { error: "timed out".into() });
                false
            }
        };
        if ok {
            registered = true;
            confirmed_sent = sent;
        }
        // Until registered, or after a failure, retry soon.
        let wait = if ok { cfg.heartbeat_ms } else { cfg.heartbeat_ms.min(1_000) };
        let deadline = fence_at(registered, confirmed_sent);
        tokio::select! {
            biased;
            _ = stop_requested(&mut stop) => return,
            _ = until(deadline) => return fenced(format!("no heartbeat confirmed since {confirmed_sent}")),
            _ = clock.sleep(ms(wait)) => {}
        }
    }
}
