//! Faults on the store and the links to it: a replica cut off or slowed,
//! writes failing or losing their reply, stalls, lease outages. Each is an
//! `apply_` / `heal_` pair; [`Injector::fire`] holds it in between.

use super::Injector;
use crate::store_node::StoreNode;
use haywire_traces::EventKind;
use std::sync::MutexGuard;
use std::time::Duration;

impl Injector {
    fn store(&self) -> MutexGuard<'_, StoreNode> {
        self.world.store.lock()
    }

    /// Cut replica `i` off from the store, both directions.
    pub(super) fn apply_partition(&self, i: usize) {
        let name = self.cut_link(i, self.servers.store, true);
        self.record(EventKind::Partition { target: name });
    }

    pub(super) fn heal_partition(&self, i: usize) {
        let name = self.cut_link(i, self.servers.store, false);
        self.record(EventKind::PartitionHealed { target: name });
    }

    /// The store answers replica `i` only after `extra_ms`.
    pub(super) fn apply_store_slow(&self, i: usize, extra_ms: u64) {
        let (name, _, _) = self.machine(i);
        self.store().faults.slow_ms[i] = extra_ms;
        self.record(EventKind::StoreSlow { target: name, ms: extra_ms });
    }

    pub(super) fn heal_store_slow(&self, i: usize) {
        let (name, _, _) = self.machine(i);
        self.store().faults.slow_ms[i] = 0;
        self.record(EventKind::StoreSlowHealed { target: name });
    }

    /// Writes fail before commit / commit but lose the reply.
    pub(super) fn apply_store_faults(&self, fail_pct: u32, lost_reply_pct: u32) {
        {
            let mut s = self.store();
            s.faults.fail_pct = fail_pct;
            s.faults.lost_reply_pct = lost_reply_pct;
        }
        self.record(EventKind::StoreFaults { fail_pct, lost_reply_pct });
    }

    pub(super) fn heal_store_faults(&self) {
        {
            let mut s = self.store();
            s.faults.fail_pct = 0;
            s.faults.lost_reply_pct = 0;
        }
        self.record(EventKind::StoreFaultsHealed);
    }

    /// Every store request waits until the stall, `ms` from now, ends.
    pub(super) fn apply_store_stall(&self, ms: u64) {
        self.store().faults.stall_until = Some(madsim::time::Instant::now() + Duration::from_millis(ms));
        self.record(EventKind::StoreStall { ms });
    }

    pub(super) fn heal_store_stall(&self) {
        self.store().faults.stall_until = None;
        self.record(EventKind::StoreStallHealed);
    }

    /// Lease writes fail before commit; the rest of the store works.
    pub(super) fn apply_lease_outage(&self, ms: u64) {
        self.store().faults.lease_outage = true;
        self.record(EventKind::LeaseOutage { ms });
    }

    pub(super) fn heal_lease_outage(&self) {
        self.store().faults.lease_outage = false;
        self.record(EventKind::LeaseOutageHealed);
    }
}
