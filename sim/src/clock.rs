//! Per-replica clocks with skew and drift over madsim's one global clock.

use crate::options::ClockSpec;
use haywire_core::{Clock, Millis};
use madsim::time::Instant;
use std::future::Future;
use std::time::Duration;

/// A replica machine's clock: `now = offset + elapsed × (1 + drift)`.
/// Monotonic because drift stays above -100%.
#[derive(Clone, Debug)]
pub struct SimClock {
    origin: Instant,
    spec: ClockSpec,
}

/// Keeps skewed readings positive.
const BASE_MS: i64 = 1_000_000_000;

impl SimClock {
    pub fn new(origin: Instant, spec: ClockSpec) -> Self {
        SimClock { origin, spec }
    }

    fn rate(&self) -> f64 {
        1.0 + self.spec.drift_ppm as f64 / 1e6
    }
}

impl Clock for SimClock {
    fn now(&self) -> Millis {
        let real_us = self.origin.elapsed().as_micros() as f64;
        let local_ms = (real_us * self.rate() / 1000.0).floor() as i64;
        (BASE_MS + self.spec.skew_ms + local_ms) as Millis
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        // A local duration d passes in d / rate of global time; round up so
        // a sleeper never wakes before its local deadline.
        let real = (d.as_micros() as f64 / self.rate()).ceil() as u64;
        crate::timer::sleep(Duration::from_micros(real))
    }
}
