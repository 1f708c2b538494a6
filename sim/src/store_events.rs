//! The trace events for what the store did with a request: core's store
//! types as the trace names them (the simulator's store node and the live
//! mode's store gateway both record through [`describe`]).

/// What the store answered a request.
pub type StoreResult = Result<StoreReply, StoreError>;

use haywire_core::store::{StoreError, StoreReply, StoreRequest};
use haywire_core::InstanceId;
use haywire_traces::{EventKind, JobRow, LeaseOp, LeaseState, Lifecycle, SlotOp, SlotReply, WorkerOp, WorkerRow};

fn lease_state(r: &haywire_core::store::LeaseRecord) -> LeaseState {
    LeaseState { holder: r.holder.map(|h| h.0), epoch: r.epoch, expires_at_ms: r.expires_at, version: r.version }
}

/// Core's lifecycle state as the trace names it (a match, so a state added
/// to core without a trace name fails the build).
pub fn lifecycle(s: haywire_core::worker::WorkerState) -> Lifecycle {
    use haywire_core::worker::WorkerState as W;
    match s {
        W::Spawning => Lifecycle::Spawning,
        W::Activating => Lifecycle::Activating,
        W::Hot => Lifecycle::Hot,
        W::HotIdle => Lifecycle::HotIdle,
        W::Draining => Lifecycle::Draining,
        W::Retired => Lifecycle::Retired,
        W::Lost => Lifecycle::Lost,
    }
}

fn slot_reply(r: &haywire_core::store::SlotResult) -> SlotReply {
    use haywire_core::store::SlotResult as R;
    match r {
        R::Reserved => SlotReply::Reserved,
        R::OrgCap => SlotReply::OrgCap,
        R::GlobalCap => SlotReply::GlobalCap,
        R::Exists => SlotReply::Exists,
        R::Freed => SlotReply::Freed,
        R::NotFound => SlotReply::NotFound,
        R::Fenced => SlotReply::Fenced,
    }
}

fn worker_row(w: &haywire_core::store::WorkerRecord) -> WorkerRow {
    WorkerRow {
        state: lifecycle(w.state),
        org: w.org.clone(),
        owner: w.owner.0,
        epoch: w.owner_epoch,
        session: w.session,
    }
}

fn job_row(j: &haywire_core::store::JobRecord) -> JobRow {
    use haywire_core::store::Schedule;
    JobRow {
        schedule: j.schedule.to_string(),
        every_ms: match j.schedule {
            Schedule::Every { ms } => Some(ms),
            Schedule::Cron { .. } => None,
        },
        status: j.status.name().to_string(),
        owner: j.owner.map(|o| o.0),
        epoch: j.owner_epoch,
        since_ms: j.since,
        spec: j.spec,
    }
}

/// The trace event for a cron request the store answered (`None`: not a
/// cron request, or a read).
fn describe_cron(from: u64, req: &StoreRequest, result: &StoreResult, reply_lost: bool) -> Option<Option<EventKind>> {
    use haywire_core::store::{FireResult, JobCas};
    let reply = match result {
        Ok(r) => r,
        Err(_) => return None,
    };
    Some(Some(match (req, reply) {
        (StoreRequest::ListJobs | StoreRequest::ReadFire { .. } | StoreRequest::ListRunning | StoreRequest::ReadSettings, _) => {
            return Some(None)
        }
        (StoreRequest::CreateJob { id, .. } | StoreRequest::EditJob { id, .. } | StoreRequest::ClaimJob { id, .. }, StoreReply::Job(r)) => {
            let (op, as_owner, as_epoch) = match req {
                StoreRequest::CreateJob { .. } => ("create", None, None),
                StoreRequest::EditJob { .. } => ("edit", None, None),
                StoreRequest::ClaimJob { owner, epoch, .. } => ("claim", owner.map(|o| o.0), Some(*epoch)),
                _ => unreachable!("matched above"),
            };
            let (applied, reject, job) = match r {
                JobCas::Applied(j) => (true, None, Some(job_row(j))),
                JobCas::Rejected { reason, .. } => (false, Some(format!("{reason:?}")), None),
            };
            EventKind::JobWrite { from, op: op.into(), id: id.clone(), applied, reject, job, as_owner, as_epoch, reply_lost }
        }
        (StoreRequest::CommitFire { job, slot, owner, epoch, kind, .. }, StoreReply::Fire(r)) => {
            let (kind, result, deadline_ms) = match r {
                FireResult::Committed(rec) => {
                    let d = (rec.kind == haywire_core::store::FireKind::Run).then_some(rec.deadline);
                    (rec.kind.name().to_string(), "committed".to_string(), d)
                }
                other => (kind.name().to_string(), other.name().to_string(), None),
            };
            EventKind::FireWrite {
                from,
                job: job.clone(),
                slot_ms: *slot,
                kind,
                result,
                as_owner: owner.map(|o| o.0),
                as_epoch: *epoch,
                deadline_ms,
                reply_lost,
            }
        }
        (StoreRequest::FinishFire { job, slot, .. }, StoreReply::Fire(FireResult::Committed(_))) => {
            EventKind::FireFinished { from, job: job.clone(), slot_ms: *slot }
        }
        (StoreRequest::FinishFire { .. }, _) => return Some(None),
        (StoreRequest::WriteSettings { .. }, StoreReply::SettingsWritten { version }) => {
            EventKind::SettingsWrite { from, version: *version }
        }
        _ => return None,
    }))
}

