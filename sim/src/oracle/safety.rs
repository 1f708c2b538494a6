//! Safety: S1 exclusive effects and S2 no double holder, checked on every
//! event.

use super::{secs, violation, Oracle, Violation};
use haywire_traces::{Event, EventKind};
use std::collections::BTreeMap;

/// Open leader-work intervals: instance → (replica, epoch, start).
#[derive(Default)]
pub struct Intervals {
    open: BTreeMap<u64, (String, u64, u64)>,
}

impl Intervals {
    pub fn close(&mut self, inst: u64) {
        self.open.remove(&inst);
    }
}

impl Oracle {
    /// Judge `e` against the model *before* it is applied.
    pub(super) fn safety(&mut self, e: &Event) -> Option<Violation> {
        let t = e.t;
        match &e.kind {
            // S1: a committed effect must carry the epoch of the lease as
            // the store holds it at that moment, from its holder, unexpired.
            EventKind::EffectWrite { from, epoch, applied: true, seq, .. } => {
                let ok = match &self.m.lease {
                    Some(l) => l.holder == Some(*from) && l.epoch == *epoch && l.expires_at_ms * 1000 > t,
                    None => false,
                };
                if !ok {
                    return violation(
                        "S1",
                        t,
                        format!(
                            "effect seq={} from i{from} with epoch {epoch} committed at {} while the lease is {:?}",
                            seq.unwrap_or(0),
                            secs(t),
                            self.m.lease
                        ),
                    );
                }
                None
            }
            // S2: leader work starts only when no other instance runs any.
            EventKind::LeaseAcquired { epoch } => {
                let inst = e.inst?;
                let clash = self.s2.open.iter().find(|(i, _)| **i != inst).map(|(i, v)| (*i, v.clone()));
                self.s2.open.insert(inst, (e.node.clone(), *epoch, t));
                match clash {
                    Some((other, (node, other_epoch, since))) if self.params.enforce_s2 => violation(
                        "S2",
                        t,
                        format!(
                            "{}/i{inst} started leader work for epoch {epoch} at {} while {node}/i{other} has run \
                             leader work for epoch {other_epoch} since {} and has not stopped",
                            e.node,
                            secs(t),
                            secs(since)
                        ),
                    ),
                    _ => None,
                }
            }
            EventKind::LeaderWorkStopped { .. } => {
                if let Some(inst) = e.inst {
                    self.s2.close(inst);
                }
                None
            }
            _ => None,
        }
    }
}
