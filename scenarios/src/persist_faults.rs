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
        // Sometimes long sessions and a tighter stuck-activation threshold
        // (still well past any fault window, so live activations heartbeat
        // through): a row left activating under a served session shows.
        if rng.gen_bool(0.5) {
            let fl = &mut opts.replica.fleet;
            fl.stuck_activating_ms = rng.gen_range(60_000..=120_000);
            opts.workload.session_ms = (500, rng.gen_range(60_000..=150_000));
            opts.quiet_ms = opts.workload.session_ms.1
                + fl.hot_idle_ttl_ms
                + fl.dead_after_ms
                + 3 * fl.reap_interval_ms
                + 10_000;
        }
    },
};
