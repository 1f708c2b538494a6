//! The reapers (docs/design.md §2.4).
//!
//! - The leader-gated janitor: retires hot-idle workers past their TTL
//!   (above the floor), workers of dead instances and stuck spawning or
//!   activating rows; deletes this deployment's pods and secrets that no
//!   live row owns (secrets only of instances not live, or its own), each
//!   object pass under its own deadline; frees leaked slots; keeps the
//!   headroom placeholders. Its writes carry the lease epoch. One failing
//!   pass does not stop the others.
//! - The fallback reaper on every replica: its own expired hot-idle workers,
//!   the workers of dead instances and its own orphan secrets, so reaping
//!   never depends on a leader existing.
//!
//! Both stamp "last successful reap" only after a pass in which nothing
//! failed.

use super::floor::expired_beyond_floor;
use super::gate::Gate;
use super::headroom::{self, is_placeholder};
use super::health;
use super::pool::{delete_objects, deployment_selector, Pool, INSTANCE_LABEL, SECRET_POD_LABEL};
use super::WorkerState;
use crate::clock::{sleep_until, timeout, Clock, Millis};
use crate::cluster::{Cluster, ClusterExt};
use crate::config::{ms, FleetConfig};
use crate::ids::InstanceId;
use crate::lease::{stop_requested, BoxLoop, Horizon, LeaderWork};
use crate::mutants::{Mutant, Mutants};
use crate::observe::{CoreEvent, Observer};
use crate::registry::live_instances;
use crate::store::{
    IdleFloor, InstanceRecord, LeaseFence, OwnScope, SlotRecord, Store, StoreReply, StoreRequest, WorkerCas, WorkerRecord, WorkerReject,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use crate::signal as watch;

/// How a taken-over worker ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    /// Expired hot-idle: drain, then retire.
    Idle,
    /// Its owner died: lost.
    OwnerDead,
    /// Its pod failed or vanished (a health check): lost.
    PodDead,
    /// A stuck spawning or activating row: retired.
    Stuck,
    /// A take-over of ours left unsettled: hot ones drain, others retire.
    Stray,
}

/// The janitor's passes, in the order one run makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JanitorPass {
    Idle,
    DeadOwners,
    Health,
    Stuck,
    OrphanPods,
    OrphanSecrets,
    Slots,
    Headroom,
}

impl JanitorPass {
    /// Idle first, on the freshest view: a claim names the state and epoch
    /// it saw, and a worker reused and parked again since keeps both (see
    /// the closing note of issue 8: claims are not fenced by the row's
    /// version). The idle pass's claims also name the floor, which the
    /// store judges on the row's idle clock as it is then, so a freshly
    /// parked worker is refused; the other passes' are not so guarded.
    const ALL: [JanitorPass; 8] = [
        JanitorPass::Idle,
        JanitorPass::DeadOwners,
        JanitorPass::Health,
        JanitorPass::Stuck,
        JanitorPass::OrphanPods,
        JanitorPass::OrphanSecrets,
        JanitorPass::Slots,
        JanitorPass::Headroom,
    ];

    fn name(self) -> &'static str {
        match self {
            JanitorPass::Idle => "idle",
            JanitorPass::DeadOwners => "dead-owners",
            JanitorPass::Health => "health",
            JanitorPass::Stuck => "stuck",
            JanitorPass::OrphanPods => "orphan-pods",
            JanitorPass::OrphanSecrets => "orphan-secrets",
            JanitorPass::Slots => "slots",
            JanitorPass::Headroom => "headroom",
        }
    }
}

pub struct Reapers<S, C, K> {
    pub me: InstanceId,
    pub cfg: FleetConfig,
    pub lease_name: String,
    pub mutants: Mutants,
    pub store: Arc<S>,
    pub clock: Arc<C>,
    pub cluster: Arc<K>,
    pub obs: Arc<dyn Observer>,
    pub pool: Arc<Pool<S, C, K>>,
    /// Store time of the last janitor / fallback pass that fully succeeded
    /// (0: never).
    pub janitor_last_ok: Arc<AtomicU64>,
    pub fallback_last_ok: Arc<AtomicU64>,
    /// Workers this instance set out to take over and end whose end is not
    /// confirmed (the claim's reply was lost, or a later step failed): once
    /// claimed they are ours, and as we are alive no other reaper will end
    /// them. The fallback pass finishes them.
    /// Each with the owner epoch it had when we set out to claim it.
    pub unsettled: Arc<Mutex<BTreeMap<String, u64>>>,
}

