//! Headroom: the janitor keeps a constant number of placeholder pods so the
//! cluster holds spare nodes for the next spawns (docs/design.md §2.6; field
//! report 002, fix 6). The number is configuration, never sized from
//! demand: sized from demand it counted hot-idle workers and amplified any
//! idle leak about 1.75x. Placeholders are not workers: they hold no
//! capacity slot, have no row, and the orphan-pod pass leaves them alone.

use super::gate::Gate;
use super::pool::deployment_selector;
use super::WorkerState;
use crate::clock::{timeout, Clock};
use crate::cluster::{Cluster, ClusterError, ClusterExt, Labels, PodPhase};
use crate::config::{ms, FleetConfig};
use crate::mutants::{Mutant, Mutants};
use crate::store::WorkerRecord;
use std::collections::BTreeSet;

/// Label that marks a pod as a placeholder.
pub const ROLE_LABEL: &str = "haywire/role";
pub const PLACEHOLDER: &str = "placeholder";

/// The labels of this deployment's placeholders.
pub fn placeholder_selector(deployment: &str) -> Labels {
    let mut l = deployment_selector(deployment);
    l.insert(ROLE_LABEL.into(), PLACEHOLDER.into());
    l
}

pub fn is_placeholder(labels: &Labels) -> bool {
    labels.get(ROLE_LABEL).is_some_and(|v| v == PLACEHOLDER)
}

/// Placeholder `n`'s name: deterministic, so every janitor agrees on which
/// ones should exist and a new leader adopts its predecessor's.
pub fn placeholder_name(deployment: &str, n: u32) -> String {
    format!("headroom-{deployment}-{n}")
}

/// How many placeholders to keep: the configured constant. The mutant is
/// the pre-fix rule, a share of demand that counts hot-idle rows.
pub fn wanted(cfg: &FleetConfig, mutants: &Mutants, rows: &[WorkerRecord]) -> u32 {
    if !mutants.on(Mutant::HeadroomCountsIdle) {
        return cfg.headroom_nodes;
    }
    let demand = rows.iter().filter(|w| matches!(w.state, WorkerState::Hot | WorkerState::HotIdle)).count() as u32;
    // ceil(0.75 x demand), as headroomPercent x demand did.
    (demand * 3).div_ceil(4).min(cfg.global_cap)
}

