//! The idle floors of L2 (see [`super::idle`]), kept up to date instead of
//! recomputed: each live instance's newest `min_hot_idle` hot-idle workers.
//!
//! A floor is marked on every tick and before every worker write, so
//! rebuilding every owner's floor from every idle worker each time cost
//! O(live workers) per event (design doc §12). Here each candidate is filed
//! under its row's owner in the floor rule's order, and a mark refiles only
//! the workers whose inputs changed since the last one and recomputes only
//! their owners' floors (and those of instances newly dead).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// A candidate's place in its owner's order: newest first as the store
/// stamps it (whole milliseconds), ties by id (the design's floor rule).
type Rank = (Reverse<u64>, Reverse<String>);

#[derive(Default)]
pub(super) struct Floors {
    /// Candidates (hot-idle rows idle to the oracle) by row owner, in rank
    /// order.
    by_owner: BTreeMap<u64, BTreeSet<Rank>>,
    /// Where each candidate is filed: its owner and idle millisecond.
    filed: BTreeMap<String, (u64, u64)>,
    /// Each owner's floor as of the last recompute.
    kept: BTreeMap<u64, BTreeSet<String>>,
    /// Every floor's members, each with the owner whose floor holds it: one
    /// lookup for [`Floors::contains`], which a tick asks of every worker
    /// idle long enough to be overdue (most of them floors; design doc §12).
    members: BTreeMap<String, u64>,
}

impl Floors {
    /// File `id` as a candidate of `owner` idle since millisecond `ms`, or
    /// take it out (None). Returns the owners whose floor may have changed.
    pub fn refile(&mut self, id: &str, cand: Option<(u64, u64)>) -> impl Iterator<Item = u64> {
        let old = self.filed.get(id).copied();
        if old == cand {
            return None.into_iter().chain(None);
        }
        if let Some((owner, ms)) = old {
            self.filed.remove(id);
            if let Some(set) = self.by_owner.get_mut(&owner) {
                set.remove(&(Reverse(ms), Reverse(id.to_string())));
                if set.is_empty() {
                    self.by_owner.remove(&owner);
                }
            }
        }
        if let Some((owner, ms)) = cand {
            self.filed.insert(id.to_string(), (owner, ms));
            self.by_owner.entry(owner).or_default().insert((Reverse(ms), Reverse(id.to_string())));
        }
        old.map(|(o, _)| o).into_iter().chain(cand.map(|(o, _)| o))
    }

    /// Recompute `owner`'s floor: its first `k` candidates, none if it is
    /// dead. Returns the workers that entered or left it.
    pub fn recompute(&mut self, owner: u64, dead: bool, k: usize) -> Vec<String> {
        let new: BTreeSet<String> = if dead {
            BTreeSet::new()
        } else {
            self.by_owner.get(&owner).into_iter().flatten().take(k).map(|(_, Reverse(id))| id.clone()).collect()
        };
        let old = self.kept.remove(&owner).unwrap_or_default();
        let moved = old.symmetric_difference(&new).cloned().collect();
        for id in old.difference(&new) {
            // A worker refiled to another owner may have entered that
            // owner's floor first: only this owner's entry leaves.
            if self.members.get(id) == Some(&owner) {
                self.members.remove(id);
            }
        }
        for id in new.difference(&old) {
            self.members.insert(id.clone(), owner);
        }
        if !new.is_empty() {
            self.kept.insert(owner, new);
        }
        moved
    }

    /// Whether `id` is in its owner's floor.
    pub fn contains(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    /// Every floor's members (for checking against a full rebuild).
    #[cfg(test)]
    pub fn all(&self) -> BTreeSet<String> {
        let all: BTreeSet<String> = self.kept.values().flatten().cloned().collect();
        assert_eq!(all, self.members.keys().cloned().collect(), "members hold every floor's workers and no other");
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The floor rule applied to every candidate at once, as L2 used to.
    fn rebuilt(cands: &BTreeMap<String, (u64, u64)>, dead: &BTreeSet<u64>, k: usize) -> BTreeSet<String> {
        let mut by_owner: BTreeMap<u64, Vec<(u64, &str)>> = BTreeMap::new();
        for (id, &(owner, ms)) in cands {
            if !dead.contains(&owner) {
                by_owner.entry(owner).or_default().push((ms, id));
            }
        }
        let mut kept = BTreeSet::new();
        for (_, mut idle) in by_owner {
            idle.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)));
            kept.extend(idle.into_iter().take(k).map(|(_, id)| id.to_string()));
        }
        kept
    }

    #[derive(Debug, Clone)]
    enum Op {
        File { id: u8, owner: u8, ms: u8 },
        Unfile { id: u8 },
        Die { owner: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..12, 0u8..4, 0u8..6).prop_map(|(id, owner, ms)| Op::File { id, owner, ms }),
            2 => (0u8..12).prop_map(|id| Op::Unfile { id }),
            1 => (0u8..4).prop_map(|owner| Op::Die { owner }),
        ]
    }

    proptest! {
        /// Refiling the changed workers and recomputing their owners gives
        /// the same floors as rebuilding them all, and every worker whose
        /// membership changed is reported as moved (one that moved between
        /// two owners' floors is reported too).
        #[test]
        fn incremental_floors_match_a_full_rebuild(ops in proptest::collection::vec(op(), 1..60), k in 1usize..4) {
            let mut f = Floors::default();
            let mut cands = BTreeMap::new();
            let mut dead = BTreeSet::new();
            let mut before = BTreeSet::new();
            for op in ops {
                let mut owners = BTreeSet::new();
                match op {
                    Op::File { id, owner, ms } => {
                        let (id, cand) = (format!("w{id}"), (u64::from(owner), u64::from(ms)));
                        cands.insert(id.clone(), cand);
                        owners.extend(f.refile(&id, Some(cand)));
                    }
                    Op::Unfile { id } => {
                        let id = format!("w{id}");
                        cands.remove(&id);
                        owners.extend(f.refile(&id, None));
                    }
                    Op::Die { owner } => {
                        dead.insert(u64::from(owner));
                        owners.insert(u64::from(owner));
                    }
                }
                let mut moved = BTreeSet::new();
                for o in owners {
                    moved.extend(f.recompute(o, dead.contains(&o), k));
                }
                let want = rebuilt(&cands, &dead, k);
                prop_assert_eq!(f.all(), want.clone());
                for id in cands.keys() {
                    prop_assert_eq!(f.contains(id), want.contains(id));
                }
                let changed: BTreeSet<String> = before.symmetric_difference(&want).cloned().collect();
                prop_assert!(changed.is_subset(&moved), "changed {:?}, reported {:?}", changed, moved);
                before = want;
            }
        }
    }
}
