//! Many seeds of one scenario, spread over threads. Each seed runs in its
//! own madsim runtime on one thread, so seeds never share state; results are
//! reported in seed order whatever the thread timing.

use crate::runner::{run, RunConfig, Stats};
use crate::scenario::Scenario;
use crate::Violation;
use std::ops::RangeInclusive;
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
    /// Stopped by [`Hooks::cancel`] before every seed ran: `seeds` holds
    /// the ones that finished.
    pub interrupted: bool,
}

/// What a caller sees of a sweep while it runs, and how it stops one.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Called from the worker thread as each seed finishes (any order).
    pub on_seed: Option<&'a (dyn Fn(&SeedResult) + Sync)>,
    /// Once set, no new seed starts; the ones running finish.
    pub cancel: Option<&'a AtomicBool>,
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
    seeds: RangeInclusive<u64>,
    cfg: &RunConfig,
    jobs: usize,
    stop_at_first: bool,
) -> SweepResult {
    sweep_with(scenario, seeds, cfg, jobs, stop_at_first, &Hooks::default())
}

/// [`sweep`], reporting each seed as it finishes and stoppable part way.
pub fn sweep_with(
    scenario: &dyn Scenario,
    seeds: RangeInclusive<u64>,
    cfg: &RunConfig,
    jobs: usize,
    stop_at_first: bool,
    hooks: &Hooks,
) -> SweepResult {
    // Seeds are handed out by offset from the start, so the last seed
    // (u64::MAX included) needs no seed past it.
    let (first, count) = (*seeds.start(), seeds_in(&seeds));
    let next = AtomicU64::new(0);
    let lowest_failure = AtomicU64::new(u64::MAX);
    let stop = AtomicBool::new(false);
    let interrupted = AtomicBool::new(false);
    let out = Mutex::new(SweepResult::default());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let offset = next.fetch_add(1, Ordering::SeqCst) as u128;
                if offset >= count {
                    return;
                }
                let seed = first + offset as u64;
                if stop.load(Ordering::SeqCst) && seed > lowest_failure.load(Ordering::SeqCst) {
                    return;
                }
                if hooks.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                    interrupted.store(true, Ordering::SeqCst);
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
                        if let Some(f) = hooks.on_seed {
                            f(&r);
                        }
                        lock(&out).seeds.push(r);
                    }
                    Err(e) => lock(&out).errors.push((seed, e)),
                }
            });
        }
    });
    let mut res = out.into_inner().unwrap_or_else(|p| p.into_inner());
    res.interrupted = interrupted.load(Ordering::SeqCst);
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

/// How many seeds a range holds (all of u64 does not fit a u64).
pub fn seeds_in(r: &RangeInclusive<u64>) -> u128 {
    if r.is_empty() {
        0
    } else {
        (*r.end() - *r.start()) as u128 + 1
    }
}

/// Parse `A..B` (half-open), `A..=B` (inclusive) or a single seed `N`
/// (any u64, the largest too).
pub fn parse_seeds(s: &str) -> Result<RangeInclusive<u64>, String> {
    let bad = || format!("malformed seed range '{s}': expected A..B (e.g. 0..100), A..=B, or a single seed");
    let num = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
    if let Some((a, b)) = s.split_once("..=") {
        let (a, b) = (num(a)?, num(b)?);
        if a > b {
            return Err(format!("empty seed range '{s}': the end must not be below the start"));
        }
        return Ok(a..=b);
    }
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a >= b {
                return Err(format!("empty seed range '{s}': the end must be above the start"));
            }
            Ok(a..=b - 1)
        }
        None => {
            let a = num(s)?;
            Ok(a..=a)
        }
    }
}

/// Shard `k` of `n` (counted from 1) of a seed range: the `k`th of `n`
/// contiguous, near-equal parts, so shards together run every seed once
/// and the same `k/n` always names the same seeds. `None`: the shard is
/// empty (more shards than seeds).
pub fn shard(r: &RangeInclusive<u64>, k: u64, n: u64) -> Option<RangeInclusive<u64>> {
    let total = seeds_in(r);
    let (k, n) = (k as u128, n as u128);
    let from = total * (k - 1) / n;
    let to = total * k / n;
    (to > from).then(|| (*r.start() + from as u64)..=(*r.start() + (to - 1) as u64))
}

/// Parse `K/N` (1 <= K <= N).
pub fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("malformed shard '{s}': expected K/N with 1 <= K <= N, e.g. 3/8");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_or_explain() {
        assert_eq!(parse_seeds("0..100"), Ok(0..=99));
        assert_eq!(parse_seeds("0..=100"), Ok(0..=100));
        assert_eq!(parse_seeds("7"), Ok(7..=7));
        assert!(parse_seeds("5..5").unwrap_err().contains("empty"));
        assert_eq!(parse_seeds("5..=5"), Ok(5..=5));
        assert!(parse_seeds("9..3").is_err());
        assert!(parse_seeds("9..=3").is_err());
        assert!(parse_seeds("a..b").unwrap_err().contains("malformed"));
        assert!(parse_seeds("1..").is_err());
        assert!(parse_seeds("").is_err());
        // `--seed` takes every u64; so does `--seeds`.
        assert_eq!(parse_seeds("18446744073709551615"), Ok(u64::MAX..=u64::MAX));
        assert_eq!(seeds_in(&(0..=u64::MAX)), 1u128 << 64);
    }

    #[test]
    fn shards_cover_a_range_once_in_order() {
        for (range, n) in [(0..=99u64, 7u64), (5..=5, 3), (0..=u64::MAX, 4), (10..=12, 3)] {
            let mut next = *range.start() as u128;
            for k in 1..=n {
                if let Some(s) = shard(&range, k, n) {
                    assert_eq!(*s.start() as u128, next, "{range:?} {k}/{n}");
                    next = *s.end() as u128 + 1;
                }
            }
            assert_eq!(next, *range.end() as u128 + 1, "{range:?} in {n} shards");
        }
        assert_eq!(shard(&(0..=99), 1, 4), Some(0..=24));
        assert_eq!(shard(&(0..=99), 4, 4), Some(75..=99));
        assert_eq!(parse_shard("3/8"), Ok((3, 8)));
        for bad in ["0/4", "5/4", "1/0", "x", "1/", "/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
