//! What one replica's pool believes about each worker it owns, as one
//! explicit state machine (docs/design.md §2.3: every transition is a CAS on
//! `(worker, owner, owner_epoch)`; the durable write comes first and memory
//! follows what the store said).
//!
//! A [`Belief`] is the row's state as memory knows it plus how far memory
//! can trust it. Every write the pool makes (a lifecycle step or a
//! self-claim that takes a fresh owner epoch) is classified into a
//! [`Reply`], and [`step`] — a pure function — says what memory now
//! believes, which epoch is ours, and what the caller does [`Next`].
//! The owner epoch and the session stay data of the pool's worker record;
//! the epoch goes in and out of [`step`].

use super::WorkerState;
use crate::ids::InstanceId;
use crate::store::{StoreError, StoreReply, WorkerCas, WorkerReject};

/// What the pool believes about one worker, and the row state it believes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Belief {
    /// Memory matches the row.
    Settled(WorkerState),
    /// A write of ours had an unknown outcome (timed out, reply lost) and
    /// may still land, so the row may be ahead of memory. Never reused
    /// until an epoch refresh fences that write out and memory adopts the
    /// row as it then is.
    Unsure(WorkerState),
    /// A self-claim (epoch bump) of ours had an unknown outcome: if the
    /// store shows us one epoch ahead, it landed (and fenced out every
    /// older write of ours). It may land late, so this holds until a claim
    /// settles the epoch. Otherwise settled: still served (a reuse at the
    /// old epoch that finds the refresh landed adopts it and asks again).
    RefreshPending(WorkerState),
    /// [`Belief::Unsure`] and [`Belief::RefreshPending`] at once: not reused;
    /// a refresh found landed fences the unsure write out and memory adopts
    /// the row.
    UnsureRefreshPending(WorkerState),
    /// Its spawn failed, or its pod died and the lost write failed: never
    /// served again, only retired or marked lost (absorbs `Unsure`: a
    /// failed worker is never reused either way).
    Failed(WorkerState),
    /// [`Belief::Failed`] while a refresh of ours is still pending (the
    /// health check found a refreshing worker dead): one epoch ahead is ours.
    FailedRefreshPending(WorkerState),
}

use Belief::*;

impl Belief {
    /// Every kind of belief, about `s`.
    #[cfg(test)]
    pub(crate) fn all(s: WorkerState) -> [Belief; 6] {
        [Settled(s), Unsure(s), RefreshPending(s), UnsureRefreshPending(s), Failed(s), FailedRefreshPending(s)]
    }

    /// The row state memory believes.
    pub(crate) fn state(self) -> WorkerState {
        match self {
            Settled(s) | Unsure(s) | RefreshPending(s) | UnsureRefreshPending(s) | Failed(s) | FailedRefreshPending(s) => s,
        }
    }

    /// The same belief about another row state.
    pub(crate) fn with_state(self, s: WorkerState) -> Belief {
        match self {
            Settled(_) => Settled(s),
            Unsure(_) => Unsure(s),
            RefreshPending(_) => RefreshPending(s),
            UnsureRefreshPending(_) => UnsureRefreshPending(s),
            Failed(_) => Failed(s),
            FailedRefreshPending(_) => FailedRefreshPending(s),
        }
    }

    /// Never served again: only retired or lost.
    pub(crate) fn is_failed(self) -> bool {
        matches!(self, Failed(_) | FailedRefreshPending(_))
    }

    /// This worker will serve no more sessions.
    pub(crate) fn failed(self) -> Belief {
        match self {
            Settled(s) | Unsure(s) | Failed(s) => Failed(s),
            RefreshPending(s) | UnsureRefreshPending(s) | FailedRefreshPending(s) => FailedRefreshPending(s),
        }
    }

    /// Whether a refresh of ours may have landed unseen.
    pub(crate) fn refresh_pending(self) -> bool {
        matches!(self, RefreshPending(_) | UnsureRefreshPending(_) | FailedRefreshPending(_))
    }

