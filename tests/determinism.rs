//! Determinism is the product: the same seed gives a byte-identical trace,
//! run after run, on any thread, whatever ran before it in the process.

use haywire_sim::{run, RunConfig};

fn jsonl(scenario: &str, seed: u64) -> String {
    let s = haywire_scenarios::by_name(scenario).expect("scenario exists");
    run(s, seed, &RunConfig::default()).expect("world builds").trace.to_jsonl()
}

#[test]
fn same_seed_same_trace_in_every_scenario() {
    for s in haywire_scenarios::ALL {
        // fleet-scale seeds simulate up to hundreds of replicas for up to an
        // hour: two of its smaller ones (12 and 15 replicas).
        let seeds: &[u64] = if s.name == "fleet-scale" { &[0, 5] } else { &[0, 1, 17, 4242] };
        for &seed in seeds {
            let a = jsonl(s.name, seed);
            let b = jsonl(s.name, seed);
            assert!(a == b, "{} seed {seed}: two runs differ", s.name);
        }
    }
}

#[test]
fn a_run_is_unaffected_by_what_ran_before_it() {
    let alone = jsonl("chaos", 7);
    for seed in 100..110 {
        jsonl("chaos", seed);
    }
    assert!(alone == jsonl("chaos", 7), "earlier seeds leaked into a later run");
}

#[test]
fn concurrent_runs_on_threads_agree() {
    let expected = jsonl("store-faults", 3);
    let handles: Vec<_> = (0..4).map(|_| std::thread::spawn(|| jsonl("store-faults", 3))).collect();
    for h in handles {
        assert!(h.join().expect("thread ran") == expected, "a run on another thread differs");
    }
}

#[test]
fn different_seeds_make_different_worlds() {
    assert_ne!(jsonl("chaos", 1), jsonl("chaos", 2));
}

#[test]
fn trace_round_trips_through_jsonl() {
    let text = jsonl("renewal-blip", 5);
    let trace = haywire_traces::Trace::from_jsonl(&text).expect("own trace parses");
    assert_eq!(trace.to_jsonl(), text);
}

/// A fresh process (what `haywire replay` is) reproduces the trace a sweep
/// saw in a process that had already run other seeds.
#[test]
fn replay_in_a_fresh_process_matches_the_sweep() {
    let bin = env!("CARGO_BIN_EXE_haywire");
    for (scenario, seed) in [("store-faults", 3), ("chaos", 11)] {
        let in_process = jsonl(scenario, seed);
        let path = std::env::temp_dir().join(format!("haywire-det-{}-{scenario}-{seed}.jsonl", std::process::id()));
        let status = std::process::Command::new(bin)
            .args(["replay", "--quiet", "--scenario", scenario, "--seed", &seed.to_string(), "--trace"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("haywire runs");
        assert!(status.code() == Some(0) || status.code() == Some(1), "replay exited with {status}");
        let fresh = std::fs::read_to_string(&path).expect("trace written");
        let _ = std::fs::remove_file(&path);
        assert!(fresh == in_process, "{scenario} seed {seed}: fresh-process replay differs from in-process run");
    }
}

/// The oracle judges a recorded trace after the fact exactly as it judged
/// the run live: same verdict, same invariant (what `haywire judge`-style
/// checks of live traces rely on).
#[test]
fn a_recorded_trace_judged_again_gets_the_runs_verdict() {
    use haywire_core::Mutant;
    let cases: [(&str, u64, Option<Mutant>); 6] = [
        ("steady", 1, None),
        ("chaos", 3, None),
        ("idle-churn", 0, None),
        ("graceful-failover", 3, Some(Mutant::ReleaseBeforeCancel)),
        ("spawn-faults", 33, Some(Mutant::JanitorStopsAtFirstError)),
        ("persist-faults", 2, Some(Mutant::ActivateSplit)),
    ];
    for (name, seed, mutant) in cases {
        let s = haywire_scenarios::by_name(name).expect("scenario exists");
        let out = haywire_sim::run(s, seed, &haywire_sim::RunConfig { mutant, store: None }).expect("world builds");
        let params = haywire_sim::oracle_params(&out.options);
        let again = haywire_sim::judge(params, out.options.replicas, &out.trace.events);
        assert_eq!(
            again.as_ref().map(|v| v.invariant),
            out.violation.as_ref().map(|v| v.invariant),
            "{name} seed {seed} {mutant:?}: live {:?}, judged again {again:?}",
            out.violation
        );
        assert_eq!(mutant.is_some(), out.violation.is_some(), "{name} seed {seed}: the mutant is caught, the clean core passes");
    }
}
