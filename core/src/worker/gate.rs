//! The gate leader-gated work passes before every call it makes: closed once
//! the coordinator cancels the epoch's loops, or once the replica's own
//! clock passes the lease's safe horizon (the renew deadline of the last
//! confirmed renew). The second matters for calls no store can fence, such
//! as cluster deletes: a task that runs on after a long pause, before the
//! coordinator has noticed its deadline, must not send them (docs/design.md
//! §7, S1). Work that is not leader-gated passes an open gate.

use crate::clock::Millis;
use crate::lease::Horizon;
use crate::signal as watch;
use std::sync::Arc;

type Now = Arc<dyn Fn() -> Millis + Send + Sync>;

pub struct Gate(Option<(watch::Receiver<bool>, Horizon, Now)>);

impl Gate {
    /// Always open (the fallback reaper, the pool on its own).
    pub fn none() -> Self {
        Gate(None)
    }

    /// Open while `cancel` is false and `now()` is inside `horizon`.
    pub fn leader(cancel: watch::Receiver<bool>, horizon: Horizon, now: impl Fn() -> Millis + Send + Sync + 'static) -> Self {
        Gate(Some((cancel, horizon, Arc::new(now))))
    }

    /// `Ok` if a call may go out now.
    pub fn open(&self) -> Result<(), String> {
        match &self.0 {
            None => Ok(()),
            Some((rx, _, _)) if *rx.borrow() || rx.has_changed().is_err() => Err("cancelled".into()),
            Some((_, horizon, now)) if !horizon.holds(now()) => Err("past the lease's renew deadline".into()),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn closes_on_cancel_and_at_the_horizon() {
        assert!(Gate::none().open().is_ok());
        let t = Arc::new(AtomicU64::new(100));
        let (tx, rx) = watch::channel(false);
        let horizon = Horizon::new(200);
        let clock = t.clone();
        let g = Gate::leader(rx, horizon.clone(), move || clock.load(Ordering::SeqCst));
        assert!(g.open().is_ok());
        t.store(200, Ordering::SeqCst);
        assert_eq!(g.open(), Err("past the lease's renew deadline".into()));
        horizon.set(300);
        assert!(g.open().is_ok());
        tx.send(true).unwrap();
        assert_eq!(g.open(), Err("cancelled".into()));
    }
}
