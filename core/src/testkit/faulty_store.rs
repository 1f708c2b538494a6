//! [`FaultyStore`]: one client's view of the shared in-process store.
//!
//! Each client has its own rules (so one replica can be partitioned while
//! another is not) and its own log of calls. A rule matches requests and
//! says what happens to the next `left` of them (or to all); the first rule
//! that matches decides, and a call no rule matches passes through.

use super::lock;
use crate::clock::{Clock, Millis, SystemClock};
use crate::store::{LocalStore, MemStore, Store, StoreError, StoreReply, StoreRequest};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The shared store every client reaches.
pub type Inner = LocalStore<MemStore, SystemClock>;

type Matcher = Box<dyn Fn(&StoreRequest) -> bool + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Never answered: the request never arrives (a partition).
    Hang,
    /// Refused before commit (`StoreError::Failed`).
    Fail,
    /// Committed; the reply is lost (`StoreError::Unavailable`).
    LoseReply,
    /// Committed at once; the reply arrives this many ms later (the window
    /// of a race, or, past the caller's timeout, a reply it never sees).
    SlowReply(u64),
}

struct Rule {
    matches: Matcher,
    action: Action,
    /// How many more matching calls it applies to (`None`: all).
    left: Option<u32>,
}

#[derive(Clone, Debug)]
pub enum Outcome {
    /// Never answered (partition).
    Hung,
    /// Refused before reaching the backend.
    Failed,
    /// Committed by the backend, reply lost; holds what the backend said.
    Lost(Result<StoreReply, StoreError>),
    /// Answered: at once, or late under a `SlowReply` rule.
    Replied(Result<StoreReply, StoreError>),
}

#[derive(Clone, Debug)]
pub struct Call {
    pub at: Millis,
    pub req: StoreRequest,
    pub outcome: Outcome,
}

impl Call {
    pub fn op(&self) -> &'static str {
        self.req.op()
    }

    /// Did this call reach the store (not hung in a partition)?
    pub fn reached(&self) -> bool {
        !matches!(self.outcome, Outcome::Hung)
    }

    /// What the backend decided, whether or not the caller heard it
    /// (`None`: the call never reached the backend).
    pub fn reply(&self) -> Option<Result<StoreReply, StoreError>> {
        match &self.outcome {
            Outcome::Hung | Outcome::Failed => None,
            Outcome::Lost(r) | Outcome::Replied(r) => Some(r.clone()),
        }
    }
}

/// One client's view of the shared store.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<Inner>,
    clock: SystemClock,
    rules: Arc<Mutex<Vec<Rule>>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// Matches requests of operation `op` (`StoreRequest::op`).
pub fn is_op(op: &'static str) -> impl Fn(&StoreRequest) -> bool + Send + Sync + 'static {
    move |r| r.op() == op
}

impl FaultyStore {
    pub fn new(inner: Arc<Inner>, clock: SystemClock) -> Self {
        FaultyStore { inner, clock, rules: Default::default(), calls: Default::default() }
    }

    pub fn rule(&self, left: Option<u32>, action: Action, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        lock(&self.rules).push(Rule { matches: Box::new(matches), action, left });
    }

    /// Partition this client from the store until healed: every call hangs,
    /// whatever other rule would say.
    pub fn partition(&self) {
        lock(&self.rules).insert(0, Rule { matches: Box::new(|_| true), action: Action::Hang, left: None });
    }

    /// Fail the next `n` matching calls.
    pub fn fail_next(&self, n: u32, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        self.rule(Some(n), Action::Fail, matches);
    }

    /// Fail every matching call until healed.
    pub fn fail_all(&self, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        self.rule(None, Action::Fail, matches);
    }

    /// Commit the next `n` matching calls and lose their replies.
    pub fn lose_next(&self, n: u32, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        self.rule(Some(n), Action::LoseReply, matches);
    }

    /// Hold back the reply of every matching call `ms` ms until healed.
    pub fn slow_replies(&self, ms: u64, matches: impl Fn(&StoreRequest) -> bool + Send + Sync + 'static) {
        self.rule(None, Action::SlowReply(ms), matches);
    }

    /// Drop every rule: calls pass through again.
    pub fn heal(&self) {
        lock(&self.rules).clear();
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// Calls of operation `op` that reached the store.
    pub fn reached(&self, op: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.op() == op && c.reached()).collect()
    }

    fn decide(&self, req: &StoreRequest) -> Option<Action> {
        let mut rules = lock(&self.rules);
        for r in rules.iter_mut() {
            if r.left == Some(0) || !(r.matches)(req) {
                continue;
            }
            if let Some(n) = r.left.as_mut() {
                *n -= 1;
            }
            return Some(r.action);
        }
        None
    }

    fn log(&self, at: Millis, req: StoreRequest, outcome: Outcome) {
        lock(&self.calls).push(Call { at, req, outcome });
    }
}

impl Store for FaultyStore {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        let at = self.clock.now();
        match self.decide(&req) {
            Some(Action::Hang) => {
                self.log(at, req, Outcome::Hung);
                std::future::pending::<()>().await;
                unreachable!()
            }
            Some(Action::Fail) => {
                self.log(at, req, Outcome::Failed);
                Err(StoreError::Failed("injected failure".into()))
            }
            Some(Action::LoseReply) => {
                let out = self.inner.call(req.clone()).await;
                self.log(at, req, Outcome::Lost(out));
                Err(StoreError::Unavailable("injected lost reply".into()))
            }
            Some(Action::SlowReply(ms)) => {
                let out = self.inner.call(req.clone()).await;
                // Logged before the wait: a caller that times out drops
                // this future, yet the call committed.
                self.log(at, req, Outcome::Replied(out.clone()));
                self.clock.sleep(Duration::from_millis(ms)).await;
                out
            }
            None => {
                let out = self.inner.call(req.clone()).await;
                self.log(at, req, Outcome::Replied(out.clone()));
                out
            }
        }
    }
}
