//! Idle workers: L2 no idle leak, both ways.
//!
//! A worker is *idle* from the moment its client ended the session, or from
//! when the store parked it hot-idle if that came later (so a worker
//! stranded hot by a lost write still counts, while its TTL restarts where
//! the store's does). Each live instance may keep its newest `min_hot_idle`
//! idle workers (its floor).
//!
//! - Timely: an idle worker beyond its owner's floor starts draining within
//!   TTL + one reap interval + the RPC slack of when its TTL ran out (or it
//!   left the floor). The clock runs only while a reaper responsible for it
//!   can act: its owner up and able to reach a calm store, or (for a dead
//!   owner, once the death is visible) any healthy replica, or a healthy
//!   leader's janitor. Nothing else excuses it.
//! - Premature: no reaper drains a hot-idle worker younger than its TTL, or
//!   one inside a live owner's floor (an owner's own graceful shutdown aside).
//! - A drain ends; the slot of an ended worker is freed at once in a calm
//!   world; at the end pods = live rows, no orphan secret, no slot without a
//!   live worker, nothing owned by a dead instance.
//! - Measured: idle worker-time beyond TTL + one reap interval + slack, over
//!   the run and after the quiet period settled (the latter must be zero).

use super::floor::Floors;
use super::model::Model;
use super::{secs, violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind, Lifecycle, SlotOp, SlotReply};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
struct IdleWorker {
    /// When it became idle (None: serving, or never served).
    since: Option<u64>,
    /// Who owned it when it went idle: the instance whose floor it may be
    /// and whose death orphans it (a reaper taking it over does not make it
    /// the reaper's idle worker; a replica claiming it, still idle, from the
    /// shared pool does).
    owner: u64,
    /// Since when `owner` has owned it (a shared claim moves it): no
    /// reaper of the new owner could act on it before.
    owned_since: u64,
    /// When its drain began, and who owned it then.
    draining: Option<(u64, u64)>,
    /// Last time it was one of its owner's floor, and last time it was seen
    /// idle outside it, as of the mark before its current `marked` began
    /// (read them through [`IdleCheck::in_floor_at`] and
    /// [`IdleCheck::outside_floor_at`]).
    in_floor_at: Option<u64>,
    outside_floor_at: Option<u64>,
    /// What the last mark saw: inside its owner's floor (true), idle
    /// outside it (false), or not idle (None). It holds until one of its
    /// inputs changes, so it is the same at every mark since.
    marked: Option<bool>,
}

#[derive(Default)]
pub struct IdleCheck {
    /// Live workers only: ended ones move to `ended`.
    w: BTreeMap<String, IdleWorker>,
    /// The workers of `w` with an idle time, by it: a tick looks only at
    /// those idle long enough to be overdue, not at every live worker
    /// (docs/design.md §12).
    by_since: BTreeSet<(u64, String)>,
    /// The workers of `w` whose drain began.
    draining: BTreeSet<String>,
    /// When each worker became retired or lost, and who owned it then.
    ended: BTreeMap<String, (u64, u64)>,
    /// Ended workers that may still hold a slot (ended with one, or one
    /// reserved after they ended): the only slots a stray-slot check can
    /// blame. Those found freed are dropped at the next tick.
    ended_holding: BTreeSet<String>,
    /// The floors as of the last mark, and the workers whose inputs (idle
    /// time, row state or owner, presence) changed since; the owners whose
    /// death it has seen.
    floors: Floors,
    dirty: BTreeSet<String>,
    dead_seen: BTreeSet<u64>,
    last_mark: u64,
    last_tick: u64,
    overdue_us: u64,
    overdue_quiet_us: u64,
}

impl IdleCheck {
    pub fn overdue(&self) -> (u64, u64) {
        (self.overdue_us, self.overdue_quiet_us)
    }

    /// Set when `id` (in `w`) became idle (None: it is not), keeping
    /// `by_since` in step.
    fn set_since(&mut self, id: &str, since: Option<u64>) {
        let Some(w) = self.w.get_mut(id) else { return };
        if w.since == since {
            return;
        }
        if let Some(old) = w.since {
            self.by_since.remove(&(old, id.to_string()));
        }
        if let Some(new) = since {
            self.by_since.insert((new, id.to_string()));
        }
        w.since = since;
    }

