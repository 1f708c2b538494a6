//! I2 no resurrection (docs/design.md §2.6): the store never takes a
//! heartbeat or registration of an instance it already holds dead (none
//! committed within the threshold): what a dead instance owned may already
//! be someone else's.
//!
//! I1 no false death: a process that is up and can reach a calm store is
//! not held dead by the registry (no heartbeat committed within the
//! threshold) for longer than one heartbeat interval past the threshold
//! (field report 001's false-positive death). The clock runs only while the
//! process is healthy (up, not paused, not cut off or slowed, not shutting
//! down) and the store calm, as the injector made them; the heartbeats are
//! what the store committed.

use super::model::Model;
use super::{secs, violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind};

#[derive(Default)]
pub struct InstanceCheck;

impl Check for InstanceCheck {
    fn observe(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let (EventKind::InstanceHeartbeat { from } | EventKind::InstanceRegistered { from }) = &e.kind else { return None };
        let last = *m.beats.get(from)?;
        if last + p.fleet.dead_threshold_us > e.t {
            return None;
        }
        violation(
            "I2",
            e.t,
            format!(
                "no resurrection: the store took a heartbeat of i{from}, dead since {} (its last heartbeat was at {}, \
                 threshold {})",
                secs(last + p.fleet.dead_threshold_us),
                secs(last),
                secs(p.fleet.dead_threshold_us)
            ),
        )
    }


    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        if !m.store_calm() {
            return None;
        }
        let bound = p.fleet.dead_threshold_us + p.fleet.heartbeat_us + p.fleet.slack_us;
        for (i, r) in m.reps.iter().enumerate() {
            let (Some(inst), Some(healthy)) = (r.inst, r.healthy_since) else { continue };
            let beat = m.beats.get(&inst).copied().unwrap_or(0);
            let from = beat.max(healthy).max(m.calm_since);
            if t > from + bound {
                return violation(
                    "I1",
                    t,
                    format!(
                        "no false death: r{}/i{inst} has been up and able to reach a calm store since {}, but the \
                         store has taken no heartbeat of it since {} ({} ago; threshold {} + one heartbeat {})",
                        i + 1,
                        secs(healthy.max(m.calm_since)),
                        secs(beat),
                        secs(t - beat),
                        secs(p.fleet.dead_threshold_us),
                        secs(p.fleet.heartbeat_us)
                    ),
                );
            }
        }
        None
    }
}
