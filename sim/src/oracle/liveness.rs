//! Liveness: L1 no abandoned lease. A deadline starts only once the world
//! lets the system act (store calm, some replica healthy); outside that it
//! is excused, and the quiet period at the end makes sure it gets its turn.

use super::{secs, violation, Oracle, Violation};

impl Oracle {
    pub(super) fn liveness(&mut self, t: u64) -> Option<Violation> {
        self.takeover(t).or_else(|| self.keeps_contending(t))
    }

    /// L1: a free, expired or gracefully abandoned lease is taken by some
    /// healthy replica within the takeover bound.
    fn takeover(&self, t: u64) -> Option<Violation> {
        let since = self.m.abandoned_since(t)?;
        if !self.m.store_calm() || !self.m.lease_calm() {
            return None;
        }
        let healthy = self.m.reps.iter().filter_map(|r| r.healthy_since).min()?;
        let start = since.max(healthy).max(self.m.calm_since).max(self.m.lease_calm_since);
        if t <= start + self.params.takeover_us {
            return None;
        }
        let why = match &self.m.lease {
            None => "was never acquired".to_string(),
            Some(l) if l.holder.is_none() => format!("was released at {}", secs(since)),
            Some(l) if l.expires_at_ms * 1000 <= t => {
                format!("held by i{} expired at {}", l.holder.unwrap_or(0), secs(since))
            }
            Some(l) => format!(
                "is still held by i{} which exited gracefully at {} without releasing it",
                l.holder.unwrap_or(0),
                secs(since)
            ),
        };
        violation(
            "L1",
            t,
            format!(
                "no abandoned lease: the lease {why}; a healthy replica has been available since {} but nobody \
                 holds the lease {} later (bound {})",
                secs(start),
                secs(t - start),
                secs(self.params.takeover_us)
            ),
        )
    }

    /// L1: a replica that does not hold the lease keeps contending for it.
    fn keeps_contending(&self, t: u64) -> Option<Violation> {
        if !self.m.store_calm() || !self.m.lease_calm() {
            return None;
        }
        for (i, r) in self.m.reps.iter().enumerate() {
            let (Some(inst), Some(healthy)) = (r.inst, r.healthy_since) else { continue };
            let Some(nonholder) = self.m.nonholder_since(inst, t) else { continue };
            let base = r.last_contact.max(healthy).max(nonholder).max(self.m.calm_since).max(self.m.lease_calm_since);
            if t > base + self.params.contend_us {
                return violation(
                    "L1",
                    t,
                    format!(
                        "keeps contending: r{}/i{inst} is healthy and does not hold the lease, but the store has not \
                         heard from it since {} ({} ago, bound {})",
                        i + 1,
                        secs(r.last_contact),
                        secs(t - r.last_contact),
                        secs(self.params.contend_us)
                    ),
                );
            }
        }
        None
    }

    /// At the end of the quiet period a live replica must hold the lease.
    pub(super) fn final_liveness(&self, t: u64) -> Option<Violation> {
        if self.m.reps.iter().all(|r| !r.up) {
            return None;
        }
        match self.m.live_holder(t) {
            Some(h) if !self.m.dead.contains(&h) => None,
            other => violation(
                "L1",
                t,
                format!(
                    "no abandoned lease: after the quiet period the lease is {} instead of held by a live replica",
                    match other {
                        Some(h) => format!("held by dead instance i{h}"),
                        None => "not held".to_string(),
                    }
                ),
            ),
        }
    }
}
