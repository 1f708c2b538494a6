//! An in-memory backend: the records in ordered maps, every decision the
//! rulebook's ([`rules`](super::rules)).

use super::cron_records::*;
use super::fleet_records::*;
use super::lifecycle::WorkerState;
use super::records::*;
use super::rules::{self, FenceView, Outcome};
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
    jobs: BTreeMap<String, JobRecord>,
    fires: BTreeMap<(String, Millis), FireRecord>,
    settings: Option<SettingsRecord>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fence with the lease it names.
    fn fence<'a>(&'a self, fence: Option<&'a LeaseFence>) -> FenceView<'a> {
        fence.map(|f| (f, self.leases.get(&f.lease)))
    }
}

/// Write what the rule decided under `key`, and answer its reply.
fn settle<K: Ord, R, N>(map: &mut BTreeMap<K, N>, key: K, out: Outcome<R, N>) -> R {
    if let Some(next) = out.next {
        map.insert(key, next);
    }
    out.reply
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
        let out = rules::lease::acquire(self.leases.get(name), name, holder, expected_version, ttl_ms, now)?;
        Ok(settle(&mut self.leases, name.to_string(), out))
    }

    fn renew_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let out = rules::lease::renew(self.leases.get(name), holder, expected_version, ttl_ms, now)?;
        Ok(settle(&mut self.leases, name.to_string(), out))
    }

    fn release_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        let out = rules::lease::release(self.leases.get(name), holder, expected_version, now)?;
        Ok(settle(&mut self.leases, name.to_string(), out))
    }

    fn fenced_effect(
        &mut self,
        name: &str,
        holder: InstanceId,
        epoch: u64,
        effect: &str,
        now: Millis,
    ) -> Result<EffectResult, StoreError> {
        let committed = self.effects.iter().find(|r| r.lease == name && r.effect == effect).map(|r| r.seq);
        let last_seq = self.effects.last().map_or(0, |r| r.seq);
        let out = rules::effects::commit(committed, self.leases.get(name), name, holder, epoch, effect, last_seq, now)?;
        self.effects.extend(out.next);
        Ok(out.reply)
    }

    fn effects(&mut self) -> Result<Vec<EffectRow>, StoreError> {
        Ok(self.effects.clone())
    }

    fn register_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        let out = rules::instances::stamp(self.instances.get(&id), id, dead_after_ms, now);
        Ok(settle(&mut self.instances, id, out))
    }

    fn heartbeat_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.register_instance(id, dead_after_ms, now)
    }

    fn list_instances(&mut self) -> Result<Vec<InstanceRecord>, StoreError> {
        Ok(self.instances.values().cloned().collect())
    }

    fn drain_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        let out = rules::instances::drain(self.instances.get(&id), dead_after_ms, now);
        Ok(settle(&mut self.instances, id, out))
    }

    fn reserve_slot(
        &mut self,
        worker: &str,
        org: &str,
        org_cap: u32,
        global_cap: u32,
        now: Millis,
    ) -> Result<SlotResult, StoreError> {
        let in_org = self.slots.values().filter(|s| s.org == org).count();
        let held = self.slots.get(worker);
        let out = rules::slots::reserve(held, in_org, self.slots.len(), worker, org, org_cap, global_cap, now);
        Ok(settle(&mut self.slots, worker.to_string(), out))
    }

    fn free_slot(&mut self, worker: &str, fence: Option<&LeaseFence>, now: Millis) -> Result<SlotResult, StoreError> {
        let reply = rules::slots::free(self.slots.get(worker), self.fence(fence), now);
        if reply == SlotResult::Freed {
            self.slots.remove(worker);
        }
        Ok(reply)
    }

    fn list_slots(&mut self) -> Result<Vec<SlotRecord>, StoreError> {
        Ok(self.slots.values().cloned().collect())
    }

    fn insert_worker(&mut self, worker: &WorkerRecord, now: Millis) -> Result<WorkerCas, StoreError> {
        let out = rules::workers::insert(self.workers.get(&worker.id), worker, now);
        Ok(settle(&mut self.workers, worker.id.clone(), out))
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
        let current = self.workers.get(id);
        let out = rules::workers::update(current, self.fence(fence), owner, epoch, from, to, session, now)?;
        Ok(settle(&mut self.workers, id.to_string(), out))
    }

    fn claim_worker_within_floor(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: Option<WorkerState>,
        to: Option<WorkerState>,
        new_owner: InstanceId,
        floor: Option<&IdleFloor>,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        let current = self.workers.get(id);
        let owner_idle: Vec<WorkerRecord> = match rules::workers::floor_owner(current, floor) {
            Some(o) => self.workers.values().filter(|w| w.owner == o && w.state == WorkerState::HotIdle).cloned().collect(),
            None => Vec::new(),
        };
        let fence = self.fence(fence);
        let out = rules::workers::claim(current, &owner_idle, floor, fence, owner, epoch, from, to, new_owner, now)?;
        Ok(settle(&mut self.workers, id.to_string(), out))
    }

    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError> {
        Ok(self.workers.values().cloned().collect())
    }

    fn create_job(&mut self, id: &str, schedule: &Schedule, now: Millis) -> Result<JobCas, StoreError> {
        let out = rules::cron::create(self.jobs.get(id), id, schedule, now);
        Ok(settle(&mut self.jobs, id.to_string(), out))
    }

    fn edit_job(
        &mut self,
        id: &str,
        schedule: Option<&Schedule>,
        status: Option<JobStatus>,
        now: Millis,
    ) -> Result<JobCas, StoreError> {
        let out = rules::cron::edit(self.jobs.get(id), schedule, status, now)?;
        Ok(settle(&mut self.jobs, id.to_string(), out))
    }

    fn claim_job(
        &mut self,
        id: &str,
        owner: Option<InstanceId>,
        epoch: u64,
        new_owner: Option<InstanceId>,
        _now: Millis,
    ) -> Result<JobCas, StoreError> {
        let out = rules::cron::claim(self.jobs.get(id), owner, epoch, new_owner)?;
        Ok(settle(&mut self.jobs, id.to_string(), out))
    }

    fn list_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.jobs.values().cloned().collect())
    }

    fn commit_fire(&mut self, job: &str, fire: &rules::cron::Fire, now: Millis) -> Result<FireResult, StoreError> {
        let key = (job.to_string(), fire.slot);
        let running = self.fires.values().filter(|f| f.running_at(now)).count();
        let out = rules::cron::commit_fire(self.jobs.get(job), self.fires.get(&key), running, fire, now)?;
        if let Some((rec, next)) = out.next {
            self.fires.insert(key, rec);
            self.jobs.insert(job.to_string(), next);
        }
        Ok(out.reply)
    }

    fn finish_fire(&mut self, job: &str, slot: Millis, owner: Option<InstanceId>, now: Millis) -> Result<FireResult, StoreError> {
        let key = (job.to_string(), slot);
        let out = rules::cron::finish_fire(self.fires.get(&key), owner, now);
        Ok(settle(&mut self.fires, key, out))
    }

    fn read_fire(&mut self, job: &str, slot: Millis) -> Result<Option<FireRecord>, StoreError> {
        Ok(self.fires.get(&(job.to_string(), slot)).cloned())
    }

    fn fires(&mut self) -> Result<Vec<FireRecord>, StoreError> {
        Ok(self.fires.values().cloned().collect())
    }

    fn write_settings(&mut self, value: &str, now: Millis) -> Result<u64, StoreError> {
        let out = rules::cron::write_settings(self.settings.as_ref(), value, now)?;
        if let Some(next) = out.next {
            self.settings = Some(next);
        }
        Ok(out.reply)
    }

    fn read_settings(&mut self) -> Result<Option<SettingsRecord>, StoreError> {
        Ok(self.settings.clone())
    }
}
