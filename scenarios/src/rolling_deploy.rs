//! `rolling-deploy`: every replica in turn shuts down gracefully and starts
//! again as a new instance.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "rolling-deploy",
    about: "one or two rolling deploys: each replica in turn shuts down and restarts as a new instance",
    fleet: false,
    tune: |opts, rng| {
        opts.faults.rolling_deploys = rng.gen_range(1..=2);
        opts.fault_phase_ms = opts.fault_phase_ms.max(120_000);
    },
};
