//! Scenarios and mutants by name: `list`, lookups that suggest the name
//! a user probably meant, and the run configuration from the arguments.
// The live build has the live command only: the simulator's records and
// lookups are unused there.
#![cfg_attr(not(madsim), allow(unused_imports, dead_code))]

use crate::Usage;
use haywire_core::Mutant;
use haywire_scenarios as scenarios;
#[cfg(madsim)]
use haywire_sim::{RunConfig, StoreKind};
use std::process::ExitCode;

/// The known name closest to `word`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(word, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn unknown(kind: &str, word: &str, known: &[&str], extra: &str) -> Usage {
    let hint = did_you_mean(word, known.iter().copied()).map(|k| format!("; did you mean '{k}'?")).unwrap_or_default();
    Usage(format!("unknown {kind} '{word}'{hint} (known: {}{extra})", known.join(", ")))
}

pub fn scenario(name: &str) -> Result<&'static scenarios::Named, Usage> {
    scenarios::by_name(name).ok_or_else(|| unknown("scenario", name, &scenarios::names(), "; or 'all' for sweep"))
}

pub fn mutant(name: &str) -> Result<Mutant, Usage> {
    name.parse::<Mutant>().map_err(|_| {
        let known: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
        unknown("mutant", name, &known, "")
    })
}

#[cfg(madsim)]
pub fn run_config(mutant_name: Option<&str>, store: Option<&str>) -> Result<RunConfig, Usage> {
    let mutant = mutant_name.map(mutant).transpose()?;
    let store = store
        .map(|s| s.parse::<StoreKind>().map_err(|_| unknown("store", s, &["sqlite", "memory"], "")))
        .transpose()?;
    Ok(RunConfig { mutant, store })
}

pub fn list() -> ExitCode {
    for s in scenarios::ALL {
        say!("scenario\t{}\t{}", s.name, s.about);
    }
    for m in Mutant::ALL {
        say!(
            "mutant\t{}\t{} (field report {}; caught in {})",
            m.name(),
            m.description(),
            m.field_report(),
            m.home()
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_strangers_none() {
        let known = ["graceful-failover", "chaos", "steady"];
        assert_eq!(did_you_mean("chaso", known), Some("chaos"));
        assert_eq!(did_you_mean("graceful-failvoer", known), Some("graceful-failover"));
        assert_eq!(did_you_mean("zzzzzz", known), None);
    }

    #[test]
    fn unknown_names_are_usage_errors_with_hints() {
        let Err(Usage(msg)) = scenario("chaoss") else { panic!("no such scenario") };
        assert!(msg.contains("did you mean 'chaos'?"), "{msg}");
        let m = Mutant::ALL[0].name();
        let typo = format!("{}x", m);
        let Err(Usage(msg)) = mutant(&typo) else { panic!("no such mutant") };
        assert!(msg.contains(&format!("did you mean '{m}'?")), "{msg}");
        let Err(Usage(msg)) = run_config(None, Some("sqlit")) else { panic!("no such store") };
        assert!(msg.contains("did you mean 'sqlite'?"), "{msg}");
    }
}
