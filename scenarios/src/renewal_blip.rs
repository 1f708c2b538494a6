//! `renewal-blip`: the holder loses the store for a while (cut off, or the
//! store answers it too slowly), often past the renew deadline. It must step
//! down before its lease can expire for others, and keep contending after
//! (field report 002).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "renewal-blip",
    about: "cut the lease holder off from the store, or slow the store for it, past the renew deadline",
    fleet: false,
    tune: |opts, rng| {
        opts.faults.partition_per_min = rng.gen_range(0.5..3.0);
        opts.faults.store_slow_per_min = rng.gen_range(0.0..2.0);
        opts.faults.store_slow_ms = (1_000, rng.gen_range(2_000..15_000));
        opts.faults.leader_bias = rng.gen_range(0.6..1.0);
        opts.faults.duration_ms = (1_000, rng.gen_range(5_000..40_000));
    },
};
