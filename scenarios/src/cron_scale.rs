//! `cron-scale`: a cron fleet that starts with one replica and scales up to
//! three and back down while jobs fall due (field report 001's test plan:
//! "scale 1 -> 2 -> 3 -> 1, verify no job loss or duplicate execution").

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "cron-scale",
    about: "cron fleet scaled 1 -> 3 -> 1 and back while jobs fall due; departing replicas hand their jobs over",
    fleet: false,
    tune: |opts, rng| {
        opts.replicas = 3;
        opts.initial_replicas = 1;
        opts.clocks = crate::world::clocks(rng, 3, 2_000, 5_000);
        crate::world::with_cron(opts, rng);
        let f = &mut opts.faults;
        f.scale_per_min = rng.gen_range(1.5..4.0);
        f.shutdown_per_min = rng.gen_range(0.0..1.0);
        f.rolling_deploys = rng.gen_range(0..=1);
        opts.fault_phase_ms = opts.fault_phase_ms.max(150_000);
    },
};
