//! Faults on the cluster API and the links to it: a replica cut off, pod
//! creation failing, the API or one kind of operation slow or failing, pods
//! dying, deletes refused, and crash traps sprung inside a spawn.

use super::{sleep_ms, Injector, POLL};
use crate::cluster_node::{ClusterFaultState, ClusterNode, Trap};
use crate::faults::ClusterOps;
use haywire_core::cluster::{Pod, PodPhase};
use haywire_core::worker::headroom::is_placeholder;
use haywire_traces::EventKind;
use rand::Rng;
use std::sync::MutexGuard;

impl Injector {
    fn cluster(&self) -> MutexGuard<'_, ClusterNode> {
        self.world.cluster.lock()
    }

    /// Cut replica `i` off from the cluster API, both directions.
    pub(super) fn apply_cluster_partition(&self, i: usize) {
        let name = self.cut_link(i, self.servers.cluster, true);
        self.record(EventKind::ClusterPartition { target: name });
    }

    pub(super) fn heal_cluster_partition(&self, i: usize) {
        let name = self.cut_link(i, self.servers.cluster, false);
        self.record(EventKind::ClusterPartitionHealed { target: name });
    }

    /// Pod creation fails `pct` percent of the time.
    pub(super) fn apply_pod_failures(&self, pct: u32) {
        self.cluster().faults.pod_fail_pct = pct;
        self.record(EventKind::PodFailures { pct });
    }

    pub(super) fn heal_pod_failures(&self) {
        self.cluster().faults.pod_fail_pct = 0;
        self.record(EventKind::PodFailuresHealed);
    }

    /// The API answers `extra_ms` late.
    pub(super) fn apply_cluster_slow(&self, extra_ms: u64) {
        self.cluster().faults.slow_ms = extra_ms;
        self.record(EventKind::ClusterSlow { ms: extra_ms });
    }

    pub(super) fn heal_cluster_slow(&self) {
        self.cluster().faults.slow_ms = 0;
        self.record(EventKind::ClusterSlowHealed);
    }

    /// The operations `ops` fail (`slow_ms` = 0) or answer late.
    pub(super) fn apply_cluster_ops(&self, ops: ClusterOps, slow_ms: u64) {
        self.cluster().faults.ops.push((ops, slow_ms));
        self.record(EventKind::ClusterOpsFault { ops: ops.name().into(), slow_ms });
    }

    /// Ends this window only: another on the same operations stays on.
    pub(super) fn heal_cluster_ops(&self, ops: ClusterOps, slow_ms: u64) {
        {
            let mut c = self.cluster();
            let on = &mut c.faults.ops;
            if let Some(i) = on.iter().position(|o| *o == (ops, slow_ms)) {
                on.remove(i);
            }
        }
        self.record(EventKind::ClusterOpsHealed { ops: ops.name().into() });
    }

    /// A running pod dies under its worker (placeholders hold no one).
    pub(super) fn pod_death(&self) {
        let running = |p: &Pod, _: &ClusterFaultState| p.phase == PodPhase::Running && !is_placeholder(&p.labels);
        let died = self.pick_pod(running, |c, name| {
            c.cluster.fail_pod(name);
        });
        match died {
            Some(name) => self.record(EventKind::PodDied { name }),
            None => self.skipped("pod_death", "no worker pod was running".into()),
        }
    }

    /// The cluster refuses to delete one pod for `ms`.
    pub(super) async fn delete_refusal(&self, ms: u64) {
        let Some(name) = self.apply_delete_refusal(ms) else {
            return self.skipped("delete_refusal", "no worker pod to refuse deleting".into());
        };
        sleep_ms(ms).await;
        self.heal_delete_refusal(name);
    }

    fn apply_delete_refusal(&self, ms: u64) -> Option<String> {
        let not_yet = |p: &Pod, f: &ClusterFaultState| !f.refused.contains(&p.name) && !is_placeholder(&p.labels);
        let name = self.pick_pod(not_yet, |c, name| {
            c.faults.refused.insert(name.to_string());
        })?;
        self.record(EventKind::DeleteRefused { name: name.clone(), ms });
        Some(name)
    }

    fn heal_delete_refusal(&self, name: String) {
        self.cluster().faults.refused.remove(&name);
        self.record(EventKind::DeleteRefusalHealed { name });
    }

    /// Pick one of the cluster's pods that `eligible` accepts, with the
    /// world's RNG, and do `act` to it (under the cluster node's lock).
    fn pick_pod(
        &self,
        eligible: impl Fn(&Pod, &ClusterFaultState) -> bool,
        act: impl FnOnce(&mut ClusterNode, &str),
    ) -> Option<String> {
        let mut c = self.cluster();
        let now = self.world.recorder.now_ms();
        let pods: Vec<String> =
            c.cluster.pods(now).into_iter().filter(|p| eligible(p, &c.faults)).map(|p| p.name).collect();
        if pods.is_empty() {
            return None;
        }
        let name = pods[self.world.rng.lock().gen_range(0..pods.len())].clone();
        act(&mut c, &name);
        Some(name)
    }

    /// Arm a crash trap at the cluster; when a replica springs it, restart
    /// it after `down_ms`. Disarm after `wait_ms` if nobody did.
    pub(super) async fn trap(&self, trap: Trap, down_ms: u64, wait_ms: u64) {
        let fault = match trap {
            Trap::AfterSecret => "crash_after_secret",
            Trap::InActivation => "crash_in_activation",
        };
        if !self.cluster().traps.arm(trap) {
            return self.skipped(fault, "another crash trap was still armed".into());
        }
        let mut waited = 0;
        let sprung = loop {
            let sprung = self.cluster().traps.take_sprung();
            if sprung.is_some() {
                break sprung;
            }
            if waited >= wait_ms {
                break None;
            }
            crate::timer::sleep(POLL).await;
            waited += POLL.as_millis() as u64;
        };
        let Some(i) = sprung else {
            self.cluster().traps.disarm();
            return self.skipped(fault, format!("no replica sprang it within {wait_ms} ms"));
        };
        sleep_ms(down_ms).await;
        self.restart(i);
    }
}
