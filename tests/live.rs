//! Live acceptance (docs/design.md §11; README, "Run it live"): the live
//! build of `haywire`, three replica processes on real tokio against a
//! SQLite file and against a throwaway PostgreSQL server, under real
//! signals. The clean core passes the oracle, a killed leader's lease
//! reaches another instance within TTL + retry, a gracefully stopped
//! leader's within one retry period of its release; two field-report bugs
//! put back into core are caught live.
//!
//! Run with `RUSTFLAGS= cargo test --test live --target-dir target/live`
//! (a few minutes; `.ci/run` runs it). The runs take turns: two at once on
//! a 2-core machine would only measure each other.

#![cfg(not(madsim))]

use haywire_live::judge::{failovers, Failover};
use haywire_traces::Trace;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Live {
    code: Option<i32>,
    stdout: String,
    trace: Trace,
    dir: PathBuf,
}

fn run(store: &str, dir: &Path, seconds: u64, seed: u64, mutant: Option<&str>) -> Live {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let _ = std::fs::remove_dir_all(dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_haywire"));
    cmd.args(["live", "--replicas", "3", "--store", store, "--seconds", &seconds.to_string(), "--seed", &seed.to_string()]);
    cmd.arg("--dir").arg(dir);
    if let Some(m) = mutant {
        cmd.args(["--mutant", m]);
    }
    let out = cmd.output().expect("run haywire live");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let text = std::fs::read_to_string(dir.join("trace.jsonl"))
        .unwrap_or_else(|e| panic!("no trace ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let trace = Trace::from_jsonl(&text).expect("the merged trace parses");
    eprintln!("{stdout}");
    Live { code: out.status.code(), stdout, trace, dir: dir.to_path_buf() }
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("haywire-live-test-{name}-{}", std::process::id()))
}

/// The lease's timings and the jitter allowance, from the trace header.
fn bounds(t: &Trace) -> (u64, u64, u64) {
    let lease = &t.header.options["replica"]["lease"];
    let ms = |k: &str| lease[k].as_u64().expect("lease timing in the options");
    let live = t.header.live.as_ref().expect("a live trace says what it was");
    let allowance_us = live["jitter"]["allowance_us"].as_u64().expect("the jitter allowance is in the header");
    (ms("ttl_ms") * 1000, ms("retry_period_ms") * 1000, allowance_us)
}

/// The clean core on `store`: the oracle passes, and both failovers come
/// within their bounds.
fn clean_run(store: &str, dir: &Path) {
    let r = run(store, dir, 45, 3, None);
    assert_eq!(r.code, Some(0), "the oracle must pass the clean core live:\n{}", r.stdout);
    let (ttl, retry, allowance) = bounds(&r.trace);
    let f = failovers(&r.trace.events);
    let done = |kind: &str| -> Vec<&Failover> { f.iter().filter(|f| f.kind == kind && f.took_us.is_some()).collect() };
    let kills = done("kill");
    assert!(!kills.is_empty(), "the leader was killed and another instance took the lease: {f:?}\n{}", r.stdout);
    for k in kills {
        assert!(k.took_us.unwrap() <= ttl + retry + allowance, "a killed leader's lease moves within TTL + retry: {k:?}");
    }
    let stops = done("graceful");
    assert!(!stops.is_empty(), "the leader was stopped gracefully and another took over: {f:?}\n{}", r.stdout);
    for s in stops {
        assert!(s.took_us.unwrap() <= retry + allowance, "a released lease moves within one retry period: {s:?}");
    }
    let _ = std::fs::remove_dir_all(&r.dir);
}

#[test]
fn three_replicas_on_a_sqlite_file_pass_live_and_fail_over_in_time() {
    let dir = scratch("sqlite");
    clean_run(&format!("sqlite:{}", dir.join("store.db").display()), &dir);
}

#[test]
fn three_replicas_on_postgresql_pass_live_and_fail_over_in_time() {
    if std::env::var_os("CI").is_none() && Command::new("sh").args(["-c", "ls /usr/lib/postgresql/*/bin/initdb || command -v initdb"]).output().map_or(true, |o| !o.status.success()) {
        eprintln!("skipped: PostgreSQL not installed");
        return;
    }
    clean_run("postgres:temp", &scratch("postgres"));
}

/// A mutant run: the oracle must say which invariant it broke.
fn caught(mutant: &str, expect: &[&str]) {
    let dir = scratch(mutant);
    let r = run(&format!("sqlite:{}", dir.join("store.db").display()), &dir, 20, 5, Some(mutant));
    assert_eq!(r.code, Some(1), "{mutant} must be caught live:\n{}", r.stdout);
    let fail = r.stdout.lines().find(|l| l.starts_with("FAIL: ")).expect("a FAIL line");
    assert!(expect.iter().any(|inv| fail.starts_with(&format!("FAIL: {inv} "))), "{mutant}: {fail}");
    let _ = std::fs::remove_dir_all(&r.dir);
}

#[test]
fn release_before_cancel_is_caught_live() {
    caught("release-before-cancel", &["S1", "S2"]);
}

#[test]
fn elector_runs_once_is_caught_live() {
    caught("elector-runs-once", &["L1"]);
}
