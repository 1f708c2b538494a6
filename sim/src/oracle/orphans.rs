//! Orphan objects: L2 no leak, for the cluster. A pod or secret of this
//! deployment that no live worker row owns any more (its row ended, or the
//! spawn that made it never got further) is deleted within one reap
//! interval + the RPC slack of becoming an orphan and reaching the minimum
//! age, by a janitor that can act: a healthy leader, a calm store and a
//! calm cluster, and, for a pod, a cluster that does not refuse to delete
//! it. Only the janitor deletes orphans, so nothing else excuses it.

use super::model::{worker_of_pod, worker_of_secret, Model};
use super::{secs, violation, Check, OracleParams, Violation};

#[derive(Default)]
pub struct Orphans;

impl Orphans {
    fn late(&self, p: &OracleParams, m: &Model, t: u64, janitor: u64, name: &str, since: u64) -> Option<Violation> {
        let created = m.created.get(name).copied().unwrap_or(0);
        let base = since
            .max(created + p.fleet.orphan_min_age_us)
            .max(janitor)
            .max(m.cluster_calm_since)
            .max(m.refusal_healed.get(name).copied().unwrap_or(0));
        let due = base + p.fleet.reap_us + p.fleet.slack_us;
        if t <= due {
            return None;
        }
        let (kind, worker) = match (worker_of_pod(name), worker_of_secret(name)) {
            (Some(w), _) => ("pod", w),
            (_, Some(w)) => ("secret", w),
            _ => ("object", name),
        };
        let row = m.workers.get(worker).map_or("no row".to_string(), |r| format!("its worker {}", r.state));
        violation(
            "L2",
            t,
            format!(
                "no orphan {kind}: {name} ({row}) has been an orphan since {} and was due to be deleted by {}",
                secs(since),
                secs(due)
            ),
        )
    }
}

impl Check for Orphans {
    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        if m.orphans.is_empty() || !m.cluster_calm() {
            return None;
        }
        let janitor = m.janitor_able_since(t)?;
        m.orphans
            .iter()
            .filter(|(name, _)| !m.refused.contains(*name))
            .find_map(|(name, &since)| self.late(p, m, t, janitor, name, since))
    }
}
