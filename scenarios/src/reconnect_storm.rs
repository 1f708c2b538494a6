//! `reconnect-storm`: long sessions while their replicas crash, pause, get
//! cut off from the store (long enough to fence themselves), shut down and
//! roll, and pods die under them (field report 003; docs/design.md §2.5).
//! Clients reconnect through the other replicas, some through two at once:
//! each session resumes on its own worker through exactly one replica, or
//! ends with a clear error; a drain ends within its bound.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "reconnect-storm",
    about: "long sessions while replicas crash, pause, get cut off and roll; clients reconnect, some twice at once",
    fleet: true,
    tune: |opts, rng| {
        let w = &mut opts.workload;
        w.clients = rng.gen_range(3..=8);
        w.think_ms = rng.gen_range(500..=5_000);
        // Longer than the drain timeout, so drains hand sessions off.
        w.session_ms = (5_000, rng.gen_range(30_000..=90_000));
        w.dup_reconnect_pct = rng.gen_range(10..=60);
        let f = &mut opts.faults;
        f.crash_per_min = rng.gen_range(0.3..2.0);
        f.shutdown_per_min = rng.gen_range(0.3..2.0);
        f.pause_per_min = rng.gen_range(0.0..2.0);
        f.partition_per_min = rng.gen_range(0.0..1.0);
        f.pod_death_per_min = rng.gen_range(0.5..4.0);
        f.rolling_deploys = rng.gen_range(0..=1);
        f.leader_bias = rng.gen_range(0.0..0.5);
        let dead = opts.replica.fleet.dead_after_ms;
        f.long_partition_per_min = if rng.gen_bool(0.4) { rng.gen_range(0.1..0.6) } else { 0.0 };
        f.long_partition_ms = (dead + 1_000, dead * 2);
        opts.fault_phase_ms = opts.fault_phase_ms.max(150_000);
    },
};
