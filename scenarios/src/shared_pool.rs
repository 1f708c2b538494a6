//! `shared-pool`: sessions of few orgs spread over many replicas, so that
//! one replica's idle workers are claimed by another (field report 003's
//! shared idle pool; docs/design.md §2.5). Of several replicas claiming one
//! worker exactly one wins; the former owner drops it; each floor counts
//! what its replica owns after the claims. Store replies get lost now and
//! then, so claims with unknown outcomes are exercised too.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "shared-pool",
    about: "sessions spread over many replicas so idle workers are claimed across them; lost store replies",
    fleet: true,
    tune: |opts, rng| {
        let replicas = rng.gen_range(3..=6);
        opts.replicas = replicas;
        opts.initial_replicas = replicas;
        opts.clocks = crate::world::clocks(rng, replicas, 2_000, 5_000);
        let w = &mut opts.workload;
        w.clients = rng.gen_range(4..=12);
        w.think_ms = rng.gen_range(200..=3_000);
        w.session_ms = (200, rng.gen_range(1_000..=10_000));
        w.orgs = rng.gen_range(1..=2);
        opts.replica.fleet.min_hot_idle = rng.gen_range(0..=2);
        let f = &mut opts.faults;
        f.store_fault_per_min = rng.gen_range(0.0..1.5);
        f.store_fail_pct = rng.gen_range(0..=20);
        f.store_lost_reply_pct = rng.gen_range(0..=30);
        f.crash_per_min = if rng.gen_bool(0.5) { rng.gen_range(0.1..1.0) } else { 0.0 };
    },
};
