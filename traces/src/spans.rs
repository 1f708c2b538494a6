//! Intervals read off a trace: lease terms, leader work, faults paired with
//! their healing, worker lifecycles. Shared by the HTML timeline and the
//! Perfetto export so both draw the same picture.
//!
//! Everything is derived in trace order and kept in ordered containers
//! (BTreeMap, sorted Vecs): the same trace gives the same spans.

use crate::event::{Event, EventKind, Lifecycle};
use crate::trace::Trace;
use std::collections::BTreeMap;

/// A part of a natural sort key: `r10` sorts after `r2`, `w3.12` after `w3.2`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Part {
    Num(u64),
    Text(String),
}

pub(crate) fn natural_key(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                // Absurdly long digit runs saturate rather than fail.
                parts.push(Part::Num(std::mem::take(&mut digits).parse().unwrap_or(u64::MAX)));
            }
            text.push(c);
        }
    }
    if !digits.is_empty() {
        parts.push(Part::Num(digits.parse().unwrap_or(u64::MAX)));
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    parts
}

/// `r1`..`rN`: the replica nodes.
pub(crate) fn is_replica(node: &str) -> bool {
    node.len() > 1 && node.starts_with('r') && node[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Seconds with microsecond precision, as the canonical text prints them.
pub(crate) fn secs(t: u64) -> String {
    format!("{}.{:06}s", t / 1_000_000, t % 1_000_000)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseTerm {
    pub holder: u64,
    pub node: String,
    pub epoch: u64,
    pub start: u64,
    pub end: u64,
    /// released, taken over, expired, or trace end.
    pub ended: &'static str,
}

/// Leader-gated tasks of one (instance, epoch) running: first loop start to
/// last loop stop (or the process's death).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkSpan {
    pub node: String,
    pub inst: u64,
    pub epoch: u64,
    pub start: u64,
    pub end: u64,
}

/// Where a fault is drawn.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scope {
    /// One replica (crash, pause, partition, ...).
    Node(String),
    /// The whole store, so every lane (stall, write faults, lease outage).
    All,
    /// The cluster API.
    Cluster,
    /// The injector itself (rolling deploy, quiet period).
    Injector,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FaultSpan {
    /// The opening event's tag (`crash`, `store_stall`, ...).
    pub name: String,
    /// Readable: `crash r1`, `store stall 800 ms`.
    pub label: String,
    pub scope: Scope,
    pub start: u64,
    pub end: u64,
    /// A one-off (pod died, scale up) or a healing nothing opened.
    pub point: bool,
    /// Closed by its healing event (false: ran to its stated length or the
    /// end of the trace).
    pub healed: bool,
    /// Indices into `trace.events` of the events this span stands for.
    pub events: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub state: Lifecycle,
    pub start: u64,
    pub end: u64,
    pub owner: u64,
    pub epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkerLife {
    pub id: String,
    pub segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ViolationMark {
    pub t: u64,
    pub invariant: String,
    pub message: String,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Spans {
    /// The last event's time (0 for an empty trace).
    pub end: u64,
    pub inst_node: BTreeMap<u64, String>,
    /// Replica lanes in natural order (plus `iN` for lease holders whose
    /// node the trace never names).
    pub replicas: Vec<String>,
    pub leases: Vec<LeaseTerm>,
    pub work: Vec<WorkSpan>,
    pub faults: Vec<FaultSpan>,
    /// In natural order of worker id.
    pub workers: Vec<WorkerLife>,
    pub violation: Option<ViolationMark>,
}

impl Spans {
    pub fn node_of(&self, inst: u64) -> String {
        node_of(&self.inst_node, inst)
    }
}

fn node_of(map: &BTreeMap<u64, String>, inst: u64) -> String {
    map.get(&inst).cloned().unwrap_or_else(|| format!("i{inst}"))
}

pub(crate) fn spans(trace: &Trace) -> Spans {
    let events = &trace.events;
    let end = events.iter().map(|e| e.t).max().unwrap_or(0);
    let mut inst_node = BTreeMap::new();
    for e in events {
        if let Some(i) = e.inst {
            // First sighting wins: an instance lives on one node.
            inst_node.entry(i).or_insert_with(|| e.node.clone());
        }
    }
    let leases = lease_terms(trace, &inst_node, end);
    let faults = fault_spans(trace, end);
    // Replicas first, then holders known only by instance.
    let mut lanes: BTreeMap<(bool, Vec<Part>), String> = BTreeMap::new();
    let mut add_lane = |n: &str| {
        lanes.entry((!is_replica(n), natural_key(n))).or_insert_with(|| n.to_string());
    };
    for e in events.iter().filter(|e| is_replica(&e.node)) {
        add_lane(&e.node);
    }
    for f in &faults {
        if let Scope::Node(n) = &f.scope {
            if is_replica(n) {
                add_lane(n);
            }
        }
    }
    for l in &leases {
        add_lane(&l.node);
    }
    Spans {
        end,
        replicas: lanes.into_values().collect(),
        work: leader_work(trace, end),
        workers: worker_lives(trace, end),
        violation: events.iter().find_map(|e| match &e.kind {
            EventKind::Violation { invariant, message } => {
                Some(ViolationMark { t: e.t, invariant: invariant.clone(), message: message.clone() })
            }
            _ => None,
        }),
        leases,
        faults,
        inst_node,
    }
}

/// A term runs from an applied acquire until a release, a different holder
/// or epoch taking it, or the expiry the last applied write set, whichever
/// comes first.
fn lease_terms(trace: &Trace, inst_node: &BTreeMap<u64, String>, end: u64) -> Vec<LeaseTerm> {
    struct Cur {
        holder: u64,
        epoch: u64,
        start: u64,
        expires: u64,
    }
    let mut out = Vec::new();
    let mut cur: Option<Cur> = None;
    let close = |c: Cur, at: u64, why: &'static str, out: &mut Vec<LeaseTerm>| {
        let (stop, ended) = if c.expires < at { (c.expires, "expired") } else { (at, why) };
        out.push(LeaseTerm {
            holder: c.holder,
            node: node_of(inst_node, c.holder),
            epoch: c.epoch,
            start: c.start,
            end: stop.max(c.start),
            ended,
        });
    };
    for e in &trace.events {
        let EventKind::LeaseWrite { applied: true, lease: Some(l), .. } = &e.kind else { continue };
        let expires = l.expires_at_ms.saturating_mul(1000);
        match l.holder {
            None => {
                if let Some(c) = cur.take() {
                    close(c, e.t, "released", &mut out);
                }
            }
            Some(h) => match &mut cur {
                Some(c) if c.holder == h && c.epoch == l.epoch => c.expires = expires,
                _ => {
                    if let Some(c) = cur.take() {
                        close(c, e.t, "taken over", &mut out);
                    }
                    cur = Some(Cur { holder: h, epoch: l.epoch, start: e.t, expires });
                }
            },
        }
    }
    if let Some(c) = cur {
        close(c, end, "trace end", &mut out);
    }
    out
}

/// Leader work per (node, instance, epoch): open while any loop runs; a
/// process that dies or is replaced stops it.
fn leader_work(trace: &Trace, end: u64) -> Vec<WorkSpan> {
    struct Open {
        start: u64,
        running: u64,
        end: Option<u64>,
    }
    let mut open: BTreeMap<(String, u64, u64), Open> = BTreeMap::new();
    let stop_node = |open: &mut BTreeMap<_, Open>, node: &str, keep_inst: Option<u64>, t: u64| {
        for ((n, inst, _), o) in open.iter_mut() {
            if n == node && Some(*inst) != keep_inst && o.end.is_none() {
                o.end = Some(t);
            }
        }
    };
    for e in &trace.events {
        let inst = e.inst.unwrap_or(0);
        match &e.kind {
            EventKind::LoopStarted { epoch, .. } => {
                let o =
                    open.entry((e.node.clone(), inst, *epoch)).or_insert(Open { start: e.t, running: 0, end: None });
                o.running += 1;
                o.end = None;
            }
            EventKind::LoopStopped { epoch, .. } => {
                if let Some(o) = open.get_mut(&(e.node.clone(), inst, *epoch)) {
                    o.running = o.running.saturating_sub(1);
                    if o.running == 0 {
                        o.end = Some(e.t);
                    }
                }
            }
            EventKind::Started => stop_node(&mut open, &e.node, e.inst, e.t),
            EventKind::Crash { target } | EventKind::SelfFenced { target } | EventKind::Exited { target, .. } => {
                stop_node(&mut open, target, None, e.t)
            }
            _ => {}
        }
    }
    let mut out: Vec<WorkSpan> = open
        .into_iter()
        .map(|((node, inst, epoch), o)| WorkSpan { node, inst, epoch, start: o.start, end: o.end.unwrap_or(end) })
        .collect();
    out.sort_by_key(|w| (w.start, natural_key(&w.node), w.inst, w.epoch));
    out
}

/// What one injector event does to the spans.
enum Action {
    /// Opens span `family`/`key`; `ms` is its stated length, if it has one.
    Open {
        family: &'static str,
        key: String,
        label: String,
        scope: Scope,
        ms: Option<u64>,
    },
    /// Closes the latest open `family`/`key`; `orphan` is the point marker
    /// drawn when nothing was open.
    Close {
        family: &'static str,
        key: String,
        orphan: Option<(String, Scope)>,
    },
    Point {
        label: String,
        scope: Scope,
    },
}

fn actions(e: &Event) -> Vec<Action> {
    use Action::*;
    use EventKind as K;
    let node = |t: &str| Scope::Node(t.to_string());
    let open = |family, key: &str, label: String, scope, ms| Open { family, key: key.to_string(), label, scope, ms };
    let close = |family, key: &str, orphan: Option<(String, Scope)>| Close { family, key: key.to_string(), orphan };
    match &e.kind {
        // A self-fenced process comes back with no restart event: its new
        // instance starting ends the down time.
        K::Started => vec![close("down", &e.node, None)],
        K::Crash { target } => vec![open("down", target, format!("crash {target}"), node(target), None)],
        K::SelfFenced { target } => vec![open("down", target, format!("self-fenced {target}"), node(target), None)],
        K::Restart { target } => vec![close("down", target, Some((format!("restart {target}"), node(target))))],
        K::ShutdownRequested { target } => {
            vec![open("shutdown", target, format!("shutdown {target}"), node(target), None)]
        }
        K::Exited { target, graceful } => {
            let how = if *graceful { "exited" } else { "killed" };
            vec![close("shutdown", target, None), open("down", target, format!("{how} {target}"), node(target), None)]
        }
        K::Pause { target, ms } => {
            vec![open("pause", target, format!("pause {target} {ms} ms"), node(target), Some(*ms))]
        }
        K::Resume { target } => vec![close("pause", target, Some((format!("resume {target}"), node(target))))],
        K::Partition { target } => vec![open("partition", target, format!("partition {target}"), node(target), None)],
        K::PartitionHealed { target } => vec![close("partition", target, None)],
        K::ClusterPartition { target } => {
            vec![open("cluster_partition", target, format!("cluster partition {target}"), node(target), None)]
        }
        K::ClusterPartitionHealed { target } => vec![close("cluster_partition", target, None)],
        K::StoreSlow { target, ms } => {
            vec![open("store_slow", target, format!("store slow {target} +{ms} ms"), node(target), None)]
        }
        K::StoreSlowHealed { target } => vec![close("store_slow", target, None)],
        K::StoreFaults { fail_pct, lost_reply_pct } => vec![open(
            "store_faults",
            "",
            format!("store faults {fail_pct}% fail {lost_reply_pct}% lost"),
            Scope::All,
            None,
        )],
        K::StoreFaultsHealed => vec![close("store_faults", "", None)],
        K::StoreStall { ms } => vec![open("store_stall", "", format!("store stall {ms} ms"), Scope::All, Some(*ms))],
        K::StoreStallHealed => vec![close("store_stall", "", None)],
        K::LeaseOutage { ms } => vec![open("lease_outage", "", format!("lease outage {ms} ms"), Scope::All, Some(*ms))],
        K::LeaseOutageHealed => vec![close("lease_outage", "", None)],
        K::RollingDeploy => vec![open("rolling_deploy", "", "rolling deploy".into(), Scope::Injector, None)],
        K::RollingDeployDone => vec![close("rolling_deploy", "", None)],
        K::PodFailures { pct } => vec![open("pod_failures", "", format!("pod failures {pct}%"), Scope::Cluster, None)],
        K::PodFailuresHealed => vec![close("pod_failures", "", None)],
        K::ClusterSlow { ms } => vec![open("cluster_slow", "", format!("cluster slow +{ms} ms"), Scope::Cluster, None)],
        K::ClusterSlowHealed => vec![close("cluster_slow", "", None)],
        K::ClusterOpsFault { ops, slow_ms } => {
            let label = if *slow_ms == 0 { format!("{ops} fail") } else { format!("{ops} +{slow_ms} ms") };
            vec![open("cluster_ops", ops, label, Scope::Cluster, None)]
        }
        K::ClusterOpsHealed { ops } => vec![close("cluster_ops", ops, None)],
        K::DeleteRefused { name, ms } => {
            vec![open("delete_refused", name, format!("delete refused {name}"), Scope::Cluster, Some(*ms))]
        }
        K::DeleteRefusalHealed { name } => vec![close("delete_refused", name, None)],
        K::PodDied { name } => vec![Point { label: format!("pod died {name}"), scope: Scope::Cluster }],
        K::ScaleDown { target } => vec![Point { label: format!("scale down {target}"), scope: node(target) }],
        K::ScaleUp { target } => vec![Point { label: format!("scale up {target}"), scope: node(target) }],
        K::QuietPeriod => vec![Point { label: "quiet period".into(), scope: Scope::Injector }],
        // A fault that did nothing: shown where it would have acted.
        K::FaultSkipped { fault, .. } => vec![Point { label: format!("{fault} skipped"), scope: Scope::Injector }],
        _ => Vec::new(),
    }
}

/// Faults paired with their healing events. Unhealed ones run for their
/// stated length, else to the end of the trace.
fn fault_spans(trace: &Trace, end: u64) -> Vec<FaultSpan> {
    let mut out: Vec<FaultSpan> = Vec::new();
    // (family, key) -> spans still open (index into `out`, stated length),
    // oldest first.
    type Open = BTreeMap<(&'static str, String), Vec<(usize, Option<u64>)>>;
    let mut open = Open::new();
    for (i, e) in trace.events.iter().enumerate() {
        for a in actions(e) {
            match a {
                Action::Open { family, key, label, scope, ms } => {
                    open.entry((family, key)).or_default().push((out.len(), ms));
                    out.push(FaultSpan {
                        name: e.kind.tag(),
                        label,
                        scope,
                        start: e.t,
                        end: e.t,
                        point: false,
                        healed: false,
                        events: vec![i],
                    });
                }
                Action::Close { family, key, orphan } => match open.get_mut(&(family, key)).and_then(|v| v.pop()) {
                    Some((j, _)) => {
                        out[j].end = e.t.max(out[j].start);
                        out[j].healed = true;
                        // A start is the replica's own event, not the injector's.
                        if !matches!(e.kind, EventKind::Started) {
                            out[j].events.push(i);
                        }
                    }
                    None => {
                        if let Some((label, scope)) = orphan {
                            out.push(point(e.kind.tag(), label, scope, e.t, i));
                        }
                    }
                },
                Action::Point { label, scope } => out.push(point(e.kind.tag(), label, scope, e.t, i)),
            }
        }
    }
    for (j, ms) in open.into_values().flatten() {
        let stated = ms.map(|ms| out[j].start.saturating_add(ms.saturating_mul(1000)));
        out[j].end = stated.unwrap_or(end).min(end).max(out[j].start);
    }
    out
}

fn point(name: String, label: String, scope: Scope, t: u64, i: usize) -> FaultSpan {
    FaultSpan { name, label, scope, start: t, end: t, point: true, healed: false, events: vec![i] }
}

/// Each worker's durable states, from its applied writes. A write that
/// changes nothing drawn (same state, owner and epoch) extends the segment.
fn worker_lives(trace: &Trace, end: u64) -> Vec<WorkerLife> {
    let mut lives: BTreeMap<Vec<Part>, WorkerLife> = BTreeMap::new();
    for e in &trace.events {
        let EventKind::WorkerWrite { id, applied: true, worker: Some(row), .. } = &e.kind else { continue };
        let life = lives.entry(natural_key(id)).or_insert_with(|| WorkerLife { id: id.clone(), segments: Vec::new() });
        if let Some(last) = life.segments.last_mut() {
            if last.state == row.state && last.owner == row.owner && last.epoch == row.epoch {
                continue;
            }
            last.end = e.t.max(last.start);
        }
        life.segments.push(Segment { state: row.state, start: e.t, end, owner: row.owner, epoch: row.epoch });
    }
    for life in lives.values_mut() {
        if let Some(last) = life.segments.last_mut() {
            last.end = last.end.max(last.start);
        }
    }
    lives.into_values().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{LeaseOp, LeaseState, WorkerOp, WorkerRow};
    use crate::trace::{TraceHeader, FORMAT};

    fn ev(t: u64, node: &str, inst: Option<u64>, kind: EventKind) -> Event {
        Event { t, node: node.into(), inst, kind }
    }

    fn lease(t: u64, from: u64, op: LeaseOp, holder: Option<u64>, epoch: u64, expires_at_ms: u64) -> Event {
        ev(
            t,
            "store",
            None,
            EventKind::LeaseWrite {
                from,
                op,
                applied: true,
                reject: None,
                lease: Some(LeaseState { holder, epoch, expires_at_ms, version: 1 }),
                reply_lost: false,
            },
        )
    }

    fn worker(t: u64, from: u64, id: &str, state: Lifecycle) -> Event {
        ev(
            t,
            "store",
            None,
            EventKind::WorkerWrite {
                from,
                op: WorkerOp::Update,
                id: id.into(),
                applied: true,
                as_owner: None,
                as_epoch: None,
                fence: None,
                reject: None,
                worker: Some(WorkerRow { state, org: "o".into(), owner: from, epoch: 1, session: None }),
                reply_lost: false,
            },
        )
    }

    /// Two replicas: r1/i1 leads epoch 1 from 1 s to its release at 6 s,
    /// crashes at 8 s and restarts at 9 s; worker w1.1 spawns, goes hot,
    /// idles and retires; the store stalls 10-11 s; the oracle objects at 12 s.
    pub(crate) fn sample(violation: bool) -> Trace {
        let target = || "r1".to_string();
        let mut events = vec![
            ev(0, "r1", Some(1), EventKind::Started),
            ev(0, "r2", Some(2), EventKind::Started),
            lease(1_000_000, 1, LeaseOp::Acquire, Some(1), 1, 4_000),
            ev(1_000_100, "r1", Some(1), EventKind::LoopStarted { name: "reconciler".into(), epoch: 1 }),
            worker(2_000_000, 1, "w1.1", Lifecycle::Spawning),
            worker(2_500_000, 1, "w1.1", Lifecycle::Hot),
            lease(3_000_000, 1, LeaseOp::Renew, Some(1), 1, 9_000),
            worker(4_000_000, 1, "w1.1", Lifecycle::HotIdle),
            ev(5_900_000, "r1", Some(1), EventKind::LoopStopped { name: "reconciler".into(), epoch: 1 }),
            lease(6_000_000, 1, LeaseOp::Release, None, 1, 0),
            worker(7_000_000, 1, "w1.1", Lifecycle::Retired),
            ev(8_000_000, "sim", None, EventKind::Crash { target: target() }),
            ev(9_000_000, "sim", None, EventKind::Restart { target: target() }),
            ev(9_000_000, "r1", Some(3), EventKind::Started),
            ev(10_000_000, "sim", None, EventKind::StoreStall { ms: 1_000 }),
            ev(11_000_000, "sim", None, EventKind::StoreStallHealed),
        ];
        if violation {
            events.push(ev(
                12_000_000,
                "sim",
                None,
                EventKind::Violation { invariant: "S2".into(), message: "two <holders> & \"more\"".into() },
            ));
        } else {
            events.push(ev(12_000_000, "sim", None, EventKind::RunEnd { events: 17 }));
        }
        Trace {
            header: TraceHeader {
                haywire_trace: FORMAT,
                scenario: "leader-crash".into(),
                seed: 7,
                mutant: Some("release-before-cancel".into()),
                options: serde_json::json!({}),
                plan: None,
                live: None,
            },
            events,
        }
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["r10", "r2", "r1", "w3.12", "w3.2", "x", ""];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["", "r1", "r2", "r10", "w3.2", "w3.12", "x"]);
        assert!(is_replica("r12") && !is_replica("r") && !is_replica("run") && !is_replica("store"));
    }

    #[test]
    fn sample_spans() {
        let s = spans(&sample(true));
        assert_eq!(s.end, 12_000_000);
        assert_eq!(s.replicas, ["r1", "r2"]);
        assert_eq!(
            s.leases,
            [LeaseTerm { holder: 1, node: "r1".into(), epoch: 1, start: 1_000_000, end: 6_000_000, ended: "released" }]
        );
        assert_eq!(s.work.len(), 1);
        assert_eq!((s.work[0].start, s.work[0].end), (1_000_100, 5_900_000));
        let f: Vec<_> = s.faults.iter().map(|f| (f.label.as_str(), f.start, f.end, f.healed)).collect();
        assert_eq!(
            f,
            [("crash r1", 8_000_000, 9_000_000, true), ("store stall 1000 ms", 10_000_000, 11_000_000, true)]
        );
        let w = &s.workers[0];
        let states: Vec<_> = w.segments.iter().map(|g| (g.state, g.start, g.end)).collect();
        assert_eq!(
            states,
            [
                (Lifecycle::Spawning, 2_000_000, 2_500_000),
                (Lifecycle::Hot, 2_500_000, 4_000_000),
                (Lifecycle::HotIdle, 4_000_000, 7_000_000),
                (Lifecycle::Retired, 7_000_000, 12_000_000),
            ]
        );
        assert_eq!(s.violation.unwrap().invariant, "S2");
    }

    #[test]
    fn expiry_and_odd_inputs() {
        let mut t = sample(false);
        // No release: the term ends at the renewed expiry (9 s).
        t.events.retain(|e| !matches!(e.kind, EventKind::LeaseWrite { op: LeaseOp::Release, .. }));
        // A healing nothing opened, and a pause that never resumes.
        t.events.push(ev(12_000_000, "sim", None, EventKind::Resume { target: "r9".into() }));
        t.events.push(ev(12_000_000, "sim", None, EventKind::Pause { target: "r2".into(), ms: 500 }));
        // Self-fenced: no restart event, the next start ends it.
        t.events.push(ev(12_000_000, "sim", None, EventKind::SelfFenced { target: "r1".into() }));
        t.events.push(ev(12_000_000, "r1", Some(5), EventKind::Started));
        // An instance no node ever named holds the lease.
        t.events.push(lease(12_000_000, 42, LeaseOp::Acquire, Some(42), 2, 99_000));
        let s = spans(&t);
        assert_eq!((s.leases[0].end, s.leases[0].ended), (9_000_000, "expired"));
        assert_eq!(s.leases[1].node, "i42");
        assert_eq!(s.replicas, ["r1", "r2", "r9", "i42"]);
        let resume = s.faults.iter().find(|f| f.label == "resume r9").unwrap();
        assert!(resume.point);
        let pause = s.faults.iter().find(|f| f.label.starts_with("pause")).unwrap();
        assert!(!pause.healed && pause.end == 12_000_000);
        let fenced = s.faults.iter().find(|f| f.label == "self-fenced r1").unwrap();
        assert!(fenced.healed && fenced.events.len() == 1);
        let empty = Trace { header: t.header.clone(), events: Vec::new() };
        let s = spans(&empty);
        assert_eq!(s.end, 0);
        assert!(s.replicas.is_empty() && s.leases.is_empty() && s.violation.is_none());
    }
}