/// The trace event for what the store did with a request (`None` for
/// lists: reads that change nothing and would only add noise).
pub fn describe(from: InstanceId, req: &StoreRequest, result: &StoreResult, reply_lost: bool) -> Option<EventKind> {
    use haywire_core::store::WorkerCas;
    let from = from.0;
    if let Some(ev) = describe_cron(from, req, result, reply_lost) {
        return ev;
    }
    let fence = req.fence().map(|f| f.epoch);
    Some(match (req, result) {
        (
            StoreRequest::ListInstances
            | StoreRequest::ListInstancesOf { .. }
            | StoreRequest::ListSlots
            | StoreRequest::ListSlotsOf { .. }
            | StoreRequest::ListWorkers
            | StoreRequest::ListWorkersOf { .. }
            | StoreRequest::ListIdleWorkers { .. }
            | StoreRequest::ListSessionWorkers { .. },
            Ok(_),
        ) => return None,
        (StoreRequest::HeartbeatInstance { .. } | StoreRequest::RegisterInstance { .. }, Ok(StoreReply::InstanceDead)) => {
            EventKind::HeartbeatRefused { from }
        }
        (StoreRequest::HeartbeatInstance { .. }, Ok(_)) => EventKind::InstanceHeartbeat { from },
        (StoreRequest::RegisterInstance { .. }, Ok(_)) => EventKind::InstanceRegistered { from },
        (StoreRequest::DrainInstance { .. }, Ok(StoreReply::Done)) => EventKind::InstanceDraining { from },
        (StoreRequest::DrainInstance { .. }, Ok(_)) => return None,
        (StoreRequest::ReserveSlot { worker, org, .. }, Ok(StoreReply::Slot(r))) => EventKind::SlotWrite {
            from,
            op: SlotOp::Reserve,
            worker: worker.clone(),
            org: Some(org.clone()),
            result: slot_reply(r),
            fence,
            reply_lost,
        },
        (StoreRequest::FreeSlot { worker, .. }, Ok(StoreReply::Slot(r))) => EventKind::SlotWrite {
            from,
            op: SlotOp::Free,
            worker: worker.clone(),
            org: None,
            result: slot_reply(r),
            fence,
            reply_lost,
        },
        (
            StoreRequest::InsertWorker { .. } | StoreRequest::UpdateWorker { .. } | StoreRequest::ClaimWorker { .. },
            Ok(StoreReply::Worker(r)),
        ) => {
            let (op, id, as_owner, as_epoch) = match req {
                StoreRequest::InsertWorker { worker } => (WorkerOp::Insert, worker.id.clone(), None, None),
                StoreRequest::UpdateWorker { id, owner, epoch, .. } => (WorkerOp::Update, id.clone(), Some(owner.0), Some(*epoch)),
                StoreRequest::ClaimWorker { id, owner, epoch, .. } => (WorkerOp::Claim, id.clone(), Some(owner.0), Some(*epoch)),
                _ => unreachable!("matched above"),
            };
            let (applied, reject, worker) = match r {
                WorkerCas::Applied(w) => (true, None, Some(worker_row(w))),
                WorkerCas::Rejected { reason, .. } => (false, Some(format!("{reason:?}")), None),
            };
            EventKind::WorkerWrite { from, op, id, applied, as_owner, as_epoch, fence, reject, worker, reply_lost }
        }
        _ => describe_lease(from, req, result, reply_lost),
    })
}

/// The trace event for a lease operation.
fn describe_lease(from: u64, req: &StoreRequest, result: &StoreResult, reply_lost: bool) -> EventKind {
    use haywire_core::store::{CasResult, EffectResult};
    match (req, result) {
        (_, Err(e)) => EventKind::StoreFailed { from, op: format!("{} ({e})", req.op()) },
        (StoreRequest::ReadLease { .. }, Ok(_)) => EventKind::StoreRead { from },
        (StoreRequest::FencedEffect { epoch, effect, .. }, Ok(StoreReply::Effect(r))) => {
            let (applied, seq, reject) = match r {
                EffectResult::Applied { seq } => (true, Some(*seq), None),
                EffectResult::Rejected { reason } => (false, None, Some(format!("{reason:?}"))),
                EffectResult::Duplicate { seq } => (false, Some(*seq), Some("Duplicate".to_string())),
            };
            EventKind::EffectWrite { from, epoch: *epoch, key: effect.clone(), applied, seq, reject, reply_lost }
        }
        (_, Ok(StoreReply::Cas(r))) => {
            let op = match req {
                StoreRequest::AcquireLease { .. } => LeaseOp::Acquire,
                StoreRequest::RenewLease { .. } => LeaseOp::Renew,
                StoreRequest::ReleaseLease { .. } => LeaseOp::Release,
                _ => return EventKind::StoreFailed { from, op: format!("{} (mismatched reply {r:?})", req.op()) },
            };
            match r {
                CasResult::Applied(rec) => EventKind::LeaseWrite {
                    from,
                    op,
                    applied: true,
                    reject: None,
                    lease: Some(lease_state(rec)),
                    reply_lost,
                },
                CasResult::Rejected { reason, .. } => EventKind::LeaseWrite {
                    from,
                    op,
                    applied: false,
                    reject: Some(format!("{reason:?}")),
                    lease: None,
                    reply_lost,
                },
            }
        }
        (_, Ok(other)) => EventKind::StoreFailed { from, op: format!("{} (mismatched reply {other:?})", req.op()) },
    }
}
