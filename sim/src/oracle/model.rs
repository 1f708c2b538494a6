//! The oracle's model of the world, rebuilt from ground truth alone: the
//! lease and the worker rows as the store committed them, the pods and
//! secrets as the cluster holds them, the sessions as the clients saw them,
//! and each replica process as the injector left it (up, paused, cut off,
//! slowed, shutting down). Nothing here comes from what a replica says
//! about itself; the checkers read it, only [`Model::apply`] changes it.

use crate::faults::ClusterOps;
use haywire_traces::{Event, EventKind, LeaseState, Lifecycle, SlotOp, SlotReply, WorkerOp};
use std::collections::{BTreeMap, BTreeSet};

/// One replica machine as the injector left it.
#[derive(Clone, Debug, Default)]
pub struct Proc {
    /// The running incarnation, if the process is up.
    pub inst: Option<u64>,
    pub up: bool,
    pub paused: bool,
    pub partitioned: bool,
    /// Cut off from the cluster API (the store still reachable).
    pub cluster_cut: bool,
    pub slow: bool,
    /// The extra latency of the last slow-store fault on it.
    pub slow_ms: u64,
    pub shutting_down: bool,
    /// Since when the process has been continuously healthy (None: it is not).
    pub healthy_since: Option<u64>,
    /// Last time the store heard from the current instance.
    pub last_contact: u64,
    /// No fault touched the replica or the store since its shutdown began.
    pub shutdown_clean: bool,
    /// When the injector froze the process, while it is frozen.
    pub paused_since: Option<u64>,
}

impl Proc {
    /// Up, running, and able to reach the store at full speed and the
    /// cluster API.
    pub fn healthy(&self) -> bool {
        self.up && !self.paused && !self.partitioned && !self.cluster_cut && !self.slow && !self.shutting_down
    }
}

/// A worker row as the store committed it.
#[derive(Clone, Debug)]
pub struct Row {
    pub org: String,
    pub state: Lifecycle,
    pub owner: u64,
    pub epoch: u64,
    pub session: Option<u64>,
    /// When it entered its current state (store time, µs).
    pub since: u64,
}

/// A capacity slot as the store holds it.
#[derive(Clone, Debug)]
pub struct SlotHeld {
    pub reserver: u64,
    pub org: String,
    pub at: u64,
}

/// What a client has seen of one of its requests.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Pending,
    /// It got `worker`, and holds it until `Ended`.
    Holding { worker: String, at: u64 },
    Ended { worker: String },
    Refused,
    TimedOut,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub client: String,
    pub org: String,
    /// The instance the client asked (the replica's incarnation at request
    /// time, as the injector knows it).
    pub server: Option<u64>,
    pub requested_at: u64,
    pub answer: Answer,
    /// Since when the client has been reconnecting the session (its replica
    /// went away), until a replica resumes it or the client gives up.
    pub reconnecting: Option<u64>,
}

#[derive(Default)]
pub struct Model {
    /// The lease record as the store holds it.
    pub lease: Option<LeaseState>,
    /// When the record last became free by release.
    pub released_at: u64,
    /// When the current holder's term (holder and epoch) began.
    pub term_since: u64,
    /// When each instance stopped being the live holder.
    pub ceased: BTreeMap<u64, u64>,
    pub reps: Vec<Proc>,
    pub inst_rep: BTreeMap<u64, usize>,
    /// Instances whose process died (crashed, killed, exited), and when.
    pub dead: BTreeMap<u64, u64>,
    /// The longest pause the injector has done and ended so far (µs).
    pub longest_pause_us: u64,
    /// Instances the injector asked to shut down, and when it first did.
    pub shutdown_asked: BTreeMap<u64, u64>,
    /// An instance that exited gracefully with no fault in its way: it
    /// should have released the lease before exiting.
    pub clean_exit: Option<(u64, u64)>,
    store_disturbances: u32,
    /// Since when no store-wide fault has been active.
    pub calm_since: u64,
    /// A lease outage is on (nobody can lead), and when the last one ended.
    pub lease_outage: bool,
    pub lease_calm_since: u64,
    cluster_disturbances: u32,
    pub cluster_calm_since: u64,
    /// Per kind of cluster operation (`list_pods`, `delete_secret`, ...):
    /// faults on now, and when the last one ended, so a fault on one kind
    /// excuses only the checks that need it.
    op_disturbances: BTreeMap<&'static str, u32>,
    op_calm_since: BTreeMap<&'static str, u64>,
    pub quiet_since: Option<u64>,

