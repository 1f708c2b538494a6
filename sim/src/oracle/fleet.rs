//! The worker fleet's invariants: S3 fencing, S4 caps, S5 no live session
//! lost (safety, on every event) and L2 no idle leak, L3 progress
//! (liveness).
//!
//! The model is rebuilt from what the store and the cluster did and what
//! clients saw. A worker is *idle* from the moment its client ended the
//! session, or from when it was durably parked hot-idle if that came later
//! (so a worker stranded hot by a lost write still counts as idle, while
//! its TTL restarts where the store's does). Pod and secret names follow core's
//! convention (`pod-<worker>`, `secret-<worker>`).

use super::model::World as Model;
use super::{secs, violation, Violation};
use haywire_core::worker::WorkerState as Lifecycle;
use haywire_traces::{Event, EventKind};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Fleet bounds, from the run's options (µs where times).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetParams {
    pub org_cap: u32,
    pub global_cap: u32,
    pub ttl_us: u64,
    pub reap_us: u64,
    pub dead_after_us: u64,
    /// The registry's threshold itself, in store (= simulated) time: an
    /// instance with no heartbeat taken for this long is dead.
    pub dead_threshold_us: u64,
    pub stale_spawn_us: u64,
    pub min_hot_idle: u32,
    /// Slack for a reap pass's own calls and clock drift.
    pub slack_us: u64,
    /// "At once": the few calls that follow a step in a calm world.
    pub quick_us: u64,
}

#[derive(Clone, Debug)]
struct Worker {
    org: String,
    state: Lifecycle,
    owner: u64,
    epoch: u64,
    session: Option<u64>,
    /// When its last session ended (None: serving, or never served).
    idle_since: Option<u64>,
    /// Who owned it when it went idle: the instance whose floor it may be
    /// and whose death orphans it (a reaper taking it over does not make it
    /// the reaper's idle worker).
    idle_owner: u64,
    /// When its drain began, and who began it (a reaper finishing the
    /// drain of a dead owner does not restart the clock).
    draining_since: Option<(u64, u64)>,
    /// When it became retired or lost, and who owned it then.
    ended: Option<(u64, u64)>,
}

#[derive(Clone, Debug)]
struct Session {
    /// The instance serving it (the replica's incarnation at request time).
    server: Option<u64>,
    requested_at: u64,
    live: bool,
    /// The client got its worker.
    started: bool,
}

#[derive(Default)]
pub struct Fleet {
    workers: BTreeMap<String, Worker>,
    /// worker → (reserver, reserved at)
    slots: BTreeMap<String, (u64, u64)>,
    pods: BTreeSet<String>,
    secrets: BTreeSet<String>,
    sessions: BTreeMap<u64, Session>,
    /// When each dead instance died.
    deaths: BTreeMap<u64, u64>,
    /// When the store last took each instance's registration or heartbeat.
    last_beat: BTreeMap<u64, u64>,
    /// Instances whose heartbeat once lapsed past the threshold: dead to
    /// the fleet from then on, even if their heartbeats resume (reapers
    /// may already have taken what they owned).
    lapsed: BTreeSet<u64>,
    /// When each worker was last one of its owner's floor: a worker that
    /// stops being the floor (a newer one went idle) is due one reap cycle
    /// later, not at once.
    floor_seen: BTreeMap<String, u64>,
    quiet_since: Option<u64>,
    last_tick: u64,
    /// Idle worker-time beyond TTL + one reap interval (+ slack), over the
    /// whole run and after the quiet period settled.
    pub overdue_us: u64,
    pub overdue_quiet_us: u64,
    cluster_disturbances: u32,
    cluster_calm_since: u64,
}

fn parse(state: &str) -> Lifecycle {
    state.parse().unwrap_or(Lifecycle::Lost)
}

impl Fleet {
    fn live_count(&self, org: Option<&str>) -> usize {
        self.workers.values().filter(|w| !w.state.is_terminal() && org.is_none_or(|o| w.org == o)).count()
    }

