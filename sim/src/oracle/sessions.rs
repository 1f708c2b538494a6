//! Sessions as clients see them: S5 no live session lost, S6 exclusive and
//! isolated (safety, on every event) and L3 progress (liveness).
//!
//! A client *holds* a worker from the moment it got it until it says it is
//! done; that, not any field a replica wrote, is what these checks protect.
//!
//! - S5: while its client holds it and the process that served it is up, a
//!   worker is never drained, retired or marked lost, and its pod and secret
//!   are never deleted. While its client still waits for it (spawn or
//!   activation under way, the store binding it to that session), only the
//!   serving process's own spawn may give it up or delete its pod or
//!   secret. A session never starts on a worker whose secret the cluster no
//!   longer holds, or whose pod was deleted while alive; nor on one whose
//!   pod the cluster reported failed or gone longer ago than the
//!   health-check bound (counted from when the serving process could
//!   check: up, reaching the store and a calm cluster). Like S2, S5 is promised only for serving
//!   processes whose pauses and clock drift stay within the bounds they are
//!   configured for: beyond them a replica cannot fence itself in time.
//! - S6: a session starts only on a hot worker of its own org whose row the
//!   store binds to that very session, and that no other client holds.
//! - L3: a request to a replica that stayed up and healthy, in a calm
//!   world, is answered (worker or error) within the client's patience; and
//!   when the run ends, no request is still unanswered.

use super::model::{worker_of_pod, worker_of_secret, Answer, Model};
use super::{secs, violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind, Lifecycle, WorkerOp};
use std::collections::BTreeSet;

#[derive(Default)]
pub struct SessionCheck {
    /// Instances paused longer than the configured bound: beyond their
    /// bounds, like S2, S5 is not promised (they cannot fence in time).
    overpaused: BTreeSet<u64>,
}

impl SessionCheck {
    /// Whether `inst` stays within the pause and drift bounds it is
    /// configured for.
    fn within_bounds(&self, p: &OracleParams, m: &Model, inst: u64) -> bool {
        !m.drifts_beyond(&p.fleet, inst) && !self.overpaused.contains(&inst)
    }

    /// S5: `what` happened to `worker` at `t`; fine unless a client holds
    /// it and the process that served it is up.
    fn unheld(&self, p: &OracleParams, m: &Model, t: u64, worker: &str, what: String) -> Option<Violation> {
        // A worker whose pod died is lost whoever holds it: ending it is the
        // health check's job (its client is told, see `told`).
        if m.pod_dead_since(worker).is_some() {
            return None;
        }
        let (sid, s) =
            m.holders(worker).find(|(_, s)| s.server.is_some_and(|i| m.is_up(i) && self.within_bounds(p, m, i)))?;
        violation(
            "S5",
            t,
            format!(
                "no live session lost: {what} while {} holds it for session {sid} (served by i{}, still up, since {})",
                s.client,
                s.server.unwrap_or(0),
                match &s.answer {
                    Answer::Holding { at, .. } => secs(*at),
                    _ => "?".into(),
                }
            ),
        )
    }

    /// S5 before the client has it: a worker the store binds to a session
    /// whose client is still waiting for it (a spawn or activation under
    /// way), served by a process that is up, is given up only by that
    /// process's own spawn (after which the client gets an error): never
    /// taken over and ended by a reaper, nor its pod or secret deleted by
    /// another instance. `by_server` says whether the step is one the serving
    /// process's spawn may take (given the server and the row).
    fn awaited(
        &self,
        p: &OracleParams,
        m: &Model,
        t: u64,
        worker: &str,
        by_server: impl Fn(u64, &super::model::Row) -> bool,
        what: String,
    ) -> Option<Violation> {
        let row = m.workers.get(worker).filter(|r| !r.state.is_terminal())?;
        let sid = row.session?;
        let s = m.sessions.get(&sid).filter(|s| s.answer == Answer::Pending)?;
        let server = s.server.filter(|&i| m.is_up(i) && self.within_bounds(p, m, i))?;
        if by_server(server, row) {
            return None;
        }
        violation(
            "S5",
            t,
            format!(
                "no live session lost: {what} while {} is still waiting for it (session {sid}, served by i{server}, \
                 still up)",
                s.client
            ),
        )
    }

    /// S5 and S6 when a client gets `worker` for `session`.
    fn started(&self, p: &OracleParams, m: &Model, t: u64, session: u64, worker: &str) -> Option<Violation> {
        let Some(s) = m.sessions.get(&session) else {
            return violation("S6", t, format!("exclusive: session {session} started on {worker} but was never requested"));
        };
        if s.answer != Answer::Pending {
            return violation("S6", t, format!("exclusive: session {session} started twice (now on {worker})"));
        }
        let Some(row) = m.workers.get(worker) else {
            return violation("S6", t, format!("exclusive: session {session} got {worker}, which the store never held"));
        };
        if let Some((other, o)) = m.holders(worker).next() {
            return violation(
                "S6",
                t,
                format!("exclusive: session {session} got {worker} while {} still holds it for session {other}", o.client),
            );
        }
        if row.org != s.org {
            return violation(
                "S6",
                t,
                format!("isolated: session {session} of {} got {worker}, a worker of {}", s.org, row.org),
            );
        }
        // A worker whose pod died may be marked lost by its health check
        // while the answer is on its way: the client is then told at once
        // (L3 judges that); it was still handed out exclusively.
        let lost_dead = row.state == Lifecycle::Lost && m.pod_dead_since(worker).is_some();
        if !lost_dead && (row.state != Lifecycle::Hot || row.session != Some(session)) {
            return violation(
                "S6",
                t,
                format!(
                    "exclusive: session {session} got {worker} while the store holds it {} for {}",
                    row.state,
                    row.session.map_or("no session".to_string(), |x| format!("session {x}"))
                ),
            );
        }
        let (pod, secret) = (format!("pod-{worker}"), format!("secret-{worker}"));
        let secret_gone = m.created.contains_key(&secret) && !m.secrets.contains(&secret);
        // A pod that failed first is the health check's to find (below); one
        // deleted while alive leaves a worker nobody can use.
        let pod_deleted_alive = m.pods_gone.contains_key(&pod) && !m.failed_then_gone.contains(&pod);
        if secret_gone || pod_deleted_alive {
            return violation(
                "S5",
                t,
                format!("no session on a broken worker: session {session} got {worker} whose pod or secret no longer exists"),
            );
        }
        // Counted from when the serving process could check: up, and able
        // to reach the store and the cluster.
        let checking_since = s
            .server
            .and_then(|i| m.proc_of(i))
            .and_then(|r| r.healthy_since)
            .filter(|_| m.cluster_calm())
            .map(|h| h.max(m.cluster_calm_since));
        let due = m.pod_dead_since(worker).zip(checking_since).map(|(d, h)| d.max(h) + p.fleet.health_bound_us);
        if let Some(d) = m.pod_dead_since(worker).filter(|_| due.is_some_and(|due| t > due)) {
            return violation(
                "S5",
                t,
                format!(
                    "no session on a dead worker: session {session} got {worker} whose pod failed or went at {} \
                     (health-check bound {})",
                    secs(d),
                    secs(p.fleet.health_bound_us)
                ),
            );
        }
        None
    }
}

