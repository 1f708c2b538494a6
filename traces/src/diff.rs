//! First divergence between two traces.

use crate::trace::Trace;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// Index into the canonical lines (0 is the header).
    pub line: usize,
    /// Up to `context` equal lines before the divergence.
    pub before: Vec<String>,
    pub left: Option<String>,
    pub right: Option<String>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "traces diverge at line {} (0 = header):", self.line)?;
        for l in &self.before {
            writeln!(f, "    {l}")?;
        }
        writeln!(f, "  - {}", self.left.as_deref().unwrap_or("<end of trace>"))?;
        write!(f, "  + {}", self.right.as_deref().unwrap_or("<end of trace>"))
    }
}

/// The first canonical line where `a` and `b` differ, with `context` lines
/// of shared history before it; `None` when they are identical.
pub fn first_divergence(a: &Trace, b: &Trace, context: usize) -> Option<Divergence> {
    divergence(&a.canonical_lines(), &b.canonical_lines(), context, 0)
}

/// As [`first_divergence`], over the events only: two runs that differ in
/// their header (a mutant, a store, a plan) show where their behaviour
/// first differs. Lines are numbered as in the whole trace.
pub fn first_event_divergence(a: &Trace, b: &Trace, context: usize) -> Option<Divergence> {
    divergence(&a.event_lines(), &b.event_lines(), context, 1)
}

fn divergence(la: &[String], lb: &[String], context: usize, offset: usize) -> Option<Divergence> {
    let n = la.len().max(lb.len());
    (0..n).find(|&i| la.get(i) != lb.get(i)).map(|i| Divergence {
        line: i + offset,
        before: la[i.saturating_sub(context)..i].to_vec(),
        left: la.get(i).cloned(),
        right: lb.get(i).cloned(),
    })
}
