//! Many seeds of one scenario, spread over threads. Each seed runs in its
//! own madsim runtime on one thread, so seeds never share state; results are
//! reported in seed order whatever the thread timing.

use crate::runner::{run, RunConfig, Stats};
use crate::scenario::Scenario;
use crate::Violation;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// What a sweep keeps of one seed.
#[derive(Clone, Debug)]
pub struct SeedResult {
    pub seed: u64,
    pub stats: Stats,
    pub violation: Option<Violation>,
    /// The failure report (events leading up to it, replay command).
    pub report: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct SweepResult {
    /// In seed order; seeds after the first failure may be missing when the
    /// sweep stopped early.
    pub seeds: Vec<SeedResult>,
    /// A world that could not be built (bad options): seed and message.
    pub errors: Vec<(u64, String)>,
}

impl SweepResult {
    pub fn failures(&self) -> impl Iterator<Item = &SeedResult> {
        self.seeds.iter().filter(|s| s.violation.is_some())
    }
    pub fn first_failure(&self) -> Option<&SeedResult> {
        self.failures().next()
    }
    pub fn passed(&self) -> usize {
        self.seeds.iter().filter(|s| s.violation.is_none()).count()
    }
}

/// Run `seeds` of `scenario` on `jobs` threads. With `stop_at_first`, seeds
/// above the first failing one are skipped (the lowest failing seed is
/// still found, whatever the timing).
pub fn sweep(
    scenario: &dyn Scenario,
    seeds: Range<u64>,
    cfg: &RunConfig,
    jobs: usize,
    stop_at_first: bool,
) -> SweepResult {
    let next = AtomicU64::new(seeds.start);
    let lowest_failure = AtomicU64::new(u64::MAX);
    let stop = AtomicBool::new(false);
    let out = Mutex::new(SweepResult::default());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= seeds.end || (stop.load(Ordering::SeqCst) && seed > lowest_failure.load(Ordering::SeqCst)) {
                    return;
                }
                match run(scenario, seed, cfg) {
                    Ok(o) => {
                        let failed = o.violation.is_some();
                        let r = SeedResult {
                            seed,
                            stats: o.stats.clone(),
                            report: failed.then(|| o.failure_report(20)),
                            violation: o.violation,
                        };
                        if failed && stop_at_first {
                            lowest_failure.fetch_min(seed, Ordering::SeqCst);
                            stop.store(true, Ordering::SeqCst);
                        }
                        lock(&out).seeds.push(r);
                    }
                    Err(e) => lock(&out).errors.push((seed, e)),
                }
            });
        }
    });
    let mut res = out.into_inner().unwrap_or_else(|p| p.into_inner());
    res.seeds.sort_by_key(|r| r.seed);
    res.errors.sort();
    if stop_at_first {
        let cut = lowest_failure.load(Ordering::SeqCst);
        res.seeds.retain(|r| r.seed <= cut);
    }
    res
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Threads to use by default: one per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Parse `A..B` (half-open) or a single seed `N`.
pub fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let bad = || format!("malformed seed range '{s}': expected A..B (e.g. 0..100) or a single seed");
    let r = match s.split_once("..") {
        Some((a, b)) => {
            let a: u64 = a.trim().parse().map_err(|_| bad())?;
            let b: u64 = b.trim().parse().map_err(|_| bad())?;
            a..b
        }
        None => {
            let a: u64 = s.trim().parse().map_err(|_| bad())?;
            a..a.checked_add(1).ok_or_else(bad)?
        }
    };
    if r.start >= r.end {
        return Err(format!("empty seed range '{s}': the end must be above the start"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::parse_seeds;

    #[test]
    fn seed_ranges_parse_or_explain() {
        assert_eq!(parse_seeds("0..100"), Ok(0..100));
        assert_eq!(parse_seeds("7"), Ok(7..8));
        assert!(parse_seeds("5..5").unwrap_err().contains("empty"));
        assert!(parse_seeds("9..3").is_err());
        assert!(parse_seeds("a..b").unwrap_err().contains("malformed"));
        assert!(parse_seeds("1..").is_err());
        assert!(parse_seeds("").is_err());
        assert!(parse_seeds("18446744073709551615").is_err());
    }
}
