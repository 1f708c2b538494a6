//! Slots: the store times at which a job's schedule falls due
//! (docs/design.md §2.7). A slot is the durable key of one firing, so the
//! same schedule and `since` give the same slots on every replica, whatever
//! its clock says.

use crate::clock::Millis;
use crate::store::Schedule;
use std::str::FromStr;

/// A schedule, parsed once, anchored at its job's `since`.
#[derive(Clone, Debug)]
pub struct Slots {
    since: Millis,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Every(u64),
    Cron(Box<::cron::Schedule>),
}

/// Whether `s` is a schedule that parses and fires at all.
pub fn validate(s: &Schedule) -> Result<(), String> {
    Slots::new(s, 0).map(|_| ())
}

impl Slots {
    pub fn new(s: &Schedule, since: Millis) -> Result<Slots, String> {
        let kind = match s {
            Schedule::Every { ms: 0 } => return Err("an interval of 0 ms never advances".into()),
            Schedule::Every { ms } => Kind::Every(*ms),
            Schedule::Cron { expr } => {
                let parsed = ::cron::Schedule::from_str(expr).map_err(|e| format!("cron expression {expr:?}: {e}"))?;
                // Judged from the epoch, never from the wall clock: determinism.
                if parsed.after(&epoch()).next().is_none() {
                    return Err(format!("cron expression {expr:?} never fires"));
                }
                Kind::Cron(Box::new(parsed))
            }
        };
        Ok(Slots { since, kind })
    }

    /// The first slot strictly after `t` (and after `since`), if any.
    pub fn next_after(&self, t: Millis) -> Option<Millis> {
        let t = t.max(self.since);
        match &self.kind {
            Kind::Every(ms) => {
                let k = (t - self.since) / ms + 1;
                k.checked_mul(*ms)?.checked_add(self.since)
            }
            Kind::Cron(c) => {
                let at = chrono::DateTime::from_timestamp_millis(i64::try_from(t).ok()?)?;
                let next = c.after(&at).next()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }

    /// The slots in `(after, until]`, oldest first, at most `max` of them
    /// (the newest `max` when there are more) and how many there were in
    /// all, counted up to `count_cap`.
    pub fn between(&self, after: Millis, until: Millis, max: usize, count_cap: usize) -> (Vec<Millis>, usize) {
        let mut out = std::collections::VecDeque::new();
        let mut n = 0;
        let mut t = after;
        while let Some(s) = self.next_after(t) {
            if s > until || n >= count_cap {
                break;
            }
            n += 1;
            out.push_back(s);
            if out.len() > max {
                out.pop_front();
            }
            t = s;
        }
        (out.into(), n)
    }
}

fn epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_count_from_since() {
        let s = Slots::new(&Schedule::Every { ms: 10 }, 105).unwrap();
        assert_eq!(s.next_after(0), Some(115));
        assert_eq!(s.next_after(115), Some(125));
        assert_eq!(s.next_after(124), Some(125));
        assert_eq!(s.between(105, 150, 10, 100), (vec![115, 125, 135, 145], 4));
        assert_eq!(s.between(105, 150, 2, 100), (vec![135, 145], 4), "the newest two");
        assert_eq!(Slots::new(&Schedule::Every { ms: u64::MAX }, 1).unwrap().next_after(5), None, "overflow ends it");
    }

    #[test]
    fn cron_expressions_fall_on_their_times() {
        let s = Slots::new(&Schedule::Cron { expr: "*/20 * * * * *".into() }, 12_345).unwrap();
        assert_eq!(s.next_after(0), Some(20_000));
        assert_eq!(s.next_after(20_000), Some(40_000));
        assert_eq!(s.between(12_345, 60_000, 10, 100).0, vec![20_000, 40_000, 60_000]);
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        assert!(validate(&Schedule::Every { ms: 0 }).is_err());
        let e = validate(&Schedule::Cron { expr: "every now and then".into() }).unwrap_err();
        assert!(e.contains("every now and then"), "{e}");
            }
}
