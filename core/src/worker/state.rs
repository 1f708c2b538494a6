//! The worker lifecycle lives with the store, which enforces it on every
//! write (`store/lifecycle.rs`); it is re-exported here, where the pool and
//! the reapers name it.

pub use crate::store::WorkerState;
