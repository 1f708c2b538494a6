//! Bounded drain (docs/design.md §2.5): a replica asked to stop takes no
//! new sessions, marks itself draining in the store, lets its live sessions
//! finish for up to the drain timeout, then tells their clients to
//! reconnect elsewhere and lets go of their workers, untouched, for the
//! replica they reconnect through to take over. And a session whose client
//! has gone quiet is over: its worker is parked.

use super::{Pool, PoolError};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::ms;
use crate::mutants::Mutant;
use crate::store::{Store, StoreReply, StoreRequest};
use std::sync::atomic::Ordering;

/// How often a drain looks at its sessions (they also wake it as they end).
const DRAIN_POLL_MS: u64 = 250;

impl<S: Store, C: Clock, K: Cluster> Pool<S, C, K> {
    /// The first part of a graceful shutdown: drain the live sessions.
    /// Returns once none is served here; with no live session, at once.
    pub async fn drain_sessions(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        if self.live_sessions().is_empty() {
            return;
        }
        self.mark_draining().await;
        let give_up = self.clock.now().saturating_add(self.cfg.drain_timeout_ms);
        let bounded = !self.mutants.on(Mutant::DrainWaitsForever);
        let mut news = self.news.subscribe();
        while !self.live_sessions().is_empty() {
            let now = self.clock.now();
            if bounded && now >= give_up {
                break;
            }
            let nap = if bounded { DRAIN_POLL_MS.min(give_up - now) } else { DRAIN_POLL_MS };
            news.borrow_and_update();
            // Biased: an unbiased select draws from a thread-wide RNG, which
            // the simulator cannot replay (docs/design.md §9).
            tokio::select! {
                biased;
                _ = news.changed() => {}
                _ = self.clock.sleep(ms(nap)) => {}
            }
        }
        for (session, id) in self.live_sessions() {
            self.hand_off(session, &id);
        }
    }

    /// Tell the store this instance is draining, so that other replicas may
    /// take its sessions' workers over. Best effort: if it never lands,
    /// they wait for this instance's death instead.
    pub(super) async fn mark_draining(&self) {
        let req = StoreRequest::DrainInstance { id: self.me, dead_after_ms: Some(self.cfg.dead_after_ms) };
        for _ in 0..super::WRITE_TRIES {
            if let Ok(StoreReply::Done | StoreReply::InstanceDead) = self.store_call(req.clone()).await {
                return;
            }
        }
    }

    /// End `session` here with "reconnect elsewhere" and let go of its
    /// worker without a write: the row stays hot and bound to the session,
    /// for the replica the client reconnects through to claim.
    fn hand_off(&self, session: u64, id: &str) {
        self.end_session(session, PoolError::HandedOff);
        let current = self.gens.lock().unwrap_or_else(|p| p.into_inner()).get(id).copied();
        if let Some(gen) = current {
            self.let_go(id, gen);
        }
    }

    /// Sessions whose clients have not been heard from for the client
    /// timeout are over, as if released (a client that vanished, or whose
    /// release was lost, strands nothing).
    pub(super) async fn end_silent_sessions(&self) {
        let now = self.clock.now();
        let silent: Vec<u64> = {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.iter().filter(|(_, &at)| at.saturating_add(self.cfg.client_timeout_ms) <= now).map(|(s, _)| *s).collect()
        };
        for session in silent {
            let _ = self.release(session).await;
        }
    }
}
