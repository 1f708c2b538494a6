//! `persist-faults`: store writes fail before commit or commit with the
//! reply lost, on every kind of transition, and the store stalls. A failed
//! write must leave a worker as it was (field report 002).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "persist-faults",
    about: "worker transitions fail before commit or lose their reply; the store stalls",
    fleet: true,
    tune: |opts, rng| {
        let f = &mut opts.faults;
        f.store_fault_per_min = rng.gen_range(0.5..3.0);
        f.stall_per_min = rng.gen_range(0.0..1.0);
        f.store_fail_pct = rng.gen_range(10..=60);
        f.store_lost_reply_pct = rng.gen_range(0..=40);
        f.duration_ms = (2_000, rng.gen_range(5_000..30_000));
        opts.workload.clients = rng.gen_range(3..=8);
        opts.workload.think_ms = rng.gen_range(500..=4_000);
    },
};
