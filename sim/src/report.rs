//! How a failure is reported: invariant, seed, scenario, the events leading
//! to it, and the exact command that replays it.

use crate::runner::{Outcome, RunConfig};
use std::sync::OnceLock;

static PROGRAM: OnceLock<String> = OnceLock::new();

/// Name the program in printed commands as it was invoked: a path
/// (`./target/release/haywire`) as given, a bare name (found on `PATH`,
/// installed) as `haywire`. Set once, by the CLI, before anything prints.
pub fn set_program(argv0: &str) {
    let name = if argv0.contains('/') { argv0.to_string() } else { "haywire".to_string() };
    let _ = PROGRAM.set(name);
}

/// The program as printed commands name it (`haywire` unless set).
pub fn program() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("haywire")
}

/// A word for a POSIX shell: as it is when it needs no quoting.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_./=:,+-@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command that replays one seed: every argument that changes the run
/// (scenario, seed, mutant, store override, plan file).
pub fn replay_command(scenario: &str, seed: u64, cfg: &RunConfig, plan_file: Option<&str>) -> String {
    let mut cmd = format!("{} replay --scenario {scenario} --seed {seed}", shell_word(program()));
    if let Some(m) = cfg.mutant {
        cmd.push_str(&format!(" --mutant {m}"));
    }
    if let Some(s) = cfg.store {
        cmd.push_str(&format!(" --store {s}"));
    }
    if let Some(p) = plan_file {
        cmd.push_str(&format!(" --plan {}", shell_word(p)));
    }
    cmd
}

impl Outcome {
    pub fn replay_command(&self) -> String {
        let plan = self.trace.header.plan.is_some().then(|| self.plan_file.as_deref().unwrap_or("<plan.json>"));
        replay_command(&self.scenario, self.seed, &self.config, plan)
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
            self.config.mutant.map(|m| format!(" (mutant {m})")).unwrap_or_default(),
            v.message
        ));
        out.push_str(&format!("last {} events:\n", last_events.min(self.trace.events.len())));
        let lines = self.trace.event_lines();
        for line in &lines[lines.len().saturating_sub(last_events)..] {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("replay: {}\n", self.replay_command()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_commands_name_every_argument_that_changes_the_run() {
        let cfg = RunConfig { mutant: Some(haywire_core::Mutant::ALL[0]), store: Some(crate::StoreKind::Memory) };
        let cmd = replay_command("chaos", 7, &cfg, Some("my plan.json"));
        let m = haywire_core::Mutant::ALL[0];
        assert_eq!(cmd, format!("haywire replay --scenario chaos --seed 7 --mutant {m} --store memory --plan 'my plan.json'"));
        assert_eq!(replay_command("steady", 1, &RunConfig::default(), None), "haywire replay --scenario steady --seed 1");
    }

    #[test]
    fn shell_words_quote_what_a_shell_would_split() {
        assert_eq!(shell_word("./target/release/haywire"), "./target/release/haywire");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
