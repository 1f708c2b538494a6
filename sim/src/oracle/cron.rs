//! Cron coordination (docs/design.md §2.7), judged from the fire records
//! the store committed, the job rows it wrote, the runs that really started
//! and ended in the outside world, and what the injector did to processes:
//!
//! - C1 at most once: a (job, slot) commits one record, only from the
//!   job's owner at its epoch; a run starts only after its committed run
//!   record, on that record's instance, and never twice.
//! - C2 on time: a fire never commits before its slot, nor at or before
//!   the job's `since`; a slot is recorded missed only when it was late;
//!   with the store calm and some replica healthy, every due slot of an
//!   active job is settled (run, missed, or skipped at the cap) within the
//!   reconcile interval + dead threshold + the misfire grace + slack.
//! - C3 owned: a job leaves an owner only by that owner's own write, or
//!   once the owner's process is gone or the store holds it dead; no active
//!   or paused job stays without a live owner beyond the bound; a replica
//!   that stops gracefully hands its jobs over before it exits.
//! - C4 obedient: no run record commits for a paused or deleted job; after
//!   an edit (plus the bound, counted once the owner could learn of it)
//!   every run's slot is one of the current schedule; concurrent runs,
//!   committed and real, stay under the cap (real runs not counting one
//!   paused, or past its record's hold on a replica whose clock drifts
//!   beyond its configured bound); no run outlives its timeout (beyond
//!   slack) unless its process was paused under it.

use super::model::Model;
use super::{secs, violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind, JobRow};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

/// Cron bounds, from the run's options (µs).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CronParams {
    /// A cron workload runs (the checks have jobs to judge).
    pub enabled: bool,
    pub reconcile_us: u64,
    pub misfire_us: u64,
    pub run_timeout_us: u64,
    pub cap: Option<u32>,
    /// C2: from a slot (or the world letting the system act) to its record.
    pub due_us: u64,
    /// C3: from a job losing its owner (or the world calming) to a new one.
    pub owner_us: u64,
    /// C4: from an edit (or its owner healing) to the new schedule alone.
    pub edit_us: u64,
    /// C3: from a shutdown request to the jobs handed over.
    pub handoff_us: u64,
    /// C5: from a settings write (or the replica healing) to serving it.
    pub settings_us: u64,
    /// How far the owner's store-time estimate may be off (ms).
    pub estimate_ms: u64,
}

/// One schedule as the oracle evaluates it, itself (not through core).
#[derive(Clone, Debug)]
enum Sched {
    Every(u64),
    Cron(Box<cron::Schedule>),
    /// Unparseable by the oracle: the store should never have taken it.
    Unknown,
}

impl Sched {
    fn of(row: &JobRow) -> Sched {
        match (row.every_ms, row.schedule.strip_prefix("cron ")) {
            (Some(ms), _) if ms > 0 => Sched::Every(ms),
            (_, Some(expr)) => cron::Schedule::from_str(expr).map(|c| Sched::Cron(Box::new(c))).unwrap_or(Sched::Unknown),
            _ => Sched::Unknown,
        }
    }

    /// The first slot strictly after `t` (ms) of this schedule anchored at `since`.
    fn next_after(&self, since: u64, t: u64) -> Option<u64> {
        let t = t.max(since);
        match self {
            Sched::Every(ms) => ((t - since) / ms + 1).checked_mul(*ms)?.checked_add(since),
            Sched::Cron(c) => {
                let at = chrono::DateTime::from_timestamp_millis(i64::try_from(t).ok()?)?;
                u64::try_from(c.after(&at).next()?.timestamp_millis()).ok()
            }
            Sched::Unknown => None,
        }
    }

    fn has(&self, since: u64, slot: u64) -> bool {
        slot > since && self.next_after(since, slot - 1) == Some(slot)
    }
}

/// One era of a job's schedule: from an admin change to the next.
#[derive(Clone, Debug)]
struct Spec {
    sched: Sched,
    since_ms: u64,
    status: String,
    /// When the next change ended it (µs).
    ended_at: Option<u64>,
}

#[derive(Clone, Debug)]
struct Job {
    specs: Vec<Spec>,
    owner: Option<u64>,
    epoch: u64,
    /// When the current owner (or none) took it.
    owner_since: u64,
    /// Due slots up to here (ms) are settled or no longer due.
    checked_ms: u64,
    /// The current schedule's first slot after `checked_ms`, and the mark
    /// it was computed for: every tick asks, and a cron expression's next
    /// slot is dear. Cleared when the schedule changes.
    next_slot: Option<(u64, Option<u64>)>,
}

