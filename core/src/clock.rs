//! The clock seam: local time and sleeping, as this process sees them.
//!
//! Every timer in core (renew interval, renew deadline, retry period, RPC
//! timeouts) is measured on this clock, so a simulator can give each replica
//! its own skewed and drifting clock.

use std::future::Future;
use std::time::Duration;

/// Milliseconds on some clock. Lease expiry is in the *store's* time domain
/// (see [`crate::store`]); everything a replica measures is in its own.
pub type Millis = u64;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since this clock's (arbitrary) origin; never goes back.
    fn now(&self) -> Millis;
    /// Sleep for `d` as measured by this clock.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;
}

/// Why a bounded wait gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Run `fut` for at most `d` of local time.
pub async fn timeout<C: Clock, F: Future>(clock: &C, d: Duration, fut: F) -> Result<F::Output, Elapsed> {
    // `biased` keeps select! from drawing on tokio's own RNG: determinism.
    tokio::select! {
        biased;
        out = fut => Ok(out),
        _ = clock.sleep(d) => Err(Elapsed),
    }
}

/// Sleep until local time `at` (returns at once if it has passed).
pub async fn sleep_until<C: Clock>(clock: &C, at: Millis) {
    let now = clock.now();
    if at > now {
        clock.sleep(Duration::from_millis(at - now)).await;
    }
}

/// The production clock: monotonic time from the async runtime.
#[derive(Clone, Debug)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock { origin: tokio::time::Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        self.origin.elapsed().as_millis() as Millis
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

/// Wall-clock milliseconds since the Unix epoch: a time domain several
/// processes agree on, for hosting a shared store.
#[derive(Clone, Debug, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}
