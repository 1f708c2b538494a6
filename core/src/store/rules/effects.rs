//! Leader-gated effects: a log of idempotency keys, each committed at most
//! once, and only by the live lease's holder at its epoch.

use super::{bump, Outcome};
use crate::clock::Millis;
use crate::ids::InstanceId;
use crate::store::{EffectResult, EffectRow, FenceReject, LeaseRecord, StoreError};

/// Commit `effect` (its key) on lease `name`.
///
/// - `committed`: the seq at which this key already committed, if it did.
///   Then the answer is `Duplicate` whatever the lease says now, so a retry
///   after an unknown outcome is safe (docs/design.md §7, E1).
/// - `lease`: the lease `name` as read. The caller must hold it, at
///   `epoch`, unexpired at `now`; checked in that order.
/// - `last_seq`: the newest seq in the log (0 when empty); the new row
///   takes the next one.
#[allow(clippy::too_many_arguments)]
pub fn commit(
    committed: Option<u64>,
    lease: Option<&LeaseRecord>,
    name: &str,
    holder: InstanceId,
    epoch: u64,
    effect: &str,
    last_seq: u64,
    now: Millis,
) -> Result<Outcome<EffectResult, EffectRow>, StoreError> {
    if let Some(seq) = committed {
        return Ok(Outcome::refuse(EffectResult::Duplicate { seq }));
    }
    let reason = match lease {
        None => Some(FenceReject::NoLease),
        Some(r) if r.holder != Some(holder) => Some(FenceReject::NotHolder),
        Some(r) if r.epoch != epoch => Some(FenceReject::StaleEpoch),
        Some(r) if r.expires_at <= now => Some(FenceReject::Expired),
        Some(_) => None,
    };
    if let Some(reason) = reason {
        return Ok(Outcome::refuse(EffectResult::Rejected { reason }));
    }
    let seq = bump(last_seq, "effect seq")?;
    let row = EffectRow { seq, lease: name.to_string(), holder, epoch, effect: effect.to_string(), at: now };
    Ok(Outcome::write(EffectResult::Applied { seq }, row))
}
