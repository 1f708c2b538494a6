//! A whole trace: header plus events, as JSON Lines and as canonical text.

use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Bumped whenever the schema changes incompatibly.
pub const FORMAT: u32 = 1;

/// The first line of a trace: what world the seed made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub haywire_trace: u32,
    pub scenario: String,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutant: Option<String>,
    /// The options record the seed expanded into.
    pub options: serde_json::Value,
    /// The fault plan, when it is not the one the seed draws (a shrunk or
    /// edited plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<serde_json::Value>,
    /// A live run's own facts (store, jitter allowance the oracle's bounds
    /// were widened by, where the journals are); absent from simulations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub header: TraceHeader,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for TraceError {}

impl Trace {
    /// JSON Lines: the header, then one event per line, `\n`-terminated.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        // Serializing these plain structs cannot fail.
        out.push_str(&serde_json::to_string(&self.header).expect("header serializes"));
        out.push('\n');
        for e in &self.events {
            out.push_str(&event_json(e));
            out.push('\n');
        }
        out
    }

    pub fn from_jsonl(text: &str) -> Result<Trace, TraceError> {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let (_, first) = lines.next().ok_or(TraceError { line: 1, message: "empty trace".into() })?;
        let header: TraceHeader =
            serde_json::from_str(first).map_err(|e| TraceError { line: 1, message: format!("bad header: {e}") })?;
        if header.haywire_trace != FORMAT {
            return Err(TraceError {
                line: 1,
                message: format!("trace format {} is not the supported format {FORMAT}", header.haywire_trace),
            });
        }
        let mut events = Vec::new();
        for (i, line) in lines {
            let e: Event = serde_json::from_str(line).map_err(|e| TraceError { line: i + 1, message: e.to_string() })?;
            events.push(e);
        }
        Ok(Trace { header, events })
    }

    /// The canonical text form: one line for the header, one per event.
    pub fn canonical_lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.events.len() + 1);
        out.push(header_line(&self.header));
        out.extend(self.event_lines());
        out
    }

    /// One canonical line per event, actors named as the timeline names
    /// them (`from=r1/i4`).
    pub fn event_lines(&self) -> Vec<String> {
        let mut names = Names::default();
        self.events.iter().map(|e| names.line(e)).collect()
    }

    pub fn canonical_text(&self) -> String {
        let mut s = self.canonical_lines().join("\n");
        s.push('\n');
        s
    }

    /// A 64-bit FNV-1a hash of the JSON Lines form, as 16 hex digits. Equal
    /// traces hash equal on every machine and run, and a trace read back
    /// from its file hashes as it did when written: the JSON Lines form is
    /// canonical (floats round-trip exactly, keys in one order), so reading
    /// and writing it again gives the same bytes.
    pub fn hash(&self) -> String {
        format!("{:016x}", fnv1a64(self.to_jsonl().as_bytes()))
    }
}

pub fn event_json(e: &Event) -> String {
    serde_json::to_string(e).expect("event serializes")
}

fn header_line(h: &TraceHeader) -> String {
    let mutant = h.mutant.as_deref().unwrap_or("none");
    let mut line = format!("# scenario={} seed={} mutant={} options={}", h.scenario, h.seed, mutant, h.options);
    if let Some(plan) = &h.plan {
        line.push_str(&format!(" plan={plan}"));
    }
    if let Some(live) = &h.live {
        line.push_str(&format!(" live={live}"));
    }
    line
}

/// Names the actors of a trace as its timeline does: store and cluster
/// events carry the caller's instance id (`from`, `as_owner`), which is
/// shown as the replica that ran it (`r1/i4`), learned from the replica's
/// own events (its `started` comes first).
#[derive(Clone, Debug, Default)]
pub struct Names {
    node_of: BTreeMap<u64, String>,
}

impl Names {
    pub fn learn(&mut self, e: &Event) {
        if let Some(i) = e.inst {
            self.node_of.entry(i).or_insert_with(|| e.node.clone());
        }
    }

    /// `r1/i4`, or `i4` for an instance no event of its own has named yet.
    pub fn actor(&self, inst: u64) -> String {
        match self.node_of.get(&inst) {
            Some(node) => format!("{node}/i{inst}"),
            None => format!("i{inst}"),
        }
    }

    /// The canonical line of `e`, learning from it first.
    pub fn line(&mut self, e: &Event) -> String {
        self.learn(e);
        render(e, self)
    }
}

/// Fields that hold an instance id, shown by name.
pub const INSTANCE_FIELDS: [&str; 2] = ["from", "as_owner"];

/// `[   12.345678s] r1/i3   lease_acquired epoch=2`, one event alone (a
/// caller it cannot name is `i4`; [`Names`] names it `r1/i4`).
pub fn canonical_event(e: &Event) -> String {
    render(e, &Names::default())
}

fn render(e: &Event, names: &Names) -> String {
    let who = match e.inst {
        Some(i) => format!("{}/i{}", e.node, i),
        None => e.node.clone(),
    };
    let secs = e.t / 1_000_000;
    let micros = e.t % 1_000_000;
    let mut line = format!("[{secs:>5}.{micros:06}s] {who:<8} ");
    let value = serde_json::to_value(&e.kind).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(map) = value {
        if let Some(tag) = map.get("ev").and_then(|v| v.as_str()) {
            line.push_str(tag);
        }
        for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "ev") {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            match v {
                serde_json::Value::Number(n) if INSTANCE_FIELDS.contains(&k.as_str()) && n.is_u64() => {
                    line.push_str(&names.actor(n.as_u64().unwrap_or_default()))
                }
                serde_json::Value::String(s) if !s.contains(' ') && !s.is_empty() => line.push_str(s),
                other => line.push_str(&other.to_string()),
            }
        }
    }
    line
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
