//! The rulebook: every decision the store makes, as pure functions
//! `(current records, request, now) -> (reply, next record)`.
//!
//! Both backends ([`MemStore`](super::MemStore), [`SqliteStore`](super::SqliteStore))
//! only load the records a rule names, ask the rule, and write what it
//! returns; neither decides anything itself, so they cannot drift apart.
//! One file per kind of record.
//!
//! The rules also assert, in release builds too, what no reply may ever
//! break (an applied CAS bumps the version by one, a worker moves only along
//! the lifecycle, a lease's epoch never falls and rises for a new holder):
//! such a state would otherwise be left for the oracle to find after the
//! fact, or never found in production.

pub mod cron;
pub mod effects;
pub mod instances;
pub mod lease;
pub mod slots;
pub mod workers;

use super::{LeaseFence, LeaseRecord, StoreError};
use crate::clock::Millis;

/// What a rule decided: the reply, and the record to write in place of the
/// one it read (`None`: write nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Outcome<Reply, Rec> {
    pub reply: Reply,
    pub next: Option<Rec>,
}

impl<Reply, Rec> Outcome<Reply, Rec> {
    fn refuse(reply: Reply) -> Self {
        Outcome { reply, next: None }
    }

    fn write(reply: Reply, next: Rec) -> Self {
        Outcome { reply, next: Some(next) }
    }
}

/// A lease fence carried by a write, with the lease record it names as the
/// backend loaded it (`None` inside: no such lease). No fence: nothing to check.
pub type FenceView<'a> = Option<(&'a LeaseFence, Option<&'a LeaseRecord>)>;

/// Whether a fence holds at `now`: its holder holds the lease at its epoch,
/// unexpired. A leader-gated write is as good as the lease that authorised
/// it, so it is checked at commit time, in the store's clock.
pub fn fence_holds(fence: FenceView<'_>, now: Millis) -> bool {
    fence.is_none_or(|(f, lease)| {
        lease.is_some_and(|l| l.holder == Some(f.holder) && l.epoch == f.epoch && l.expires_at > now)
    })
}

/// `v + 1`, refusing what would overflow: the write fails before anything
/// changes rather than wrapping a fencing token or a CAS key.
fn bump(v: u64, what: &str) -> Result<u64, StoreError> {
    v.checked_add(1).ok_or_else(|| overflow(what))
}

/// `now + ttl`, refusing what would overflow.
fn expiry(now: Millis, ttl_ms: u64) -> Result<Millis, StoreError> {
    now.checked_add(ttl_ms).ok_or_else(|| overflow("now + ttl"))
}

fn overflow(what: &str) -> StoreError {
    StoreError::Failed(format!("{what} overflows u64"))
}

/// The production assertion every applied CAS passes: the version the
/// write leaves is exactly one past the version it read (`None`: a new
/// record, version 1). Every CAS key a caller holds is then stale after
/// exactly one write.
fn assert_bumped(rule: &str, read: Option<u64>, written: u64) {
    assert!(
        read.unwrap_or(0).checked_add(1) == Some(written),
        "store rule {rule}: an applied write must bump the version by exactly one (read {read:?}, wrote {written})"
    );
}