    // --- the fleet ---
    pub workers: BTreeMap<String, Row>,
    /// Capacity slots the store holds, by worker.
    pub slots: BTreeMap<String, SlotHeld>,
    /// Pods the cluster holds: name → when it failed, if it did.
    pub pods: BTreeMap<String, Option<u64>>,
    /// Pods the cluster deleted, and since when they were dead (their
    /// failure if they failed first, else their deletion), until created
    /// again.
    pub pods_gone: BTreeMap<String, u64>,
    /// The same two facts by worker id, for the checks that ask them of a
    /// held worker: since when its pod has been dead (failed, or deleted),
    /// until it is created again.
    pod_dead: BTreeMap<String, u64>,
    /// The held workers whose pods are dead (in both `held` and `pod_dead`):
    /// the progress check's tick walks these, not every held worker.
    held_dead: BTreeSet<String>,
    /// Of those, the ones that had failed before they were deleted.
    pub failed_then_gone: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    /// Headroom placeholder pods the cluster holds (by the labels it was
    /// created with), and when each was created: not workers' pods, never
    /// orphans.
    pub placeholders: BTreeMap<String, u64>,
    /// When each pod or secret was (last) created.
    pub created: BTreeMap<String, u64>,
    /// Pods and secrets that exist while no live row owns them, and since
    /// when (kept as they change, so nothing scans every object per tick).
    pub orphans: BTreeMap<String, u64>,
    /// Pods the cluster refuses to delete now, and when each refusal ended.
    pub refused: BTreeSet<String>,
    pub refusal_healed: BTreeMap<String, u64>,
    /// When the store last took each instance's registration or heartbeat.
    pub beats: BTreeMap<u64, u64>,
    /// Instances the store holds draining (they hand their sessions over).
    pub draining: BTreeSet<u64>,
    /// The last worker the store bound to each session hot, and its owner
    /// then.
    pub bindings: BTreeMap<u64, (String, u64)>,
    pub sessions: BTreeMap<u64, Session>,
    /// worker → the sessions whose clients hold it now.
    pub held: BTreeMap<String, BTreeSet<u64>>,
    /// Live (unended) workers per org and in all, kept with `workers`: the
    /// cap check counts them on every insert.
    live_by_org: BTreeMap<String, usize>,
    live_all: usize,
    /// `slots` per org, kept with it: the cap check counts them on every
    /// reserve (a scan of every slot was O(live workers) per reserve).
    slots_by_org: BTreeMap<String, usize>,
}

/// Every kind of cluster request, as the fault layer names them.
pub const CLUSTER_OPS: [&str; 7] =
    ["create_secret", "delete_secret", "list_secrets", "create_pod", "delete_pod", "get_pod", "list_pods"];

/// `r3` → 2.
pub fn rep_index(name: &str) -> Option<usize> {
    name.strip_prefix('r')?.parse::<usize>().ok()?.checked_sub(1)
}

/// Core's object names (`pod-<worker>`, `secret-<worker>`) back to the worker.
pub fn worker_of_pod(name: &str) -> Option<&str> {
    name.strip_prefix("pod-")
}

pub fn worker_of_secret(name: &str) -> Option<&str> {
    name.strip_prefix("secret-")
}

impl Model {
    pub fn new(replicas: usize) -> Self {
        Model { reps: vec![Proc::default(); replicas], ..Default::default() }
    }

    /// Whether S2 is promised at `t`: the options keep drift within the
    /// replicas' bound, and no pause the injector did so far (ended, or
    /// still going at `t`) outlasted the bound. Judged from the pauses
    /// that ran, not the rates the options drew them from: a hand-edited
    /// plan's long pause is out of bounds too.
    pub fn s2_promised(&self, p: &super::OracleParams, t: u64) -> bool {
        let ongoing = self.reps.iter().filter_map(|r| r.paused_since).map(|s| t.saturating_sub(s)).max().unwrap_or(0);
        p.enforce_s2 && self.longest_pause_us.max(ongoing) <= p.fleet.max_pause_us
    }

    pub fn store_calm(&self) -> bool {
        self.store_disturbances == 0
    }

    /// No lease outage: somebody could lead.
    pub fn lease_calm(&self) -> bool {
        !self.lease_outage
    }

