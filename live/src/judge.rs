//! After a live run: the journals merged into one trace, the oracle's
//! bounds widened by the measured jitter allowance, the verdict, and the
//! failovers measured from the store's own record.

use crate::driver::LiveArgs;
use haywire_sim::oracle::OracleParams;
use haywire_sim::{judge, oracle_params, RunOptions, Violation};
use haywire_traces::{Event, EventKind, LeaseOp, Trace, TraceHeader, FORMAT};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How late this machine ran things before the run, and the allowance the
/// oracle's timing bounds were widened by: four times the worst sample,
/// plus 100 ms for what a short probe cannot see (a busy machine's
/// scheduling bursts, a process start).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Jitter {
    /// Worst oversleep of a 5 ms timer, of 100.
    pub timer_us: u64,
    /// Worst loopback round trip to the gateway, of 100.
    pub rtt_us: u64,
    /// Worst store read through the gateway's backend, of 20.
    pub store_us: u64,
    pub allowance_us: u64,
}

impl Jitter {
    pub fn from_samples(timer_us: u64, rtt_us: u64, store_us: u64) -> Jitter {
        let worst = timer_us.max(rtt_us).max(store_us);
        Jitter { timer_us, rtt_us, store_us, allowance_us: 4 * worst + 100_000 }
    }
}

/// The oracle's bounds with `by_us` more time on every upper bound (a
/// deadline something must happen by); lower bounds (nothing before TTL,
/// the dead threshold, the pause bound S2 is promised under) stay.
pub fn widen(mut p: OracleParams, by_us: u64) -> OracleParams {
    p.takeover_us += by_us;
    p.contend_us += by_us;
    let f = &mut p.fleet;
    for bound in [
        &mut f.slack_us,
        &mut f.heartbeat_us,
        &mut f.quick_us,
        &mut f.orphan_pass_us,
        &mut f.drain_bound_us,
        &mut f.health_bound_us,
    ] {
        *bound += by_us;
    }
    p
}

/// Every journal of the run, driver's first, then the replicas' in the
/// order they started.
fn journals(dir: &std::path::Path) -> Result<Vec<PathBuf>, String> {
    let mut replicas: Vec<(usize, u32, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (r, spawn) = name.strip_suffix(".jsonl")?.strip_prefix('r')?.split_once('-')?;
            Some((r.parse().ok()?, spawn.parse().ok()?, e.path()))
        })
        .collect();
    replicas.sort();
    let mut out = vec![dir.join("driver.jsonl")];
    out.extend(replicas.into_iter().map(|(_, _, p)| p));
    Ok(out)
}

/// Merge the journals by time (ties: the driver's first, then by replica),
/// cut at the run's end, and judge. The trace holds the violation, if
/// any, where the oracle found it.
pub fn merge_and_judge(
    args: &LiveArgs,
    opts: &RunOptions,
    jitter: &Jitter,
    end_us: u64,
    live: serde_json::Value,
) -> Result<(Trace, Option<Violation>), String> {
    let mut events: Vec<Event> = Vec::new();
    for path in journals(&args.dir)? {
        events.extend(crate::journal::read(&path)?);
    }
    events.retain(|e| e.t <= end_us);
    // A stable sort: each journal is in time order already.
    events.sort_by_key(|e| e.t);
    events.push(Event { t: end_us, node: "sim".into(), inst: None, kind: EventKind::RunEnd { events: events.len() as u64 } });
    let params = widen(oracle_params(opts), jitter.allowance_us);
    let violation = judge(params, opts.replicas, &events);
    if let Some(v) = &violation {
        let at = events.partition_point(|e| e.t <= v.at_us);
        let kind = EventKind::Violation { invariant: v.invariant.to_string(), message: v.message.clone() };
        events.insert(at, Event { t: v.at_us, node: "sim".into(), inst: None, kind });
    }
    let header = TraceHeader {
        haywire_trace: FORMAT,
        scenario: "live".into(),
        seed: args.seed,
        mutant: args.mutant.map(|m| m.name().to_string()),
        options: serde_json::to_value(opts).map_err(|e| e.to_string())?,
        plan: None,
        live: Some(live),
    };
    Ok((Trace { header, events }, violation))
}

/// A lease holder that went away, and how long the lease took to reach
/// another instance, from the store's record: from the kill for a killed
/// holder (the lease must expire first), from the release for a holder
/// stopped gracefully.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failover {
    /// `kill` or `graceful`.
    pub kind: &'static str,
    pub target: String,
    pub holder: u64,
    /// When the holder was killed, or when its release committed.
    pub from_us: u64,
    /// Until another instance's acquire committed (None: none did).
    pub took_us: Option<u64>,
    pub by: Option<u64>,
}

