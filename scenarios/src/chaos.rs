//! `chaos`: every lease and worker fault at once, each kind switched on or off and its
//! rate drawn per seed.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "chaos",
    about: "lease and worker faults mixed: crashes, shutdowns, deploys, blips, store and cluster faults, pauses, skew, scaling",
    fleet: true,
    tune: |opts, rng| {
        let rate = |rng: &mut rand_chacha::ChaCha8Rng, hi: f64| if rng.gen_bool(0.5) { rng.gen_range(0.1..hi) } else { 0.0 };
        let f = &mut opts.faults;
        f.crash_per_min = rate(rng, 2.0);
        f.shutdown_per_min = rate(rng, 2.0);
        f.partition_per_min = rate(rng, 2.0);
        f.store_slow_per_min = rate(rng, 1.5);
        f.store_fault_per_min = rate(rng, 1.5);
        f.stall_per_min = rate(rng, 1.0);
        f.pause_per_min = rate(rng, 3.0);
        f.rolling_deploys = rng.gen_range(0..=1);
        f.leader_bias = rng.gen_range(0.0..1.0);
        f.store_fail_pct = rng.gen_range(0..=50);
        f.store_lost_reply_pct = rng.gen_range(0..=50);
        f.store_slow_ms = (1_000, rng.gen_range(2_000..15_000));
        f.duration_ms = (1_000, rng.gen_range(3_000..30_000));
        f.pod_fail_per_min = rate(rng, 1.5);
        f.pod_fail_pct = rng.gen_range(10..=80);
        f.pod_death_per_min = rate(rng, 2.0);
        f.cluster_slow_per_min = rate(rng, 1.0);
        f.cluster_slow_ms = (200, rng.gen_range(500..3_000));
        f.crash_after_secret_per_min = rate(rng, 1.0);
        f.crash_in_activation_per_min = rate(rng, 1.0);
        f.scale_per_min = rate(rng, 1.5);
        let lease = &opts.replica.lease;
        let beyond = rng.gen_bool(0.2);
        f.max_pause_ms = if beyond { lease.ttl_ms * 2 } else { lease.max_pause_ms };
        let drift = if beyond { lease.max_drift_ppm as i64 * 10 } else { lease.max_drift_ppm as i64 };
        opts.clocks = crate::world::clocks(rng, opts.replicas, 30_000, drift);
        let f = &mut opts.faults;
        f.lease_outage_per_min = rate(rng, 0.8);
        f.lease_outage_ms = (10_000, rng.gen_range(20_000..90_000));
        f.delete_refusal_per_min = rate(rng, 0.8);
        f.delete_refusal_ms = (10_000, rng.gen_range(20_000..120_000));
        f.cluster_partition_per_min = rate(rng, 1.5);
        let dead = opts.replica.fleet.dead_after_ms;
        f.long_partition_per_min = rate(rng, 0.5);
        f.long_partition_ms = (dead + 1_000, dead * 3);
        f.cluster_ops_per_min = rate(rng, 0.8);
        f.cluster_ops_ms = (5_000, rng.gen_range(10_000..40_000));
        f.cluster_ops_slow_pct = rng.gen_range(0..=100);
        f.cluster_ops_slow_ms = (1_000, rng.gen_range(2_000..6_000));
        // Both session scenarios' ingredients: sessions that outlive their
        // replica (some longer than a drain), reconnects through two
        // replicas at once, and few orgs so idle workers are shared.
        let w = &mut opts.workload;
        if rng.gen_bool(0.5) {
            w.session_ms = (2_000, rng.gen_range(20_000..=90_000));
        }
        w.dup_reconnect_pct = rng.gen_range(0..=50);
        w.orgs = w.orgs.min(rng.gen_range(1..=3));
        // Cron as well, on half the seeds, with admin churn.
        if rng.gen_bool(0.5) {
            crate::world::with_cron(opts, rng);
            opts.workload.cron.admin_every_ms = rng.gen_range(3_000..=20_000);
        }
    },
};