/// What one pass sees: the store's lists, at the store's `now`.
struct View {
    now: Millis,
    workers: Vec<WorkerRecord>,
    /// For an own view: the live ones among its rows' owners.
    live: BTreeSet<InstanceId>,
    /// When each instance the store holds was last heard from (for an own
    /// view: each owner of its rows).
    beats: BTreeMap<InstanceId, Millis>,
    slots: Vec<SlotRecord>,
    /// For an own view: the take-overs it was asked for (rows of others
    /// outside them are not in it). `None`: every row.
    scope: Option<BTreeSet<String>>,
}

type PassResult = Result<(), String>;

impl<S: Store, C: Clock, K: Cluster> Reapers<S, C, K> {
    async fn list(&self, g: &Gate, req: StoreRequest) -> Result<StoreReply, String> {
        g.open()?;
        match timeout(&*self.clock, ms(self.cfg.call_timeout_ms), self.store.call(req)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("store call timed out".into()),
        }
    }

    /// Every row and slot (the janitor's view).
    async fn view(&self, g: &Gate) -> Result<View, String> {
        self.read_view(g, StoreRequest::ListWorkers, StoreRequest::ListSlots, None).await
    }

    /// What this replica's own fallback pass reads: the rows and slots of
    /// its scope (its own, what it minted, its take-overs, dead owners'
    /// unended rows; docs/design.md §12), not the fleet's. Every row its
    /// passes act on is in it: the rows they skip are other live owners'
    /// and ended ones, so a pass decides as it would over every row, at a
    /// cost that follows this replica's share of the fleet.
    async fn own_view(&self, g: &Gate) -> Result<View, String> {
        let scope = self.own_scope();
        let asked = scope.ids.iter().cloned().collect();
        let (workers, slots) = (StoreRequest::ListWorkersOf { scope: scope.clone() }, StoreRequest::ListSlotsOf { scope });
        self.read_view(g, workers, slots, Some(asked)).await
    }

    /// What this replica's own rows are: its own, what it minted, its
    /// take-overs, and dead owners' unended rows.
    fn own_scope(&self) -> OwnScope {
        OwnScope {
            instance: self.me,
            minted_prefix: self.pool.minted_prefix(),
            ids: self.unsettled().keys().cloned().collect(),
            dead_after_ms: self.cfg.dead_after_ms,
        }
    }

    /// The rows `workers` lists, the instances (every one, or for an own
    /// view those owning its rows), and the slots `slots` lists, at the
    /// store's `now` of the rows.
    async fn read_view(
        &self,
        g: &Gate,
        workers: StoreRequest,
        slots: StoreRequest,
        scope: Option<BTreeSet<String>>,
    ) -> Result<View, String> {
        let (now, workers) = match self.list(g, workers).await? {
            StoreReply::Workers { now, list } => (now, list),
            other => return Err(format!("list workers: unexpected reply {other:?}")),
        };
        // An own view's passes ask about the owners of its rows only (its
        // secrets carry its own name), so it reads just those: every
        // replica reading every instance each pass grew with the fleet
        // squared (docs/design.md §12).
        let ask = match scope {
            Some(_) => StoreRequest::ListInstancesOf { ids: workers.iter().map(|w| w.owner).collect() },
            None => StoreRequest::ListInstances,
        };
        let instances: Vec<InstanceRecord> = match self.list(g, ask).await? {
            StoreReply::Instances { list, .. } => list,
            other => return Err(format!("list instances: unexpected reply {other:?}")),
        };
        let slots = match self.list(g, slots).await? {
            StoreReply::Slots { list, .. } => list,
            other => return Err(format!("list slots: unexpected reply {other:?}")),
        };
        let beats = instances.iter().map(|r| (r.id, r.heartbeat_at)).collect();
        Ok(View { now, workers, live: live_instances(&instances, now, self.cfg.dead_after_ms), beats, slots, scope })
    }

