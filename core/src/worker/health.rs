//! Health checks (docs/design.md §2.6): which workers' pods are dead.
//!
//! One rule for the pool's own check and the janitor's fleet-wide one: a
//! worker that was hot or hot-idle *before* the pod list was asked for, and
//! whose pod the list shows failed or does not show at all, is dead. A pod
//! that is still pending or running is alive. Workers that became hot after
//! the list was asked for are not judged by it (their pods may be newer than
//! the list).

use crate::cluster::{Pod, PodPhase};
use crate::mutants::{Mutant, Mutants};
use std::collections::BTreeMap;

/// Why a worker's pod counts as dead, for the error its client sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodDeath {
    Failed,
    Vanished,
}

impl PodDeath {
    pub fn reason(&self, worker: &str, pod: &str) -> String {
        match self {
            PodDeath::Failed => format!("worker {worker} lost: its pod {pod} failed"),
            PodDeath::Vanished => format!("worker {worker} lost: its pod {pod} is gone"),
        }
    }
}

/// The workers among `judged` (worker id, pod name) whose pods `listed`
/// shows dead, in `judged`'s order. The mutant `NoHealthCheck` skips the
/// rule: no pod is ever judged dead, by either checker.
pub fn dead_pods<'a>(
    judged: &'a [(String, String)],
    listed: &[Pod],
    mutants: &Mutants,
) -> Vec<(&'a str, &'a str, PodDeath)> {
    if mutants.on(Mutant::NoHealthCheck) {
        return Vec::new();
    }
    let phase: BTreeMap<&str, PodPhase> = listed.iter().map(|p| (p.name.as_str(), p.phase)).collect();
    judged
        .iter()
        .filter_map(|(id, pod)| {
            let death = match phase.get(pod.as_str()) {
                None => PodDeath::Vanished,
                Some(PodPhase::Failed) => PodDeath::Failed,
                Some(PodPhase::Pending | PodPhase::Running) => return None,
            };
            Some((id.as_str(), pod.as_str(), death))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: PodPhase) -> Pod {
        Pod { name: name.into(), labels: Default::default(), created_at: 0, phase }
    }

    #[test]
    fn failed_and_missing_pods_are_dead_running_and_pending_are_not() {
        let judged: Vec<(String, String)> =
            ["a", "b", "c", "d"].iter().map(|w| (w.to_string(), format!("pod-{w}"))).collect();
        let listed = [pod("pod-a", PodPhase::Running), pod("pod-b", PodPhase::Failed), pod("pod-c", PodPhase::Pending)];
        let dead = dead_pods(&judged, &listed, &Mutants::none());
        assert_eq!(dead, vec![("b", "pod-b", PodDeath::Failed), ("d", "pod-d", PodDeath::Vanished)]);
        assert_eq!(dead[0].2.reason("b", "pod-b"), "worker b lost: its pod pod-b failed");
    }

    #[test]
    fn nothing_judged_nothing_dead() {
        assert!(dead_pods(&[], &[pod("pod-x", PodPhase::Failed)], &Mutants::none()).is_empty());
    }

    #[test]
    fn the_mutant_judges_no_pod_dead() {
        let judged = vec![("b".to_string(), "pod-b".to_string())];
        let listed = [pod("pod-b", PodPhase::Failed)];
        assert!(dead_pods(&judged, &listed, &Mutants::only(Mutant::NoHealthCheck)).is_empty());
    }
}
