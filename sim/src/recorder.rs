//! The run's recorder: the trace and the oracle that judges it, on one
//! clock (global simulated time since the run began).
//!
//! Every event goes through [`RunRecorder::record`], which stamps it, appends
//! it to the trace and hands it to the oracle at once; the first violation
//! ends the trace (and wakes the runner). The oracle's deadline checks run
//! on its tick, every [`TICK_US`] of simulated time: each event first runs
//! the ticks that passed before it, as [`crate::oracle::judge`] does, so the
//! world needs no ticker task of its own (a timer and a task poll per tick,
//! more ticks than events in most scenarios; docs/design.md §7, §12).

use crate::oracle::{Oracle, Violation, TICK_US};
use haywire_traces::{Event, EventKind};
use madsim::time::Instant;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// What a finished run leaves: its events, any violation, and the oracle's
/// measures (idle overdue µs over the run and after the quiet period;
/// placeholder peak and pod-µs).
pub type Recording = (Vec<Event>, Option<Violation>, (u64, u64), (usize, u128));

pub struct RunRecorder {
    /// When the run began: time zero of the trace and of every clock.
    origin: Instant,
    log: Mutex<Log>,
    /// Notified once when the oracle reports a violation.
    violated: Notify,
}

struct Log {
    events: Vec<Event>,
    oracle: Oracle,
    violation: Option<Violation>,
    /// The run's recording was taken: what its tasks do as they are torn
    /// down is no part of it.
    taken: bool,
    /// The oracle's next tick (µs): every tick before an event runs before
    /// the oracle sees the event.
    next_tick: u64,
}

impl RunRecorder {
    /// Starts the run's clock now.
    pub fn new(oracle: Oracle) -> Self {
        RunRecorder {
            origin: Instant::now(),
            log: Mutex::new(Log { events: Vec::new(), oracle, violation: None, taken: false, next_tick: TICK_US }),
            violated: Notify::new(),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic elsewhere must not hide the trace.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Global simulated time since the run began.
    pub fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Record an event and let the oracle judge it.
    pub fn record(&self, node: &str, inst: Option<u64>, kind: EventKind) {
        let mut g = self.log();
        if g.violation.is_some() || g.taken {
            return; // the run is over; keep the trace ending at the violation
        }
        let t = self.now_us();
        // A deadline that passed before this event ends the trace there.
        if self.ticks_before(&mut g, t) {
            return;
        }
        let event = Event { t, node: node.to_string(), inst, kind };
        let verdict = g.oracle.observe(&event);
        g.events.push(event);
        if let Some(v) = verdict {
            self.violate(&mut g, t, v);
        }
    }

    /// Run the oracle's ticks before `t` not yet run (deadlines that expire
    /// without any event); true if one found a violation.
    fn ticks_before(&self, g: &mut Log, t: u64) -> bool {
        while g.next_tick < t {
            let tick = g.next_tick;
            g.next_tick += TICK_US;
            if let Some(v) = g.oracle.check_time(tick) {
                self.violate(g, tick, v);
                return true;
            }
        }
        false
    }

    /// End-of-run checks, after the quiet period: the ticks still due,
    /// then the deadlines and end-of-run checks at the end itself.
    pub fn finish(&self) {
        let mut g = self.log();
        let t = self.now_us();
        if g.violation.is_some() || self.ticks_before(&mut g, t) {
            return;
        }
        if let Some(v) = g.oracle.check_time(t).or_else(|| g.oracle.finish(t)) {
            self.violate(&mut g, t, v);
        }
    }

    /// End the trace at `t` with `v`.
    fn violate(&self, g: &mut Log, t: u64, v: Violation) {
        g.events.push(Event {
            t,
            node: "sim".into(),
            inst: None,
            kind: EventKind::Violation { invariant: v.invariant.to_string(), message: v.message.clone() },
        });
        g.violation = Some(v);
        self.violated.notify_one();
    }

    /// Resolves once the oracle has reported a violation (at once if it
    /// already has).
    pub async fn violated(&self) {
        self.violated.notified().await
    }

    /// The lease holder per the store, if its lease is unexpired now.
    pub fn holder_now(&self) -> Option<u64> {
        let t = self.now_us();
        self.log().oracle.holder_at(t)
    }

    /// The trace's last event: how many came before it.
    pub fn end_run(&self) {
        let events = self.log().events.len() as u64;
        self.record("sim", None, EventKind::RunEnd { events });
    }

    /// Take what the run recorded.
    pub fn take(&self) -> Recording {
        let mut g = self.log();
        g.taken = true;
        let overdue = g.oracle.idle_overdue_us();
        let headroom = g.oracle.headroom_measure();
        (std::mem::take(&mut g.events), g.violation.take(), overdue, headroom)
    }
}
