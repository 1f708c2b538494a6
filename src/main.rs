//! `haywire`: run, replay, sweep, shrink and compare deterministic
//! simulations of a control plane's coordination logic.
//!
//! One module per family of commands: `sweep_cmd` (sweep, mutants),
//! `merge_cmd` (merge shards), `replay_cmd` (replay, shrink, diff); what
//! they share is in `output` (stdout, JSON records, progress, JUnit) and
//! `names` (scenario and mutant lookup with "did you mean"); `live_cmd`
//! runs the live mode (only in the live build, on real tokio).

/// mimalloc: glibc's malloc slowed as a large fleet's heap fragmented, a
/// sixth of a 300-replica run in malloc and free (issue 14; docs/design.md
/// §12). Nothing the trace holds depends on the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Print a line to stdout (see [`output::line`]: a reader that went away
/// stops the program with a message, never a panic).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::line(&format!($($arg)*))
    };
}

mod live_cmd;
#[cfg(madsim)]
mod merge_cmd;
mod names;
mod output;
#[cfg(madsim)]
mod replay_cmd;
#[cfg(madsim)]
mod sweep_cmd;

use clap::{Parser, Subcommand};
use output::Format;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit status:
  0    every seed passed (diff: the traces are identical; mutants: every mutant caught)
  1    an invariant was violated (diff: the traces differ; mutants: one was not caught)
  2    bad usage or input: a malformed argument, a plan that does not fit its world, an unreadable file
  130  interrupted by Ctrl-C; the summary covers the seeds that finished
  141  stdout was closed before the output ended (e.g. `| head`)";

#[derive(Parser)]
#[command(
    name = "haywire",
    version,
    about = "Deterministic simulation testbed for control-plane coordination",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The arguments that choose what runs, shared by sweep, replay and shrink.
#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Put one field-report bug back into core (see `haywire list`).
    #[arg(long, value_name = "NAME")]
    mutant: Option<String>,
    /// Store backend: sqlite (the default: embedded SQLite in memory) or
    /// memory (the reference model).
    #[arg(long, value_name = "KIND")]
    store: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// List scenarios and mutants, one per line (tab-separated: kind, name,
    /// description).
    List,
    /// Run a range of seeds over one scenario or all; print a line per
    /// scenario and, for each failing seed, the command that replays it.
    #[command(after_help = EXIT_CODES)]
    Sweep {
        /// A scenario name, or `all`.
        #[arg(long, default_value = "all", value_name = "NAME")]
        scenario: String,
        /// Seeds as A..B (half-open), A..=B, or a single seed.
        #[arg(long, default_value = "0..100", value_name = "RANGE")]
        seeds: String,
        #[command(flatten)]
        run: RunArgs,
        /// Worker threads (default: one per core).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        jobs: Option<u32>,
        /// Stop each scenario at its first failing seed.
        #[arg(long)]
        first: bool,
        /// Run only shard K of N (counted from 1) of the seed range: N
        /// contiguous parts, the same seeds for the same K/N on every
        /// machine; `haywire merge` combines the shards' JSON output.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
        /// text (default) or json: one JSON object per line, a `seed`
        /// record per seed, a `scenario` record per scenario, a `summary`.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also write JUnit XML here: one test case per scenario, failures
        /// with their replay commands.
        #[arg(long, value_name = "FILE")]
        junit: Option<String>,
        /// List at most this many failing seeds per scenario (the rest are
        /// counted).
        #[arg(long, default_value_t = 10, value_name = "N")]
        max_failures: usize,
    },
    /// Re-run one seed: print its options, fault plan and a readable
    /// timeline; byte-identical every time.
    #[command(after_help = EXIT_CODES)]
    Replay {
        /// The scenario (see `haywire list`).
        #[arg(long, value_name = "NAME")]
        scenario: String,
        /// The seed (any u64).
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        run: RunArgs,
        /// Write the JSON Lines trace here.
        #[arg(long, value_name = "FILE")]
        trace: Option<String>,
        /// Run this fault plan (JSON, as `shrink --out` writes it) instead of
        /// the one the seed draws; it is checked against the world first.
        #[arg(long, value_name = "FILE")]
        plan: Option<String>,
        /// Print only the summary and the verdict.
        #[arg(long)]
        quiet: bool,
        /// Print the options record whole (default: one line).
        #[arg(long)]
        options: bool,
        /// Show only these events in the timeline (repeatable; any match
        /// shows): a replica `r2`, a worker id `w3.1` (exact), or a kind:
        /// `lease`, `worker`, `fault`. Violations always show.
        #[arg(long, value_name = "FILTER")]
        only: Vec<String>,
        /// text (default) or json: one JSON object, the run's record.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write a self-contained HTML timeline here (swimlanes per replica,
        /// the store and the cluster; lease terms, faults, workers, the
        /// violation).
        #[arg(long, value_name = "FILE.html")]
        timeline: Option<String>,
        /// Write Chrome trace-event JSON here, for ui.perfetto.dev.
        #[arg(long, value_name = "FILE.json")]
        perfetto: Option<String>,
    },
    /// Shrink a failing seed: find the smallest fault plan under which it
    /// still breaks the same invariant, print it and the command replaying it.
    #[command(after_help = EXIT_CODES)]
    Shrink {
        /// The scenario (see `haywire list`).
        #[arg(long, value_name = "NAME")]
        scenario: String,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        run: RunArgs,
        /// Where to write the shrunk plan (JSON, with the run it came from).
        #[arg(long, default_value = "shrunk-plan.json", value_name = "FILE")]
        out: String,
        /// Start from this saved plan instead of the seed's own (resume an
        /// earlier shrink).
        #[arg(long, value_name = "FILE")]
        plan: Option<String>,
        /// Give up after this many runs.
        #[arg(long, default_value_t = 400, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max_runs: u64,
    },
    /// Compare two JSONL traces and show where they first diverge.
    #[command(after_help = EXIT_CODES)]
    Diff {
        /// The first trace (JSON Lines, as `replay --trace` writes it).
        a: String,
        /// The second trace.
        b: String,
        /// Compare only the events, not the header: a clean run and a mutant
        /// run of one seed show where their behaviour first differs.
        #[arg(long)]
        events: bool,
    },
    /// Sweep every mutant over its home scenario and report how many seeds
    /// it took to catch it.
    #[command(after_help = EXIT_CODES)]
    Mutants {
        /// Seeds per mutant, as A..B (default: 0 up to each mutant's own
        /// seed budget, as its registry entry declares it).
        #[arg(long, value_name = "RANGE")]
        seeds: Option<String>,
        /// Worker threads (default: one per core).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        jobs: Option<u32>,
        /// text (default) or json: a `mutant` record per mutant.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also write JUnit XML here: one test case per mutant.
        #[arg(long, value_name = "FILE")]
        junit: Option<String>,
    },
    /// Combine the JSON output of sweep shards (`sweep --shard K/N --format
    /// json`) into one summary, with the exit status one sweep would have.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// The shards' JSON Lines files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        /// text (default) or json: the merged records.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also write JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<String>,
        /// List at most this many failing seeds per scenario.
        #[arg(long, default_value_t = 10, value_name = "N")]
        max_failures: usize,
    },
    /// Run the unchanged core live: N replica processes on real tokio
    /// against a SQLite file or PostgreSQL, clients, and real faults
    /// (SIGKILL, SIGSTOP/SIGCONT, SIGTERM, a database restart) on a seeded
    /// schedule; then judge the merged trace with the oracle. Needs the
    /// live build (see the README, "Run it live"); not reproducible: a
    /// failure is triaged from its trace.
    #[command(after_help = EXIT_CODES)]
    Live(live_cmd::LiveCli),
    /// One replica process of a live run (started by `haywire live`).
    #[command(hide = true)]
    LiveReplica(live_cmd::ReplicaCli),
}

