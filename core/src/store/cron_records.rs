//! Records of cron coordination: scheduled jobs, the fire record of each
//! scheduled slot, and the fleet's settings row (docs/design.md §2.7).

use crate::clock::Millis;
use crate::ids::InstanceId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// When a job's slots fall, in store time (ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Schedule {
    /// Every `ms`, counted from the job's `since`: slots `since + k·ms`, k ≥ 1.
    Every { ms: u64 },
    /// A cron expression with a seconds field (`cron` crate syntax, UTC),
    /// e.g. `*/20 * * * * *`; slots are its times after `since`.
    Cron { expr: String },
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every { ms } => write!(f, "every {ms}ms"),
            Schedule::Cron { expr } => write!(f, "cron {expr}"),
        }
    }
}

impl Schedule {
    /// The text form SQLite keeps: `every:<ms>` or `cron:<expr>`.
    pub fn encode(&self) -> String {
        match self {
            Schedule::Every { ms } => format!("every:{ms}"),
            Schedule::Cron { expr } => format!("cron:{expr}"),
        }
    }

    pub fn decode(s: &str) -> Result<Schedule, String> {
        if let Some(ms) = s.strip_prefix("every:") {
            ms.parse().map(|ms| Schedule::Every { ms }).map_err(|e| format!("bad interval {ms:?}: {e}"))
        } else if let Some(expr) = s.strip_prefix("cron:") {
            Ok(Schedule::Cron { expr: expr.to_string() })
        } else {
            Err(format!("unknown schedule {s:?}"))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobStatus {
    Active,
    Paused,
    /// A tombstone: never fires again, needs no owner, takes no edit.
    Deleted,
}

impl JobStatus {
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Active => "active",
            JobStatus::Paused => "paused",
            JobStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Result<JobStatus, String> {
        match s {
            "active" => Ok(JobStatus::Active),
            "paused" => Ok(JobStatus::Paused),
            "deleted" => Ok(JobStatus::Deleted),
            _ => Err(format!("unknown job status {s:?}")),
        }
    }
}

/// One scheduled job. Its owner is the only replica that fires it; every
/// change of owner is a CAS on `(owner, owner_epoch)` that bumps the epoch,
/// so a former owner's fire is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub schedule: Schedule,
    pub status: JobStatus,
    pub owner: Option<InstanceId>,
    pub owner_epoch: u64,
    /// The current schedule's slots are those strictly after `since`: the
    /// store time of the last create, edit, pause or resume (or the last
    /// handled slot, if later). A slot at or before it is not due.
    pub since: Millis,
    /// The latest slot of the current schedule (`spec`) that has a fire
    /// record: a timer armed for this spec resumes after it. A record a
    /// stale timer commits for an older spec does not move it, and an edit
    /// clears it.
    pub last_slot: Option<Millis>,
    /// +1 on every admin change (schedule or status): what an owner's
    /// timer was armed for.
    pub spec: u64,
    /// +1 on every applied write.
    pub version: u64,
}

/// What a fire record says of its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FireKind {
    /// The slot runs (the record is its run's lock until finished or past
    /// its deadline).
    Run,
    /// The slot was due too long ago and the missed-slot policy skipped it.
    Missed,
    /// The fleet was at its cap of concurrent runs: the store recorded the
    /// slot as skipped instead of running it.
    AtCap,
}

impl FireKind {
    pub fn name(self) -> &'static str {
        match self {
            FireKind::Run => "run",
            FireKind::Missed => "missed",
            FireKind::AtCap => "at_cap",
        }
    }

    pub fn parse(s: &str) -> Result<FireKind, String> {
        match s {
            "run" => Ok(FireKind::Run),
            "missed" => Ok(FireKind::Missed),
            "at_cap" => Ok(FireKind::AtCap),
            _ => Err(format!("unknown fire kind {s:?}")),
        }
    }
}

/// The one record a (job, slot) may ever have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireRecord {
    pub job: String,
    pub slot: Millis,
    pub kind: FireKind,
    /// Who committed it (`None`: a single scheduler, no registry).
    pub owner: Option<InstanceId>,
    pub epoch: u64,
    pub at: Millis,
    /// A run counts against the fleet's cap until finished or until this
    /// store time (its timeout plus grace), whichever is first.
    pub deadline: Millis,
    pub finished: Option<Millis>,
}

impl FireRecord {
    /// Whether it holds one of the fleet's concurrent-run places at `now`.
    pub fn running_at(&self, now: Millis) -> bool {
        self.kind == FireKind::Run && self.finished.is_none() && self.deadline > now
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobReject {
    NoJob,
    /// Create of an id that exists.
    Exists,
    /// `(owner, owner_epoch)` is not the current one.
    StaleOwner,
    /// The job is deleted: no edit, no claim (a release is allowed).
    Deleted,
    /// The schedule does not parse or would never fire.
    BadSchedule,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobCas {
    Applied(JobRecord),
    Rejected { reason: JobReject, current: Option<JobRecord> },
}

/// The answer to a fire: committed, or why not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FireResult {
    /// The record is committed (for `AtCap` too: the slot is settled).
    Committed(FireRecord),
    /// The slot already has a record: nothing written.
    Duplicate(FireRecord),
    NoJob,
    /// Not the job's owner at that epoch.
    StaleOwner,
    /// The job is paused or deleted.
    NotActive,
    /// The slot is at or before the job's `since`: not one of its current
    /// schedule's slots to fire.
    NotDue,
    /// The slot lies in the store's future (the store's clock reads `now`):
    /// fire it when it comes.
    Early { now: Millis },
    /// A miss of a slot not yet `late_after_ms` old at the store's `now`:
    /// it is on time, so run it.
    NotLate { now: Millis },
    /// A finish of a record that is not a run of this owner.
    NotOwner,
    /// A finish of a run already finished: nothing written.
    Finished,
}

impl FireResult {
    /// The answer's name, as traces spell it.
    pub fn name(&self) -> &'static str {
        match self {
            FireResult::Committed(_) => "committed",
            FireResult::Duplicate(_) => "duplicate",
            FireResult::NoJob => "no_job",
            FireResult::StaleOwner => "stale_owner",
            FireResult::NotActive => "not_active",
            FireResult::NotDue => "not_due",
            FireResult::Early { .. } => "early",
            FireResult::NotLate { .. } => "not_late",
            FireResult::NotOwner => "not_owner",
            FireResult::Finished => "finished",
        }
    }
}

/// The fleet's settings: one row, a value and a version that only grows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsRecord {
    pub value: String,
    pub version: u64,
    pub updated_at: Millis,
}
