//! An in-process [`Store`] over any backend, for production use.

use super::{StoreBackend, StoreError, StoreReply, StoreRequest};
use crate::clock::Clock;
use crate::store::Store;
use std::sync::Mutex;

/// Hosts a backend in this process. The clock gives the store's time, so for
/// several processes sharing one SQLite file use a wall clock they agree on.
pub struct LocalStore<B, C> {
    backend: Mutex<B>,
    clock: C,
}

impl<B: StoreBackend, C: Clock> LocalStore<B, C> {
    pub fn new(backend: B, clock: C) -> Self {
        LocalStore { backend: Mutex::new(backend), clock }
    }

    /// The store's clock.
    pub fn clock_ref(&self) -> &C {
        &self.clock
    }

    /// Direct access to the backend (tests, inspection).
    pub fn with_backend<T>(&self, f: impl FnOnce(&mut B) -> T) -> T {
        let mut guard = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl<B: StoreBackend + 'static, C: Clock> Store for LocalStore<B, C> {
    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        let now = self.clock.now();
        self.with_backend(|b| b.apply(&req, now))
    }
}