fn flat<T>(r: Result<Result<T, ClusterError>, crate::clock::Elapsed>) -> Result<T, String> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// One headroom pass: exactly placeholders `0..want` exist afterwards if
/// every call succeeded. Extra ones (n >= want, or any with want = 0) and
/// failed ones are deleted; missing ones (and failed ones, again) created.
pub async fn keep<K: Cluster, C: Clock>(
    cluster: &K,
    clock: &C,
    cfg: &FleetConfig,
    want: u32,
    gate: &Gate,
) -> Result<(), String> {
    let call = ms(cfg.call_timeout_ms);
    gate.open()?;
    let (_, pods) = flat(timeout(clock, call, cluster.list_pods(placeholder_selector(&cfg.deployment))).await)
        .map_err(|e| format!("list placeholders: {e}"))?;
    let names: BTreeSet<String> = (0..want).map(|n| placeholder_name(&cfg.deployment, n)).collect();
    let mut present = BTreeSet::new();
    let mut errors = Vec::new();
    for p in &pods {
        if names.contains(&p.name) && p.phase != PodPhase::Failed {
            present.insert(p.name.clone());
            continue;
        }
        gate.open()?;
        if let Err(e) = flat(timeout(clock, call, cluster.delete_pod(&p.name)).await) {
            errors.push(format!("delete placeholder {}: {e}", p.name));
            // Still there: a failed one is not recreated over itself.
            present.insert(p.name.clone());
        }
    }
    for name in names.difference(&present) {
        gate.open()?;
        match timeout(clock, call, cluster.create_pod(name, placeholder_selector(&cfg.deployment))).await {
            // Another janitor's create (or ours with a lost reply) landed.
            Ok(Ok(())) | Ok(Err(ClusterError::AlreadyExists(_))) => {}
            other => errors.push(format!("create placeholder {name}: {}", flat(other).err().unwrap_or_default())),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::cluster::{ClusterRequest, LocalCluster, MemCluster};
    use crate::ids::InstanceId;

    fn row(id: &str, state: WorkerState) -> WorkerRecord {
        WorkerRecord {
            id: id.into(),
            org: "org".into(),
            state,
            owner: InstanceId(1),
            owner_epoch: 1,
            pod: format!("pod-{id}"),
            secret: format!("secret-{id}"),
            session: None,
            created_at: 0,
            updated_at: 0,
            idle_since: 0,
            version: 0,
        }
    }

    /// The fixed rule is the constant whatever the rows; the pre-fix rule
    /// counts hot and hot-idle rows (not spawning, draining or ended ones),
    /// ceil(0.75 x demand), capped at the global cap.
    #[test]
    fn wanted_is_the_constant_and_the_mutant_counts_hot_and_idle() {
        let cfg = FleetConfig { headroom_nodes: 2, global_cap: 5, ..FleetConfig::default() };
        let mut rows: Vec<WorkerRecord> = (0..3).map(|i| row(&format!("idle{i}"), WorkerState::HotIdle)).collect();
        rows.push(row("hot", WorkerState::Hot));
        for (i, st) in [WorkerState::Spawning, WorkerState::Activating, WorkerState::Draining, WorkerState::Retired, WorkerState::Lost]
            .into_iter()
            .enumerate()
        {
            rows.push(row(&format!("other{i}"), st));
        }
        assert_eq!(wanted(&cfg, &Mutants::none(), &rows), 2);
        assert_eq!(wanted(&cfg, &Mutants::none(), &[]), 2);
        let m = Mutants::only(Mutant::HeadroomCountsIdle);
        assert_eq!(wanted(&cfg, &m, &rows), 3, "ceil(0.75 x 4)");
        assert_eq!(wanted(&cfg, &m, &rows[..1]), 1, "ceil(0.75 x 1)");
        assert_eq!(wanted(&cfg, &m, &[]), 0);
        let many: Vec<WorkerRecord> = (0..20).map(|i| row(&format!("i{i}"), WorkerState::HotIdle)).collect();
        assert_eq!(wanted(&cfg, &m, &many), 5, "capped at the global cap");
    }

    fn names(c: &LocalCluster<SystemClock>) -> Vec<String> {
        c.with(|k| k.pods(0)).into_iter().map(|p| p.name).collect()
    }

    /// `keep` makes exactly placeholders 0..want: a failed one is replaced,
    /// one numbered past `want` deleted, a worker pod (not a placeholder)
    /// untouched; a second call changes nothing.
    #[madsim::test]
    async fn keep_replaces_failed_and_deletes_extra_placeholders_only() {
        let clock = SystemClock::new();
        let cfg = FleetConfig::default();
        let c = LocalCluster::new(MemCluster::new(), clock.clone());
        let sel = placeholder_selector(&cfg.deployment);
        c.with(|k| {
            for n in [0, 7] {
                k.apply(&ClusterRequest::CreatePod { name: placeholder_name(&cfg.deployment, n), labels: sel.clone() }, 0).unwrap();
            }
            k.apply(&ClusterRequest::CreatePod { name: "pod-w1.1".into(), labels: deployment_selector(&cfg.deployment) }, 0).unwrap();
            assert!(k.fail_pod(&placeholder_name(&cfg.deployment, 0)));
        });
        keep(&c, &clock, &cfg, 2, &Gate::none()).await.unwrap();
        let want = vec![placeholder_name(&cfg.deployment, 0), placeholder_name(&cfg.deployment, 1), "pod-w1.1".to_string()];
        assert_eq!(names(&c), want);
        let phases: Vec<PodPhase> = c.with(|k| k.pods(0)).into_iter().map(|p| p.phase).collect();
        assert!(!phases.contains(&PodPhase::Failed), "the failed placeholder was replaced: {phases:?}");
        keep(&c, &clock, &cfg, 2, &Gate::none()).await.unwrap();
        assert_eq!(names(&c), want);
        keep(&c, &clock, &cfg, 0, &Gate::none()).await.unwrap();
        assert_eq!(names(&c), vec!["pod-w1.1".to_string()]);
        assert!(!is_placeholder(&deployment_selector(&cfg.deployment)) && is_placeholder(&sel));
    }
}
