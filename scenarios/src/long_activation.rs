//! `long-activation`: pods take minutes to start, some longer than the
//! stuck-activation threshold; a live activation heartbeats its row and
//! must not be reaped under its waiting client (field report 002).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "long-activation",
    about: "pods take minutes to start, some past the stuck-activation threshold; live activations survive",
    fleet: true,
    tune: |opts, rng| {
        let f = &opts.replica.fleet;
        opts.pod_start_ms = (30_000, f.stuck_activating_ms + rng.gen_range(30_000..=240_000));
        opts.workload.clients = rng.gen_range(2..=6);
        opts.workload.think_ms = rng.gen_range(5_000..=30_000);
        opts.fault_phase_ms = rng.gen_range(300_000..=500_000);
        // Activations still running at the end finish before the checks.
        opts.quiet_ms += opts.pod_start_ms.1;
    },
};
