//! `owner-crash`: replicas owning workers in every state crash (the leader
//! often among them): their workers are orphaned and must be reaped, with
//! or without a leader (lease outages: nobody can lead for a while; field
//! report 002).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "owner-crash",
    about: "crash replicas that own workers in every state, the leader often among them; lease outages leave nobody leading",
    fleet: true,
    tune: |opts, rng| {
        opts.faults.crash_per_min = rng.gen_range(0.5..3.0);
        opts.faults.shutdown_per_min = rng.gen_range(0.0..1.0);
        opts.faults.leader_bias = rng.gen_range(0.3..0.9);
        opts.faults.downtime_ms = (500, rng.gen_range(2_000..30_000));
        // Sometimes nobody can lead for a while: reaping must not stop.
        if rng.gen_bool(0.5) {
            opts.faults.lease_outage_per_min = rng.gen_range(0.3..1.0);
            opts.faults.lease_outage_ms = (20_000, rng.gen_range(40_000..100_000));
        }
    },
};
