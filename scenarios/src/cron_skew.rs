//! `cron-skew`: cron replicas whose clocks are off by up to a minute (more
//! than the dead threshold) and drift, and that pause, sometimes beyond the
//! configured bounds: slots and deaths must be judged in store time (field
//! report 001, failure 5).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "cron-skew",
    about: "cron replicas with clocks a minute apart, drift and pauses, sometimes beyond the bounds",
    fleet: false,
    tune: |opts, rng| {
        crate::world::with_cron(opts, rng);
        let lease = &opts.replica.lease;
        let beyond = rng.gen_bool(0.25);
        let (max_drift, max_pause) =
            if beyond { (lease.max_drift_ppm as i64 * 10, lease.ttl_ms * 2) } else { (lease.max_drift_ppm as i64, lease.max_pause_ms) };
        opts.clocks = crate::world::clocks(rng, opts.replicas, 60_000, max_drift);
        opts.faults.pause_per_min = rng.gen_range(0.5..4.0);
        opts.faults.max_pause_ms = max_pause;
        opts.faults.crash_per_min = if rng.gen_bool(0.5) { rng.gen_range(0.2..1.0) } else { 0.0 };
    },
};
