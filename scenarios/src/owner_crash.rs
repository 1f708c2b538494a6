//! `owner-crash`: replicas owning workers in every state crash (the leader
//! often among them): their workers are orphaned and must be reaped, with
//! or without a leader (field report 002).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "owner-crash",
    about: "crash replicas that own workers in every state, the leader often among them",
    fleet: true,
    tune: |opts, rng| {
        opts.faults.crash_per_min = rng.gen_range(0.5..3.0);
        opts.faults.shutdown_per_min = rng.gen_range(0.0..1.0);
        opts.faults.leader_bias = rng.gen_range(0.3..0.9);
        opts.faults.downtime_ms = (500, rng.gen_range(2_000..30_000));
    },
};
