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
//!
//! Load is rebalanced when replicas join (failure 10: no rebalance on scale
//! up): once no job needs an owner, a replica owning more than its fair
//! share (the owned jobs over the live targets, rounded up) releases the
//! excess, newest ids first, for the least loaded to claim.

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

/// What `me` should do: claim these, release those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub claims: Vec<Claim>,
    /// Jobs `me` owns beyond its fair share (`from` is `me`).
    pub releases: Vec<Claim>,
}

/// What `me` should do, judged at store time `now`.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    me: InstanceId,
    jobs: &[JobRecord],
    instances: &[InstanceRecord],
    now: Millis,
    dead_after_ms: u64,
    patience_ms: u64,
    memory: &mut Memory,
    mutants: &Mutants,
) -> Plan {
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
        return Plan::default();
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
    let releases = if claims.is_empty() && ownerless_since.is_empty() { excess(me, jobs, &load) } else { Vec::new() };
    // Correct rule: only a dead instance that owns nothing any more.
    let still_owning: BTreeSet<InstanceId> = jobs.iter().filter(|j| owned(j)).filter_map(|j| j.owner).collect();
    for r in instances.iter().filter(|r| is_dead(r, now, dead_after_ms)) {
        if !still_owning.contains(&r.id) {
            written_off.insert(r.id);
        }
    }
    Plan { claims, releases }
}

/// `me`'s jobs beyond its fair share of the owned jobs among the live
/// targets, newest ids first.
fn excess(me: InstanceId, jobs: &[JobRecord], load: &BTreeMap<InstanceId, usize>) -> Vec<Claim> {
    let total: usize = load.values().sum();
    let fair = total.div_ceil(load.len().max(1));
    let mine: Vec<&JobRecord> = jobs.iter().filter(|j| j.status != JobStatus::Deleted && j.owner == Some(me)).collect();
    let over = mine.len().saturating_sub(fair);
    mine.iter().rev().take(over).map(|j| Claim { id: j.id.clone(), from: Some(me), epoch: j.owner_epoch }).collect()
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
        let for_1 = plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut off.clone(), &Mutants::none()).claims;
        let for_2 = plan(InstanceId(2), &jobs, &instances, 100, 50, 1_000, &mut off, &Mutants::none()).claims;
        assert_eq!(ids(&for_1), vec!["c"]);
        assert_eq!(ids(&for_2), vec!["b", "d"]);
        assert_eq!(for_2[1], Claim { id: "d".into(), from: Some(InstanceId(3)), epoch: 7 });
        assert!(off.written_off.is_empty(), "3 still owns jobs: not written off");
    }

    #[test]
    fn paused_jobs_of_the_dead_move_too_unless_the_mutant_drops_them() {
        let instances = [inst(1, 100, false), inst(3, 0, false)];
        let jobs = [job("c", Some(3), JobStatus::Paused)];
        assert_eq!(ids(&plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none()).claims), vec!["c"]);
        let m = Mutants::only(Mutant::PausedJobLostOnOwnerDeath);
        assert!(plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &m).claims.is_empty());
    }

    #[test]
    fn no_target_no_claims_and_nothing_written_off() {
        // 1 itself is late (dead by the store's clock) and 2 is draining.
        let instances = [inst(1, 0, false), inst(2, 100, true), inst(3, 0, false)];
        let jobs = [job("d", Some(3), JobStatus::Active), job("f", Some(2), JobStatus::Active)];
        let mut off = Memory::default();
        assert!(plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut off, &Mutants::none()).claims.is_empty());
        assert!(off.written_off.is_empty());
        let m = Mutants::only(Mutant::DeadInstanceDeletedWithoutTarget);
        let _ = plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut off, &m);
        assert!(off.written_off.contains(&InstanceId(3)), "the mutant writes off an instance whose jobs did not move");
        // Once written off, nobody looks at its jobs again.
        let revived = [inst(1, 100, false), inst(3, 0, false)];
        assert!(plan(InstanceId(1), &jobs[..1], &revived, 100, 50, 1_000, &mut off, &Mutants::none()).claims.is_empty());
    }

    #[test]
    fn a_job_left_ownerless_past_patience_is_claimed_by_whoever_sees_it() {
        let instances = [inst(1, 100, false), inst(2, 100, false)];
        // 1 owns a, so 2 is the target of b; 1 leaves it to 2 at first.
        let jobs = [job("a", Some(1), JobStatus::Active), job("b", None, JobStatus::Active)];
        let mut mem = Memory::default();
        assert!(plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut mem, &Mutants::none()).claims.is_empty());
        assert!(plan(InstanceId(1), &jobs, &instances, 900, 50, 1_000, &mut mem, &Mutants::none()).claims.is_empty());
        // 2 never took it: a patience later, 1 does.
        let late = plan(InstanceId(1), &jobs, &[inst(1, 1_100, false), inst(2, 1_100, false)], 1_100, 50, 1_000, &mut mem, &Mutants::none()).claims;
        assert_eq!(ids(&late), vec!["b"]);
        // Once owned it is forgotten.
        let owned = [job("a", Some(1), JobStatus::Active), job("b", Some(2), JobStatus::Active)];
        let _ = plan(InstanceId(1), &owned, &[inst(1, 1_200, false), inst(2, 1_200, false)], 1_200, 50, 1_000, &mut mem, &Mutants::none()).claims;
        assert!(mem.ownerless_since.is_empty());
    }

    #[test]
    fn a_replica_over_its_fair_share_releases_the_excess_once_nothing_is_ownerless() {
        let instances = [inst(1, 100, false), inst(2, 100, false), inst(3, 100, false)];
        let jobs: Vec<JobRecord> = ["a", "b", "c", "d", "e"].iter().map(|id| job(id, Some(1), JobStatus::Active)).collect();
        // Five jobs over three targets: a fair share is two; 1 releases e, d, c.
        let p = plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none());
        assert_eq!(p.releases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["e", "d", "c"]);
        assert!(p.releases.iter().all(|c| c.from == Some(InstanceId(1))));
        let p2 = plan(InstanceId(2), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none());
        assert_eq!(p2, Plan::default(), "under its share: nothing to do");
        // With a job ownerless, nobody sheds load.
        let mut with_orphan = jobs.clone();
        with_orphan.push(job("f", None, JobStatus::Active));
        let p = plan(InstanceId(1), &with_orphan, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none());
        assert!(p.releases.is_empty());
    }

    #[test]
    fn a_draining_owner_keeps_its_jobs_and_gets_no_new_ones() {
        let instances = [inst(1, 100, false), inst(2, 100, true)];
        let jobs = [job("f", Some(2), JobStatus::Active), job("g", None, JobStatus::Active)];
        assert_eq!(ids(&plan(InstanceId(1), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none()).claims), vec!["g"]);
        assert!(plan(InstanceId(2), &jobs, &instances, 100, 50, 1_000, &mut Memory::default(), &Mutants::none()).claims.is_empty());
    }
}