pub fn failovers(events: &[Event]) -> Vec<Failover> {
    let mut inst_of: BTreeMap<String, u64> = BTreeMap::new();
    let mut holder: Option<u64> = None;
    let mut stopping: BTreeMap<u64, String> = BTreeMap::new();
    let mut open: Vec<Failover> = Vec::new();
    let mut done = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::Started => {
                if let Some(i) = e.inst {
                    inst_of.insert(e.node.clone(), i);
                }
            }
            EventKind::Crash { target } => {
                if let (Some(h), Some(&i)) = (holder, inst_of.get(target)) {
                    if h == i {
                        open.push(Failover { kind: "kill", target: target.clone(), holder: h, from_us: e.t, took_us: None, by: None });
                    }
                }
            }
            EventKind::ShutdownRequested { target } => {
                if let (Some(h), Some(&i)) = (holder, inst_of.get(target)) {
                    if h == i {
                        stopping.insert(h, target.clone());
                    }
                }
            }
            EventKind::LeaseWrite { from, op, applied: true, lease: Some(l), .. } => match op {
                LeaseOp::Release => {
                    if let Some(target) = stopping.remove(from) {
                        open.push(Failover { kind: "graceful", target, holder: *from, from_us: e.t, took_us: None, by: None });
                    }
                    holder = None;
                }
                LeaseOp::Acquire => {
                    for mut f in std::mem::take(&mut open) {
                        if l.holder.is_some_and(|h| h != f.holder) {
                            f.took_us = Some(e.t - f.from_us);
                            f.by = l.holder;
                            done.push(f);
                        } else {
                            open.push(f);
                        }
                    }
                    holder = l.holder;
                }
                LeaseOp::Renew => holder = l.holder,
            },
            _ => {}
        }
    }
    done.extend(open);
    done.sort_by_key(|f| f.from_us);
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use haywire_traces::LeaseState;

    fn ev(t: u64, node: &str, inst: Option<u64>, kind: EventKind) -> Event {
        Event { t, node: node.into(), inst, kind }
    }

    fn lease(from: u64, op: LeaseOp, holder: Option<u64>) -> EventKind {
        let lease = Some(LeaseState { holder, epoch: 1, expires_at_ms: 0, version: 1 });
        EventKind::LeaseWrite { from, op, applied: true, reject: None, lease, reply_lost: false }
    }

    #[test]
    fn a_killed_holder_is_measured_from_the_kill_and_a_stopped_one_from_its_release() {
        let events = vec![
            ev(0, "r1", Some(1), EventKind::Started),
            ev(0, "r2", Some(2), EventKind::Started),
            ev(10, "store", None, lease(1, LeaseOp::Acquire, Some(1))),
            ev(100, "sim", None, EventKind::Crash { target: "r1".into() }),
            ev(150, "store", None, lease(2, LeaseOp::Acquire, Some(2))),
            ev(200, "sim", None, EventKind::ShutdownRequested { target: "r2".into() }),
            ev(300, "store", None, lease(2, LeaseOp::Release, None)),
            ev(320, "r1", Some(3), EventKind::Started),
            ev(340, "store", None, lease(3, LeaseOp::Acquire, Some(3))),
            // Not the holder: no failover.
            ev(400, "sim", None, EventKind::Crash { target: "r2".into() }),
        ];
        let f = failovers(&events);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!((f[0].kind, f[0].took_us, f[0].by), ("kill", Some(50), Some(2)));
        assert_eq!((f[1].kind, f[1].from_us, f[1].took_us, f[1].by), ("graceful", 300, Some(40), Some(3)));
    }

    #[test]
    fn a_failover_nobody_completed_stays_open() {
        let events = vec![
            ev(0, "r1", Some(1), EventKind::Started),
            ev(10, "store", None, lease(1, LeaseOp::Acquire, Some(1))),
            ev(100, "sim", None, EventKind::Crash { target: "r1".into() }),
            // Its own next incarnation is another instance: that counts.
        ];
        assert_eq!(failovers(&events)[0].took_us, None);
    }

    #[test]
    fn widening_moves_deadlines_only() {
        let opts = haywire_scenarios::world::base(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1));
        let p = oracle_params(&opts);
        let w = widen(p.clone(), 1_000);
        assert_eq!(w.takeover_us, p.takeover_us + 1_000);
        assert_eq!(w.fleet.slack_us, p.fleet.slack_us + 1_000);
        assert_eq!(w.fleet.ttl_us, p.fleet.ttl_us, "TTL is a lower bound: nothing drains before it");
        assert_eq!(w.fleet.dead_threshold_us, p.fleet.dead_threshold_us);
        assert_eq!(w.fleet.max_pause_us, p.fleet.max_pause_us);
    }
}
