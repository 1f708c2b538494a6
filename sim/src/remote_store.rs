//! The replica side of the simulated store connection: core's `Store` seam
//! implemented as messages to the store node.

use crate::rpc::{Caller, STORE_TAG};
use crate::store_node::StoreResult;
use haywire_core::store::{Store, StoreError, StoreReply, StoreRequest};
use std::net::SocketAddr;
use std::sync::Arc;

pub struct RemoteStore {
    caller: Arc<Caller>,
    store: SocketAddr,
}

impl RemoteStore {
    pub fn new(caller: Arc<Caller>, store: SocketAddr) -> Self {
        RemoteStore { caller, store }
    }
}

impl Store for RemoteStore {
    /// No timeout here: core bounds every call with its own clock.
    async fn call(&self, req: StoreRequest) -> Result<StoreReply, StoreError> {
        match self.caller.call::<StoreRequest, StoreResult>(self.store, STORE_TAG, req).await {
            Ok(reply) => reply,
            Err(e) => Err(StoreError::Unavailable(e)),
        }
    }
}
