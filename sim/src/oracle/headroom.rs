//! H1 constant headroom (docs/design.md §2.6; field report 002, fix 6): the
//! janitor keeps exactly the configured number of placeholder pods, never
//! a number that follows demand. Placeholders are known from ground truth:
//! the labels the cluster created them with.
//!
//! - While a janitor can act (a healthy leader, a calm store) and the pod
//!   operations its pass needs are calm, a placeholder count other than the
//!   constant is put right within one reap interval + the RPC slack + two
//!   orphan-pass deadlines (the object passes run before it).
//! - At the end, exactly the constant remain (with L2's pods = live rows,
//!   the cluster holds live rows' pods plus the placeholders, nothing else).
//!
//! Also measured: the peak and the time-integral of placeholder pods over
//! the run, to compare a core against the clean one.

use super::model::Model;
use super::{secs, violation, Check, OracleParams, Violation};

/// What the headroom pass needs of the cluster.
const OPS: [&str; 3] = ["list_pods", "create_pod", "delete_pod"];

#[derive(Default)]
pub struct HeadroomCheck {
    /// Since when the count has been off the constant.
    off_since: Option<u64>,
    last_tick: u64,
    peak: usize,
    /// Placeholder-µs over the run.
    integral: u128,
}

impl HeadroomCheck {
    /// (peak placeholder count, placeholder-µs) so far.
    pub fn measure(&self) -> (usize, u128) {
        (self.peak, self.integral)
    }
}

impl Check for HeadroomCheck {
    fn tick(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        let n = m.placeholders.len();
        self.peak = self.peak.max(n);
        self.integral += n as u128 * t.saturating_sub(self.last_tick) as u128;
        self.last_tick = t;
        let want = p.fleet.headroom_nodes as usize;
        if n == want {
            self.off_since = None;
            return None;
        }
        let off = *self.off_since.get_or_insert(t);
        let janitor = m.janitor_able_since(t)?;
        let calm = m.ops_calm_since(&OPS)?;
        let due = off.max(janitor).max(calm) + p.fleet.reap_us + p.fleet.slack_us + 2 * p.fleet.orphan_pass_us;
        if t <= due {
            return None;
        }
        violation(
            "H1",
            t,
            format!(
                "constant headroom: {n} placeholder pods since {} (configured {want}), due to be put right by {}",
                secs(off),
                secs(due)
            ),
        )
    }

    fn finish(&mut self, p: &OracleParams, m: &Model, t: u64) -> Option<Violation> {
        let want = p.fleet.headroom_nodes as usize;
        if m.placeholders.len() == want {
            return None;
        }
        let names: Vec<&String> = m.placeholders.keys().collect();
        violation("H1", t, format!("constant headroom: {} placeholder pods at the end (configured {want}): {names:?}", names.len()))
    }
}