    /// A worker whose owner is gone: not live, and quiet for the dead
    /// threshold (so a row of an instance that has not registered yet is
    /// left alone). A session's worker waits longer: the resume window
    /// after its owner's death, for its client to reconnect through
    /// another replica and take it over (docs/design.md §2.5).
    fn orphaned(&self, v: &View, w: &WorkerRecord) -> bool {
        if w.state.is_terminal() || v.live.contains(&w.owner) || w.updated_at.saturating_add(self.cfg.dead_after_ms) > v.now {
            return false;
        }
        if w.state != WorkerState::Hot || w.session.is_none() {
            return true;
        }
        let heard = v.beats.get(&w.owner).copied().unwrap_or(w.updated_at).max(w.updated_at);
        heard.saturating_add(self.cfg.dead_after_ms).saturating_add(self.cfg.resume_window_ms) <= v.now
    }

    /// Take `w` over (a claim bumps its owner epoch, fencing the old owner
    /// out) and end it. A worker someone else took first is not an error.
    async fn take_and_end(&self, g: &Gate, w: &WorkerRecord, end: End, fence: Option<&LeaseFence>) -> PassResult {
        // Settled only once the row is ended (or was never ours to take).
        self.unsettled().insert(w.id.clone(), w.owner_epoch);
        // The claim and the first step are one CAS, so a worker taken over
        // never sits idle under our name (where a floor would count it).
        let to = match (end, w.state) {
            (End::OwnerDead | End::PodDead, _) => Some(WorkerState::Lost),
            // A drain someone left half done: finish it.
            (_, WorkerState::Draining) => None,
            (End::Idle, _) => Some(WorkerState::Draining),
            (End::Stray, WorkerState::Hot | WorkerState::HotIdle) => Some(WorkerState::Draining),
            (End::Stuck | End::Stray, _) => Some(WorkerState::Retired),
        };
        let claim = StoreRequest::ClaimWorker {
            id: w.id.clone(),
            owner: w.owner,
            epoch: w.owner_epoch,
            // Only the state this pass judged: a worker reused since the
            // list (hot_idle -> hot keeps the epoch) is not taken.
            from: Some(w.state),
            to,
            new_owner: self.me,
            fence: fence.cloned(),
            // An idle worker is judged against its owner's floor again by
            // the store, in the claim's own write: the view this pass
            // decided on may be seconds old (docs/design.md §2.4).
            floor: (end == End::Idle && w.state == WorkerState::HotIdle)
                .then_some(IdleFloor { keep: self.cfg.min_hot_idle, ttl_ms: self.cfg.hot_idle_ttl_ms }),
        };
        let mine = match self.list(g, claim).await? {
            StoreReply::Worker(WorkerCas::Applied(rec)) => rec,
            StoreReply::Worker(WorkerCas::Rejected {
                reason:
                    WorkerReject::StaleOwner | WorkerReject::WrongState | WorkerReject::BadTransition | WorkerReject::InFloor,
                current,
            }) => {
                // Someone else's now, kept by its owner's floor, or ended:
                // settled. Ours already (the other reaper of this instance
                // took it and did not finish): left for the unsettled pass.
                if current.is_none_or(|c| c.owner != self.me || c.state.is_terminal()) {
                    self.unsettled().remove(&w.id);
                }
                return Ok(());
            }
            other => return Err(format!("claim {}: {other:?}", w.id)),
        };
        let state = mine.state;
        // A pod or secret that will not go is left to the orphan pass: the
        // row is retired either way, so it never strands in draining.
        let deleted = delete_objects(&*self.cluster, &*self.clock, self.cfg.call_timeout_ms, g, &w.pod, &w.secret).await;
        if state == WorkerState::Draining {
            let retire = StoreRequest::UpdateWorker {
                id: mine.id.clone(),
                owner: self.me,
                epoch: mine.owner_epoch,
                from: WorkerState::Draining,
                to: WorkerState::Retired,
                session: None,
                fence: fence.cloned(),
            };
            match self.list(g, retire).await? {
                StoreReply::Worker(WorkerCas::Applied(_)) => {}
                other => return Err(format!("{} draining->retired: {other:?}", w.id)),
            }
        }
        self.unsettled().remove(&w.id);
        self.list(g, StoreRequest::FreeSlot { worker: w.id.clone(), fence: fence.cloned() }).await?;
        deleted
    }

