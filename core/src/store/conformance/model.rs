//! The backends against the bare rulebook: random request sequences give
//! the same replies (errors included) and leave the same records in
//! [`MemStore`], [`SqliteStore`] and a third, deliberately plain home for
//! the records that does nothing but call the rules.

use super::*;
use proptest::prelude::*;

const NAMES: [&str; 2] = ["a", "b"];
const WORKERS: [&str; 3] = ["w1", "w2", "w3"];
const ORGS: [&str; 2] = ["o1", "o2"];
/// Minted-id prefixes a scoped list asks for: one id, all, none, every.
const PREFIXES: [&str; 4] = ["w1", "w", "x", ""];
const JOBS: [&str; 2] = ["j1", "j2"];

/// Schedules jobs are created and edited with (the last one never parses).
fn schedule(k: usize) -> Schedule {
    match k {
        0 => Schedule::Every { ms: 7 },
        1 => Schedule::Every { ms: 30 },
        2 => Schedule::Cron { expr: "*/5 * * * * *".into() },
        3 => Schedule::Every { ms: u64::MAX },
        _ => Schedule::Cron { expr: "never".into() },
    }
}

/// A lease fence: `holder` `None` means the lease's current holder (or 1),
/// `epoch` an offset from its current epoch.
#[derive(Clone, Debug)]
struct FenceOp {
    lease: usize,
    holder: Option<u64>,
    epoch: i64,
}

/// The target state of an update: `Step(k)` picks the `k`-th state the
/// worker's current state may become (so that walks go deep), `Any` any.
#[derive(Clone, Debug)]
enum To {
    Step(usize),
    Any(WorkerState),
}

#[derive(Clone, Debug)]
enum Op {
    Read {
        lease: usize,
    },
    /// List instances (0), slots (1) or workers (2): the lists carry `now`.
    List {
        which: usize,
    },
    /// List the instances among `ids` (some held, some not).
    ListInstancesOf {
        ids: Vec<u64>,
    },
    /// List what one replica's own reaper reads (its slots or its rows):
    /// `prefix` indexes [`PREFIXES`], `ids` [`WORKERS`].
    /// List an org's unbound hot-idle rows, or a session's rows.
    ListBy {
        idle: bool,
        org: usize,
        session: u64,
    },
    ListOf {
        slots: bool,
        inst: u64,
        prefix: usize,
        ids: Vec<usize>,
        dead: u64,
    },
    /// `version`: `None` asks for a missing record, else an offset from the
    /// current version (or from 0 if there is none).
    Acquire {
        lease: usize,
        holder: u64,
        version: Option<i64>,
        ttl: u64,
    },
    Renew {
        lease: usize,
        holder: u64,
        version: i64,
        ttl: u64,
    },
    Release {
        lease: usize,
        holder: u64,
        version: i64,
    },
    /// `epoch`: an offset from the current epoch.
    Fence {
        lease: usize,
        holder: u64,
        epoch: i64,
    },
    /// `dead`: the dead threshold it names, as an offset from the
    /// instance's current age, so that walks hit the boundary (None: a plain
    /// upsert).
    Register {
        inst: u64,
        dead: Option<i64>,
    },
    Heartbeat {
        inst: u64,
        dead: Option<i64>,
    },
    Drain {
        inst: u64,
        dead: Option<i64>,
    },
    Reserve {
        worker: usize,
        org: usize,
        org_cap: u32,
        global_cap: u32,
    },
    Free {
        worker: usize,
        fence: Option<FenceOp>,
    },
    Insert {
        worker: usize,
        org: usize,
        state: WorkerState,
        owner: u64,
        epoch: u64,
        session: Option<u64>,
    },
    /// `owner` `None`: the current owner; `epoch` an offset from the
    /// current owner epoch; `from` `None`: the current state.
    Update {
        worker: usize,
        owner: Option<u64>,
        epoch: i64,
        from: Option<WorkerState>,
        to: To,
        session: Option<u64>,
        fence: Option<FenceOp>,
    },
    Claim {
        worker: usize,
        owner: Option<u64>,
        epoch: i64,
        from: Option<WorkerState>,
        to: Option<WorkerState>,
        new_owner: u64,
        fence: Option<FenceOp>,
        /// `(keep, ttl_ms)` of an idle floor.
        floor: Option<(u32, u64)>,
    },
    CreateJob { job: usize, schedule: usize },
    EditJob { job: usize, schedule: Option<usize>, status: Option<JobStatus> },
    /// `owner` `None`: the job's current owner; `Some(0)`: unowned.
    ClaimJob { job: usize, owner: Option<u64>, epoch: i64, new_owner: Option<u64> },
    /// `slot` an offset from `now`; `owner` as for `ClaimJob`.
    Fire { job: usize, slot: i64, owner: Option<u64>, epoch: i64, kind: FireKind, cap: Option<u32>, hold: u64 },
    /// `slot` picks an existing record (by index, mod their number) or an offset.
    Finish { job: usize, slot: usize, owner: Option<u64> },
    ReadFire { job: usize, slot: usize },
    CronRead { which: usize },
    WriteSettings { value: u8 },
}

