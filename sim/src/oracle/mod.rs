//! The invariant oracle: judges every event of a run, in global time.
//!
//! It knows nothing of core's internals: it rebuilds the truth from what
//! reached the store (lease writes, fenced effects), what replicas say they
//! are doing (leader work start and stop) and what the injector did (faults).
//!
//! - S1 exclusive effects ([`safety`])
//! - S2 no double holder ([`safety`])
//! - L1 no abandoned lease ([`liveness`])

mod fleet;
mod liveness;
mod model;
mod safety;

pub use fleet::FleetParams;

use haywire_traces::{Event, EventKind};
use model::World as Model;
use serde::Serialize;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub message: String,
    pub at_us: u64,
}

/// Timing bounds the oracle allows, derived from the run's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OracleParams {
    /// Longest a healthy replica may take to take over a free lease.
    pub takeover_us: u64,
    /// Longest a healthy non-holder may go without asking the store.
    pub contend_us: u64,
    /// S2 holds only while pauses and drift stay within the replicas'
    /// configured bounds.
    pub enforce_s2: bool,
    pub fleet: FleetParams,
}

pub struct Oracle {
    params: OracleParams,
    m: Model,
    s2: safety::Intervals,
    fleet: fleet::Fleet,
}

impl Oracle {
    pub fn new(params: OracleParams, replicas: usize) -> Self {
        Oracle { params, m: Model::new(replicas), s2: safety::Intervals::default(), fleet: fleet::Fleet::default() }
    }

    pub fn params(&self) -> &OracleParams {
        &self.params
    }

    /// The lease holder per the store, if its lease is unexpired at `t_us`.
    pub fn holder_at(&self, t_us: u64) -> Option<u64> {
        self.m.live_holder(t_us)
    }

    /// Judge one event (already stamped with its time).
    pub fn observe(&mut self, e: &Event) -> Option<Violation> {
        let t = e.t;
        let verdict = self.safety(e).or_else(|| self.fleet.observe(&self.params.fleet, &self.m, e));
        self.m.apply(e);
        if let EventKind::Crash { .. } | EventKind::Exited { .. } = e.kind {
            // The process is gone and its loops with it.
            if let Some(inst) = self.m.last_dead {
                self.s2.close(inst);
                self.fleet.note_death(inst, t);
            }
        }
        verdict.or_else(|| self.check_time(t))
    }

    /// Checks that fail by time passing: the liveness deadlines.
    pub fn check_time(&mut self, t: u64) -> Option<Violation> {
        self.liveness(t).or_else(|| self.fleet.check_time(&self.params.fleet, &self.m, t))
    }

    /// After the quiet period: the lease held by a live replica, and nothing
    /// of the fleet leaked.
    pub fn finish(&mut self, t: u64) -> Option<Violation> {
        self.final_liveness(t).or_else(|| self.fleet.finish(&self.params.fleet, &self.m, t))
    }

    /// Idle worker-time beyond TTL + one reap interval: over the run, and
    /// after the quiet period settled (µs).
    pub fn idle_overdue_us(&self) -> (u64, u64) {
        (self.fleet.overdue_us, self.fleet.overdue_quiet_us)
    }
}

fn violation(invariant: &'static str, t: u64, message: String) -> Option<Violation> {
    Some(Violation { invariant, message, at_us: t })
}

/// `12.345s` for messages.
fn secs(t_us: u64) -> String {
    format!("{}.{:03}s", t_us / 1_000_000, (t_us / 1000) % 1000)
}
