//! `leader-crash`: the holder is killed (memory lost, nothing released) and
//! restarts later as a new instance; a standby must take over within TTL +
//! one retry period.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "leader-crash",
    about: "crash the lease holder (mostly) and restart it as a new instance",
    fleet: false,
    tune: |opts, rng| {
        opts.faults.crash_per_min = rng.gen_range(0.5..3.0);
        opts.faults.leader_bias = rng.gen_range(0.6..1.0);
        opts.faults.downtime_ms = (500, rng.gen_range(2_000..30_000));
    },
};
