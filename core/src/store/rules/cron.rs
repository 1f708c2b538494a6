//! Cron coordination: jobs, their fire records and the settings row
//! (docs/design.md §2.7). The promise every rule here serves: a (job, slot)
//! commits at most one record, only from the job's owner at its epoch,
//! only when due, and the fleet's runs stay under its cap.

use super::{bump, expiry, Outcome};
use crate::clock::Millis;
use crate::cron::schedule;
use crate::ids::InstanceId;
use crate::store::{
    FireKind, FireRecord, FireResult, JobCas, JobRecord, JobReject, JobStatus, Schedule, SettingsRecord, StoreError,
};

fn reject(reason: JobReject, current: Option<&JobRecord>) -> Outcome<JobCas, JobRecord> {
    Outcome::refuse(JobCas::Rejected { reason, current: current.cloned() })
}

/// Create job `id` with `schedule`, active and unowned; its slots start
/// after `now`.
pub fn create(current: Option<&JobRecord>, id: &str, schedule: &Schedule, now: Millis) -> Outcome<JobCas, JobRecord> {
    if current.is_some() {
        return reject(JobReject::Exists, current);
    }
    if schedule::validate(schedule).is_err() {
        return reject(JobReject::BadSchedule, None);
    }
    let job = JobRecord {
        id: id.to_string(),
        schedule: schedule.clone(),
        status: JobStatus::Active,
        owner: None,
        owner_epoch: 0,
        since: now,
        last_slot: None,
        spec: 1,
        version: 1,
    };
    Outcome::write(JobCas::Applied(job.clone()), job)
}

/// An admin's change: a new schedule, a new status, or both. Any change
/// restarts the schedule after `now` (slots of a paused stretch, or of the
/// old schedule, are not due), and bumps `spec` so the owner re-arms.
pub fn edit(
    current: Option<&JobRecord>,
    schedule: Option<&Schedule>,
    status: Option<JobStatus>,
    now: Millis,
) -> Result<Outcome<JobCas, JobRecord>, StoreError> {
    let Some(job) = current else { return Ok(reject(JobReject::NoJob, None)) };
    if job.status == JobStatus::Deleted {
        return Ok(reject(JobReject::Deleted, current));
    }
    if schedule.is_some_and(|s| schedule::validate(s).is_err()) {
        return Ok(reject(JobReject::BadSchedule, current));
    }
    let next = JobRecord {
        schedule: schedule.cloned().unwrap_or_else(|| job.schedule.clone()),
        status: status.unwrap_or(job.status),
        since: now.max(job.last_slot.unwrap_or(0)).max(job.since),
        last_slot: None,
        spec: bump(job.spec, "job spec")?,
        version: bump(job.version, "job version")?,
        ..job.clone()
    };
    super::assert_bumped("edit_job", Some(job.version), next.version);
    Ok(Outcome::write(JobCas::Applied(next.clone()), next))
}

/// Move job ownership by CAS on `(owner, epoch)` (`None`: unowned): claim,
/// reassign or release; the epoch rises by one. A deleted job may only be
/// released.
pub fn claim(
    current: Option<&JobRecord>,
    owner: Option<InstanceId>,
    epoch: u64,
    new_owner: Option<InstanceId>,
) -> Result<Outcome<JobCas, JobRecord>, StoreError> {
    let Some(job) = current else { return Ok(reject(JobReject::NoJob, None)) };
    if job.owner != owner || job.owner_epoch != epoch {
        return Ok(reject(JobReject::StaleOwner, current));
    }
    if job.status == JobStatus::Deleted && new_owner.is_some() {
        return Ok(reject(JobReject::Deleted, current));
    }
    let next = JobRecord {
        owner: new_owner,
        owner_epoch: bump(job.owner_epoch, "job owner epoch")?,
        version: bump(job.version, "job version")?,
        ..job.clone()
    };
    super::assert_bumped("claim_job", Some(job.version), next.version);
    Ok(Outcome::write(JobCas::Applied(next.clone()), next))
}