fn op() -> impl Strategy<Value = (Op, u64)> {
    let lease = 0..NAMES.len();
    let holder = 1..4u64;
    let off = prop_oneof![4 => Just(0i64), 1 => -2..=2i64];
    // Some long leases, so that fleet fences often hold; now and then one
    // whose expiry overflows.
    let ttl = prop_oneof![10 => 1..120u64, 10 => 200..600u64, 1 => Just(u64::MAX)];
    let dead = prop::option::weighted(0.8, -2..=2i64);
    // Now and then an owner epoch that a claim cannot bump.
    let epoch = prop_oneof![8 => 0..3u64, 1 => Just(u64::MAX)];
    let inst = prop_oneof![3 => 1..4u64, 1 => Just(u64::MAX), 1 => Just(1u64 << 63)];
    let worker = 0..WORKERS.len();
    let org = 0..ORGS.len();
    let state = prop::sample::select(WorkerState::ALL.to_vec());
    let fence = prop::option::weighted(
        0.4,
        (lease.clone(), prop::option::weighted(0.3, holder.clone()), off.clone())
            .prop_map(|(lease, holder, epoch)| FenceOp { lease, holder, epoch }),
    );
    let owner = prop::option::weighted(0.25, holder.clone());
    let session = prop::option::of(0..3u64);
    let to = prop_oneof![3 => (0..4usize).prop_map(To::Step), 1 => state.clone().prop_map(To::Any)];
    let op = prop_oneof![
        1 => lease.clone().prop_map(|lease| Op::Read { lease }),
        1 => (0..3usize).prop_map(|which| Op::List { which }),
        1 => prop::collection::vec(inst.clone(), 0..4).prop_map(|ids| Op::ListInstancesOf { ids }),
        2 => (any::<bool>(), prop_oneof![3 => 1..4u64, 1 => Just(u64::MAX)], 0..PREFIXES.len(),
              prop::collection::vec(0..WORKERS.len(), 0..3), 0..150u64)
            .prop_map(|(slots, inst, prefix, ids, dead)| Op::ListOf { slots, inst, prefix, ids, dead }),
        2 => (any::<bool>(), 0..ORGS.len(), 0..3u64).prop_map(|(idle, org, session)| Op::ListBy { idle, org, session }),
        4 => (lease.clone(), holder.clone(), prop::option::weighted(0.8, off.clone()), ttl.clone())
            .prop_map(|(lease, holder, version, ttl)| Op::Acquire { lease, holder, version, ttl }),
        3 => (lease.clone(), holder.clone(), off.clone(), ttl)
            .prop_map(|(lease, holder, version, ttl)| Op::Renew { lease, holder, version, ttl }),
        2 => (lease.clone(), holder.clone(), off.clone())
            .prop_map(|(lease, holder, version)| Op::Release { lease, holder, version }),
        3 => (lease, holder.clone(), off.clone()).prop_map(|(lease, holder, epoch)| Op::Fence { lease, holder, epoch }),
        1 => (inst.clone(), dead.clone()).prop_map(|(inst, dead)| Op::Register { inst, dead }),
        2 => (inst.clone(), dead.clone()).prop_map(|(inst, dead)| Op::Heartbeat { inst, dead }),
        1 => (inst, dead).prop_map(|(inst, dead)| Op::Drain { inst, dead }),
        3 => (worker.clone(), org.clone(), 0..3u32, 0..4u32)
            .prop_map(|(worker, org, org_cap, global_cap)| Op::Reserve { worker, org, org_cap, global_cap }),
        2 => (worker.clone(), fence.clone()).prop_map(|(worker, fence)| Op::Free { worker, fence }),
        5 => (worker.clone(), org, state.clone(), holder.clone(), epoch, session.clone()).prop_map(
            |(worker, org, state, owner, epoch, session)| Op::Insert { worker, org, state, owner, epoch, session }
        ),
        8 => (worker.clone(), owner.clone(), off.clone(), prop::option::weighted(0.15, state.clone()), to, session, fence.clone())
            .prop_map(|(worker, owner, epoch, from, to, session, fence)| {
                Op::Update { worker, owner, epoch, from, to, session, fence }
            }),
        3 => (
            (worker, owner, off, prop::option::of(state.clone()), prop::option::weighted(0.4, state)),
            (holder, fence, prop::option::weighted(0.3, (0..3u32, 0..40u64))),
        )
            .prop_map(|((worker, owner, epoch, from, to), (new_owner, fence, floor))| Op::Claim {
                worker,
                owner,
                epoch,
                from,
                to,
                new_owner,
                fence,
                floor
            }),
    ];
    let job = 0..JOBS.len();
    let jowner = prop::option::weighted(0.3, 0..3u64);
    let kind = prop_oneof![6 => Just(FireKind::Run), 3 => Just(FireKind::Missed), 1 => Just(FireKind::AtCap)];
    let status = prop::sample::select(vec![JobStatus::Active, JobStatus::Paused, JobStatus::Deleted]);
    let hold = prop_oneof![5 => 1..200u64, 1 => Just(u64::MAX)];
    let cron = prop_oneof![
        3 => (job.clone(), 0..5usize).prop_map(|(job, schedule)| Op::CreateJob { job, schedule }),
        2 => (job.clone(), prop::option::weighted(0.5, 0..5usize), prop::option::weighted(0.6, status))
            .prop_map(|(job, schedule, status)| Op::EditJob { job, schedule, status }),
        3 => (job.clone(), jowner.clone(), prop_oneof![4 => Just(0i64), 1 => -1..=1i64], prop::option::weighted(0.8, 1..4u64))
            .prop_map(|(job, owner, epoch, new_owner)| Op::ClaimJob { job, owner, epoch, new_owner }),
        6 => (job.clone(), -60..=3i64, jowner.clone(), prop_oneof![5 => Just(0i64), 1 => -1..=1i64], kind,
              prop::option::weighted(0.7, 0..3u32), hold)
            .prop_map(|(job, slot, owner, epoch, kind, cap, hold)| Op::Fire { job, slot, owner, epoch, kind, cap, hold }),
        2 => (job.clone(), 0..8usize, jowner).prop_map(|(job, slot, owner)| Op::Finish { job, slot, owner }),
        1 => (job, 0..8usize).prop_map(|(job, slot)| Op::ReadFire { job, slot }),
        1 => (0..3usize).prop_map(|which| Op::CronRead { which }),
        1 => any::<u8>().prop_map(|value| Op::WriteSettings { value }),
    ];
    let op = prop_oneof![3 => op, 1 => cron];
    // How far the store's clock advances before the op.
    (op, prop_oneof![2 => Just(0u64), 3 => 1..40u64, 1 => 40..150u64])
}

