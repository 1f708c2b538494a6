//! What the CLI writes: stdout lines that end cleanly when the reader goes
//! away, the JSON records of `--format json` (which `merge` reads back),
//! the per-scenario summary shared by `sweep` and `merge`, the progress bar
//! on a terminal's stderr, JUnit XML, and Ctrl-C.
// The live build has the live command only: the simulator's records and
// lookups are unused there.
#![cfg_attr(not(madsim), allow(unused_imports, dead_code))]

use crate::Usage;
#[cfg(madsim)]
use haywire_sim::{Continuity, CronTally, Stats};
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Write one line to stdout. A reader that went away (`| head`) or a full
/// disk stops the program with a message: exit 141 for a closed pipe (as a
/// shell reports SIGPIPE), 2 for any other write error.
pub fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{s}") {
        stdout_failed(e)
    }
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        eprintln!("haywire: stdout was closed before the output ended; stopping");
        std::process::exit(141);
    }
    eprintln!("haywire: cannot write to stdout: {e}");
    std::process::exit(2);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[cfg(madsim)]
/// One line of `--format json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Seed(SeedRecord),
    Scenario(ScenarioRecord),
    Summary(SummaryRecord),
    Mutant(MutantRecord),
}

#[cfg(madsim)]
impl Record {
    pub fn print(&self) {
        line(&serde_json::to_string(self).expect("records serialize"));
    }
}

#[cfg(madsim)]
/// One seed's verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedRecord {
    pub scenario: String,
    pub seed: u64,
    /// `pass` or `fail`.
    pub verdict: String,
    pub invariant: Option<String>,
    pub message: Option<String>,
    /// The command that replays it exactly.
    pub replay: String,
    pub mutant: Option<String>,
    pub store: Option<String>,
    pub stats: Stats,
    /// `replay` only: the trace's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_hash: Option<String>,
}

#[cfg(madsim)]
impl SeedRecord {
    pub fn failed(&self) -> bool {
        self.verdict != "pass"
    }
}

#[cfg(madsim)]
/// A scenario's totals in one sweep (or shard).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub scenario: String,
    pub seeds: u64,
    pub passed: u64,
    pub failed: u64,
    pub events: u64,
    pub wall_s: f64,
    pub seeds_per_s: f64,
    /// Simulated seconds per wall-clock second.
    pub sim_per_wall: f64,
}

#[cfg(madsim)]
/// The whole sweep: what ran and how it ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryRecord {
    pub seeds: u64,
    pub passed: u64,
    pub failed: u64,
    /// The seed range asked for (before sharding), and the shard run.
    pub range: String,
    pub shard: Option<String>,
    pub mutant: Option<String>,
    pub store: Option<String>,
    pub interrupted: bool,
    pub haywire: String,
}

#[cfg(madsim)]
/// One mutant's sweep over its home scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MutantRecord {
    pub mutant: String,
    pub home: String,
    pub caught: bool,
    /// Caught by an invariant its registry entry expects.
    pub expected: bool,
    pub seed: Option<u64>,
    pub seeds_run: u64,
    pub invariant: Option<String>,
    pub message: Option<String>,
    pub replay: Option<String>,
}

#[cfg(madsim)]
/// A scenario's seeds, summed, for its summary line.
pub struct Totals {
    pub scenario: String,
    pub seeds: Vec<SeedRecord>,
    pub wall: Duration,
    pub fleet: bool,
}

#[cfg(madsim)]
impl Totals {
    pub fn record(&self) -> ScenarioRecord {
        let failed = self.seeds.iter().filter(|s| s.failed()).count() as u64;
        let n = self.seeds.len() as u64;
        let wall = self.wall.as_secs_f64();
        let sim_s: f64 = self.seeds.iter().map(|s| s.stats.sim_ms as f64 / 1000.0).sum();
        let per = |x: f64| if wall > 0.0 { x / wall } else { 0.0 };
        ScenarioRecord {
            scenario: self.scenario.clone(),
            seeds: n,
            passed: n - failed,
            failed,
            events: self.seeds.iter().map(|s| s.stats.events).sum(),
            wall_s: wall,
            seeds_per_s: per(n as f64),
            sim_per_wall: per(sim_s),
        }
    }

