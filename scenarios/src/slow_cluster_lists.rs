//! `slow-cluster-lists`: the cluster API's lists answer late or fail and
//! its deletes fail, in long windows, while pods die and the cluster
//! refuses to delete some (field report 004: "a slow apiserver List on one
//! can't starve the other"). Workers whose pod deletes failed leave orphan
//! secrets behind; the secret pass must reap them whatever the pod lists do.

use crate::Named;
use rand::Rng;

pub static SCENARIO: Named = Named {
    name: "slow-cluster-lists",
    about: "cluster lists slow or failing and deletes failing in long windows: neither orphan pass may starve the other",
    fleet: true,
    tune: |opts, rng| {
        let f = &mut opts.faults;
        f.cluster_ops_per_min = rng.gen_range(2.0..5.0);
        f.cluster_ops_ms = (20_000, rng.gen_range(40_000..90_000));
        f.cluster_ops_slow_pct = rng.gen_range(60..=95);
        // Past the orphan-pass deadline, often.
        let deadline = opts.replica.fleet.orphan_pass_deadline_ms;
        f.cluster_ops_slow_ms = (deadline / 2, deadline * rng.gen_range(2..=3));
        f.pod_death_per_min = rng.gen_range(0.5..3.0);
        f.delete_refusal_per_min = rng.gen_range(0.3..1.5);
        f.delete_refusal_ms = (10_000, rng.gen_range(30_000..90_000));
        f.crash_after_secret_per_min = rng.gen_range(0.0..1.0);
        if rng.gen_bool(0.5) {
            opts.replica.fleet.orphan_min_age_ms = rng.gen_range(1_000..=10_000);
        }
        opts.workload.clients = rng.gen_range(3..=8);
    },
};
