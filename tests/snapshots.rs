//! Snapshots of canonical traces: a behaviour change shows as a diff of
//! events. Review changes with `cargo insta review`.

use haywire_core::Mutant;
use haywire_sim::{run, RunConfig};

fn canonical(scenario: &str, seed: u64, mutant: Option<Mutant>) -> String {
    let s = haywire_scenarios::by_name(scenario).expect("scenario exists");
    let out = run(s, seed, &RunConfig { mutant, store: None }).expect("world builds");
    out.trace.canonical_text()
}

#[test]
fn steady_seed_1() {
    insta::assert_snapshot!(canonical("steady", 1, None));
}

#[test]
fn graceful_failover_seed_3() {
    insta::assert_snapshot!(canonical("graceful-failover", 3, None));
}

#[test]
fn renewal_blip_seed_2() {
    insta::assert_snapshot!(canonical("renewal-blip", 2, None));
}

/// A caught mutant: the trace ends at the violation.
#[test]
fn shutdown_no_wait_caught_seed_0() {
    let text = canonical("graceful-failover", 0, Some(Mutant::ShutdownNoWait));
    assert!(text.contains("violation invariant=L1"), "the mutant is caught");
    insta::assert_snapshot!(text);
}
