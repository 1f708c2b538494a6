//! `cron-edits`: an admin who keeps editing, pausing, resuming, deleting
//! and creating jobs, and writing settings, while owners crash, replicas
//! are cut off from the store and the store stalls; many jobs on cron
//! expressions fall due together against a small fleet cap.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "cron-edits",
    about: "admin churn: edits, pauses, resumes, deletes, creates and settings writes, against crashes, cut-offs and a small cap",
    fleet: false,
    tune: |opts, rng| {
        crate::world::with_cron(opts, rng);
        opts.replica.cron.max_concurrent_runs = rng.gen_range(2..=3);
        let w = &mut opts.workload.cron;
        w.jobs = rng.gen_range(6..=12);
        w.cron_pct = rng.gen_range(40..=90);
        w.run_ms = (2_000, rng.gen_range(10_000..=30_000));
        w.admin_every_ms = rng.gen_range(2_000..=8_000);
        w.settings_every_ms = rng.gen_range(8_000..=25_000);
        let f = &mut opts.faults;
        f.crash_per_min = rng.gen_range(0.3..1.5);
        f.partition_per_min = rng.gen_range(0.2..1.5);
        f.stall_per_min = if rng.gen_bool(0.5) { rng.gen_range(0.2..1.0) } else { 0.0 };
        opts.fault_phase_ms = opts.fault_phase_ms.max(150_000);
    },
};
