//! The invariant oracle: judges every event of a run, in global time, from
//! ground truth (docs/design.md §7).
//!
//! [`model`] rebuilds the world from what the store committed, what the
//! cluster did, what clients saw and what the injector did to processes;
//! nothing a replica says about itself opens, closes or excuses a check.
//! One checker per family of invariants, each in its own file, all fed by
//! the dispatcher here. Every invariant it checks, by the code a violation
//! carries (S safety, L liveness), with the file that holds its check:
//!
//! - S1 (`lease.rs`) exclusive effects: every leader-gated effect (a fenced
//!   effect, a fenced worker or slot write, a leader-gated pod or secret
//!   call) comes from the holder of the live lease, at its epoch.
//! - S2 (`lease.rs`) no double holder: no two instances run leader work at
//!   once (promised while pauses and drift stay within the configured
//!   bounds).
//! - S3 (`workers.rs`) fencing and the lifecycle: an applied worker write is
//!   made as the row's current owner and epoch; a row is inserted once, as
//!   spawning; owner and epoch change only by a claim (epoch + 1), the org
//!   never; every step is one the design's lifecycle table allows.
//! - S4 (`workers.rs`) caps: no insert of a worker or reservation of a slot
//!   takes an org or the fleet past its cap.
//! - S5 (`sessions.rs`) no live session lost: a worker a client holds (or
//!   waits for) is not drained, retired, lost or deleted under it, and no
//!   session starts on a worker whose secret or pod is gone, or failed longer
//!   ago than the health-check bound.
//! - S6 (`sessions.rs`) exclusive and isolated: a session starts only on a
//!   hot worker of its own org that the store binds to that very session and
//!   no other client holds.
//! - E1 (`effects.rs`) effects at most once: each leader-gated effect's
//!   idempotency key commits at most once, retries after a lost reply
//!   included.
//! - I1 (`instances.rs`) no false death: an instance that is up and reaches a
//!   calm store is not held dead for longer than the threshold plus one
//!   heartbeat.
//! - I2 (`instances.rs`) no resurrection: the store never takes a heartbeat
//!   or registration of an instance it already holds dead.
//! - L1 (`lease.rs`) no abandoned lease: once the world lets the system act,
//!   a lease that is free, expired or left by a dead or exited holder is
//!   taken within the takeover bound; a healthy non-holder keeps asking the
//!   store; after the quiet period a live replica holds it.
//! - L2 (`idle.rs`) no idle leak: an idle worker beyond its owner's floor
//!   starts draining within TTL + one reap interval, and none is drained
//!   early; drains end; an ended worker's slot is freed; at the end pods =
//!   live rows, no orphan secret, no stray slot, nothing owned by a dead
//!   instance.
//! - L2 (`orphans.rs`) no orphan object: a pod or secret that no live row
//!   owns is deleted within its passes' deadline while a reaper responsible
//!   for it can act.
//! - L3 (`sessions.rs`) progress: a request to a replica that stayed up and
//!   healthy in a calm world is answered within the client's patience, and
//!   none is left unanswered at the end.
//! - S7 (`continuity.rs`) session continuity: a session's worker is taken
//!   over only from an owner that is gone, dead or draining in the store; a
//!   reconnect resumes it on its own worker, bound to it by the store, by
//!   one replica that is not draining; a client does not give up in a calm
//!   world whose store kept its worker; no row is still bound to a session
//!   when the run ends.
//! - L4 (`continuity.rs`) bounded drain: a replica asked to stop exits
//!   within the drain timeout plus the release and slack, unless a fault
//!   slowed it.
//! - H1 (`headroom.rs`) constant headroom: the janitor keeps exactly the
//!   configured number of placeholder pods (put right within its deadline
//!   while it can act, exact at the end).
//!
//! - C1–C4 (`cron.rs`) cron coordination: each (job, slot) runs at most
//!   once, after its record, from the job's owner; due slots are settled in
//!   time, never early, missed only when late; no job stays unowned or is
//!   taken from a live owner, and a stopping replica hands its jobs over;
//!   pauses, deletes, edits and the run cap are obeyed.
//! - C5 (`settings.rs`) settings converge: within a poll of a write every
//!   healthy replica serves it, and none ever serves an older version.
//!
//! Each checker judges an event against the model as it was before the
//! event; then the model applies it; then the deadlines are checked.