impl Check for SessionCheck {
    fn observe(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        let t = e.t;
        match &e.kind {
            EventKind::WorkerWrite { from, op, id, applied: true, worker: Some(after), .. } => {
                let before = m.workers.get(id);
                let ends = matches!(after.state, Lifecycle::Draining | Lifecycle::Retired | Lifecycle::Lost);
                if !ends || before.map(|w| w.state) == Some(after.state) {
                    return None;
                }
                let what = format!("{id} was moved to {} by i{from}", after.state);
                let own_spawn = |server: u64, row: &super::model::Row| *op == WorkerOp::Update && *from == server && row.owner == server;
                self.unheld(p, m, t, id, what.clone()).or_else(|| self.awaited(p, m, t, id, own_spawn, what))
            }
            EventKind::PodDeleted { from, name, .. } => {
                let w = worker_of_pod(name)?;
                let what = format!("pod {name} was deleted by i{from}");
                self.unheld(p, m, t, w, what.clone()).or_else(|| self.awaited(p, m, t, w, |server, _| *from == server, what))
            }
            EventKind::SecretDeleted { from, name, .. } => {
                let w = worker_of_secret(name)?;
                let what = format!("secret {name} was deleted by i{from}");
                self.unheld(p, m, t, w, what.clone()).or_else(|| self.awaited(p, m, t, w, |server, _| *from == server, what))
            }
            EventKind::SessionStarted { session, worker } => self.started(p, m, t, *session, worker),
            EventKind::Pause { target, ms } if ms * 1000 > p.fleet.max_pause_us => {
                if let Some(inst) = m.rep(target).and_then(|r| r.inst) {
                    self.overpaused.insert(inst);
                }
                None
            }
            EventKind::SessionTimedOut { session } => {
                let s = m.sessions.get(session)?;
                // L3: a replica that stayed up and healthy, with a healthy
                // store and cluster, answers (worker or error) in time.
                let server_ok = s
                    .server
                    .and_then(|inst| m.proc_of(inst))
                    .is_some_and(|r| r.healthy_since.is_some_and(|h| h <= s.requested_at));
                let calm = m.store_calm()
                    && m.calm_since <= s.requested_at
                    && m.cluster_calm()
                    && m.cluster_calm_since <= s.requested_at;
                if server_ok && calm {
                    return violation(
                        "L3",
                        t,
                        format!(
                            "progress: session {session} asked i{} at {} and got neither a worker nor an error in {}",
                            s.server.unwrap_or(0),
                            secs(s.requested_at),
                            secs(t - s.requested_at)
                        ),
                    );
                }
                None
            }
            _ => None,
        }
    }

    /// L3 for held sessions: a client whose worker's pod died is told (its
    /// session ends with an error) within the health-check bound, counted
    /// from when the serving process, the store and the cluster were all
    /// able to act.
    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        if !m.store_calm() || !m.cluster_calm() {
            return None;
        }
        for (worker, sessions, died) in m.held_with_dead_pods() {
            for sid in sessions {
                let Some(s) = m.sessions.get(sid) else { continue };
                let Some(inst) = s.server else { continue };
                if !m.is_up(inst) || !self.within_bounds(p, m, inst) {
                    continue;
                }
                let Some(healthy) = m.proc_of(inst).and_then(|r| r.healthy_since) else { continue };
                let from = died.max(healthy).max(m.calm_since).max(m.cluster_calm_since);
                if t > from + p.fleet.health_bound_us {
                    return violation(
                        "L3",
                        t,
                        format!(
                            "progress: {} still holds {worker} for session {sid} although its pod died at {}; i{inst} \
                             (up and healthy) did not end the session with an error within the health-check bound {}",
                            s.client,
                            secs(died),
                            secs(p.fleet.health_bound_us)
                        ),
                    );
                }
            }
        }
        None
    }

    /// L3: when the run ends, every request sent has had its answer.
    fn finish(&mut self, _p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        let (sid, s) = m.sessions.iter().find(|(_, s)| s.answer == Answer::Pending)?;
        violation(
            "L3",
            t,
            format!(
                "progress: session {sid} that {} asked i{} for at {} is still unanswered when the run ends",
                s.client,
                s.server.unwrap_or(0),
                secs(s.requested_at)
            ),
        )
    }
}
