//! Cron coordination on every backend: jobs, fire records, the cap and the
//! settings row (the rules: `store/rules/cron.rs`).

use super::*;
use crate::store::rules::cron::Fire;

fn every(ms: u64) -> Schedule {
    Schedule::Every { ms }
}

#[track_caller]
fn j_applied(r: Result<JobCas, StoreError>) -> JobRecord {
    match r {
        Ok(JobCas::Applied(rec)) => rec,
        other => panic!("expected an applied job write, got {other:?}"),
    }
}

#[track_caller]
fn j_rejected(r: Result<JobCas, StoreError>) -> JobReject {
    match r {
        Ok(JobCas::Rejected { reason, .. }) => reason,
        other => panic!("expected a rejected job write, got {other:?}"),
    }
}

fn run(slot: Millis, owner: u64, epoch: u64, cap: Option<u32>) -> Fire {
    Fire { slot, owner: Some(id(owner)), epoch, kind: FireKind::Run, cap, hold_ms: 100, late_after_ms: 10, spec: 1 }
}

pub(super) fn jobs_are_created_edited_and_listed<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let j = j_applied(b.create_job("b", &every(10), 5));
    assert_eq!((j.status, j.owner, j.owner_epoch, j.since, j.spec, j.version), (JobStatus::Active, None, 0, 5, 1, 1));
    j_applied(b.create_job("a", &Schedule::Cron { expr: "*/20 * * * * *".into() }, 6));
    assert_eq!(j_rejected(b.create_job("a", &every(10), 7)), JobReject::Exists);
    assert_eq!(j_rejected(b.create_job("c", &every(0), 7)), JobReject::BadSchedule);
    assert_eq!(j_rejected(b.create_job("c", &Schedule::Cron { expr: "nope".into() }, 7)), JobReject::BadSchedule);
    let ids: Vec<String> = b.list_jobs().unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, ["a", "b"], "by id");
    let e = j_applied(b.edit_job("b", Some(&every(3)), Some(JobStatus::Paused), 20));
    assert_eq!((e.schedule, e.status, e.since, e.spec, e.version), (every(3), JobStatus::Paused, 20, 2, 2));
    assert_eq!(j_rejected(b.edit_job("zz", None, Some(JobStatus::Active), 20)), JobReject::NoJob);
    j_applied(b.edit_job("b", None, Some(JobStatus::Deleted), 21));
    assert_eq!(j_rejected(b.edit_job("b", None, Some(JobStatus::Active), 22)), JobReject::Deleted);
}

pub(super) fn job_ownership_moves_by_cas<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    j_applied(b.create_job("a", &every(10), 0));
    let c = j_applied(b.claim_job("a", None, 0, Some(id(1)), 1));
    assert_eq!((c.owner, c.owner_epoch), (Some(id(1)), 1));
    assert_eq!(j_rejected(b.claim_job("a", None, 0, Some(id(2)), 2)), JobReject::StaleOwner, "second claimer loses");
    let moved = j_applied(b.claim_job("a", Some(id(1)), 1, Some(id(2)), 3));
    assert_eq!((moved.owner, moved.owner_epoch), (Some(id(2)), 2));
    let freed = j_applied(b.claim_job("a", Some(id(2)), 2, None, 4));
    assert_eq!((freed.owner, freed.owner_epoch), (None, 3));
    assert_eq!(j_rejected(b.claim_job("zz", None, 0, Some(id(1)), 4)), JobReject::NoJob);
}

pub(super) fn a_slot_commits_once_from_the_owner<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    j_applied(b.create_job("a", &every(10), 0));
    j_applied(b.claim_job("a", None, 0, Some(id(1)), 1));
    let FireResult::Committed(rec) = b.commit_fire("a", &run(10, 1, 1, Some(5)), 12).unwrap() else { panic!() };
    assert_eq!((rec.kind, rec.at, rec.deadline, rec.finished), (FireKind::Run, 12, 112, None));
    assert_eq!(b.commit_fire("a", &run(10, 1, 1, Some(5)), 13).unwrap(), FireResult::Duplicate(rec.clone()));
    assert_eq!(b.commit_fire("a", &run(20, 2, 1, Some(5)), 21).unwrap(), FireResult::StaleOwner);
    assert_eq!(b.commit_fire("a", &run(20, 1, 0, Some(5)), 21).unwrap(), FireResult::StaleOwner);
    assert_eq!(b.commit_fire("a", &run(30, 1, 1, Some(5)), 21).unwrap(), FireResult::Early { now: 21 });
    assert_eq!(b.commit_fire("zz", &run(30, 1, 1, Some(5)), 31).unwrap(), FireResult::NoJob);
    assert_eq!(b.read_fire("a", 10).unwrap(), Some(rec));
    assert_eq!(b.read_fire("a", 20).unwrap(), None);
    assert_eq!(b.list_jobs().unwrap()[0].last_slot, Some(10));
    j_applied(b.edit_job("a", None, Some(JobStatus::Paused), 40));
    assert_eq!(b.commit_fire("a", &run(50, 1, 1, None), 51).unwrap(), FireResult::NotActive);
    j_applied(b.edit_job("a", None, Some(JobStatus::Active), 55));
    assert_eq!(b.commit_fire("a", &run(50, 1, 1, None), 56).unwrap(), FireResult::NotDue, "before the resume");
    let early_miss = Fire { kind: FireKind::Missed, ..run(85, 1, 1, Some(0)) };
    assert_eq!(b.commit_fire("a", &early_miss, 90).unwrap(), FireResult::NotLate { now: 90 });
    let missed = Fire { kind: FireKind::Missed, ..run(65, 1, 1, Some(0)) };
    let FireResult::Committed(m) = b.commit_fire("a", &missed, 90).unwrap() else { panic!() };
    assert_eq!((m.kind, m.deadline), (FireKind::Missed, 90));
    let bad = Fire { kind: FireKind::AtCap, ..run(75, 1, 1, None) };
    assert!(matches!(b.commit_fire("a", &bad, 90), Err(StoreError::Failed(_))));
}

