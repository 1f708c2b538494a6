//! Headroom: the janitor keeps a constant number of placeholder pods so the
//! cluster holds spare nodes for the next spawns (DESIGN.md part 6; field
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
