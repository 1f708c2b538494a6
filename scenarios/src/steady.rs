//! `steady`: no faults at all. One replica leads, the others stand by, the
//! reconciler's fenced effects all land.

use crate::Named;

pub static SCENARIO: Named = Named {
    name: "steady",
    about: "no faults: 1-5 replicas elect one leader and keep it",
    fleet: false,
    tune: |opts, rng| {
        use rand::Rng;
        opts.replicas = rng.gen_range(1..=5);
        opts.initial_replicas = opts.replicas;
        opts.clocks = crate::world::clocks(rng, opts.replicas, 2_000, 5_000);
    },
};