    /// Idle workers outside their owners' floors that have been idle since
    /// before `t - horizon_us`: every worker that can be overdue at `t`, as
    /// its expiry is at least its idle time plus the TTL.
    fn idle_before<'a>(&'a self, m: &'a Model, t: u64, horizon_us: u64) -> Vec<(&'a String, &'a IdleWorker, u64)> {
        let Some(before) = t.checked_sub(horizon_us) else { return Vec::new() };
        // Floors first: most workers idle this long are their owners'
        // floor, and membership is one lookup against the two below.
        self.by_since
            .range(..(before, String::new()))
            .filter(|(_, id)| !self.floors.contains(id))
            .filter_map(|(_, id)| {
                let (id, w) = self.w.get_key_value(id)?;
                Some((id, w, Self::idle_since(m, id, w)?))
            })
            .collect()
    }

    /// When `w` became idle, if it is idle now.
    fn idle_since(m: &Model, id: &str, w: &IdleWorker) -> Option<u64> {
        let since = w.since?;
        m.workers.get(id).is_some_and(|r| matches!(r.state, Lifecycle::Hot | Lifecycle::HotIdle)).then_some(since)
    }

    /// The last time `w` was seen in its owner's floor: at the last mark if
    /// it is there still.
    fn in_floor_at(&self, w: &IdleWorker) -> Option<u64> {
        if w.marked == Some(true) {
            Some(self.last_mark)
        } else {
            w.in_floor_at
        }
    }

    /// The last time `w` was seen idle outside its owner's floor.
    fn outside_floor_at(&self, w: &IdleWorker) -> Option<u64> {
        if w.marked == Some(false) {
            Some(self.last_mark)
        } else {
            w.outside_floor_at
        }
    }

    /// Since when a reaper responsible for `owner`'s workers has been able
    /// to act (None: none can now): the owner itself, up and reaching a calm
    /// store; for a dead owner, once its death is visible, any healthy
    /// replica; or, if `janitor_can` (the store shows the worker hot-idle,
    /// which a janitor can see), a healthy leader's janitor.
    fn able_since(p: &OracleParams, m: &Model, owner: u64, t: u64, janitor_can: bool) -> Option<u64> {
        if !m.store_calm() {
            return None;
        }
        let own = match m.dead.get(&owner) {
            Some(&died) => m.any_healthy_since().map(|h| h.max(died + p.fleet.dead_after_us)),
            None => m.proc_of(owner).and_then(|r| r.healthy_since),
        };
        let janitor = m.janitor_able_since(t).filter(|_| janitor_can).map(|j| match m.dead.get(&owner) {
            Some(&died) => j.max(died + p.fleet.dead_after_us),
            None => j,
        });
        let since = own.into_iter().chain(janitor).min()?;
        Some(since.max(m.calm_since))
    }

    /// When an idle worker is due to start draining, if a reaper can act.
    fn due(&self, p: &OracleParams, m: &Model, id: &str, w: &IdleWorker, since: u64, t: u64) -> Option<u64> {
        let expired = self.expired(p, w, since);
        // Taken over by an instance that then died: it waits for that death
        // to be noticed, like any orphan.
        let row = m.workers.get(id);
        let row_owner = row.map(|r| r.owner).unwrap_or(w.owner);
        let owner = if m.dead.contains_key(&row_owner) { row_owner } else { w.owner };
        let parked = row.is_some_and(|r| r.state == Lifecycle::HotIdle);
        let mut able = Self::able_since(p, m, owner, t, parked)?;
        // A dead owner's row bound to a session (a write that landed after
        // its client gave up) waits out the resume window first.
        let bound = row.filter(|r| r.state == Lifecycle::Hot && r.session.is_some());
        if bound.is_some() && m.dead.contains_key(&owner) {
            able += p.fleet.resume_window_us;
        } else if let Some(r) = bound {
            // A live owner's row bound to a session no client holds (a grant
            // that landed after its client gave up: a replica frozen past
            // the client's patience, found live): the pool parks a session
            // it has not heard from within the client timeout, and the
            // parked worker then has its TTL.
            able = able.max(r.since + p.fleet.client_timeout_us + p.fleet.ttl_us);
        }
        if owner == w.owner {
            able = able.max(w.owned_since);
        }
        Some(expired.max(able) + p.fleet.reap_us + p.fleet.slack_us)
    }

    /// When an idle worker's TTL ran out, or it left its owner's floor.
    fn expired(&self, p: &OracleParams, w: &IdleWorker, since: u64) -> u64 {
        (since + p.fleet.ttl_us).max(self.in_floor_at(w).unwrap_or(0))
    }

    /// Note, as of `t`, which idle workers are inside their owner's floor
    /// and which outside. Called on every tick and before every worker
    /// write, so a worker that was outside the floor only between two ticks
    /// (another one idle and newer for a moment, say, then claimed for a
    /// session) is seen so.
    ///
    /// The floors are each live instance's newest `min_hot_idle` of the
    /// workers the store holds hot-idle under its name (the row's owner, as
    /// the reapers see it; a worker left hot by a failed park is idle to its
    /// client but no reaper can tell); dead instances keep none. Only the
    /// workers whose inputs changed since the last mark, and their owners'
    /// floors, are looked at again ([`Floors`]).
    fn mark_floor(&mut self, p: &OracleParams, m: &Model, t: u64) {
        let mut owners = BTreeSet::new();
        if m.dead.len() != self.dead_seen.len() {
            for &inst in m.dead.keys() {
                if self.dead_seen.insert(inst) {
                    owners.insert(inst);
                }
            }
        }
        let mut recheck = std::mem::take(&mut self.dirty);
        for id in &recheck {
            let cand = self.w.get(id).and_then(|w| w.since).and_then(|since| {
                m.workers.get(id).filter(|r| r.state == Lifecycle::HotIdle).map(|r| (r.owner, since / 1000))
            });
            owners.extend(self.floors.refile(id, cand));
        }
        for owner in owners {
            recheck.extend(self.floors.recompute(owner, m.dead.contains_key(&owner), p.fleet.min_hot_idle as usize));
        }
        for id in recheck {
            let Some(w) = self.w.get_mut(&id) else { continue };
            // What the last mark saw held until now.
            match w.marked {
                Some(true) => w.in_floor_at = Some(self.last_mark),
                Some(false) => w.outside_floor_at = Some(self.last_mark),
                None => {}
            }
            w.marked = Self::idle_since(m, &id, w).map(|_| self.floors.contains(&id));
        }
        self.last_mark = t;
    }

    /// No premature reaping: `id` (hot-idle) is being drained by `from`.
    fn premature(&self, p: &OracleParams, m: &Model, t: u64, id: &str, from: u64) -> Option<Violation> {
        let row = m.workers.get(id)?;
        let w = self.w.get(id)?;
        // The owner retiring its own on a graceful shutdown is no reaper
        // (the write may land after the process is gone); a dead owner's
        // workers are orphans, reaped whatever their age; so is a worker
        // whose pod died (the cluster's word, not a replica's).
        if (from == w.owner && m.shutdown_asked.contains_key(&from)) || !m.is_up(w.owner) || m.pod_dead_since(id).is_some() {
            return None;
        }
        // The store stamps idle_since in whole milliseconds.
        if t + 1_000 < row.since + p.fleet.ttl_us {
            return violation(
                "L2",
                t,
                format!(
                    "no premature reaping: i{from} drained {id}, hot-idle only since {} (TTL {})",
                    secs(row.since),
                    secs(p.fleet.ttl_us)
                ),
            );
        }
        // Inside a live owner's floor now, and for longer than a reap
        // pass's view can be stale.
        let in_floor =
            self.floors.contains(id) && self.outside_floor_at(w).is_none_or(|o| o + p.fleet.slack_us < t);
        if in_floor {
            return violation(
                "L2",
                t,
                format!(
                    "no premature reaping: i{from} drained {id}, one of owner i{}'s newest {} idle workers (its floor)",
                    row.owner, p.fleet.min_hot_idle
                ),
            );
        }
        None
    }
}

