//! The bounds a world's oracle judges by (docs/design.md §7), from its
//! options alone: pure functions of the options record, with no simulator
//! in them, so a judge of a recorded run (simulated or live) computes the
//! same bounds.

use crate::oracle::{FleetParams, OracleParams};
use crate::options::RunOptions;

/// The oracle's timing bounds for a world: retry and RPC bounds stretched by
/// the slowest clock in it, plus slack for network latency.
pub fn oracle_params(opts: &RunOptions) -> OracleParams {
    let l = &opts.replica.lease;
    let slowest = opts.clocks.iter().map(|c| c.drift_ppm).min().unwrap_or(0).min(0);
    let real = |local_ms: u64| -> u64 { local_ms * 1_000_000 / (1_000_000 - slowest.unsigned_abs()) * 1000 };
    let slack_us = 1_000_000 + 4 * opts.latency_ms.1 * 1000;
    let sweep = opts.replica.reconciler.max_sweep_ms(l.rpc_timeout_ms);
    let f = &opts.replica.fleet;
    OracleParams {
        takeover_us: real(l.retry_period_ms + 2 * l.rpc_timeout_ms) + slack_us,
        contend_us: real(l.retry_period_ms + l.release_timeout_ms + sweep + 2 * l.rpc_timeout_ms) + slack_us,
        enforce_s2: opts.drift_within_bounds(),
        fleet: FleetParams {
            org_cap: f.org_cap,
            global_cap: f.global_cap,
            ttl_us: f.hot_idle_ttl_ms * 1000,
            reap_us: real(f.reap_interval_ms),
            dead_after_us: real(f.dead_after_ms + f.heartbeat_ms),
            dead_threshold_us: f.dead_after_ms * 1000,
            heartbeat_us: real(f.heartbeat_ms),
            orphan_min_age_us: f.orphan_min_age_ms * 1000,
            orphan_pass_us: real(f.orphan_pass_deadline_ms),
            headroom_nodes: f.headroom_nodes,
            max_pause_us: l.max_pause_ms * 1000,
            drift_beyond: opts.clocks.iter().map(|c| c.drift_ppm.unsigned_abs() > l.max_drift_ppm).collect(),
            stale_spawn_us: f.stale_spawn_ms * 1000,
            min_hot_idle: f.min_hot_idle,
            slack_us: opts.bounds.rpc_slack_ms * 1000,
            quick_us: 4 * f.call_timeout_ms * 1000 + 8 * opts.latency_ms.1 * 1000,
            health_bound_us: match opts.bounds.health_check_ms {
                0 => (opts.fault_phase_ms + opts.quiet_ms) * 1000,
                ms => ms * 1000,
            },
            resume_window_us: real(f.resume_window_ms),
            client_timeout_us: real(f.client_timeout_ms),
            drain_bound_us: real(f.drain_timeout_ms + l.release_timeout_ms + 2 * f.call_timeout_ms)
                + opts.bounds.rpc_slack_ms * 1000,
            reconnect_us: opts.workload.reconnect_ms * 1000,
            // The network's longest latency, madsim's delay of a send and
            // of a receive (its shortest sleep, 1 ms, each), and a
            // millisecond for its timers' rounding.
            reply_flight_us: (opts.latency_ms.1 + 3) * 1000,
        },
        cron: cron_params(opts, &real, slack_us),
    }
}

/// Cron's bounds (docs/design.md §7): each the replicas' own timings
/// stretched by the slowest clock, plus the options' slack.
fn cron_params(opts: &RunOptions, real: &dyn Fn(u64) -> u64, slack_us: u64) -> crate::oracle::CronParams {
    let (c, f) = (&opts.replica.cron, &opts.replica.fleet);
    let slack = slack_us + opts.bounds.rpc_slack_ms * 1000;
    // A death is known within the threshold plus a heartbeat; the next
    // reconcile acts on it; its claims and fires take a few calls.
    let dead = real(f.dead_after_ms + f.heartbeat_ms);
    let calls = 4 * f.call_timeout_ms * 1000 + 8 * opts.latency_ms.1 * 1000;
    crate::oracle::CronParams {
        enabled: c.enabled && opts.workload.cron.jobs > 0,
        reconcile_us: real(c.reconcile_ms),
        misfire_us: c.misfire_after_ms * 1000,
        run_timeout_us: real(c.run_timeout_ms),
        cap: c.cap(),
        // Two reconciles: a job one replica saw ownerless at one it claims
        // at the next, whichever replica its target was.
        due_us: dead + 2 * real(c.reconcile_ms) + c.misfire_after_ms * 1000 + calls + slack,
        owner_us: dead + 2 * real(c.reconcile_ms) + calls + slack,
        edit_us: real(c.reconcile_ms) + calls + slack,
        handoff_us: calls + slack,
        settings_us: real(c.settings_poll_ms) + calls + slack,
        estimate_ms: 4 * opts.latency_ms.1 + 50,
    }
}
