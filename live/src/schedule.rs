//! The live fault plan, drawn from the seed before the run.
//!
//! Every plan holds each kind of live fault at least once, so every run
//! exercises them all: the leader killed (SIGKILL), a replica frozen
//! briefly (SIGSTOP, then SIGCONT), the leader frozen past its lease, the
//! leader stopped gracefully mid-sweep (SIGTERM), the database restarted, and a
//! random replica killed. Longer runs repeat the
//! round of six (one per two minutes). The seed draws the order of the
//! faults that do not aim at the leader, every time, target and duration.
//! The driver applies them one at a time: a fault starts at its time or
//! when the one before it healed, whichever is later, so the fault phase
//! lasts at least as long as its faults take. The plan is
//! reproducible; the run it drives is not (real processes, real time).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum LiveFault {
    /// SIGKILL the lease holder; start it again after `down_ms`.
    KillLeader { down_ms: u64 },
    /// SIGKILL replica `target` (0-based); start it again after `down_ms`.
    Kill { target: usize, down_ms: u64 },
    /// SIGSTOP replica `target`, SIGCONT after `ms`.
    Pause { target: usize, ms: u64 },
    /// SIGSTOP the lease holder past its lease (another takes over) but not
    /// past its self-fence deadline: it wakes up a deposed leader that must
    /// step down and contend again.
    PauseLeader { ms: u64 },
    /// SIGTERM the lease holder (a graceful stop) mid-sweep, just after the
    /// first effect of a sweep committed; start it again `down_ms` after
    /// it exited.
    StopLeader { down_ms: u64 },
    /// Restart the database server (SQLite: close and reopen the file).
    RestartDatabase,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timed {
    pub at_ms: u64,
    #[serde(flatten)]
    pub fault: LiveFault,
}

/// How long the leader is frozen: past the live lease's TTL plus a retry
/// and a call (12 + 1 + 1 s: another instance holds the lease by then),
/// short of its self-fence deadline counted from its last confirmed
/// heartbeat (the 22 s dead threshold less drift, pause and call bounds is
/// 19.56 s, and the last heartbeat may be one 3 s interval old). See
/// `driver::live_options`.
pub const LONG_PAUSE_MS: (u64, u64) = (14_300, 15_300);

/// A fault's share of the fault phase, at most: room for a failover (TTL +
/// retry) and more. A leader fault waits up to this long for a leader.
pub const SLOT_MS: u64 = 20_000;

/// The plan for a fault phase of `phase_ms` over `replicas` replicas.
pub fn draw(seed: u64, phase_ms: u64, replicas: usize) -> Vec<Timed> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x11fe_fa17);
    let rounds = phase_ms.div_ceil(6 * SLOT_MS).max(1);
    let mut faults = Vec::new();
    for _ in 0..rounds {
        let mut others = vec![
            LiveFault::Pause { target: rng.gen_range(0..replicas), ms: rng.gen_range(300..=2_500) },
            LiveFault::RestartDatabase,
            LiveFault::Kill { target: rng.gen_range(0..replicas), down_ms: rng.gen_range(1_000..=5_000) },
        ];
        others.shuffle(&mut rng);
        // The failovers the acceptance checks measure open each round; the
        // leader frozen past its lease closes it, so the deposed leader
        // wakes with the next round's leader faults (aimed at whoever
        // leads then) ahead of it, not a random fault on itself.
        faults.push(LiveFault::KillLeader { down_ms: rng.gen_range(1_000..=5_000) });
        faults.push(LiveFault::StopLeader { down_ms: rng.gen_range(1_000..=4_000) });
        faults.extend(others);
        faults.push(LiveFault::PauseLeader { ms: rng.gen_range(LONG_PAUSE_MS.0..=LONG_PAUSE_MS.1) });
    }
    let slot = phase_ms / faults.len() as u64;
    faults
        .into_iter()
        .enumerate()
        .map(|(i, fault)| Timed { at_ms: i as u64 * slot + rng.gen_range(slot / 10..=slot / 3).max(1), fault })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_in_every_plan_and_the_seed_decides_the_rest() {
        for seed in 0..50 {
            let plan = draw(seed, 60_000, 3);
            let has = |f: fn(&LiveFault) -> bool| plan.iter().any(|t| f(&t.fault));
            assert!(has(|f| matches!(f, LiveFault::KillLeader { .. })));
            assert!(has(|f| matches!(f, LiveFault::StopLeader { .. })));
            assert!(has(|f| matches!(f, LiveFault::Pause { .. })));
            assert!(has(|f| matches!(f, LiveFault::PauseLeader { .. })));
            assert!(has(|f| matches!(f, LiveFault::Kill { .. })));
            assert!(has(|f| matches!(f, LiveFault::RestartDatabase)));
            assert!(plan.windows(2).all(|w| w[0].at_ms < w[1].at_ms), "in time order: {plan:?}");
            assert!(matches!(plan[0].fault, LiveFault::KillLeader { .. }));
            assert!(matches!(plan[5].fault, LiveFault::PauseLeader { .. }), "the deposed leader wakes last");
            assert!(plan.iter().all(|t| t.at_ms < 60_000));
            assert_eq!(plan, draw(seed, 60_000, 3), "the same seed draws the same plan");
        }
        assert_ne!(draw(1, 60_000, 3), draw(2, 60_000, 3));
    }

    #[test]
    fn longer_runs_repeat_the_round() {
        assert_eq!(draw(7, 200_000, 3).len(), 12);
    }
}
