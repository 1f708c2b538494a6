//! `scale-up-down`: replicas leave for good and spares join while sessions
//! run; what a departed replica owned must not leak.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "scale-up-down",
    about: "replicas leave for good and spare ones join while sessions run",
    fleet: true,
    tune: |opts, rng| {
        opts.replicas = rng.gen_range(3..=6);
        opts.initial_replicas = rng.gen_range(1..=opts.replicas);
        opts.clocks = crate::world::clocks(rng, opts.replicas, 2_000, 5_000);
        opts.faults.scale_per_min = rng.gen_range(1.0..4.0);
        opts.faults.leader_bias = rng.gen_range(0.0..0.7);
    },
};
