//! How a failure is reported: invariant, seed, scenario, the events leading
//! to it, and the exact command that replays it.

use crate::runner::Outcome;
use haywire_core::Mutant;
use haywire_traces::canonical_event;

/// The command that replays one seed, runnable from a fresh checkout.
pub fn replay_command(scenario: &str, seed: u64, mutant: Option<Mutant>) -> String {
    let mut cmd = format!("cargo run --release -- replay --scenario {scenario} --seed {seed}");
    if let Some(m) = mutant {
        cmd.push_str(&format!(" --mutant {m}"));
    }
    cmd
}

impl Outcome {
    pub fn replay_command(&self) -> String {
        let mut cmd = replay_command(&self.scenario, self.seed, self.mutant);
        if self.trace.header.plan.is_some() {
            cmd.push_str(&format!(" --plan {}", self.plan_file.as_deref().unwrap_or("<plan.json>")));
        }
        cmd
    }

    /// A multi-line report of the violation (empty if the run passed).
    pub fn failure_report(&self, last_events: usize) -> String {
        let Some(v) = &self.violation else { return String::new() };
        let mut out = String::new();
        out.push_str(&format!(
            "VIOLATION {} in scenario {} seed {}{}\n  {}\n",
            v.invariant,
            self.scenario,
            self.seed,
            self.mutant.map(|m| format!(" (mutant {m})")).unwrap_or_default(),
            v.message
        ));
        out.push_str(&format!("last {} events:\n", last_events.min(self.trace.events.len())));
        let from = self.trace.events.len().saturating_sub(last_events);
        for e in &self.trace.events[from..] {
            out.push_str("  ");
            out.push_str(&canonical_event(e));
            out.push('\n');
        }
        out.push_str(&format!("replay: {}\n", self.replay_command()));
        out
    }
}
