//! `cluster-partition`: replicas cut off from the cluster API while the
//! store still answers, and pods dying under hot and hot-idle workers
//! (docs/design.md §2.6, field report 004): spawns and drains fail, health
//! checks must find dead workers, and nothing may be lost or leaked.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "cluster-partition",
    about: "replicas cut off from the cluster API (store reachable), pods dying under hot and hot-idle workers",
    fleet: true,
    tune: |opts, rng| {
        let f = &mut opts.faults;
        f.cluster_partition_per_min = rng.gen_range(0.5..3.0);
        f.duration_ms = (2_000, rng.gen_range(5_000..30_000));
        f.pod_death_per_min = rng.gen_range(1.0..6.0);
        f.leader_bias = rng.gen_range(0.0..0.7);
        f.crash_per_min = if rng.gen_bool(0.3) { rng.gen_range(0.1..1.0) } else { 0.0 };
        opts.workload.clients = rng.gen_range(3..=8);
        // Long sessions, so that pods die under workers clients hold.
        opts.workload.session_ms = (2_000, rng.gen_range(10_000..60_000));
    },
};