/// What a fire asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fire {
    pub slot: Millis,
    /// `None`: a single scheduler with no registry; no ownership check.
    pub owner: Option<InstanceId>,
    pub epoch: u64,
    /// `Run` or `Missed` (the store turns a run into `AtCap` itself).
    pub kind: FireKind,
    /// The fleet's cap on concurrent runs (`None`: no cap checked).
    pub cap: Option<u32>,
    /// How long a run holds its place against the cap.
    pub hold_ms: u64,
    /// A miss is taken only for a slot older than this at commit (the
    /// misfire grace, judged on the store's clock, not the caller's).
    pub late_after_ms: u64,
    /// The job spec the caller's timer was armed for.
    pub spec: u64,
}

impl Fire {
    /// The fire a `CommitFire` request asks for (`None`: another request).
    pub fn of(req: &crate::store::StoreRequest) -> Option<Fire> {
        match req {
            crate::store::StoreRequest::CommitFire { slot, owner, epoch, kind, cap, hold_ms, late_after_ms, spec, .. } => {
                Some(Fire {
                    slot: *slot,
                    owner: *owner,
                    epoch: *epoch,
                    kind: *kind,
                    cap: *cap,
                    hold_ms: *hold_ms,
                    late_after_ms: *late_after_ms,
                    spec: *spec,
                })
            }
            _ => None,
        }
    }
}

/// Commit the one record of `(job, slot)`. Checked in order: NoJob,
/// StaleOwner (fenced by the job's ownership epoch), Duplicate (the slot has
/// a record), NotActive, NotDue (at or before `since`), Early (after `now`),
/// NotLate (a miss of a slot no older than `late_after_ms`); then a run at
/// the cap is recorded `AtCap` instead. `existing` is the
/// slot's record if any, `running` how many runs hold a place at `now`.
/// The job's `last_slot` follows in the same write (for a fire of its
/// current spec).
pub fn commit_fire(
    job: Option<&JobRecord>,
    existing: Option<&FireRecord>,
    running: usize,
    fire: &Fire,
    now: Millis,
) -> Result<Outcome<FireResult, (FireRecord, JobRecord)>, StoreError> {
    let Some(job) = job else { return Ok(Outcome::refuse(FireResult::NoJob)) };
    if fire.owner.is_some() && (job.owner != fire.owner || job.owner_epoch != fire.epoch) {
        return Ok(Outcome::refuse(FireResult::StaleOwner));
    }
    if let Some(rec) = existing {
        return Ok(Outcome::refuse(FireResult::Duplicate(rec.clone())));
    }
    if job.status != JobStatus::Active {
        return Ok(Outcome::refuse(FireResult::NotActive));
    }
    if fire.slot <= job.since {
        return Ok(Outcome::refuse(FireResult::NotDue));
    }
    if fire.slot > now {
        return Ok(Outcome::refuse(FireResult::Early { now }));
    }
    if fire.kind == FireKind::Missed && now - fire.slot <= fire.late_after_ms {
        return Ok(Outcome::refuse(FireResult::NotLate { now }));
    }
    if fire.kind == FireKind::AtCap {
        return Err(StoreError::Failed("at_cap is the store's to record, not a caller's".into()));
    }
    let at_cap = fire.kind == FireKind::Run && fire.cap.is_some_and(|cap| running >= cap as usize);
    let kind = if at_cap { FireKind::AtCap } else { fire.kind };
    let deadline = if kind == FireKind::Run { expiry(now, fire.hold_ms)? } else { now };
    let rec = FireRecord { job: job.id.clone(), slot: fire.slot, kind, owner: fire.owner, epoch: fire.epoch, at: now, deadline, finished: None };
    let last_slot = match job.last_slot {
        _ if fire.spec != job.spec => job.last_slot,
        Some(l) => Some(l.max(fire.slot)),
        None => Some(fire.slot),
    };
    let next = JobRecord {
        last_slot,
        version: bump(job.version, "job version")?,
        ..job.clone()
    };
    super::assert_bumped("commit_fire", Some(job.version), next.version);
    Ok(Outcome::write(FireResult::Committed(rec.clone()), (rec, next)))
}