fn shift(base: u64, off: i64) -> u64 {
    base.saturating_add_signed(off)
}

/// The records before the op, so that offsets and "current" choices
/// usually hit the live values.
struct Snap {
    leases: Vec<Option<LeaseRecord>>,
    instances: Vec<InstanceRecord>,
    workers: Vec<Option<WorkerRecord>>,
    jobs: Vec<Option<JobRecord>>,
    fires: Vec<FireRecord>,
}

impl Snap {
    /// The `(owner, epoch)` an op presents for `job`.
    fn job_owner(&self, job: usize, owner: Option<u64>, epoch: i64) -> (Option<InstanceId>, u64) {
        let cur = self.jobs[job].as_ref();
        let o = match owner {
            None => cur.and_then(|j| j.owner),
            Some(0) => None,
            Some(n) => Some(InstanceId(n)),
        };
        (o, shift(cur.map_or(0, |j| j.owner_epoch), epoch))
    }

    /// An existing record's slot of `job` (by index), else `k` itself.
    fn fire_slot(&self, job: usize, k: usize) -> Millis {
        let of_job: Vec<&FireRecord> = self.fires.iter().filter(|f| f.job == JOBS[job]).collect();
        if of_job.is_empty() || k >= 6 {
            k as Millis
        } else {
            of_job[k % of_job.len()].slot
        }
    }

    fn of(records: &Records) -> Self {
        Snap {
            leases: records.leases.clone(),
            instances: records.instances.clone(),
            workers: WORKERS.iter().map(|w| records.workers.iter().find(|r| r.id == *w).cloned()).collect(),
            jobs: JOBS.iter().map(|j| records.jobs.iter().find(|r| r.id == *j).cloned()).collect(),
            fires: records.fires.clone(),
        }
    }

