//! What the benches' own tables share: a median of timed runs, and
//! whether `cargo bench -- <filter>` asked for a part.

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

/// Whether `cargo bench -- <filter>` asked for `name` (no filter: all).
pub fn wanted(name: &str) -> bool {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}
