//! haywire-sim: the simulated world haywire runs core in.
//!
//! A madsim world of N replica nodes, a store node, a cluster node and
//! client nodes on a simulated network ([`replica_node`], [`store_node`],
//! [`cluster_node`], [`client_node`]), per-replica clocks with skew and
//! drift ([`clock`]), a fault injector following a seeded plan ([`faults`],
//! [`injector`]), the invariant oracle ([`oracle`]) fed by the run's
//! [`recorder`], and the runner ([`runner::run`]). Everything a run touches
//! lives in its [`world::World`], each part with the node that uses it (the
//! replicas' [`processes`] table among them); the same seed gives the same
//! trace, byte for byte.

// What a judge of any recorded run needs (the options, fault plans, bounds
// and the oracle), and the trace's names for core's events and store
// replies, compile on real tokio too (the live mode hosts core there); the
// madsim world only under `--cfg madsim`.
pub mod bounds;
pub mod core_events;
pub mod faults;
pub mod options;
pub mod oracle;
pub mod scenario;
pub mod store_events;

#[cfg(madsim)]
pub mod addresses;
#[cfg(madsim)]
pub mod admin_node;
#[cfg(madsim)]
pub mod client_node;
#[cfg(madsim)]
pub mod clock;
#[cfg(madsim)]
pub mod cluster_node;
#[cfg(madsim)]
pub mod injector;
#[cfg(madsim)]
pub mod processes;
#[cfg(madsim)]
pub mod recorder;
#[cfg(madsim)]
pub mod remote_cluster;
#[cfg(madsim)]
pub mod remote_store;
#[cfg(madsim)]
pub mod replica_node;
#[cfg(madsim)]
pub mod report;
#[cfg(madsim)]
pub mod rpc;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod shrink;
#[cfg(madsim)]
pub mod store_node;
#[cfg(madsim)]
pub mod sweep;
#[cfg(madsim)]
pub mod timer;
#[cfg(madsim)]
pub mod world;

pub use faults::{ClusterOps, Fault, FaultPlan, PlanFile, PlannedFault, Target};
pub use options::{Bounds, ClockSpec, CronWorkload, FaultRates, RunOptions, StoreKind, Workload};
pub use bounds::oracle_params;
pub use oracle::{judge, Violation};
pub use scenario::Scenario;
#[cfg(madsim)]
pub use report::{program, replay_command, set_program, shell_word};
#[cfg(madsim)]
pub use runner::{expand, run, run_with_plan, Continuity, CronTally, Outcome, RunConfig, Stats};
