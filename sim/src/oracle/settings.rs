//! C5 settings converge (docs/design.md §2.7, field report 001's config
//! cache): judged from the versions the store committed and what readers
//! were served by each replica.
//!
//! - No replica serves a version older than one it already served (across
//!   its restarts too: a new instance reads the store before serving).
//! - Once a write has committed, a replica that has been healthy, with the
//!   store calm, for the poll interval plus slack serves it or a newer one.

use super::model::Model;
use super::{secs, violation, Check, OracleParams, Violation};
use haywire_traces::{Event, EventKind};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct SettingsCheck {
    /// Committed versions and when, in order.
    writes: Vec<(u64, u64)>,
    /// The newest version each replica served.
    served: BTreeMap<String, u64>,
}

impl Check for SettingsCheck {
    fn observe(&mut self, p: &OracleParams, m: &Model, e: &Event) -> Option<Violation> {
        match &e.kind {
            EventKind::SettingsWrite { version, .. } => {
                self.writes.push((e.t, *version));
                None
            }
            EventKind::SettingsServed { replica, version } => {
                let prev = self.served.get(replica).copied();
                if let (Some(prev), Some(v)) = (prev, *version) {
                    if v < prev {
                        return violation("C5", e.t, format!("settings converge: {replica} served version {v} after {prev}"));
                    }
                }
                if let Some(v) = *version {
                    self.served.insert(replica.clone(), prev.map_or(v, |p| p.max(v)));
                }
                let healthy = m.rep(replica).and_then(|r| r.healthy_since)?;
                if !m.store_calm() {
                    return None;
                }
                let from = healthy.max(m.calm_since);
                let owed = self
                    .writes
                    .iter()
                    .filter(|(at, _)| e.t > (*at).max(from) + p.cron.settings_us)
                    .map(|(_, v)| *v)
                    .max()?;
                if version.is_none_or(|v| v < owed) {
                    return violation(
                        "C5",
                        e.t,
                        format!(
                            "settings converge: {replica} served {} though version {owed} committed at {} and it has been \
                             healthy with the store calm since {} (bound {})",
                            version.map_or("nothing".to_string(), |v| format!("version {v}")),
                            secs(self.writes.iter().find(|(_, v)| *v == owed).map_or(0, |w| w.0)),
                            secs(from),
                            secs(p.cron.settings_us)
                        ),
                    );
                }
                None
            }
            _ => None,
        }
    }
}
