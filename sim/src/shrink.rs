//! Shrinking a failure: the smallest fault plan, found greedily, under which
//! the same seed still breaks the same invariant.

use crate::faults::{Fault, FaultPlan};
use crate::runner::{run_with_plan, Outcome, RunConfig};
use crate::scenario::Scenario;

pub struct Shrunk {
    /// The failing run with the smallest plan found.
    pub outcome: Outcome,
    /// Faults in the seed's own plan.
    pub original_faults: usize,
    /// Runs it took.
    pub runs: usize,
}

/// Shrink the failure of `seed`, from its own plan or from `start` (a plan
/// saved by an earlier shrink, to resume it); `Ok(None)` when that run
/// passes. Removes faults one at a time, then halves durations, keeping
/// each change only if the run still breaks the same invariant; at most
/// `max_runs` runs.
pub fn shrink(
    scenario: &dyn Scenario,
    seed: u64,
    cfg: &RunConfig,
    max_runs: usize,
    start: Option<FaultPlan>,
) -> Result<Option<Shrunk>, String> {
    let first = run_with_plan(scenario, seed, cfg, start)?;
    let Some(v) = &first.violation else { return Ok(None) };
    let invariant = v.invariant;
    let original_faults = first.plan.faults.len();
    let mut best = first;
    let mut runs = 1;
    let attempt = |plan: FaultPlan, best: &mut Outcome, runs: &mut usize| -> Result<bool, String> {
        if *runs >= max_runs {
            return Ok(false);
        }
        *runs += 1;
        let o = run_with_plan(scenario, seed, cfg, Some(plan))?;
        let same = o.violation.as_ref().is_some_and(|w| w.invariant == invariant);
        if same {
            *best = o;
        }
        Ok(same)
    };

    // 1. Drop faults, last first, until no single removal keeps the failure.
    let mut changed = true;
    while changed {
        changed = false;
        for i in (0..best.plan.faults.len()).rev() {
            let mut plan = best.plan.clone();
            plan.faults.remove(i);
            changed |= attempt(plan, &mut best, &mut runs)?;
        }
    }
    // 2. Halve each remaining fault's durations while it still fails.
    for i in 0..best.plan.faults.len() {
        loop {
            let mut plan = best.plan.clone();
            if !halve(&mut plan.faults[i].fault) || !attempt(plan, &mut best, &mut runs)? {
                break;
            }
        }
    }
    Ok(Some(Shrunk { outcome: best, original_faults, runs }))
}

/// Halve a fault's durations (not below 100 ms); false if nothing changed.
fn halve(f: &mut Fault) -> bool {
    fn h(v: &mut u64) -> bool {
        let n = (*v / 2).max(100);
        let changed = n < *v;
        *v = n;
        changed
    }
    match f {
        Fault::Crash { down_ms, .. } | Fault::Shutdown { down_ms, .. } => h(down_ms),
        Fault::RollingDeploy { down_ms, gap_ms } => h(down_ms) | h(gap_ms),
        Fault::Partition { ms, .. }
        | Fault::ClusterPartition { ms, .. }
        | Fault::StoreStall { ms }
        | Fault::LeaseOutage { ms }
        | Fault::Pause { ms, .. } => {
            h(ms)
        }
        Fault::StoreSlow { extra_ms, ms, .. } => h(extra_ms) | h(ms),
        Fault::StoreFaults { ms, .. } | Fault::PodFailures { ms, .. } | Fault::DeleteRefusal { ms } => h(ms),
        Fault::ClusterSlow { extra_ms, ms } => h(extra_ms) | h(ms),
        // A slow answer stays slow (0 means failing, not faster).
        Fault::ClusterOps { ms, .. } => h(ms),
        Fault::CrashAfterSecret { down_ms, .. } | Fault::CrashInActivation { down_ms, .. } => h(down_ms),
        Fault::PodDeath | Fault::ScaleDown { .. } | Fault::ScaleUp => false,
    }
}