    /// A dead threshold `off` from the instance's age at `now` (0 if unknown).
    fn dead_after(&self, inst: u64, off: Option<i64>, now: Millis) -> Option<u64> {
        let age = self.instances.iter().find(|r| r.id.0 == inst).map_or(0, |r| now.saturating_sub(r.heartbeat_at));
        off.map(|off| shift(age, off))
    }

    fn lease_version(&self, lease: usize) -> u64 {
        self.leases[lease].as_ref().map_or(0, |r| r.version)
    }

    fn lease_epoch(&self, lease: usize) -> u64 {
        self.leases[lease].as_ref().map_or(0, |r| r.epoch)
    }

    fn fence(&self, f: &Option<FenceOp>) -> Option<LeaseFence> {
        f.as_ref().map(|f| LeaseFence {
            lease: NAMES[f.lease].to_string(),
            holder: InstanceId(
                f.holder.unwrap_or_else(|| self.leases[f.lease].as_ref().and_then(|r| r.holder).map_or(1, |h| h.0)),
            ),
            epoch: shift(self.lease_epoch(f.lease), f.epoch),
        })
    }

    /// The `(owner, epoch)` an op presents for `worker`.
    fn owner(&self, worker: usize, owner: Option<u64>, epoch: i64) -> (InstanceId, u64) {
        let cur = self.workers[worker].as_ref();
        let o = owner.unwrap_or_else(|| cur.map_or(1, |w| w.owner.0));
        (InstanceId(o), shift(cur.map_or(1, |w| w.owner_epoch), epoch))
    }

    fn state(&self, worker: usize) -> WorkerState {
        self.workers[worker].as_ref().map_or(WorkerState::Spawning, |w| w.state)
    }
}