    pub fn cluster_calm(&self) -> bool {
        self.cluster_disturbances == 0
    }

    /// Since when no fault has touched any of `ops` (None: one does now).
    pub fn ops_calm_since(&self, ops: &[&str]) -> Option<u64> {
        let mut since = 0;
        for op in ops {
            if self.op_disturbances.get(op).copied().unwrap_or(0) > 0 {
                return None;
            }
            since = since.max(self.op_calm_since.get(op).copied().unwrap_or(0));
        }
        Some(since)
    }

    /// The process record of a replica named `r<n>`.
    pub fn rep(&self, name: &str) -> Option<&Proc> {
        rep_index(name).and_then(|i| self.reps.get(i))
    }

    /// The process running instance `inst`, if it is still up.
    pub fn proc_of(&self, inst: u64) -> Option<&Proc> {
        let i = *self.inst_rep.get(&inst)?;
        self.reps.get(i).filter(|r| r.inst == Some(inst))
    }

    /// The instances of replica `name` that may have sent something heard
    /// now and sent no earlier than `since`: the one up now, and any whose
    /// process went down (crashed, fenced, exited) at or after `since`.
    pub fn instances_up_since(&self, name: &str, since: u64) -> Vec<u64> {
        let i = rep_index(name);
        let mut out: Vec<u64> = self.rep(name).and_then(|r| r.inst).filter(|&inst| self.is_up(inst)).into_iter().collect();
        out.extend(self.dead.iter().filter(|&(inst, &at)| at >= since && self.inst_rep.get(inst).copied() == i).map(|(&inst, _)| inst));
        out
    }

    /// Whether `inst`'s replica runs on a clock that drifts beyond the bound
    /// it is configured for.
    pub fn drifts_beyond(&self, p: &super::FleetParams, inst: u64) -> bool {
        self.inst_rep.get(&inst).is_some_and(|&i| p.drift_beyond.get(i).copied().unwrap_or(false))
    }

    /// Whether the process of `inst` is up (not crashed or exited).
    pub fn is_up(&self, inst: u64) -> bool {
        !self.dead.contains_key(&inst) && self.proc_of(inst).is_some_and(|r| r.up)
    }

    /// Whether `inst`'s process is gone, or the store holds it dead at `t`
    /// (no heartbeat taken for `dead_threshold_us`; never registered
    /// counts as dead): what it owned may be someone else's.
    pub fn gone_or_dead(&self, inst: u64, t: u64, dead_threshold_us: u64) -> bool {
        !self.is_up(inst) || self.beats.get(&inst).is_none_or(|&b| b + dead_threshold_us <= t)
    }

    /// The holder whose lease is unexpired at `t` (µs).
    pub fn live_holder(&self, t: u64) -> Option<u64> {
        let l = self.lease.as_ref()?;
        let h = l.holder?;
        (l.expires_at_ms * 1000 > t).then_some(h)
    }

    /// Whether `inst` holds the live lease at `epoch` at `t`.
    pub fn holds_lease(&self, inst: u64, epoch: u64, t: u64) -> bool {
        self.lease.as_ref().is_some_and(|l| l.holder == Some(inst) && l.epoch == epoch && l.expires_at_ms * 1000 > t)
    }

    /// Since when the lease has been abandoned at `t`, if it is: never
    /// taken, released, expired, or held by an instance that exited
    /// gracefully without releasing it.
    pub fn abandoned_since(&self, t: u64) -> Option<u64> {
        let Some(l) = &self.lease else { return Some(0) };
        let Some(h) = l.holder else { return Some(self.released_at) };
        let expiry = l.expires_at_ms * 1000;
        if expiry <= t {
            return Some(expiry);
        }
        match self.clean_exit {
            Some((inst, at)) if inst == h => Some(at),
            _ => None,
        }
    }

    /// Since when instance `inst` has not been the live holder (0: never was).
    pub fn nonholder_since(&self, inst: u64, t: u64) -> Option<u64> {
        if let Some(l) = &self.lease {
            if l.holder == Some(inst) {
                let expiry = l.expires_at_ms * 1000;
                return (expiry <= t).then_some(expiry);
            }
        }
        Some(self.ceased.get(&inst).copied().unwrap_or(0))
    }

    /// Since when some replica has been continuously healthy, if one is.
    pub fn any_healthy_since(&self) -> Option<u64> {
        self.reps.iter().filter_map(|r| r.healthy_since).min()
    }

