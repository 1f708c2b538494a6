//! A trace in Chrome's trace-event JSON format, which ui.perfetto.dev (and
//! chrome://tracing) open: one process per node, one thread track per
//! worker, timestamps in simulated microseconds.
//!
//! Lease terms, leader work, worker lifecycle states and paired faults are
//! complete events (`"ph":"X"` with `dur`); every other event is a
//! thread-scoped instant (`"ph":"i"`, `"s":"t"`) carrying the event's fields
//! in `args`. A fault's own events become its span, not instants too.

use crate::event::EventKind;
use crate::spans::{is_replica, natural_key, spans, Part, Scope, Spans};
use crate::trace::Trace;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub fn perfetto_json(trace: &Trace) -> String {
    let s = spans(trace);
    let mut b = Builder::new(trace, &s);
    b.spans();
    b.instants();
    let h = &trace.header;
    let other = json!({
        "scenario": h.scenario,
        "seed": h.seed,
        "mutant": h.mutant.as_deref().unwrap_or("none"),
        "trace_hash": trace.hash(),
    });
    let lines: Vec<String> = b.meta.iter().chain(b.data.iter()).map(Value::to_string).collect();
    format!("{{\"traceEvents\":[\n{}\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{other}}}\n", lines.join(",\n"))
}

struct Builder<'a> {
    trace: &'a Trace,
    s: &'a Spans,
    pids: BTreeMap<String, u64>,
    /// Tids are unique across the whole file (some importers key threads by
    /// tid alone); sort indices keep each process's tracks in creation order.
    next_tid: u64,
    named: BTreeMap<(u64, String), u64>,
    /// Packed tracks: (pid, group) -> [(tid, busy until)].
    packed: BTreeMap<(u64, &'static str), Vec<(u64, u64)>>,
    meta: Vec<Value>,
    data: Vec<Value>,
}