/// The request an op makes, given the records it was drawn against.
fn request(op: &Op, snap: &Snap, now: Millis) -> StoreRequest {
    let name = |lease: usize| NAMES[lease].to_string();
    match op {
        &Op::Read { lease } => StoreRequest::ReadLease { name: name(lease) },
        &Op::List { which } => [StoreRequest::ListInstances, StoreRequest::ListSlots, StoreRequest::ListWorkers][which].clone(),
        Op::ListInstancesOf { ids } => StoreRequest::ListInstancesOf { ids: ids.iter().map(|&i| InstanceId(i)).collect() },
        &Op::ListBy { idle: true, org, .. } => StoreRequest::ListIdleWorkers { org: ORGS[org].to_string() },
        &Op::ListBy { idle: false, session, .. } => StoreRequest::ListSessionWorkers { session },
        Op::ListOf { slots, inst, prefix, ids, dead } => {
            let scope = OwnScope {
                instance: InstanceId(*inst),
                minted_prefix: PREFIXES[*prefix].to_string(),
                ids: ids.iter().map(|&w| WORKERS[w].to_string()).collect(),
                dead_after_ms: *dead,
            };
            if *slots {
                StoreRequest::ListSlotsOf { scope }
            } else {
                StoreRequest::ListWorkersOf { scope }
            }
        }
        &Op::Acquire { lease, holder, version, ttl } => StoreRequest::AcquireLease {
            name: name(lease),
            holder: InstanceId(holder),
            expected_version: version.map(|off| shift(snap.lease_version(lease), off)),
            ttl_ms: ttl,
        },
        &Op::Renew { lease, holder, version, ttl } => StoreRequest::RenewLease {
            name: name(lease),
            holder: InstanceId(holder),
            expected_version: shift(snap.lease_version(lease), version),
            ttl_ms: ttl,
        },
        &Op::Release { lease, holder, version } => StoreRequest::ReleaseLease {
            name: name(lease),
            holder: InstanceId(holder),
            expected_version: shift(snap.lease_version(lease), version),
        },
        &Op::Fence { lease, holder, epoch } => StoreRequest::FencedEffect {
            name: name(lease),
            holder: InstanceId(holder),
            epoch: shift(snap.lease_epoch(lease), epoch),
            effect: format!("fx{holder}@{now}"),
        },
        &Op::Register { inst, dead } => {
            StoreRequest::RegisterInstance { id: InstanceId(inst), dead_after_ms: snap.dead_after(inst, dead, now) }
        }
        &Op::Heartbeat { inst, dead } => {
            StoreRequest::HeartbeatInstance { id: InstanceId(inst), dead_after_ms: snap.dead_after(inst, dead, now) }
        }
        &Op::Drain { inst, dead } => {
            StoreRequest::DrainInstance { id: InstanceId(inst), dead_after_ms: snap.dead_after(inst, dead, now) }
        }
        &Op::Reserve { worker, org, org_cap, global_cap } => StoreRequest::ReserveSlot {
            worker: WORKERS[worker].to_string(),
            org: ORGS[org].to_string(),
            org_cap,
            global_cap,
        },
        Op::Free { worker, fence } => {
            StoreRequest::FreeSlot { worker: WORKERS[*worker].to_string(), fence: snap.fence(fence) }
        }
        &Op::Insert { worker, org, state, owner, epoch, session } => StoreRequest::InsertWorker {
            worker: WorkerRecord {
                id: WORKERS[worker].to_string(),
                org: ORGS[org].to_string(),
                state,
                owner: InstanceId(owner),
                owner_epoch: epoch,
                pod: format!("pod{owner}"),
                secret: format!("s{now}"),
                session,
                created_at: 1,
                updated_at: 2,
                idle_since: 3,
                version: 4,
            },
        },
        Op::Update { worker, owner, epoch, from, to, session, fence } => {
            let (owner, epoch) = snap.owner(*worker, *owner, *epoch);
            let from = from.unwrap_or_else(|| snap.state(*worker));
            let to = match *to {
                To::Any(s) => s,
                To::Step(k) => {
                    let next: Vec<_> = WorkerState::ALL.into_iter().filter(|s| from.can_become(*s)).collect();
                    if next.is_empty() {
                        from
                    } else {
                        next[k % next.len()]
                    }
                }
            };
            let (id, session, fence) = (WORKERS[*worker].to_string(), *session, snap.fence(fence));
            StoreRequest::UpdateWorker { id, owner, epoch, from, to, session, fence }
        }
        Op::Claim { worker, owner, epoch, from, to, new_owner, fence, floor } => {
            let (owner, epoch) = snap.owner(*worker, *owner, *epoch);
            StoreRequest::ClaimWorker {
                id: WORKERS[*worker].to_string(),
                owner,
                epoch,
                from: *from,
                to: *to,
                new_owner: InstanceId(*new_owner),
                fence: snap.fence(fence),
                floor: floor.map(|(keep, ttl_ms)| IdleFloor { keep, ttl_ms }),
            }
        }
        &Op::CreateJob { job, schedule: k } => StoreRequest::CreateJob { id: JOBS[job].into(), schedule: schedule(k) },
        &Op::EditJob { job, schedule: k, status } => {
            StoreRequest::EditJob { id: JOBS[job].into(), schedule: k.map(schedule), status }
        }
        &Op::ClaimJob { job, owner, epoch, new_owner } => {
            let (owner, epoch) = snap.job_owner(job, owner, epoch);
            StoreRequest::ClaimJob { id: JOBS[job].into(), owner, epoch, new_owner: new_owner.map(InstanceId) }
        }
        &Op::Fire { job, slot, owner, epoch, kind, cap, hold } => {
            let (owner, epoch) = snap.job_owner(job, owner, epoch);
            let slot = shift(now, slot);
            // Now and then a stale timer's spec.
            let spec = snap.jobs[job].as_ref().map_or(1, |j| j.spec).saturating_sub(u64::from(hold % 3 == 0));
            StoreRequest::CommitFire { job: JOBS[job].into(), slot, owner, epoch, kind, cap, hold_ms: hold, late_after_ms: 20, spec }
        }
        &Op::Finish { job, slot, owner } => {
            let (owner, _) = snap.job_owner(job, owner, 0);
            StoreRequest::FinishFire { job: JOBS[job].into(), slot: snap.fire_slot(job, slot), owner }
        }
        &Op::ReadFire { job, slot } => StoreRequest::ReadFire { job: JOBS[job].into(), slot: snap.fire_slot(job, slot) },
        &Op::CronRead { which } => [StoreRequest::ListJobs, StoreRequest::ListRunning, StoreRequest::ReadSettings][which].clone(),
        &Op::WriteSettings { value } => StoreRequest::WriteSettings { value: format!("v{value}") },
    }
}

/// Every record a store holds, as its reads and lists give them.
#[derive(Debug, PartialEq, Eq)]
struct Records {
    leases: Vec<Option<LeaseRecord>>,
    effects: Vec<EffectRow>,
    instances: Vec<InstanceRecord>,
    slots: Vec<SlotRecord>,
    workers: Vec<WorkerRecord>,
    jobs: Vec<JobRecord>,
    fires: Vec<FireRecord>,
    settings: Option<SettingsRecord>,
}