    /// The summary line, the fleet's and cron's lines, and up to
    /// `max_failures` failing seeds with their replay commands.
    pub fn print_text(&self, max_failures: usize) {
        let r = self.record();
        say!(
            "{:<20} seeds {:>6}  passed {:>6}  failed {:>5}  events {:>10}  {:>7.1}s  {:>7.1} seeds/s  {:>8.0}x sim/wall",
            r.scenario,
            r.seeds,
            r.passed,
            r.failed,
            r.events,
            r.wall_s,
            r.seeds_per_s,
            r.sim_per_wall
        );
        let sum = |f: fn(&Stats) -> u64| self.seeds.iter().map(|s| f(&s.stats)).sum::<u64>();
        let pad = "";
        if self.fleet {
            say!(
                "{pad:<20} idle worker-seconds beyond TTL + reap interval: {:.1} over all runs, {:.1} after quiet periods settled",
                sum(|s| s.idle_overdue_ms) as f64 / 1000.0,
                sum(|s| s.idle_overdue_quiet_ms) as f64 / 1000.0
            );
            say!(
                "{pad:<20} headroom placeholder pod-seconds: {:.1} over all runs; peak placeholders summed over seeds: {}",
                sum(|s| s.placeholder_ms) as f64 / 1000.0,
                sum(|s| s.placeholder_peak)
            );
            let mut continuity = Continuity::default();
            for s in &self.seeds {
                continuity.add(&s.stats.continuity);
            }
            if let Some(line) = continuity.summary() {
                say!("{pad:<20} {line}");
            }
        }
        let mut cron = CronTally::default();
        for s in &self.seeds {
            cron.add(&s.stats.cron);
        }
        if let Some(line) = cron.summary() {
            say!("{pad:<20} {line}");
        }
        let fails: Vec<&SeedRecord> = self.seeds.iter().filter(|s| s.failed()).collect();
        for f in fails.iter().take(max_failures) {
            say!(
                "  seed {} violated {}: {}",
                f.seed,
                f.invariant.as_deref().unwrap_or("?"),
                f.message.as_deref().unwrap_or("")
            );
            say!("    replay: {}", f.replay);
        }
        if fails.len() > max_failures {
            say!("  ... and {} more failing seeds (--max-failures N lists more)", fails.len() - max_failures);
        }
    }
}

#[cfg(madsim)]
/// A file the command will write at the end, checked at the start: a sweep
/// of an hour must not end in "cannot write".
pub struct OutFile {
    path: String,
    existed: bool,
}

#[cfg(madsim)]
impl OutFile {
    pub fn check(path: &str, what: &str) -> Result<OutFile, Usage> {
        let existed = std::path::Path::new(path).exists();
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Usage(format!("cannot write {what} to {path}: {e}")))?;
        Ok(OutFile { path: path.to_string(), existed })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn write(&self, what: &str, contents: &str) -> Result<(), Usage> {
        std::fs::write(&self.path, contents).map_err(|e| Usage(format!("cannot write {what} to {}: {e}", self.path)))
    }

    /// Nothing to write after all: leave no empty file behind.
    pub fn discard(self) {
        if !self.existed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(madsim)]
/// JUnit XML: one test suite, one test case per `cases` entry (name, wall
/// time, failure message and details).
pub fn junit(suite: &str, cases: &[(String, Duration, Option<(String, String)>)]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut s = TestSuite::new(suite);
    for (name, wall, failure) in cases {
        let status = match failure {
            None => TestCaseStatus::success(),
            Some((message, details)) => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(message.as_str());
                st.set_description(details.as_str());
                st
            }
        };
        let mut case = TestCase::new(name.as_str(), status);
        case.set_classname(suite);
        case.set_time(*wall);
        s.add_test_case(case);
    }
    let mut report = Report::new("haywire");
    report.add_test_suite(s);
    report.to_string().unwrap_or_default()
}

#[cfg(madsim)]
/// The JUnit case of a scenario: failures list their replay commands.
pub fn junit_case(t: &Totals) -> (String, Duration, Option<(String, String)>) {
    let fails: Vec<&SeedRecord> = t.seeds.iter().filter(|s| s.failed()).collect();
    let failure = fails.first().map(|f| {
        let message = format!(
            "{} of {} seeds failed; seed {} violated {}",
            fails.len(),
            t.seeds.len(),
            f.seed,
            f.invariant.as_deref().unwrap_or("?")
        );
        let mut details = String::new();
        for f in fails.iter().take(100) {
            details.push_str(&format!(
                "seed {} violated {}: {}\n  replay: {}\n",
                f.seed,
                f.invariant.as_deref().unwrap_or("?"),
                f.message.as_deref().unwrap_or(""),
                f.replay
            ));
        }
        if fails.len() > 100 {
            details.push_str(&format!("... and {} more\n", fails.len() - 100));
        }
        (message, details)
    });
    (t.scenario.clone(), t.wall, failure)
}

#[cfg(madsim)]
/// Set by the first Ctrl-C: sweeps start no new seed, report what
/// finished and exit 130. A second Ctrl-C exits at once.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[cfg(madsim)]
pub fn catch_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nhaywire: interrupted; finishing the seeds in flight (Ctrl-C again to quit now)");
    });
}

#[cfg(madsim)]
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[cfg(madsim)]
/// A progress bar on stderr, only when stderr is a terminal (nothing in a
/// pipe or a CI log); plain when `NO_COLOR` is set.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

#[cfg(madsim)]
impl Progress {
    pub fn new(total: u64, unit: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let bar_style = if colour { "{bar:30.cyan/blue}" } else { "{bar:30}" };
        let template = format!("{{elapsed_precise}} {bar_style} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{msg}}");
        let style = indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        bar.set_style(style);
        Progress { bar: Some(bar) }
    }

    pub fn message(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Run `f` (which prints to stdout) with the bar out of the way.
    pub fn suspend(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
