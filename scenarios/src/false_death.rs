//! `false-death`: a replica cut off from the store for longer than the
//! dead threshold while it serves sessions (field report 001, failure mode
//! 4). The fleet holds it dead and takes its workers; it must have fenced
//! itself first (ended its sessions with an error, stopped writing) and
//! rejoin as a new instance; the store must never revive the dead one.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "false-death",
    about: "a replica cut off from the store past the dead threshold while serving: it must fence itself and rejoin",
    fleet: true,
    tune: |opts, rng| {
        let dead = opts.replica.fleet.dead_after_ms;
        let f = &mut opts.faults;
        f.long_partition_per_min = rng.gen_range(0.3..1.5);
        f.long_partition_ms = (dead + 1_000, dead * rng.gen_range(2..=4));
        f.partition_per_min = rng.gen_range(0.0..1.0);
        f.duration_ms = (2_000, rng.gen_range(5_000..25_000));
        f.leader_bias = rng.gen_range(0.0..0.6);
        opts.workload.clients = rng.gen_range(3..=8);
        opts.workload.session_ms = (2_000, rng.gen_range(20_000..90_000));
    },
};
