//! Who takes which job: the reconcile loop's decision, as a pure function
//! of what the store holds (docs/design.md §2.7).
//!
//! A job needs a new owner when it has none, or its owner is dead or unknown
//! to the store (paused jobs too: field report 001, failure 2). Each such job
//! goes to the least-loaded live instance that is not draining, ties broken
//! by the lower instance id; load is the jobs an instance owns, counted as
//! the plan goes, so a batch of orphans spreads instead of landing on one
//! target (failure 10). Every replica computes the same plan from the same
//! view and claims only its own share; a claim is a CAS, so views that
//! differ cost a refused claim, never a job with two owners. A target can
//! be alive to the store and still unable to claim (cut off, about to be
//! found dead): a job one replica has seen ownerless for `patience_ms` it
//! claims itself, whoever the target.

use crate::clock::Millis;
use crate::ids::InstanceId;
use crate::mutants::{Mutant, Mutants};
use crate::registry::is_dead;
use crate::store::{InstanceRecord, JobRecord, JobStatus};
use std::collections::{BTreeMap, BTreeSet};

/// Take job `id` from `(from, epoch)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub id: String,
    pub from: Option<InstanceId>,
    pub epoch: u64,
}

/// What a replica remembers between its plans.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// Dead instances whose jobs have all moved (nothing of theirs is left
    /// to look at); an instance is written off only once it owns no job.
    pub written_off: BTreeSet<InstanceId>,
    /// When (the plan's `now`) this replica first saw each job needing an
    /// owner, while it still does.
    pub ownerless_since: BTreeMap<String, Millis>,
}