impl<'a> Builder<'a> {
    fn new(trace: &'a Trace, s: &'a Spans) -> Self {
        // Every node that gets a track: replicas first (natural order), then
        // the store, the cluster, the injector, then clients and the rest.
        let mut nodes: BTreeSet<(u8, Vec<Part>, String)> = BTreeSet::new();
        let rank = |n: &str| -> u8 {
            if is_replica(n) || s.replicas.iter().any(|r| r == n) {
                0
            } else {
                match n {
                    "store" => 1,
                    "cluster" => 2,
                    "sim" => 3,
                    _ => 4,
                }
            }
        };
        let mut add = |n: &str| {
            nodes.insert((rank(n), natural_key(n), n.to_string()));
        };
        trace.events.iter().for_each(|e| add(&e.node));
        s.replicas.iter().for_each(|r| add(r));
        if !s.faults.is_empty() {
            add("sim");
        }
        if !s.workers.is_empty() {
            add("store");
        }
        let mut meta = Vec::new();
        let mut pids = BTreeMap::new();
        for (i, (_, _, name)) in nodes.into_iter().enumerate() {
            let pid = i as u64 + 1;
            meta.push(json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}}));
            meta.push(
                json!({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}}),
            );
            pids.insert(name, pid);
        }
        Builder { trace, s, pids, next_tid: 1, named: BTreeMap::new(), packed: BTreeMap::new(), meta, data: Vec::new() }
    }

    fn pid(&mut self, node: &str) -> u64 {
        if let Some(&p) = self.pids.get(node) {
            return p;
        }
        // Not reached for nodes collected up front; kept total so an odd
        // trace cannot panic.
        let pid = self.pids.len() as u64 + 1;
        self.meta.push(json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": node}}));
        self.pids.insert(node.to_string(), pid);
        pid
    }

    fn new_thread(&mut self, pid: u64, name: &str) -> u64 {
        let tid = self.next_tid;
        self.next_tid += 1;
        self.meta.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}));
        self.meta
            .push(json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}}));
        tid
    }

    /// The one track called `name` in process `pid`.
    fn named(&mut self, pid: u64, name: &str) -> u64 {
        if let Some(&t) = self.named.get(&(pid, name.to_string())) {
            return t;
        }
        let tid = self.new_thread(pid, name);
        self.named.insert((pid, name.to_string()), tid);
        tid
    }

    /// A track of `group` in `pid` free over [start, end): complete events
    /// on one track must not overlap, so overlapping ones get another.
    fn packed(&mut self, pid: u64, group: &'static str, start: u64, end: u64) -> u64 {
        let free = self.packed.get(&(pid, group)).and_then(|v| v.iter().position(|&(_, busy)| busy <= start));
        if let Some(i) = free {
            let v = self.packed.get_mut(&(pid, group)).expect("just found");
            v[i].1 = end;
            return v[i].0;
        }
        let n = self.packed.get(&(pid, group)).map_or(0, Vec::len);
        let name = if n == 0 { group.to_string() } else { format!("{group} {}", n + 1) };
        let tid = self.new_thread(pid, &name);
        self.packed.entry((pid, group)).or_default().push((tid, end));
        tid
    }

    fn complete(&mut self, (pid, tid): (u64, u64), name: String, cat: &str, (start, end): (u64, u64), args: Value) {
        self.data.push(json!({
            "name": name, "cat": cat, "ph": "X", "ts": start, "dur": end.saturating_sub(start),
            "pid": pid, "tid": tid, "args": args,
        }));
    }

    fn instant(&mut self, pid: u64, tid: u64, name: String, cat: &str, t: u64, args: Value) {
        self.data.push(json!({
            "name": name, "cat": cat, "ph": "i", "s": "t", "ts": t, "pid": pid, "tid": tid, "args": args,
        }));
    }

    fn spans(&mut self) {
        let s = self.s;
        for l in &s.leases {
            let pid = self.pid(&l.node);
            let tid = self.packed(pid, "lease", l.start, l.end);
            let args = json!({"holder": l.holder, "node": l.node, "epoch": l.epoch, "ended": l.ended});
            self.complete((pid, tid), format!("lease e{}", l.epoch), "lease", (l.start, l.end), args);
        }
        for w in &s.work {
            let pid = self.pid(&w.node);
            let tid = self.packed(pid, "leader work", w.start, w.end);
            let args = json!({"inst": w.inst, "epoch": w.epoch});
            self.complete((pid, tid), format!("leader work e{}", w.epoch), "leader_work", (w.start, w.end), args);
        }
        for w in &s.workers {
            let store = self.pid("store");
            let tid = self.named(store, &format!("worker {}", w.id));
            for g in &w.segments {
                let args = json!({
                    "worker": w.id, "state": g.state.name(), "owner": g.owner,
                    "owner_node": s.node_of(g.owner), "epoch": g.epoch,
                });
                // Retired and lost are for good: a mark, not a bar to the end.
                if g.state.is_terminal() {
                    self.instant(store, tid, g.state.name().to_string(), "worker", g.start, args);
                } else {
                    self.complete((store, tid), g.state.name().to_string(), "worker", (g.start, g.end), args);
                }
            }
        }
        for f in s.faults.iter().filter(|f| !f.point) {
            let args = json!({"fault": f.name, "healed": f.healed});
            // On the injector's process, and on what it hit.
            let mut on = vec!["sim".to_string()];
            match &f.scope {
                Scope::Node(n) => on.push(n.clone()),
                Scope::Cluster => on.push("cluster".into()),
                Scope::All => on.push("store".into()),
                Scope::Injector => {}
            }
            for node in on {
                let pid = self.pid(&node);
                let tid = self.packed(pid, "faults", f.start, f.end);
                self.complete((pid, tid), f.label.clone(), "fault", (f.start, f.end), args.clone());
            }
        }
    }

    fn instants(&mut self) {
        let spanned: BTreeSet<usize> =
            self.s.faults.iter().filter(|f| !f.point).flat_map(|f| f.events.iter().copied()).collect();
        let trace = self.trace;
        for (i, e) in trace.events.iter().enumerate() {
            if spanned.contains(&i) {
                continue;
            }
            let pid = self.pid(&e.node);
            let tid = match &e.kind {
                EventKind::WorkerWrite { id, .. } => self.named(pid, &format!("worker {id}")),
                _ => self.named(pid, "events"),
            };
            let mut args = match serde_json::to_value(&e.kind) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            args.remove("ev");
            if let Some(inst) = e.inst {
                args.insert("inst".into(), json!(inst));
            }
            let name = match &e.kind {
                EventKind::Violation { invariant, .. } => format!("violation {invariant}"),
                k => k.tag(),
            };
            let cat = if matches!(e.kind, EventKind::Violation { .. }) { "violation" } else { "event" };
            self.instant(pid, tid, name, cat, e.t, Value::Object(args));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::tests::sample;

    fn parse(t: &Trace) -> Vec<Value> {
        let v: Value = serde_json::from_str(&perfetto_json(t)).expect("valid JSON");
        assert_eq!(v["displayTimeUnit"], "ms");
        v["traceEvents"].as_array().expect("traceEvents").clone()
    }

    fn process_names(evs: &[Value]) -> Vec<(u64, String)> {
        evs.iter()
            .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
            .map(|e| (e["pid"].as_u64().unwrap(), e["args"]["name"].as_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn processes_tracks_and_spans() {
        let t = sample(true);
        let evs = parse(&t);
        let procs = process_names(&evs);
        let names: Vec<&str> = procs.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["r1", "r2", "store", "sim"]);
        let pid_of = |n: &str| procs.iter().find(|(_, m)| m == n).unwrap().0;

        // The lease term: r1, 1 s to its release at 6 s.
        let lease: Vec<_> = evs.iter().filter(|e| e["cat"] == "lease").collect();
        assert_eq!(lease.len(), 1);
        assert_eq!((lease[0]["ph"].as_str(), lease[0]["name"].as_str()), (Some("X"), Some("lease e1")));
        assert_eq!((lease[0]["ts"].as_u64(), lease[0]["dur"].as_u64()), (Some(1_000_000), Some(5_000_000)));
        assert_eq!(lease[0]["pid"].as_u64(), Some(pid_of("r1")));

        // Worker states on the worker's own named track in the store.
        let wtid = evs
            .iter()
            .find(|e| e["name"] == "thread_name" && e["args"]["name"] == "worker w1.1")
            .and_then(|e| e["tid"].as_u64())
            .expect("worker track");
        let hot = evs.iter().find(|e| e["cat"] == "worker" && e["name"] == "hot").unwrap();
        assert_eq!(
            (hot["ph"].as_str(), hot["tid"].as_u64(), hot["dur"].as_u64()),
            (Some("X"), Some(wtid), Some(1_500_000))
        );
        assert_eq!(hot["pid"].as_u64(), Some(pid_of("store")));

        // The crash is one span on the injector and one on r1, not instants.
        let crash: Vec<_> = evs.iter().filter(|e| e["name"] == "crash r1").collect();
        assert_eq!(crash.len(), 2);
        assert!(crash.iter().all(|e| e["ph"] == "X" && e["dur"] == 1_000_000));
        assert!(!evs.iter().any(|e| e["ph"] == "i" && (e["name"] == "crash" || e["name"] == "restart")));

        // Every other event is an instant at its own time, fields in args.
        let instants: Vec<_> = evs.iter().filter(|e| e["ph"] == "i" && e["cat"] != "worker").collect();
        let spanned = 4; // crash, restart, stall, stall healed
        assert_eq!(instants.len(), t.events.len() - spanned);
        for e in &instants {
            assert_eq!(e["s"], "t");
        }
        let started = instants.iter().find(|e| e["name"] == "started" && e["args"]["inst"] == 3).unwrap();
        assert_eq!(started["ts"].as_u64(), Some(9_000_000));
        let v = instants.iter().find(|e| e["cat"] == "violation").unwrap();
        assert_eq!((v["name"].as_str(), v["ts"].as_u64()), (Some("violation S2"), Some(12_000_000)));
        assert_eq!(v["args"]["message"], "two <holders> & \"more\"");
        // Every instant's ts is its event's t, in trace order.
        let times: Vec<u64> = instants.iter().map(|e| e["ts"].as_u64().unwrap()).collect();
        let mut expected: Vec<u64> = t.events.iter().map(|e| e.t).collect();
        for i in [15, 14, 12, 11] {
            expected.remove(i);
        }
        assert_eq!(times, expected);
    }

    #[test]
    fn every_track_is_named_and_output_is_stable() {
        let t = sample(true);
        let evs = parse(&t);
        let named: BTreeSet<(u64, u64)> = evs
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
            .collect();
        let procs: BTreeSet<u64> = process_names(&evs).into_iter().map(|(p, _)| p).collect();
        for e in evs.iter().filter(|e| e["ph"] != "M") {
            let (p, tid) = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
            assert!(procs.contains(&p) && named.contains(&(p, tid)), "{e}");
        }
        assert_eq!(perfetto_json(&t), perfetto_json(&t.clone()));
    }

    #[test]
    fn odd_traces_still_parse() {
        let mut t = sample(false);
        t.events.clear();
        assert!(parse(&t).is_empty());
        let mut t = sample(true);
        for e in &mut t.events {
            e.inst = None;
            if e.node == "r2" {
                e.node = "some \"odd\" node".into();
            }
        }
        let evs = parse(&t);
        assert!(process_names(&evs).iter().any(|(_, n)| n == "some \"odd\" node"));
    }
}
