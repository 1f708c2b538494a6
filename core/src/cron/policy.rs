//! The missed-slot policy: what becomes of slots found long after they fell
//! due (a crash failover, a pause, a store outage). Quartz calls these
//! misfire instructions; Kubernetes' CronJob and Temporal state the same
//! choice.

use crate::clock::Millis;
use crate::store::FireKind;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissPolicy {
    /// Run the newest missed slot now, record the older ones missed (unless
    /// an on-time slot runs anyway).
    FireOnce,
    /// Record every missed slot missed; run only on-time ones.
    Skip,
    /// Run the newest `limit` missed slots, oldest first; record the rest.
    CatchUp { limit: u32 },
}

/// What each due slot becomes, oldest first. `due` are the job's unsettled
/// slots up to `now` (store time), ascending; a slot is missed when more
/// than `misfire_after_ms` has passed since it fell due.
pub fn decide(due: &[Millis], now: Millis, misfire_after_ms: u64, policy: MissPolicy) -> Vec<(Millis, FireKind)> {
    let late = due.iter().take_while(|s| now.saturating_sub(**s) > misfire_after_ms).count();
    let on_time = due.len() - late;
    let run_late = match policy {
        MissPolicy::Skip => 0,
        MissPolicy::FireOnce => usize::from(on_time == 0 && late > 0),
        MissPolicy::CatchUp { limit } => late.min(limit as usize),
    };
    due.iter()
        .enumerate()
        .map(|(i, s)| {
            // On-time slots (index >= late) run, and the newest `run_late` late ones.
            let kind = if i >= late - run_late { FireKind::Run } else { FireKind::Missed };
            (*s, kind)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use FireKind::{Missed, Run};

    #[test]
    fn each_policy_settles_every_slot() {
        let due = [10, 20, 30, 95];
        // At 100 with a 10 ms grace: 10, 20, 30 are late, 95 is on time.
        assert_eq!(decide(&due, 100, 10, MissPolicy::FireOnce), vec![(10, Missed), (20, Missed), (30, Missed), (95, Run)]);
        assert_eq!(decide(&due[..3], 100, 10, MissPolicy::FireOnce), vec![(10, Missed), (20, Missed), (30, Run)]);
        assert_eq!(decide(&due, 100, 10, MissPolicy::Skip), vec![(10, Missed), (20, Missed), (30, Missed), (95, Run)]);
        assert_eq!(decide(&due, 100, 10, MissPolicy::CatchUp { limit: 2 }), vec![(10, Missed), (20, Run), (30, Run), (95, Run)]);
        assert_eq!(decide(&due, 100, 10, MissPolicy::CatchUp { limit: 9 }), vec![(10, Run), (20, Run), (30, Run), (95, Run)]);
        assert_eq!(decide(&[], 100, 10, MissPolicy::FireOnce), vec![]);
        assert_eq!(decide(&[95], 100, 10, MissPolicy::Skip), vec![(95, Run)], "on time runs under any policy");
    }
}
