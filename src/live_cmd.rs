//! `haywire live`: the live mode's command line (the run itself is in the
//! `haywire-live` crate), and the hidden `live-replica` a run starts its
//! replica processes with. Both need the live build: on the simulator's
//! build they say how to make it.

use crate::Usage;
use haywire_sim::options::{MAX_CLIENTS, MAX_REPLICAS};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct LiveCli {
    /// Replica processes.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_REPLICAS as i64))]
    replicas: u32,
    /// The store: sqlite:PATH (a new file), postgres:URL (a database with
    /// no haywire tables yet; URL as postgresql://user@host:port/db), or
    /// postgres:temp (a throwaway server haywire starts and removes).
    #[arg(long, value_name = "SPEC")]
    store: String,
    /// Seconds of faults; the quiet period (about a minute) follows.
    #[arg(long, default_value_t = 60, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    /// Seeds the fault schedule, the clients' choices and the options.
    #[arg(long, default_value_t = 0, value_name = "K")]
    seed: u64,
    /// Put one field-report bug back into core (see `haywire list`).
    #[arg(long, value_name = "NAME")]
    mutant: Option<String>,
    /// Client tasks opening and closing sessions.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=MAX_CLIENTS as i64))]
    clients: u32,
    /// Where the journals, replica logs, options and the merged trace go
    /// (default: a new directory in the temp dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// With postgres:URL: the shell command that restarts that server (the
    /// database-restart fault); without it the fault only reconnects.
    #[arg(long, value_name = "CMD")]
    restart_cmd: Option<String>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
pub struct ReplicaCli {
    /// Which replica (0-based; the trace names it r<index+1>).
    #[arg(long)]
    index: usize,
    /// The driver's store and cluster gateway.
    #[arg(long)]
    gateway: std::net::SocketAddr,
    /// The run's origin on the machine's monotonic clock, in µs.
    #[arg(long)]
    origin_us: u64,
    /// Where this process writes its events (JSONL).
    #[arg(long)]
    journal: PathBuf,
    /// The run's options record (JSON).
    #[arg(long)]
    options: PathBuf,
}

#[cfg(madsim)]
const LIVE_BUILD: &str = "`haywire live` runs on real tokio, and this is the simulator's build. Build the live one and run \
                          it from there:\n  RUSTFLAGS= cargo build --release --target-dir target/live\n  \
                          target/live/release/haywire live --store sqlite:/tmp/haywire-live.db";

#[cfg(madsim)]
pub fn live(_: LiveCli) -> Result<ExitCode, Usage> {
    Err(Usage(LIVE_BUILD.into()))
}

#[cfg(madsim)]
pub fn replica(_: ReplicaCli) -> Result<ExitCode, Usage> {
    Err(Usage(LIVE_BUILD.into()))
}

#[cfg(not(madsim))]
pub fn replica(a: ReplicaCli) -> Result<ExitCode, Usage> {
    Ok(haywire_live::replica_main(haywire_live::ReplicaArgs {
        index: a.index,
        gateway: a.gateway,
        origin_us: a.origin_us,
        journal: a.journal,
        options: a.options,
    }))
}

#[cfg(not(madsim))]
pub fn live(a: LiveCli) -> Result<ExitCode, Usage> {
    use haywire_live::{LiveArgs, StoreSpec};
    let store: StoreSpec = a.store.parse()?;
    let mutant = a.mutant.as_deref().map(crate::names::mutant).transpose()?;
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program to start replicas with: {e}"))?;
    let dir = a.dir.unwrap_or_else(|| haywire_live::driver::default_dir(a.seed));
    let args = LiveArgs {
        replicas: a.replicas as usize,
        store,
        seconds: a.seconds,
        seed: a.seed,
        mutant,
        clients: a.clients as usize,
        dir,
        restart_cmd: a.restart_cmd,
        program,
        verbose: !a.quiet,
    };
    let report = haywire_live::run(args.clone())?;
    print_report(&args, &report);
    Ok(if report.violation.is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[cfg(not(madsim))]
fn secs(us: u64) -> String {
    format!("{:.1}s", us as f64 / 1e6)
}

#[cfg(not(madsim))]
fn print_report(args: &haywire_live::LiveArgs, r: &haywire_live::LiveReport) {
    use haywire_traces::EventKind;
    let o = &r.options;
    let l = &o.replica.lease;
    say!(
        "live: {} replicas on {}, {} clients, seed {}{}; {} s of faults, then {} s quiet",
        args.replicas,
        args.store,
        args.clients,
        args.seed,
        args.mutant.map(|m| format!(", mutant {}", m.name())).unwrap_or_default(),
        args.seconds,
        o.quiet_ms / 1000
    );
    let j = &r.jitter;
    say!(
        "jitter measured: timer {:.1} ms, loopback round trip {:.1} ms, store read {:.1} ms; every deadline of the oracle \
         widened by {:.0} ms",
        j.timer_us as f64 / 1e3,
        j.rtt_us as f64 / 1e3,
        j.store_us as f64 / 1e3,
        j.allowance_us as f64 / 1e3
    );
    for e in &r.trace.events {
        let what = match &e.kind {
            EventKind::Crash { target } => format!("SIGKILL {target}"),
            EventKind::Pause { target, ms } => format!("SIGSTOP {target} for {ms} ms"),
            EventKind::ShutdownRequested { target } => format!("SIGTERM {target}"),
            EventKind::Exited { target, graceful } => {
                format!("{target} exited{}", if *graceful { " gracefully" } else { ", killed" })
            }
            EventKind::StoreStall { .. } => "database restarting".to_string(),
            EventKind::StoreStallHealed => "database back".to_string(),
            EventKind::FaultSkipped { fault, reason } => format!("{fault} skipped: {reason}"),
            _ => continue,
        };
        say!("  {:>7}  {what}", secs(e.t));
    }
    for f in &r.failovers {
        let bound = match f.kind {
            "kill" => l.ttl_ms + l.retry_period_ms,
            _ => l.retry_period_ms,
        };
        let how = match f.kind {
            "kill" => format!("{} killed holding the lease at {}", f.target, secs(f.from_us)),
            _ => format!("{} stopped gracefully, released at {}", f.target, secs(f.from_us)),
        };
        match f.took_us {
            Some(t) => say!(
                "failover: {how}; another instance held it {} later (TTL + retry is {} ms, retry {} ms)",
                secs(t),
                l.ttl_ms + l.retry_period_ms,
                l.retry_period_ms
            ),
            None => say!("failover: {how}; no other instance took the lease (bound {bound} ms)"),
        }
    }
    let processes = r.trace.events.iter().filter(|e| matches!(e.kind, EventKind::Started)).count();
    say!("{} events from {} replica starts; trace: {}", r.trace.events.len(), processes, r.trace_path.display());
    match &r.violation {
        None => say!("PASS: every invariant held"),
        Some(v) => say!("FAIL: {} at {}: {}", v.invariant, secs(v.at_us), v.message),
    }
}
