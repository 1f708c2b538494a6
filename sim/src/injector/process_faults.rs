//! Faults on replica processes: crashes, graceful shutdowns (alone, in a
//! rolling deploy, or for good on scale down), pauses, scale up, and the
//! restarts that heal them.

use super::{sleep_ms, Injector, POLL};
use crate::faults::Target;
use crate::processes::Nested;
use haywire_traces::EventKind;
use madsim::task::NodeId;

impl Injector {
    /// Kill the process (memory lost); restart it after `down_ms`.
    pub(super) async fn crash(&self, target: Target, down_ms: u64) {
        let i = self.resolve(target);
        if !self.apply_crash(i) {
            return self.skipped("crash", self.not_running(i, target));
        }
        sleep_ms(down_ms).await;
        self.restart(i);
    }

    /// False if the process was not running.
    fn apply_crash(&self, i: usize) -> bool {
        let (name, node, up) = self.machine(i);
        if !up {
            return false;
        }
        self.handle.kill(node);
        self.processes().machines[i].instance = None;
        self.record(EventKind::Crash { target: name });
        true
    }

    /// Shut every replica down and restart it, in turn, `gap_ms` apart.
    pub(super) async fn rolling_deploy(&self, down_ms: u64, gap_ms: u64) {
        self.record(EventKind::RollingDeploy);
        let n = self.processes().machines.len();
        for i in 0..n {
            self.shutdown_and_restart("rolling_deploy", i, Target::Replica(i + 1), down_ms).await;
            sleep_ms(gap_ms).await;
        }
        self.record(EventKind::RollingDeployDone);
    }

    /// Graceful shutdown (killed after the grace period), downtime, restart.
    /// `fault` names it if it finds the replica down.
    pub(super) async fn shutdown_and_restart(&self, fault: &str, i: usize, target: Target, down_ms: u64) {
        let (name, node, up) = self.machine(i);
        if !up {
            return self.skipped(fault, self.not_running(i, target));
        }
        if !self.shutdown(i, node).await {
            return self.skipped(fault, format!("{name} is already shutting down"));
        }
        sleep_ms(down_ms).await;
        self.restart(i);
    }

    /// Freeze the process (madsim pause) for `ms`, if it is up.
    pub(super) async fn pause(&self, target: Target, ms: u64) {
        let i = self.resolve(target);
        let (name, node, up) = self.machine(i);
        if !up {
            return self.skipped("pause", self.not_running(i, target));
        }
        let apply = || {
            self.handle.pause(node);
            self.record(EventKind::Pause { target: name.clone(), ms });
        };
        let heal = || {
            self.handle.resume(node);
            self.record(EventKind::Resume { target: name.clone() });
        };
        self.hold_nested(i, Nested::Pause, ms, apply, heal).await
    }

    /// A running replica shuts down gracefully and leaves the deployment
    /// (never the last one running).
    pub(super) async fn scale_down(&self, target: Target) {
        let i = self.resolve(target);
        let (name, node, up) = self.machine(i);
        let running = self.processes().up_in_deployment();
        if !up {
            return self.skipped("scale_down", self.not_running(i, target));
        }
        if running <= 1 {
            return self.skipped("scale_down", format!("{name} is the last replica running"));
        }
        self.record(EventKind::ScaleDown { target: name });
        self.processes().machines[i].enabled = false;
        self.shutdown(i, node).await;
    }

    /// A spare replica joins the deployment and starts.
    pub(super) fn scale_up(&self) {
        // A machine still shutting down (instance set) is not spare yet.
        let spare = {
            let mut p = self.processes();
            let spare = p.machines.iter().position(|m| !m.enabled && m.instance.is_none());
            spare.map(|i| {
                p.machines[i].enabled = true;
                (i, p.machines[i].name.clone())
            })
        };
        match spare {
            Some((i, name)) => {
                self.record(EventKind::ScaleUp { target: name });
                self.restart(i);
            }
            None => self.skipped("scale_up", "no spare replica: every one is in the deployment or still shutting down".into()),
        }
    }

    /// Graceful shutdown, killed after the grace period. False if the
    /// process was not running.
    pub(super) async fn shutdown(&self, i: usize, node: NodeId) -> bool {
        let (name, tx) = {
            let mut p = self.processes();
            let m = &mut p.machines[i];
            (m.name.clone(), m.shutdown.take())
        };
        let Some(tx) = tx else { return false };
        self.record(EventKind::ShutdownRequested { target: name.clone() });
        let _ = tx.send(true);
        let exited = || self.processes().machines[i].exited;
        let mut waited = 0;
        while !exited() && waited < self.grace_ms {
            crate::timer::sleep(POLL).await;
            waited += POLL.as_millis() as u64;
        }
        if !exited() {
            self.handle.kill(node);
            self.record(EventKind::Exited { target: name, graceful: false });
        }
        self.processes().machines[i].instance = None;
        true
    }

    /// Heal a process fault: start replica `i` again as a new instance,
    /// unless it left the deployment meanwhile.
    pub(super) fn restart(&self, i: usize) {
        let (name, node, up) = self.machine(i);
        if !self.processes().machines[i].enabled {
            // Scaled down while this restart waited: it stays down.
            return;
        }
        if up {
            // Overlapping faults: another fault already brought the replica
            // back (or is shutting it down). Restarting kills that process,
            // and the oracle must know it died.
            self.processes().machines[i].instance = None;
            self.record(EventKind::Crash { target: name.clone() });
        }
        self.record(EventKind::Restart { target: name });
        // Kill first: madsim's restart keeps the old incarnation's sockets.
        self.handle.kill(node);
        self.handle.restart(node);
    }
}
