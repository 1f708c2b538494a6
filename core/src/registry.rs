//! The instance registry: every process start registers a fresh instance
//! id and heartbeats it; an instance whose heartbeat is older than the
//! threshold is dead, and what it owned is orphaned.

use crate::clock::{timeout, Clock, Millis};
use crate::config::{ms, FleetConfig};
use crate::ids::InstanceId;
use crate::lease::stop_requested;
use crate::observe::{CoreEvent, Observer};
use crate::store::{InstanceRecord, Store, StoreReply, StoreRequest};
use std::collections::BTreeSet;
use std::sync::Arc;
use crate::signal as watch;

/// Dead at store time `now`: no heartbeat for `dead_after_ms`.
pub fn is_dead(rec: &InstanceRecord, now: Millis, dead_after_ms: u64) -> bool {
    rec.heartbeat_at.saturating_add(dead_after_ms) <= now
}

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
    mut stop: watch::Receiver<bool>,
) {
    let mut registered = false;
    loop {
        let req = if registered { StoreRequest::HeartbeatInstance { id: me } } else { StoreRequest::RegisterInstance { id: me } };
        match timeout(&*clock, ms(cfg.call_timeout_ms), store.call(req)).await {
            Ok(Ok(StoreReply::Done)) => registered = true,
            Ok(Ok(other)) => obs.observe(CoreEvent::HeartbeatFailed { error: format!("unexpected reply {other:?}") }),
            Ok(Err(e)) => obs.observe(CoreEvent::HeartbeatFailed { error: e.to_string() }),
            Err(_) => obs.observe(CoreEvent::HeartbeatFailed { error: "timed out".into() }),
        }
        // Until registered, retry soon: nothing may be spawned before.
        let wait = if registered { cfg.heartbeat_ms } else { cfg.heartbeat_ms.min(1_000) };
        tokio::select! {
            biased;
            _ = stop_requested(&mut stop) => return,
            _ = clock.sleep(ms(wait)) => {}
        }
    }
}