/// The claims `me` should make, judged at store time `now`.
pub fn plan(
    me: InstanceId,
    jobs: &[JobRecord],
    instances: &[InstanceRecord],
    now: Millis,
    dead_after_ms: u64,
    patience_ms: u64,
    memory: &mut Memory,
    mutants: &Mutants,
) -> Vec<Claim> {
    let Memory { written_off, ownerless_since } = memory;
    let live: BTreeMap<InstanceId, bool> =
        instances.iter().filter(|r| !is_dead(r, now, dead_after_ms)).map(|r| (r.id, r.draining)).collect();
    let mut load: BTreeMap<InstanceId, usize> =
        live.iter().filter(|(_, draining)| !**draining).map(|(id, _)| (*id, 0)).collect();
    let owned = |j: &JobRecord| j.status != JobStatus::Deleted;
    for j in jobs.iter().filter(|j| owned(j)) {
        if let Some(n) = j.owner.and_then(|o| load.get_mut(&o)) {
            *n += 1;
        }
    }
    let dead_owners: BTreeSet<InstanceId> =
        jobs.iter().filter(|j| owned(j)).filter_map(|j| j.owner).filter(|o| !live.contains_key(o)).collect();
    let write_off = |written_off: &mut BTreeSet<InstanceId>| {
        if mutants.on(Mutant::DeadInstanceDeletedWithoutTarget) {
            // The pre-fix rule: a dead instance is handled once, whether or
            // not its jobs found a new owner.
            written_off.extend(dead_owners.iter().copied());
        }
    };
    // A replica that is not a live target itself (its heartbeat is late, or
    // it is draining) claims nothing: it may be about to be held dead.
    if !load.contains_key(&me) {
        write_off(written_off);
        return Vec::new();
    }
    let needs_owner = |j: &JobRecord| {
        owned(j)
            && match j.owner {
                None => true,
                Some(o) => {
                    !live.contains_key(&o)
                        && !written_off.contains(&o)
                        && (j.status == JobStatus::Active || !mutants.on(Mutant::PausedJobLostOnOwnerDeath))
                }
            }
    };
    let mut claims = Vec::new();
    let ownerless: Vec<&JobRecord> = jobs.iter().filter(|j| needs_owner(j)).collect();
    ownerless_since.retain(|id, _| ownerless.iter().any(|j| j.id == *id));
    for j in ownerless {
        let Some((&target, _)) = load.iter().min_by_key(|(id, n)| (**n, **id)) else { break };
        let since = *ownerless_since.entry(j.id.clone()).or_insert(now);
        let overdue = now.saturating_sub(since) >= patience_ms;
        let taker = if overdue { me } else { target };
        *load.entry(taker).or_default() += 1;
        if taker == me {
            claims.push(Claim { id: j.id.clone(), from: j.owner, epoch: j.owner_epoch });
        }
    }
    write_off(written_off);
    // Correct rule: only a dead instance that owns nothing any more.
    let still_owning: BTreeSet<InstanceId> = jobs.iter().filter(|j| owned(j)).filter_map(|j| j.owner).collect();
    for r in instances.iter().filter(|r| is_dead(r, now, dead_after_ms)) {
        if !still_owning.contains(&r.id) {
            written_off.insert(r.id);
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Schedule;

    fn inst(id: u64, heartbeat_at: Millis, draining: bool) -> InstanceRecord {
        InstanceRecord { id: InstanceId(id), started_at: 0, heartbeat_at, draining }
    }

    fn job(id: &str, owner: Option<u64>, status: JobStatus) -> JobRecord {
        JobRecord {
            id: id.into(),
            schedule: Schedule::Every { ms: 1_000 },
            status,
            owner: owner.map(InstanceId),
            owner_epoch: 7,
            since: 0,
            last_slot: None,
            spec: 1,
            version: 1,
        }
    }

    fn ids(c: &[Claim]) -> Vec<&str> {
        c.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn orphans_spread_least_loaded_first_with_ties_to_the_lower_id() {
        let instances = [inst(1, 100, false), inst(2, 100, false), inst(3, 0, false)];
        let jobs = [
            job("a", Some(1), JobStatus::Active),
            job("b", None, JobStatus::Active),
            job("c", Some(3), JobStatus::Paused),
            job("d", Some(3), JobStatus::Active),
            job("e", None, JobStatus::Deleted),
        ];
        let mut off = Memory::default();
        // 3 is dead at 100 (threshold 50). Loads: 1 has a, 2 has none.
        // b -> 2 (load 0), c -> 1 (1 vs 1: lower id), d -> 2.
        let for_1 = plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut off.clone(), &Mutants::none());
        let for_2 = plan(InstanceId(2), &jobs, &instances, 100, 50, 1_000, &mut off, &Mutants::none());
        assert_eq!(ids(&for_1), vec!["c"]);
        assert_eq!(ids(&for_2), vec!["b", "d"]);
        assert_eq!(for_2[1], Claim { id: "d".into(), from: Some(InstanceId(3)), epoch: 7 });
        assert!(off.written_off.is_empty(), "3 still owns jobs: not written off");
    }

    #[test]
    fn paused_jobs_of_the_dead_move_too_unless_the_mutant_drops_them() {
        let instances = [inst(1, 100, false), inst(3, 0, false)];
        let jobs = [job("c", Some(3), JobStatus::Paused)];
        assert_eq!(ids(&plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none())), vec!["c"]);
        let m = Mutants::only(Mutant::PausedJobLostOnOwnerDeath);
        assert!(plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &m).is_empty());
    }

    #[test]
    fn no_target_no_claims_and_nothing_written_off() {
        // 1 itself is late (dead by the store's clock) and 2 is draining.
        let instances = [inst(1, 0, false), inst(2, 100, true), inst(3, 0, false)];
        let jobs = [job("d", Some(3), JobStatus::Active), job("f", Some(2), JobStatus::Active)];
        let mut off = Memory::default();
        assert!(plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut off, &Mutants::none()).is_empty());
        assert!(off.written_off.is_empty());
        let m = Mutants::only(Mutant::DeadInstanceDeletedWithoutTarget);
        plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut off, &m);
        assert!(off.written_off.contains(&InstanceId(3)), "the mutant writes off an instance whose jobs did not move");
        // Once written off, nobody looks at its jobs again.
        let revived = [inst(1, 100, false), inst(3, 0, false)];
        assert!(plan(InstanceId(1), &jobs[..1], &revived, 100, 50, 1_000, &mut off, &Mutants::none()).is_empty());
    }

    #[test]
    fn a_job_left_ownerless_past_patience_is_claimed_by_whoever_sees_it() {
        let instances = [inst(1, 100, false), inst(2, 100, false)];
        // 1 owns a, so 2 is the target of b; 1 leaves it to 2 at first.
        let jobs = [job("a", Some(1), JobStatus::Active), job("b", None, JobStatus::Active)];
        let mut mem = Memory::default();
        assert!(plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut mem, &Mutants::none()).is_empty());
        assert!(plan(InstanceId(1), &jobs, &instances, 900, 50, 1_000, &mut mem, &Mutants::none()).is_empty());
        // 2 never took it: a patience later, 1 does.
        let late = plan(InstanceId(1), &jobs, &[inst(1, 1_100, false), inst(2, 1_100, false)], 1_100, 50, 1_000, &mut mem, &Mutants::none());
        assert_eq!(ids(&late), vec!["b"]);
        // Once owned it is forgotten.
        let owned = [job("a", Some(1), JobStatus::Active), job("b", Some(2), JobStatus::Active)];
        plan(InstanceId(1), &owned, &[inst(1, 1_200, false), inst(2, 1_200, false)], 1_200, 50, 1_000, &mut mem, &Mutants::none());
        assert!(mem.ownerless_since.is_empty());
    }

    #[test]
    fn a_draining_owner_keeps_its_jobs_and_gets_no_new_ones() {
        let instances = [inst(1, 100, false), inst(2, 100, true)];
        let jobs = [job("f", Some(2), JobStatus::Active), job("g", None, JobStatus::Active)];
        assert_eq!(ids(&plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none())), vec!["g"]);
        assert!(plan(InstanceId(2), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none()).is_empty());
    }
}
