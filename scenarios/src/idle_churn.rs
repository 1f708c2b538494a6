//! `idle-churn`: many short sessions across the replicas, no faults: idle
//! workers must be reused or retired past their TTL, never leaked; owner
//! epochs are refreshed under load (field report 004's torn read).

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "idle-churn",
    about: "many short sessions: idle workers are reused or retired past their TTL, never leaked",
    fleet: true,
    tune: |opts, rng| {
        opts.workload.clients = rng.gen_range(4..=10);
        opts.workload.think_ms = rng.gen_range(500..=5_000);
        opts.workload.session_ms = (200, rng.gen_range(1_000..=15_000));
    },
};