    /// Run `f` over `items`, collecting errors so one failure does not stop
    /// the rest.
    async fn each<'a, T, F, Fut>(&self, items: impl IntoIterator<Item = &'a T>, f: F) -> PassResult
    where
        T: 'a,
        F: Fn(&'a T) -> Fut,
        Fut: std::future::Future<Output = PassResult>,
    {
        let mut errors = Vec::new();
        for item in items {
            if let Err(e) = f(item).await {
                errors.push(e);
            }
        }
        joined(errors)
    }

    // --- janitor passes ---

    async fn reap_idle(&self, g: &Gate, v: &View, fence: &LeaseFence) -> PassResult {
        // Take-overs of ours still under way are nobody's idle workers.
        let unsettled = self.unsettled().clone();
        let rows = v.workers.iter().filter(|w| !unsettled.contains_key(&w.id));
        let expired = expired_beyond_floor(rows, None, self.cfg.min_hot_idle, self.cfg.hot_idle_ttl_ms, v.now);
        let (own, others): (Vec<&WorkerRecord>, Vec<&WorkerRecord>) = expired.into_iter().partition(|w| w.owner == self.me);
        // Another owner's: each claim names the floor, which the store
        // judges again in the claim's write.
        let theirs = self.each(others, |w| self.take_and_end(g, w, End::Idle, Some(fence))).await;
        // Our own are not claimed (that would fence our pool out), so no
        // write judges their floor: judge it on our rows as the store holds
        // them now, not on this view, which may be seconds old and miss our
        // newer idle worker a peer took meanwhile (docs/design.md §2.4).
        let ours = if own.is_empty() {
            Ok(())
        } else {
            match self.list(g, StoreRequest::ListWorkersOf { scope: self.own_scope() }).await {
                Ok(StoreReply::Workers { now, list }) => self.pool.retire_expired_idle(g, &list, now).await,
                Ok(other) => Err(format!("list own workers: unexpected reply {other:?}")),
                Err(e) => Err(format!("list own workers: {e}")),
            }
        };
        joined(theirs.err().into_iter().chain(ours.err()).collect())
    }

    async fn reap_dead_owners(&self, g: &Gate, v: &View, fence: Option<&LeaseFence>) -> PassResult {
        let orphans: Vec<&WorkerRecord> = v.workers.iter().filter(|w| self.orphaned(v, w)).collect();
        self.each(orphans, |w| self.take_and_end(g, w, End::OwnerDead, fence)).await
    }

    /// The fleet-wide health check (docs/design.md §2.6): live peers' hot and
    /// hot-idle workers whose pods the cluster shows failed are taken over and
    /// marked lost (this replica's own pool checks its own; dead owners'
    /// workers go with the dead-owners pass).
    async fn reap_dead_pods(&self, g: &Gate, v: &View, fence: &LeaseFence) -> PassResult {
        let judged: Vec<(String, String)> = v
            .workers
            .iter()
            .filter(|w| matches!(w.state, WorkerState::Hot | WorkerState::HotIdle))
            .filter(|w| w.owner != self.me && v.live.contains(&w.owner))
            .map(|w| (w.id.clone(), w.pod.clone()))
            .collect();
        if judged.is_empty() {
            return Ok(());
        }
        g.open()?;
        let call = ms(self.cfg.call_timeout_ms);
        let (_, pods) = flat(timeout(&*self.clock, call, self.cluster.list_pods(deployment_selector(&self.cfg.deployment))).await)?;
        // Failed pods only: a vanished one may be one this run's earlier
        // passes deleted; its owner's own health check finds real vanishings.
        let dead: BTreeSet<String> = health::dead_pods(&judged, &pods, &self.mutants)
            .into_iter()
            .filter(|(_, _, death)| *death == health::PodDeath::Failed)
            .map(|(id, _, _)| id.to_string())
            .collect();
        let rows: Vec<&WorkerRecord> = v.workers.iter().filter(|w| dead.contains(&w.id)).collect();
        self.each(rows, |w| self.take_and_end(g, w, End::PodDead, Some(fence))).await
    }

    fn unsettled(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.unsettled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finish this instance's unsettled take-overs: a row that became ours
    /// is ended; one that is ended, gone, or moved past the epoch our claim
    /// named (so the claim can never land) is dropped. Rows touched in the
    /// last two call timeouts are left for next time, so a take-over still
    /// under way is not raced.
    async fn reap_unsettled(&self, g: &Gate, v: &View) -> PassResult {
        let ids: Vec<(String, u64)> = self.unsettled().iter().map(|(k, e)| (k.clone(), *e)).collect();
        let mut mine = Vec::new();
        // Ended by a claim of ours whose reply was lost: its pod and secret
        // are still ours to delete (the slot goes with the own-slots pass).
        let mut ended = Vec::new();
        for (id, seen) in ids {
            let row = v.workers.iter().find(|w| w.id == id);
            // A take-over begun after an own view was read (by this
            // replica's janitor) is not in it: left for the next pass.
            if row.is_none() && v.scope.as_ref().is_some_and(|asked| !asked.contains(&id)) {
                continue;
            }
            match row {
                Some(w) if w.state.is_terminal() => {
                    if w.owner == self.me {
                        ended.push(w);
                    }
                }
                Some(w) if w.owner == self.me && !self.pool.owns(&w.id) => {
                    if w.updated_at.saturating_add(2 * self.cfg.call_timeout_ms) <= v.now {
                        mine.push(w);
                    }
                    continue;
                }
                // Not ours yet, at the epoch we tried to claim: the claim may
                // still be in flight.
                Some(w) if w.owner_epoch <= seen => continue,
                _ => {}
            }
            self.unsettled().remove(&id);
        }
        let call = self.cfg.call_timeout_ms;
        // A pod or secret that will not go is left to the janitor's orphan
        // passes.
        for w in ended {
            let _ = delete_objects(&*self.cluster, &*self.clock, call, g, &w.pod, &w.secret).await;
        }
        self.each(mine, |w| self.take_and_end(g, w, End::Stray, None)).await
    }

    async fn reap_stuck(&self, g: &Gate, v: &View, fence: &LeaseFence) -> PassResult {
        let stuck: Vec<&WorkerRecord> = v
            .workers
            .iter()
            .filter(|w| match w.state {
                WorkerState::Spawning => w.updated_at.saturating_add(self.cfg.stale_spawn_ms) <= v.now,
                WorkerState::Activating => w.updated_at.saturating_add(self.cfg.stuck_activating_ms) <= v.now,
                // A drain takes a few calls; one quiet for two reap
                // intervals was left half done (our own pool resumes its own).
                WorkerState::Draining => {
                    w.updated_at.saturating_add(2 * self.cfg.reap_interval_ms) <= v.now && !self.pool.owns(&w.id)
                }
                _ => false,
            })
            .collect();
        self.each(stuck, |w| self.take_and_end(g, w, End::Stuck, Some(fence))).await
    }

    /// Run one orphan-object pass under its own deadline (docs/design.md
    /// §2.4; field report 004: a pass sharing its context with a slow one
    /// before it is starved).
    async fn under_deadline(&self, deadline_ms: u64, pass: impl std::future::Future<Output = PassResult>) -> PassResult {
        if deadline_ms == 0 {
            // A deadline already spent: the pass does not start at all.
            return Err("pass deadline passed before the pass began".into());
        }
        match timeout(&*self.clock, ms(deadline_ms), pass).await {
            Ok(r) => r,
            Err(_) => Err(format!("pass deadline of {deadline_ms}ms passed")),
        }
    }

    /// Old enough to reap, judged against the view's time: an object made
    /// after the view was taken (its row may be newer than the view) is
    /// never reaped, however late the list that shows it.
    fn aged(&self, v: &View, created: Millis) -> bool {
        created.saturating_add(self.cfg.orphan_min_age_ms) <= v.now
    }

    /// Pods of this deployment that no live row owns, made before the view
    /// less the minimum age. Placeholders are the headroom pass's.
    async fn reap_orphan_pods(&self, g: &Gate, v: &View) -> PassResult {
        let call = ms(self.cfg.call_timeout_ms);
        let live_pods: BTreeSet<&str> = v.workers.iter().filter(|w| !w.state.is_terminal()).map(|w| w.pod.as_str()).collect();
        g.open()?;
        // A list may take the whole pass deadline (a big namespace).
        let (_, pods) = self.cluster.list_pods(deployment_selector(&self.cfg.deployment)).await.map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for p in pods.iter().filter(|p| !is_placeholder(&p.labels) && !live_pods.contains(p.name.as_str()) && self.aged(v, p.created_at)) {
            g.open()?;
            if let Err(e) = flat(timeout(&*self.clock, call, self.cluster.delete_pod(&p.name)).await) {
                errors.push(format!("delete pod {}: {e}", p.name));
            }
        }
        joined(errors)
    }

    /// Secrets that belong to no live row (by name, or by the pod they are
    /// labelled for), made before the view less the minimum age: a crash
    /// between secret and pod leaves one behind (field report 004). Scoped
    /// by owning instance: the janitor takes those of instances that are not
    /// live (dead, or never registered) and its own; a live peer's are left
    /// to that peer's fallback pass (`own`), so a peer's spawn is never
    /// raced. Its own pass with its own list, so a pod pass that fails never
    /// starves it.
    async fn reap_orphan_secrets(&self, g: &Gate, v: &View, own: bool) -> PassResult {
        if self.mutants.on(Mutant::NoSecretReaper) {
            return Ok(());
        }
        if !own && self.mutants.on(Mutant::SecretReaperUnscoped) {
            return self.reap_secrets_unscoped(g).await;
        }
        let call = ms(self.cfg.call_timeout_ms);
        let live: Vec<&WorkerRecord> = v.workers.iter().filter(|w| !w.state.is_terminal()).collect();
        let live_pods: BTreeSet<&str> = live.iter().map(|w| w.pod.as_str()).collect();
        let live_secrets: BTreeSet<&str> = live.iter().map(|w| w.secret.as_str()).collect();
        let me = self.me.to_string();
        let mut selector = deployment_selector(&self.cfg.deployment);
        if own {
            selector.insert(INSTANCE_LABEL.into(), me.clone());
        }
        g.open()?;
        let (_, secrets) = self.cluster.list_secrets(selector).await.map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for s in secrets {
            let pod = s.labels.get(SECRET_POD_LABEL).map(String::as_str).unwrap_or("");
            let owner = s.labels.get(INSTANCE_LABEL).map(String::as_str).unwrap_or("");
            let orphan = !pod.is_empty()
                && !live_secrets.contains(s.name.as_str())
                && !live_pods.contains(pod)
                && self.aged(v, s.created_at);
            // A label that names no live instance (or no instance at all).
            let ours_to_reap = owner == me || !InstanceId::from_label(owner).is_some_and(|o| v.live.contains(&o));
            if orphan && ours_to_reap {
                g.open()?;
                if let Err(e) = flat(timeout(&*self.clock, call, self.cluster.delete_secret(&s.name)).await) {
                    errors.push(format!("delete secret {}: {e}", s.name));
                }
            }
        }
        joined(errors)
    }

    /// The pre-fix secret reaper (mutant): any deployment secret whose pod
    /// the cluster does not list, aged by the secret list's time, whoever
    /// owns it and whatever the rows say, so a peer's secret whose pod is
    /// not created yet is reapable.
    async fn reap_secrets_unscoped(&self, g: &Gate) -> PassResult {
        let call = ms(self.cfg.call_timeout_ms);
        g.open()?;
        let (_, pods) = self.cluster.list_pods(deployment_selector(&self.cfg.deployment)).await.map_err(|e| e.to_string())?;
        let listed: BTreeSet<String> = pods.into_iter().map(|p| p.name).collect();
        g.open()?;
        let (cnow, secrets) = self.cluster.list_secrets(deployment_selector(&self.cfg.deployment)).await.map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for s in secrets {
            let pod = s.labels.get(SECRET_POD_LABEL).map(String::as_str).unwrap_or("");
            if !pod.is_empty() && !listed.contains(pod) && s.created_at.saturating_add(self.cfg.orphan_min_age_ms) <= cnow {
                g.open()?;
                if let Err(e) = flat(timeout(&*self.clock, call, self.cluster.delete_secret(&s.name)).await) {
                    errors.push(format!("delete secret {}: {e}", s.name));
                }
            }
        }
        joined(errors)
    }

    /// The headroom pass: exactly `headroom_nodes` placeholder pods.
    async fn keep_headroom(&self, g: &Gate, v: &View) -> PassResult {
        let want = headroom::wanted(&self.cfg, &self.mutants, &v.workers);
        headroom::keep(&*self.cluster, &*self.clock, &self.cfg, want, g).await
    }

    /// Leaked slots: a retired or lost worker's slot whose free failed
    /// (any such worker with `mine` = None, only our own otherwise); with
    /// `mine`, our own rowless slots that no spawn holds; without, the slow
    /// sweep of slots with no row older than the stale-spawn age.
    async fn reap_slots(&self, g: &Gate, v: &View, fence: Option<&LeaseFence>, mine: Option<InstanceId>) -> PassResult {
        let rows: BTreeMap<&str, &WorkerRecord> = v.workers.iter().map(|w| (w.id.as_str(), w)).collect();
        let leaked: Vec<&SlotRecord> = v
            .slots
            .iter()
            .filter(|s| match rows.get(s.worker.as_str()) {
                Some(w) => w.state.is_terminal() && mine.is_none_or(|me| w.owner == me),
                // Ours, with no row and no spawn of ours behind it: a reserve
                // whose reply was lost landed after we freed it. Older than
                // two call timeouts, so no spawn can still be waiting on it.
                None if mine.is_some() => {
                    self.pool.minted_here(&s.worker)
                        && !self.pool.owns(&s.worker)
                        && s.reserved_at.saturating_add(2 * self.cfg.call_timeout_ms) <= v.now
                }
                None => s.reserved_at.saturating_add(self.cfg.stale_spawn_ms) <= v.now,
            })
            .collect();
        self.each(leaked, |s| async move {
            let free = StoreRequest::FreeSlot { worker: s.worker.clone(), fence: fence.cloned() };
            self.list(g, free).await.map(|_| ())
        })
        .await
    }

    fn failed(&self, reaper: &'static str, pass: &'static str, r: PassResult) -> bool {
        match r {
            Ok(()) => false,
            Err(error) => {
                self.obs.observe(CoreEvent::ReapFailed { reaper, pass, error });
                true
            }
        }
    }

    /// One janitor pass as the holder of `epoch`; stops early once `g`
    /// closes.
    pub async fn janitor_pass(&self, g: &Gate, epoch: u64) {
        let fence = LeaseFence { lease: self.lease_name.clone(), holder: self.me, epoch };
        let v = match self.view(g).await {
            Ok(v) => v,
            Err(e) => {
                self.failed("janitor", "list", Err(e));
                return;
            }
        };
        // Every pass runs whatever the others did (docs/design.md §2.4).
        let mut bad = false;
        // How long this run's pod pass took (none ran yet: nothing spent).
        let mut pods_spent = 0;
        for pass in JanitorPass::ALL {
            if bad && self.mutants.on(Mutant::JanitorStopsAtFirstError) {
                // The bug: the first failing pass ends the janitor's run.
                return;
            }
            let r = match pass {
                JanitorPass::Idle => self.reap_idle(g, &v, &fence).await,
                JanitorPass::DeadOwners => self.reap_dead_owners(g, &v, Some(&fence)).await,
                JanitorPass::Health => self.reap_dead_pods(g, &v, &fence).await,
                JanitorPass::Stuck => self.reap_stuck(g, &v, &fence).await,
                JanitorPass::OrphanPods => {
                    let began = self.clock.now();
                    let r = self.under_deadline(self.cfg.orphan_pass_deadline_ms, self.reap_orphan_pods(g, &v)).await;
                    pods_spent = self.clock.now().saturating_sub(began);
                    r
                }
                JanitorPass::OrphanSecrets => {
                    // The mutant skips the secret pass's own deadline: it
                    // gets what the pod pass left of one shared deadline.
                    let budget = if self.mutants.on(Mutant::SharedReaperDeadline) {
                        self.cfg.orphan_pass_deadline_ms.saturating_sub(pods_spent)
                    } else {
                        self.cfg.orphan_pass_deadline_ms
                    };
                    self.under_deadline(budget, self.reap_orphan_secrets(g, &v, false)).await
                }
                JanitorPass::Slots => self.reap_slots(g, &v, Some(&fence), None).await,
                JanitorPass::Headroom => self.keep_headroom(g, &v).await,
            };
            bad |= self.failed("janitor", pass.name(), r);
        }
        if !bad {
            self.janitor_last_ok.store(v.now, Ordering::SeqCst);
        }
    }

    /// One fallback pass: own expired idle workers, and orphans.
    pub async fn fallback_pass(&self) {
        let g = &Gate::none();
        let v = match self.own_view(g).await {
            Ok(v) => v,
            Err(e) => {
                self.failed("fallback", "list", Err(e));
                return;
            }
        };
        let mut bad = self.failed("fallback", "own-idle", self.pool.retire_expired_idle(g, &v.workers, v.now).await);
        if !self.mutants.on(Mutant::OrphansNotReapedByFallback) {
            bad |= self.failed("fallback", "dead-owners", self.reap_dead_owners(g, &v, None).await);
        }
        bad |= self.failed("fallback", "unsettled", self.reap_unsettled(g, &v).await);
        bad |= self.failed("fallback", "own-slots", self.reap_slots(g, &v, None, Some(self.me)).await);
        // Our own orphan secrets: the janitor leaves a live peer's to it.
        let own = self.under_deadline(self.cfg.orphan_pass_deadline_ms, self.reap_orphan_secrets(g, &v, true)).await;
        bad |= self.failed("fallback", "own-orphan-secrets", own);
        if !bad {
            self.fallback_last_ok.store(v.now, Ordering::SeqCst);
        }
    }

    /// Every replica, every reap interval: pool upkeep, then the fallback
    /// reaper.
    pub async fn upkeep_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next = self.clock.now();
        loop {
            next = next_tick(next, self.clock.now(), self.cfg.reap_interval_ms);
            tokio::select! {
                biased;
                _ = stop_requested(&mut stop) => return,
                _ = sleep_until(&*self.clock, next) => {}
            }
            self.pool.maintain().await;
            if self.cfg.fallback_reaper && !self.mutants.on(Mutant::NoFallbackReaper) {
                self.fallback_pass().await;
            }
        }
    }
}

