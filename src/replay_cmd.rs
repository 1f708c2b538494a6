//! `haywire replay`, `shrink` and `diff`: one seed at a time, read by a
//! person (timeline, filters, HTML, Perfetto) or a machine (`--format
//! json`), and the plan files that carry a shrunk failure.

use crate::names::{run_config, scenario};
use crate::output::{Format, OutFile, Record, SeedRecord};
use crate::Usage;
use haywire_sim::shrink::shrink as shrink_plan;
use haywire_sim::{FaultPlan, Outcome, PlanFile, RunConfig};
use haywire_traces::{first_divergence, first_event_divergence, Event, EventKind, Names, Trace};
use std::process::ExitCode;

pub struct ReplayArgs {
    pub scenario: String,
    pub seed: u64,
    pub mutant: Option<String>,
    pub store: Option<String>,
    pub trace: Option<String>,
    pub plan: Option<String>,
    pub quiet: bool,
    pub options: bool,
    pub only: Vec<String>,
    pub format: Format,
    pub timeline: Option<String>,
    pub perfetto: Option<String>,
}

/// Read a plan file; warn (stderr) where the run it records is not the
/// one asked for.
fn read_plan(path: &str, scenario: &str, seed: u64, cfg: &RunConfig, store: &str) -> Result<FaultPlan, Usage> {
    let text = std::fs::read_to_string(path).map_err(|e| Usage(format!("cannot read plan {path}: {e}")))?;
    let file: PlanFile = serde_json::from_str(&text).map_err(|e| Usage(format!("plan {path} is not a fault plan: {e}")))?;
    let mutant = cfg.mutant.map(|m| m.name());
    for d in file.disagreements(scenario, seed, mutant, store) {
        eprintln!("haywire: warning: plan {path}: {d}");
    }
    if let Some(v) = file.haywire.as_deref().filter(|v| *v != env!("CARGO_PKG_VERSION")) {
        eprintln!("haywire: warning: plan {path} was written by haywire {v}, this is {}", env!("CARGO_PKG_VERSION"));
    }
    Ok(file.plan())
}

/// The plan file `shrink` writes: the plan and the run it came from.
fn plan_file(o: &Outcome) -> PlanFile {
    PlanFile {
        haywire: Some(env!("CARGO_PKG_VERSION").to_string()),
        scenario: Some(o.scenario.clone()),
        seed: Some(o.seed),
        mutant: o.config.mutant.map(|m| m.name().to_string()),
        store: Some(o.options.store.to_string()),
        faults: o.plan.faults.clone(),
    }
}

/// What `--only` keeps: an event matching any filter (violations always).
enum Only {
    Replica(String),
    Worker(String),
    Kind(&'static str),
}

fn parse_only(f: &str) -> Result<Only, Usage> {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    Ok(match f {
        "lease" => Only::Kind("lease"),
        "worker" => Only::Kind("worker"),
        "fault" => Only::Kind("fault"),
        r if r.strip_prefix('r').is_some_and(digits) => Only::Replica(r.to_string()),
        w if w.strip_prefix('w').is_some_and(|rest| rest.split('.').all(digits)) => Only::Worker(w.to_string()),
        other => {
            return Err(Usage(format!(
                "--only '{other}': expected a replica (r2), a worker id (w3.1), or one of lease, worker, fault"
            )))
        }
    })
}

/// The event's string fields (and instance ids named as `r1/i4`).
fn fields(e: &Event, names: &Names) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&e.kind) {
        for (k, v) in map {
            match v {
                serde_json::Value::String(s) if k != "ev" => out.push(s),
                serde_json::Value::Number(n) if haywire_traces::INSTANCE_FIELDS.contains(&k.as_str()) => {
                    out.push(names.actor(n.as_u64().unwrap_or_default()))
                }
                _ => {}
            }
        }
    }
    out
}

/// The fault injector's event kinds (`--only fault`).
const FAULT_KINDS: [&str; 14] = [
    "crash",
    "self_fenced",
    "restart",
    "shutdown_requested",
    "exited",
    "pause",
    "resume",
    "rolling_deploy",
    "rolling_deploy_done",
    "pod_died",
    "scale_down",
    "scale_up",
    "fault_skipped",
    "cluster_ops_fault",
];

