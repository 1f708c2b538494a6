//! The fault injector: follows a fault plan, doing each fault to the world
//! and recording when it starts and heals.

use crate::faults::{Fault, FaultPlan, Target};
use crate::options::RunOptions;
use crate::world::{ClusterFaultState, FaultDepth, Trap, World};
use haywire_core::cluster::{Pod, PodPhase};
use haywire_core::worker::headroom::is_placeholder;
use haywire_traces::EventKind;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

/// How often a graceful shutdown is checked for completion.
const EXIT_POLL: Duration = Duration::from_millis(50);

pub struct Injector {
    world: Arc<World>,
    handle: Handle,
    grace_ms: u64,
}

fn sleep_ms(ms: u64) -> madsim::time::Sleep {
    madsim::time::sleep(Duration::from_millis(ms))
}

impl Injector {
    pub fn new(world: Arc<World>, opts: &RunOptions) -> Arc<Self> {
        Arc::new(Injector { world, handle: Handle::current(), grace_ms: opts.shutdown_grace_ms })
    }

    /// Fire every planned fault at its time; each runs as its own task so
    /// faults can overlap.
    pub async fn run(self: Arc<Self>, plan: FaultPlan) {
        let start = madsim::time::Instant::now();
        let mut tasks = Vec::new();
        for planned in plan.faults {
            let at = start + Duration::from_millis(planned.at_ms);
            madsim::time::sleep_until(at).await;
            let me = self.clone();
            tasks.push(madsim::task::spawn(async move { me.fire(planned.fault).await }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    fn record(&self, kind: EventKind) {
        self.world.record("sim", None, kind);
    }

    /// The replica a target names right now.
    fn resolve(&self, target: Target) -> usize {
        let mut g = self.world.lock();
        let n = g.slots.len();
        match target {
            Target::Replica(i) => i % n,
            Target::Leader => {
                let t = g.origin.elapsed().as_micros() as u64;
                let holder = g.oracle.holder_at(t);
                match holder.and_then(|h| g.slots.iter().position(|s| s.instance == Some(h))) {
                    Some(i) => i,
                    None => g.rng.gen_range(0..n),
                }
            }
        }
    }

    fn slot_info(&self, i: usize) -> (String, NodeId, bool) {
        let g = self.world.lock();
        let s = &g.slots[i];
        (s.name.clone(), s.node.expect("replica nodes exist before faults fire"), s.instance.is_some())
    }

    fn store_node(&self) -> NodeId {
        self.world.lock().store_node.expect("store node exists before faults fire")
    }

    async fn fire(&self, fault: Fault) {
        match fault {
            Fault::Crash { target, down_ms } => {
                let i = self.resolve(target);
                let (name, node, up) = self.slot_info(i);
                if !up {
                    return;
                }
                self.handle.kill(node);
                self.world.lock().slots[i].instance = None;
                self.record(EventKind::Crash { target: name.clone() });
                sleep_ms(down_ms).await;
                self.restart(i);
            }
            Fault::Shutdown { target, down_ms } => {
                let i = self.resolve(target);
                self.shutdown_and_restart(i, down_ms).await;
            }
            Fault::RollingDeploy { down_ms, gap_ms } => {
                self.record(EventKind::RollingDeploy);
                let n = self.world.lock().slots.len();
                for i in 0..n {
                    self.shutdown_and_restart(i, down_ms).await;
                    sleep_ms(gap_ms).await;
                }
                self.record(EventKind::RollingDeployDone);
            }
            Fault::Partition { target, ms } => {
                let i = self.resolve(target);
                let (name, node, _) = self.slot_info(i);
                let store = self.store_node();
                let net = NetSim::current();
                if self.nest(i, |d| &mut d.partition, true) {
                    net.clog_link(node, store);
                    net.clog_link(store, node);
                    self.record(EventKind::Partition { target: name.clone() });
                }
                sleep_ms(ms).await;
                if self.nest(i, |d| &mut d.partition, false) {
                    net.unclog_link(node, store);
                    net.unclog_link(store, node);
                    self.record(EventKind::PartitionHealed { target: name });
                }
            }
            Fault::ClusterPartition { target, ms } => {
                let i = self.resolve(target);
                let (name, node, _) = self.slot_info(i);
                let cluster = self.world.lock().cluster_node.expect("cluster node exists before faults fire");
                let net = NetSim::current();
                if self.nest(i, |d| &mut d.cluster_partition, true) {
                    net.clog_link(node, cluster);
                    net.clog_link(cluster, node);
                    self.record(EventKind::ClusterPartition { target: name.clone() });
                }
                sleep_ms(ms).await;
                if self.nest(i, |d| &mut d.cluster_partition, false) {
                    net.unclog_link(node, cluster);
                    net.unclog_link(cluster, node);
                    self.record(EventKind::ClusterPartitionHealed { target: name });
                }
            }
            Fault::StoreSlow { target, extra_ms, ms } => {
                let i = self.resolve(target);
                let (name, _, _) = self.slot_info(i);
                if self.nest(i, |d| &mut d.slow, true) {
                    self.world.lock().store_faults.slow_ms[i] = extra_ms;
                    self.record(EventKind::StoreSlow { target: name.clone(), ms: extra_ms });
                }
                sleep_ms(ms).await;
                if self.nest(i, |d| &mut d.slow, false) {
                    self.world.lock().store_faults.slow_ms[i] = 0;
                    self.record(EventKind::StoreSlowHealed { target: name });
                }
            }
            Fault::StoreFaults { fail_pct, lost_reply_pct, ms } => {
                {
                    let mut g = self.world.lock();
                    g.store_faults.fail_pct = fail_pct;
                    g.store_faults.lost_reply_pct = lost_reply_pct;
                }
                self.record(EventKind::StoreFaults { fail_pct, lost_reply_pct });
                sleep_ms(ms).await;
                {
                    let mut g = self.world.lock();
                    g.store_faults.fail_pct = 0;
                    g.store_faults.lost_reply_pct = 0;
                }
                self.record(EventKind::StoreFaultsHealed);
            }
            Fault::StoreStall { ms } => {
                self.world.lock().store_faults.stall_until =
                    Some(madsim::time::Instant::now() + Duration::from_millis(ms));
                self.record(EventKind::StoreStall { ms });
                sleep_ms(ms).await;
                self.world.lock().store_faults.stall_until = None;
                self.record(EventKind::StoreStallHealed);
            }
            Fault::LeaseOutage { ms } => {
                self.world.lock().store_faults.lease_outage = true;
                self.record(EventKind::LeaseOutage { ms });
                sleep_ms(ms).await;
                self.world.lock().store_faults.lease_outage = false;
                self.record(EventKind::LeaseOutageHealed);
            }
            Fault::Pause { target, ms } => {
                let i = self.resolve(target);
                let (name, node, up) = self.slot_info(i);
                if !up {
                    return;
                }
                if self.nest(i, |d| &mut d.pause, true) {
                    self.handle.pause(node);
                    self.record(EventKind::Pause { target: name.clone(), ms });
                }
                sleep_ms(ms).await;
                if self.nest(i, |d| &mut d.pause, false) {
                    self.handle.resume(node);
                    self.record(EventKind::Resume { target: name });
                }
            }
            Fault::PodFailures { pct, ms } => {
                self.world.lock().cluster_faults.pod_fail_pct = pct;
                self.record(EventKind::PodFailures { pct });
                sleep_ms(ms).await;
                self.world.lock().cluster_faults.pod_fail_pct = 0;
                self.record(EventKind::PodFailuresHealed);
            }
            Fault::ClusterSlow { extra_ms, ms } => {
                self.world.lock().cluster_faults.slow_ms = extra_ms;
                self.record(EventKind::ClusterSlow { ms: extra_ms });
                sleep_ms(ms).await;
                self.world.lock().cluster_faults.slow_ms = 0;
                self.record(EventKind::ClusterSlowHealed);
            }
            Fault::ClusterOps { ops, slow_ms, ms } => {
                self.world.lock().cluster_faults.ops.push((ops, slow_ms));
                self.record(EventKind::ClusterOpsFault { ops: ops.name().into(), slow_ms });
                sleep_ms(ms).await;
                {
                    let mut g = self.world.lock();
                    let on = &mut g.cluster_faults.ops;
                    if let Some(i) = on.iter().position(|o| *o == (ops, slow_ms)) {
                        on.remove(i);
                    }
                }
                self.record(EventKind::ClusterOpsHealed { ops: ops.name().into() });
            }
            Fault::PodDeath => {
                // Pods that die under workers: placeholders hold no one.
                let running = |p: &Pod, _: &ClusterFaultState| p.phase == PodPhase::Running && !is_placeholder(&p.labels);
                let died = self.pick_pod(running, |g, name| {
                    g.cluster.fail_pod(name);
                });
                if let Some(name) = died {
                    self.record(EventKind::PodDied { name });
                }
            }
            Fault::DeleteRefusal { ms } => {
                let not_yet = |p: &Pod, f: &ClusterFaultState| !f.refused.contains(&p.name) && !is_placeholder(&p.labels);
                let refused = self.pick_pod(not_yet, |g, name| {
                    g.cluster_faults.refused.insert(name.to_string());
                });
                let Some(name) = refused else { return };
                self.record(EventKind::DeleteRefused { name: name.clone(), ms });
                sleep_ms(ms).await;
                self.world.lock().cluster_faults.refused.remove(&name);
                self.record(EventKind::DeleteRefusalHealed { name });
            }
            Fault::CrashAfterSecret { down_ms, wait_ms } => self.trap(Trap::AfterSecret, down_ms, wait_ms).await,
            Fault::CrashInActivation { down_ms, wait_ms } => self.trap(Trap::InActivation, down_ms, wait_ms).await,
            Fault::ScaleDown { target } => {
                let i = self.resolve(target);
                let (name, node, up) = self.slot_info(i);
                let running = self.world.lock().slots.iter().filter(|s| s.enabled && s.instance.is_some()).count();
                // Keep at least one replica.
                if !up || running <= 1 {
                    return;
                }
                self.record(EventKind::ScaleDown { target: name });
                self.world.lock().slots[i].enabled = false;
                self.shutdown(i, node).await;
            }
            Fault::ScaleUp => {
                // A slot still shutting down (instance set) is not spare yet.
                let spare = self.world.lock().slots.iter().position(|s| !s.enabled && s.instance.is_none());
                if let Some(i) = spare {
                    let name = self.world.lock().slots[i].name.clone();
                    self.world.lock().slots[i].enabled = true;
                    self.record(EventKind::ScaleUp { target: name });
                    self.restart(i);
                }
            }
        }
    }

    /// Pick one of the cluster's pods that `eligible` accepts, with the
    /// world's RNG, and do `act` to it (under the world's lock).
    fn pick_pod(
        &self,
        eligible: impl Fn(&Pod, &ClusterFaultState) -> bool,
        act: impl FnOnce(&mut crate::world::Inner, &str),
    ) -> Option<String> {
        let mut g = self.world.lock();
        let now = g.origin.elapsed().as_millis() as u64;
        let pods: Vec<String> =
            g.cluster.pods(now).into_iter().filter(|p| eligible(p, &g.cluster_faults)).map(|p| p.name).collect();
        if pods.is_empty() {
            return None;
        }
        let name = pods[g.rng.gen_range(0..pods.len())].clone();
        act(&mut g, &name);
        Some(name)
    }

    /// Arm a crash trap at the cluster; when a replica springs it, restart
    /// it after `down_ms`. Disarm after `wait_ms` if nobody did.
    async fn trap(&self, trap: Trap, down_ms: u64, wait_ms: u64) {
        {
            let mut g = self.world.lock();
            // One trap at a time: a trap sprung but not yet seen by its task
            // still owes that replica its restart.
            if g.cluster_faults.trap.is_some() || g.cluster_faults.trapped.is_some() {
                return;
            }
            g.cluster_faults.trap = Some(trap);
        }
        let mut waited = 0;
        let sprung = loop {
            if let Some(i) = self.world.lock().cluster_faults.trapped.take() {
                break Some(i);
            }
            if waited >= wait_ms {
                break None;
            }
            madsim::time::sleep(EXIT_POLL).await;
            waited += EXIT_POLL.as_millis() as u64;
        };
        let Some(i) = sprung else {
            self.world.lock().cluster_faults.trap = None;
            return;
        };
        sleep_ms(down_ms).await;
        self.restart(i);
    }

    /// Enter (`on`) or leave a nested fault on replica `i`; true when this
    /// is the first to start or the last to end, i.e. when the world changes.
    fn nest(&self, i: usize, field: fn(&mut FaultDepth) -> &mut u32, on: bool) -> bool {
        let mut g = self.world.lock();
        let d = field(&mut g.slots[i].depth);
        if on {
            *d += 1;
            *d == 1
        } else {
            *d = d.saturating_sub(1);
            *d == 0
        }
    }

    /// Graceful shutdown (killed after the grace period), downtime, restart.
    async fn shutdown_and_restart(&self, i: usize, down_ms: u64) {
        let (_, node, up) = self.slot_info(i);
        if up && self.shutdown(i, node).await {
            sleep_ms(down_ms).await;
            self.restart(i);
        }
    }

    /// Graceful shutdown, killed after the grace period. False if the
    /// process was not running.
    async fn shutdown(&self, i: usize, node: NodeId) -> bool {
        let name = self.world.lock().slots[i].name.clone();
        let tx = self.world.lock().slots[i].shutdown.take();
        let Some(tx) = tx else { return false };
        self.record(EventKind::ShutdownRequested { target: name.clone() });
        let _ = tx.send(true);
        let mut waited = 0;
        while !self.world.lock().slots[i].exited && waited < self.grace_ms {
            madsim::time::sleep(EXIT_POLL).await;
            waited += EXIT_POLL.as_millis() as u64;
        }
        if !self.world.lock().slots[i].exited {
            self.handle.kill(node);
            self.record(EventKind::Exited { target: name, graceful: false });
        }
        self.world.lock().slots[i].instance = None;
        true
    }

    fn restart(&self, i: usize) {
        let (name, node, up) = self.slot_info(i);
        if !self.world.lock().slots[i].enabled {
            // Scaled down while this restart waited: it stays down.
            return;
        }
        if up {
            // Overlapping faults: another fault already brought the replica
            // back (or is shutting it down). Restarting kills that process,
            // and the oracle must know it died.
            self.world.lock().slots[i].instance = None;
            self.record(EventKind::Crash { target: name.clone() });
        }
        self.record(EventKind::Restart { target: name });
        // Kill first: madsim's restart keeps the old incarnation's sockets.
        self.handle.kill(node);
        self.handle.restart(node);
    }
}
