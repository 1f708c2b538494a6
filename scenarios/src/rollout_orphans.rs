//! `rollout-orphans`: rolling deploys mint new instances and orphan the old
//! ones' workers, while the lease holder blips or nobody can lead (a lease
//! outage); orphans must be reaped without waiting for a leader (field
//! report 002).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "rollout-orphans",
    about: "rolling deploys orphan the old instances' workers while the lease holder blips or nobody can lead",
    fleet: true,
    tune: |opts, rng| {
        opts.faults.rolling_deploys = rng.gen_range(1..=2);
        opts.faults.partition_per_min = rng.gen_range(0.5..2.0);
        opts.faults.leader_bias = rng.gen_range(0.7..1.0);
        opts.faults.duration_ms = (5_000, rng.gen_range(15_000..45_000));
        opts.fault_phase_ms = opts.fault_phase_ms.max(150_000);
        // Sometimes nobody can lead for a while: orphans still get reaped.
        if rng.gen_bool(0.5) {
            opts.faults.lease_outage_per_min = rng.gen_range(0.3..1.0);
            opts.faults.lease_outage_ms = (20_000, rng.gen_range(40_000..100_000));
        }
    },
};
