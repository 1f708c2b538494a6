//! `haywire sweep` and `haywire mutants`: many seeds, a line per scenario
//! (or mutant), progress on a terminal, JSON and JUnit for machines.

use crate::names::{mutant, run_config, scenario};
use crate::output::{self, Format, MutantRecord, OutFile, Progress, Record, SeedRecord, SummaryRecord, Totals};
use crate::Usage;
use haywire_core::Mutant;
use haywire_scenarios as scenarios;
use haywire_sim::sweep::{default_jobs, parse_seeds, parse_shard, seeds_in, shard, sweep_with, Hooks, SeedResult};
use haywire_sim::{replay_command, RunConfig};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub struct SweepArgs {
    pub scenario: String,
    pub seeds: String,
    pub mutant: Option<String>,
    pub store: Option<String>,
    pub jobs: Option<usize>,
    pub first: bool,
    pub shard: Option<String>,
    pub format: Format,
    pub junit: Option<String>,
    pub max_failures: usize,
}

/// A seed's result as a record: its verdict and the exact replay command.
pub fn seed_record(scenario: &str, r: &SeedResult, cfg: &RunConfig) -> SeedRecord {
    SeedRecord {
        scenario: scenario.to_string(),
        seed: r.seed,
        verdict: if r.violation.is_some() { "fail" } else { "pass" }.into(),
        invariant: r.violation.as_ref().map(|v| v.invariant.to_string()),
        message: r.violation.as_ref().map(|v| v.message.clone()),
        replay: replay_command(scenario, r.seed, cfg, None),
        mutant: cfg.mutant.map(|m| m.name().to_string()),
        store: cfg.store.map(|s| s.to_string()),
        stats: r.stats.clone(),
        trace_hash: None,
    }
}

pub fn sweep(a: SweepArgs) -> Result<ExitCode, Usage> {
    let list: Vec<&scenarios::Named> =
        if a.scenario == "all" { scenarios::ALL.to_vec() } else { vec![scenario(&a.scenario)?] };
    let asked = parse_seeds(&a.seeds)?;
    let shard_of = a.shard.as_deref().map(parse_shard).transpose()?;
    let range = match shard_of {
        Some((k, n)) => shard(&asked, k, n),
        None => Some(asked.clone()),
    };
    let cfg = run_config(a.mutant.as_deref(), a.store.as_deref())?;
    let jobs = a.jobs.unwrap_or_else(default_jobs);
    let junit = a.junit.as_deref().map(|p| OutFile::check(p, "JUnit XML")).transpose()?;
    output::catch_ctrl_c();

    let per_scenario = range.as_ref().map(seeds_in).unwrap_or(0);
    let progress = Progress::new((per_scenario * list.len() as u128).min(u64::MAX as u128) as u64, "seeds");
    let mut all: Vec<Totals> = Vec::new();
    let mut interrupted = false;
    for s in &list {
        if output::interrupted() {
            interrupted = true;
            break;
        }
        let Some(range) = range.clone() else { break };
        progress.message(s.name.to_string());
        let started = Instant::now();
        let on_seed = |_: &SeedResult| progress.inc();
        let hooks = Hooks { on_seed: Some(&on_seed), cancel: Some(&output::INTERRUPTED) };
        let res = sweep_with(*s, range, &cfg, jobs, a.first, &hooks);
        if let Some((seed, e)) = res.errors.first() {
            progress.finish();
            return Err(Usage(format!("scenario {} seed {seed}: {e}", s.name)));
        }
        interrupted |= res.interrupted;
        let totals = Totals {
            scenario: s.name.to_string(),
            seeds: res.seeds.iter().map(|r| seed_record(s.name, r, &cfg)).collect(),
            wall: started.elapsed(),
            fleet: s.fleet,
        };
        progress.suspend(|| match a.format {
            Format::Json => {
                for r in &totals.seeds {
                    Record::Seed(r.clone()).print();
                }
                Record::Scenario(totals.record()).print();
            }
            Format::Text => {
                totals.print_text(a.max_failures);
                // The first failure in full: the events leading up to it.
                if let Some(report) = res.first_failure().and_then(|f| f.report.as_ref()) {
                    say!("  first failure in detail:");
                    for line in report.lines() {
                        say!("    {line}");
                    }
                }
            }
        });
        all.push(totals);
    }
    progress.finish();
    let summary = SummaryRecord {
        seeds: all.iter().map(|t| t.seeds.len() as u64).sum(),
        passed: all.iter().map(|t| t.record().passed).sum(),
        failed: all.iter().map(|t| t.record().failed).sum(),
        range: a.seeds.clone(),
        shard: a.shard.clone(),
        mutant: cfg.mutant.map(|m| m.name().to_string()),
        store: cfg.store.map(|s| s.to_string()),
        interrupted,
        haywire: env!("CARGO_PKG_VERSION").to_string(),
    };
    finish(&all, &summary, a.format, junit)
}