/// The next start of a pass run every `interval_ms` from `last` (local ms):
/// passes start at a fixed rate, so a slow pass does not stretch the reap
/// interval the TTL bounds count on (docs/design.md §2.4); one that overran a
/// whole interval starts the next one interval after `now`.
fn next_tick(last: Millis, now: Millis, interval_ms: u64) -> Millis {
    let next = last.saturating_add(interval_ms);
    if next > now {
        next
    } else {
        now.saturating_add(interval_ms)
    }
}

fn joined(errors: Vec<String>) -> PassResult {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn flat<T, E: std::fmt::Display>(r: Result<Result<T, E>, crate::clock::Elapsed>) -> Result<T, String> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// The janitor as leader-gated work.
pub struct Janitor<S, C, K>(pub Arc<Reapers<S, C, K>>);

impl<S: Store, C: Clock, K: Cluster> LeaderWork for Janitor<S, C, K> {
    fn loops(&self, epoch: u64, mut cancel: watch::Receiver<bool>, horizon: Horizon) -> Vec<(&'static str, BoxLoop)> {
        let r = self.0.clone();
        let clock = r.clock.clone();
        let gate = Gate::leader(cancel.clone(), horizon, move || clock.now());
        let run = async move {
            let mut next = r.clock.now();
            loop {
                next = next_tick(next, r.clock.now(), r.cfg.reap_interval_ms);
                tokio::select! {
                    biased;
                    _ = stop_requested(&mut cancel) => return,
                    _ = sleep_until(&*r.clock, next) => {}
                }
                r.janitor_pass(&gate, epoch).await;
            }
        };
        vec![("janitor", Box::pin(run))]
    }
}