impl Records {
    fn of<B: StoreBackend>(b: &mut B) -> Self {
        Records {
            leases: NAMES.iter().map(|n| b.read_lease(n).unwrap()).collect(),
            effects: b.effects().unwrap(),
            instances: b.list_instances().unwrap(),
            slots: b.list_slots().unwrap(),
            workers: b.list_workers().unwrap(),
            jobs: b.list_jobs().unwrap(),
            fires: b.fires().unwrap(),
            settings: b.read_settings().unwrap(),
        }
    }
}

/// The bare rulebook: records in plain unsorted vectors, each request
/// answered by finding the record(s) its rule reads, calling the rule, and
/// putting back what it returns. Nothing here decides anything.
#[derive(Default)]
struct Bare {
    leases: Vec<LeaseRecord>,
    effects: Vec<EffectRow>,
    instances: Vec<InstanceRecord>,
    slots: Vec<SlotRecord>,
    workers: Vec<WorkerRecord>,
    jobs: Vec<JobRecord>,
    fires: Vec<FireRecord>,
    settings: Option<SettingsRecord>,
}

/// Put the rule's next record in place of the one `same` finds, or add
/// it; answer the rule's reply.
fn put<Reply, R>(list: &mut Vec<R>, same: impl Fn(&R) -> bool, out: rules::Outcome<Reply, R>) -> Reply {
    if let Some(next) = out.next {
        match list.iter().position(same) {
            Some(i) => list[i] = next,
            None => list.push(next),
        }
    }
    out.reply
}

fn sorted<R: Clone, K: Ord>(list: &[R], key: impl Fn(&R) -> K) -> Vec<R> {
    let mut list = list.to_vec();
    list.sort_by_key(key);
    list
}

impl Bare {
    fn lease(&self, name: &str) -> Option<&LeaseRecord> {
        self.leases.iter().find(|l| l.name == name)
    }

    fn fence<'a>(&'a self, fence: &'a Option<LeaseFence>) -> rules::FenceView<'a> {
        fence.as_ref().map(|f| (f, self.lease(&f.lease)))
    }

    fn worker(&self, id: &str) -> Option<&WorkerRecord> {
        self.workers.iter().find(|w| w.id == id)
    }

    fn job(&self, id: &str) -> Option<&JobRecord> {
        self.jobs.iter().find(|j| j.id == id)
    }

    fn records(&self) -> Records {
        Records {
            leases: NAMES.iter().map(|n| self.lease(n).cloned()).collect(),
            effects: self.effects.clone(),
            instances: sorted(&self.instances, |r| r.id),
            slots: sorted(&self.slots, |s| s.worker.clone()),
            workers: sorted(&self.workers, |w| w.id.clone()),
            jobs: sorted(&self.jobs, |j| j.id.clone()),
            fires: sorted(&self.fires, |f| (f.job.clone(), f.slot)),
            settings: self.settings.clone(),
        }
    }