    /// Whether it may be handed to a new session: no write of ours may
    /// still land, it is not failed, and it is hot or hot-idle (the caller
    /// checks org and session).
    pub(crate) fn reusable(self) -> bool {
        matches!(self, Settled(WorkerState::Hot | WorkerState::HotIdle) | RefreshPending(WorkerState::Hot | WorkerState::HotIdle))
    }

    /// Whether a write of ours may still land unseen (before any refresh
    /// fences it out).
    pub(crate) fn is_unsure(self) -> bool {
        matches!(self, Unsure(_) | UnsureRefreshPending(_))
    }

    /// Whether the health check judges it: a hot or hot-idle worker still
    /// served from (a failed one is already never served again).
    pub(crate) fn health_checked(self) -> bool {
        !self.is_failed() && matches!(self.state(), WorkerState::Hot | WorkerState::HotIdle)
    }

    /// A write of ours may still land.
    fn unsure(self) -> Belief {
        match self {
            Settled(s) | Unsure(s) => Unsure(s),
            RefreshPending(s) | UnsureRefreshPending(s) => UnsureRefreshPending(s),
            b => b,
        }
    }

    /// A refresh of ours may have landed unseen.
    fn refreshing(self) -> Belief {
        match self {
            Settled(s) | RefreshPending(s) => RefreshPending(s),
            Unsure(s) | UnsureRefreshPending(s) => UnsureRefreshPending(s),
            Failed(s) | FailedRefreshPending(s) => FailedRefreshPending(s),
        }
    }

    /// Memory adopts the row (a new epoch fenced out every older write).
    fn adopted(self, s: WorkerState) -> Belief {
        if self.is_failed() {
            Failed(s)
        } else {
            Settled(s)
        }
    }
}

/// What the pool asked the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    /// A lifecycle step from the believed state to `to`, bound to `session`
    /// (a same-state step is a heartbeat).
    Move { to: WorkerState, session: Option<u64> },
    /// A self-claim: the same row, a fresh owner epoch (ours + 1).
    Refresh,
}

/// The row as a reply showed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    pub state: WorkerState,
    pub session: Option<u64>,
}

/// The classes of store reply the pool tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The write committed; the row as it now is.
    Applied(Row),
    /// Rejected; the row is ours at our epoch (in another state, or one
    /// the step cannot leave).
    OursSameEpoch(Row),
    /// Rejected; the row is ours one epoch ahead.
    OursOneAhead(Row),
    /// Rejected; the row is someone else's, or ours at another epoch.
    Taken,
    /// Rejected; there is no such row.
    NoRow,
    /// No answer in time, the reply was lost, or an answer of the wrong
    /// shape: the write may or may not have committed.
    Unknown,
    /// The write failed before commit (or was refused): nothing changed.
    NotCommitted,
}

impl Reply {
    /// Every class of reply, with rows in state `s` bound to `session`.
    #[cfg(test)]
    pub(crate) fn all(s: WorkerState, session: Option<u64>) -> [Reply; 7] {
        let r = Row { state: s, session };
        [Reply::Applied(r), Reply::OursSameEpoch(r), Reply::OursOneAhead(r), Reply::Taken, Reply::NoRow, Reply::Unknown, Reply::NotCommitted]
    }

    /// Classify the store's answer to a write by `me` at `epoch`.
    pub(crate) fn classify(me: InstanceId, epoch: u64, reply: Result<StoreReply, StoreError>) -> Reply {
        match reply {
            Ok(StoreReply::Worker(WorkerCas::Applied(rec))) => Reply::Applied(Row { state: rec.state, session: rec.session }),
            // The pool never sends a lease fence; a refused one changed nothing.
            Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::Fenced, .. })) => Reply::NotCommitted,
            Ok(StoreReply::Worker(WorkerCas::Rejected { current: Some(c), .. })) => {
                let row = Row { state: c.state, session: c.session };
                if c.owner != me {
                    Reply::Taken
                } else if c.owner_epoch == epoch {
                    Reply::OursSameEpoch(row)
                } else if c.owner_epoch == epoch.saturating_add(1) {
                    Reply::OursOneAhead(row)
                } else {
                    Reply::Taken
                }
            }
            Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::NoWorker, current: None })) => Reply::NoRow,
            Ok(StoreReply::Worker(WorkerCas::Rejected { current: None, .. })) => Reply::Taken,
            Ok(_) => Reply::Unknown,
            Err(StoreError::Failed(_)) => Reply::NotCommitted,
            Err(_) => Reply::Unknown,
        }
    }
}