    /// Judge `e` (before the model applies it) and apply it.
    pub fn observe(&mut self, p: &FleetParams, m: &Model, e: &Event) -> Option<Violation> {
        let t = e.t;
        match &e.kind {
            EventKind::WorkerWrite { from, op, id, applied: true, as_owner, as_epoch, worker: Some(after), .. } => {
                let new_state = parse(&after.state);
                if op == "insert" {
                    self.workers.insert(
                        id.clone(),
                        Worker {
                            org: after.org.clone(),
                            state: new_state,
                            owner: after.owner,
                            epoch: after.epoch,
                            session: after.session,
                            idle_since: None,
                            idle_owner: after.owner,
                            draining_since: None,
                            ended: None,
                        },
                    );
                    let (org_n, all_n) = (self.live_count(Some(&after.org)), self.live_count(None));
                    if org_n > p.org_cap as usize || all_n > p.global_cap as usize {
                        return violation(
                            "S4",
                            t,
                            format!(
                                "caps: inserting {id} makes {org_n} live workers in {} (cap {}) and {all_n} in all (cap {})",
                                after.org, p.org_cap, p.global_cap
                            ),
                        );
                    }
                    return None;
                }
                let Some(w) = self.workers.get(id).cloned() else {
                    return violation("S3", t, format!("fencing: {op} of {id}, a worker never inserted"));
                };
                // S3: the write was made as the current (owner, epoch), and
                // the epoch only grows (by one per claim).
                if (*as_owner, *as_epoch) != (Some(w.owner), Some(w.epoch)) {
                    return violation(
                        "S3",
                        t,
                        format!(
                            "fencing: {op} of {id} by i{from} as (i{}, {}) accepted while it is owned by (i{}, {})",
                            as_owner.unwrap_or(0),
                            as_epoch.unwrap_or(0),
                            w.owner,
                            w.epoch
                        ),
                    );
                }
                let want_epoch = if op == "claim" { w.epoch + 1 } else { w.epoch };
                if after.epoch != want_epoch || !w.state.can_become(new_state) {
                    return violation(
                        "S3",
                        t,
                        format!(
                            "fencing: {op} of {id} took it from {} at epoch {} to {} at epoch {}",
                            w.state, w.epoch, new_state, after.epoch
                        ),
                    );
                }
                // S5: no live session's worker is drained, retired or lost
                // while the instance serving it lives (its own failed spawn
                // aside: that session gets an error).
                if matches!(new_state, Lifecycle::Draining | Lifecycle::Retired | Lifecycle::Lost) && w.state != new_state {
                    if let Some(s) = w.session.and_then(|s| self.sessions.get(&s).map(|x| (s, x.clone()))) {
                        let (sid, sess) = s;
                        // Alive as DESIGN.md's registry defines it: not
                        // exited, and heartbeating within the threshold, ever
                        // since it registered. An instance cut off from the
                        // store past it is dead to the fleet, and its workers
                        // are orphans.
                        let server_alive = sess.server.is_some_and(|i| {
                            !m.dead.contains(&i)
                                && !self.lapsed.contains(&i)
                                && self.last_beat.get(&i).is_some_and(|&b| t < b + p.dead_threshold_us)
                        });
                        // Before the client has its worker, the server may
                        // fail its own spawn (the client gets an error).
                        let own_failed_spawn = Some(*from) == sess.server && !sess.started;
                        if sess.live && server_alive && !own_failed_spawn {
                            return violation(
                                "S5",
                                t,
                                format!(
                                    "live session lost: {id} ({}) serving live session {sid} of i{} was moved to {new_state} by i{from}",
                                    w.state,
                                    sess.server.unwrap_or(0)
                                ),
                            );
                        }
                    }
                }
                let entry = self.workers.get_mut(id).expect("checked above");
                // Parked durably: its TTL starts now (as the store stamps it),
                // whether or not a client session was seen to end.
                if new_state == Lifecycle::HotIdle && w.state != Lifecycle::HotIdle {
                    entry.idle_since = Some(t);
                    entry.idle_owner = after.owner;
                }
                if new_state == Lifecycle::Draining && w.state != Lifecycle::Draining {
                    entry.draining_since = Some((t, w.owner));
                }
                entry.state = new_state;
                entry.owner = after.owner;
                entry.epoch = after.epoch;
                entry.session = after.session;
                if new_state.is_terminal() {
                    entry.ended = Some((t, after.owner));
                }
                None
            }
            EventKind::SlotWrite { from, op, worker, result, .. } => {
                match (op.as_str(), result.as_str()) {
                    ("reserve", "Reserved") => {
                        self.slots.insert(worker.clone(), (*from, t));
                    }
                    ("free", "Freed") => {
                        self.slots.remove(worker);
                    }
                    _ => {}
                }
                None
            }
            EventKind::InstanceRegistered { from } | EventKind::InstanceHeartbeat { from } => {
                if self.last_beat.get(from).is_some_and(|&b| t >= b + p.dead_threshold_us) {
                    self.lapsed.insert(*from);
                }
                self.last_beat.insert(*from, t);
                None
            }
            EventKind::PodCreated { name, .. } => {
                self.pods.insert(name.clone());
                None
            }
            EventKind::PodDeleted { name, .. } => {
                self.pods.remove(name);
                None
            }
            EventKind::SecretCreated { name, .. } => {
                self.secrets.insert(name.clone());
                None
            }
            EventKind::SecretDeleted { name, .. } => {
                self.secrets.remove(name);
                None
            }
            EventKind::SessionRequested { session, replica, .. } => {
                let server = super::model::rep_index(replica).and_then(|i| m.reps.get(i)).and_then(|r| r.inst);
                self.sessions.insert(*session, Session { server, requested_at: t, live: true, started: false });
                None
            }
            EventKind::SessionStarted { session, worker } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.started = true;
                }
                if let Some(w) = self.workers.get_mut(worker) {
                    w.idle_since = None;
                }
                None
            }
            EventKind::SessionEnded { session, worker } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.live = false;
                }
                if let Some(w) = self.workers.get_mut(worker) {
                    w.idle_since = Some(t);
                    w.idle_owner = w.owner;
                }
                None
            }
            EventKind::SessionRefused { session, .. } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.live = false;
                }
                None
            }
            EventKind::SessionTimedOut { session } => {
                let Some(s) = self.sessions.get_mut(session) else { return None };
                s.live = false;
                let s = s.clone();
                // L3: a replica that stayed up and healthy, with a healthy
                // store and cluster, answers (worker or error) in time.
                let server_ok = s.server.is_some_and(|inst| {
                    !m.dead.contains(&inst)
                        && m.reps.iter().any(|r| r.inst == Some(inst) && r.healthy_since.is_some_and(|h| h <= s.requested_at))
                });
                let calm = m.store_calm() && m.calm_since <= s.requested_at && self.cluster_calm(s.requested_at);
                if server_ok && calm {
                    return violation(
                        "L3",
                        t,
                        format!(
                            "progress: session {session} asked i{} at {} and got neither a worker nor an error",
                            s.server.unwrap_or(0),
                            secs(s.requested_at)
                        ),
                    );
                }
                None
            }
            EventKind::PodFailures { .. } | EventKind::ClusterSlow { .. } => {
                self.cluster_disturbances += 1;
                None
            }
            EventKind::PodFailuresHealed | EventKind::ClusterSlowHealed => {
                self.cluster_disturbances = self.cluster_disturbances.saturating_sub(1);
                if self.cluster_disturbances == 0 {
                    self.cluster_calm_since = t;
                }
                None
            }
            EventKind::QuietPeriod => {
                self.quiet_since = Some(t);
                None
            }
            _ => None,
        }
    }

    fn cluster_calm(&self, since: u64) -> bool {
        self.cluster_disturbances == 0 && self.cluster_calm_since <= since
    }

    /// Note process deaths (the model has already applied the event).
    pub fn note_death(&mut self, inst: u64, t: u64) {
        self.deaths.entry(inst).or_insert(t);
    }

    /// The idle workers the floors may keep past their TTL: each live
    /// instance's newest `min_hot_idle` idle ones (hot or hot-idle; dead
    /// instances keep none). Any floor the reapers keep is within this.
    fn floor(&self, p: &FleetParams, m: &Model) -> BTreeSet<&String> {
        let mut by_owner: BTreeMap<u64, Vec<(u64, &String)>> = BTreeMap::new();
        for (id, w) in &self.workers {
            let Some(s) = w.idle_since else { continue };
            if matches!(w.state, Lifecycle::Hot | Lifecycle::HotIdle) && !m.dead.contains(&w.idle_owner) {
                by_owner.entry(w.idle_owner).or_default().push((s, id));
            }
        }
        let mut kept = BTreeSet::new();
        for (_, mut idle) in by_owner {
            idle.sort_by(|a, b| b.cmp(a));
            kept.extend(idle.into_iter().take(p.min_hot_idle as usize).map(|(_, id)| id));
        }
        kept
    }

    /// When a retirement is due, the clock running from `base` with the
    /// world's excuses: it starts only once `owner` (or, if it died, some
    /// replica) can act and the store and cluster are calm. `None`: excused
    /// for now (the owner is alive but cut off, paused or slowed).
    fn due(&self, p: &FleetParams, m: &Model, owner: u64, base: u64) -> Option<u64> {
        let mut start = base;
        if let Some(&died) = self.deaths.get(&owner) {
            start = start.max(died + p.dead_after_us);
            start = start.max(m.reps.iter().filter_map(|r| r.healthy_since).min()?);
        } else {
            let owner = m.reps.iter().find(|r| r.inst == Some(owner))?;
            start = start.max(owner.healthy_since?);
        }
        if !m.store_calm() || self.cluster_disturbances > 0 {
            return None;
        }
        Some(start.max(m.calm_since).max(self.cluster_calm_since) + 2 * p.reap_us + p.slack_us)
    }

    /// Time-driven checks: idle workers retired in time (L2), slots of
    /// ended workers freed (L2), and the overdue idle time measured.
    pub fn check_time(&mut self, p: &FleetParams, m: &Model, t: u64) -> Option<Violation> {
        let dt = t.saturating_sub(self.last_tick);
        self.last_tick = t;
        let floor: BTreeSet<String> = self.floor(p, m).into_iter().cloned().collect();
        for id in &floor {
            self.floor_seen.insert(id.clone(), t);
        }
        let idle: Vec<(&String, &Worker, u64)> = self
            .workers
            .iter()
            .filter(|(id, w)| matches!(w.state, Lifecycle::Hot | Lifecycle::HotIdle) && !floor.contains(*id))
            .filter_map(|(id, w)| w.idle_since.map(|s| (id, w, s)))
            .collect();
        // When each idle worker's TTL ran out (or it left its owner's floor).
        let expired = |id: &String, s: u64| (s + p.ttl_us).max(self.floor_seen.get(id).copied().unwrap_or(0));
        // The measure: idle beyond TTL + one reap interval (+ slack), no
        // excuses for faults.
        let over = idle.iter().filter(|(id, _, s)| t > expired(id, *s) + p.reap_us + p.slack_us).count() as u64;
        self.overdue_us += over * dt;
        if let Some(q) = self.quiet_since {
            let settled = q + p.dead_after_us + 2 * p.reap_us + p.slack_us;
            let over_quiet = idle
                .iter()
                .filter(|(id, _, s)| t > (expired(id, *s) + p.reap_us + p.slack_us).max(settled))
                .count() as u64;
            self.overdue_quiet_us += over_quiet * dt;
        }
        // The invariant: overdue with the world's excuses.
        let mut late: Vec<(u64, &String)> = idle
            .iter()
            .filter_map(|(id, w, s)| {
                let base = expired(id, *s);
                // Taken over by an instance that then died: it waits for
                // that death to be noticed, like any orphan.
                let owner = if self.deaths.contains_key(&w.owner) { w.owner } else { w.idle_owner };
                self.due(p, m, owner, base).filter(|d| t > *d).map(|d| (d, *id))
            })
            .collect();
        if !late.is_empty() {
            late.sort();
            let (d, id) = late[0];
            let w = &self.workers[id];
            return violation(
                "L2",
                t,
                format!(
                    "no idle leak: {} workers idle past TTL + reap interval beyond their owners' floors; {id} ({}, owner \
                     i{}) idle since {} was due by {}",
                    late.len(),
                    w.state,
                    w.owner,
                    secs(w.idle_since.unwrap_or(0)),
                    secs(d)
                ),
            );
        }
        // A drain, once begun, finishes (or is finished by a reaper).
        for (id, w) in &self.workers {
            let (Lifecycle::Draining, Some((since, by))) = (w.state, w.draining_since) else { continue };
            if let Some(d) = self.due(p, m, by, since).filter(|d| t > *d) {
                return violation(
                    "L2",
                    t,
                    format!("no idle leak: the drain of {id} begun by i{by} at {} was due to end by {}", secs(since), secs(d)),
                );
            }
        }
        // Slots of ended workers are freed at once by an owner that lives
        // and can reach a calm store; if anything disturbed it since, by its
        // next reap pass once it can. (Cluster trouble only slows the pod
        // and secret deletes before the free, each bounded by a call timeout.)
        for worker in self.slots.keys() {
            let Some(w) = self.workers.get(worker) else { continue };
            let Some((ended, owner)) = w.ended else { continue };
            if self.deaths.contains_key(&owner) || !m.store_calm() {
                continue;
            }
            let Some(healthy) = m.reps.iter().find(|r| r.inst == Some(owner)).and_then(|r| r.healthy_since) else {
                continue;
            };
            let calm_from = m.calm_since.max(healthy);
            // Calm for a while before it ended too: the calls that ended it
            // were not caught in the disturbance (a stalled write can land
            // after its caller gave up on it).
            let deadline =
                if calm_from + p.quick_us <= ended { ended + p.quick_us } else { calm_from + p.reap_us + p.slack_us };
            if t > deadline {
                return violation(
                    "L2",
                    t,
                    format!(
                        "no stray slot: {worker} ended at {} but its slot is still held (owner i{owner} is alive)",
                        secs(ended)
                    ),
                );
            }
        }
        None
    }

    /// After the quiet period: nothing leaked.
    pub fn finish(&self, p: &FleetParams, m: &Model, t: u64) -> Option<Violation> {
        let live: Vec<(&String, &Worker)> = self.workers.iter().filter(|(_, w)| !w.state.is_terminal()).collect();
        let live_pods: BTreeSet<String> = live.iter().map(|(id, _)| format!("pod-{id}")).collect();
        let live_secrets: BTreeSet<String> = live.iter().map(|(id, _)| format!("secret-{id}")).collect();
        let stray_pods: Vec<&String> = self.pods.symmetric_difference(&live_pods).collect();
        if !stray_pods.is_empty() {
            return violation("L2", t, format!("pods = live rows: these differ at the end: {stray_pods:?}"));
        }
        let orphan_secrets: Vec<&String> = self.secrets.difference(&live_secrets).collect();
        if !orphan_secrets.is_empty() {
            return violation("L2", t, format!("no orphan secret: {orphan_secrets:?} outlived their workers"));
        }
        let dead_owned: Vec<&String> = live.iter().filter(|(_, w)| m.dead.contains(&w.owner)).map(|(id, _)| *id).collect();
        if !dead_owned.is_empty() {
            return violation("L2", t, format!("nothing owned by a dead instance: {dead_owned:?} still are"));
        }
        for (worker, (reserver, at)) in &self.slots {
            let live_row = self.workers.get(worker).is_some_and(|w| !w.state.is_terminal());
            // A slot with no live worker may wait for the slow sweep only if
            // whoever should have freed it died.
            let owner = self.workers.get(worker).map(|w| w.owner).unwrap_or(*reserver);
            let excused = self.deaths.contains_key(&owner) && t < at + p.stale_spawn_us + 2 * p.reap_us;
            if !live_row && !excused {
                return violation("L2", t, format!("no stray slot: {worker} holds a slot with no live worker"));
            }
        }
        if self.overdue_quiet_us > 0 {
            return violation(
                "L2",
                t,
                format!(
                    "no idle leak: {} idle worker-seconds beyond TTL + reap interval after the quiet period settled",
                    self.overdue_quiet_us as f64 / 1e6
                ),
            );
        }
        None
    }
}
