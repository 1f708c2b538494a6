//! Worker rows: S3 fencing and the lifecycle, S4 caps (safety, on every
//! event), judged from what the store committed.
//!
//! The oracle keeps its own copy of the lifecycle's allowed steps
//! ([`may_become`]), so a core that loosened its own table would still be
//! judged by the design's (docs/design.md §2.3).

use super::model::Model;
use super::{violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind, Lifecycle, SlotOp, SlotReply, WorkerOp};

/// The lifecycle as the design states it: `spawning → activating → hot ⇄
/// hot_idle → draining → retired`; a spawn or activation that fails, or a
/// stuck row, retires at once; any live state may become `lost`; staying
/// in place (a heartbeat, a claim) is allowed for live states only.
pub fn may_become(from: Lifecycle, to: Lifecycle) -> bool {
    use Lifecycle::*;
    match (from, to) {
        (Retired | Lost, _) => false,
        (a, b) if a == b => true,
        (Spawning, Activating) | (Activating, Hot) | (Hot, HotIdle) | (HotIdle, Hot) => true,
        (Hot | HotIdle, Draining) | (Draining, Retired) => true,
        (Spawning | Activating, Retired) => true,
        (_, Lost) => true,
        _ => false,
    }
}

#[derive(Default)]
pub struct WorkerCheck;

impl Check for WorkerCheck {
    fn observe(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let t = e.t;
        let fp = &p.fleet;
        match &e.kind {
            EventKind::WorkerWrite { from, op, id, applied: true, as_owner, as_epoch, worker, .. } => {
                let Some(after) = worker else {
                    return violation("S3", t, format!("fencing: applied {op:?} of {id} with no row in the trace"));
                };
                let before = m.workers.get(id);
                if *op == WorkerOp::Insert {
                    if before.is_some() {
                        return violation("S3", t, format!("fencing: {id} inserted twice (by i{from})"));
                    }
                    if after.state != Lifecycle::Spawning {
                        return violation("S3", t, format!("fencing: {id} inserted as {} instead of spawning", after.state));
                    }
                    // S4: the insert makes one more live worker.
                    let (org_n, all_n) = (m.live_count(Some(&after.org)) + 1, m.live_count(None) + 1);
                    if org_n > fp.org_cap as usize || all_n > fp.global_cap as usize {
                        return violation(
                            "S4",
                            t,
                            format!(
                                "caps: inserting {id} makes {org_n} live workers in {} (cap {}) and {all_n} in all (cap {})",
                                after.org, fp.org_cap, fp.global_cap
                            ),
                        );
                    }
                    return None;
                }
                let Some(w) = before else {
                    return violation("S3", t, format!("fencing: {op:?} of {id}, a worker never inserted"));
                };
                // The write was made as the current (owner, epoch)...
                if (*as_owner, *as_epoch) != (Some(w.owner), Some(w.epoch)) {
                    return violation(
                        "S3",
                        t,
                        format!(
                            "fencing: {op:?} of {id} by i{from} as (i{}, {}) accepted while it is owned by (i{}, {})",
                            as_owner.unwrap_or(0),
                            as_epoch.unwrap_or(0),
                            w.owner,
                            w.epoch
                        ),
                    );
                }
                // ...the epoch moves by exactly one per claim, never otherwise...
                let want_epoch = if *op == WorkerOp::Claim { w.epoch + 1 } else { w.epoch };
                // ...ownership changes only by claim, org never...
                let owner_ok = *op == WorkerOp::Claim || after.owner == w.owner;
                // ...and the step is one the lifecycle allows.
                if after.epoch != want_epoch || !owner_ok || after.org != w.org || !may_become(w.state, after.state) {
                    return violation(
                        "S3",
                        t,
                        format!(
                            "fencing: {op:?} of {id} took it from {} (i{}, epoch {}, {}) to {} (i{}, epoch {}, {})",
                            w.state, w.owner, w.epoch, w.org, after.state, after.owner, after.epoch, after.org
                        ),
                    );
                }
                None
            }
            // S4 on the store's own count: a reserve never takes an org or
            // the fleet past its cap.
            EventKind::SlotWrite { op: SlotOp::Reserve, worker, org: Some(org), result: SlotReply::Reserved, .. } => {
                let in_org = m.slot_count(org) + 1;
                let all_n = m.slots.len() + 1;
                if in_org > fp.org_cap as usize || all_n > fp.global_cap as usize {
                    return violation(
                        "S4",
                        t,
                        format!(
                            "caps: reserving a slot for {worker} makes {in_org} slots in {org} (cap {}) and {all_n} in all \
                             (cap {})",
                            fp.org_cap, fp.global_cap
                        ),
                    );
                }
                None
            }
            _ => None,
        }
    }
}
