//! Capacity slots: one per live worker, reserved before its spawn, so the
//! org and global caps hold across replicas (invariant S4).

use super::{fence_holds, FenceView, Outcome};
use crate::clock::Millis;
use crate::store::{SlotRecord, SlotResult};

/// Reserve a slot for `worker`, given its slot if it holds one, and how many
/// slots its org and the whole fleet hold. Checked in order: Exists, OrgCap,
/// GlobalCap. The caps are the caller's, per request, and a cap already
/// exceeded refuses too.
#[allow(clippy::too_many_arguments)]
pub fn reserve(
    held: Option<&SlotRecord>,
    in_org: usize,
    total: usize,
    worker: &str,
    org: &str,
    org_cap: u32,
    global_cap: u32,
    now: Millis,
) -> Outcome<SlotResult, SlotRecord> {
    if held.is_some() {
        Outcome::refuse(SlotResult::Exists)
    } else if in_org >= org_cap as usize {
        Outcome::refuse(SlotResult::OrgCap)
    } else if total >= global_cap as usize {
        Outcome::refuse(SlotResult::GlobalCap)
    } else {
        let slot = SlotRecord { worker: worker.to_string(), org: org.to_string(), reserved_at: now };
        Outcome::write(SlotResult::Reserved, slot)
    }
}

/// Free `worker`'s slot, given the slot it holds: Fenced if a fence is
/// carried and fails (decided first: a deposed leader learns nothing),
/// NotFound if it holds none. `Freed` is the one answer that writes: the
/// row goes.
pub fn free(held: Option<&SlotRecord>, fence: FenceView<'_>, now: Millis) -> SlotResult {
    if !fence_holds(fence, now) {
        SlotResult::Fenced
    } else if held.is_some() {
        SlotResult::Freed
    } else {
        SlotResult::NotFound
    }
}
