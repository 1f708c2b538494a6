//! `cron-failover`: cron job owners crash, shut down and roll while their
//! jobs fall due, with store faults on their claims and fires (field report
//! 001: "kill one pod and verify failover within 30s").

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "cron-failover",
    about: "cron owners crash, shut down and roll while jobs fall due; store faults hit claims and fires",
    fleet: false,
    tune: |opts, rng| {
        crate::world::with_cron(opts, rng);
        let f = &mut opts.faults;
        f.crash_per_min = rng.gen_range(0.5..3.0);
        f.shutdown_per_min = if rng.gen_bool(0.5) { rng.gen_range(0.2..1.5) } else { 0.0 };
        f.rolling_deploys = rng.gen_range(0..=1);
        f.store_fault_per_min = if rng.gen_bool(0.6) { rng.gen_range(0.3..2.0) } else { 0.0 };
        f.store_fail_pct = rng.gen_range(5..=50);
        f.store_lost_reply_pct = rng.gen_range(5..=50);
        f.leader_bias = rng.gen_range(0.0..0.5);
        opts.fault_phase_ms = opts.fault_phase_ms.max(150_000);
    },
};
