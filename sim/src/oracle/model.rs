//! The oracle's model of the world, rebuilt from events alone: the lease as
//! the store holds it, and each replica's health as the injector made it.

use haywire_traces::{Event, EventKind, LeaseState};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
pub struct Rep {
    pub inst: Option<u64>,
    pub up: bool,
    pub paused: bool,
    pub partitioned: bool,
    pub slow: bool,
    pub shutting_down: bool,
    /// Since when the replica has been continuously healthy (None: it is not).
    pub healthy_since: Option<u64>,
    /// Last time the store heard from the current instance.
    pub last_contact: u64,
    /// No fault touched the replica or the store since its shutdown began.
    pub shutdown_clean: bool,
}

impl Rep {
    fn healthy(&self) -> bool {
        self.up && !self.paused && !self.partitioned && !self.slow && !self.shutting_down
    }
}

pub struct World {
    /// The lease record as the store holds it.
    pub lease: Option<LeaseState>,
    /// When the record last became free by release.
    pub released_at: u64,
    /// When each instance stopped being the live holder.
    pub ceased: BTreeMap<u64, u64>,
    pub reps: Vec<Rep>,
    pub inst_rep: BTreeMap<u64, usize>,
    pub dead: BTreeSet<u64>,
    /// The instance the last crash or exit ended.
    pub last_dead: Option<u64>,
    /// An instance that exited gracefully with no fault in its way: it
    /// should have released the lease before exiting.
    pub clean_exit: Option<(u64, u64)>,
    store_disturbances: u32,
    /// Since when no store-wide fault has been active.
    pub calm_since: u64,
    /// A lease outage is on (nobody can lead), and when the last one ended.
    pub lease_outage: bool,
    pub lease_calm_since: u64,
}

pub fn rep_index(name: &str) -> Option<usize> {
    name.strip_prefix('r')?.parse::<usize>().ok()?.checked_sub(1)
}

impl World {
    pub fn new(replicas: usize) -> Self {
        World {
            lease: None,
            released_at: 0,
            ceased: BTreeMap::new(),
            reps: vec![Rep::default(); replicas],
            inst_rep: BTreeMap::new(),
            dead: BTreeSet::new(),
            last_dead: None,
            clean_exit: None,
            store_disturbances: 0,
            calm_since: 0,
            lease_outage: false,
            lease_calm_since: 0,
        }
    }

    pub fn store_calm(&self) -> bool {
        self.store_disturbances == 0
    }

    /// No lease outage: somebody could lead.
    pub fn lease_calm(&self) -> bool {
        !self.lease_outage
    }

    /// The holder whose lease is unexpired at `t` (µs).
    pub fn live_holder(&self, t: u64) -> Option<u64> {
        let l = self.lease.as_ref()?;
        let h = l.holder?;
        (l.expires_at_ms * 1000 > t).then_some(h)
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

    fn rep_mut(&mut self, name: &str) -> Option<&mut Rep> {
        rep_index(name).and_then(|i| self.reps.get_mut(i))
    }

    fn touch_health(&mut self, name: &str, t: u64, f: impl FnOnce(&mut Rep)) {
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

    fn contact(&mut self, inst: u64, t: u64) {
        if let Some(&i) = self.inst_rep.get(&inst) {
            if self.reps[i].inst == Some(inst) {
                self.reps[i].last_contact = t;
            }
        }
    }

    fn kill(&mut self, name: &str, t: u64) {
        self.last_dead = None;
        let Some(i) = rep_index(name) else { return };
        let Some(r) = self.reps.get_mut(i) else { return };
        if let Some(inst) = r.inst.take() {
            self.dead.insert(inst);
            self.last_dead = Some(inst);
        }
        r.up = false;
        r.shutting_down = false;
        r.healthy_since = None;
        let _ = t;
    }

    pub fn apply(&mut self, e: &Event) {
        let t = e.t;
        match &e.kind {
            EventKind::Started => {
                if let (Some(inst), Some(i)) = (e.inst, rep_index(&e.node)) {
                    self.inst_rep.insert(inst, i);
                    let r = &mut self.reps[i];
                    r.inst = Some(inst);
                    r.last_contact = t;
                }
                self.touch_health(&e.node, t, |r| {
                    r.up = true;
                    r.shutting_down = false;
                });
            }
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
                    if new.holder.is_none() {
                        self.released_at = t;
                    }
                    self.lease = Some(new.clone());
                }
            }
            EventKind::Crash { target } => self.kill(target, t),
            EventKind::Exited { target, graceful } => {
                let clean = *graceful && self.rep_mut(target).map(|r| r.shutdown_clean).unwrap_or(false);
                self.kill(target, t);
                if let (true, Some(inst)) = (clean, self.last_dead) {
                    self.clean_exit = Some((inst, t));
                }
            }
            EventKind::ShutdownRequested { target } => {
                let calm = self.store_calm();
                if let Some(r) = self.rep_mut(target) {
                    r.shutdown_clean = r.healthy() && calm;
                }
                self.touch_health(target, t, |r| r.shutting_down = true);
            }
            EventKind::Pause { target, .. } => self.touch_health(target, t, |r| r.paused = true),
            EventKind::Resume { target } => self.touch_health(target, t, |r| r.paused = false),
            EventKind::Partition { target } => self.touch_health(target, t, |r| r.partitioned = true),
            EventKind::PartitionHealed { target } => self.touch_health(target, t, |r| r.partitioned = false),
            EventKind::StoreSlow { target, .. } => self.touch_health(target, t, |r| r.slow = true),
            EventKind::StoreSlowHealed { target } => self.touch_health(target, t, |r| r.slow = false),
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
            _ => {}
        }
    }
}
