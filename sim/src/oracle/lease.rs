//! The lease: S1 exclusive effects, S2 no double holder (safety, on every
//! event) and L1 no abandoned lease (liveness).
//!
//! S1 judges every leader-gated effect where it lands: a committed fenced
//! effect, a fenced worker or slot write the store applied, and a pod or
//! secret call the cluster carried out for a leader-gated task (the task
//! probe marks those). Each must come from the instance that holds the live
//! lease at that moment, at that epoch.
//!
//! S2 judges leadership by the leader-gated tasks themselves: an instance
//! leads for an epoch from its first leader task starting until its last
//! one has actually finished, or its process died (the task probe and the
//! injector say so, never core).
//!
//! L1 deadlines start only once the world lets the system act (store calm,
//! no lease outage, some replica healthy); the quiet period at the end makes
//! sure each gets its turn.

use super::model::Model;
use super::{secs, violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind, SlotReply};
use std::collections::BTreeMap;

/// An instance running leader work for one epoch.
#[derive(Clone, Debug)]
struct Term {
    node: String,
    since: u64,
    /// Leader tasks started and not yet finished.
    running: u32,
}

#[derive(Default)]
pub struct LeaseCheck {
    /// (instance, epoch) → its open term.
    open: BTreeMap<(u64, u64), Term>,
}

impl LeaseCheck {
    /// S1: an effect from `from` for `epoch` lands at `t`.
    fn exclusive(&self, m: &Model, t: u64, from: u64, epoch: u64, what: String) -> Option<Violation> {
        if m.holds_lease(from, epoch, t) {
            return None;
        }
        violation(
            "S1",
            t,
            format!(
                "exclusive effects: {what} from i{from} for lease epoch {epoch} landed at {} while the lease is {}",
                secs(t),
                match &m.lease {
                    None => "not taken".to_string(),
                    Some(l) => format!(
                        "held by {} at epoch {} until {}",
                        l.holder.map_or("nobody".to_string(), |h| format!("i{h}")),
                        l.epoch,
                        secs(l.expires_at_ms * 1000)
                    ),
                }
            ),
        )
    }

    fn close_instance(&mut self, inst: u64) {
        self.open.retain(|(i, _), _| *i != inst);
    }

    /// L1: a free, expired or gracefully abandoned lease is taken by some
    /// healthy replica within the takeover bound.
    fn takeover(&self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        let since = m.abandoned_since(t)?;
        if !m.store_calm() || !m.lease_calm() {
            return None;
        }
        let healthy = m.any_healthy_since()?;
        let start = since.max(healthy).max(m.calm_since).max(m.lease_calm_since);
        if t <= start + p.takeover_us {
            return None;
        }
        let why = match &m.lease {
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
                secs(p.takeover_us)
            ),
        )
    }

    /// L1: a replica that does not hold the lease keeps asking the store.
    fn keeps_contending(&self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        if !m.store_calm() || !m.lease_calm() {
            return None;
        }
        for (i, r) in m.reps.iter().enumerate() {
            let (Some(inst), Some(healthy)) = (r.inst, r.healthy_since) else { continue };
            let Some(nonholder) = m.nonholder_since(inst, t) else { continue };
            let base = r.last_contact.max(healthy).max(nonholder).max(m.calm_since).max(m.lease_calm_since);
            if t > base + p.contend_us {
                return violation(
                    "L1",
                    t,
                    format!(
                        "keeps contending: r{}/i{inst} is healthy and does not hold the lease, but the store has not \
                         heard from it since {} ({} ago, bound {})",
                        i + 1,
                        secs(r.last_contact),
                        secs(t - r.last_contact),
                        secs(p.contend_us)
                    ),
                );
            }
        }
        None
    }
}

impl Check for LeaseCheck {
    fn observe(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let t = e.t;
        match &e.kind {
            EventKind::EffectWrite { from, epoch, applied: true, seq, key, .. } => {
                self.exclusive(m, t, *from, *epoch, format!("effect seq={} key={key:?}", seq.unwrap_or(0)))
            }
            EventKind::WorkerWrite { from, op, id, applied: true, fence: Some(epoch), .. } => {
                self.exclusive(m, t, *from, *epoch, format!("fenced worker {op:?} of {id}"))
            }
            EventKind::SlotWrite { from, op, worker, result, fence: Some(epoch), .. }
                if !matches!(result, SlotReply::Fenced | SlotReply::NotFound) =>
            {
                self.exclusive(m, t, *from, *epoch, format!("fenced slot {op:?} of {worker}"))
            }
            EventKind::PodDeleted { from, name, gated: Some(epoch) } => {
                self.exclusive(m, t, *from, *epoch, format!("pod delete {name}"))
            }
            EventKind::SecretDeleted { from, name, gated: Some(epoch) } => {
                self.exclusive(m, t, *from, *epoch, format!("secret delete {name}"))
            }
            EventKind::SecretCreated { from, name, gated: Some(epoch) } => {
                self.exclusive(m, t, *from, *epoch, format!("secret create {name}"))
            }
            EventKind::PodCreated { from, name, gated: Some(epoch), .. } => {
                self.exclusive(m, t, *from, *epoch, format!("pod create {name}"))
            }
            // S2: leader work starts only when no other term runs any.
            EventKind::LoopStarted { epoch, .. } => {
                let inst = e.inst?;
                let clash = self.open.iter().find(|(k, _)| **k != (inst, *epoch)).map(|(k, v)| (*k, v.clone()));
                let term = self.open.entry((inst, *epoch)).or_insert(Term { node: e.node.clone(), since: t, running: 0 });
                term.running += 1;
                match clash {
                    Some(((other, other_epoch), term)) if m.s2_promised(p, t) => violation(
                        "S2",
                        t,
                        format!(
                            "no double holder: {}/i{inst} started leader work for epoch {epoch} at {} while {}/i{other} \
                             has run leader work for epoch {other_epoch} since {} and its tasks have not finished",
                            e.node,
                            secs(t),
                            term.node,
                            secs(term.since)
                        ),
                    ),
                    _ => None,
                }
            }
            EventKind::LoopStopped { epoch, .. } => {
                let inst = e.inst?;
                if let Some(term) = self.open.get_mut(&(inst, *epoch)) {
                    term.running = term.running.saturating_sub(1);
                    if term.running == 0 {
                        self.open.remove(&(inst, *epoch));
                    }
                }
                None
            }
            // The process is gone and its tasks with it.
            EventKind::Crash { target } | EventKind::SelfFenced { target } | EventKind::Exited { target, .. } => {
                if let Some(inst) = m.rep(target).and_then(|r| r.inst) {
                    self.close_instance(inst);
                }
                None
            }
            _ => None,
        }
    }

    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        self.takeover(p, m, t).or_else(|| self.keeps_contending(p, m, t))
    }

    /// At the end of the quiet period a live replica must hold the lease.
    fn finish(&mut self, _p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        if m.reps.iter().all(|r| !r.up) {
            return None;
        }
        match m.live_holder(t) {
            Some(h) if m.is_up(h) => None,
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
