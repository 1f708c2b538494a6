//! [`EventLog`] and [`RecordingObserver`]: every [`CoreEvent`] of a test,
//! with its time and instance. Queries of one kind of event live with the
//! builder whose tests ask them ([`super::lease`], [`super::fleet`]).

use super::lock;
use crate::clock::{Clock, Millis, SystemClock};
use crate::ids::InstanceId;
use crate::observe::{CoreEvent, Observer};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Entry {
    pub at: Millis,
    pub who: InstanceId,
    pub ev: CoreEvent,
}

#[derive(Clone, Default)]
pub struct EventLog(Arc<Mutex<Vec<Entry>>>);

impl EventLog {
    pub fn all(&self) -> Vec<Entry> {
        lock(&self.0).clone()
    }

    pub fn of(&self, who: InstanceId) -> Vec<Entry> {
        lock(&self.0).iter().filter(|e| e.who == who).cloned().collect()
    }

    /// The events of `who`, without their times.
    pub fn events(&self, who: InstanceId) -> Vec<CoreEvent> {
        self.of(who).into_iter().map(|e| e.ev).collect()
    }

    pub fn matching(&self, who: InstanceId, f: impl Fn(&CoreEvent) -> bool) -> Vec<Entry> {
        self.of(who).into_iter().filter(|e| f(&e.ev)).collect()
    }

    /// Index of the first event of `who` matching `f`, panicking if none.
    #[track_caller]
    pub fn index(&self, who: InstanceId, f: impl Fn(&CoreEvent) -> bool) -> usize {
        let evs = self.of(who);
        evs.iter().position(|e| f(&e.ev)).unwrap_or_else(|| panic!("no such event; events of {who}: {evs:#?}"))
    }

    #[track_caller]
    pub fn first(&self, who: InstanceId, f: impl Fn(&CoreEvent) -> bool) -> Entry {
        let i = self.index(who, f);
        self.of(who).swap_remove(i)
    }

    fn push(&self, e: Entry) {
        lock(&self.0).push(e);
    }
}

/// The observer of one instance, writing to the test's [`EventLog`].
pub struct RecordingObserver {
    pub who: InstanceId,
    pub clock: SystemClock,
    pub log: EventLog,
}

impl Observer for RecordingObserver {
    fn observe(&self, ev: CoreEvent) {
        self.log.push(Entry { at: self.clock.now(), who: self.who, ev });
    }
}