mod continuity;
mod cron;
mod effects;
mod headroom;
mod floor;
mod idle;
mod instances;
mod lease;
mod model;
mod orphans;
mod sessions;
mod settings;
#[cfg(test)]
mod tests;
mod workers;

use haywire_traces::{Event, EventKind};
pub use cron::CronParams;
use model::Model;
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
    /// S2 holds only while drift stays within the replicas' configured
    /// bound (the options say), and pauses too (the trace says:
    /// [`model::Model::s2_promised`]).
    pub enforce_s2: bool,
    pub fleet: FleetParams,
    pub cron: cron::CronParams,
}

/// Fleet bounds, from the run's options (µs where times).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FleetParams {
    pub org_cap: u32,
    pub global_cap: u32,
    pub ttl_us: u64,
    /// One reap interval, stretched by the slowest clock.
    pub reap_us: u64,
    /// From a death to every replica treating it as one: the registry's
    /// threshold plus a heartbeat, stretched by the slowest clock.
    pub dead_after_us: u64,
    /// The registry's threshold itself, in store (= simulated) time: an
    /// instance with no heartbeat taken for this long is dead.
    pub dead_threshold_us: u64,
    /// One heartbeat interval, stretched by the slowest clock.
    pub heartbeat_us: u64,
    pub stale_spawn_us: u64,
    pub min_hot_idle: u32,
    /// The RPC slack the options record states: a reap pass's own calls,
    /// latency, a pause within bounds.
    pub slack_us: u64,
    /// "At once": the few calls that follow a step in a calm world.
    pub quick_us: u64,
    /// The pause bound the replicas are configured for, and which replicas'
    /// clocks drift beyond theirs: an instance paused or drifting beyond its
    /// bounds cannot fence itself in time, so S5 is not promised for it.
    pub max_pause_us: u64,
    pub drift_beyond: Vec<bool>,
    /// Pods and secrets younger than this are never reaped as orphans.
    pub orphan_min_age_us: u64,
    /// Each orphan-object pass's own deadline, stretched by the slowest
    /// clock: a pass may wait this long on the other's slow list.
    pub orphan_pass_us: u64,
    /// Placeholder pods the janitor keeps (the configured constant).
    pub headroom_nodes: u32,
    /// Longest a worker whose pod failed or vanished may still be handed
    /// to a new session (the health check's bound, from the options).
    pub health_bound_us: u64,
    /// How long after its owner's death a session's worker waits for its
    /// client to reconnect before the reapers may take it.
    pub resume_window_us: u64,
    /// How long a pool keeps a session whose client it has not heard from
    /// before parking its worker (`fleet.client_timeout_ms`).
    pub client_timeout_us: u64,
    /// Longest from a shutdown request to the process's exit: the drain
    /// timeout, then the lease release and the last retirements.
    pub drain_bound_us: u64,
    /// How long a client keeps reconnecting a session (0: never).
    pub reconnect_us: u64,
    /// Longest a reply is in flight from the replica that sent it to the
    /// client that records it: what a client's answer says of the replica
    /// holds at least this long before the client hears it.
    pub reply_flight_us: u64,
}

/// One family of invariants. Every method sees the model as it is; in
/// `observe` that is before the event applies.
trait Check {
    fn observe(&mut self, _p: &OracleParams, _m: &Model, _e: &Event) -> Option<Violation> {
        None
    }
    /// Deadlines that expire with time alone.
    fn tick(&mut self, _p: &OracleParams, _m: &Model, _t: u64) -> Option<Violation> {
        None
    }
    /// After the quiet period.
    fn finish(&mut self, _p: &OracleParams, _m: &Model, _t: u64) -> Option<Violation> {
        None
    }
}

pub struct Oracle {
    params: OracleParams,
    m: Model,
    lease: lease::LeaseCheck,
    workers: workers::WorkerCheck,
    sessions: sessions::SessionCheck,
    idle: idle::IdleCheck,
    orphans: orphans::OrphanCheck,
    headroom: headroom::HeadroomCheck,
    effects: effects::EffectCheck,
    instances: instances::InstanceCheck,
    continuity: continuity::ContinuityCheck,
    cron: cron::CronCheck,
    settings: settings::SettingsCheck,
}

