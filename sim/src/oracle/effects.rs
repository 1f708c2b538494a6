//! E1 effects at most once: judged from the store's effect log, each
//! leader-gated effect's idempotency key (the epoch, sweep and step it
//! belongs to) commits at most once, even when a retry follows a commit
//! whose reply was lost (field report 004: "retries on any error, including
//! post-commit connection drops where the server already applied the
//! INSERT").

use super::model::Model;
use super::{secs, violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct EffectCheck {
    /// key → (seq, committed at)
    committed: BTreeMap<String, (u64, u64)>,
}

impl Check for EffectCheck {
    fn observe(&mut self, _p: &OracleParams, _m: &Model, e: &Event) -> Option<Violation> {
        let EventKind::EffectWrite { from, key, applied: true, seq, .. } = &e.kind else { return None };
        if key.is_empty() {
            return violation("E1", e.t, format!("effects at most once: an effect from i{from} committed with no key"));
        }
        if let Some((first, at)) = self.committed.get(key) {
            return violation(
                "E1",
                e.t,
                format!(
                    "effects at most once: effect {key:?} committed again (seq {}) by i{from}; it first committed \
                     as seq {first} at {}",
                    seq.unwrap_or(0),
                    secs(*at)
                ),
            );
        }
        self.committed.insert(key.clone(), (seq.unwrap_or(0), e.t));
        None
    }
}