/// Finish a run: only its own committer, once.
pub fn finish_fire(existing: Option<&FireRecord>, owner: Option<InstanceId>, now: Millis) -> Outcome<FireResult, FireRecord> {
    match existing {
        None => Outcome::refuse(FireResult::NoJob),
        Some(rec) if rec.kind != FireKind::Run || rec.owner != owner => Outcome::refuse(FireResult::NotOwner),
        Some(rec) if rec.finished.is_some() => Outcome::refuse(FireResult::Finished),
        Some(rec) => {
            let done = FireRecord { finished: Some(now), ..rec.clone() };
            Outcome::write(FireResult::Committed(done.clone()), done)
        }
    }
}

/// Write the settings value: the version rises by one (the first write is
/// version 1).
pub fn write_settings(current: Option<&SettingsRecord>, value: &str, now: Millis) -> Result<Outcome<u64, SettingsRecord>, StoreError> {
    let version = bump(current.map_or(0, |s| s.version), "settings version")?;
    let next = SettingsRecord { value: value.to_string(), version, updated_at: now };
    Ok(Outcome::write(version, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(owner: Option<u64>, epoch: u64, status: JobStatus) -> JobRecord {
        JobRecord {
            id: "j".into(),
            schedule: Schedule::Every { ms: 10 },
            status,
            owner: owner.map(InstanceId),
            owner_epoch: epoch,
            since: 100,
            last_slot: None,
            spec: 1,
            version: 1,
        }
    }

    fn fire(slot: Millis, owner: Option<u64>, epoch: u64) -> Fire {
        Fire { slot, owner: owner.map(InstanceId), epoch, kind: FireKind::Run, cap: Some(2), hold_ms: 50, late_after_ms: 0, spec: 1 }
    }

    #[test]
    fn a_fire_commits_only_from_the_owner_once_when_due() {
        let j = job(Some(1), 3, JobStatus::Active);
        let ok = commit_fire(Some(&j), None, 0, &fire(110, Some(1), 3), 111).unwrap();
        let Some((rec, next)) = ok.next.clone() else { panic!("not written: {ok:?}") };
        assert_eq!((rec.kind, rec.deadline, next.last_slot, next.version), (FireKind::Run, 161, Some(110), 2));
        assert_eq!(commit_fire(Some(&j), Some(&rec), 0, &fire(110, Some(1), 3), 112).unwrap().reply, FireResult::Duplicate(rec));
        assert_eq!(commit_fire(Some(&j), None, 0, &fire(110, Some(1), 2), 111).unwrap().reply, FireResult::StaleOwner);
        assert_eq!(commit_fire(Some(&j), None, 0, &fire(110, Some(2), 3), 111).unwrap().reply, FireResult::StaleOwner);
        assert_eq!(commit_fire(Some(&j), None, 0, &fire(100, Some(1), 3), 111).unwrap().reply, FireResult::NotDue);
        assert_eq!(commit_fire(Some(&j), None, 0, &fire(120, Some(1), 3), 111).unwrap().reply, FireResult::Early { now: 111 });
        let paused = job(Some(1), 3, JobStatus::Paused);
        assert_eq!(commit_fire(Some(&paused), None, 0, &fire(110, Some(1), 3), 111).unwrap().reply, FireResult::NotActive);
        assert_eq!(commit_fire(None, None, 0, &fire(110, Some(1), 3), 111).unwrap().reply, FireResult::NoJob);
        let single = commit_fire(Some(&job(None, 0, JobStatus::Active)), None, 0, &fire(110, None, 0), 111).unwrap();
        assert!(matches!(single.reply, FireResult::Committed(_)), "no registry: no ownership check");
    }

    #[test]
    fn a_run_at_the_cap_is_recorded_skipped() {
        let j = job(Some(1), 3, JobStatus::Active);
        let out = commit_fire(Some(&j), None, 2, &fire(110, Some(1), 3), 111).unwrap();
        let Some((rec, _)) = out.next else { panic!("at cap still settles the slot") };
        assert_eq!((rec.kind, rec.running_at(111)), (FireKind::AtCap, false));
        let missed = Fire { kind: FireKind::Missed, ..fire(110, Some(1), 3) };
        let out = commit_fire(Some(&j), None, 2, &missed, 111).unwrap();
        assert_eq!(out.next.map(|(r, _)| r.kind), Some(FireKind::Missed), "a miss takes no place");
        let early_miss = Fire { late_after_ms: 5, ..missed };
        assert_eq!(commit_fire(Some(&j), None, 0, &early_miss, 115).unwrap().reply, FireResult::NotLate { now: 115 });
        assert!(commit_fire(Some(&j), None, 0, &early_miss, 116).unwrap().next.is_some(), "late by 6 > 5");
    }

    #[test]
    fn ownership_moves_by_cas_and_deleted_jobs_are_only_released() {
        let j = job(Some(1), 3, JobStatus::Active);
        let out = claim(Some(&j), Some(InstanceId(1)), 3, Some(InstanceId(2))).unwrap();
        assert_eq!(out.next.map(|n| (n.owner, n.owner_epoch)), Some((Some(InstanceId(2)), 4)));
        assert!(claim(Some(&j), Some(InstanceId(1)), 2, None).unwrap().next.is_none(), "stale epoch");
        assert!(claim(Some(&j), None, 3, None).unwrap().next.is_none(), "stale owner");
        let gone = job(Some(1), 3, JobStatus::Deleted);
        assert!(claim(Some(&gone), Some(InstanceId(1)), 3, Some(InstanceId(2))).unwrap().next.is_none());
        assert!(claim(Some(&gone), Some(InstanceId(1)), 3, None).unwrap().next.is_some());
    }

    #[test]
    fn an_edit_restarts_the_schedule_and_bumps_the_spec() {
        let mut j = job(Some(1), 3, JobStatus::Active);
        j.last_slot = Some(250);
        let out = edit(Some(&j), Some(&Schedule::Every { ms: 7 }), None, 200).unwrap();
        let next = out.next.unwrap();
        assert_eq!((next.since, next.spec, next.schedule.clone(), next.last_slot), (250, 2, Schedule::Every { ms: 7 }, None));
        // A stale timer's fire (spec 1) after the edit leaves last_slot alone.
        let stale = fire(257, Some(1), 3);
        let (_, after) = commit_fire(Some(&next), None, 0, &stale, 260).unwrap().next.unwrap();
        assert_eq!(after.last_slot, None);
        let fresh = Fire { spec: 2, ..stale };
        assert_eq!(commit_fire(Some(&next), None, 0, &fresh, 260).unwrap().next.unwrap().1.last_slot, Some(257));
        let bad = edit(Some(&j), Some(&Schedule::Cron { expr: "nope".into() }), None, 200).unwrap();
        assert!(bad.next.is_none());
        let gone = job(Some(1), 3, JobStatus::Deleted);
        assert!(edit(Some(&gone), None, Some(JobStatus::Active), 200).unwrap().next.is_none(), "deleted is final");
    }

    #[test]
    fn a_run_is_finished_once_by_its_own_committer() {
        let rec = FireRecord { job: "j".into(), slot: 1, kind: FireKind::Run, owner: Some(InstanceId(1)), epoch: 1, at: 1, deadline: 9, finished: None };
        assert!(finish_fire(Some(&rec), Some(InstanceId(2)), 5).next.is_none());
        let done = finish_fire(Some(&rec), Some(InstanceId(1)), 5).next.unwrap();
        assert_eq!(done.finished, Some(5));
        assert_eq!(finish_fire(Some(&done), Some(InstanceId(1)), 6).reply, FireResult::Finished);
    }
}