impl Oracle {
    pub fn new(params: OracleParams, replicas: usize) -> Self {
        Oracle {
            params,
            m: Model::new(replicas),
            lease: Default::default(),
            workers: Default::default(),
            sessions: Default::default(),
            idle: Default::default(),
            orphans: Default::default(),
            headroom: Default::default(),
            effects: Default::default(),
            instances: Default::default(),
            continuity: Default::default(),
            cron: Default::default(),
            settings: Default::default(),
        }
    }

    pub fn params(&self) -> &OracleParams {
        &self.params
    }

    /// The lease holder per the store, if its lease is unexpired at `t_us`.
    pub fn holder_at(&self, t_us: u64) -> Option<u64> {
        self.m.live_holder(t_us)
    }

    /// Run `f` over every checker (all of them, so each keeps its state);
    /// the first violation wins.
    fn each(&mut self, mut f: impl FnMut(&mut dyn Check, &OracleParams, &Model) -> Option<Violation>) -> Option<Violation> {
        let checks: [&mut dyn Check; 11] = [
            &mut self.lease,
            &mut self.workers,
            &mut self.sessions,
            &mut self.idle,
            &mut self.orphans,
            &mut self.headroom,
            &mut self.effects,
            &mut self.instances,
            &mut self.continuity,
            &mut self.cron,
            &mut self.settings,
        ];
        let mut verdict = None;
        for c in checks {
            let v = f(c, &self.params, &self.m);
            verdict = verdict.or(v);
        }
        verdict
    }

    /// Judge one event (already stamped with its time): the checks an event
    /// can break. Deadlines are [`Self::check_time`]'s, on the world's tick.
    pub fn observe(&mut self, e: &Event) -> Option<Violation> {
        let verdict = self.each(|c, p, m| c.observe(p, m, e));
        self.m.apply(e);
        verdict
    }

    /// Checks that fail by time passing: the liveness deadlines. The world
    /// calls it every [`TICK_US`] of simulated time (and at the end), so a
    /// missed deadline is reported within one tick of passing.
    pub fn check_time(&mut self, t: u64) -> Option<Violation> {
        self.each(|c, p, m| c.tick(p, m, t))
    }

    /// After the quiet period: the lease held by a live replica, every
    /// request answered, and nothing of the fleet leaked.
    pub fn finish(&mut self, t: u64) -> Option<Violation> {
        self.each(|c, p, m| c.finish(p, m, t))
    }

    /// Idle worker-time beyond TTL + one reap interval: over the run, and
    /// after the quiet period settled (µs).
    pub fn idle_overdue_us(&self) -> (u64, u64) {
        self.idle.overdue()
    }

    /// Headroom placeholder pods: the most at once, and pod-µs over the run.
    pub fn headroom_measure(&self) -> (usize, u128) {
        self.headroom.measure()
    }
}

/// How often the world asks the oracle for deadlines that expire with time
/// alone (its ticker), in µs.
pub const TICK_US: u64 = 100_000;

/// Judge a recorded run after the fact: feed its events to a fresh oracle,
/// checking the deadlines at every tick between them as the world does, and
/// the end-of-run checks where the run ended (its `run_end`). The oracle's
/// own verdicts in the trace are skipped. A run that stopped at a violation
/// is judged up to where it stopped.
pub fn judge(params: OracleParams, replicas: usize, events: &[Event]) -> Option<Violation> {
    let mut o = Oracle::new(params, replicas);
    let mut next_tick = TICK_US;
    for e in events {
        while next_tick < e.t {
            if let Some(v) = o.check_time(next_tick) {
                return Some(v);
            }
            next_tick += TICK_US;
        }
        match &e.kind {
            EventKind::Violation { .. } => {}
            EventKind::RunEnd { .. } => return o.check_time(e.t).or_else(|| o.finish(e.t)),
            _ => {
                if let Some(v) = o.observe(e) {
                    return Some(v);
                }
            }
        }
    }
    // No run_end: the run stopped at a violation its end-of-run checks found.
    let t = events.last()?.t;
    o.check_time(t).or_else(|| o.finish(t))
}

fn violation(invariant: &'static str, t: u64, message: String) -> Option<Violation> {
    Some(Violation { invariant, message, at_us: t })
}

/// `12.345s` for messages.
fn secs(t_us: u64) -> String {
    format!("{}.{:03}s", t_us / 1_000_000, (t_us / 1000) % 1000)
}
