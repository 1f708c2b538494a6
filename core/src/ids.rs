//! Identity of a process incarnation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A process incarnation. Every process start uses a fresh id, so a restarted
/// replica is a new instance and never inherits what its predecessor held.
/// Who mints it is the caller's business (the simulator counts; production can
/// use anything unique).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId(pub u64);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}