    fn apply(&mut self, req: &StoreRequest, now: Millis) -> Result<StoreReply, StoreError> {
        use StoreRequest as Q;
        Ok(match req {
            Q::ReadLease { name } => StoreReply::Lease(self.lease(name).cloned()),
            Q::AcquireLease { name, holder, expected_version, ttl_ms } => {
                let out = rules::lease::acquire(self.lease(name), name, *holder, *expected_version, *ttl_ms, now)?;
                StoreReply::Cas(put(&mut self.leases, |l| l.name == *name, out))
            }
            Q::RenewLease { name, holder, expected_version, ttl_ms } => {
                let out = rules::lease::renew(self.lease(name), *holder, *expected_version, *ttl_ms, now)?;
                StoreReply::Cas(put(&mut self.leases, |l| l.name == *name, out))
            }
            Q::ReleaseLease { name, holder, expected_version } => {
                let out = rules::lease::release(self.lease(name), *holder, *expected_version, now)?;
                StoreReply::Cas(put(&mut self.leases, |l| l.name == *name, out))
            }
            Q::FencedEffect { name, holder, epoch, effect } => {
                let committed = self.effects.iter().find(|r| r.lease == *name && r.effect == *effect).map(|r| r.seq);
                let last = self.effects.iter().map(|r| r.seq).max().unwrap_or(0);
                let out = rules::effects::commit(committed, self.lease(name), name, *holder, *epoch, effect, last, now)?;
                self.effects.extend(out.next);
                StoreReply::Effect(out.reply)
            }
            Q::RegisterInstance { id, dead_after_ms } | Q::HeartbeatInstance { id, dead_after_ms } => {
                let current = self.instances.iter().find(|r| r.id == *id);
                let out = rules::instances::stamp(current, *id, *dead_after_ms, now);
                if put(&mut self.instances, |r| r.id == *id, out) {
                    StoreReply::Done
                } else {
                    StoreReply::InstanceDead
                }
            }
            Q::DrainInstance { id, dead_after_ms } => {
                let current = self.instances.iter().find(|r| r.id == *id);
                let out = rules::instances::drain(current, *dead_after_ms, now);
                if put(&mut self.instances, |r| r.id == *id, out) {
                    StoreReply::Done
                } else {
                    StoreReply::InstanceDead
                }
            }
            Q::ListInstances => StoreReply::Instances { now, list: self.records().instances },
            Q::ListInstancesOf { ids } => {
                let list = self.records().instances.into_iter().filter(|r| ids.contains(&r.id)).collect();
                StoreReply::Instances { now, list }
            }
            Q::ReserveSlot { worker, org, org_cap, global_cap } => {
                let held = self.slots.iter().find(|s| s.worker == *worker);
                let in_org = self.slots.iter().filter(|s| s.org == *org).count();
                let out = rules::slots::reserve(held, in_org, self.slots.len(), worker, org, *org_cap, *global_cap, now);
                StoreReply::Slot(put(&mut self.slots, |s| s.worker == *worker, out))
            }
            Q::FreeSlot { worker, fence } => {
                let held = self.slots.iter().find(|s| s.worker == *worker);
                let reply = rules::slots::free(held, self.fence(fence), now);
                if reply == SlotResult::Freed {
                    self.slots.retain(|s| s.worker != *worker);
                }
                StoreReply::Slot(reply)
            }
            Q::ListSlots => StoreReply::Slots { now, list: self.records().slots },
            Q::InsertWorker { worker: w } => {
                let out = rules::workers::insert(self.worker(&w.id), w, now);
                StoreReply::Worker(put(&mut self.workers, |r| r.id == w.id, out))
            }
            Q::UpdateWorker { id, owner, epoch, from, to, session, fence } => {
                let (current, fence) = (self.worker(id), self.fence(fence));
                let out = rules::workers::update(current, fence, *owner, *epoch, *from, *to, *session, now)?;
                StoreReply::Worker(put(&mut self.workers, |r| r.id == *id, out))
            }
            Q::ClaimWorker { id, owner, epoch, from, to, new_owner, fence, floor } => {
                let (current, fence, floor) = (self.worker(id), self.fence(fence), floor.as_ref());
                let idle: Vec<WorkerRecord> = match rules::workers::floor_owner(current, floor) {
                    Some(o) => self.workers.iter().filter(|w| w.owner == o && w.state == S::HotIdle).cloned().collect(),
                    None => Vec::new(),
                };
                let (e, n) = (*epoch, *new_owner);
                let out = rules::workers::claim(current, &idle, floor, fence, *owner, e, *from, *to, n, now)?;
                StoreReply::Worker(put(&mut self.workers, |r| r.id == *id, out))
            }
            Q::ListWorkers => StoreReply::Workers { now, list: self.records().workers },
            Q::ListWorkersOf { scope } => {
                let live = crate::registry::live_instances(&self.records().instances, now, scope.dead_after_ms);
                let list = self.records().workers.into_iter().filter(|w| rules::workers::in_scope(w, scope, &live)).collect();
                StoreReply::Workers { now, list }
            }
            Q::ListIdleWorkers { org } => {
                let list = self.records().workers.into_iter().filter(|w| rules::workers::idle_in(w, org)).collect();
                StoreReply::Workers { now, list }
            }
            Q::ListSessionWorkers { session } => {
                let list = self.records().workers.into_iter().filter(|w| w.session == Some(*session)).collect();
                StoreReply::Workers { now, list }
            }
            Q::ListSlotsOf { scope } => {
                let owner = |s: &SlotRecord| self.worker(&s.worker).map(|w| w.owner);
                let list = self.records().slots.into_iter().filter(|s| rules::workers::slot_in_scope(s, owner(s), scope)).collect();
                StoreReply::Slots { now, list }
            }
            Q::CreateJob { id, schedule } => {
                let out = rules::cron::create(self.job(id), id, schedule, now);
                StoreReply::Job(put(&mut self.jobs, |j| j.id == *id, out))
            }
            Q::EditJob { id, schedule, status } => {
                let out = rules::cron::edit(self.job(id), schedule.as_ref(), *status, now)?;
                StoreReply::Job(put(&mut self.jobs, |j| j.id == *id, out))
            }
            Q::ClaimJob { id, owner, epoch, new_owner } => {
                let out = rules::cron::claim(self.job(id), *owner, *epoch, *new_owner)?;
                StoreReply::Job(put(&mut self.jobs, |j| j.id == *id, out))
            }
            Q::ListJobs => StoreReply::Jobs { now, list: self.records().jobs },
            Q::CommitFire { job, slot, .. } => {
                let fire = rules::cron::Fire::of(req).expect("a commit_fire request");
                let existing = self.fires.iter().find(|f| f.job == *job && f.slot == *slot);
                let running = self.fires.iter().filter(|f| f.running_at(now)).count();
                let out = rules::cron::commit_fire(self.job(job), existing, running, &fire, now)?;
                if let Some((rec, next)) = out.next {
                    self.fires.push(rec);
                    put(&mut self.jobs, |j| j.id == *job, rules::Outcome { reply: (), next: Some(next) });
                }
                StoreReply::Fire(out.reply)
            }
            Q::FinishFire { job, slot, owner } => {
                let existing = self.fires.iter().find(|f| f.job == *job && f.slot == *slot);
                let out = rules::cron::finish_fire(existing, *owner, now);
                StoreReply::Fire(put(&mut self.fires, |f| f.job == *job && f.slot == *slot, out))
            }
            Q::ReadFire { job, slot } => {
                StoreReply::FireRead(self.fires.iter().find(|f| f.job == *job && f.slot == *slot).cloned())
            }
            Q::ListRunning => {
                StoreReply::Running { now, list: self.records().fires.into_iter().filter(|f| f.running_at(now)).collect() }
            }
            Q::WriteSettings { value } => {
                let out = rules::cron::write_settings(self.settings.as_ref(), value, now)?;
                if let Some(next) = out.next {
                    self.settings = Some(next);
                }
                StoreReply::SettingsWritten { version: out.reply }
            }
            Q::ReadSettings => StoreReply::Settings(self.settings.clone()),
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn backends_agree_with_the_rulebook(seeded in any::<bool>(), ops in prop::collection::vec(op(), 0..60)) {
        let mut bare = Bare::default();
        let mut mem = MemStore::new();
        let mut sql = SqliteStore::open_in_memory().unwrap();
        let mut now: Millis = 0;
        // Half the runs start with a long lease on "a", so that fleet
        // fences often hold.
        let seed = seeded.then_some((Op::Acquire { lease: 0, holder: 1, version: None, ttl: 2_000 }, 0));
        for (i, (op, advance)) in seed.iter().chain(ops.iter()).enumerate() {
            now += advance;
            let req = request(op, &Snap::of(&bare.records()), now);
            let want = bare.apply(&req, now);
            prop_assert!(!matches!(want, Err(ref e) if !matches!(e, StoreError::Failed(_))), "rulebook: {:?}", want);
            prop_assert_eq!(&mem.apply(&req, now), &want, "MemStore, step {} {:?} at {}", i, req, now);
            prop_assert_eq!(&sql.apply(&req, now), &want, "SqliteStore, step {} {:?} at {}", i, req, now);
            let records = bare.records();
            prop_assert_eq!(&Records::of(&mut mem), &records, "MemStore records after step {}", i);
            prop_assert_eq!(&Records::of(&mut sql), &records, "SqliteStore records after step {}", i);
        }
    }
}

#[cfg(feature = "postgres")]
proptest! {
    // Fewer cases: each is a fresh schema on the test server, and every
    // step a few round trips.
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn postgres_agrees_with_the_rulebook(seeded in any::<bool>(), ops in prop::collection::vec(op(), 0..60)) {
        let Some(server) = crate::store::pg_testserver::server() else { return Ok(()) };
        let schema = server.fresh_schema("model");
        let mut pg = PgStore::connect(&server.url(&schema), 1, PgClock::Given).unwrap();
        let mut bare = Bare::default();
        let mut now: Millis = 0;
        let seed = seeded.then_some((Op::Acquire { lease: 0, holder: 1, version: None, ttl: 2_000 }, 0));
        for (i, (op, advance)) in seed.iter().chain(ops.iter()).enumerate() {
            now += advance;
            let req = request(op, &Snap::of(&bare.records()), now);
            let want = bare.apply(&req, now);
            prop_assert_eq!(&pg.apply(&req, now), &want, "PgStore, step {} {:?} at {}", i, req, now);
            prop_assert_eq!(&Records::of(&mut pg), &bare.records(), "PgStore records after step {}", i);
        }
        drop(pg);
        server.drop_schema(&schema);
    }
}