/// What the caller does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// The write landed (now, or earlier with its reply lost): the row is
    /// where we asked.
    Done,
    /// The row is ours but elsewhere; memory followed it (and the epoch,
    /// if our refresh landed): ask again from where it is.
    Retry,
    /// Ours, but the step is impossible from where the row is; memory
    /// followed it. Give up.
    Moved,
    /// No answer, or nothing committed: asking again is safe (a landed
    /// write reads as ours); after the tries, give up.
    Unanswered,
    /// Not ours any more (taken over, fenced out): drop it from the pool.
    Forget,
    /// There is no row: nothing durable (an insert that never landed).
    Gone,
}

/// The outcome of one [`step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    pub belief: Belief,
    pub epoch: u64,
    pub next: Next,
}

/// One reply, judged: from `belief` at owner `epoch`, having asked `ask`
/// and heard `reply`, what memory believes, which epoch is ours, and what
/// the caller does.
pub(crate) fn step(belief: Belief, epoch: u64, ask: Ask, reply: Reply) -> Step {
    let at = |belief, next| Step { belief, epoch, next };
    match (ask, reply) {
        (Ask::Move { .. }, Reply::Applied(row)) => at(belief.with_state(row.state), Next::Done),
        // A new epoch fences out every older write of ours: the row is final
        // for them, and memory adopts it. A belief with no write of ours in
        // doubt already is the row (and keeps its state: memory's word, as
        // the mutate-before-persist mutant needs).
        (Ask::Refresh, Reply::Applied(row)) => {
            let belief = match belief {
                Settled(s) | RefreshPending(s) => Settled(s),
                b => b.adopted(row.state),
            };
            Step { belief, epoch: epoch + 1, next: Next::Done }
        }
        // Same owner and epoch, another state: a write of ours landed
        // unseen, or the step cannot be made from where the row is.
        (Ask::Move { to, session }, Reply::OursSameEpoch(row)) => {
            let belief = belief.with_state(row.state);
            if row.state == to && row.session == session {
                at(belief, Next::Done)
            } else if !row.state.can_become(to) {
                at(belief, Next::Moved)
            } else {
                at(belief, Next::Retry)
            }
        }
        // A claim is refused only from an ended row: it cannot be refreshed.
        (Ask::Refresh, Reply::OursSameEpoch(row)) => at(belief.with_state(row.state), Next::Moved),
        // Our own refresh landed unseen: that epoch is ours, and it fenced
        // out every older write of ours.
        (Ask::Move { .. }, Reply::OursOneAhead(row)) if belief.refresh_pending() => {
            Step { belief: belief.adopted(row.state), epoch: epoch + 1, next: Next::Retry }
        }
        (Ask::Refresh, Reply::OursOneAhead(row)) if belief.refresh_pending() => {
            Step { belief: belief.adopted(row.state), epoch: epoch + 1, next: Next::Done }
        }
        // Someone took it over (a janitor claimed it, its epoch moved on
        // without us), a drain included: it is not ours to finish.
        (_, Reply::OursOneAhead(_) | Reply::Taken) => at(belief, Next::Forget),
        (_, Reply::NoRow) => at(belief.with_state(WorkerState::Retired), Next::Gone),
        (Ask::Move { .. }, Reply::Unknown) => at(belief.unsure(), Next::Unanswered),
        (Ask::Refresh, Reply::Unknown) => at(belief.refreshing(), Next::Unanswered),
        (_, Reply::NotCommitted) => at(belief, Next::Unanswered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WorkerRecord;
    use WorkerState::*;

    const ME: InstanceId = InstanceId(1);
    const E: u64 = 7;

    /// Exhaustive over the variants: a new one fails to compile here until
    /// it is numbered, and the count check below until [`Belief::all`]
    /// lists it.
    fn belief_kind(b: Belief) -> usize {
        match b {
            Settled(_) => 0,
            Unsure(_) => 1,
            RefreshPending(_) => 2,
            UnsureRefreshPending(_) => 3,
            Failed(_) => 4,
            FailedRefreshPending(_) => 5,
        }
    }
    const BELIEF_KINDS: usize = 6;

    fn reply_kind(r: Reply) -> usize {
        match r {
            Reply::Applied(_) => 0,
            Reply::OursSameEpoch(_) => 1,
            Reply::OursOneAhead(_) => 2,
            Reply::Taken => 3,
            Reply::NoRow => 4,
            Reply::Unknown => 5,
            Reply::NotCommitted => 6,
        }
    }
    const REPLY_KINDS: usize = 7;

    fn ask_kind(a: Ask) -> usize {
        match a {
            Ask::Move { .. } => 0,
            Ask::Refresh => 1,
        }
    }

    fn asks() -> Vec<Ask> {
        let mut v = vec![Ask::Refresh];
        for to in WorkerState::ALL {
            for session in [None, Some(9)] {
                v.push(Ask::Move { to, session });
            }
        }
        v
    }

    #[test]
    fn the_lists_name_every_variant() {
        let mut b: Vec<usize> = Belief::all(Hot).into_iter().map(belief_kind).collect();
        b.dedup();
        assert_eq!(b, (0..BELIEF_KINDS).collect::<Vec<_>>());
        let mut r: Vec<usize> = Reply::all(Hot, None).into_iter().map(reply_kind).collect();
        r.dedup();
        assert_eq!(r, (0..REPLY_KINDS).collect::<Vec<_>>());
        let mut a: Vec<usize> = asks().into_iter().map(ask_kind).collect();
        a.sort();
        a.dedup();
        assert_eq!(a, [0, 1]);
    }

    /// Every (belief, ask, reply) triple, over every believed state, row
    /// state and session, against the rules each must keep.
    #[test]
    fn every_belief_and_reply_has_a_rule() {
        let mut walked = 0;
        for believed in WorkerState::ALL {
            for belief in Belief::all(believed) {
                for ask in asks() {
                    for row_state in WorkerState::ALL {
                        for row_session in [None, Some(9)] {
                            for reply in Reply::all(row_state, row_session) {
                                let s = step(belief, E, ask, reply);
                                check(belief, ask, reply, s);
                                walked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(walked, 7 * BELIEF_KINDS * 15 * 7 * 2 * REPLY_KINDS);
    }

    fn check(b: Belief, ask: Ask, reply: Reply, s: Step) {
        let ctx = format!("{b:?} asked {ask:?}, heard {reply:?}: {s:?}");
        // Failed stays failed: never served again.
        assert_eq!(s.belief.is_failed(), b.is_failed(), "{ctx}");
        // The epoch only moves up by one, and only when a refresh of ours
        // landed (applied now, or seen landed while pending).
        let landed = matches!((ask, reply), (Ask::Refresh, Reply::Applied(_)))
            || (matches!(reply, Reply::OursOneAhead(_)) && b.refresh_pending());
        assert_eq!(s.epoch, if landed { E + 1 } else { E }, "{ctx}");
        // A landed refresh fenced out every older write: memory adopted the
        // row and is sure of it.
        if landed {
            assert!(matches!(s.belief, Settled(_) | Failed(_)), "{ctx}");
        }
        // Whenever the store showed our row at our (new) epoch, memory is it
        // (a settled belief already was the row: a refresh keeps it).
        match reply {
            Reply::Applied(_) if ask == Ask::Refresh && matches!(b, Settled(_) | RefreshPending(_)) => {
                assert_eq!(s.belief, Settled(b.state()), "{ctx}")
            }
            Reply::Applied(r) | Reply::OursSameEpoch(r) => assert_eq!(s.belief.state(), r.state, "{ctx}"),
            Reply::OursOneAhead(r) if landed => assert_eq!(s.belief.state(), r.state, "{ctx}"),
            _ => {}
        }
        // What the caller does.
        let expected = match (ask, reply) {
            (_, Reply::Applied(_)) => Next::Done,
            (Ask::Move { to, session }, Reply::OursSameEpoch(r)) if r.state == to && r.session == session => Next::Done,
            (Ask::Move { to, .. }, Reply::OursSameEpoch(r)) if r.state.can_become(to) => Next::Retry,
            (_, Reply::OursSameEpoch(_)) => Next::Moved,
            (Ask::Move { .. }, Reply::OursOneAhead(_)) if landed => Next::Retry,
            (Ask::Refresh, Reply::OursOneAhead(_)) if landed => Next::Done,
            (_, Reply::OursOneAhead(_) | Reply::Taken) => Next::Forget,
            (_, Reply::NoRow) => Next::Gone,
            (_, Reply::Unknown | Reply::NotCommitted) => Next::Unanswered,
        };
        assert_eq!(s.next, expected, "{ctx}");
        // An unknown outcome is never forgotten until a refresh resolves it:
        // the worker is not reusable after one (unless only a refresh of
        // ours is in doubt), and a refresh stays pending.
        if reply == Reply::Unknown {
            let refresh_only = ask == Ask::Refresh && matches!(b, Settled(_) | RefreshPending(_));
            assert_eq!(s.belief.reusable(), refresh_only && b.reusable(), "{ctx}");
            assert_eq!(s.belief.is_unsure(), !refresh_only && !b.is_failed(), "{ctx}");
            assert_eq!(s.belief.state(), b.state(), "{ctx}");
            if ask == Ask::Refresh || b.refresh_pending() {
                assert!(s.belief.refresh_pending(), "{ctx}");
            }
        }
        // Nothing committed, nothing learnt.
        if reply == Reply::NotCommitted {
            assert_eq!(s.belief, b, "{ctx}");
        }
        // A pending refresh is sticky until a claim resolves it.
        if b.refresh_pending() && !landed {
            assert!(s.belief.refresh_pending() || s.next == Next::Gone, "{ctx}");
        }
        // Unsure stays unsure until a refresh lands.
        if b.is_unsure() && !landed {
            assert!(s.belief.is_unsure() && !s.belief.reusable(), "{ctx}");
        }
        // Failed or unsure, never reused.
        if s.belief.reusable() {
            assert!(!s.belief.is_failed() && !s.belief.is_unsure(), "{ctx}");
        }
    }

    #[test]
    fn a_drain_taken_over_by_the_janitor_is_forgotten() {
        // The last step of a drain finds the row claimed by another
        // instance (StaleOwner, another owner): the old owner drops it
        // instead of retrying it every upkeep.
        for b in Belief::all(Draining) {
            let s = step(b, E, Ask::Move { to: Retired, session: None }, Reply::Taken);
            assert_eq!(s.next, Next::Forget, "{b:?}");
        }
        let mut rec = record(Draining, 2, E + 1);
        let reply = Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::StaleOwner, current: Some(rec.clone()) }));
        assert_eq!(Reply::classify(ME, E, reply), Reply::Taken);
        // Ours, but at an epoch we never took: fenced out too.
        rec.owner = ME;
        rec.owner_epoch = E + 2;
        let reply = Ok(StoreReply::Worker(WorkerCas::Rejected { reason: WorkerReject::StaleOwner, current: Some(rec) }));
        assert_eq!(Reply::classify(ME, E, reply), Reply::Taken);
    }

    #[test]
    fn a_refresh_that_landed_unseen_is_ours_only_while_pending() {
        let ahead = Reply::OursOneAhead(Row { state: HotIdle, session: None });
        let s = step(RefreshPending(Hot), E, Ask::Move { to: HotIdle, session: None }, ahead);
        assert_eq!(s, Step { belief: Settled(HotIdle), epoch: E + 1, next: Next::Retry });
        let s = step(UnsureRefreshPending(Hot), E, Ask::Move { to: HotIdle, session: None }, ahead);
        assert_eq!(s, Step { belief: Settled(HotIdle), epoch: E + 1, next: Next::Retry });
        let s = step(RefreshPending(HotIdle), E, Ask::Refresh, ahead);
        assert_eq!(s, Step { belief: Settled(HotIdle), epoch: E + 1, next: Next::Done });
        // A failed worker retires from the epoch its refresh took.
        let s = step(FailedRefreshPending(Hot), E, Ask::Move { to: Draining, session: None }, ahead);
        assert_eq!(s, Step { belief: Failed(HotIdle), epoch: E + 1, next: Next::Retry });
        // Without a refresh of ours in flight, one epoch ahead is not ours.
        for b in [Settled(Hot), Unsure(Hot), Failed(Hot)] {
            assert_eq!(step(b, E, Ask::Refresh, ahead).next, Next::Forget);
        }
    }

    #[test]
    fn unsure_workers_are_not_reused_until_a_refresh_adopts_the_row() {
        let s = step(Settled(HotIdle), E, Ask::Move { to: Hot, session: Some(3) }, Reply::Unknown);
        assert_eq!(s.belief, Unsure(HotIdle));
        assert!(!s.belief.reusable());
        let s = step(s.belief, E, Ask::Refresh, Reply::Unknown);
        assert_eq!(s.belief, UnsureRefreshPending(HotIdle));
        assert!(!s.belief.reusable());
        let s = step(s.belief, E, Ask::Refresh, Reply::Applied(Row { state: Hot, session: Some(3) }));
        assert_eq!(s, Step { belief: Settled(Hot), epoch: E + 1, next: Next::Done });
        assert!(s.belief.reusable());
        assert!(!Failed(HotIdle).reusable() && !Settled(Draining).reusable());
        // Only a refresh of ours in doubt: still served.
        let s = step(Settled(HotIdle), E, Ask::Refresh, Reply::Unknown);
        assert_eq!(s.belief, RefreshPending(HotIdle));
        assert!(s.belief.reusable());
    }

    #[test]
    fn replies_are_classified_by_the_row_they_show() {
        let cas = |reason, current| Ok(StoreReply::Worker(WorkerCas::Rejected { reason, current }));
        let row = Row { state: Hot, session: None };
        assert_eq!(Reply::classify(ME, E, cas(WorkerReject::WrongState, Some(record(Hot, 1, E)))), Reply::OursSameEpoch(row));
        assert_eq!(Reply::classify(ME, E, cas(WorkerReject::StaleOwner, Some(record(Hot, 1, E + 1)))), Reply::OursOneAhead(row));
        assert_eq!(Reply::classify(ME, E, cas(WorkerReject::StaleOwner, Some(record(Hot, 2, E)))), Reply::Taken);
        assert_eq!(Reply::classify(ME, E, cas(WorkerReject::NoWorker, None)), Reply::NoRow);
        assert_eq!(Reply::classify(ME, E, cas(WorkerReject::Fenced, Some(record(Hot, 1, E)))), Reply::NotCommitted);
        assert_eq!(Reply::classify(ME, E, Ok(StoreReply::Worker(WorkerCas::Applied(record(Hot, 1, E))))), Reply::Applied(row));
        assert_eq!(Reply::classify(ME, E, Err(StoreError::Failed("x".into()))), Reply::NotCommitted);
        assert_eq!(Reply::classify(ME, E, Err(StoreError::Unavailable("x".into()))), Reply::Unknown);
        assert_eq!(Reply::classify(ME, E, Err(StoreError::Backend("x".into()))), Reply::Unknown);
    }

    fn record(state: WorkerState, owner: u64, epoch: u64) -> WorkerRecord {
        WorkerRecord {
            id: "w".into(),
            org: "o".into(),
            state,
            owner: InstanceId(owner),
            owner_epoch: epoch,
            pod: "pod-w".into(),
            secret: "secret-w".into(),
            session: None,
            created_at: 0,
            updated_at: 0,
            idle_since: 0,
            version: 1,
        }
    }
}
