//! The reapers' passes, one file per pass (the janitor on the leader, the
//! fallback reaper on every replica). Floor and headroom, which the passes
//! keep, are in `floor.rs` and `headroom.rs`; health passes in `health.rs`.

mod idle;
mod orphans;
mod secrets;
mod slots;
mod takeovers;
mod upkeep;
