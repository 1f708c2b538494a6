//! One replica's scheduler: the reconcile loop, one timer per owned job,
//! and the fire protocol (docs/design.md §2.7).
//!
//! Time: slots are store times. Each reconcile measures the offset of the
//! store's clock from this replica's (from the list's `now` and the call's
//! round trip), and timers sleep on the local clock until a slot's store
//! time, so a skewed replica fires neither early nor late by its skew; a
//! fire the store finds early is refused with the store's `now` and retried
//! then. Death is judged by the store's `now` too (field report 001,
//! failure 5).
//!
//! A slot fires only by committing its fire record first, fenced by the
//! job's ownership epoch; an unknown outcome is settled by reading the
//! record back. The run follows the record, never the other way round
//! (failure 6).

use super::assign::{self, Claim};
use super::policy;
use super::schedule::Slots;
use super::{CronConfig, JobRunner};
use crate::clock::{timeout, Clock, Millis};
use crate::config::ms;
use crate::ids::InstanceId;
use crate::lease::stop_requested;
use crate::mutants::{Mutant, Mutants};
use crate::signal as watch;
use crate::store::{
    FireKind, FireRecord, FireResult, JobCas, JobRecord, JobStatus, Store, StoreError, StoreReply,
    StoreRequest,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// At most this many slots of one job are settled per pass of its timer.
const BATCH: usize = 256;
/// After a failed or unknown fire, try the slot again this soon.
const RETRY_MS: u64 = 1_000;
/// Attempts at writing a run's finish.
const FINISH_ATTEMPTS: u32 = 3;

/// The timer armed for one job: for this ownership epoch and spec.
struct Armed {
    epoch: u64,
    spec: u64,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    armed: BTreeMap<String, Armed>,
    /// Timers the re-arm mutant left running (aborted with the rest).
    leaked: Vec<JoinHandle<()>>,
    /// Runs in flight, by (job, slot).
    runs: BTreeMap<(String, Millis), JoinHandle<()>>,
    /// Every (job, slot) this instance started a run for (recent ones): a
    /// record of its own it meets again (another timer of the job, a retry)
    /// never runs twice.
    started: BTreeSet<(String, Millis)>,
    memory: assign::Memory,
    stopping: bool,
}

/// What became of one slot's fire.
enum Step {
    /// The slot has its record (ours or anyone's): go on to the next.
    Settled,
    /// Try again after this many local ms.
    Retry(u64),
    /// This timer has no business firing the job any more (not owner, not
    /// active, gone): stop; the reconcile loop re-arms if it should.
    Stop,
}

pub struct Cron<S: Store, C: Clock> {
    /// `None`: a single scheduler with no registry; it owns every job.
    me: Option<InstanceId>,
    cfg: CronConfig,
    dead_after_ms: u64,
    call_ms: u64,
    drain_ms: u64,
    mutants: Mutants,
    store: Arc<S>,
    clock: Arc<C>,
    runner: Arc<dyn JobRunner>,
    /// Store time minus local time, as last measured.
    offset: AtomicI64,
    inner: Mutex<Inner>,
    /// Told once a shutdown begins: timers finish the fire in hand (so a
    /// committed run is not dropped before it starts) and stop.
    halt_tx: watch::Sender<bool>,
    halt: watch::Receiver<bool>,
}

/// What a scheduler needs besides its store, clock and runner.
#[derive(Clone, Debug)]
pub struct CronParams {
    pub me: Option<InstanceId>,
    pub cfg: CronConfig,
    pub dead_after_ms: u64,
    pub call_timeout_ms: u64,
    /// How long a stopping scheduler waits for its runs.
    pub drain_timeout_ms: u64,
    pub mutants: Mutants,
}

impl<S: Store, C: Clock> Cron<S, C> {
    pub fn new(p: CronParams, store: Arc<S>, clock: Arc<C>, runner: Arc<dyn JobRunner>) -> Self {
        let (halt_tx, halt) = watch::channel(false);
        Cron {
            me: p.me,
            cfg: p.cfg,
            dead_after_ms: p.dead_after_ms,
            call_ms: p.call_timeout_ms,
            drain_ms: p.drain_timeout_ms,
            mutants: p.mutants,
            store,
            clock,
            runner,
            offset: AtomicI64::new(0),
            inner: Mutex::new(Inner::default()),
            halt_tx,
            halt,
        }
    }

    /// Sleep until local `at`; false if a shutdown began meanwhile.
    async fn sleep_until_or_halt(&self, at: Millis) -> bool {
        let mut halt = self.halt.clone();
        tokio::select! {
            biased;
            _ = stop_requested(&mut halt) => false,
            _ = crate::clock::sleep_until(&*self.clock, at) => !*self.halt.borrow(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn app_clock(&self) -> bool {
        self.mutants.on(Mutant::AppClockCutoffs)
    }

    /// The store's time as this replica estimates it.
    fn store_now(&self) -> Millis {
        let local = self.clock.now();
        if self.app_clock() {
            return local;
        }
        (local as i64).saturating_add(self.offset.load(Ordering::SeqCst)).max(0) as Millis
    }

    /// The store's clock read `now` a moment ago (one way of a call).
    fn resync(&self, now: Millis) {
        self.offset.store((now as i64).wrapping_sub(self.clock.now() as i64), Ordering::SeqCst);
    }

    /// Local time at which the store's clock reads `t`.
    fn local_at(&self, t: Millis) -> Millis {
        if self.app_clock() {
            return t;
        }
        (t as i64).saturating_sub(self.offset.load(Ordering::SeqCst)).max(0) as Millis
    }

    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        match timeout(&*self.clock, ms(self.call_ms), self.store.call(req)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable("timed out".into())),
        }
    }

    /// Reconcile every `reconcile_ms` until `stop`.
    pub async fn reconcile_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => return,
                _ = self.reconcile() => {}
            }
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => return,
                _ = self.clock.sleep(ms(self.cfg.reconcile_ms)) => {}
            }
        }
    }

    /// One pass: read the instances and jobs, claim this replica's share of
    /// the jobs that need an owner, and make the timers match what it owns.
    /// A failed read skips the pass (nothing is decided on a partial view).
    pub async fn reconcile(self: &Arc<Self>) {
        let instances = match self.me {
            Some(_) => match self.call(StoreRequest::ListInstances).await {
                Ok(StoreReply::Instances { now, list }) => Some((now, list)),
                _ => return,
            },
            None => None,
        };
        let sent = self.clock.now();
        let Ok(StoreReply::Jobs { now, mut list }) = self.call(StoreRequest::ListJobs).await else { return };
        let got = self.clock.now();
        let mid = sent + got.saturating_sub(sent) / 2;
        self.offset.store((now as i64).wrapping_sub(mid as i64), Ordering::SeqCst);
        if let (Some(me), Some((listed_at, instances))) = (self.me, instances) {
            // Judged at the store's time of the instance list (the mutant:
            // at this replica's own clock).
            let judge_at = if self.app_clock() { self.clock.now() } else { listed_at };
            let plan = {
                let mut inner = self.inner();
                let patience = self.cfg.reconcile_ms;
                assign::plan(me, &list, &instances, judge_at, self.dead_after_ms, patience, &mut inner.memory, &self.mutants)
            };
            for c in plan.releases {
                let req = StoreRequest::ClaimJob { id: c.id.clone(), owner: c.from, epoch: c.epoch, new_owner: None };
                if let Ok(StoreReply::Job(JobCas::Applied(rec))) = self.call(req).await {
                    if let Some(j) = list.iter_mut().find(|j| j.id == rec.id) {
                        *j = rec;
                    }
                }
            }
            for c in plan.claims {
                if let Some(rec) = self.claim(me, &c).await {
                    if let Some(j) = list.iter_mut().find(|j| j.id == rec.id) {
                        *j = rec;
                    }
                }
            }
        }
        self.sync(&list);
    }

    async fn claim(&self, me: InstanceId, c: &Claim) -> Option<JobRecord> {
        let req = StoreRequest::ClaimJob { id: c.id.clone(), owner: c.from, epoch: c.epoch, new_owner: Some(me) };
        match self.call(req).await {
            Ok(StoreReply::Job(JobCas::Applied(rec))) => Some(rec),
            // Lost the race, or the outcome is unknown: the next pass sees.
            _ => None,
        }
    }

    fn mine(&self, j: &JobRecord) -> bool {
        j.status == JobStatus::Active && (self.me.is_none() || j.owner == self.me)
    }

    /// Arm a timer for every active job this replica owns (re-arm one whose
    /// owner epoch or spec changed) and stop every other.
    fn sync(self: &Arc<Self>, jobs: &[JobRecord]) {
        let mut inner = self.inner();
        if inner.stopping {
            return;
        }
        let keep: BTreeSet<&str> = jobs.iter().filter(|j| self.mine(j)).map(|j| j.id.as_str()).collect();
        let gone: Vec<String> = inner.armed.keys().filter(|id| !keep.contains(id.as_str())).cloned().collect();
        for id in gone {
            if let Some(a) = inner.armed.remove(&id) {
                a.task.abort();
            }
        }
        for j in jobs.iter().filter(|j| self.mine(j)) {
            match inner.armed.get(&j.id) {
                // A timer that stopped on its own (it met a refusal the
                // list did not show yet) is armed again.
                Some(a) if a.epoch == j.owner_epoch && a.spec == j.spec && !a.task.is_finished() => continue,
                // The mutant re-arms only for a new owner epoch: an edit of
                // the schedule goes unseen.
                Some(a) if a.epoch == j.owner_epoch && self.mutants.on(Mutant::ScheduleEditIgnored) => continue,
                _ => {}
            }
            let task = tokio::spawn(self.clone().fire_loop(j.clone()));
            if let Some(old) = inner.armed.insert(j.id.clone(), Armed { epoch: j.owner_epoch, spec: j.spec, task }) {
                if self.mutants.on(Mutant::TimerLeakedOnRearm) {
                    inner.leaked.push(old.task);
                } else {
                    old.task.abort();
                }
            }
        }
    }

    /// One job's timer: settle its slots in order as they fall due.
    async fn fire_loop(self: Arc<Self>, job: JobRecord) {
        let Ok(slots) = Slots::new(&job.schedule, job.since) else { return };
        let mut cursor = job.last_slot.unwrap_or(0).max(job.since);
        loop {
            let now = self.store_now();
            let (due, _) = slots.between(cursor, now, BATCH, BATCH);
            if due.is_empty() {
                let Some(next) = slots.next_after(cursor) else { return };
                if !self.sleep_until_or_halt(self.local_at(next)).await {
                    return;
                }
                continue;
            }
            let mut plan = policy::decide(&due, now, self.cfg.misfire_after_ms, self.cfg.policy);
            if self.mutants.on(Mutant::MissedSlotsDropped) {
                // The pre-fix timer: it resumes from "now", and slots that
                // fell due meanwhile are neither run nor recorded.
                let late = due.iter().take_while(|s| now.saturating_sub(**s) > self.cfg.misfire_after_ms).count();
                if late > 0 {
                    cursor = due[late - 1];
                    plan.drain(..late);
                }
            }
            for (slot, kind) in plan {
                if *self.halt.borrow() {
                    return;
                }
                match self.fire(&job, slot, kind).await {
                    Step::Settled => cursor = slot,
                    Step::Retry(wait) => {
                        if !self.sleep_until_or_halt(self.clock.now().saturating_add(wait)).await {
                            return;
                        }
                        break;
                    }
                    Step::Stop => return,
                }
            }
        }
    }

    /// Commit `slot`'s record as `kind`, then (for a run) start the run.
    async fn fire(self: &Arc<Self>, job: &JobRecord, slot: Millis, kind: FireKind) -> Step {
        if kind == FireKind::Run && self.mutants.on(Mutant::CheckThenLockFire) {
            // The pre-fix order: look, run, and only then lock.
            let req = StoreRequest::ReadFire { job: job.id.clone(), slot };
            return match self.call(req).await {
                Ok(StoreReply::FireRead(Some(_))) => Step::Settled,
                Ok(StoreReply::FireRead(None)) => {
                    self.start_run(&job.id, slot, self.store_now());
                    let _ = self.call(self.commit_req(job, slot, kind, self.cfg.cap())).await;
                    Step::Settled
                }
                _ => Step::Retry(RETRY_MS),
            };
        }
        let mut cap = self.cfg.cap();
        if kind == FireKind::Run && cap.is_some() && self.mutants.on(Mutant::CapCountThenLock) {
            // The pre-fix cap: count the runs, then commit unchecked.
            match self.call(StoreRequest::ListRunning).await {
                Ok(StoreReply::Running { list, .. }) if list.len() < cap.unwrap_or(0) as usize => cap = None,
                Ok(StoreReply::Running { .. }) => {}
                _ => return Step::Retry(RETRY_MS),
            }
        }
        match self.call(self.commit_req(job, slot, kind, cap)).await {
            Ok(StoreReply::Fire(r)) => self.settle(job, slot, r),
            Ok(_) | Err(StoreError::Failed(_) | StoreError::Backend(_) | StoreError::Protocol(_)) => Step::Retry(RETRY_MS),
            // Unknown outcome: the record says whether it committed.
            Err(StoreError::Unavailable(_)) => {
                let req = StoreRequest::ReadFire { job: job.id.clone(), slot };
                match self.call(req).await {
                    Ok(StoreReply::FireRead(Some(rec))) => self.settle(job, slot, FireResult::Duplicate(rec)),
                    _ => Step::Retry(RETRY_MS),
                }
            }
        }
    }

    fn commit_req(&self, job: &JobRecord, slot: Millis, kind: FireKind, cap: Option<u32>) -> StoreRequest {
        StoreRequest::CommitFire {
            job: job.id.clone(),
            slot,
            owner: self.me,
            epoch: job.owner_epoch,
            kind,
            cap,
            hold_ms: self.cfg.hold_ms(),
            late_after_ms: self.cfg.misfire_after_ms,
            spec: job.spec,
        }
    }

    /// What the store's answer means for this timer.
    fn settle(self: &Arc<Self>, job: &JobRecord, slot: Millis, r: FireResult) -> Step {
        match r {
            FireResult::Committed(rec) => {
                if rec.kind == FireKind::Run {
                    self.start_run(&job.id, slot, rec.at);
                }
                Step::Settled
            }
            // Our own earlier attempt, its reply lost: it is ours to run. A
            // single scheduler cannot tell its own record from a former
            // incarnation's, so it never runs a duplicate (at most once).
            FireResult::Duplicate(rec) => {
                if self.me.is_some() && self.ours(job, &rec) {
                    self.start_run(&job.id, slot, rec.at);
                }
                Step::Settled
            }
            // The store's clock says otherwise: go by it from now on.
            FireResult::Early { now } => {
                self.resync(now);
                Step::Retry(slot.saturating_sub(now).saturating_add(1))
            }
            FireResult::NotLate { now } => {
                self.resync(now);
                Step::Retry(0)
            }
            FireResult::NotDue | FireResult::NotOwner | FireResult::Finished => Step::Settled,
            FireResult::NoJob | FireResult::StaleOwner | FireResult::NotActive => Step::Stop,
        }
    }

    fn ours(&self, job: &JobRecord, rec: &FireRecord) -> bool {
        rec.kind == FireKind::Run && rec.owner == self.me && rec.epoch == job.owner_epoch && {
            let inner = self.inner();
            !inner.started.contains(&(rec.job.clone(), rec.slot))
        }
    }

    /// Start the run of `slot`, cut off `run_timeout_ms` after its record
    /// committed at store time `committed` (a run that starts late still
    /// ends inside the record's hold on the cap; one whose time is already
    /// up does not start).
    fn start_run(self: &Arc<Self>, job: &str, slot: Millis, committed: Millis) {
        let cut_at = self.local_at(committed.saturating_add(self.cfg.run_timeout_ms));
        let Some(left) = cut_at.checked_sub(self.clock.now()).filter(|l| *l > 0) else { return };
        {
            let mut inner = self.inner();
            if !inner.started.insert((job.to_string(), slot)) {
                return;
            }
            // Forget what no timer can meet again: slots older than a run's
            // hold, twice over.
            let horizon = self.store_now().saturating_sub(self.cfg.hold_ms().saturating_mul(2));
            inner.started.retain(|(_, s)| *s >= horizon);
        }
        let me = self.clone();
        let id = job.to_string();
        let task = tokio::spawn(async move {
            let _ = timeout(&*me.clock, ms(left), me.runner.run(&id, slot)).await;
            me.finish(&id, slot).await;
            me.inner().runs.remove(&(id, slot));
        });
        self.inner().runs.insert((job.to_string(), slot), task);
    }

    /// Free the run's place against the cap (its deadline frees it anyway).
    async fn finish(&self, job: &str, slot: Millis) {
        for attempt in 0..FINISH_ATTEMPTS {
            let req = StoreRequest::FinishFire { job: job.to_string(), slot, owner: self.me };
            if let Ok(StoreReply::Fire(_)) = self.call(req).await {
                return;
            }
            if attempt + 1 < FINISH_ATTEMPTS {
                self.clock.sleep(ms(RETRY_MS)).await;
            }
        }
    }

    /// Stop: no timer fires again; this replica's jobs are released at once
    /// so the next owner need not wait for the dead threshold (failure 9);
    /// runs in flight may finish for the drain timeout, then are cut off
    /// and their records finished.
    pub async fn shutdown(self: &Arc<Self>) {
        let mut timers: Vec<JoinHandle<()>> = {
            let mut inner = self.inner();
            inner.stopping = true;
            let mut t: Vec<_> = std::mem::take(&mut inner.armed).into_values().map(|a| a.task).collect();
            t.append(&mut inner.leaked);
            t
        };
        // Each timer finishes the fire in hand (at most a commit and its
        // read-back), then stops.
        let _ = self.halt_tx.send(true);
        let settle = async {
            for t in timers.iter_mut() {
                let _ = t.await;
            }
        };
        let _ = timeout(&*self.clock, ms(self.call_ms.saturating_mul(3)), settle).await;
        for t in timers {
            t.abort();
        }
        let keep_lock = self.mutants.on(Mutant::ShutdownKeepsLock);
        let released_at = self.clock.now();
        if !keep_lock {
            // Draining first, so no replica picks this one as the target of
            // the jobs it is about to release (docs/design.md §2.7).
            if let Some(me) = self.me {
                let _ = self.call(StoreRequest::DrainInstance { id: me, dead_after_ms: Some(self.dead_after_ms) }).await;
            }
            self.release_all().await;
        }
        let mut runs: Vec<((String, Millis), JoinHandle<()>)> = std::mem::take(&mut self.inner().runs).into_iter().collect();
        if keep_lock {
            for (_, h) in runs {
                h.abort();
            }
            return;
        }
        let wait_all = async {
            for (_, h) in runs.iter_mut() {
                let _ = h.await;
            }
        };
        if timeout(&*self.clock, ms(self.drain_ms), wait_all).await.is_err() {
            for ((job, slot), h) in runs {
                if !h.is_finished() {
                    h.abort();
                    self.finish(&job, slot).await;
                }
            }
        }
        // A claim the reconcile loop sent just before it stopped may land
        // after the first release: once any such call has landed or timed
        // out, look again.
        crate::clock::sleep_until(&*self.clock, released_at.saturating_add(self.call_ms)).await;
        self.release_all().await;
    }

    async fn release_all(&self) {
        let Some(me) = self.me else { return };
        let Ok(StoreReply::Jobs { list, .. }) = self.call(StoreRequest::ListJobs).await else { return };
        for j in list.iter().filter(|j| j.owner == Some(me)) {
            let req = StoreRequest::ClaimJob { id: j.id.clone(), owner: Some(me), epoch: j.owner_epoch, new_owner: None };
            let _ = self.call(req).await;
        }
    }

    /// Stop everything at once, writing nothing (the replica crashed or
    /// fenced itself).
    pub fn abort_all(&self) {
        let mut inner = self.inner();
        inner.stopping = true;
        for (_, a) in std::mem::take(&mut inner.armed) {
            a.task.abort();
        }
        for t in inner.leaked.drain(..) {
            t.abort();
        }
        for (_, r) in std::mem::take(&mut inner.runs) {
            r.abort();
        }
    }

    /// Runs in flight now (for tests and metrics).
    pub fn runs_in_flight(&self) -> usize {
        self.inner().runs.values().filter(|h| !h.is_finished()).count()
    }
}