    /// Since when a healthy replica has held the live lease with the store
    /// and the lease calm: a janitor can act (None: none can now).
    pub fn janitor_able_since(&self, t: u64) -> Option<u64> {
        if !self.store_calm() || !self.lease_calm() {
            return None;
        }
        let holder = self.live_holder(t)?;
        let healthy = self.proc_of(holder)?.healthy_since?;
        Some(healthy.max(self.term_since).max(self.calm_since).max(self.lease_calm_since))
    }

    fn rep_mut(&mut self, name: &str) -> Option<&mut Proc> {
        rep_index(name).and_then(|i| self.reps.get_mut(i))
    }

    fn touch_health(&mut self, name: &str, t: u64, f: impl FnOnce(&mut Proc)) {
        if let Some(r) = self.rep_mut(name) {
            let was = r.healthy();
            f(r);
            if r.healthy() && !was {
                r.healthy_since = Some(t);
            } else if !r.healthy() {
                r.healthy_since = None;
            }
            if r.paused || r.partitioned || r.slow {
                r.shutdown_clean = false;
            }
        }
    }

    fn disturb_store(&mut self, on: bool, t: u64) {
        if on {
            self.store_disturbances += 1;
            for r in &mut self.reps {
                r.shutdown_clean = false;
            }
        } else {
            self.store_disturbances = self.store_disturbances.saturating_sub(1);
            if self.store_disturbances == 0 {
                self.calm_since = t;
            }
        }
    }

    fn disturb_cluster(&mut self, on: bool, t: u64) {
        if on {
            self.cluster_disturbances += 1;
        } else {
            self.cluster_disturbances = self.cluster_disturbances.saturating_sub(1);
            if self.cluster_disturbances == 0 {
                self.cluster_calm_since = t;
            }
        }
    }

