//! How a worker moves between replicas (docs/design.md §2.5): an idle one
//! is claimed from the shared pool in the store, and a session whose
//! replica went away is taken over by the replica its client reconnects
//! through. Each move is one claim CAS on `(worker, owner, owner_epoch)`
//! that bumps the owner epoch, so of several claimers exactly one wins and
//! the former owner's belief is fenced out.

use super::{Call, Owned, Pool, PoolError, WorkerState};
use crate::clock::{timeout, Clock};
use crate::cluster::{Cluster, ClusterExt, PodPhase};
use crate::config::ms;
use crate::mutants::Mutant;
use crate::store::{gives_up_sessions, rules, Store, StoreReply, StoreRequest, WorkerCas, WorkerRecord, WorkerReject};
use crate::worker::belief::{Belief, Next};

/// What one takeover claim came to.
enum Claimed {
    /// Another task of this pool is claiming the worker now.
    Busy,
    /// Ours now, at this row.
    Won(WorkerRecord),
    /// Someone else's move landed first: the row as it is now, if any.
    Lost(Option<WorkerRecord>),
    /// Unknown outcome after every try.
    Unknown(String),
}

impl<S: Store, C: Clock, K: Cluster> Pool<S, C, K> {
    /// The shared idle pool: claim a hot-idle worker of `org` owned by
    /// another replica (live or not) and serve `session` on it. The claim
    /// bumps the owner epoch, so the former owner's next write about it is
    /// refused and it drops the worker. None if there is none to claim (or
    /// every claim lost a race): the caller spawns. An error if the step
    /// that binds the session had an unknown outcome: it may have landed,
    /// so no other worker may be bound to the session too.
    pub(super) async fn claim_shared_idle(&self, org: &str, session: u64) -> Result<Option<String>, PoolError> {
        // Through the store's index, not every row (docs/design.md §12).
        let idle_of_org = StoreRequest::ListIdleWorkers { org: org.to_string() };
        let Ok(StoreReply::Workers { list, .. }) = self.store_call(idle_of_org).await else { return Ok(None) };
        let idle = list.into_iter().filter(|r| {
            rules::workers::idle_in(r, org) && r.owner != self.me && !self.owns(&r.id)
        });
        for row in idle {
            let rec = match self.claim(&row, WorkerState::HotIdle).await {
                Claimed::Won(rec) => rec,
                Claimed::Lost(_) | Claimed::Busy => continue,
                Claimed::Unknown(_) => {
                    self.adopt_unsure(&row);
                    continue;
                }
            };
            let mut w = self.adopt(&rec, Belief::Settled(WorkerState::HotIdle), None);
            // Nobody may have watched its pod lately (its owner may be dead).
            if let Err(why) = self.pod_runs(&w.pod).await {
                self.mark_lost(&rec.id, &mut w, why).await;
                continue;
            }
            match self.transition(&rec.id, &mut w, WorkerState::Hot, Some(session)).await {
                Call::Ok(()) => {
                    w.session = Some(session);
                    self.bind(session, &rec.id);
                    return Ok(Some(rec.id));
                }
                // As for a reuse of our own (see `acquire`): it may be bound
                // to this session now; upkeep parks it either way.
                Call::Err(e) => {
                    if w.belief.is_unsure() {
                        let hot = w.belief.with_state(WorkerState::Hot);
                        w.believe(&rec.id, hot);
                    }
                    return Err(PoolError::Store(e));
                }
                // Still ours and idle (or forgotten): upkeep goes on from there.
                Call::Rejected(_) | Call::Moved(_) => {}
            }
        }
        Ok(None)
    }

