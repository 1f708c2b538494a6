//! `spawn-faults`: the cluster misbehaves during spawns: pod creation
//! fails, pods die, the API is slow (or only its pod lists, secret lists or
//! deletes fail or lag), and replicas crash between secret and pod or
//! mid-activation (field reports 002, 004).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "spawn-faults",
    about: "pod creation fails, pods die, the API is slow, crashes between secret and pod and mid-activation",
    fleet: true,
    tune: |opts, rng| {
        let f = &mut opts.faults;
        f.pod_fail_per_min = rng.gen_range(0.5..3.0);
        f.pod_fail_pct = rng.gen_range(20..=100);
        f.pod_death_per_min = rng.gen_range(0.0..4.0);
        f.cluster_slow_per_min = rng.gen_range(0.0..1.5);
        f.cluster_slow_ms = (200, rng.gen_range(500..3_000));
        f.crash_after_secret_per_min = rng.gen_range(0.2..1.5);
        f.crash_in_activation_per_min = rng.gen_range(0.0..1.0);
        f.duration_ms = (2_000, rng.gen_range(5_000..30_000));
        // A pod the cluster will not delete for minutes (field report 003:
        // a janitor pass that fails must not stop the others).
        f.delete_refusal_per_min = rng.gen_range(0.2..1.5);
        f.delete_refusal_ms = (30_000, rng.gen_range(60_000..180_000));
        // One kind of cluster call failing or slow for a while (field
        // report 004: a slow pod list must not starve the secret pass).
        f.cluster_ops_per_min = rng.gen_range(0.5..2.0);
        f.cluster_ops_ms = (20_000, rng.gen_range(30_000..90_000));
        f.cluster_ops_slow_pct = rng.gen_range(50..=90);
        // Up to past the orphan-pass deadline.
        f.cluster_ops_slow_ms = (1_000, rng.gen_range(4_000..8_000));
        // Often a short minimum orphan age: then only the view-time rule
        // keeps a spawn's fresh secret and pod from being reaped.
        if rng.gen_bool(0.5) {
            opts.replica.fleet.orphan_min_age_ms = rng.gen_range(500..=5_000);
        }
        opts.workload.clients = rng.gen_range(3..=8);
    },
};
