//! `store-faults`: persist failures: writes that fail before commit, writes
//! that commit but whose reply is lost, and store stalls.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "store-faults",
    about: "store writes fail before commit, commit with the reply lost, or stall",
    fleet: false,
    tune: |opts, rng| {
        opts.faults.store_fault_per_min = rng.gen_range(0.5..3.0);
        opts.faults.stall_per_min = rng.gen_range(0.0..2.0);
        opts.faults.store_fail_pct = rng.gen_range(0..=60);
        opts.faults.store_lost_reply_pct = rng.gen_range(0..=60);
        opts.faults.duration_ms = (1_000, rng.gen_range(3_000..25_000));
    },
};
