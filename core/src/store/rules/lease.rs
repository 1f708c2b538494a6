//! The lease: one record per name, changed only by CAS on its `version`.
//! Its `epoch` is the fencing token every leader-gated write carries.

use super::{assert_bumped, bump, expiry, Outcome};
use crate::clock::Millis;
use crate::ids::InstanceId;
use crate::store::{CasResult, LeaseRecord, Reject, StoreError};

pub type LeaseOutcome = Outcome<CasResult, LeaseRecord>;

/// Take the lease. Applies iff the caller read the current version (`None`:
/// no record yet) and the lease is free or expired at `now`, whoever asks:
/// the holder itself renews instead. A stale version is reported first, so
/// a caller learns to re-read before it learns who holds the lease.
///
/// Applied: the caller holds it until `now + ttl`, at a new epoch (1 for a
/// new record), so every write fenced by an older epoch is refused from now
/// on, even the previous holder's own.
pub fn acquire(
    current: Option<&LeaseRecord>,
    name: &str,
    holder: InstanceId,
    expected_version: Option<u64>,
    ttl_ms: u64,
    now: Millis,
) -> Result<LeaseOutcome, StoreError> {
    if current.map(|r| r.version) != expected_version {
        return Ok(rejected(Reject::StaleVersion, current));
    }
    let next = match current {
        None => LeaseRecord { name: name.to_string(), holder: Some(holder), epoch: 1, expires_at: expiry(now, ttl_ms)?, version: 1 },
        Some(r) if !r.is_free_at(now) => return Ok(rejected(Reject::HeldByOther, Some(r))),
        Some(r) => LeaseRecord {
            name: name.to_string(),
            holder: Some(holder),
            epoch: bump(r.epoch, "epoch")?,
            expires_at: expiry(now, ttl_ms)?,
            version: bump(r.version, "version")?,
        },
    };
    assert!(
        current.is_none_or(|r| next.epoch > r.epoch),
        "store rule acquire_lease: an applied acquire must raise the epoch (read {current:?}, wrote {next:?})"
    );
    Ok(applied("acquire_lease", current, next))
}

/// Extend the lease to `now + ttl` (or shorten it). Only the holder, only at
/// the version it read; expiry is not checked: while nobody else has taken
/// a lapsed lease, its holder may keep it, at the same epoch.
pub fn renew(
    current: Option<&LeaseRecord>,
    holder: InstanceId,
    expected_version: u64,
    ttl_ms: u64,
    now: Millis,
) -> Result<LeaseOutcome, StoreError> {
    let r = match held_by(current, holder, expected_version) {
        Ok(r) => r,
        Err(reason) => return Ok(rejected(reason, current)),
    };
    let next = LeaseRecord { expires_at: expiry(now, ttl_ms)?, version: bump(r.version, "version")?, ..r.clone() };
    Ok(applied("renew_lease", current, next))
}

/// Give the lease up: no holder, expired as of `now`, so anyone may take it
/// at once. The epoch stays: the next acquire raises it.
pub fn release(
    current: Option<&LeaseRecord>,
    holder: InstanceId,
    expected_version: u64,
    now: Millis,
) -> Result<LeaseOutcome, StoreError> {
    let r = match held_by(current, holder, expected_version) {
        Ok(r) => r,
        Err(reason) => return Ok(rejected(reason, current)),
    };
    let next = LeaseRecord { holder: None, expires_at: now, version: bump(r.version, "version")?, ..r.clone() };
    Ok(applied("release_lease", current, next))
}

/// The checks renew and release share, in order: a record exists, the
/// caller read its version, and it holds the lease.
fn held_by(current: Option<&LeaseRecord>, holder: InstanceId, expected_version: u64) -> Result<&LeaseRecord, Reject> {
    match current {
        None => Err(Reject::NoRecord),
        Some(r) if r.version != expected_version => Err(Reject::StaleVersion),
        Some(r) if r.holder != Some(holder) => Err(Reject::NotHolder),
        Some(r) => Ok(r),
    }
}

fn rejected(reason: Reject, current: Option<&LeaseRecord>) -> LeaseOutcome {
    Outcome::refuse(CasResult::Rejected { reason, current: current.cloned() })
}

/// An applied lease write, after the assertions every one passes: the
/// version moves by one, the epoch never falls (fencing tokens only grow),
/// and a holder other than the last one never holds it at the old epoch
/// (it would pass the fences of its predecessor's writes).
fn applied(rule: &str, current: Option<&LeaseRecord>, next: LeaseRecord) -> LeaseOutcome {
    assert_bumped(rule, current.map(|r| r.version), next.version);
    let (epoch, holder) = current.map_or((0, None), |r| (r.epoch, r.holder));
    assert!(next.epoch >= epoch, "store rule {rule}: the lease epoch fell from {epoch} to {}", next.epoch);
    assert!(
        next.holder.is_none() || next.holder == holder || next.epoch > epoch,
        "store rule {rule}: a new holder {:?} must hold the lease at a new epoch (was {holder:?} at {epoch})",
        next.holder
    );
    Outcome::write(CasResult::Applied(next.clone()), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: Option<u64>, epoch: u64, expires_at: u64, version: u64) -> LeaseRecord {
        LeaseRecord { name: "l".into(), holder: holder.map(InstanceId), epoch, expires_at, version }
    }

    /// Overflow of any field an applied write computes is an error that
    /// writes nothing, in every backend (they share this rule).
    #[test]
    fn overflow_is_refused_before_anything_changes() {
        let failed = |r: Result<LeaseOutcome, StoreError>, what: &str| match r {
            Err(StoreError::Failed(m)) => assert_eq!(m, format!("{what} overflows u64")),
            other => panic!("expected {what} to overflow, got {other:?}"),
        };
        let top_epoch = rec(None, u64::MAX, 0, 3);
        failed(acquire(Some(&top_epoch), "l", InstanceId(1), Some(3), 10, 5), "epoch");
        let top_version = rec(Some(1), 2, 0, u64::MAX);
        failed(acquire(Some(&top_version), "l", InstanceId(1), Some(u64::MAX), 10, 5), "version");
        failed(renew(Some(&top_version), InstanceId(1), u64::MAX, 10, 5), "version");
        failed(release(Some(&top_version), InstanceId(1), u64::MAX, 5), "version");
        failed(acquire(None, "l", InstanceId(1), None, 2, u64::MAX - 1), "now + ttl");
        // A rejection is decided before any arithmetic.
        let held = rec(Some(1), u64::MAX, u64::MAX, u64::MAX);
        let out = acquire(Some(&held), "l", InstanceId(2), Some(u64::MAX), u64::MAX, 5).unwrap();
        assert_eq!(out, rejected(Reject::HeldByOther, Some(&held)));
    }

    #[test]
    fn a_rejection_writes_nothing_and_an_applied_write_writes_its_reply() {
        let r = rec(Some(1), 4, 100, 7);
        assert_eq!(renew(Some(&r), InstanceId(2), 7, 10, 5).unwrap().next, None);
        let out = renew(Some(&r), InstanceId(1), 7, 10, 5).unwrap();
        assert_eq!(out.next, Some(rec(Some(1), 4, 15, 8)));
        assert_eq!(out.reply, CasResult::Applied(rec(Some(1), 4, 15, 8)));
    }
}
