//! An in-process [`Store`] over any backend, for production use.
//!
//! A backend is synchronous (SQLite waits up to its busy timeout for a
//! lock held by another process). On a real runtime each call therefore
//! runs on tokio's blocking pool, so the caller's own timers, the RPC
//! timeout and the renew deadline among them, keep firing while the
//! database waits: a call that outlives them is abandoned like a network
//! call, its outcome unknown (docs/design.md §3). In the simulator (`cfg
//! madsim`) the call runs inline: madsim has no blocking pool, and a spawn
//! per call would only reorder the simulation's tasks.

use super::{StoreBackend, StoreError, StoreReply, StoreRequest};
use crate::clock::Clock;
use crate::store::Store;
use std::sync::{Arc, Mutex};

/// Hosts a backend in this process. The clock gives the store's time, so for
/// several processes sharing one SQLite file use a wall clock they agree on.
pub struct LocalStore<B, C> {
    backend: Arc<Mutex<B>>,
    clock: C,
}

fn lock<B>(m: &Mutex<B>) -> std::sync::MutexGuard<'_, B> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B: StoreBackend, C: Clock> LocalStore<B, C> {
    pub fn new(backend: B, clock: C) -> Self {
        LocalStore { backend: Arc::new(Mutex::new(backend)), clock }
    }

    /// The store's clock.
    pub fn clock_ref(&self) -> &C {
        &self.clock
    }

    /// Direct access to the backend (tests, inspection).
    pub fn with_backend<T>(&self, f: impl FnOnce(&mut B) -> T) -> T {
        f(&mut lock(&self.backend))
    }
}

impl<B: StoreBackend + 'static, C: Clock> Store for LocalStore<B, C> {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        let now = self.clock.now();
        #[cfg(madsim)]
        {
            self.with_backend(|b| b.apply(&req, now))
        }
        #[cfg(not(madsim))]
        {
            let backend = self.backend.clone();
            match tokio::task::spawn_blocking(move || lock(&backend).apply(&req, now)).await {
                Ok(reply) => reply,
                // The call panicked or the runtime is shutting down: whether
                // it committed is unknown.
                Err(e) => Err(StoreError::Unavailable(format!("store call did not finish: {e}"))),
            }
        }
    }
}