impl Job {
    fn spec(&self) -> &Spec {
        &self.specs[self.specs.len() - 1]
    }

    fn active(&self) -> bool {
        self.spec().status == "active"
    }

    fn owned(&self) -> bool {
        self.spec().status != "deleted"
    }

    /// The current schedule's first slot after `checked_ms`.
    fn next_unchecked(&mut self) -> Option<u64> {
        match self.next_slot {
            Some((mark, next)) if mark == self.checked_ms => next,
            _ => {
                let spec = self.spec();
                let next = spec.sched.next_after(spec.since_ms, self.checked_ms);
                self.next_slot = Some((self.checked_ms, next));
                next
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Record {
    kind: String,
    owner: Option<u64>,
    deadline_ms: Option<u64>,
    finished: bool,
}

#[derive(Clone, Debug)]
struct Run {
    inst: u64,
    started: u64,
    /// Its process was paused while it ran: the cap and timeout are not
    /// promised for it (as S2 is not beyond the pause bound).
    paused: bool,
}

#[derive(Default)]
pub struct CronCheck {
    jobs: BTreeMap<String, Job>,
    records: BTreeMap<(String, u64), Record>,
    /// Runs in the outside world, by (job, slot), while they run.
    running: BTreeMap<(String, u64), Run>,
    /// Every (job, slot) that ever started a run.
    ran: BTreeSet<(String, u64)>,
    /// When each instance was asked to stop.
    stopping: BTreeMap<u64, u64>,
}

impl CronCheck {
    fn store_running(&self, t: u64) -> usize {
        self.records
            .values()
            .filter(|r| r.kind == "run" && !r.finished && r.deadline_ms.is_some_and(|d| d * 1000 > t))
            .count()
    }

    fn on_job(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let EventKind::JobWrite { from, op, id, applied: true, job: Some(row), .. } = &e.kind else { return None };
        let t = e.t;
        match op.as_str() {
            "create" => {
                let spec = Spec { sched: Sched::of(row), since_ms: row.since_ms, status: row.status.clone(), ended_at: None };
                let job = Job { specs: vec![spec], owner: None, epoch: 0, owner_since: t, checked_ms: row.since_ms, next_slot: None };
                self.jobs.insert(id.clone(), job);
            }
            "edit" => {
                let j = self.jobs.get_mut(id)?;
                if let Some(last) = j.specs.last_mut() {
                    last.ended_at = Some(t);
                }
                j.specs.push(Spec { sched: Sched::of(row), since_ms: row.since_ms, status: row.status.clone(), ended_at: None });
                // Keep the eras an old timer may still be excused for.
                let keep_from = j.specs.len().saturating_sub(4);
                j.specs.drain(..keep_from);
                j.checked_ms = j.checked_ms.max(row.since_ms);
                j.next_slot = None;
            }
            _ => {
                let j = self.jobs.get_mut(id)?;
                let (prev, next) = (j.owner, row.owner);
                if let Some(o) = prev.filter(|o| next != Some(*o) && *from != *o) {
                    if !m.gone_or_dead(o, t, p.fleet.dead_threshold_us) {
                        return violation(
                            "C3",
                            t,
                            format!(
                                "owned: job {id} was taken from i{o} (epoch {}) by i{from}, while i{o} was up and the \
                                 store held it alive",
                                j.epoch
                            ),
                        );
                    }
                }
                if prev != next {
                    j.owner_since = t;
                }
                j.owner = next;
                j.epoch = row.epoch;
            }
        }
        None
    }

    fn on_fire(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let EventKind::FireWrite { job, slot_ms, kind, result, as_owner, as_epoch, deadline_ms, .. } = &e.kind else {
            return None;
        };
        if result != "committed" {
            return None;
        }
        let (t, t_ms) = (e.t, e.t / 1000);
        let c = &p.cron;
        let key = (job.clone(), *slot_ms);
        if self.records.contains_key(&key) {
            return violation("C1", t, format!("at most once: slot {} of job {job} committed a second record", secs(slot_ms * 1000)));
        }
        let Some(j) = self.jobs.get(job) else {
            return violation("C1", t, format!("at most once: a record for job {job}, which the store never created"));
        };
        if as_owner.is_some() && (*as_owner != j.owner || *as_epoch != j.epoch) {
            return violation(
                "C1",
                t,
                format!(
                    "at most once: slot {} of job {job} committed as i{} at epoch {as_epoch}, but the job is {}'s at \
                     epoch {}",
                    secs(slot_ms * 1000),
                    as_owner.unwrap_or(0),
                    j.owner.map_or("nobody".to_string(), |o| format!("i{o}")),
                    j.epoch
                ),
            );
        }
        if !j.active() {
            return violation("C4", t, format!("obedient: job {job} is {}, yet slot {} committed a record", j.spec().status, secs(slot_ms * 1000)));
        }
        if *slot_ms > t_ms {
            return violation("C2", t, format!("on time: slot {} of job {job} fired early, at {}", secs(slot_ms * 1000), secs(t)));
        }
        if *slot_ms <= j.spec().since_ms {
            return violation(
                "C2",
                t,
                format!("on time: slot {} of job {job} is not after its schedule's start {}", secs(slot_ms * 1000), secs(j.spec().since_ms * 1000)),
            );
        }
        match kind.as_str() {
            "missed" if t_ms.saturating_sub(*slot_ms) + c.estimate_ms < c.misfire_us / 1000 => {
                return violation(
                    "C2",
                    t,
                    format!("on time: slot {} of job {job} was recorded missed only {} after it fell due", secs(slot_ms * 1000), secs(t - slot_ms * 1000)),
                );
            }
            "at_cap" if c.cap.is_some_and(|cap| self.store_running(t) < cap as usize) => {
                return violation(
                    "C4",
                    t,
                    format!("obedient: slot {} of job {job} was skipped at the cap with {} runs running", secs(slot_ms * 1000), self.store_running(t)),
                );
            }
            "run" => {
                if let Some(cap) = c.cap.filter(|cap| self.store_running(t) >= *cap as usize) {
                    return violation(
                        "C4",
                        t,
                        format!("obedient: slot {} of job {job} committed a run with {cap} runs already holding the cap", secs(slot_ms * 1000)),
                    );
                }
                if let Some(v) = self.of_its_schedule(p, m, j, job, *slot_ms, *as_owner, t) {
                    return Some(v);
                }
            }
            _ => {}
        }
        self.records.insert(key, Record { kind: kind.clone(), owner: *as_owner, deadline_ms: *deadline_ms, finished: false });
        None
    }

    /// C4: a run's slot is one of the job's current schedule, or of one an
    /// edit ended no longer ago than the bound, counted from when the owner
    /// was last healthy enough to learn of it.
    #[allow(clippy::too_many_arguments)]
    fn of_its_schedule(&self, p: &OracleParams, m: &Model, j: &Job, job: &str, slot: u64, owner: Option<u64>, t: u64) -> Option<Violation> {
        let cur = j.spec();
        if cur.sched.has(cur.since_ms, slot) {
            return None;
        }
        // The owner learns of an edit at a reconcile: one it could run with
        // the store calm and itself healthy.
        let learned = owner.and_then(|o| m.proc_of(o)).and_then(|r| r.healthy_since).unwrap_or(t).max(m.calm_since);
        let excused = !m.store_calm()
            || j.specs.iter().rev().skip(1).any(|s| {
                s.sched.has(s.since_ms, slot) && s.ended_at.is_some_and(|end| t <= end.max(learned) + p.cron.edit_us)
            });
        if excused {
            return None;
        }
        violation(
            "C4",
            t,
            format!(
                "obedient: job {job} ran slot {}, which its schedule (since {}) does not have; its last edit was at {}",
                secs(slot * 1000),
                secs(cur.since_ms * 1000),
                j.specs.iter().rev().nth(1).and_then(|s| s.ended_at).map_or("never".into(), secs)
            ),
        )
    }

    fn on_run(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let t = e.t;
        match &e.kind {
            EventKind::RunStarted { job, slot_ms } => {
                let key = (job.clone(), *slot_ms);
                let inst = e.inst.unwrap_or(0);
                if self.ran.contains(&key) {
                    return violation("C1", t, format!("at most once: slot {} of job {job} ran a second time, on i{inst}", secs(slot_ms * 1000)));
                }
                match self.records.get(&key) {
                    Some(r) if r.kind == "run" && r.owner == Some(inst) => {}
                    other => {
                        return violation(
                            "C1",
                            t,
                            format!(
                                "at most once: slot {} of job {job} started on i{inst} without a run record of its own \
                                 committed first (the store holds {})",
                                secs(slot_ms * 1000),
                                other.map_or("none".to_string(), |r| format!("a {} record of {:?}", r.kind, r.owner))
                            ),
                        );
                    }
                }
                if let Some(cap) = p.cron.cap {
                    // A run past its record's hold on a replica whose clock
                    // drifts beyond its configured bound: the store freed
                    // its place on time, and the replica cut it on a clock
                    // the grace was not sized for (as a paused one).
                    let overran = |k: &(String, u64), r: &Run| {
                        m.drifts_beyond(&p.fleet, r.inst)
                            && self.records.get(k).and_then(|rec| rec.deadline_ms).is_some_and(|d| t >= d * 1000)
                    };
                    let live = self.running.iter().filter(|(k, r)| !r.paused && !overran(k, r)).count();
                    let paused = self.running.values().any(|r| r.paused);
                    if !paused && live >= cap as usize {
                        return violation(
                            "C4",
                            t,
                            format!("obedient: slot {} of job {job} started with {live} runs already running (cap {cap})", secs(slot_ms * 1000)),
                        );
                    }
                }
                let paused = m.proc_of(inst).is_some_and(|r| r.paused);
                self.ran.insert(key.clone());
                self.running.insert(key, Run { inst, started: t, paused });
            }
            EventKind::RunEnded { job, slot_ms, .. } => {
                let run = self.running.remove(&(job.clone(), *slot_ms))?;
                let limit = p.cron.run_timeout_us + p.fleet.slack_us;
                if !run.paused && t > run.started + limit {
                    return violation(
                        "C4",
                        t,
                        format!(
                            "obedient: slot {} of job {job} ran {} on i{}, past its timeout {}",
                            secs(slot_ms * 1000),
                            secs(t - run.started),
                            run.inst,
                            secs(p.cron.run_timeout_us)
                        ),
                    );
                }
            }
            _ => {}
        }
        None
    }

    /// The process of `target` paused, died or was asked to stop: its runs,
    /// and when it was asked.
    fn on_process(&mut self, m: &Model, e: &Event) {
        let Some(inst) = (match &e.kind {
            EventKind::Pause { target, .. }
            | EventKind::Crash { target }
            | EventKind::SelfFenced { target }
            | EventKind::Exited { target, .. }
            | EventKind::ShutdownRequested { target } => m.rep(target).and_then(|r| r.inst),
            _ => None,
        }) else {
            return;
        };
        match &e.kind {
            EventKind::Pause { .. } => {
                for r in self.running.values_mut().filter(|r| r.inst == inst) {
                    r.paused = true;
                }
            }
            EventKind::ShutdownRequested { .. } => {
                self.stopping.insert(inst, e.t);
            }
            _ => self.running.retain(|_, r| r.inst != inst),
        }
    }

    /// C3: a replica that exits after a clean graceful stop owns no job.
    fn on_exit(&self, m: &Model, e: &Event) -> Option<Violation> {
        let EventKind::Exited { target, graceful: true } = &e.kind else { return None };
        let r = m.rep(target)?;
        let inst = r.inst?;
        if !r.shutdown_clean {
            return None;
        }
        let kept: Vec<&String> = self.jobs.iter().filter(|(_, j)| j.owned() && j.owner == Some(inst)).map(|(id, _)| id).collect();
        if kept.is_empty() {
            return None;
        }
        violation("C3", e.t, format!("owned: {target}/i{inst} stopped gracefully still owning {kept:?}: they wait for its death"))
    }

    /// Since when the system could act on cron: the store calm and some
    /// replica healthy (None: it cannot now).
    fn able_since(m: &Model) -> Option<u64> {
        if !m.store_calm() {
            return None;
        }
        Some(m.any_healthy_since()?.max(m.calm_since))
    }

    fn due_deadlines(&mut self, p: &OracleParams, t: u64, able: u64) -> Option<Violation> {
        let c = &p.cron;
        for (id, j) in self.jobs.iter_mut() {
            if !j.active() {
                continue;
            }
            // Settled slots move the mark; the first unsettled one is judged.
            while let Some(s) = j.next_unchecked() {
                let s_us = s * 1000;
                if s_us > t {
                    break;
                }
                if self.records.contains_key(&(id.clone(), s)) {
                    j.checked_ms = s;
                    continue;
                }
                if t > s_us.max(able) + c.due_us {
                    return violation(
                        "C2",
                        t,
                        format!(
                            "on time: slot {} of job {id} (owner {}) has been due for {} with no record: neither run, \
                             nor recorded missed (bound {})",
                            secs(s_us),
                            j.owner.map_or("none".to_string(), |o| format!("i{o}")),
                            secs(t - s_us),
                            secs(c.due_us)
                        ),
                    );
                }
                break;
            }
        }
        None
    }

    fn owner_deadlines(&self, p: &OracleParams, m: &Model, t: u64, able: u64) -> Option<Violation> {
        for (id, j) in self.jobs.iter().filter(|(_, j)| j.owned()) {
            let lost_at = match j.owner {
                None => Some(j.owner_since),
                Some(o) => {
                    let died = m.dead.get(&o).copied();
                    let held_dead = m.beats.get(&o).map(|b| b + p.fleet.dead_threshold_us).filter(|d| *d <= t);
                    died.or(held_dead).map(|d| d.max(j.owner_since))
                }
            };
            let Some(lost_at) = lost_at else { continue };
            if t > lost_at.max(able) + p.cron.owner_us {
                return violation(
                    "C3",
                    t,
                    format!(
                        "owned: job {id} ({}) has had no live owner since {} (owner {}; bound {})",
                        j.spec().status,
                        secs(lost_at),
                        j.owner.map_or("none".to_string(), |o| format!("i{o}")),
                        secs(p.cron.owner_us)
                    ),
                );
            }
        }
        None
    }

    fn handoff_deadlines(&self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        for (inst, asked) in &self.stopping {
            let Some(r) = m.proc_of(*inst) else { continue };
            if !r.up || !r.shutdown_clean || t <= asked + p.cron.handoff_us {
                continue;
            }
            if let Some((id, _)) = self.jobs.iter().find(|(_, j)| j.owned() && j.owner == Some(*inst)) {
                return violation(
                    "C3",
                    t,
                    format!("owned: i{inst} was asked to stop at {} and still owns job {id} (hand-off bound {})", secs(*asked), secs(p.cron.handoff_us)),
                );
            }
        }
        None
    }
}

impl Check for CronCheck {
    fn observe(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        if !p.cron.enabled {
            return None;
        }
        let v = match &e.kind {
            EventKind::JobWrite { .. } => self.on_job(p, m, e),
            EventKind::FireWrite { .. } => self.on_fire(p, m, e),
            EventKind::FireFinished { job, slot_ms, .. } => {
                if let Some(r) = self.records.get_mut(&(job.clone(), *slot_ms)) {
                    r.finished = true;
                }
                None
            }
            EventKind::RunStarted { .. } | EventKind::RunEnded { .. } => self.on_run(p, m, e),
            _ => None,
        };
        let exit = self.on_exit(m, e);
        self.on_process(m, e);
        v.or(exit)
    }

    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        if !p.cron.enabled {
            return None;
        }
        if let Some(v) = self.handoff_deadlines(p, m, t) {
            return Some(v);
        }
        let able = Self::able_since(m)?;
        self.due_deadlines(p, t, able).or_else(|| self.owner_deadlines(p, m, t, able))
    }

    fn finish(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        self.tick(p, m, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_evaluates_schedules_itself() {
        let row = |every_ms: Option<u64>, schedule: &str| JobRow {
            schedule: schedule.into(),
            every_ms,
            status: "active".into(),
            owner: None,
            epoch: 0,
            since_ms: 0,
            spec: 1,
        };
        let every = Sched::of(&row(Some(10_000), "every 10000ms"));
        assert!(every.has(5_000, 15_000) && !every.has(5_000, 10_000) && !every.has(5_000, 5_000));
        assert_eq!(every.next_after(5_000, 15_000), Some(25_000));
        let expr = Sched::of(&row(None, "cron */20 * * * * *"));
        assert!(expr.has(1, 20_000) && expr.has(1, 40_000) && !expr.has(1, 30_000) && !expr.has(20_000, 20_000));
        assert!(matches!(Sched::of(&row(None, "cron nope")), Sched::Unknown));
    }
}
