//! `pause-and-skew`: process pauses and clocks that are offset and run fast
//! or slow. Most seeds stay inside the bounds the replicas are configured
//! for, where S2 must hold; some go beyond, where only S1 must.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "pause-and-skew",
    about: "process pauses and per-replica clock skew and drift, sometimes beyond the configured bounds",
    fleet: false,
    tune: |opts, rng| {
        let lease = &opts.replica.lease;
        let beyond = rng.gen_bool(0.25);
        let (max_drift, max_pause) = if beyond {
            (lease.max_drift_ppm as i64 * 20, lease.ttl_ms * 2)
        } else {
            (lease.max_drift_ppm as i64, lease.max_pause_ms)
        };
        opts.clocks = crate::world::clocks(rng, opts.replicas, 60_000, max_drift);
        opts.faults.pause_per_min = rng.gen_range(1.0..6.0);
        opts.faults.max_pause_ms = max_pause;
        opts.faults.leader_bias = rng.gen_range(0.3..1.0);
    },
};
