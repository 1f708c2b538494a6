//! The synchronous backend trait every store implementation provides.

use super::cron_records::*;
use super::fleet_records::*;
use super::rules;
use super::rules::cron::Fire;
use super::records::*;
use super::lifecycle::WorkerState;
use crate::clock::Millis;
use crate::ids::InstanceId;

/// A store implementation. Each write is atomic (one transaction for
/// SQLite). `now` is the store's own time.
///
/// Every decision (which CAS applies, what it writes, what it answers) is
/// the rulebook's, in `store/rules/`: an implementation loads the records a
/// rule reads, asks it, and writes the record it returns. The method docs
/// below summarise the rules; the rule functions hold them.
pub trait StoreBackend: Send {
    fn read_lease(&mut self, name: &str) -> Result<Option<LeaseRecord>, StoreError>;
    fn acquire_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: Option<u64>,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError>;
    fn renew_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError>;
    fn release_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError>;
    /// Commit `effect` (its idempotency key) if `holder` holds the live
    /// lease at `epoch`. A key that already committed answers `Duplicate`
    /// and writes nothing, so a retry after an unknown outcome is safe.
    fn fenced_effect(
        &mut self,
        name: &str,
        holder: InstanceId,
        epoch: u64,
        effect: &str,
        now: Millis,
    ) -> Result<EffectResult, StoreError>;
    /// Every committed effect, in commit order.
    fn effects(&mut self) -> Result<Vec<EffectRow>, StoreError>;

    // --- the worker fleet (rules pinned by the conformance suite) ---

