//! What the benches' own tables share: a median of timed runs, and
//! whether `cargo bench -- <filter>` asked for a part.

// Each bench uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// The CLI's allocator (src/main.rs), so that a bench times what a sweep
/// runs: glibc's malloc slowed as a large fleet's heap fragmented (issue
/// 14; docs/design.md §12).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Median wall time of `reps` runs of `f`.
pub fn median(reps: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[reps / 2]
}

/// Median wall time of at least `reps` runs of `f`, run until they took
/// `at_least` in all (a short run's median over three is mostly noise),
/// and how many runs that was.
pub fn median_over(reps: usize, at_least: Duration, mut f: impl FnMut()) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut spent = Duration::ZERO;
    while times.len() < reps.max(1) || spent < at_least {
        let t = Instant::now();
        f();
        let took = t.elapsed();
        spent += took;
        times.push(took);
    }
    times.sort();
    (times[times.len() / 2], times.len())
}

/// Whether `cargo bench -- <filter>` asked for `name` (no filter: all).
pub fn wanted(name: &str) -> bool {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}
