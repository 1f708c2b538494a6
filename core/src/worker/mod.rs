//! Workers: the lifecycle state machine, the per-replica pool, and the
//! reapers that keep idle workers from leaking.

mod belief;
pub mod floor;
pub mod gate;
pub mod headroom;
pub mod health;
pub mod pool;
pub mod reaper;
mod state;

pub use gate::Gate;
pub use pool::{Pool, PoolError, Sessions};
pub use reaper::{Janitor, Reapers};
pub use state::WorkerState;
