//! Shared helpers for the integration tests.

#![allow(dead_code)]

use std::ops::RangeInclusive;

/// Seeds per scenario for the sweep tests: `HAYWIRE_SEEDS` (a count like
/// `5000`, or a range like `1000..2000`) widens or moves them.
pub fn sweep_seeds(default: u64) -> RangeInclusive<u64> {
    let count = match std::env::var("HAYWIRE_SEEDS") {
        Ok(v) if v.contains("..") => {
            return haywire_sim::sweep::parse_seeds(&v).unwrap_or_else(|e| panic!("HAYWIRE_SEEDS: {e}"))
        }
        Ok(v) => v.trim().parse::<u64>().unwrap_or_else(|_| panic!("HAYWIRE_SEEDS: '{v}' is not a count or A..B")),
        Err(_) => default,
    };
    assert!(count > 0, "HAYWIRE_SEEDS: at least one seed");
    0..=count - 1
}

pub fn jobs() -> usize {
    haywire_sim::sweep::default_jobs()
}
