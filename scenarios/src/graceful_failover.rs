//! `graceful-failover`: the holder is shut down gracefully: it must stop its
//! leader-gated loops, wait for them, release, and only then exit, so that a
//! standby takes over within one retry period (field report 000).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "graceful-failover",
    about: "gracefully shut down the lease holder (mostly); a standby takes over within one retry period",
    fleet: false,
    tune: |opts, rng| {
        opts.faults.shutdown_per_min = rng.gen_range(1.0..4.0);
        opts.faults.leader_bias = rng.gen_range(0.7..1.0);
        opts.faults.downtime_ms = (500, rng.gen_range(1_000..10_000));
    },
};