pub(super) fn the_run_cap_holds_and_finishes_free_places<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    for j in ["a", "b", "c"] {
        j_applied(b.create_job(j, &every(10), 0));
        j_applied(b.claim_job(j, None, 0, Some(id(1)), 0));
    }
    assert!(matches!(b.commit_fire("a", &run(10, 1, 1, Some(2)), 10).unwrap(), FireResult::Committed(_)));
    assert!(matches!(b.commit_fire("b", &run(10, 1, 1, Some(2)), 10).unwrap(), FireResult::Committed(_)));
    let FireResult::Committed(skip) = b.commit_fire("c", &run(10, 1, 1, Some(2)), 11).unwrap() else { panic!() };
    assert_eq!(skip.kind, FireKind::AtCap, "the third run at a cap of two is recorded skipped");
    assert_eq!(b.list_running(11).unwrap().len(), 2);
    assert_eq!(b.finish_fire("a", 10, Some(id(2)), 12).unwrap(), FireResult::NotOwner);
    let FireResult::Committed(done) = b.finish_fire("a", 10, Some(id(1)), 12).unwrap() else { panic!() };
    assert_eq!(done.finished, Some(12));
    assert_eq!(b.finish_fire("a", 10, Some(id(1)), 13).unwrap(), FireResult::Finished);
    assert_eq!(b.finish_fire("c", 10, Some(id(1)), 13).unwrap(), FireResult::NotOwner, "a skip is no run");
    assert_eq!(b.list_running(13).unwrap().iter().map(|f| f.job.as_str()).collect::<Vec<_>>(), ["b"]);
    assert!(matches!(b.commit_fire("c", &run(20, 1, 1, Some(2)), 20).unwrap(), FireResult::Committed(FireRecord { kind: FireKind::Run, .. })));
    // Past its deadline (10 + 100), b's run no longer holds a place.
    assert_eq!(b.list_running(111).unwrap().iter().map(|f| f.job.as_str()).collect::<Vec<_>>(), ["c"]);
    assert_eq!(b.fires().unwrap().len(), 4);
}

pub(super) fn settings_versions_rise<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert_eq!(b.read_settings().unwrap(), None);
    assert_eq!(b.write_settings("x", 5).unwrap(), 1);
    assert_eq!(b.write_settings("y", 9).unwrap(), 2);
    assert_eq!(b.read_settings().unwrap(), Some(SettingsRecord { value: "y".into(), version: 2, updated_at: 9 }));
}

pub(super) fn cron_u64_values_round_trip<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let big = u64::MAX - 1;
    j_applied(b.create_job("a", &every(big), big - 10));
    j_applied(b.claim_job("a", None, 0, Some(id(u64::MAX)), 0));
    let j = &b.list_jobs().unwrap()[0];
    assert_eq!((j.since, j.owner, j.schedule.clone()), (big - 10, Some(id(u64::MAX)), every(big)));
    let f = Fire { slot: big - 5, owner: Some(id(u64::MAX)), epoch: 1, kind: FireKind::Missed, cap: None, hold_ms: 0, late_after_ms: 1, spec: 1 };
    assert!(matches!(b.commit_fire("a", &f, big).unwrap(), FireResult::Committed(_)));
    let f = Fire { slot: big, ..f };
    assert_eq!(b.read_fire("a", big - 5).unwrap().map(|r| (r.slot, r.at)), Some((big - 5, big)));
    assert_eq!(b.commit_fire("a", &f, big).unwrap(), FireResult::NotLate { now: big });
    let hold = Fire { slot: 1 << 63, kind: FireKind::Run, hold_ms: u64::MAX, ..f };
    j_applied(b.create_job("b", &every(1), 0));
    j_applied(b.claim_job("b", None, 0, Some(id(u64::MAX)), 0));
    assert!(matches!(b.commit_fire("b", &hold, 1 << 63), Err(StoreError::Failed(_))), "deadline overflow");
}
