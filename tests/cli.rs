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
    assert!(out_a.contains("# options:") && out_a.contains("# timeline:"));
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
