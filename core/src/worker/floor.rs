//! The floor: the one rule both reapers follow for idle workers (docs/design.md
//! §2.4, "Reapers"), stated here and nowhere else.
//!
//! **Each live instance keeps its newest `min_hot_idle` hot-idle workers**
//! (newest by `idle_since`, ties broken by id, the larger id newer),
//! whatever their age; every other hot-idle worker is retired once it has
//! been idle for `hot_idle_ttl_ms` (store time). The floor is per owner,
//! not per fleet: N live instances keep up to N × `min_hot_idle` idle
//! workers between them.
//!
//! Both reapers apply it through [`expired_beyond_floor`] and nothing else:
//! the leader-gated janitor over every owner's rows (its idle pass), and
//! each replica over its own pool's rows only (`Pool::retire_expired_idle`,
//! which leaves out rows the pool does not serve from, such as a take-over
//! the janitor claimed only to retire): the fallback reaper on its view,
//! and the janitor on a fresh read of its own rows. The janitor's view may
//! be seconds old at fleet scale, so its claim of another owner's worker
//! names an [`IdleFloor`] and the store judges the rule again, through
//! [`lets_go`], in the claim's own write.
//! Dead instances keep no floor: their workers are retired by the
//! dead-owners passes whatever their age (this function groups by whatever
//! owners its rows name; it is not what spares or takes a dead owner's
//! worker). The oracle's L2 (`sim/src/oracle/idle.rs`) judges the same
//! rule from the store: no worker is reaped before its TTL or inside a live
//! owner's floor, and every one beyond it is retired within a reap interval.

use super::WorkerState;
use crate::clock::Millis;
use crate::ids::InstanceId;
use crate::store::{IdleFloor, WorkerRecord};
use std::collections::BTreeMap;

/// The hot-idle rows of `rows` that are past the TTL at store time `now`
/// and kept by no owner's floor; only `owner`'s if given. Callers leave out
/// rows that are nobody's idle workers (a take-over in progress, which a
/// reaper claimed only to retire it).
pub fn expired_beyond_floor<'a>(
    rows: impl IntoIterator<Item = &'a WorkerRecord>,
    owner: Option<InstanceId>,
    min_hot_idle: u32,
    ttl_ms: u64,
    now: Millis,
) -> Vec<&'a WorkerRecord> {
    let mut by_owner: BTreeMap<InstanceId, Vec<&WorkerRecord>> = BTreeMap::new();
    for r in rows.into_iter().filter(|r| r.state == WorkerState::HotIdle && owner.is_none_or(|o| r.owner == o)) {
        by_owner.entry(r.owner).or_default().push(r);
    }
    let mut out = Vec::new();
    for (_, mut idle) in by_owner {
        idle.sort_by(|a, b| (b.idle_since, &b.id).cmp(&(a.idle_since, &a.id)));
        out.extend(
            idle.into_iter().skip(min_hot_idle as usize).filter(|r| r.idle_since.saturating_add(ttl_ms) <= now),
        );
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Whether `floor` lets `w` go at store time `now`, judged over
/// `owner_idle`: every hot-idle row of `w`'s owner as the store holds them
/// in the claim's write (`w` among them if it is hot-idle).
pub fn lets_go(w: &WorkerRecord, owner_idle: &[WorkerRecord], floor: &IdleFloor, now: Millis) -> bool {
    expired_beyond_floor(owner_idle, Some(w.owner), floor.keep, floor.ttl_ms, now).iter().any(|r| r.id == w.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, owner: u64, state: WorkerState, idle_since: Millis) -> WorkerRecord {
        WorkerRecord {
            id: id.into(),
            org: "o".into(),
            state,
            owner: InstanceId(owner),
            owner_epoch: 1,
            pod: format!("pod-{id}"),
            secret: format!("secret-{id}"),
            session: None,
            created_at: 0,
            updated_at: idle_since,
            idle_since,
            version: 1,
        }
    }

    fn ids(v: Vec<&WorkerRecord>) -> Vec<&str> {
        v.into_iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn each_owner_keeps_its_newest() {
        let rows = vec![
            row("a1", 1, WorkerState::HotIdle, 0),
            row("a2", 1, WorkerState::HotIdle, 10),
            row("b1", 2, WorkerState::HotIdle, 5),
            row("b2", 2, WorkerState::Hot, 50),
            row("c1", 3, WorkerState::HotIdle, 100),
        ];
        // TTL 60 at 200: all hot-idle rows expired; each owner keeps one.
        assert_eq!(ids(expired_beyond_floor(&rows, None, 1, 60, 200)), ["a1"]);
        assert_eq!(ids(expired_beyond_floor(&rows, None, 0, 60, 200)), ["a1", "a2", "b1", "c1"]);
        assert_eq!(ids(expired_beyond_floor(&rows, Some(InstanceId(1)), 0, 60, 200)), ["a1", "a2"]);
        // Young rows are never taken, floor or not.
        assert_eq!(ids(expired_beyond_floor(&rows, None, 0, 60, 65)), ["a1", "b1"]);
        // Ties in idle_since break by id (the larger id is newer).
        let tie = vec![row("x1", 1, WorkerState::HotIdle, 0), row("x2", 1, WorkerState::HotIdle, 0)];
        assert_eq!(ids(expired_beyond_floor(&tie, None, 1, 60, 200)), ["x1"]);
    }

    #[test]
    fn lets_go_judges_the_rows_as_they_are_now() {
        let floor = IdleFloor { keep: 1, ttl_ms: 60 };
        let (old, new) = (row("a1", 1, WorkerState::HotIdle, 0), row("a2", 1, WorkerState::HotIdle, 10));
        assert!(lets_go(&old, &[old.clone(), new.clone()], &floor, 200), "beyond the floor and past the TTL");
        assert!(!lets_go(&new, &[old.clone(), new.clone()], &floor, 200), "the newest is the floor");
        // The newer one was taken since the reaper's view: the old one is
        // now the owner's newest idle worker, kept.
        assert!(!lets_go(&old, &[old.clone()], &floor, 200));
        assert!(!lets_go(&old, &[old.clone(), new.clone()], &floor, 59), "not yet past the TTL");
        // Not hot-idle (absent from the owner's hot-idle rows): never.
        let busy = row("a3", 1, WorkerState::Hot, 0);
        assert!(!lets_go(&busy, &[old.clone(), new.clone()], &floor, 200));
        // Another owner's rows do not count toward this one's floor.
        let other = row("b1", 2, WorkerState::HotIdle, 50);
        assert!(!lets_go(&old, &[old.clone(), other], &floor, 200));
    }
}
