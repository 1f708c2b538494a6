//! The worker lifecycle: which state may follow which.
//!
//! `spawning → activating → hot ⇄ hot_idle → draining → retired`, and `lost`
//! from any live state (owner died, health check failed, spawn failed).
//!
//! It is a store rule: the store refuses every worker write that is not a
//! step of this table (`BadTransition`), so the table lives here, below the
//! worker pool that also reads it (`crate::worker::WorkerState` re-exports it).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Spawning,
    Activating,
    Hot,
    HotIdle,
    Draining,
    Retired,
    Lost,
}

impl WorkerState {
    pub const ALL: [WorkerState; 7] = [
        WorkerState::Spawning,
        WorkerState::Activating,
        WorkerState::Hot,
        WorkerState::HotIdle,
        WorkerState::Draining,
        WorkerState::Retired,
        WorkerState::Lost,
    ];

    /// Retired and lost workers are gone for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, WorkerState::Retired | WorkerState::Lost)
    }

    /// Whether `self → to` is a lifecycle step. Staying in place is allowed
    /// (a heartbeat, or a change of owner by claim).
    pub fn can_become(self, to: WorkerState) -> bool {
        use WorkerState::*;
        if self == to {
            return !self.is_terminal();
        }
        match (self, to) {
            (Spawning, Activating) | (Activating, Hot) | (Hot, HotIdle) | (HotIdle, Hot) => true,
            (Hot | HotIdle, Draining) | (Draining, Retired) => true,
            // A failed spawn or activation, or a reaped stuck row, ends at once.
            (Spawning | Activating, Retired) => true,
            (s, Lost) => !s.is_terminal(),
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Spawning => "spawning",
            WorkerState::Activating => "activating",
            WorkerState::Hot => "hot",
            WorkerState::HotIdle => "hot_idle",
            WorkerState::Draining => "draining",
            WorkerState::Retired => "retired",
            WorkerState::Lost => "lost",
        }
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for WorkerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        WorkerState::ALL.into_iter().find(|w| w.name() == s).ok_or_else(|| format!("unknown worker state '{s}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerState::{self, *};

    #[test]
    fn the_lifecycle_path_is_allowed() {
        for (a, b) in [(Spawning, Activating), (Activating, Hot), (Hot, HotIdle), (HotIdle, Hot), (HotIdle, Draining), (Draining, Retired)] {
            assert!(a.can_become(b), "{a} -> {b}");
        }
    }

    #[test]
    fn terminal_states_are_final_and_nothing_skips_ahead() {
        for s in WorkerState::ALL {
            for t in [Retired, Lost] {
                assert!(!t.can_become(s), "{t} -> {s}");
            }
        }
        for (a, b) in [(Spawning, Hot), (HotIdle, Activating), (Hot, Retired), (Draining, Hot), (Activating, HotIdle)] {
            assert!(!a.can_become(b), "{a} -> {b}");
        }
        for s in WorkerState::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(s.can_become(Lost) && s.can_become(s));
        }
    }

    #[test]
    fn names_round_trip() {
        for s in WorkerState::ALL {
            assert_eq!(s.name().parse::<WorkerState>(), Ok(s));
        }
        assert!("idle".parse::<WorkerState>().is_err());
    }
}
