//! The command line: the exact forms scripts rely on, and its exit codes
//! (0 passed, 1 violation, 2 bad usage or input).

use std::process::{Command, Output};

fn haywire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haywire")).args(args).output().expect("haywire runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("haywire-cli-{}-{name}", std::process::id()))
}

#[test]
fn list_names_every_scenario_and_mutant_one_per_line() {
    let o = haywire(&["list"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    for s in haywire_scenarios::names() {
        assert!(text.lines().any(|l| l.starts_with(&format!("scenario\t{s}\t"))), "{s} listed");
    }
    for m in haywire_core::Mutant::ALL {
        assert!(text.lines().any(|l| l.starts_with(&format!("mutant\t{m}\t"))), "{m} listed");
    }
}

#[test]
fn sweep_passes_with_exit_0() {
    let o = haywire(&["sweep", "--scenario", "leader-crash", "--seeds", "0..10"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("10 seeds, all passed"));
}

#[test]
fn sweep_with_a_caught_mutant_exits_1_and_prints_the_replay_command() {
    let o = haywire(&["sweep", "--scenario", "graceful-failover", "--seeds", "0..5", "--mutant", "shutdown-no-wait"]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("violated L1"), "{text}");
    assert!(text.contains("replay --scenario graceful-failover --seed 0 --mutant shutdown-no-wait"), "{text}");
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    for args in [
        vec!["sweep", "--scenario", "no-such-scenario"],
        vec!["sweep", "--seeds", "10..5"],
        vec!["sweep", "--seeds", "x..y"],
        vec!["sweep", "--mutant", "no-such-bug"],
        vec!["sweep", "--store", "postgres"],
        vec!["replay", "--scenario", "steady"],
        vec!["replay", "--scenario", "nope", "--seed", "1"],
        vec!["replay", "--scenario", "steady", "--seed", "-3"],
        vec!["diff", "/no/such/trace.jsonl", "/no/such/other.jsonl"],
        vec!["frobnicate"],
    ] {
        let o = haywire(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.trim().is_empty() && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn replay_is_byte_identical_and_diff_agrees() {
    let (a, b) = (tmp("a.jsonl"), tmp("b.jsonl"));
    let run = |path: &std::path::Path| {
        let o = haywire(&["replay", "--scenario", "chaos", "--seed", "3", "--trace", path.to_str().unwrap()]);
        assert!(matches!(o.status.code(), Some(0) | Some(1)));
        stdout(&o)
    };
    let (out_a, out_b) = (run(&a), run(&b));
    assert_eq!(out_a, out_b, "the timeline printed is identical");
    assert!(out_a.contains("# options (") && out_a.contains("# timeline:"));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "trace files are byte-identical");
    let same = haywire(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(same.status.code(), Some(0));

    let o = haywire(&["replay", "--scenario", "chaos", "--seed", "4", "--quiet", "--trace", b.to_str().unwrap()]);
    assert!(matches!(o.status.code(), Some(0) | Some(1)));
    let differ = haywire(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(differ.status.code(), Some(1));
    assert!(stdout(&differ).contains("diverge at line 0"), "the headers differ first");
    let _ = (std::fs::remove_file(&a), std::fs::remove_file(&b));
}

#[test]
fn a_failing_replay_exits_1_with_the_report() {
    let o = haywire(&["replay", "--scenario", "graceful-failover", "--seed", "0", "--mutant", "shutdown-no-wait", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("VIOLATION L1 in scenario graceful-failover seed 0 (mutant shutdown-no-wait)"), "{text}");
    assert!(text.contains("last 20 events:"));
}

#[test]
fn shrink_keeps_the_failure_and_its_plan_replays() {
    let plan = tmp("plan.json");
    let p = plan.to_str().unwrap();
    // The first seed the sweep finds failing.
    let sweep = haywire(&["sweep", "--scenario", "graceful-failover", "--mutant", "release-before-cancel", "--seeds", "0..200"]);
    assert_eq!(sweep.status.code(), Some(1));
    let text = stdout(&sweep);
    let seed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("seed ").and_then(|r| r.split_whitespace().next()).map(str::to_string))
        .expect("a failing seed is named");
    let seed = seed.as_str();
    let o = haywire(&["shrink", "--scenario", "graceful-failover", "--seed", seed, "--mutant", "release-before-cancel", "--out", p]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains(&format!("--plan {p}")));
    let r = haywire(&["replay", "--scenario", "graceful-failover", "--seed", seed, "--mutant", "release-before-cancel", "--plan", p, "--quiet"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(stdout(&r).contains("VIOLATION S2"));
    std::fs::write(&plan, "not json").unwrap();
    let bad = haywire(&["replay", "--scenario", "steady", "--seed", "1", "--plan", p]);
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_file(&plan);
    let pass = haywire(&["shrink", "--scenario", "steady", "--seed", "1", "--out", p]);
    assert_eq!(pass.status.code(), Some(0));
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_tmp(name: &str, text: &str) -> String {
    let p = tmp(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Plans are checked against the world they are replayed in: each problem
/// named on a line of its own, exit 2, nothing run (a huge duration used to
/// run forever).
#[test]
fn a_plan_that_does_not_fit_its_world_is_refused_problem_by_problem() {
    let plan = write_tmp(
        "bad-plan.json",
        r#"{"faults":[
            {"at_ms":1000,"fault":{"Shutdown":{"target":"Leader","down_ms":18446744073709551615}}},
            {"at_ms":18446744073709551615,"fault":{"Crash":{"target":"Leader","down_ms":10}}},
            {"at_ms":1000,"fault":{"LeaseOutage":{"ms":18446744073709551615}}},
            {"at_ms":1000,"fault":{"Crash":{"target":{"Replica":99},"down_ms":10}}},
            {"at_ms":1000,"fault":{"StoreFaults":{"fail_pct":250,"lost_reply_pct":0,"ms":10}}},
            {"at_ms":1000,"fault":{"CrashAfterSecret":{"down_ms":10,"wait_ms":10}}}
        ]}"#,
    );
    let o = haywire(&["replay", "--scenario", "graceful-failover", "--seed", "3", "--plan", &plan]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    for (n, what) in [
        (1, "past the end of the fault phase"),
        (2, "not inside the fault phase"),
        (3, "past the end of the fault phase"),
        (4, "Replica(99) is not a replica of this world"),
        (5, "fail_pct 250 is not a percentage"),
        (6, "no clients"),
    ] {
        assert!(err.lines().any(|l| l.contains(&format!("fault {n} (")) && l.contains(what)), "fault {n}: {what}\n{err}");
    }
    assert!(stdout(&o).is_empty(), "nothing ran");
    for bad in [
        r#"{"faults":[],"colour":"red"}"#,
        r#"{"faults":[{"at_ms":1,"fault":{"Crash":{"target":"Leader","down_ms":1,"extra":2}}}]}"#,
    ] {
        let plan = write_tmp("unknown-field.json", bad);
        let o = haywire(&["replay", "--scenario", "graceful-failover", "--seed", "3", "--plan", &plan]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("unknown field"), "{}", stderr(&o));
    }
}

/// A fault that finds nothing to act on says so in the timeline.
#[test]
fn a_fault_with_no_target_is_a_visible_skipped_event() {
    let plan = write_tmp(
        "skip-plan.json",
        r#"{"faults":[
            {"at_ms":5000,"fault":{"Crash":{"target":{"Replica":1},"down_ms":20000}}},
            {"at_ms":6000,"fault":{"Pause":{"target":{"Replica":1},"ms":500}}}
        ]}"#,
    );
    let o = haywire(&["replay", "--scenario", "graceful-failover", "--seed", "3", "--plan", &plan, "--only", "fault"]);
    assert!(matches!(o.status.code(), Some(0) | Some(1)), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains(r#"fault_skipped fault=pause reason="r1 is not running""#), "{text}");
    assert!(text.contains("(1 skipped: nothing to act on)"), "{text}");
}

/// `haywire diff a a` prints the hash `replay` printed for the same file:
/// the header's floats round-trip.
#[test]
fn one_trace_hash_from_every_command() {
    let trace = tmp("hash.jsonl");
    let t = trace.to_str().unwrap();
    for seed in 0..15 {
        let seed = seed.to_string();
        let r = haywire(&["replay", "--scenario", "chaos", "--seed", &seed, "--quiet", "--trace", t]);
        let printed = stdout(&r).split("trace hash ").nth(1).map(|h| h[..16].to_string()).expect("replay prints a hash");
        let d = haywire(&["diff", t, t]);
        assert!(stdout(&d).contains(&format!("hash {printed}")), "chaos seed {seed}: replay said {printed}, diff said {}", stdout(&d));
    }
    let _ = std::fs::remove_file(&trace);
}

/// Printed replay commands name the program as invoked and every argument
/// that changes the run, and work as printed.
#[test]
fn printed_replay_commands_are_complete_and_run() {
    let exe = env!("CARGO_BIN_EXE_haywire");
    let o = haywire(&["sweep", "--scenario", "graceful-failover", "--seeds", "0..1", "--mutant", "shutdown-no-wait", "--store", "memory"]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    let cmd = text.lines().find_map(|l| l.trim().strip_prefix("replay: ")).expect("a replay command").to_string();
    assert_eq!(cmd, format!("{exe} replay --scenario graceful-failover --seed 0 --mutant shutdown-no-wait --store memory"));
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let again = Command::new(words[0]).args(&words[1..]).arg("--quiet").output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(stdout(&again).contains("VIOLATION L1"));
}

#[test]
fn arguments_are_checked_before_any_work() {
    // The shrunk plan's file is checked before the runs, not after them.
    let started = std::time::Instant::now();
    let o = haywire(&["shrink", "--scenario", "chaos", "--seed", "3", "--out", "/proc/no/such/dir/plan.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot write the shrunk plan"), "{}", stderr(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    for args in [vec!["mutants", "--jobs", "0"], vec!["sweep", "--jobs", "0"], vec!["sweep", "--shard", "5/4"], vec!["replay", "--scenario", "steady", "--seed", "1", "--only", "everything"]] {
        let o = haywire(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    // --seeds takes every seed --seed takes.
    let o = haywire(&["sweep", "--scenario", "steady", "--seeds", "18446744073709551615"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 seeds, all passed"));
}

#[test]
fn mistyped_names_get_did_you_mean() {
    let o = haywire(&["replay", "--scenario", "chaoss", "--seed", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean 'chaos'?"), "{}", stderr(&o));
    let o = haywire(&["sweep", "--mutant", "elector-runs-onse"]);
    assert!(stderr(&o).contains("did you mean 'elector-runs-once'?"), "{}", stderr(&o));
}

/// A closed or full stdout ends the program with a message, not silence.
#[test]
fn a_closed_or_full_stdout_is_reported() {
    let exe = env!("CARGO_BIN_EXE_haywire");
    let piped = Command::new("bash")
        .arg("-c")
        .arg(format!("'{exe}' replay --scenario chaos --seed 3 2>{err} | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}", err = tmp("pipe-err").display()))
        .output()
        .unwrap();
    assert_eq!(stdout(&piped).trim(), "141");
    let err = std::fs::read_to_string(tmp("pipe-err")).unwrap();
    assert!(err.contains("stdout was closed"), "{err}");
    if std::path::Path::new("/dev/full").exists() {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let o = Command::new(exe).args(["list"]).stdout(full).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("cannot write to stdout"), "{}", stderr(&o));
    }
}

/// `--format json`: a record per seed, per scenario and for the sweep, each
/// one JSON object on its own line; `--junit` a test case per scenario.
#[test]
fn sweeps_speak_json_and_junit() {
    let junit = tmp("junit.xml");
    let j = junit.to_str().unwrap();
    let o = haywire(&["sweep", "--scenario", "graceful-failover", "--seeds", "0..4", "--mutant", "shutdown-no-wait", "--format", "json", "--junit", j]);
    assert_eq!(o.status.code(), Some(1));
    let records: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    let seeds: Vec<&serde_json::Value> = records.iter().filter(|r| r["type"] == "seed").collect();
    assert_eq!(seeds.len(), 4);
    for r in &seeds {
        for key in ["scenario", "seed", "verdict", "invariant", "message", "replay", "stats"] {
            assert!(r.get(key).is_some(), "{key} in {r}");
        }
    }
    assert!(seeds.iter().any(|r| r["verdict"] == "fail" && r["invariant"] == "L1"));
    assert_eq!(records.last().unwrap()["type"], "summary");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"<testcase name="graceful-failover""#) && xml.contains("<failure"), "{xml}");
    assert!(xml.contains("replay --scenario graceful-failover --seed 0 --mutant shutdown-no-wait"));
    // Piped stderr: no progress bar.
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let r = haywire(&["replay", "--scenario", "steady", "--seed", "2", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&r).trim()).expect("one JSON object");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["trace_hash"].as_str().map(str::len), Some(16));
    let _ = std::fs::remove_file(&junit);
}

/// Shards split a range deterministically; merged, they are the whole
/// sweep, with its exit status.
#[test]
fn shards_merge_into_the_whole_sweep() {
    let args = ["sweep", "--scenario", "graceful-failover", "--seeds", "0..12", "--mutant", "shutdown-no-wait", "--format", "json"];
    let whole = haywire(&args);
    let mut files = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let o = haywire(&[&args[..], &["--shard", &shard]].concat());
        let f = tmp(&format!("shard-{k}.jsonl"));
        std::fs::write(&f, &o.stdout).unwrap();
        files.push(f.to_str().unwrap().to_string());
    }
    let m = haywire(&[&["merge"][..], &files.iter().map(String::as_str).collect::<Vec<_>>()].concat());
    assert_eq!(m.status.code(), whole.status.code());
    let seeds = |text: &str| -> Vec<String> {
        text.lines().filter(|l| l.contains(r#""type":"seed""#)).map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {}", v["seed"], v["verdict"])
        }).collect()
    };
    let merged = haywire(&[&["merge", "--format", "json"][..], &files.iter().map(String::as_str).collect::<Vec<_>>()].concat());
    assert_eq!(seeds(&stdout(&merged)), seeds(&stdout(&whole)));
    assert!(stdout(&m).contains("12 seeds,"), "{}", stdout(&m));
    // A missing shard is an error, not a smaller pass.
    let partial = haywire(&["merge", &files[0], &files[2]]);
    assert_eq!(partial.status.code(), Some(2));
    assert!(stderr(&partial).contains("shards missing: 2/3"));
}

/// The text timeline: `--quiet` is the summary and verdict; the options
/// record one line; filters by replica, worker and kind.
#[test]
fn the_text_timeline_is_short_when_asked_and_filters() {
    let q = haywire(&["replay", "--scenario", "chaos", "--seed", "3", "--quiet"]);
    assert!(stdout(&q).lines().count() <= 8, "{}", stdout(&q));
    assert!(!stdout(&q).contains("options"));
    let full = stdout(&haywire(&["replay", "--scenario", "chaos", "--seed", "3"]));
    assert_eq!(full.lines().filter(|l| l.starts_with("# options")).count(), 1);
    assert!(full.lines().nth(1).unwrap().len() > 200, "the options on one line");
    let whole = stdout(&haywire(&["replay", "--scenario", "chaos", "--seed", "3", "--options"]));
    assert!(whole.lines().filter(|l| l.starts_with("#   ")).count() > 50);
    assert!(!full.contains(" from=1 ") && full.contains("from=r"), "callers named r1/i4");
    let timeline = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["replay", "--scenario", "chaos", "--seed", "3"];
        for f in filters {
            args.extend(["--only", f]);
        }
        stdout(&haywire(&args)).lines().skip_while(|l| *l != "# timeline:").skip(1).take_while(|l| !l.starts_with("# ")).map(String::from).collect()
    };
    let r2 = timeline(&["r2"]);
    assert!(!r2.is_empty() && r2.iter().all(|l| l.contains("r2")), "{r2:?}");
    let lease = timeline(&["lease"]);
    assert!(!lease.is_empty() && lease.iter().all(|l| l.contains("lease") || l.contains("loop_") || l.contains("effect_") || l.contains("store_read") || l.contains("stepped_down") || l.contains("leader_work")), "{lease:?}");
    let faults = timeline(&["fault"]);
    assert!(!faults.is_empty() && faults.iter().all(|l| l.contains(" sim ")), "{faults:?}");
    let all = timeline(&[]);
    assert!(all.len() > r2.len() + faults.len());
}

/// `diff --events`: a clean run and a mutant run of one seed show where
/// their behaviour first diverges, not just that their headers differ.
#[test]
fn diff_of_events_finds_where_a_mutant_diverges() {
    let (a, b) = (tmp("clean.jsonl"), tmp("mutant.jsonl"));
    let (pa, pb) = (a.to_str().unwrap(), b.to_str().unwrap());
    haywire(&["replay", "--scenario", "graceful-failover", "--seed", "0", "--quiet", "--trace", pa]);
    haywire(&["replay", "--scenario", "graceful-failover", "--seed", "0", "--mutant", "shutdown-no-wait", "--quiet", "--trace", pb]);
    let header = haywire(&["diff", pa, pb]);
    assert!(stdout(&header).contains("diverge at line 0"));
    let events = haywire(&["diff", "--events", pa, pb]);
    assert_eq!(events.status.code(), Some(1));
    let line: usize = stdout(&events).split("diverge at line ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(line > 10, "the runs share their start: {}", stdout(&events));
}

/// Plan files carry the run they came from; a replay of another run warns;
/// `shrink --plan` resumes from a saved plan.
#[test]
fn plan_files_record_their_run_and_shrink_resumes_from_one() {
    let plan = tmp("resume.json");
    let p = plan.to_str().unwrap();
    let o = haywire(&["shrink", "--scenario", "graceful-failover", "--seed", "0", "--mutant", "shutdown-no-wait", "--out", p, "--max-runs", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(file["scenario"], "graceful-failover");
    assert_eq!(file["seed"], 0);
    assert_eq!(file["mutant"], "shutdown-no-wait");
    assert_eq!(file["store"], "sqlite");
    assert!(file["haywire"].is_string());
    let other = haywire(&["replay", "--scenario", "graceful-failover", "--seed", "1", "--plan", p, "--quiet"]);
    let err = stderr(&other);
    assert!(err.contains("seed: the plan came from 0, this run is 1") && err.contains("mutant: the plan came from shutdown-no-wait, this run is none"), "{err}");
    let resumed = haywire(&["shrink", "--scenario", "graceful-failover", "--seed", "0", "--mutant", "shutdown-no-wait", "--out", p, "--plan", p]);
    assert_eq!(resumed.status.code(), Some(1), "{}", stderr(&resumed));
    assert!(stderr(&resumed).is_empty(), "the plan's own run: no warning: {}", stderr(&resumed));
    let _ = std::fs::remove_file(&plan);
}

#[test]
fn help_lists_exit_codes() {
    let o = haywire(&["--help"]);
    let text = stdout(&o);
    for code in ["0 ", "1 ", "2 ", "130", "141"] {
        assert!(text.contains(&format!("  {code}")), "exit code {code} in --help:\n{text}");
    }
}

/// Ctrl-C stops a sweep after the seeds in flight, with the summary of
/// what finished and exit 130.
#[test]
fn ctrl_c_keeps_what_finished() {
    let child = Command::new(env!("CARGO_BIN_EXE_haywire"))
        .args(["sweep", "--scenario", "chaos", "--seeds", "0..100000", "--jobs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Time for the handler to be installed, even on a loaded machine (a
    // SIGINT before it would kill the process outright).
    std::thread::sleep(std::time::Duration::from_millis(3000));
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("chaos ") && text.contains("INTERRUPTED"), "{text}");
}

#[test]
fn live_on_the_simulators_build_says_how_to_build_the_live_one() {
    let o = haywire(&["live", "--store", "sqlite:/tmp/haywire-cli-test-never-created.db"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("RUSTFLAGS= cargo build --release --target-dir target/live"), "{err}");
    assert!(!std::path::Path::new("/tmp/haywire-cli-test-never-created.db").exists(), "nothing was run");
}
