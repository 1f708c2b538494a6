//! Workers: every change is a CAS on `(id, owner, owner_epoch)` along the
//! lifecycle (`store/lifecycle.rs`); taking ownership bumps `owner_epoch`,
//! so a stale owner's write is refused (invariant S3).

use super::{assert_bumped, bump, fence_holds, FenceView, Outcome};
use crate::clock::Millis;
use crate::ids::InstanceId;
use crate::store::{IdleFloor, OwnScope, SlotRecord, StoreError, WorkerCas, WorkerReject, WorkerRecord, WorkerState};
use std::collections::BTreeSet;

pub type WorkerOutcome = Outcome<WorkerCas, WorkerRecord>;

/// Insert `worker` as given, but stamped by the store: `created_at =
/// updated_at = idle_since = now`, `version = 1`. Exists (with the row as it
/// is now) if the id is taken: an id is inserted once.
pub fn insert(current: Option<&WorkerRecord>, worker: &WorkerRecord, now: Millis) -> WorkerOutcome {
    if let Some(w) = current {
        return rejected(WorkerReject::Exists, Some(w));
    }
    let rec = WorkerRecord { created_at: now, updated_at: now, idle_since: now, version: 1, ..worker.clone() };
    Outcome::write(WorkerCas::Applied(rec.clone()), rec)
}

/// Move the worker `from → to` as `(owner, epoch)`, bound to `session`.
/// Checked in order: NoWorker, Fenced, StaleOwner, WrongState (`state !=
/// from`), BadTransition (not a lifecycle step). `from == to` is a
/// heartbeat. Applied: `updated_at = now`, and `idle_since = now` only on
/// entering hot-idle, so the idle clock is not reset by staying idle.
#[allow(clippy::too_many_arguments)]
pub fn update(
    current: Option<&WorkerRecord>,
    fence: FenceView<'_>,
    owner: InstanceId,
    epoch: u64,
    from: WorkerState,
    to: WorkerState,
    session: Option<u64>,
    now: Millis,
) -> Result<WorkerOutcome, StoreError> {
    let w = match guard(current, fence, owner, epoch, now) {
        Ok(w) => w,
        Err(reason) => return Ok(rejected(reason, current)),
    };
    if w.state != from {
        return Ok(rejected(WorkerReject::WrongState, Some(w)));
    }
    if !from.can_become(to) {
        return Ok(rejected(WorkerReject::BadTransition, Some(w)));
    }
    let next = WorkerRecord {
        state: to,
        session,
        updated_at: now,
        idle_since: idle_since(w, to, now),
        version: bump(w.version, "worker version")?,
        ..w.clone()
    };
    Ok(applied("update_worker", w, next))
}

/// Take ownership as `(owner, epoch)` for `new_owner`. Checked in order:
/// NoWorker, Fenced, StaleOwner, WrongState (terminal, or not `from` when
/// given: a reaper claims only the state it saw, so an idle worker reused
/// meanwhile is not taken), BadTransition (`to` given and not a step).
/// Applied: `owner = new_owner`, `owner_epoch + 1` (even re-claimed by its
/// owner), `updated_at = now`; with `to`, the state moves in the same write
/// and the session is cleared, so a take-over and its first step are one
/// CAS and the row never sits idle under the reaper's name.
///
/// With a `floor`, last: InFloor unless [`crate::worker::floor::lets_go`]
/// holds over `owner_idle`, every hot-idle row of the worker's owner as the
/// store holds them in this write (read only when [`floor_owner`] says).
#[allow(clippy::too_many_arguments)]
pub fn claim(
    current: Option<&WorkerRecord>,
    owner_idle: &[WorkerRecord],
    floor: Option<&IdleFloor>,
    fence: FenceView<'_>,
    owner: InstanceId,
    epoch: u64,
    from: Option<WorkerState>,
    to: Option<WorkerState>,
    new_owner: InstanceId,
    now: Millis,
) -> Result<WorkerOutcome, StoreError> {
    let w = match guard(current, fence, owner, epoch, now) {
        Ok(w) => w,
        Err(reason) => return Ok(rejected(reason, current)),
    };
    if w.state.is_terminal() || from.is_some_and(|f| f != w.state) {
        return Ok(rejected(WorkerReject::WrongState, Some(w)));
    }
    if to.is_some_and(|to| !w.state.can_become(to)) {
        return Ok(rejected(WorkerReject::BadTransition, Some(w)));
    }
    if floor.is_some_and(|f| !crate::worker::floor::lets_go(w, owner_idle, f, now)) {
        return Ok(rejected(WorkerReject::InFloor, Some(w)));
    }
    let (state, session, idle_since) = match to {
        Some(to) => (to, None, idle_since(w, to, now)),
        None => (w.state, w.session, w.idle_since),
    };
    let next = WorkerRecord {
        state,
        session,
        idle_since,
        owner: new_owner,
        owner_epoch: bump(w.owner_epoch, "owner epoch")?,
        updated_at: now,
        version: bump(w.version, "worker version")?,
        ..w.clone()
    };
    assert!(
        w.owner_epoch.checked_add(1) == Some(next.owner_epoch),
        "store rule claim_worker: a claim must raise the owner epoch by exactly one (read {w:?}, wrote {next:?})"
    );
    Ok(applied("claim_worker", w, next))
}

