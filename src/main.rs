//! `haywire`: run, replay, sweep and compare deterministic simulations of a
//! control plane's lease coordination.
//!
//! Exit status: 0 every seed passed (or traces identical), 1 an invariant
//! was violated (or traces differ), 2 bad usage or input.

use clap::{Parser, Subcommand};
use haywire_core::Mutant;
use haywire_scenarios as scenarios;
use haywire_sim::sweep::{default_jobs, parse_seeds, sweep};
use haywire_sim::shrink::shrink;
use haywire_sim::{FaultPlan, RunConfig, StoreKind};
use haywire_traces::{first_divergence, Trace};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "haywire", version, about = "Deterministic simulation testbed for control-plane coordination")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List scenarios and mutants, one per line (tab-separated: kind, name, description).
    List,
    /// Run a range of seeds over one scenario or all; print a summary and,
    /// for each failing seed, the command that replays it.
    Sweep {
        /// A scenario name, or `all`.
        #[arg(long, default_value = "all")]
        scenario: String,
        /// Seeds as A..B (half-open) or a single seed.
        #[arg(long, default_value = "0..100")]
        seeds: String,
        /// Put one field-report bug back into core.
        #[arg(long)]
        mutant: Option<String>,
        /// Store backend: sqlite (default) or memory.
        #[arg(long)]
        store: Option<String>,
        /// Worker threads (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Stop each scenario at its first failing seed.
        #[arg(long)]
        first: bool,
    },
    /// Re-run one seed: print its options, fault plan and a readable
    /// timeline; byte-identical every time.
    Replay {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        mutant: Option<String>,
        /// Store backend: sqlite (default) or memory.
        #[arg(long)]
        store: Option<String>,
        /// Write the JSON Lines trace here.
        #[arg(long)]
        trace: Option<String>,
        /// Run this fault plan (JSON, as written by `shrink --out`) instead
        /// of the one the seed draws.
        #[arg(long)]
        plan: Option<String>,
        /// Print only the summary and the verdict, not the timeline.
        #[arg(long)]
        quiet: bool,
    },
    /// Shrink a failing seed: find the smallest fault plan under which it
    /// still breaks the same invariant, print it and the command replaying it.
    Shrink {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        mutant: Option<String>,
        /// Store backend: sqlite (default) or memory.
        #[arg(long)]
        store: Option<String>,
        /// Where to write the shrunk plan (JSON).
        #[arg(long, default_value = "shrunk-plan.json")]
        out: String,
        /// Give up after this many runs.
        #[arg(long, default_value_t = 400)]
        max_runs: usize,
    },
    /// Compare two JSONL traces and show where they first diverge.
    Diff { a: String, b: String },
    /// Sweep every mutant over its home scenario and report how many seeds
    /// it took to catch it.
    Mutants {
        /// Seeds per mutant, as A..B (default: 0 up to each mutant's own
        /// seed budget, as its registry entry declares it).
        #[arg(long)]
        seeds: Option<String>,
        #[arg(long)]
        jobs: Option<usize>,
    },
}

/// Print a line to stdout; if the reader has gone (`haywire ... | head`),
/// stop quietly instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

/// A usage or input error: message, exit 2.
struct Usage(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::List => Ok(list()),
        Cmd::Sweep { scenario, seeds, mutant, store, jobs, first } => {
            cmd_sweep(&scenario, &seeds, mutant.as_deref(), store.as_deref(), jobs, first)
        }
        Cmd::Replay { scenario, seed, mutant, store, trace, plan, quiet } => {
            let args = ReplayArgs { trace: trace.as_deref(), plan: plan.as_deref(), quiet };
            cmd_replay(&scenario, seed, mutant.as_deref(), store.as_deref(), args)
        }
        Cmd::Shrink { scenario, seed, mutant, store, out, max_runs } => {
            cmd_shrink(&scenario, seed, mutant.as_deref(), store.as_deref(), &out, max_runs)
        }
        Cmd::Diff { a, b } => cmd_diff(&a, &b),
        Cmd::Mutants { seeds, jobs } => cmd_mutants(seeds.as_deref(), jobs),
    };
    match res {
        Ok(code) => code,
        Err(Usage(msg)) => {
            eprintln!("haywire: {msg}");
            ExitCode::from(2)
        }
    }
}