impl Check for IdleCheck {
    fn observe(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let t = e.t;
        match &e.kind {
            EventKind::WorkerWrite { from, id, applied: true, worker: Some(after), .. } => {
                // The world as it stood until this write.
                self.mark_floor(p, m, t);
                let before = m.workers.get(id).map(|w| w.state);
                let verdict = match (before, after.state) {
                    (Some(Lifecycle::HotIdle), Lifecycle::Draining) => self.premature(p, m, t, id, *from),
                    _ => None,
                };
                let w = self.w.entry(id.clone()).or_insert_with(|| IdleWorker { owner: after.owner, ..Default::default() });
                // Claimed from the shared pool and still idle: its new owner
                // is the one who keeps or reaps it.
                if before == Some(Lifecycle::HotIdle) && after.state == Lifecycle::HotIdle && w.owner != after.owner {
                    w.owner = after.owner;
                    w.owned_since = t;
                }
                let mut parked = false;
                if before != Some(after.state) {
                    match after.state {
                        // Parked durably: its TTL starts now (as the store
                        // stamps it), whether or not a client was seen to end.
                        Lifecycle::HotIdle => {
                            w.owner = after.owner;
                            parked = true;
                        }
                        // Whoever drains it owns it from this write on (a
                        // take-over claims and drains in one CAS): if it dies
                        // mid-drain, its death must be seen first.
                        Lifecycle::Draining => {
                            w.draining = Some((t, after.owner));
                            self.draining.insert(id.clone());
                        }
                        _ => {}
                    }
                }
                if parked {
                    self.set_since(id, Some(t));
                }
                if after.state.is_terminal() {
                    self.set_since(id, None);
                    self.w.remove(id);
                    self.draining.remove(id);
                    self.ended.insert(id.clone(), (t, after.owner));
                    if m.slots.contains_key(id) {
                        self.ended_holding.insert(id.clone());
                    }
                }
                self.dirty.insert(id.clone());
                verdict
            }
            EventKind::SessionStarted { worker, .. } => {
                if self.w.contains_key(worker) {
                    self.set_since(worker, None);
                    self.dirty.insert(worker.clone());
                }
                None
            }
            EventKind::SessionEnded { worker, .. } | EventKind::SessionLost { worker, .. } => {
                let owner = m.workers.get(worker).map(|r| r.owner);
                if let (Some(w), Some(owner)) = (self.w.get_mut(worker), owner) {
                    w.owner = owner;
                    self.set_since(worker, Some(t));
                    self.dirty.insert(worker.clone());
                }
                None
            }
            EventKind::SlotWrite { op: SlotOp::Reserve, worker, result: SlotReply::Reserved, .. } => {
                // A reservation that landed after its worker ended (a
                // stalled write) holds a slot for an ended worker too.
                if self.ended.contains_key(worker) {
                    self.ended_holding.insert(worker.clone());
                }
                None
            }
            _ => None,
        }
    }