/// Injector kinds that come in pairs: `partition` / `partition_healed`, ...
const HEALED_FAULTS: [&str; 9] = [
    "partition",
    "cluster_partition",
    "store_slow",
    "store_faults",
    "store_stall",
    "lease_outage",
    "pod_failures",
    "cluster_slow",
    "delete_refus",
];

fn kind_of(e: &Event) -> &'static str {
    let tag = e.kind.tag();
    let t = tag.as_str();
    let injected = e.node == "sim"
        && (FAULT_KINDS.contains(&t)
            || t.starts_with("cluster_ops_")
            || HEALED_FAULTS.iter().any(|f| t.starts_with(f)));
    let lease = t.starts_with("lease_")
        || t.starts_with("loop_")
        || t.starts_with("effect_")
        || matches!(t, "stepped_down" | "release_failed" | "leader_work_stopped" | "store_read");
    let worker = t.starts_with("worker_")
        || t.starts_with("slot_")
        || t.starts_with("session_")
        || t.starts_with("pod_")
        || t.starts_with("secret_")
        || matches!(t, "spawn_failed" | "reap_failed");
    if injected {
        "fault"
    } else if lease {
        "lease"
    } else if worker {
        "worker"
    } else {
        "other"
    }
}

fn keep(e: &Event, names: &Names, only: &[Only]) -> bool {
    if only.is_empty() || matches!(e.kind, EventKind::Violation { .. }) {
        return true;
    }
    let fields = fields(e, names);
    only.iter().any(|o| match o {
        Only::Kind(k) => kind_of(e) == *k,
        Only::Replica(r) => {
            e.node == *r || fields.iter().any(|f| f == r || f.split('/').next() == Some(r.as_str()))
        }
        Only::Worker(w) => fields.iter().any(|f| f == w || f.strip_suffix(w.as_str()).is_some_and(|p| p.ends_with('-'))),
    })
}

pub fn replay(a: ReplayArgs) -> Result<ExitCode, Usage> {
    let s = scenario(&a.scenario)?;
    let cfg = run_config(a.mutant.as_deref(), a.store.as_deref())?;
    let only: Vec<Only> = a.only.iter().map(|f| parse_only(f)).collect::<Result<_, _>>()?;
    let outputs: Vec<OutFile> = [(&a.trace, "the trace"), (&a.timeline, "the HTML timeline"), (&a.perfetto, "the Perfetto trace")]
        .into_iter()
        .filter_map(|(p, what)| p.as_deref().map(|p| OutFile::check(p, what)))
        .collect::<Result<_, _>>()?;
    let store = {
        let (opts, _) = haywire_sim::expand(s, a.seed, &cfg)?;
        opts.store.to_string()
    };
    let plan = a.plan.as_deref().map(|p| read_plan(p, s.name, a.seed, &cfg, &store)).transpose()?;
    let mut out = haywire_sim::run_with_plan(s, a.seed, &cfg, plan)?;
    out.plan_file = a.plan.clone();
    write_files(&a, &out, outputs)?;
    if a.format == Format::Json {
        Record::Seed(SeedRecord {
            scenario: out.scenario.clone(),
            seed: out.seed,
            verdict: if out.passed() { "pass" } else { "fail" }.into(),
            invariant: out.violation.as_ref().map(|v| v.invariant.to_string()),
            message: out.violation.as_ref().map(|v| v.message.clone()),
            replay: out.replay_command(),
            mutant: cfg.mutant.map(|m| m.name().to_string()),
            store: cfg.store.map(|s| s.to_string()),
            stats: out.stats.clone(),
            trace_hash: Some(out.trace.hash()),
        })
        .print();
        return Ok(verdict_code(&out));
    }
    if !a.quiet {
        print_head(&a, &out, &store);
        say!("# timeline:");
        let mut names = Names::default();
        for e in &out.trace.events {
            let line = names.line(e);
            if keep(e, &names, &only) {
                say!("{line}");
            }
        }
    }
    print_summary(&out);
    match &out.violation {
        None => say!("PASS"),
        Some(_) => say!("{}", out.failure_report(20).trim_end()),
    }
    Ok(verdict_code(&out))
}

