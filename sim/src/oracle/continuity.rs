//! Sessions across replicas (docs/design.md §2.5): S7 session continuity
//! (safety, and its liveness half) and L4 bounded drain.
//!
//! - S7, one owner at a time: a session's worker (hot, bound to it) is
//!   taken over by another replica only once its owner gave it up: the
//!   owner's process is gone (crashed, exited, fenced), or the store holds
//!   it dead (no heartbeat taken for the threshold) or draining. Judged
//!   from the claim the store committed, the instance table it committed
//!   and what the injector did; never from what a replica says.
//! - S7, resumed as promised: a reconnect answered with a worker resumes
//!   the session on the worker it started on, which the store then binds
//!   to that session, hot, owned by the instance that answered; that
//!   instance is not one the injector asked to stop (a draining replica
//!   takes no session); and one reconnect is answered with a worker by at
//!   most one replica.
//! - S7, never silently lost: a client does not give up reconnecting while
//!   the world was calm throughout (store and cluster unfaulted, pauses and
//!   drift within bounds, a replica healthy) and the store kept its worker
//!   hot, bound to it, with its pod running.
//! - S7, the durable record tells the truth: when the run ends no worker
//!   row is still bound to a session (every session is over by then).
//! - L4: a replica asked to stop exits within the drain bound (drain
//!   timeout, lease release, a few calls, slack) unless a fault slowed it.

use super::model::Model;
use super::{secs, violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind, Lifecycle, WorkerOp};
use std::collections::BTreeMap;

/// A shutdown the injector asked for, not yet ended by an exit.
struct Drain {
    replica: String,
    asked: u64,
    /// A fault touched the replica, the store or the cluster meanwhile:
    /// the bound is not promised.
    disturbed: bool,
}

#[derive(Default)]
pub struct ContinuityCheck {
    /// By instance.
    drains: BTreeMap<u64, Drain>,
}

/// The error a client records when it gives up reconnecting.
pub const GAVE_UP: &str = "gave up reconnecting";

impl ContinuityCheck {
    /// S7: `claimer` took `worker` over from `before.owner` while the row
    /// was bound to a session and stays so.
    fn takeover(&self, p: &OracleParams, m: &Model, t: u64, id: &str, claimer: u64) -> Option<Violation> {
        let before = m.workers.get(id)?;
        let session = before.session?;
        let owner = before.owner;
        if before.state != Lifecycle::Hot || owner == claimer {
            return None;
        }
        if m.gone_or_dead(owner, t, p.fleet.dead_threshold_us) || m.draining.contains(&owner) {
            return None;
        }
        violation(
            "S7",
            t,
            format!(
                "one owner at a time: i{claimer} took {id} over for session {session} from i{owner}, which is up, \
                 alive in the store (heartbeat taken at {}) and not draining",
                secs(m.beats.get(&owner).copied().unwrap_or(0))
            ),
        )
    }

    /// S7 when a client is told its session goes on at `replica`.
    fn resumed(&self, p: &OracleParams, m: &Model, t: u64, session: u64, worker: &str, replica: &str) -> Option<Violation> {
        let bad = |why: String| violation("S7", t, format!("resumed as promised: session {session} resumed by {replica} on {worker}, but {why}"));
        let Some(s) = m.sessions.get(&session) else { return bad("it was never requested".into()) };
        match &s.answer {
            super::model::Answer::Holding { worker: w, .. } if w == worker => {}
            super::model::Answer::Holding { worker: w, .. } => return bad(format!("it started on {w}")),
            other => return bad(format!("its client does not hold it ({other:?})")),
        }
        if s.reconnecting.is_none() {
            return bad("another replica had already resumed this reconnect: two replicas serve it".into());
        }
        // The answer left no earlier than this: an answer still in flight
        // when its replica went down or was asked to stop was given before.
        let sent_by = t.saturating_sub(p.fleet.reply_flight_us);
        let answering = m.instances_up_since(replica, sent_by);
        // The instance the store bound it under, if it is one of them.
        let inst = match (m.bindings.get(&session), answering.first()) {
            (Some((_, owner)), _) if answering.contains(owner) => *owner,
            (_, Some(&first)) => first,
            (_, None) => {
                return bad(format!("that replica is not up, and was not at {} (when the answer can have left at the earliest)", secs(sent_by)));
            }
        };
        if let Some(&asked) = m.shutdown_asked.get(&inst).filter(|&&asked| asked <= sent_by) {
            return bad(format!(
                "i{inst} is draining (asked to stop at {}, before the answer can have left, at {} at the earliest): it must take no session",
                secs(asked),
                secs(sent_by)
            ));
        }
        // The store's last hot binding of the session: this worker, under
        // the instance that answered (it may have ended since, say its pod
        // died after the answer left; the client hears of that next).
        match m.bindings.get(&session) {
            Some((w, owner)) if w == worker && *owner == inst => None,
            Some((w, owner)) => bad(format!("the store last bound it hot to {w} under i{owner}, not to {worker} under i{inst}")),
            None => bad("the store never bound it hot to any worker".into()),
        }
    }