    /// Insert or refresh an instance: `started_at` on first sight, and
    /// `heartbeat_at = now`. With `dead_after_ms`, an instance already dead
    /// by that threshold is not revived (docs/design.md §2.6): nothing changes
    /// and the answer is `false`. Without it, a plain upsert.
    fn register_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError>;
    /// `heartbeat_at = now`, by the same rule (registers an unknown instance).
    fn heartbeat_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError>;
    /// All instances, by id.
    fn list_instances(&mut self) -> Result<Vec<InstanceRecord>, StoreError>;
    /// The instances among `ids` the store holds, by id. This default
    /// reads every one; a backend with a key lookup reads only those.
    fn list_instances_of(&mut self, ids: &std::collections::BTreeSet<InstanceId>) -> Result<Vec<InstanceRecord>, StoreError> {
        Ok(self.list_instances()?.into_iter().filter(|r| ids.contains(&r.id)).collect())
    }
    /// Mark `id` draining ([`super::rules::instances::drain`]).
    fn drain_instance(&mut self, id: InstanceId, dead_after_ms: Option<u64>, now: Millis) -> Result<bool, StoreError>;
    /// Reserve a slot for `worker` iff it holds none and fewer than `org_cap`
    /// slots belong to `org` and fewer than `global_cap` exist (checked in
    /// that order: Exists, OrgCap, GlobalCap).
    fn reserve_slot(
        &mut self,
        worker: &str,
        org: &str,
        org_cap: u32,
        global_cap: u32,
        now: Millis,
    ) -> Result<SlotResult, StoreError>;
    /// Free `worker`'s slot: Fenced if the fence fails, NotFound if none.
    fn free_slot(&mut self, worker: &str, fence: Option<&LeaseFence>, now: Millis) -> Result<SlotResult, StoreError>;
    /// All slots, by worker id.
    fn list_slots(&mut self) -> Result<Vec<SlotRecord>, StoreError>;
    /// Insert `worker` as given but with `created_at = updated_at =
    /// idle_since = now` and `version = 1`; Exists if the id is taken.
    fn insert_worker(&mut self, worker: &WorkerRecord, now: Millis) -> Result<WorkerCas, StoreError>;
    /// Checks in order: NoWorker, Fenced, StaleOwner (owner or epoch), WrongState
    /// (`state != from`), BadTransition (`!from.can_become(to)`). Applied:
    /// `state = to`, `session`, `updated_at = now`, `idle_since = now` when
    /// entering hot_idle from another state, `version + 1`.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<WorkerCas, StoreError>;
    /// Checks in order: NoWorker, Fenced, StaleOwner, WrongState (terminal,
    /// or not `from` when given: a reaper claims only the state it saw, so
    /// an idle worker reused meanwhile is not taken). Applied: `owner =
    /// new_owner`, `owner_epoch + 1`, `updated_at = now`, `version + 1`; the
    /// state is unchanged.
    fn claim_worker(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: Option<WorkerState>,
        new_owner: InstanceId,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        self.claim_worker_to(id, owner, epoch, from, None, new_owner, fence, now)
    }
    /// [`Self::claim_worker`], and with `to` given, the state moves to `to`
    /// in the same write (BadTransition, after WrongState, if the lifecycle
    /// forbids the step; `session` is cleared). Ends the claimed row's
    /// `idle_since` clock only as `update_worker` would.
    #[allow(clippy::too_many_arguments)]
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
        self.claim_worker_within_floor(id, owner, epoch, from, to, new_owner, None, fence, now)
    }
    /// [`Self::claim_worker_to`], and with a `floor`, refused as InFloor
    /// (after the other checks) unless the floor lets the worker go, judged
    /// over its owner's hot-idle rows read in the same transaction
    /// ([`rules::workers::claim`]).
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<WorkerCas, StoreError>;
    /// All workers, by id.
    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError>;
    /// The rows `scope` names ([`rules::workers::in_scope`]), ordered by id.
    /// This default reads every row; a backend with indexes reads only those.
    fn list_workers_of(&mut self, scope: &OwnScope, now: Millis) -> Result<Vec<WorkerRecord>, StoreError> {
        let live = crate::registry::live_instances(&self.list_instances()?, now, scope.dead_after_ms);
        Ok(self.list_workers()?.into_iter().filter(|w| rules::workers::in_scope(w, scope, &live)).collect())
    }
    /// The hot-idle rows of `org` bound to no session, ordered by id.
    fn list_idle_workers(&mut self, org: &str) -> Result<Vec<WorkerRecord>, StoreError> {
        Ok(self.list_workers()?.into_iter().filter(|w| rules::workers::idle_in(w, org)).collect())
    }
    /// The rows bound to `session`, ordered by id.
    fn list_session_workers(&mut self, session: u64) -> Result<Vec<WorkerRecord>, StoreError> {
        Ok(self.list_workers()?.into_iter().filter(|w| w.session == Some(session)).collect())
    }
    /// The slots `scope` names ([`rules::workers::slot_in_scope`]), ordered
    /// by worker.
    fn list_slots_of(&mut self, scope: &OwnScope) -> Result<Vec<SlotRecord>, StoreError> {
        let owners: std::collections::BTreeMap<String, InstanceId> =
            self.list_workers()?.into_iter().map(|w| (w.id, w.owner)).collect();
        let slots = self.list_slots()?;
        Ok(slots.into_iter().filter(|s| rules::workers::slot_in_scope(s, owners.get(&s.worker).copied(), scope)).collect())
    }

    // --- cron coordination (rules in `rules/cron.rs`) ---

    fn create_job(&mut self, id: &str, schedule: &Schedule, now: Millis) -> Result<JobCas, StoreError>;
    fn edit_job(
        &mut self,
        id: &str,
        schedule: Option<&Schedule>,
        status: Option<JobStatus>,
        now: Millis,
    ) -> Result<JobCas, StoreError>;
    fn claim_job(
        &mut self,
        id: &str,
        owner: Option<InstanceId>,
        epoch: u64,
        new_owner: Option<InstanceId>,
        now: Millis,
    ) -> Result<JobCas, StoreError>;
    /// All jobs, by id.
    fn list_jobs(&mut self) -> Result<Vec<JobRecord>, StoreError>;
    /// The record and the job's `last_slot` in one write.
    fn commit_fire(&mut self, job: &str, fire: &Fire, now: Millis) -> Result<FireResult, StoreError>;
    fn finish_fire(&mut self, job: &str, slot: Millis, owner: Option<InstanceId>, now: Millis) -> Result<FireResult, StoreError>;
    fn read_fire(&mut self, job: &str, slot: Millis) -> Result<Option<FireRecord>, StoreError>;
    /// Every fire record, by (job, slot).
    fn fires(&mut self) -> Result<Vec<FireRecord>, StoreError>;
    /// The runs holding a place against the cap at `now`, by (job, slot).
    fn list_running(&mut self, now: Millis) -> Result<Vec<FireRecord>, StoreError> {
        Ok(self.fires()?.into_iter().filter(|f| f.running_at(now)).collect())
    }
    /// Returns the new version.
    fn write_settings(&mut self, value: &str, now: Millis) -> Result<u64, StoreError>;
    fn read_settings(&mut self) -> Result<Option<SettingsRecord>, StoreError>;

    /// Dispatch a request to the typed operation.
    fn apply(&mut self, req: &StoreRequest, now: Millis) -> Result<StoreReply, StoreError> {
        Ok(match req {
            StoreRequest::ReadLease { name } => StoreReply::Lease(self.read_lease(name)?),
            StoreRequest::AcquireLease { name, holder, expected_version, ttl_ms } => {
                StoreReply::Cas(self.acquire_lease(name, *holder, *expected_version, *ttl_ms, now)?)
            }
            StoreRequest::RenewLease { name, holder, expected_version, ttl_ms } => {
                StoreReply::Cas(self.renew_lease(name, *holder, *expected_version, *ttl_ms, now)?)
            }
            StoreRequest::ReleaseLease { name, holder, expected_version } => {
                StoreReply::Cas(self.release_lease(name, *holder, *expected_version, now)?)
            }
            StoreRequest::FencedEffect { name, holder, epoch, effect } => {
                StoreReply::Effect(self.fenced_effect(name, *holder, *epoch, effect, now)?)
            }
            StoreRequest::RegisterInstance { id, dead_after_ms } => {
                stamped(self.register_instance(*id, *dead_after_ms, now)?)
            }
            StoreRequest::HeartbeatInstance { id, dead_after_ms } => {
                stamped(self.heartbeat_instance(*id, *dead_after_ms, now)?)
            }
            StoreRequest::DrainInstance { id, dead_after_ms } => stamped(self.drain_instance(*id, *dead_after_ms, now)?),
            StoreRequest::ListInstances => StoreReply::Instances { now, list: self.list_instances()? },
            StoreRequest::ListInstancesOf { ids } => StoreReply::Instances { now, list: self.list_instances_of(ids)? },
            StoreRequest::ReserveSlot { worker, org, org_cap, global_cap } => {
                StoreReply::Slot(self.reserve_slot(worker, org, *org_cap, *global_cap, now)?)
            }
            StoreRequest::FreeSlot { worker, fence } => StoreReply::Slot(self.free_slot(worker, fence.as_ref(), now)?),
            StoreRequest::ListSlots => StoreReply::Slots { now, list: self.list_slots()? },
            StoreRequest::ListSlotsOf { scope } => StoreReply::Slots { now, list: self.list_slots_of(scope)? },
            StoreRequest::InsertWorker { worker } => StoreReply::Worker(self.insert_worker(worker, now)?),
            StoreRequest::UpdateWorker { id, owner, epoch, from, to, session, fence } => StoreReply::Worker(
                self.update_worker(id, *owner, *epoch, *from, *to, *session, fence.as_ref(), now)?,
            ),
            StoreRequest::ClaimWorker { id, owner, epoch, from, to, new_owner, fence, floor } => StoreReply::Worker(
                self.claim_worker_within_floor(id, *owner, *epoch, *from, *to, *new_owner, floor.as_ref(), fence.as_ref(), now)?,
            ),
            StoreRequest::ListWorkers => StoreReply::Workers { now, list: self.list_workers()? },
            StoreRequest::ListWorkersOf { scope } => StoreReply::Workers { now, list: self.list_workers_of(scope, now)? },
            StoreRequest::ListIdleWorkers { org } => StoreReply::Workers { now, list: self.list_idle_workers(org)? },
            StoreRequest::ListSessionWorkers { session } => {
                StoreReply::Workers { now, list: self.list_session_workers(*session)? }
            }
            StoreRequest::CreateJob { id, schedule } => StoreReply::Job(self.create_job(id, schedule, now)?),
            StoreRequest::EditJob { id, schedule, status } => {
                StoreReply::Job(self.edit_job(id, schedule.as_ref(), *status, now)?)
            }
            StoreRequest::ClaimJob { id, owner, epoch, new_owner } => {
                StoreReply::Job(self.claim_job(id, *owner, *epoch, *new_owner, now)?)
            }
            StoreRequest::ListJobs => StoreReply::Jobs { now, list: self.list_jobs()? },
            StoreRequest::CommitFire { job, .. } => {
                let Some(fire) = Fire::of(req) else { unreachable!("a CommitFire request always names a fire") };
                StoreReply::Fire(self.commit_fire(job, &fire, now)?)
            }
            StoreRequest::FinishFire { job, slot, owner } => StoreReply::Fire(self.finish_fire(job, *slot, *owner, now)?),
            StoreRequest::ReadFire { job, slot } => StoreReply::FireRead(self.read_fire(job, *slot)?),
            StoreRequest::ListRunning => StoreReply::Running { now, list: self.list_running(now)? },
            StoreRequest::WriteSettings { value } => StoreReply::SettingsWritten { version: self.write_settings(value, now)? },
            StoreRequest::ReadSettings => StoreReply::Settings(self.read_settings()?),
        })
    }
}

/// The reply to a heartbeat or registration.
fn stamped(alive: bool) -> StoreReply {
    if alive {
        StoreReply::Done
    } else {
        StoreReply::InstanceDead
    }
}