    /// A fault on (`on`) or off for the operations `ops`.
    fn disturb_ops(&mut self, ops: &[&str], on: bool, t: u64) {
        self.disturb_cluster(on, t);
        for op in ops {
            let Some(op) = CLUSTER_OPS.iter().copied().find(|o| o == op) else { continue };
            let n = self.op_disturbances.entry(op).or_insert(0);
            if on {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.op_calm_since.insert(op, t);
                }
            }
        }
    }

    fn contact(&mut self, inst: u64, t: u64) {
        if let Some(&i) = self.inst_rep.get(&inst) {
            if self.reps[i].inst == Some(inst) {
                self.reps[i].last_contact = t;
            }
        }
    }

    /// The process on `name` is gone: the instance it ran, if any.
    fn kill(&mut self, name: &str, t: u64) -> Option<u64> {
        let r = self.rep_mut(name)?;
        let inst = r.inst.take();
        r.up = false;
        r.shutting_down = false;
        r.healthy_since = None;
        if let Some(inst) = inst {
            self.dead.entry(inst).or_insert(t);
        }
        inst
    }

    /// A pod or secret appeared: an orphan from the start if no live row
    /// owns it.
    fn note_object(&mut self, name: &str, worker: Option<&str>, t: u64) {
        let live = worker.and_then(|w| self.workers.get(w)).is_some_and(|r| !r.state.is_terminal());
        if live {
            self.orphans.remove(name);
        } else {
            self.orphans.insert(name.to_string(), t);
        }
    }

    fn note_pod_dead(&mut self, worker: &str, since: u64) {
        self.pod_dead.insert(worker.to_string(), since);
        if self.held.contains_key(worker) {
            self.held_dead.insert(worker.to_string());
        }
    }

    fn end_hold(&mut self, session: u64, worker: &str) {
        if let Some(h) = self.held.get_mut(worker) {
            h.remove(&session);
            if h.is_empty() {
                self.held.remove(worker);
                self.held_dead.remove(worker);
            }
        }
    }

    /// Apply one event to the model. Every kind of event belongs to exactly
    /// one family of facts, each applied by its own function: what the
    /// injector did to processes and the world, what the store committed,
    /// what the cluster did, what the clients saw.
    pub fn apply(&mut self, e: &Event) {
        self.apply_injected(e);
        self.apply_committed(e);
        self.apply_cluster(e);
        self.apply_client(e);
    }

    /// What the injector did: process starts, deaths and shutdowns, and the
    /// faults it put on and healed.
    fn apply_injected(&mut self, e: &Event) {
        let t = e.t;
        match &e.kind {
            EventKind::Started => {
                if let (Some(inst), Some(i)) = (e.inst, rep_index(&e.node)) {
                    if let Some(r) = self.reps.get_mut(i) {
                        self.inst_rep.insert(inst, i);
                        r.inst = Some(inst);
                        r.last_contact = t;
                    }
                }
                self.touch_health(&e.node, t, |r| {
                    r.up = true;
                    r.shutting_down = false;
                });
            }
            EventKind::Crash { target } | EventKind::SelfFenced { target } => {
                self.kill(target, t);
            }
            EventKind::Exited { target, graceful } => {
                // Killed at the end of its grace period, or with a fault in
                // its way, it may not have released anything; a clean exit
                // should have.
                let clean = *graceful && self.rep(target).is_some_and(|r| r.shutdown_clean);
                let inst = self.kill(target, t);
                if let (true, Some(inst)) = (clean, inst) {
                    self.clean_exit = Some((inst, t));
                }
            }
            EventKind::ShutdownRequested { target } => {
                if let Some(inst) = self.rep(target).and_then(|r| r.inst) {
                    self.shutdown_asked.entry(inst).or_insert(t);
                }
                let calm = self.store_calm();
                if let Some(r) = self.rep_mut(target) {
                    r.shutdown_clean = r.healthy() && calm;
                }
                self.touch_health(target, t, |r| r.shutting_down = true);
            }
            EventKind::Pause { target, .. } => self.touch_health(target, t, |r| {
                r.paused = true;
                r.paused_since = Some(t);
            }),
            EventKind::Resume { target } => {
                let since = self.rep(target).and_then(|r| r.paused_since);
                if let Some(since) = since {
                    self.longest_pause_us = self.longest_pause_us.max(t - since);
                }
                self.touch_health(target, t, |r| {
                    r.paused = false;
                    r.paused_since = None;
                })
            }
            EventKind::Partition { target } => self.touch_health(target, t, |r| r.partitioned = true),
            EventKind::PartitionHealed { target } => self.touch_health(target, t, |r| r.partitioned = false),
            EventKind::ClusterPartition { target } => self.touch_health(target, t, |r| r.cluster_cut = true),
            EventKind::ClusterPartitionHealed { target } => self.touch_health(target, t, |r| r.cluster_cut = false),
            EventKind::StoreSlow { target, ms } => self.touch_health(target, t, |r| {
                r.slow = true;
                r.slow_ms = *ms;
            }),
            EventKind::StoreSlowHealed { target } => {
                self.touch_health(target, t, |r| r.slow = false);
                // Requests it sent while slowed still land up to the extra
                // latency after the heal: it is healthy once they have.
                if let Some(r) = self.rep_mut(target) {
                    let tail = t + r.slow_ms * 1000;
                    r.healthy_since = r.healthy_since.map(|h| h.max(tail));
                }
            }
            EventKind::StoreFaults { .. } | EventKind::StoreStall { .. } => self.disturb_store(true, t),
            EventKind::StoreFaultsHealed | EventKind::StoreStallHealed => self.disturb_store(false, t),
            EventKind::LeaseOutage { .. } => {
                self.lease_outage = true;
                for r in &mut self.reps {
                    r.shutdown_clean = false;
                }
            }
            EventKind::LeaseOutageHealed => {
                self.lease_outage = false;
                self.lease_calm_since = t;
            }
            EventKind::PodFailures { .. } => self.disturb_ops(&["create_pod"], true, t),
            EventKind::PodFailuresHealed => self.disturb_ops(&["create_pod"], false, t),
            EventKind::ClusterSlow { .. } => self.disturb_ops(&CLUSTER_OPS, true, t),
            EventKind::ClusterSlowHealed => self.disturb_ops(&CLUSTER_OPS, false, t),
            EventKind::ClusterOpsFault { ops, .. } | EventKind::ClusterOpsHealed { ops } => {
                let on = matches!(e.kind, EventKind::ClusterOpsFault { .. });
                let kinds = ClusterOps::ALL.iter().find(|o| o.name() == ops).map_or(&[][..], |o| o.requests());
                self.disturb_ops(kinds, on, t);
            }
            EventKind::QuietPeriod => self.quiet_since = Some(t),
            _ => {}
        }
    }

    /// What the store committed or refused; any request that reached it
    /// shows that its sender could reach the store.
    fn apply_committed(&mut self, e: &Event) {
        let t = e.t;
        match &e.kind {
            EventKind::StoreRead { from } | EventKind::StoreFailed { from, .. } => self.contact(*from, t),
            EventKind::EffectWrite { from, .. } => self.contact(*from, t),
            EventKind::LeaseWrite { from, applied, lease, .. } => {
                self.contact(*from, t);
                if let (true, Some(new)) = (applied, lease) {
                    if let Some(old) = &self.lease {
                        if let Some(prev) = old.holder {
                            if new.holder != Some(prev) || new.epoch != old.epoch {
                                self.ceased.insert(prev, t.min(old.expires_at_ms * 1000));
                            }
                        }
                    }
                    if self.lease.as_ref().is_none_or(|old| (old.holder, old.epoch) != (new.holder, new.epoch)) {
                        self.term_since = t;
                    }
                    if new.holder.is_none() {
                        self.released_at = t;
                    }
                    self.lease = Some(new.clone());
                }
            }
            EventKind::WorkerWrite { op, id, applied: true, worker: Some(after), .. } => {
                let since = match self.workers.get(id) {
                    Some(w) if w.state == after.state && *op != WorkerOp::Insert => w.since,
                    _ => t,
                };
                let (pod, secret) = (format!("pod-{id}"), format!("secret-{id}"));
                if after.state.is_terminal() {
                    if self.pods.contains_key(&pod) {
                        self.orphans.entry(pod).or_insert(t);
                    }
                    if self.secrets.contains(&secret) {
                        self.orphans.entry(secret).or_insert(t);
                    }
                } else {
                    self.orphans.remove(&pod);
                    self.orphans.remove(&secret);
                }
                if let (Lifecycle::Hot, Some(s)) = (after.state, after.session) {
                    self.bindings.insert(s, (id.clone(), after.owner));
                }
                if let Some(old) = self.workers.get(id).filter(|w| !w.state.is_terminal()) {
                    let n = self.live_by_org.get_mut(&old.org).expect("a live worker's org is counted");
                    *n -= 1;
                    if *n == 0 {
                        self.live_by_org.remove(&old.org);
                    }
                    self.live_all -= 1;
                }
                if !after.state.is_terminal() {
                    *self.live_by_org.entry(after.org.clone()).or_default() += 1;
                    self.live_all += 1;
                }
                self.workers.insert(
                    id.clone(),
                    Row {
                        org: after.org.clone(),
                        state: after.state,
                        owner: after.owner,
                        epoch: after.epoch,
                        session: after.session,
                        since,
                    },
                );
            }
            EventKind::SlotWrite { from, op, worker, result, org, .. } => match (op, result) {
                (SlotOp::Reserve, SlotReply::Reserved) => {
                    let org = org.clone().unwrap_or_default();
                    *self.slots_by_org.entry(org.clone()).or_default() += 1;
                    if let Some(old) = self.slots.insert(worker.clone(), SlotHeld { reserver: *from, org, at: t }) {
                        self.uncount_slot(&old.org);
                    }
                }
                (SlotOp::Free, SlotReply::Freed) => {
                    if let Some(old) = self.slots.remove(worker) {
                        self.uncount_slot(&old.org);
                    }
                }
                _ => {}
            },
            EventKind::InstanceRegistered { from } | EventKind::InstanceHeartbeat { from } => {
                self.beats.insert(*from, t);
            }
            EventKind::InstanceDraining { from } => {
                self.draining.insert(*from);
            }
            _ => {}
        }
    }

    /// What the cluster did to pods and secrets.
    fn apply_cluster(&mut self, e: &Event) {
        let t = e.t;
        match &e.kind {
            EventKind::PodCreated { name, placeholder: true, .. } => {
                self.placeholders.insert(name.clone(), t);
            }
            EventKind::PodCreated { name, .. } => {
                self.created.insert(name.clone(), t);
                self.note_object(name, worker_of_pod(name), t);
                self.pods.insert(name.clone(), None);
                self.pods_gone.remove(name);
                if let Some(worker) = worker_of_pod(name) {
                    self.pod_dead.remove(worker);
                    self.held_dead.remove(worker);
                }
                self.failed_then_gone.remove(name);
            }
            EventKind::PodDeleted { name, .. } => {
                self.placeholders.remove(name);
                self.orphans.remove(name);
                if let Some(failed) = self.pods.remove(name) {
                    // A pod that failed first stays dead since its failure.
                    self.pods_gone.insert(name.clone(), failed.unwrap_or(t));
                    if let Some(worker) = worker_of_pod(name) {
                        self.note_pod_dead(worker, failed.unwrap_or(t));
                    }
                    if failed.is_some() {
                        self.failed_then_gone.insert(name.clone());
                    }
                }
            }
            EventKind::DeleteRefused { name, .. } => {
                self.refused.insert(name.clone());
            }
            EventKind::DeleteRefusalHealed { name } => {
                self.refused.remove(name);
                self.refusal_healed.insert(name.clone(), t);
            }
            EventKind::PodDied { name } => {
                if let Some(failed) = self.pods.get_mut(name) {
                    let since = *failed.get_or_insert(t);
                    if let Some(worker) = worker_of_pod(name) {
                        self.note_pod_dead(worker, since);
                    }
                }
            }
            EventKind::SecretCreated { name, .. } => {
                self.created.insert(name.clone(), t);
                self.note_object(name, worker_of_secret(name), t);
                self.secrets.insert(name.clone());
            }
            EventKind::SecretDeleted { name, .. } => {
                self.orphans.remove(name);
                self.secrets.remove(name);
            }
            _ => {}
        }
    }

    /// What the clients saw.
    fn apply_client(&mut self, e: &Event) {
        let t = e.t;
        match &e.kind {
            EventKind::SessionRequested { session, org, replica } => {
                let server = self.rep(replica).and_then(|r| r.inst);
                self.sessions.insert(
                    *session,
                    Session {
                        client: e.node.clone(),
                        org: org.clone(),
                        server,
                        requested_at: t,
                        answer: Answer::Pending,
                        reconnecting: None,
                    },
                );
            }
            EventKind::SessionStarted { session, worker } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.answer = Answer::Holding { worker: worker.clone(), at: t };
                }
                self.held.entry(worker.clone()).or_default().insert(*session);
                if self.pod_dead.contains_key(worker) {
                    self.held_dead.insert(worker.clone());
                }
            }
            EventKind::SessionEnded { session, worker } | EventKind::SessionLost { session, worker, .. } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.answer = Answer::Ended { worker: worker.clone() };
                    s.reconnecting = None;
                }
                self.end_hold(*session, worker);
            }
            EventKind::SessionReconnecting { session, .. } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.reconnecting.get_or_insert(t);
                }
            }
            EventKind::SessionResumed { session, replica, .. } => {
                let server = self.rep(replica).and_then(|r| r.inst);
                if let Some(s) = self.sessions.get_mut(session) {
                    s.server = server;
                    s.reconnecting = None;
                }
            }
            EventKind::SessionRefused { session, .. } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.answer = Answer::Refused;
                }
            }
            EventKind::SessionTimedOut { session } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.answer = Answer::TimedOut;
                }
            }
            _ => {}
        }
    }

    /// Capacity slots the store holds in `org`.
    pub fn slot_count(&self, org: &str) -> usize {
        self.slots_by_org.get(org).copied().unwrap_or(0)
    }

    fn uncount_slot(&mut self, org: &str) {
        let n = self.slots_by_org.get_mut(org).expect("a held slot's org is counted");
        *n -= 1;
        if *n == 0 {
            self.slots_by_org.remove(org);
        }
    }

    /// Live (not retired or lost) workers, in all or in one org.
    pub fn live_count(&self, org: Option<&str>) -> usize {
        match org {
            Some(o) => self.live_by_org.get(o).copied().unwrap_or(0),
            None => self.live_all,
        }
    }

    /// When `worker`'s pod failed or went, as the cluster reported it.
    pub fn pod_dead_since(&self, worker: &str) -> Option<u64> {
        self.pod_dead.get(worker).copied()
    }

    /// The held workers whose pods are dead, in worker order, with the
    /// sessions holding each and since when the pod has been dead.
    pub fn held_with_dead_pods(&self) -> impl Iterator<Item = (&String, &BTreeSet<u64>, u64)> + '_ {
        self.held_dead.iter().filter_map(|w| Some((w, self.held.get(w)?, *self.pod_dead.get(w)?)))
    }

    /// The sessions whose clients hold `worker` now.
    pub fn holders(&self, worker: &str) -> impl Iterator<Item = (u64, &Session)> + '_ {
        self.held.get(worker).into_iter().flatten().filter_map(|s| self.sessions.get(s).map(|x| (*s, x)))
    }
}
