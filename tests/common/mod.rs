//! Shared helpers for the integration tests.

#![allow(dead_code)]

use std::ops::Range;

/// Seeds per scenario for the sweep tests: `HAYWIRE_SEEDS` (a count like
/// `5000`, or a range like `1000..2000`) widens or moves them.
pub fn sweep_seeds(default: u64) -> Range<u64> {
    match std::env::var("HAYWIRE_SEEDS") {
        Ok(v) if v.contains("..") => haywire_sim::sweep::parse_seeds(&v).unwrap_or_else(|e| panic!("HAYWIRE_SEEDS: {e}")),
        Ok(v) => 0..v.trim().parse::<u64>().unwrap_or_else(|_| panic!("HAYWIRE_SEEDS: '{v}' is not a count or A..B")),
        Err(_) => 0..default,
    }
}

pub fn jobs() -> usize {
    haywire_sim::sweep::default_jobs()
}
