//! The settings poller: each replica re-reads the fleet's settings row
//! every `settings_poll_ms` and serves what it read (field report 001's
//! 30 s config cache). It never serves a value older than one it served:
//! a read older than the cached version is ignored.

use super::CronConfig;
use crate::clock::{timeout, Clock};
use crate::config::ms;
use crate::lease::stop_requested;
use crate::mutants::{Mutant, Mutants};
use crate::signal as watch;
use crate::store::{SettingsRecord, Store, StoreReply, StoreRequest};
use std::sync::{Arc, Mutex};

/// After a failed read, try again this soon (well inside one poll).
const RETRY_MS: u64 = 1_000;

#[derive(Default)]
pub struct SettingsCache {
    current: Mutex<Option<SettingsRecord>>,
}

impl SettingsCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// What this replica serves now (`None`: not read yet).
    pub fn current(&self) -> Option<SettingsRecord> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Take `rec` if it is newer than what is cached; true if it was.
    pub fn offer(&self, rec: SettingsRecord) -> bool {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref().is_some_and(|c| c.version >= rec.version) {
            return false;
        }
        *cur = Some(rec);
        true
    }

    /// Read at once, then every poll, until `stop`.
    pub async fn poll_loop<S: Store, C: Clock>(
        self: Arc<Self>,
        cfg: CronConfig,
        call_timeout_ms: u64,
        mutants: Mutants,
        store: Arc<S>,
        clock: Arc<C>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let read = timeout(&*clock, ms(call_timeout_ms), store.call(StoreRequest::ReadSettings));
            let res = tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => return,
                r = read => r,
            };
            let wait = match res {
                Ok(Ok(StoreReply::Settings(rec))) => {
                    if let Some(rec) = rec {
                        self.offer(rec);
                    }
                    cfg.settings_poll_ms
                }
                _ if mutants.on(Mutant::ConfigPollStopsOnError) => return,
                _ => RETRY_MS.min(cfg.settings_poll_ms),
            };
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => return,
                _ = clock.sleep(ms(wait)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_never_goes_back() {
        let c = SettingsCache::new();
        let rec = |v: u64| SettingsRecord { value: format!("v{v}"), version: v, updated_at: 0 };
        assert!(c.offer(rec(2)));
        assert!(!c.offer(rec(1)), "older");
        assert!(!c.offer(rec(2)), "same");
        assert!(c.offer(rec(3)));
        assert_eq!(c.current().map(|r| r.version), Some(3));
    }
}