/// The closing line (or record), the JUnit file, and the exit status,
/// shared with `merge`.
pub fn finish(all: &[Totals], summary: &SummaryRecord, format: Format, junit: Option<OutFile>) -> Result<ExitCode, Usage> {
    if let Some(j) = junit {
        let cases: Vec<_> = all.iter().map(output::junit_case).collect();
        j.write("JUnit XML", &output::junit("haywire sweep", &cases))?;
    }
    match format {
        Format::Json => Record::Summary(summary.clone()).print(),
        Format::Text => {
            let shard = summary.shard.as_deref().map(|s| format!(" (shard {s} of {})", summary.range)).unwrap_or_default();
            let verdict = match (summary.failed, summary.interrupted) {
                (0, false) => "all passed".to_string(),
                (0, true) => "all that finished passed; INTERRUPTED".to_string(),
                (_, false) => format!("{} failed: VIOLATIONS FOUND", summary.failed),
                (_, true) => format!("{} failed: VIOLATIONS FOUND; INTERRUPTED", summary.failed),
            };
            say!("{} seeds{shard}, {verdict}", summary.seeds);
        }
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn mutants(seeds: Option<&str>, jobs: Option<usize>, format: Format, junit: Option<&str>) -> Result<ExitCode, Usage> {
    let given = seeds.map(parse_seeds).transpose()?;
    let jobs = jobs.unwrap_or_else(default_jobs);
    let junit = junit.map(|p| OutFile::check(p, "JUnit XML")).transpose()?;
    output::catch_ctrl_c();
    let width = Mutant::ALL.iter().map(|m| m.name().len()).max().unwrap_or(0);
    let progress = Progress::new(Mutant::ALL.len() as u64, "mutants");
    let mut cases = Vec::new();
    let mut all_caught = true;
    for m in Mutant::ALL {
        if output::interrupted() {
            break;
        }
        let home = scenarios::home_of(m);
        let budget = m.seed_budget().max(1);
        let range = given.clone().unwrap_or(0..=budget - 1);
        let cfg = RunConfig { mutant: Some(m), store: None };
        progress.message(format!("{m} in {}", home.name));
        let started = Instant::now();
        let hooks = Hooks { on_seed: None, cancel: Some(&output::INTERRUPTED) };
        let res = sweep_with(home, range.clone(), &cfg, jobs, true, &hooks);
        if let Some((seed, e)) = res.errors.first() {
            progress.finish();
            return Err(Usage(format!("mutant {m}: scenario {} seed {seed}: {e}", home.name)));
        }
        if res.interrupted && res.first_failure().is_none() {
            break;
        }
        let record = mutant_record(m, home.name, &range, &res, &cfg);
        all_caught &= record.caught && record.expected;
        progress.suspend(|| print_mutant(&record, width, format));
        cases.push(mutant_case(&record, started.elapsed()));
        progress.inc();
    }
    progress.finish();
    let interrupted = output::interrupted();
    if let Some(j) = junit {
        j.write("JUnit XML", &output::junit("haywire mutants", &cases))?;
    }
    if format == Format::Text {
        let caught = cases.iter().filter(|c| c.2.is_none()).count();
        say!(
            "{caught} of {} mutants caught{}",
            cases.len(),
            if interrupted { format!("; INTERRUPTED ({} not run)", Mutant::ALL.len() - cases.len()) } else { String::new() }
        );
    }
    Ok(if interrupted {
        ExitCode::from(130)
    } else if all_caught {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn mutant_record(
    m: Mutant,
    home: &str,
    range: &std::ops::RangeInclusive<u64>,
    res: &haywire_sim::sweep::SweepResult,
    cfg: &RunConfig,
) -> MutantRecord {
    let f = res.first_failure();
    let v = f.and_then(|f| f.violation.as_ref());
    MutantRecord {
        mutant: m.name().to_string(),
        home: home.to_string(),
        caught: f.is_some(),
        // Caught, but not by an invariant the bug breaks: not good enough.
        expected: v.is_some_and(|v| m.caught_by().contains(&v.invariant)),
        seed: f.map(|f| f.seed),
        seeds_run: f.map(|f| f.seed - range.start() + 1).unwrap_or(res.seeds.len() as u64),
        invariant: v.map(|v| v.invariant.to_string()),
        message: v.map(|v| v.message.clone()),
        replay: f.map(|f| replay_command(home, f.seed, cfg, None)),
    }
}

fn print_mutant(r: &MutantRecord, width: usize, format: Format) {
    if format == Format::Json {
        return Record::Mutant(r.clone()).print();
    }
    match (r.seed, &r.invariant) {
        (Some(seed), Some(inv)) => {
            let unexpected = match (r.expected, mutant(&r.mutant)) {
                (false, Ok(m)) => format!(" (UNEXPECTED: expected one of {:?})", m.caught_by()),
                _ => String::new(),
            };
            say!(
                "{:<width$}  caught in {} at seed {} ({} seeds run) by {inv}{unexpected}",
                r.mutant,
                r.home,
                seed,
                r.seeds_run
            );
        }
        _ => say!("{:<width$}  NOT CAUGHT in {} over {} seeds", r.mutant, r.home, r.seeds_run),
    }
}

fn mutant_case(r: &MutantRecord, wall: Duration) -> (String, Duration, Option<(String, String)>) {
    let failure = match (r.caught, r.expected) {
        (true, true) => None,
        (true, false) => Some((
            format!("caught by {} at seed {}, not by an invariant the bug breaks", r.invariant.as_deref().unwrap_or("?"), r.seed.unwrap_or(0)),
            format!("replay: {}\n", r.replay.as_deref().unwrap_or("")),
        )),
        (false, _) => Some((format!("not caught in {} over {} seeds", r.home, r.seeds_run), String::new())),
    };
    (r.mutant.clone(), wall, failure)
}