fn scenario(name: &str) -> Result<&'static scenarios::Named, Usage> {
    scenarios::by_name(name).ok_or_else(|| {
        Usage(format!("unknown scenario '{name}' (known: {}; or 'all' for sweep)", scenarios::names().join(", ")))
    })
}

fn run_config(mutant: Option<&str>, store: Option<&str>) -> Result<RunConfig, Usage> {
    let mutant = mutant.map(|m| m.parse::<Mutant>()).transpose().map_err(Usage)?;
    let store = store.map(|s| s.parse::<StoreKind>()).transpose().map_err(Usage)?;
    Ok(RunConfig { mutant, store })
}

fn list() -> ExitCode {
    for s in scenarios::ALL {
        say!("scenario\t{}\t{}", s.name, s.about);
    }
    for m in Mutant::ALL {
        say!(
            "mutant\t{}\t{} (field report {}; caught in {})",
            m.name(),
            m.description(),
            m.field_report(),
            m.home()
        );
    }
    ExitCode::SUCCESS
}

fn cmd_sweep(
    name: &str,
    seeds: &str,
    mutant: Option<&str>,
    store: Option<&str>,
    jobs: Option<usize>,
    first: bool,
) -> Result<ExitCode, Usage> {
    let list: Vec<&scenarios::Named> = if name == "all" { scenarios::ALL.to_vec() } else { vec![scenario(name)?] };
    let range = parse_seeds(seeds).map_err(Usage)?;
    let cfg = run_config(mutant, store)?;
    let jobs = jobs.unwrap_or_else(default_jobs);
    if jobs == 0 {
        return Err(Usage("--jobs must be at least 1".into()));
    }
    let mut failed = false;
    let mut total = 0;
    for s in list {
        let started = Instant::now();
        let res = sweep(s, range.clone(), &cfg, jobs, first);
        if let Some((seed, e)) = res.errors.first() {
            return Err(Usage(format!("scenario {} seed {seed}: {e}", s.name)));
        }
        let events: u64 = res.seeds.iter().map(|r| r.stats.events).sum();
        let overdue_ms: u64 = res.seeds.iter().map(|r| r.stats.idle_overdue_ms).sum();
        let overdue_quiet_ms: u64 = res.seeds.iter().map(|r| r.stats.idle_overdue_quiet_ms).sum();
        let placeholder_ms: u64 = res.seeds.iter().map(|r| r.stats.placeholder_ms).sum();
        let placeholder_peak: u64 = res.seeds.iter().map(|r| r.stats.placeholder_peak).sum();
        let fails: Vec<_> = res.failures().collect();
        total += res.seeds.len();
        say!(
            "{:<18} seeds {:>5}  passed {:>5}  failed {:>4}  events {:>9}  ({:.1}s)",
            s.name,
            res.seeds.len(),
            res.passed(),
            fails.len(),
            events,
            started.elapsed().as_secs_f64()
        );
        if s.fleet {
            say!(
                "{:<18} idle worker-seconds beyond TTL + reap interval: {:.1} over all runs, {:.1} after quiet periods settled",
                "",
                overdue_ms as f64 / 1000.0,
                overdue_quiet_ms as f64 / 1000.0
            );
            say!(
                "{:<18} headroom placeholder pod-seconds: {:.1} over all runs; peak placeholders summed over seeds: {}",
                "",
                placeholder_ms as f64 / 1000.0,
                placeholder_peak
            );
            let mut continuity = haywire_sim::Continuity::default();
            for r in &res.seeds {
                continuity.add(&r.stats.continuity);
            }
            if let Some(line) = continuity.summary() {
                say!("{:<18} {line}", "");
            }
        }
        let mut cron = haywire_sim::CronTally::default();
        for r in &res.seeds {
            cron.add(&r.stats.cron);
        }
        if let Some(line) = cron.summary() {
            say!("{:<18} {line}", "");
        }
        for f in &fails {
            let v = f.violation.as_ref().expect("failures have a violation");
            say!("  seed {} violated {}: {}", f.seed, v.invariant, v.message);
            say!("    replay: {}", haywire_sim::replay_command(s.name, f.seed, cfg.mutant));
        }
        if let Some(f) = fails.first() {
            if let Some(r) = &f.report {
                say!("  first failure in detail:");
                for line in r.lines() {
                    say!("    {line}");
                }
            }
        }
        failed |= !fails.is_empty();
    }
    say!("{} seeds, {}", total, if failed { "VIOLATIONS FOUND" } else { "all passed" });
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

struct ReplayArgs<'a> {
    trace: Option<&'a str>,
    plan: Option<&'a str>,
    quiet: bool,
}

