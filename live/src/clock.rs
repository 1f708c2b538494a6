//! The one clock every process of a live run stamps its events with: the
//! system's monotonic clock (CLOCK_MONOTONIC is shared by every process on
//! the machine, never jumps, and is what tokio's timers run on), counted
//! from the run's origin, which the driver hands each process.

use nix::time::{clock_gettime, ClockId};

/// Microseconds on the machine's monotonic clock.
pub fn mono_us() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000 + ts.tv_nsec() as u64 / 1_000,
        // CLOCK_MONOTONIC exists on every Linux; without it nothing here
        // could be timed at all.
        Err(e) => panic!("CLOCK_MONOTONIC unavailable: {e}"),
    }
}

/// Time since a run's origin, as the trace counts it.
#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    pub origin_us: u64,
}

impl RunClock {
    /// A run starting now.
    pub fn start() -> Self {
        RunClock { origin_us: mono_us() }
    }

    pub fn now_us(&self) -> u64 {
        mono_us().saturating_sub(self.origin_us)
    }

    pub fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }
}
