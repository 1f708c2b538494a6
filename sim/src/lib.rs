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

pub mod admin_node;
pub mod client_node;
pub mod clock;
pub mod cluster_node;
pub mod faults;
pub mod injector;
pub mod options;
pub mod oracle;
pub mod processes;
pub mod recorder;
pub mod remote_cluster;
pub mod remote_store;
pub mod replica_node;
pub mod report;
pub mod rpc;
pub mod runner;
pub mod scenario;
pub mod shrink;
pub mod store_events;
pub mod store_node;
pub mod sweep;
pub mod world;

pub use faults::{ClusterOps, Fault, FaultPlan, PlanFile, PlannedFault, Target};
pub use options::{Bounds, ClockSpec, CronWorkload, FaultRates, RunOptions, StoreKind, Workload};
pub use oracle::{judge, Violation};
pub use report::{program, replay_command, set_program, shell_word};
pub use runner::{expand, oracle_params, run, run_with_plan, Continuity, CronTally, Outcome, RunConfig, Stats};
pub use scenario::Scenario;