/// Whether a backend must read the owner's hot-idle rows for
/// [`claim`]: only a floor claim of a row that exists.
pub fn floor_owner(current: Option<&WorkerRecord>, floor: Option<&IdleFloor>) -> Option<InstanceId> {
    floor.and(current).map(|w| w.owner)
}

/// The checks every worker CAS starts with: NoWorker, Fenced, StaleOwner.
fn guard<'a>(
    current: Option<&'a WorkerRecord>,
    fence: FenceView<'_>,
    owner: InstanceId,
    epoch: u64,
    now: Millis,
) -> Result<&'a WorkerRecord, WorkerReject> {
    match current {
        None => Err(WorkerReject::NoWorker),
        Some(_) if !fence_holds(fence, now) => Err(WorkerReject::Fenced),
        Some(w) if w.owner != owner || w.owner_epoch != epoch => Err(WorkerReject::StaleOwner),
        Some(w) => Ok(w),
    }
}

/// When the row became hot-idle, after a move to `to`: now if it enters
/// hot-idle, else unchanged.
fn idle_since(w: &WorkerRecord, to: WorkerState, now: Millis) -> Millis {
    if to == WorkerState::HotIdle && w.state != WorkerState::HotIdle {
        now
    } else {
        w.idle_since
    }
}

fn rejected(reason: WorkerReject, current: Option<&WorkerRecord>) -> WorkerOutcome {
    Outcome::refuse(WorkerCas::Rejected { reason, current: current.cloned() })
}

/// An applied worker CAS, after the assertions every one passes: the version
/// moves by one, the state moves along the lifecycle (a terminal row never
/// changes), and the owner changes only with a new owner epoch.
fn applied(rule: &str, current: &WorkerRecord, next: WorkerRecord) -> WorkerOutcome {
    assert_bumped(rule, Some(current.version), next.version);
    assert!(
        current.state.can_become(next.state),
        "store rule {rule}: {} -> {} is not a lifecycle step (worker {:?})",
        current.state,
        next.state,
        current.id
    );
    assert!(
        (next.owner == current.owner && next.owner_epoch == current.owner_epoch) || next.owner_epoch > current.owner_epoch,
        "store rule {rule}: the owner of worker {:?} changed without a new owner epoch",
        current.id
    );
    Outcome::write(WorkerCas::Applied(next.clone()), next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WorkerState as S;

    fn row(state: WorkerState, owner_epoch: u64, version: u64) -> WorkerRecord {
        WorkerRecord {
            id: "w".into(),
            org: "o".into(),
            state,
            owner: InstanceId(1),
            owner_epoch,
            pod: "p".into(),
            secret: "s".into(),
            session: None,
            created_at: 0,
            updated_at: 0,
            idle_since: 0,
            version,
        }
    }

    /// Overflow is an error that writes nothing, in every backend.
    #[test]
    fn overflow_is_refused_before_anything_changes() {
        let failed = |r: Result<WorkerOutcome, StoreError>, what: &str| match r {
            Err(StoreError::Failed(m)) => assert_eq!(m, format!("{what} overflows u64")),
            other => panic!("expected {what} to overflow, got {other:?}"),
        };
        let me = InstanceId(1);
        let top_version = row(S::Hot, 1, u64::MAX);
        failed(update(Some(&top_version), None, me, 1, S::Hot, S::HotIdle, None, 5), "worker version");
        failed(claim(Some(&top_version), &[], None, None, me, 1, None, None, InstanceId(2), 5), "worker version");
        let top_epoch = row(S::Hot, u64::MAX, 1);
        failed(claim(Some(&top_epoch), &[], None, None, me, u64::MAX, None, None, InstanceId(2), 5), "owner epoch");
        // The state-only update does not touch the epoch.
        let out = update(Some(&top_epoch), None, me, u64::MAX, S::Hot, S::HotIdle, None, 5).unwrap();
        assert_eq!(out.next.map(|w| (w.owner_epoch, w.version, w.idle_since)), Some((u64::MAX, 2, 5)));
    }
}

/// Whether `row` is one a fallback pass of `scope`'s instance reads: its
/// own or minted by it, one it is taking over, or an unended row of an
/// owner not in `live` (the instances alive at the store's now by
/// `scope.dead_after_ms`).
pub fn in_scope(row: &WorkerRecord, scope: &OwnScope, live: &BTreeSet<InstanceId>) -> bool {
    row.owner == scope.instance
        || row.id.starts_with(&scope.minted_prefix)
        || scope.ids.contains(&row.id)
        || (!row.state.is_terminal() && !live.contains(&row.owner))
}

/// Whether `slot` is one a fallback pass of `scope`'s instance reads: held
/// for a worker it minted, or for a row it owns (`owner`: the owner of the
/// slot's row, if the row exists).
pub fn slot_in_scope(slot: &SlotRecord, owner: Option<InstanceId>, scope: &OwnScope) -> bool {
    slot.worker.starts_with(&scope.minted_prefix) || owner == Some(scope.instance)
}

/// A hot-idle worker of `org` bound to no session: one a spawn may claim.
pub fn idle_in(row: &WorkerRecord, org: &str) -> bool {
    row.org == org && row.state == WorkerState::HotIdle && row.session.is_none()
}