    /// A client whose replica went away asks this one to go on with
    /// `session` (docs/design.md §2.5). Served here already: its worker.
    /// Else the store's row bound to the session is taken over, once this
    /// replica has rechecked, now, that its owner gave it up (dead,
    /// draining, or unknown), and once the worker's pod is found running.
    pub async fn reconnect(&self, session: u64) -> Result<String, PoolError> {
        if self.fenced.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PoolError::Fenced);
        }
        if self.refuses_reconnects() {
            return Err(PoolError::ShuttingDown);
        }
        if let Some(id) = self.bound(session) {
            self.touch(session);
            return Ok(id);
        }
        let list = match self.store_call(StoreRequest::ListSessionWorkers { session }).await {
            Ok(StoreReply::Workers { list, .. }) => list,
            Ok(other) => return Err(PoolError::Store(format!("list workers: unexpected reply {other:?}"))),
            Err(e) => return Err(PoolError::Store(e)),
        };
        let bound = |r: &WorkerRecord| r.session == Some(session) && r.state == WorkerState::Hot;
        let Some(mut row) = list.into_iter().find(bound) else {
            return Err(PoolError::SessionEnded(format!("session {session} is bound to no live worker")));
        };
        if row.owner == self.me {
            return self.settle_unsure_takeover(&row.id, session).await;
        }
        if !self.mutants.on(Mutant::TakeoverNoLivenessRecheck) {
            self.owner_gave_up(&row).await?;
        }
        let rec = loop {
            match self.claim(&row, WorkerState::Hot).await {
                Claimed::Won(rec) => break rec,
                // The bug: the loser claims again from whoever won,
                // trusting the recheck it made of the former owner.
                Claimed::Lost(Some(now)) if self.mutants.on(Mutant::ReconnectRace) && bound(&now) && now != row => {
                    row = now;
                }
                Claimed::Lost(_) => return Err(PoolError::TakenOver(session)),
                Claimed::Busy => return Err(PoolError::Store(format!("a takeover of session {session} is under way here"))),
                Claimed::Unknown(e) => {
                    self.adopt_unsure(&row);
                    return Err(PoolError::Store(e));
                }
            }
        };
        let mut w = self.adopt(&rec, Belief::Settled(WorkerState::Hot), Some(session));
        if let Err(why) = self.pod_runs(&w.pod).await {
            let why = format!("worker {} is gone: {why}", rec.id);
            if self.mutants.on(Mutant::ReconnectFailureNotPersisted) {
                // The bug: the client is told, the row is not.
                let gen = w.gen;
                drop(w);
                self.let_go(&rec.id, gen);
            } else {
                self.mark_lost(&rec.id, &mut w, why.clone()).await;
            }
            return Err(PoolError::SessionEnded(why));
        }
        if self.refuses_reconnects() {
            // Asked to stop while the takeover was under way: the session
            // goes on elsewhere. The row stays bound, for the replica the
            // client reconnects through to take from a draining owner.
            let gen = w.gen;
            drop(w);
            self.mark_draining().await;
            self.let_go(&rec.id, gen);
            return Err(PoolError::HandedOff);
        }
        self.bind(session, &rec.id);
        Ok(rec.id)
    }

    /// A draining replica takes no reconnect (review finding 9).
    fn refuses_reconnects(&self) -> bool {
        self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) && !self.mutants.on(Mutant::ReconnectIgnoresDraining)
    }

    /// The store binds `session` to a worker of ours that we do not serve
    /// it on: a takeover of ours whose reply was lost (held since with the
    /// session, unserved). A refresh settles whose it is; if ours and hot,
    /// the session goes on here.
    async fn settle_unsure_takeover(&self, id: &str, session: u64) -> Result<String, PoolError> {
        let unsettled = || PoolError::Store(format!("a takeover of session {session} is not settled yet"));
        let Some(slot) = self.map().get(id).cloned() else { return Err(unsettled()) };
        let mut w = slot.lock().await;
        if w.session != Some(session) || w.belief.is_failed() {
            return Err(unsettled());
        }
        let reply = self.raw_call(self.claim_request(id, &w)).await;
        if self.judge_claim(id, &mut w, reply) == Next::Done && w.state() == WorkerState::Hot {
            self.bind(session, id);
            return Ok(id.to_string());
        }
        Err(unsettled())
    }

    /// The recheck at takeover time (review finding 4): the instance table
    /// read now, not any earlier judgement, must show `row`'s owner dead,
    /// draining or unknown. Death and draining never end, so a claim that
    /// follows this read and is fenced on the owner and epoch it saw cannot
    /// take a worker its owner still serves.
    async fn owner_gave_up(&self, row: &WorkerRecord) -> Result<(), PoolError> {
        // The owner's record alone: a reconnect read every instance, a cost
        // that grew with the fleet (docs/design.md §12).
        let ask = StoreRequest::ListInstancesOf { ids: [row.owner].into() };
        match self.store_call(ask).await {
            Ok(StoreReply::Instances { now, list }) if gives_up_sessions(&list, row.owner, now, self.cfg.dead_after_ms) => {
                Ok(())
            }
            Ok(StoreReply::Instances { .. }) => Err(PoolError::OwnerAlive(row.owner)),
            Ok(other) => Err(PoolError::Store(format!("list instances: unexpected reply {other:?}"))),
            Err(e) => Err(PoolError::Store(e)),
        }
    }

    /// One claim of `row` (seen in state `from`) for this instance, asked
    /// again while its outcome is unknown: a landed claim reads as ours at
    /// the next epoch.
    async fn claim(&self, row: &WorkerRecord, from: WorkerState) -> Claimed {
        if self.owns(&row.id) || !self.claiming.lock().unwrap_or_else(|p| p.into_inner()).insert(row.id.clone()) {
            return Claimed::Busy;
        }
        let claimed = self.claim_once(row, from).await;
        self.claiming.lock().unwrap_or_else(|p| p.into_inner()).remove(&row.id);
        claimed
    }

    /// [`Self::claim`] while no other task of this pool claims the worker.
    async fn claim_once(&self, row: &WorkerRecord, from: WorkerState) -> Claimed {
        let req = StoreRequest::ClaimWorker {
            id: row.id.clone(),
            owner: row.owner,
            epoch: row.owner_epoch,
            from: Some(from),
            to: None,
            new_owner: self.me,
            fence: None,
            floor: None,
        };
        let mut last = String::from("no reply");
        for _ in 0..super::WRITE_TRIES {
            match self.raw_call(req.clone()).await {
                Ok(StoreReply::Worker(WorkerCas::Applied(rec))) => return Claimed::Won(rec),
                Ok(StoreReply::Worker(WorkerCas::Rejected { reason, current })) => {
                    let landed = current.as_ref().is_some_and(|c| {
                        c.owner == self.me && row.owner_epoch.checked_add(1) == Some(c.owner_epoch) && c.state == from
                    });
                    return match (landed, reason) {
                        (true, WorkerReject::StaleOwner) => Claimed::Won(current.unwrap_or_else(|| row.clone())),
                        _ => Claimed::Lost(current),
                    };
                }
                Ok(_) => return Claimed::Lost(None),
                Err(e) => last = e.to_string(),
            }
        }
        Claimed::Unknown(last)
    }

    /// Hold a row this instance just claimed, at its new epoch.
    fn adopt(&self, rec: &WorkerRecord, belief: Belief, session: Option<u64>) -> tokio::sync::OwnedMutexGuard<Owned> {
        let owned = Owned {
            org: rec.org.clone(),
            belief,
            epoch: rec.owner_epoch,
            session,
            pod: rec.pod.clone(),
            secret: rec.secret.clone(),
            gen: 0,
        };
        self.hold(&rec.id, owned)
    }

    /// A claim of `row` whose outcome stayed unknown: held, at the row's
    /// epoch, as a refresh that may have landed (one epoch ahead is ours).
    /// The next write about it finds out: if the claim landed memory adopts
    /// the row (a hot one with no session here is parked), else it is
    /// forgotten.
    fn adopt_unsure(&self, row: &WorkerRecord) {
        if self.owns(&row.id) {
            return;
        }
        let belief = Belief::RefreshPending(row.state);
        // A session's worker keeps its session, so nothing else is served
        // on it; the client's next reconnect here settles it.
        let session = row.session.filter(|_| row.state == WorkerState::Hot);
        let _ = self.adopt(row, belief, session);
    }

    /// Whether the worker's pod runs, by one bounded get. Not reaching the
    /// cluster is no verdict (the health check judges later); a pod failed
    /// or gone is.
    async fn pod_runs(&self, pod: &str) -> Result<(), String> {
        match timeout(&*self.clock, ms(self.cfg.call_timeout_ms), self.cluster.get_pod(pod)).await {
            Ok(Ok(Some(p))) if p.phase == PodPhase::Failed => Err(format!("pod {pod} failed")),
            Ok(Ok(None)) => Err(format!("pod {pod} is gone")),
            _ => Ok(()),
        }
    }
}
