//! The fault injector: follows a fault plan, doing each fault to the world
//! and recording when it starts and heals.
//!
//! [`Injector::fire`] only dispatches: each fault is applied and healed by
//! its own pair of functions, next to the part of the world it changes —
//! processes ([`process_faults`]), the store and the links to it
//! ([`store_faults`]), the cluster and the links to it ([`cluster_faults`]).
//! Two helpers give every timed fault its shape: [`Injector::hold`] for a
//! fault on the whole world, [`Injector::hold_nested`] for one on a replica,
//! where overlapping faults of one kind nest.

mod cluster_faults;
mod process_faults;
mod store_faults;

use crate::cluster_node::Trap;
use crate::faults::{Fault, FaultPlan, Target};
use crate::options::RunOptions;
use crate::processes::{Nested, ProcessTable};
use crate::world::World;
use haywire_traces::EventKind;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rand::Rng;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// How often a graceful shutdown or an armed trap is checked on.
const POLL: Duration = Duration::from_millis(50);

/// The nodes a link fault cuts a replica off from.
#[derive(Clone, Copy, Debug)]
pub struct Servers {
    pub store: NodeId,
    pub cluster: NodeId,
}

pub struct Injector {
    world: Arc<World>,
    servers: Servers,
    handle: Handle,
    grace_ms: u64,
}

fn sleep_ms(ms: u64) -> crate::timer::Sleep {
    crate::timer::sleep(Duration::from_millis(ms))
}

/// The running faults' tasks, aborted if the injector's run is dropped (a
/// violation ends a run early): a pending task would hold the world past
/// the run (madsim-rs/madsim#242).
struct FaultTasks(Vec<madsim::task::JoinHandle<()>>);

impl Drop for FaultTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Injector {
    pub fn new(world: Arc<World>, servers: Servers, opts: &RunOptions) -> Arc<Self> {
        Arc::new(Injector { world, servers, handle: Handle::current(), grace_ms: opts.shutdown_grace_ms })
    }

    /// Fire every planned fault at its time; each runs as its own task so
    /// faults can overlap.
    pub async fn run(self: Arc<Self>, plan: FaultPlan) {
        let start = madsim::time::Instant::now();
        let mut tasks = FaultTasks(Vec::new());
        for planned in plan.faults {
            let at = start + Duration::from_millis(planned.at_ms);
            crate::timer::sleep_until(at).await;
            let me = self.clone();
            tasks.0.push(madsim::task::spawn(async move { me.fire(planned.fault).await }));
        }
        for t in tasks.0.iter_mut() {
            let _ = t.await;
        }
    }

    async fn fire(&self, fault: Fault) {
        use Nested::*;
        match fault {
            Fault::Crash { target, down_ms } => self.crash(target, down_ms).await,
            Fault::Shutdown { target, down_ms } => {
                self.shutdown_and_restart("shutdown", self.resolve(target), target, down_ms).await
            }
            Fault::RollingDeploy { down_ms, gap_ms } => self.rolling_deploy(down_ms, gap_ms).await,
            Fault::Partition { target, ms } => {
                let i = self.resolve(target);
                self.hold_nested(i, Partition, ms, || self.apply_partition(i), || self.heal_partition(i)).await
            }
            Fault::ClusterPartition { target, ms } => {
                let i = self.resolve(target);
                let (apply, heal) = (|| self.apply_cluster_partition(i), || self.heal_cluster_partition(i));
                self.hold_nested(i, ClusterPartition, ms, apply, heal).await
            }
            Fault::StoreSlow { target, extra_ms, ms } => {
                let i = self.resolve(target);
                let (apply, heal) = (|| self.apply_store_slow(i, extra_ms), || self.heal_store_slow(i));
                self.hold_nested(i, StoreSlow, ms, apply, heal).await
            }
            Fault::StoreFaults { fail_pct, lost_reply_pct, ms } => {
                self.hold(ms, || self.apply_store_faults(fail_pct, lost_reply_pct), || self.heal_store_faults()).await
            }
            Fault::StoreStall { ms } => self.hold(ms, || self.apply_store_stall(ms), || self.heal_store_stall()).await,
            Fault::LeaseOutage { ms } => {
                self.hold(ms, || self.apply_lease_outage(ms), || self.heal_lease_outage()).await
            }
            Fault::Pause { target, ms } => self.pause(target, ms).await,
            Fault::PodFailures { pct, ms } => {
                self.hold(ms, || self.apply_pod_failures(pct), || self.heal_pod_failures()).await
            }
            Fault::ClusterSlow { extra_ms, ms } => {
                self.hold(ms, || self.apply_cluster_slow(extra_ms), || self.heal_cluster_slow()).await
            }
            Fault::ClusterOps { ops, slow_ms, ms } => {
                self.hold(ms, || self.apply_cluster_ops(ops, slow_ms), || self.heal_cluster_ops(ops, slow_ms)).await
            }
            Fault::PodDeath => self.pod_death(),
            Fault::DeleteRefusal { ms } => self.delete_refusal(ms).await,
            Fault::CrashAfterSecret { down_ms, wait_ms } => self.trap(Trap::AfterSecret, down_ms, wait_ms).await,
            Fault::CrashInActivation { down_ms, wait_ms } => self.trap(Trap::InActivation, down_ms, wait_ms).await,
            Fault::ScaleDown { target } => self.scale_down(target).await,
            Fault::ScaleUp => self.scale_up(),
        }
    }