fn verdict_code(o: &Outcome) -> ExitCode {
    if o.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The trace, HTML timeline and Perfetto files asked for (in the order
/// they were checked).
fn write_files(a: &ReplayArgs, out: &Outcome, mut files: Vec<OutFile>) -> Result<(), Usage> {
    files.reverse();
    if a.trace.is_some() {
        files.pop().expect("checked").write("the trace", &out.trace.to_jsonl())?;
    }
    if a.timeline.is_some() {
        files.pop().expect("checked").write("the HTML timeline", &haywire_traces::timeline_html(&out.trace))?;
    }
    if a.perfetto.is_some() {
        files.pop().expect("checked").write("the Perfetto trace", &haywire_traces::perfetto_json(&out.trace))?;
    }
    Ok(())
}

fn print_head(a: &ReplayArgs, out: &Outcome, store: &str) {
    say!(
        "# haywire replay: scenario {} seed {}{} store {store}{}",
        out.scenario,
        out.seed,
        out.config.mutant.map(|m| format!(" mutant {m}")).unwrap_or_default(),
        a.plan.as_deref().map(|p| format!(" plan {p}")).unwrap_or_default()
    );
    if a.options {
        say!("# options:");
        let opts = serde_json::to_string_pretty(&out.options).unwrap_or_default();
        for line in opts.lines() {
            say!("#   {line}");
        }
    } else {
        say!("# options (--options prints them whole): {}", serde_json::to_string(&out.options).unwrap_or_default());
    }
    say!("# fault plan ({} faults; replicas counted from 1):", out.plan.faults.len());
    for f in &out.plan.faults {
        say!("#   at {:>7}ms  {:?}", f.at_ms, f.fault);
    }
}

fn print_summary(out: &Outcome) {
    let st = &out.stats;
    let skipped = out.trace.events.iter().filter(|e| matches!(e.kind, EventKind::FaultSkipped { .. })).count();
    say!(
        "# {} events over {:.1}s simulated, {} acquisitions, {} effects, {} faults ({} skipped: nothing to act on); trace hash {}",
        st.events,
        st.sim_ms as f64 / 1000.0,
        st.acquisitions,
        st.effects,
        st.faults,
        skipped,
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
}

pub fn shrink(
    name: &str,
    seed: u64,
    mutant: Option<&str>,
    store: Option<&str>,
    out: &str,
    start: Option<&str>,
    max_runs: u64,
) -> Result<ExitCode, Usage> {
    let s = scenario(name)?;
    let cfg = run_config(mutant, store)?;
    let file = OutFile::check(out, "the shrunk plan")?;
    let store_name = haywire_sim::expand(s, seed, &cfg)?.0.store.to_string();
    let start = start.map(|p| read_plan(p, s.name, seed, &cfg, &store_name)).transpose()?;
    let resumed = start.is_some();
    let Some(shrunk) = shrink_plan(s, seed, &cfg, max_runs.min(usize::MAX as u64) as usize, start)? else {
        file.discard();
        let what = if resumed { "passes with that plan" } else { "passes" };
        say!("scenario {name} seed {seed} {what}: nothing to shrink");
        return Ok(ExitCode::SUCCESS);
    };
    let mut o = shrunk.outcome;
    o.plan_file = Some(file.path().to_string());
    let v = o.violation.as_ref().expect("a shrunk failure still fails");
    let json = serde_json::to_string_pretty(&plan_file(&o)).map_err(|e| Usage(e.to_string()))?;
    file.write("the shrunk plan", &format!("{json}\n"))?;
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

pub fn diff(a: &str, b: &str, events_only: bool) -> Result<ExitCode, Usage> {
    let (ta, tb) = (read_trace(a)?, read_trace(b)?);
    let d = if events_only { first_event_divergence(&ta, &tb, 5) } else { first_divergence(&ta, &tb, 5) };
    match d {
        None if events_only && ta.header != tb.header => {
            say!("same events ({}), different headers; hashes {} and {}", ta.events.len(), ta.hash(), tb.hash());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            say!("identical ({} events, hash {})", ta.events.len(), ta.hash());
            Ok(ExitCode::SUCCESS)
        }
        Some(d) => {
            say!("{d}");
            if d.line == 0 {
                say!("(the headers differ: --events compares only the events, to see where behaviour diverges)");
            }
            Ok(ExitCode::from(1))
        }
    }
}
