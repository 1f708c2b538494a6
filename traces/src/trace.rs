//! A whole trace: header plus events, as JSON Lines and as canonical text.

use crate::event::Event;
use serde::{Deserialize, Serialize};
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
        out.extend(self.events.iter().map(canonical_event));
        out
    }

    pub fn canonical_text(&self) -> String {
        let mut s = self.canonical_lines().join("\n");
        s.push('\n');
        s
    }

    /// A 64-bit FNV-1a hash of the JSON Lines form, as 16 hex digits. Equal
    /// traces hash equal on every machine and run.
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
    line
}

/// `[   12.345678s] r1/i3   lease_acquired epoch=2`
pub fn canonical_event(e: &Event) -> String {
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