    /// Apply a fault on the whole world, hold it for `ms`, heal it.
    async fn hold(&self, ms: u64, apply: impl FnOnce(), heal: impl FnOnce()) {
        apply();
        sleep_ms(ms).await;
        heal();
    }

    /// Hold a fault of `kind` on replica `i` for `ms`. Overlapping faults of
    /// one kind nest: the first to start applies it, the last to end heals it.
    async fn hold_nested(&self, i: usize, kind: Nested, ms: u64, apply: impl FnOnce(), heal: impl FnOnce()) {
        let first = self.processes().machines[i].depth.enter(kind);
        if first {
            apply();
        }
        sleep_ms(ms).await;
        let last = self.processes().machines[i].depth.leave(kind);
        if last {
            heal();
        }
    }

    fn record(&self, kind: EventKind) {
        self.world.recorder.record("sim", None, kind);
    }

    /// A fault that found nothing to act on: say so in the trace rather
    /// than let it vanish.
    fn skipped(&self, fault: &str, reason: String) {
        self.record(EventKind::FaultSkipped { fault: fault.into(), reason });
    }

    /// "r2 is not running", and how r2 was chosen when the target was the
    /// leader and nobody led.
    fn not_running(&self, i: usize, target: Target) -> String {
        let name = self.machine(i).0;
        match target {
            Target::Leader if !self.leader_known() => format!("{name} is not running (nobody led; {name} was drawn at random)"),
            _ => format!("{name} is not running"),
        }
    }

    fn leader_known(&self) -> bool {
        self.running_leader(&self.processes()).is_some()
    }

    /// The replica running the lease's holder, if one is.
    fn running_leader(&self, p: &ProcessTable) -> Option<usize> {
        self.world.recorder.holder_now().and_then(|h| p.running(h))
    }

    fn processes(&self) -> MutexGuard<'_, ProcessTable> {
        self.world.processes.lock()
    }

    /// The replica a target names right now.
    fn resolve(&self, target: Target) -> usize {
        let p = self.processes();
        let n = p.machines.len();
        match target {
            // Plans are checked against the world before they run; the
            // modulo only keeps an unchecked one from indexing out of range.
            Target::Replica(r) => r.saturating_sub(1) % n,
            Target::Leader => match self.running_leader(&p) {
                Some(i) => i,
                None => self.world.rng.lock().gen_range(0..n),
            },
        }
    }

    /// Clog (`cut`) or unclog both directions of the link between replica
    /// `i` and `server`; the replica's name.
    fn cut_link(&self, i: usize, server: NodeId, cut: bool) -> String {
        let (name, node, _) = self.machine(i);
        let net = NetSim::current();
        if cut {
            net.clog_link(node, server);
            net.clog_link(server, node);
        } else {
            net.unclog_link(node, server);
            net.unclog_link(server, node);
        }
        name
    }

    /// Replica `i`'s name, node, and whether its process is up.
    fn machine(&self, i: usize) -> (String, NodeId, bool) {
        let p = self.processes();
        let m = &p.machines[i];
        (m.name.clone(), m.node.expect("replica nodes exist before faults fire"), m.instance.is_some())
    }
}
