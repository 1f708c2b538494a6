//! Instances: one row per process incarnation and its last heartbeat.

use super::Outcome;
use crate::clock::Millis;
use crate::ids::InstanceId;
use crate::store::InstanceRecord;

/// Dead at store time `now`: no heartbeat for `dead_after_ms`. What a dead
/// instance owned is anyone's to take; the store and every reaper judge
/// death by this one rule (`registry::is_dead` re-exports it).
pub fn is_dead(rec: &InstanceRecord, now: Millis, dead_after_ms: u64) -> bool {
    heard_too_long_ago(rec.heartbeat_at, now, dead_after_ms)
}

/// [`is_dead`] of an instance last heard at `heartbeat_at` (a store that
/// reads the heartbeat alone).
pub fn heard_too_long_ago(heartbeat_at: Millis, now: Millis, dead_after_ms: u64) -> bool {
    heartbeat_at.saturating_add(dead_after_ms) <= now
}

/// Register or heartbeat instance `id`: `heartbeat_at = now`, and
/// `started_at = now` on first sight. With `dead_after_ms`, an instance the
/// store already holds dead by it is refused (`false`) and nothing changes:
/// the store never revives a dead instance, since what it owned may be
/// someone else's by now (docs/design.md §2.6). An unknown instance is not dead,
/// whatever the threshold. Without one it is the plain upsert.
pub fn stamp(
    current: Option<&InstanceRecord>,
    id: InstanceId,
    dead_after_ms: Option<u64>,
    now: Millis,
) -> Outcome<bool, InstanceRecord> {
    match current {
        Some(rec) if dead_after_ms.is_some_and(|d| is_dead(rec, now, d)) => Outcome::refuse(false),
        Some(rec) => Outcome::write(true, InstanceRecord { heartbeat_at: now, ..rec.clone() }),
        None => Outcome::write(true, InstanceRecord { id, started_at: now, heartbeat_at: now, draining: false }),
    }
}

/// Mark instance `id` draining (it is shutting down and hands its sessions
/// over). Refused (`false`) if the store does not hold it, or holds it dead
/// by `dead_after_ms`: a dead instance owns nothing to hand over. Marking
/// twice is a no-op that succeeds.
pub fn drain(
    current: Option<&InstanceRecord>,
    dead_after_ms: Option<u64>,
    now: Millis,
) -> Outcome<bool, InstanceRecord> {
    match current {
        None => Outcome::refuse(false),
        Some(rec) if dead_after_ms.is_some_and(|d| is_dead(rec, now, d)) => Outcome::refuse(false),
        Some(rec) if rec.draining => Outcome::refuse(true),
        Some(rec) => Outcome::write(true, InstanceRecord { draining: true, ..rec.clone() }),
    }
}

/// Whether a session's worker owned by `owner` may be taken over at store
/// time `now` (docs/design.md §2.5): its owner is unknown, dead, or
/// draining. `list` is the instance table read at takeover time.
pub fn gives_up_sessions(list: &[InstanceRecord], owner: InstanceId, now: Millis, dead_after_ms: u64) -> bool {
    match list.iter().find(|r| r.id == owner) {
        None => true,
        Some(r) => r.draining || is_dead(r, now, dead_after_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, heartbeat_at: Millis, draining: bool) -> InstanceRecord {
        InstanceRecord { id: InstanceId(id), started_at: 0, heartbeat_at, draining }
    }

    #[test]
    fn drain_marks_a_live_instance_once() {
        let live = rec(1, 100, false);
        let out = drain(Some(&live), Some(30), 120);
        assert_eq!((out.reply, out.next), (true, Some(rec(1, 100, true))));
        let again = drain(Some(&rec(1, 100, true)), Some(30), 125);
        assert_eq!((again.reply, again.next), (true, None), "marking twice writes nothing");
        assert_eq!(drain(Some(&live), Some(30), 130).reply, false, "dead at heartbeat + threshold");
        assert_eq!(drain(None, Some(30), 0).reply, false, "unknown");
        assert_eq!(drain(Some(&live), None, 10_000).reply, true, "no threshold: no death check");
    }

    #[test]
    fn sessions_are_given_up_by_dead_draining_or_unknown_owners_only() {
        let list = [rec(1, 100, false), rec(2, 100, true)];
        assert!(!gives_up_sessions(&list, InstanceId(1), 129, 30), "alive");
        assert!(gives_up_sessions(&list, InstanceId(1), 130, 30), "dead");
        assert!(gives_up_sessions(&list, InstanceId(2), 101, 30), "draining, though alive");
        assert!(gives_up_sessions(&list, InstanceId(3), 101, 30), "unknown");
    }
}
