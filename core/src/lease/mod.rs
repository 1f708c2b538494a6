//! The leader lease: one durable record per lease, changed only by CAS, with
//! an epoch that fences everything the leader does.

mod coordinator;
mod work;

pub use coordinator::LeaseCoordinator;
pub use work::{AllOf, BoxLoop, Horizon, LeaderWork, NoWork};

use crate::signal as watch;

/// Resolves once `rx` says true or its sender is gone (both mean: stop).
pub async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
