//! Every mutant (a field-report bug put back into core) is caught by the
//! default sweep of its home scenario within its seed budget, and the
//! invariant that catches it is one the bug breaks. Home, budget and
//! invariants come from the mutant's registry entry
//! (`core/src/mutants.rs`); each mutant gets its test by being declared.

mod common;

use haywire_core::Mutant;
use haywire_sim::sweep::sweep;
use haywire_sim::RunConfig;

fn caught(m: Mutant) {
    let home = haywire_scenarios::home_of(m);
    let budget = m.seed_budget();
    let cfg = RunConfig { mutant: Some(m), store: None };
    let res = sweep(home, 0..=budget - 1, &cfg, common::jobs(), true);
    let f = res
        .first_failure()
        .unwrap_or_else(|| panic!("mutant {m} not caught in {} within {budget} seeds", home.name));
    let v = f.violation.as_ref().expect("a failure has a violation");
    assert!(
        m.caught_by().contains(&v.invariant),
        "mutant {m} caught at seed {} by {} ({}), expected one of {:?}",
        f.seed,
        v.invariant,
        v.message,
        m.caught_by()
    );
    let report = f.report.as_deref().unwrap_or("");
    assert!(report.contains(&format!("--seed {} --mutant {m}", f.seed)), "report names the replay command:\n{report}");
}

/// One test per registered mutant, named after its variant.
macro_rules! one_test_each {
    ($($m:ident)*) => {
        $(
            #[test]
            #[allow(non_snake_case)]
            fn $m() {
                caught(Mutant::$m);
            }
        )*
    };
}

mod is_caught {
    use super::*;
    haywire_core::for_each_mutant!(one_test_each);
}

/// The simulator builds core with the `mutants` feature: a switched-on
/// mutant is live (without it every switch is a constant false and no
/// sweep could catch anything).
#[test]
fn the_simulator_builds_core_with_live_switches() {
    assert!(haywire_core::mutants::LIVE, "haywire-sim must enable haywire-core/mutants");
    for m in Mutant::ALL {
        assert!(haywire_core::Mutants::only(m).on(m), "{m}");
    }
}