fn read_plan(path: &str) -> Result<FaultPlan, Usage> {
    let text = std::fs::read_to_string(path).map_err(|e| Usage(format!("cannot read plan {path}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Usage(format!("plan {path} is not a fault plan: {e}")))
}

fn cmd_replay(name: &str, seed: u64, mutant: Option<&str>, store: Option<&str>, args: ReplayArgs) -> Result<ExitCode, Usage> {
    let s = scenario(name)?;
    let cfg = run_config(mutant, store)?;
    let plan = args.plan.map(read_plan).transpose()?;
    let mut out = haywire_sim::run_with_plan(s, seed, &cfg, plan).map_err(Usage)?;
    out.plan_file = args.plan.map(str::to_string);
    say!(
        "# haywire replay: scenario {} seed {}{}{}",
        s.name,
        seed,
        cfg.mutant.map(|m| format!(" mutant {m}")).unwrap_or_default(),
        args.plan.map(|p| format!(" plan {p}")).unwrap_or_default()
    );
    say!("# options:");
    let opts = serde_json::to_string_pretty(&out.options).unwrap_or_default();
    for line in opts.lines() {
        say!("#   {line}");
    }
    say!("# fault plan ({} faults):", out.plan.faults.len());
    for f in &out.plan.faults {
        say!("#   at {:>7}ms  {:?}", f.at_ms, f.fault);
    }
    if !args.quiet {
        say!("# timeline:");
        for line in out.trace.canonical_lines().iter().skip(1) {
            say!("{line}");
        }
    }
    if let Some(path) = args.trace {
        std::fs::write(path, out.trace.to_jsonl()).map_err(|e| Usage(format!("cannot write trace to {path}: {e}")))?;
    }
    let st = &out.stats;
    say!(
        "# {} events over {:.1}s simulated, {} acquisitions, {} effects, {} faults; trace hash {}",
        st.events,
        st.sim_ms as f64 / 1000.0,
        st.acquisitions,
        st.effects,
        st.faults,
        out.trace.hash()
    );
    if st.sessions > 0 || st.workers > 0 {
        say!(
            "# fleet: {} sessions, {} workers; idle worker-seconds beyond TTL + reap interval: {:.1} in the run, {:.1} \
             after the quiet period settled",
            st.sessions,
            st.workers,
            st.idle_overdue_ms as f64 / 1000.0,
            st.idle_overdue_quiet_ms as f64 / 1000.0
        );
        say!("# headroom: peak {} placeholder pods, {:.1} placeholder pod-seconds", st.placeholder_peak, st.placeholder_ms as f64 / 1000.0);
        if let Some(line) = st.continuity.summary() {
            say!("# {line}");
        }
    }
    if let Some(line) = st.cron.summary() {
        say!("# {line}");
    }
    match &out.violation {
        None => {
            say!("PASS");
            Ok(ExitCode::SUCCESS)
        }
        Some(_) => {
            say!("{}", out.failure_report(20).trim_end());
            Ok(ExitCode::from(1))
        }
    }
}

fn cmd_shrink(
    name: &str,
    seed: u64,
    mutant: Option<&str>,
    store: Option<&str>,
    out: &str,
    max_runs: usize,
) -> Result<ExitCode, Usage> {
    let s = scenario(name)?;
    let cfg = run_config(mutant, store)?;
    let Some(shrunk) = shrink(s, seed, &cfg, max_runs.max(1)).map_err(Usage)? else {
        say!("scenario {name} seed {seed} passes: nothing to shrink");
        return Ok(ExitCode::SUCCESS);
    };
    let mut o = shrunk.outcome;
    o.plan_file = Some(out.to_string());
    let v = o.violation.as_ref().expect("a shrunk failure still fails");
    let json = serde_json::to_string_pretty(&o.plan).map_err(|e| Usage(e.to_string()))?;
    std::fs::write(out, format!("{json}\n")).map_err(|e| Usage(format!("cannot write {out}: {e}")))?;
    say!(
        "shrunk {} faults to {} in {} runs; still violates {}: {}",
        shrunk.original_faults,
        o.plan.faults.len(),
        shrunk.runs,
        v.invariant,
        v.message
    );
    for f in &o.plan.faults {
        say!("  at {:>7}ms  {:?}", f.at_ms, f.fault);
    }
    say!("plan written to {out}");
    say!("replay: {}", o.replay_command());
    Ok(ExitCode::from(1))
}

fn read_trace(path: &str) -> Result<Trace, Usage> {
    let text = std::fs::read_to_string(path).map_err(|e| Usage(format!("cannot read {path}: {e}")))?;
    Trace::from_jsonl(&text).map_err(|e| Usage(format!("{path}: {e}")))
}

fn cmd_diff(a: &str, b: &str) -> Result<ExitCode, Usage> {
    let (ta, tb) = (read_trace(a)?, read_trace(b)?);
    match first_divergence(&ta, &tb, 5) {
        None => {
            say!("identical ({} events, hash {})", ta.events.len(), ta.hash());
            Ok(ExitCode::SUCCESS)
        }
        Some(d) => {
            say!("{d}");
            Ok(ExitCode::from(1))
        }
    }
}

fn cmd_mutants(seeds: Option<&str>, jobs: Option<usize>) -> Result<ExitCode, Usage> {
    let given = seeds.map(parse_seeds).transpose().map_err(Usage)?;
    let jobs = jobs.unwrap_or_else(default_jobs).max(1);
    let mut all_caught = true;
    for m in Mutant::ALL {
        let home = scenarios::home_of(m);
        let range = given.clone().unwrap_or(0..m.seed_budget());
        let cfg = RunConfig { mutant: Some(m), store: None };
        let res = sweep(home, range.clone(), &cfg, jobs, true);
        match res.first_failure() {
            Some(f) => {
                let v = f.violation.as_ref().expect("failures have a violation");
                // Caught, but not by an invariant the bug breaks: say so.
                let expected = m.caught_by().contains(&v.invariant);
                all_caught &= expected;
                say!(
                    "{:<24} caught in {} at seed {} ({} seeds run) by {}{}",
                    m.name(),
                    home.name,
                    f.seed,
                    f.seed - range.start + 1,
                    v.invariant,
                    if expected { String::new() } else { format!(" (UNEXPECTED: expected one of {:?})", m.caught_by()) }
                );
            }
            None => {
                all_caught = false;
                say!("{:<24} NOT CAUGHT in {} over seeds {}..{}", m.name(), home.name, range.start, range.end);
            }
        }
    }
    Ok(if all_caught { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
