//! An in-memory backend: the reference model of the CAS rules.

use super::fleet_records::*;
use super::records::*;
use crate::worker::WorkerState;
use super::StoreBackend;
use crate::clock::Millis;
use crate::ids::InstanceId;
use std::collections::BTreeMap;

#[derive(Default, Debug, Clone)]
pub struct MemStore {
    leases: BTreeMap<String, LeaseRecord>,
    effects: Vec<EffectRow>,
    instances: BTreeMap<InstanceId, InstanceRecord>,
    slots: BTreeMap<String, SlotRecord>,
    workers: BTreeMap<String, WorkerRecord>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// `v + 1`, refusing (before any change) what would overflow.
fn bump(v: u64, what: &str) -> Result<u64, StoreError> {
    v.checked_add(1).ok_or_else(|| StoreError::Failed(format!("{what} overflows u64")))
}

/// `now + ttl`, refusing (before any change) what would overflow.
fn expiry(now: Millis, ttl_ms: u64) -> Result<Millis, StoreError> {
    now.checked_add(ttl_ms).ok_or_else(|| StoreError::Failed("now + ttl overflows u64".into()))
}

impl MemStore {
    /// Whether `fence` holds at `now` (absent: nothing to check).
    fn fence_holds(&self, fence: Option<&LeaseFence>, now: Millis) -> bool {
        fence.is_none_or(|f| {
            self.leases
                .get(&f.lease)
                .is_some_and(|l| l.holder == Some(f.holder) && l.epoch == f.epoch && l.expires_at > now)
        })
    }

    /// The common checks of a worker CAS: NoWorker, Fenced, StaleOwner.
    fn worker_guard(
        &self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<&WorkerRecord, WorkerCas> {
        let Some(w) = self.workers.get(id) else {
            return Err(WorkerCas::Rejected { reason: WorkerReject::NoWorker, current: None });
        };
        let reject = |reason| Err(WorkerCas::Rejected { reason, current: Some(w.clone()) });
        if !self.fence_holds(fence, now) {
            return reject(WorkerReject::Fenced);
        }
        if w.owner != owner || w.owner_epoch != epoch {
            return reject(WorkerReject::StaleOwner);
        }
        Ok(w)
    }
}

fn rejected(reason: Reject, current: Option<&LeaseRecord>) -> CasResult {
    CasResult::Rejected { reason, current: current.cloned() }
}

impl StoreBackend for MemStore {
    fn read_lease(&mut self, name: &str) -> Result<Option<LeaseRecord>, StoreError> {
        Ok(self.leases.get(name).cloned())
    }

    fn acquire_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: Option<u64>,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let current = self.leases.get(name);
        if current.map(|r| r.version) != expected_version {
            return Ok(rejected(Reject::StaleVersion, current));
        }
        let next = match current {
            None => LeaseRecord {
                name: name.to_string(),
                holder: Some(holder),
                epoch: 1,
                expires_at: expiry(now, ttl_ms)?,
                version: 1,
            },
            Some(r) if !r.is_free_at(now) => return Ok(rejected(Reject::HeldByOther, Some(r))),
            Some(r) => LeaseRecord {
                name: name.to_string(),
                holder: Some(holder),
                epoch: r.epoch + 1,
                expires_at: expiry(now, ttl_ms)?,
                version: r.version + 1,
            },
        };
        self.leases.insert(name.to_string(), next.clone());
        Ok(CasResult::Applied(next))
    }

    fn renew_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let Some(r) = self.leases.get_mut(name) else {
            return Ok(rejected(Reject::NoRecord, None));
        };
        if let Some(reason) = Reject::holder_check(r, holder, expected_version) {
            return Ok(rejected(reason, Some(r)));
        }
        r.expires_at = expiry(now, ttl_ms)?;
        r.version += 1;
        Ok(CasResult::Applied(r.clone()))
    }