/// What the live build says of the simulator's commands.
#[cfg(not(madsim))]
const SIM_BUILD: &str = "this is haywire's live build (real tokio): it runs `live` only. The simulator's commands are in \
                         the default build: cargo build --release && target/release/haywire --help";

/// A usage or input error: message, exit 2.
pub struct Usage(pub String);

impl From<String> for Usage {
    fn from(s: String) -> Self {
        Usage(s)
    }
}

fn main() -> ExitCode {
    #[cfg(madsim)]
    if let Some(argv0) = std::env::args().next() {
        haywire_sim::set_program(&argv0);
    }
    let cli = Cli::parse();
    #[cfg(madsim)]
    let res = match cli.cmd {
        Cmd::List => Ok(names::list()),
        Cmd::Sweep { scenario, seeds, run, jobs, first, shard, format, junit, max_failures } => {
            sweep_cmd::sweep(sweep_cmd::SweepArgs {
                scenario,
                seeds,
                mutant: run.mutant,
                store: run.store,
                jobs: jobs.map(|j| j as usize),
                first,
                shard,
                format,
                junit,
                max_failures,
            })
        }
        Cmd::Replay { scenario, seed, run, trace, plan, quiet, options, only, format, timeline, perfetto } => {
            replay_cmd::replay(replay_cmd::ReplayArgs {
                scenario,
                seed,
                mutant: run.mutant,
                store: run.store,
                trace,
                plan,
                quiet,
                options,
                only,
                format,
                timeline,
                perfetto,
            })
        }
        Cmd::Shrink { scenario, seed, run, out, plan, max_runs } => {
            replay_cmd::shrink(&scenario, seed, run.mutant.as_deref(), run.store.as_deref(), &out, plan.as_deref(), max_runs)
        }
        Cmd::Diff { a, b, events } => replay_cmd::diff(&a, &b, events),
        Cmd::Mutants { seeds, jobs, format, junit } => {
            sweep_cmd::mutants(seeds.as_deref(), jobs.map(|j| j as usize), format, junit.as_deref())
        }
        Cmd::Merge { files, format, junit, max_failures } => {
            merge_cmd::merge(&files, format, junit.as_deref(), max_failures)
        }
        Cmd::Live(args) => live_cmd::live(args),
        Cmd::LiveReplica(args) => live_cmd::replica(args),
    };
    #[cfg(not(madsim))]
    let res = match cli.cmd {
        Cmd::List => Ok(names::list()),
        Cmd::Live(args) => live_cmd::live(args),
        Cmd::LiveReplica(args) => live_cmd::replica(args),
        _ => Err(Usage(SIM_BUILD.into())),
    };
    match res {
        Ok(code) => code,
        Err(Usage(msg)) => {
            eprintln!("haywire: {msg}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `--help` of every subcommand describes every argument.
    #[test]
    fn every_argument_has_a_description() {
        Cli::command().debug_assert();
        for sub in Cli::command().get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no description", sub.get_name());
            for arg in sub.get_arguments().filter(|a| a.get_id() != "help") {
                assert!(arg.get_help().is_some(), "{} --{}: no description", sub.get_name(), arg.get_id());
            }
        }
    }
}
