//! `haywire merge`: the JSON output of sweep shards combined into the
//! summary one sweep over all their seeds would print, with its exit
//! status. Shards must agree on what they ran (range, mutant, store) and
//! together cover every shard of their split, each seed once.

use crate::output::{Format, OutFile, Record, SeedRecord, SummaryRecord, Totals};
use crate::sweep_cmd::finish;
use crate::Usage;
use haywire_scenarios as scenarios;
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

pub fn merge(files: &[String], format: Format, junit: Option<&str>, max_failures: usize) -> Result<ExitCode, Usage> {
    let junit = junit.map(|p| OutFile::check(p, "JUnit XML")).transpose()?;
    let mut seeds: BTreeMap<String, Vec<SeedRecord>> = BTreeMap::new();
    let mut walls: BTreeMap<String, f64> = BTreeMap::new();
    let mut seen: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut summaries: Vec<(String, SummaryRecord)> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| Usage(format!("cannot read {file}: {e}")))?;
        let mut summary = None;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let record: Record = serde_json::from_str(line)
                .map_err(|e| Usage(format!("{file}:{}: not a haywire sweep record: {e}", i + 1)))?;
            match record {
                Record::Seed(r) => {
                    if let Some(other) = seen.insert((r.scenario.clone(), r.seed), file.clone()) {
                        return Err(Usage(format!("{} seed {} is in both {other} and {file}", r.scenario, r.seed)));
                    }
                    seeds.entry(r.scenario.clone()).or_default().push(r);
                }
                Record::Scenario(s) => *walls.entry(s.scenario).or_default() += s.wall_s,
                Record::Summary(s) => summary = Some(s),
                Record::Mutant(_) => return Err(Usage(format!("{file}:{}: a mutants record; merge takes sweep output", i + 1))),
            }
        }
        let summary = summary.ok_or_else(|| {
            Usage(format!("{file} has no summary record: not the whole output of `sweep --format json` (cut short?)"))
        })?;
        summaries.push((file.clone(), summary));
    }
    let summary = combine(&summaries)?;
    // Scenarios in the order `list` gives them.
    let order = |name: &str| scenarios::names().iter().position(|n| *n == name).unwrap_or(usize::MAX);
    let mut names: Vec<String> = seeds.keys().cloned().collect();
    names.sort_by_key(|n| (order(n), n.clone()));
    let mut all = Vec::new();
    for name in names {
        let mut list = seeds.remove(&name).unwrap_or_default();
        list.sort_by_key(|r| r.seed);
        let totals = Totals {
            fleet: scenarios::by_name(&name).is_some_and(|s| s.fleet),
            wall: Duration::from_secs_f64(walls.get(&name).copied().unwrap_or(0.0).max(0.0)),
            scenario: name,
            seeds: list,
        };
        match format {
            Format::Json => {
                for r in &totals.seeds {
                    Record::Seed(r.clone()).print();
                }
                Record::Scenario(totals.record()).print();
            }
            Format::Text => totals.print_text(max_failures),
        }
        all.push(totals);
    }
    let summary = SummaryRecord {
        seeds: all.iter().map(|t| t.seeds.len() as u64).sum(),
        passed: all.iter().map(|t| t.record().passed).sum(),
        failed: all.iter().map(|t| t.record().failed).sum(),
        ..summary
    };
    finish(&all, &summary, format, junit)
}

/// One summary for all the shards: they ran one range with one mutant and
/// store, and every shard of their split is here once.
fn combine(summaries: &[(String, SummaryRecord)]) -> Result<SummaryRecord, Usage> {
    let (first_file, first) = &summaries[0];
    for (file, s) in &summaries[1..] {
        for (what, a, b) in [
            ("seed range", Some(first.range.clone()), Some(s.range.clone())),
            ("mutant", first.mutant.clone(), s.mutant.clone()),
            ("store", first.store.clone(), s.store.clone()),
        ] {
            if a != b {
                return Err(Usage(format!(
                    "{first_file} and {file} ran different sweeps: {what} {} vs {}",
                    a.as_deref().unwrap_or("(default)"),
                    b.as_deref().unwrap_or("(default)")
                )));
            }
        }
    }
    let mut split: Option<u64> = None;
    let mut have = BTreeSet::new();
    for (file, s) in summaries {
        let Some(shard) = &s.shard else {
            if summaries.len() > 1 {
                return Err(Usage(format!("{file} is a whole sweep, not a shard: nothing to merge it with")));
            }
            continue;
        };
        let (k, n) = haywire_sim::sweep::parse_shard(shard).map_err(|e| Usage(format!("{file}: {e}")))?;
        if split.is_some_and(|m| m != n) {
            return Err(Usage(format!("{file} is shard {shard}, of a different split than the others")));
        }
        split = Some(n);
        if !have.insert(k) {
            return Err(Usage(format!("shard {shard} is given twice ({file})")));
        }
    }
    if let Some(n) = split {
        let missing: Vec<String> = (1..=n).filter(|k| !have.contains(k)).map(|k| format!("{k}/{n}")).collect();
        if !missing.is_empty() {
            return Err(Usage(format!("shards missing: {} (of {n})", missing.join(", "))));
        }
    }
    Ok(SummaryRecord {
        shard: None,
        interrupted: summaries.iter().any(|(_, s)| s.interrupted),
        ..first.clone()
    })
}