    /// Idle workers retired in time, drains finished, slots of ended
    /// workers freed; and the overdue idle time measured.
    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        let fp = &p.fleet;
        let dt = t.saturating_sub(self.last_tick);
        self.last_tick = t;
        self.mark_floor(p, m, t);
        self.ended_holding.retain(|id| m.slots.contains_key(id));
        let beyond = self.idle_before(m, t, p.fleet.ttl_us + fp.reap_us + fp.slack_us);
        // The measure: idle beyond TTL + one reap interval + slack, no
        // excuses for faults.
        let over = beyond.iter().filter(|(_, w, s)| t > self.expired(p, w, *s) + fp.reap_us + fp.slack_us).count() as u64;
        let mut over_quiet = 0;
        if let Some(q) = m.quiet_since {
            let settled = q + fp.dead_after_us + 2 * fp.reap_us + fp.slack_us;
            over_quiet = beyond
                .iter()
                .filter(|(_, w, s)| t > (self.expired(p, w, *s) + fp.reap_us + fp.slack_us).max(settled))
                .count() as u64;
        }
        // The invariant: overdue with only the responsible reapers' excuse.
        let mut late: Vec<(u64, &String)> = beyond
            .iter()
            .filter_map(|(id, w, s)| self.due(p, m, id, w, *s, t).filter(|d| t > *d).map(|d| (d, *id)))
            .collect();
        let verdict = if late.is_empty() {
            self.stuck_drain(p, m, t).or_else(|| self.stray_slot(p, m, t))
        } else {
            late.sort();
            let (d, id) = late[0];
            let w = &self.w[id];
            let row = &m.workers[id];
            violation(
                "L2",
                t,
                format!(
                    "no idle leak: {} workers idle past TTL + reap interval beyond their owners' floors; {id} ({}, owner i{}, idle owner i{}) idle since {} was due to start draining by {}",
                    late.len(),
                    row.state,
                    row.owner,
                    w.owner,
                    secs(w.since.unwrap_or(0)),
                    secs(d)
                ),
            )
        };
        self.overdue_us += over * dt;
        self.overdue_quiet_us += over_quiet * dt;
        verdict
    }

    /// After the quiet period: nothing leaked.
    fn finish(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        let live: Vec<(&String, &super::model::Row)> = m.workers.iter().filter(|(_, w)| !w.state.is_terminal()).collect();
        let live_pods: BTreeSet<String> = live.iter().map(|(id, _)| format!("pod-{id}")).collect();
        let live_secrets: BTreeSet<String> = live.iter().map(|(id, _)| format!("secret-{id}")).collect();
        let pods: BTreeSet<String> = m.pods.keys().cloned().collect();
        let stray_pods: Vec<&String> = pods.symmetric_difference(&live_pods).collect();
        if !stray_pods.is_empty() {
            return violation("L2", t, format!("pods = live rows: these differ at the end: {stray_pods:?}"));
        }
        let orphan_secrets: Vec<&String> = m.secrets.difference(&live_secrets).collect();
        if !orphan_secrets.is_empty() {
            return violation("L2", t, format!("no orphan secret: {orphan_secrets:?} outlived their workers"));
        }
        let dead_owned: Vec<&String> =
            live.iter().filter(|(_, w)| m.dead.contains_key(&w.owner)).map(|(id, _)| *id).collect();
        if !dead_owned.is_empty() {
            return violation("L2", t, format!("nothing owned by a dead instance: {dead_owned:?} still are"));
        }
        for (worker, slot) in &m.slots {
            let row = m.workers.get(worker);
            let live_row = row.is_some_and(|w| !w.state.is_terminal());
            // A slot with no live worker may wait for the slow sweep only if
            // whoever should have freed it died.
            let owner = row.map(|w| w.owner).unwrap_or(slot.reserver);
            let excused = m.dead.contains_key(&owner) && t < slot.at + p.fleet.stale_spawn_us + 2 * p.fleet.reap_us;
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

impl IdleCheck {
    /// A drain, once begun, finishes (or is finished by a reaper).
    fn stuck_drain(&self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        for id in &self.draining {
            let Some((since, by)) = self.w.get(id).and_then(|w| w.draining) else { continue };
            if m.workers.get(id).map(|r| r.state) != Some(Lifecycle::Draining) {
                continue;
            }
            let Some(able) = Self::able_since(p, m, by, t, true) else { continue };
            let due = since.max(able) + 2 * p.fleet.reap_us + p.fleet.slack_us;
            if t > due {
                return violation(
                    "L2",
                    t,
                    format!("no idle leak: the drain of {id} begun by i{by} at {} was due to end by {}", secs(since), secs(due)),
                );
            }
        }
        None
    }

    /// Slots of ended workers are freed at once by an owner that lives and
    /// can reach a calm store; if anything disturbed it since, by its next
    /// reap pass once it can. (Cluster trouble only slows the pod and secret
    /// deletes before the free, each bounded by a call timeout.)
    fn stray_slot(&self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        for worker in &self.ended_holding {
            let Some(&(ended, owner)) = self.ended.get(worker) else { continue };
            if m.dead.contains_key(&owner) || !m.store_calm() {
                continue;
            }
            let Some(healthy) = m.proc_of(owner).and_then(|r| r.healthy_since) else { continue };
            let calm_from = m.calm_since.max(healthy);
            // Calm for a while before it ended too: the calls that ended it
            // were not caught in the disturbance (a stalled write can land
            // after its caller gave up on it).
            let deadline = if calm_from + p.fleet.quick_us <= ended {
                ended + p.fleet.quick_us
            } else {
                calm_from + p.fleet.reap_us + p.fleet.slack_us
            };
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
}
