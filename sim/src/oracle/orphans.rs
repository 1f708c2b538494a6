//! Orphan objects: L2 no leak, for the cluster. A pod or secret of this
//! deployment that no live worker row owns any more (its row ended, or the
//! spawn that made it never got further) is deleted within one reap
//! interval + the RPC slack + two orphan-pass deadlines (the other object
//! pass and this one may each take theirs) of becoming an orphan and
//! reaching the minimum age, while a reaper responsible for it can act and
//! the cluster operations its pass needs are calm (a fault on pod lists
//! excuses no late secret, and the other way round), and, for a pod, the
//! cluster does not refuse to delete it.
//!
//! Who is responsible (docs/design.md §2.4): for a pod, and for the secret of
//! an instance that is dead (once its death is visible to all), a janitor:
//! a healthy leader with a calm store. For the secret of an instance that
//! is up, that instance's own fallback pass: it up and healthy, the store
//! calm (the janitor leaves a live peer's secrets to it).

use super::model::{worker_of_pod, worker_of_secret, Model};
use super::{secs, violation, Check, OracleParams, Violation};

/// The operations each orphan pass needs.
const POD_OPS: [&str; 2] = ["list_pods", "delete_pod"];
const SECRET_OPS: [&str; 2] = ["list_secrets", "delete_secret"];

#[derive(Default)]
pub struct OrphanCheck;

/// The instance that minted worker `w<inst>.<n>`.
fn minter(worker: &str) -> Option<u64> {
    worker.strip_prefix('w')?.split_once('.')?.0.parse().ok()
}

impl OrphanCheck {
    /// Since when a reaper responsible for `name` can act (None: none now).
    fn able_since(&self, p: &OracleParams, m: &Model, janitor: Option<u64>, name: &str) -> Option<u64> {
        let (ops, owner) = match worker_of_secret(name) {
            Some(w) => (&SECRET_OPS, minter(w)),
            None => (&POD_OPS, None),
        };
        let calm = m.ops_calm_since(ops)?;
        let reaper = match owner {
            Some(o) if m.is_up(o) => {
                if !m.store_calm() {
                    return None;
                }
                m.proc_of(o)?.healthy_since?.max(m.calm_since)
            }
            Some(o) => match m.dead.get(&o) {
                Some(&died) => janitor?.max(died + p.fleet.dead_after_us),
                None => janitor?,
            },
            None => janitor?,
        };
        Some(reaper.max(calm))
    }

    fn late(&self, p: &OracleParams, m: &Model, t: u64, able: u64, name: &str, since: u64) -> Option<Violation> {
        let created = m.created.get(name).copied().unwrap_or(0);
        let base = since
            .max(created + p.fleet.orphan_min_age_us)
            .max(able)
            .max(m.refusal_healed.get(name).copied().unwrap_or(0));
        let due = base + p.fleet.reap_us + p.fleet.slack_us + 2 * p.fleet.orphan_pass_us;
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

impl Check for OrphanCheck {
    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        if m.orphans.is_empty() {
            return None;
        }
        let janitor = m.janitor_able_since(t);
        m.orphans.iter().filter(|(name, _)| !m.refused.contains(*name)).find_map(|(name, &since)| {
            let able = self.able_since(p, m, janitor, name)?;
            self.late(p, m, t, able, name, since)
        })
    }
}