    /// S7: a client gave up reconnecting at `t`; fine unless the world let
    /// the session go on all along.
    fn gave_up(&self, p: &OracleParams, m: &Model, t: u64, session: u64, worker: &str) -> Option<Violation> {
        let since = m.sessions.get(&session)?.reconnecting?;
        let calm = m.s2_promised(p, t)
            && m.store_calm()
            && m.calm_since <= since
            && m.cluster_calm()
            && m.cluster_calm_since <= since
            && m.ops_calm_since(&super::model::CLUSTER_OPS).is_some_and(|c| c <= since)
            && m.reps.iter().any(|r| r.healthy_since.is_some_and(|h| h <= since));
        let row = m.workers.get(worker)?;
        let kept = row.state == Lifecycle::Hot && row.session == Some(session) && m.pod_dead_since(worker).is_none();
        if !calm || !kept {
            return None;
        }
        violation(
            "S7",
            t,
            format!(
                "never silently lost: session {session}'s client gave up reconnecting (since {}) in a calm world \
                 while the store kept {worker} hot and bound to it, its pod running",
                secs(since)
            ),
        )
    }

    /// S7: a reconnecting client was told its session ended with an
    /// error; the store must not still say it goes on (the replica that
    /// answered persists the truth first), unless a fault kept the write
    /// from landing.
    fn told_ended(&self, m: &Model, t: u64, session: u64, worker: &str) -> Option<Violation> {
        let since = m.sessions.get(&session)?.reconnecting?;
        let row = m.workers.get(worker).filter(|r| r.state == Lifecycle::Hot && r.session == Some(session))?;
        let owner_ok = m.proc_of(row.owner).is_some_and(|r| r.up && !r.paused && !r.partitioned && !r.slow);
        if !m.store_calm() || m.calm_since > since || !m.is_up(row.owner) || !owner_ok {
            return None;
        }
        violation(
            "S7",
            t,
            format!(
                "the durable record tells the truth: session {session}'s client was told it ended, yet the store \
                 holds {worker} hot and bound to it under i{} (up)",
                row.owner
            ),
        )
    }

    fn disturb(&mut self, target: Option<&str>) {
        for d in self.drains.values_mut() {
            if target.is_none_or(|t| t == d.replica) {
                d.disturbed = true;
            }
        }
    }

    fn end_drain(&mut self, target: &str) {
        self.drains.retain(|_, d| d.replica != target);
    }
}

impl Check for ContinuityCheck {
    fn observe(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let t = e.t;
        match &e.kind {
            EventKind::WorkerWrite { from, op: WorkerOp::Claim, id, applied: true, worker: Some(after), .. }
                if after.state == Lifecycle::Hot && after.session.is_some() =>
            {
                let same = m.workers.get(id).is_some_and(|b| b.session == after.session);
                if same {
                    return self.takeover(p, m, t, id, *from);
                }
                None
            }
            EventKind::SessionResumed { session, worker, replica } => self.resumed(p, m, t, *session, worker, replica),
            EventKind::SessionLost { session, worker, error } if error.starts_with(GAVE_UP) => {
                self.gave_up(p, m, t, *session, worker)
            }
            EventKind::SessionLost { session, worker, .. } => self.told_ended(m, t, *session, worker),
            EventKind::ShutdownRequested { target } => {
                if let Some(inst) = m.rep(target).and_then(|r| r.inst) {
                    let healthy = m.rep(target).is_some_and(|r| r.healthy());
                    let disturbed = !healthy || !m.store_calm() || !m.cluster_calm();
                    self.drains.insert(inst, Drain { replica: target.clone(), asked: t, disturbed });
                }
                None
            }
            EventKind::Exited { target, .. } | EventKind::Crash { target } | EventKind::SelfFenced { target } => {
                self.end_drain(target);
                None
            }
            EventKind::Pause { target, .. }
            | EventKind::Partition { target }
            | EventKind::ClusterPartition { target }
            | EventKind::StoreSlow { target, .. } => {
                self.disturb(Some(target));
                None
            }
            EventKind::StoreFaults { .. }
            | EventKind::StoreStall { .. }
            | EventKind::LeaseOutage { .. }
            | EventKind::ClusterSlow { .. }
            | EventKind::ClusterOpsFault { .. }
            | EventKind::DeleteRefused { .. }
            | EventKind::PodFailures { .. } => {
                self.disturb(None);
                None
            }
            _ => None,
        }
    }

    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        let late = self.drains.iter().find(|(inst, d)| !d.disturbed && m.is_up(**inst) && t > d.asked + p.fleet.drain_bound_us);
        let (inst, d) = late?;
        let v = violation(
            "L4",
            t,
            format!(
                "a drain ends within its bound: {} (i{inst}) was asked to stop at {} and has not exited {} later",
                d.replica,
                secs(d.asked),
                secs(p.fleet.drain_bound_us)
            ),
        );
        // Reported once.
        let inst = *inst;
        self.drains.remove(&inst);
        v
    }

    fn finish(&mut self, _p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        let bound: Vec<String> = m
            .workers
            .iter()
            .filter(|(_, r)| r.state == Lifecycle::Hot && r.session.is_some())
            .map(|(id, r)| format!("{id} (session {}, owner i{})", r.session.unwrap_or(0), r.owner))
            .collect();
        if bound.is_empty() {
            return None;
        }
        violation(
            "S7",
            t,
            format!("the durable record tells the truth: every session is over, yet the store still binds {bound:?}"),
        )
    }
}
