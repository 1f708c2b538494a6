//! What a scenario is: a way to expand a seed into options and a fault plan.
//! The named scenarios live in the `haywire-scenarios` crate.

use crate::faults::FaultPlan;
use crate::options::RunOptions;
use rand_chacha::ChaCha8Rng;

pub trait Scenario: Send + Sync {
    /// The name on the command line, e.g. `leader-crash`.
    fn name(&self) -> &'static str;
    /// One line on what it exercises.
    fn about(&self) -> &'static str;
    /// Draw this seed's world: replica count, timings, fault rates and bounds.
    fn options(&self, rng: &mut ChaCha8Rng) -> RunOptions;
    /// Draw the timed faults for the fault phase; all must heal before it ends.
    fn plan(&self, opts: &RunOptions, rng: &mut ChaCha8Rng) -> FaultPlan;
}