    fn release_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let Some(r) = self.leases.get_mut(name) else {
            return Ok(rejected(Reject::NoRecord, None));
        };
        if let Some(reason) = Reject::holder_check(r, holder, expected_version) {
            return Ok(rejected(reason, Some(r)));
        }
        r.holder = None;
        r.expires_at = now;
        r.version += 1;
        Ok(CasResult::Applied(r.clone()))
    }

    fn fenced_effect(
        &mut self,
        name: &str,
        holder: InstanceId,
        epoch: u64,
        effect: &str,
        now: Millis,
    ) -> Result<EffectResult, StoreError> {
        // At most once per key, whatever the lease says now.
        if let Some(row) = self.effects.iter().find(|r| r.lease == name && r.effect == effect) {
            return Ok(EffectResult::Duplicate { seq: row.seq });
        }
        let reason = match self.leases.get(name) {
            None => Some(FenceReject::NoLease),
            Some(r) if r.holder != Some(holder) => Some(FenceReject::NotHolder),
            Some(r) if r.epoch != epoch => Some(FenceReject::StaleEpoch),
            Some(r) if r.expires_at <= now => Some(FenceReject::Expired),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return Ok(EffectResult::Rejected { reason });
        }
        let seq = self.effects.len() as u64 + 1;
        self.effects.push(EffectRow { seq, lease: name.to_string(), holder, epoch, effect: effect.to_string(), at: now });
        Ok(EffectResult::Applied { seq })
    }

    fn effects(&mut self) -> Result<Vec<EffectRow>, StoreError> {
        Ok(self.effects.clone())
    }

    fn register_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        let rec = self.instances.entry(id).or_insert(InstanceRecord { id, started_at: now, heartbeat_at: now });
        if dead_after_ms.is_some_and(|d| crate::registry::is_dead(rec, now, d)) {
            return Ok(false);
        }
        rec.heartbeat_at = now;
        Ok(true)
    }

    fn heartbeat_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.register_instance(id, dead_after_ms, now)
    }

    fn list_instances(&mut self) -> Result<Vec<InstanceRecord>, StoreError> {
        Ok(self.instances.values().cloned().collect())
    }

    fn reserve_slot(
        &mut self,
        worker: &str,
        org: &str,
        org_cap: u32,
        global_cap: u32,
        now: Millis,
    ) -> Result<SlotResult, StoreError> {
        if self.slots.contains_key(worker) {
            return Ok(SlotResult::Exists);
        }
        if self.slots.values().filter(|s| s.org == org).count() >= org_cap as usize {
            return Ok(SlotResult::OrgCap);
        }
        if self.slots.len() >= global_cap as usize {
            return Ok(SlotResult::GlobalCap);
        }
        self.slots.insert(worker.to_string(), SlotRecord { worker: worker.to_string(), org: org.to_string(), reserved_at: now });
        Ok(SlotResult::Reserved)
    }

    fn free_slot(&mut self, worker: &str, fence: Option<&LeaseFence>, now: Millis) -> Result<SlotResult, StoreError> {
        if !self.fence_holds(fence, now) {
            return Ok(SlotResult::Fenced);
        }
        Ok(match self.slots.remove(worker) {
            Some(_) => SlotResult::Freed,
            None => SlotResult::NotFound,
        })
    }

    fn list_slots(&mut self) -> Result<Vec<SlotRecord>, StoreError> {
        Ok(self.slots.values().cloned().collect())
    }

    fn insert_worker(&mut self, worker: &WorkerRecord, now: Millis) -> Result<WorkerCas, StoreError> {
        if let Some(w) = self.workers.get(&worker.id) {
            return Ok(WorkerCas::Rejected { reason: WorkerReject::Exists, current: Some(w.clone()) });
        }
        let rec = WorkerRecord { created_at: now, updated_at: now, idle_since: now, version: 1, ..worker.clone() };
        self.workers.insert(rec.id.clone(), rec.clone());
        Ok(WorkerCas::Applied(rec))
    }

    fn update_worker(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: WorkerState,
        to: WorkerState,
        session: Option<u64>,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        let w = match self.worker_guard(id, owner, epoch, fence, now) {
            Ok(w) => w,
            Err(rejected) => return Ok(rejected),
        };
        let reason = if w.state != from {
            Some(WorkerReject::WrongState)
        } else if !from.can_become(to) {
            Some(WorkerReject::BadTransition)
        } else {
            None
        };
        if let Some(reason) = reason {
            return Ok(WorkerCas::Rejected { reason, current: Some(w.clone()) });
        }
        let mut rec = w.clone();
        rec.state = to;
        rec.session = session;
        rec.updated_at = now;
        if to == WorkerState::HotIdle && from != WorkerState::HotIdle {
            rec.idle_since = now;
        }
        rec.version = bump(rec.version, "version")?;
        self.workers.insert(id.to_string(), rec.clone());
        Ok(WorkerCas::Applied(rec))
    }

    fn claim_worker_to(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: Option<WorkerState>,
        to: Option<WorkerState>,
        new_owner: InstanceId,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        let w = match self.worker_guard(id, owner, epoch, fence, now) {
            Ok(w) => w,
            Err(rejected) => return Ok(rejected),
        };
        if w.state.is_terminal() || from.is_some_and(|f| f != w.state) {
            return Ok(WorkerCas::Rejected { reason: WorkerReject::WrongState, current: Some(w.clone()) });
        }
        if to.is_some_and(|to| !w.state.can_become(to)) {
            return Ok(WorkerCas::Rejected { reason: WorkerReject::BadTransition, current: Some(w.clone()) });
        }
        let mut rec = w.clone();
        if let Some(to) = to {
            if to == WorkerState::HotIdle && rec.state != WorkerState::HotIdle {
                rec.idle_since = now;
            }
            rec.state = to;
            rec.session = None;
        }
        rec.owner = new_owner;
        rec.owner_epoch = bump(rec.owner_epoch, "owner epoch")?;
        rec.updated_at = now;
        rec.version = bump(rec.version, "version")?;
        self.workers.insert(id.to_string(), rec.clone());
        Ok(WorkerCas::Applied(rec))
    }

    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError> {
        Ok(self.workers.values().cloned().collect())
    }
}
