//! A trace as one self-contained HTML page: swimlanes in inline SVG (one per
//! replica, the store, the cluster and the fault injector), lease terms,
//! faults, worker lifecycles and the violation, on a time axis in seconds.
//!
//! No scripts, fonts or network: tooltips are SVG `<title>`s, and every lane
//! is in the static markup (a headless browser's DOM dump shows it). The
//! output depends on the trace only: the same trace gives the same bytes.

use crate::event::{EventKind, Lifecycle};
use crate::spans::{secs, spans, FaultSpan, Scope, Spans};
use crate::trace::Trace;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Worker rows drawn at most; the rest are counted in a note (a fleet run
/// can have thousands, and the page must stay openable).
pub const MAX_WORKER_ROWS: usize = 300;

const WIDTH: f64 = 1560.0;
const LABEL_W: f64 = 120.0;
const PLOT_W: f64 = WIDTH - LABEL_W - 20.0;
const AXIS_H: f64 = 34.0;
const REPLICA_H: f64 = 40.0;
const SMALL_H: f64 = 26.0;
const FAULT_ROW_H: f64 = 18.0;
const WORKER_H: f64 = 13.0;

/// Escape text for HTML element content and attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn timeline_html(trace: &Trace) -> String {
    let s = spans(trace);
    let h = &trace.header;
    let mutant = h.mutant.as_deref().unwrap_or("none");
    let title = format!("haywire timeline: {} seed {} mutant {}", h.scenario, h.seed, mutant);
    let (svg, omitted) = Plot::new(trace, &s).draw();
    let verdict = match &s.violation {
        Some(v) => format!(
            "<div id=\"violation\" class=\"verdict fail\"><b>VIOLATION {}</b> at {}: {}</div>",
            escape(&v.invariant),
            secs(v.t),
            escape(&v.message)
        ),
        None => "<div id=\"verdict\" class=\"verdict pass\"><b>PASS</b>: the oracle found no violation</div>".into(),
    };
    let note = if omitted > 0 {
        format!(
            "<p class=\"note\">{} of {} workers drawn; {omitted} omitted (those the violation names are kept).</p>",
            s.workers.len() - omitted,
            s.workers.len()
        )
    } else {
        String::new()
    };
    let legend: String = Lifecycle::ALL
        .iter()
        .map(|l| format!("<span class=\"key\"><i class=\"sw st-{0}\"></i>{0}</span>", l.name()))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
<h1>{title}</h1>\n\
<p class=\"meta\">scenario <b>{sc}</b> · seed <b>{seed}</b> · mutant <b>{mu}</b> · {n} events · {dur} simulated · {r} replicas · {w} workers · trace hash {hash}</p>\n\
{verdict}\n\
<p class=\"legend\"><span class=\"key\"><i class=\"sw lease-sw\"></i>lease term (epoch)</span><span class=\"key\"><i class=\"sw work-sw\"></i>leader work</span>\
<span class=\"key\"><i class=\"sw fault-sw\"></i>fault</span><span class=\"key\"><i class=\"sw down-sw\"></i>process down</span><span class=\"key\"><i class=\"sw all-sw\"></i>store-wide fault</span>{legend}\
<span class=\"key\"><i class=\"sw viol-sw\"></i>violation</span> · hover for details</p>\n\
{note}{svg}\n</body>\n</html>\n",
        title = escape(&title),
        sc = escape(&h.scenario),
        seed = h.seed,
        mu = escape(mutant),
        n = trace.events.len(),
        dur = secs(s.end),
        r = s.replicas.len(),
        w = s.workers.len(),
        hash = trace.hash(),
    )
}

const CSS: &str = "\
body{font:13px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:10px;color:#222;background:#fff}\
h1{font-size:18px;margin:0 0 4px}\
.meta,.legend,.note{margin:2px 0}\
.verdict{margin:4px 0;padding:4px 8px;border-radius:3px}\
.fail{background:#fde8e8;border-left:4px solid #d50000}\
.pass{background:#e6f4ea;border-left:4px solid #2e7d32}\
.key{margin-right:10px;white-space:nowrap}\
.sw{display:inline-block;width:12px;height:10px;margin-right:3px;vertical-align:-1px;border:1px solid #0002}\
svg{display:block;width:100%;height:auto;font:11px system-ui,sans-serif}\
.bg0{fill:#fafafa}.bg1{fill:#f0f0f0}\
.grid{stroke:#d6d6d6;stroke-width:1}\
.tick{fill:#555;font-size:10px}\
.label{font-weight:600;fill:#222}\
.sub{fill:#666;font-size:10px}\
.lease rect,.lease-sw{fill:#3949ab;background:#3949ab}\
.lease text{fill:#fff;font-size:10px;font-weight:600}\
.work,.work-sw{fill:#9fa8da;background:#9fa8da}\
.start{stroke:#888;stroke-dasharray:2 2}\
.fault-shade,.fault-sw{fill:#ff9800;fill-opacity:.22;background:#ffd699}\
.fault-shade.down,.down-sw{fill:#9e9e9e;fill-opacity:.35;background:#d4d4d4}\
.fault-all,.all-sw{fill:#8e24aa;fill-opacity:.08;background:#e8d3ee;pointer-events:none}\
.fbar{fill:#fb8c00}.fbar.down{fill:#9e9e9e}.fbar.all{fill:#ba68c8}.fbar.cluster{fill:#4db6ac}.fbar.injector{fill:#90a4ae}\
.fbar.open{fill-opacity:.55}\
.ftext{font-size:10px;fill:#222}\
.fpoint{fill:#e65100}\
.mark-failed{stroke:#c62828}.mark-lost{stroke:#ef6c00}.mark-pod{stroke:#2e7d32}.mark-del{stroke:#757575}\
.mark-secret{stroke:#66bb6a}\
.st-spawning{fill:#b39ddb;background:#b39ddb}.st-activating{fill:#ffb74d;background:#ffb74d}\
.st-hot{fill:#43a047;background:#43a047}.st-hot_idle{fill:#81d4fa;background:#81d4fa}\
.st-draining{fill:#ff7043;background:#ff7043}.st-retired{fill:#bdbdbd;background:#bdbdbd}\
.st-lost{fill:#424242;background:#424242}\
.terminal{fill-opacity:.6}\
.wlabel{font-size:9px;fill:#444}[data-named] .wlabel{fill:#d50000;font-weight:700}\
.vline{stroke:#d50000;stroke-width:2;pointer-events:none}\
.vtext{fill:#d50000;font-weight:700}\
.viol-sw{background:#d50000}";

/// Where things go on the page, and the SVG being written.
struct Plot<'a> {
    trace: &'a Trace,
    s: &'a Spans,
    span: f64,
    out: String,
    /// Lane name -> (top, height).
    lanes: BTreeMap<String, (f64, f64)>,
}

impl<'a> Plot<'a> {
    fn new(trace: &'a Trace, s: &'a Spans) -> Self {
        Plot { trace, s, span: s.end.max(1) as f64, out: String::new(), lanes: BTreeMap::new() }
    }

    fn x(&self, t: u64) -> f64 {
        LABEL_W + (t as f64 / self.span) * PLOT_W
    }

    /// Writes the SVG; returns it and the number of workers left out.
    fn draw(mut self) -> (String, usize) {
        let s = self.s;
        let has_cluster =
            self.trace.events.iter().any(|e| e.node == "cluster") || s.faults.iter().any(|f| f.scope == Scope::Cluster);
        // Lay the lanes out top to bottom.
        let mut y = AXIS_H;
        let mut order: Vec<(String, String, f64)> = Vec::new();
        for r in &s.replicas {
            order.push((r.clone(), r.clone(), REPLICA_H));
        }
        order.push(("store".into(), "store".into(), SMALL_H));
        if has_cluster {
            order.push(("cluster".into(), "cluster".into(), SMALL_H));
        }
        let fault_rows = pack_faults(self.s, |t| self.x(t));
        let rows = fault_rows.iter().map(|p| p.row + 1).max().unwrap_or(1);
        order.push(("faults".into(), "fault injector".into(), rows as f64 * FAULT_ROW_H + 6.0));
        for (name, _, h) in &order {
            self.lanes.insert(name.clone(), (y, *h));
            y += h;
        }
        let lanes_bottom = y;
        let (workers, omitted) = pick_workers(s);
        let workers_top = y + if workers.is_empty() { 0.0 } else { 18.0 };
        let height = workers_top + workers.len() as f64 * WORKER_H + if omitted > 0 { 18.0 } else { 6.0 };

        let _ = writeln!(
            self.out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {h:.0}\" width=\"{WIDTH}\" height=\"{h:.0}\">",
            h = height
        );
        // Backgrounds, then the grid over them, then lane contents.
        for (i, (name, _, _)) in order.iter().enumerate() {
            let (top, h) = self.lanes[name];
            self.rect(&format!("bg{}", i % 2), 0.0, top, WIDTH, h, None);
        }
        self.axis(height);
        for (name, label, _) in &order {
            let (top, h) = self.lanes[name];
            let _ = writeln!(self.out, "<g class=\"lane\" data-lane=\"{}\">", escape(name));
            let _ = writeln!(
                self.out,
                "<text class=\"label\" x=\"8\" y=\"{:.1}\">{}</text>",
                top + h / 2.0 + 4.0,
                escape(label)
            );
            self.lane_faults(name);
            if name == "faults" {
                self.fault_bars(&fault_rows, top);
            } else if name == "store" || name == "cluster" {
                self.marks(name, top);
            } else {
                self.replica_lane(name, top);
            }
            self.out.push_str("</g>\n");
        }
        // Store-wide faults tint every lane.
        for f in s.faults.iter().filter(|f| f.scope == Scope::All && !f.point) {
            let (x0, x1) = (self.x(f.start), self.x(f.end));
            self.rect("fault fault-all", x0, AXIS_H, (x1 - x0).max(1.0), lanes_bottom - AXIS_H, None);
        }
        self.workers(&workers, omitted, workers_top);
        if let Some(v) = &s.violation {
            let x = self.x(v.t);
            let text = format!("✗ {} {}", v.invariant, secs(v.t));
            // Left of the line, unless that runs off the page.
            let (tx, anchor) = if x - label_w(&text) * 1.2 > 0.0 { (x - 3.0, "end") } else { (x + 3.0, "start") };
            let _ = writeln!(
                self.out,
                "<g class=\"violation\"><line class=\"vline\" x1=\"{x:.1}\" y1=\"16\" x2=\"{x:.1}\" y2=\"{height:.0}\"/>\
<text class=\"vtext\" x=\"{tx:.1}\" y=\"12\" text-anchor=\"{anchor}\">{}<title>{}</title></text></g>",
                escape(&text),
                escape(&v.message),
            );
        }
        self.out.push_str("</svg>");
        (self.out, omitted)
    }

    fn rect(&mut self, class: &str, x: f64, y: f64, w: f64, h: f64, title: Option<&str>) {
        let _ =
            write!(self.out, "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\"");
        match title {
            Some(t) => {
                let _ = writeln!(self.out, "><title>{}</title></rect>", escape(t));
            }
            None => self.out.push_str("/>\n"),
        }
    }

    /// Gridlines and tick labels every "nice" number of seconds.
    fn axis(&mut self, height: f64) {
        let step = nice_step_ms(self.s.end / 1000);
        let mut t_ms = 0u64;
        while t_ms * 1000 <= self.s.end.max(1) {
            let x = self.x(t_ms * 1000);
            let label = if step.is_multiple_of(1000) {
                format!("{}s", t_ms / 1000)
            } else {
                format!("{:.1}s", t_ms as f64 / 1000.0)
            };
            let _ = writeln!(
                self.out,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{AXIS_H}\" x2=\"{x:.1}\" y2=\"{height:.0}\"/>\
<text class=\"tick\" x=\"{x:.1}\" y=\"{y}\" text-anchor=\"middle\">{label}</text>",
                y = AXIS_H - 6.0
            );
            t_ms += step;
        }
    }

    /// The shading of faults aimed at this lane.
    fn lane_faults(&mut self, lane: &str) {
        let (top, h) = self.lanes[lane];
        for f in &self.s.faults {
            let here = match &f.scope {
                Scope::Node(n) => n == lane,
                Scope::Cluster => lane == "cluster",
                Scope::All | Scope::Injector => false,
            };
            if !here {
                continue;
            }
            let tip = fault_tip(f);
            let (x0, x1) = (self.x(f.start), self.x(f.end));
            if f.point {
                let _ = writeln!(
                    self.out,
                    "<path class=\"fault fpoint\" d=\"M{l:.1} {top:.1}h8l-4 8z\"><title>{}</title></path>",
                    escape(&tip),
                    l = x0 - 4.0
                );
            } else {
                let class = if is_down(f) { "fault fault-shade down" } else { "fault fault-shade" };
                self.rect(class, x0, top, (x1 - x0).max(1.0), h, Some(&tip));
            }
        }
    }

    /// Every fault as a labelled bar on the injector's lane, packed in rows.
    fn fault_bars(&mut self, placed: &[Placed], top: f64) {
        for p in placed {
            let f = &self.s.faults[p.fault];
            let y = top + 3.0 + p.row as f64 * FAULT_ROW_H;
            let (x0, x1) = (self.x(f.start), self.x(f.end));
            let tip = fault_tip(f);
            let scope = match f.scope {
                Scope::Node(_) if is_down(f) => " down",
                Scope::Node(_) => "",
                Scope::All => " all",
                Scope::Cluster => " cluster",
                Scope::Injector => " injector",
            };
            let _ = writeln!(self.out, "<g class=\"fault\" data-fault=\"{}\">", escape(&f.name));
            if f.point {
                let _ = write!(self.out, "<path class=\"fpoint\" d=\"M{x0:.1} {y:.1}l5 7l-5 7l-5 -7z\"/>");
            } else {
                let open = if f.healed { "" } else { " open" };
                let w = (x1 - x0).max(2.0);
                let _ = write!(
                    self.out,
                    "<rect class=\"fbar{scope}{open}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\"/>",
                    h = FAULT_ROW_H - 6.0
                );
            }
            let _ = writeln!(
                self.out,
                "<text class=\"ftext\" x=\"{tx:.1}\" y=\"{ty:.1}\"{anchor}>{}</text><title>{}</title></g>",
                escape(&f.label),
                escape(&tip),
                tx = p.text_x,
                ty = y + 10.0,
                anchor = if p.text_end { " text-anchor=\"end\"" } else { "" },
            );
        }
    }

    /// Lease bars, leader work and process starts on a replica's lane.
    fn replica_lane(&mut self, lane: &str, top: f64) {
        for e in self.trace.events.iter().filter(|e| e.node == lane && matches!(e.kind, EventKind::Started)) {
            let x = self.x(e.t);
            let inst = e.inst.map(|i| format!("i{i}")).unwrap_or_default();
            let _ = writeln!(
                self.out,
                "<line class=\"start\" x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{b:.1}\"/>\
<text class=\"sub\" x=\"{tx:.1}\" y=\"{ty:.1}\">{inst}<title>{lane}/{inst} started at {}</title></text>",
                secs(e.t),
                b = top + REPLICA_H,
                tx = x + 2.0,
                ty = top + REPLICA_H - 3.0,
                lane = escape(lane),
            );
        }
        for l in self.s.leases.iter().filter(|l| l.node == lane) {
            let (x0, x1) = (self.x(l.start), self.x(l.end));
            let w = (x1 - x0).max(1.5);
            let _ = write!(
                self.out,
                "<g class=\"lease\" data-epoch=\"{e}\"><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"15\"/>",
                e = l.epoch,
                y = top + 5.0
            );
            if w > 20.0 {
                let _ = write!(self.out, "<text x=\"{:.1}\" y=\"{:.1}\">e{}</text>", x0 + 3.0, top + 16.0, l.epoch);
            }
            let _ = writeln!(
                self.out,
                "<title>lease epoch {} held by {}/i{} from {} to {} ({})</title></g>",
                l.epoch,
                escape(&l.node),
                l.holder,
                secs(l.start),
                secs(l.end),
                l.ended
            );
        }
        for w in self.s.work.iter().filter(|w| w.node == lane) {
            let (x0, x1) = (self.x(w.start), self.x(w.end));
            let tip = format!(
                "leader work of {}/i{} for epoch {} from {} to {}",
                w.node,
                w.inst,
                w.epoch,
                secs(w.start),
                secs(w.end)
            );
            self.rect("work", x0, top + 23.0, (x1 - x0).max(1.5), 5.0, Some(&tip));
        }
    }

    /// Store and cluster lanes: ticks for failures and pod/secret changes,
    /// merged per pixel column so a busy run stays small.
    fn marks(&mut self, lane: &str, top: f64) {
        let mut cols: BTreeMap<(&'static str, i64), (u64, u64, String)> = BTreeMap::new();
        for e in self.trace.events.iter().filter(|e| e.node == lane) {
            let class = match &e.kind {
                EventKind::StoreFailed { .. } | EventKind::ClusterFailed { .. } => "mark-failed",
                EventKind::LeaseWrite { reply_lost: true, .. }
                | EventKind::EffectWrite { reply_lost: true, .. }
                | EventKind::WorkerWrite { reply_lost: true, .. }
                | EventKind::SlotWrite { reply_lost: true, .. }
                | EventKind::JobWrite { reply_lost: true, .. }
                | EventKind::FireWrite { reply_lost: true, .. } => "mark-lost",
                EventKind::PodCreated { .. } => "mark-pod",
                EventKind::PodDeleted { .. } | EventKind::SecretDeleted { .. } => "mark-del",
                EventKind::SecretCreated { .. } => "mark-secret",
                _ => continue,
            };
            let col = self.x(e.t).round() as i64;
            let what = if class == "mark-lost" { format!("{} (reply lost)", e.kind.tag()) } else { e.kind.tag() };
            cols.entry((class, col)).or_insert((0, e.t, what)).0 += 1;
        }
        let mut by_col: Vec<_> = cols.into_iter().collect();
        by_col.sort_by_key(|((class, col), _)| (*col, *class));
        for ((class, col), (n, t, what)) in by_col {
            let more = if n > 1 { format!(" and {} more nearby", n - 1) } else { String::new() };
            let _ = writeln!(
                self.out,
                "<line class=\"{class}\" x1=\"{col}\" y1=\"{:.1}\" x2=\"{col}\" y2=\"{:.1}\" stroke-width=\"1.5\"><title>{} at {}{more}</title></line>",
                top + 5.0,
                top + SMALL_H - 5.0,
                escape(&what),
                secs(t)
            );
        }
    }

    fn workers(&mut self, workers: &[usize], omitted: usize, top: f64) {
        if workers.is_empty() {
            return;
        }
        let _ = writeln!(
            self.out,
            "<text class=\"label\" x=\"8\" y=\"{:.1}\">workers ({})</text>",
            top - 5.0,
            self.s.workers.len()
        );
        let message = self.s.violation.as_ref().map(|v| v.message.as_str()).unwrap_or("");
        for (row, &i) in workers.iter().enumerate() {
            let w = &self.s.workers[i];
            let y = top + row as f64 * WORKER_H;
            // The workers the violation names stand out.
            let named = if names(message, &w.id) { " data-named=\"true\"" } else { "" };
            let _ = writeln!(
                self.out,
                "<g class=\"worker\" data-worker=\"{id}\"{named}><text class=\"wlabel\" x=\"16\" y=\"{ty:.1}\">{id}</text>",
                id = escape(&w.id),
                ty = y + 9.5
            );
            for g in &w.segments {
                let (x0, x1) = (self.x(g.start), self.x(g.end));
                let terminal = if g.state.is_terminal() { " terminal" } else { "" };
                let tip = format!(
                    "{} {} owner {}/i{} epoch {} from {} to {}",
                    w.id,
                    g.state,
                    self.s.node_of(g.owner),
                    g.owner,
                    g.epoch,
                    secs(g.start),
                    secs(g.end)
                );
                self.rect(
                    &format!("st-{}{terminal}", g.state.name()),
                    x0,
                    y + 1.5,
                    (x1 - x0).max(1.5),
                    WORKER_H - 3.0,
                    Some(&tip),
                );
            }
            self.out.push_str("</g>\n");
        }
        if omitted > 0 {
            let _ = writeln!(
                self.out,
                "<text class=\"sub\" x=\"16\" y=\"{:.1}\">… {omitted} more workers omitted</text>",
                top + workers.len() as f64 * WORKER_H + 12.0
            );
        }
    }
}

/// The process is not running (crashed, fenced, exited): drawn grey, apart
/// from faults that hit a running process.
fn is_down(f: &FaultSpan) -> bool {
    matches!(f.name.as_str(), "crash" | "self_fenced" | "exited")
}

fn fault_tip(f: &FaultSpan) -> String {
    if f.point {
        return format!("{} at {}", f.label, secs(f.start));
    }
    let how = if f.healed { "healed" } else { "not healed in the trace" };
    format!("{} from {} to {} ({how})", f.label, secs(f.start), secs(f.end))
}

/// A fault's place on the injector lane: its row, where its label starts
/// (or ends, when it would run off the right edge).
struct Placed {
    fault: usize,
    row: usize,
    text_x: f64,
    text_end: bool,
}

/// Approximate width of a 10px label: the packing only needs to keep
/// labels from overprinting, not to be exact.
fn label_w(label: &str) -> f64 {
    5.6 * label.chars().count() as f64 + 4.0
}

/// Greedy row packing for the injector lane by drawn extent (bar or label,
/// whichever is wider), so labels do not overprint.
fn pack_faults(s: &Spans, x: impl Fn(u64) -> f64) -> Vec<Placed> {
    let right = WIDTH - 4.0;
    let mut order: Vec<usize> = (0..s.faults.len()).collect();
    order.sort_by_key(|&i| (s.faults[i].start, i));
    let mut row_ends: Vec<f64> = Vec::new();
    let mut out = Vec::new();
    for fault in order {
        let f = &s.faults[fault];
        let (x0, x1, w) = (x(f.start), x(f.end), label_w(&f.label));
        // (text x, anchored at its end?, extent left, extent right)
        let (text_x, text_end, left, end) = match (f.point, x0 + 7.0 + w > right, x0 + 2.0 + w > right) {
            (true, false, _) => (x0 + 7.0, false, x0 - 5.0, x0 + 7.0 + w),
            (true, true, _) => (x0 - 7.0, true, x0 - 7.0 - w, x0 + 5.0),
            (false, _, false) => (x0 + 2.0, false, x0, x1.max(x0 + 2.0 + w)),
            (false, _, true) => (right, true, x0.min(right - w), x1),
        };
        let row = match row_ends.iter().position(|&e| e <= left) {
            Some(r) => r,
            None => {
                row_ends.push(f64::MIN);
                row_ends.len() - 1
            }
        };
        row_ends[row] = end + 4.0;
        out.push(Placed { fault, row, text_x, text_end });
    }
    out
}

/// Which workers get a row: all, or up to [`MAX_WORKER_ROWS`] with those
/// the violation message names first. Indices in natural order, and how
/// many were left out.
fn pick_workers(s: &Spans) -> (Vec<usize>, usize) {
    let n = s.workers.len();
    if n <= MAX_WORKER_ROWS {
        return ((0..n).collect(), 0);
    }
    let message = s.violation.as_ref().map(|v| v.message.as_str()).unwrap_or("");
    let mut keep: BTreeSet<usize> = (0..n).filter(|&i| names(message, &s.workers[i].id)).collect();
    for i in 0..n {
        if keep.len() >= MAX_WORKER_ROWS {
            break;
        }
        keep.insert(i);
    }
    let keep: Vec<usize> = keep.into_iter().take(MAX_WORKER_ROWS.max(1)).collect();
    let omitted = n - keep.len();
    (keep, omitted)
}

/// Does `text` mention `id` as a whole word (`w2.1` but not in `w2.10`)?
fn names(text: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(id).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let mut after = text[at + id.len()..].chars();
        let a = after.next();
        // A trailing '.' followed by a digit continues the id (w2.1 -> w2.1.5).
        let dotted = a == Some('.') && after.next().is_some_and(|c| c.is_ascii_digit());
        !word(before) && !word(a) && !dotted
    })
}

/// A tick step (ms) that puts at most ~15 ticks on the axis.
fn nice_step_ms(span_ms: u64) -> u64 {
    const STEPS: [u64; 17] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000,
        1_200_000, 1_800_000, 3_600_000,
    ];
    STEPS.iter().copied().find(|s| span_ms / s <= 15).unwrap_or_else(|| span_ms.div_ceil(15).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::tests::sample;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(escape("plain r1/i3 ✗"), "plain r1/i3 ✗");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn failing_trace_has_lanes_lease_fault_worker_and_violation() {
        let html = timeline_html(&sample(true));
        for lane in ["r1", "r2", "store", "faults"] {
            assert!(html.contains(&format!("class=\"lane\" data-lane=\"{lane}\"")), "lane {lane}");
        }
        // r1's lanes come before r2's, and the cluster lane is absent (no events).
        assert!(html.find("data-lane=\"r1\"") < html.find("data-lane=\"r2\""));
        assert!(!html.contains("data-lane=\"cluster\""));
        assert!(html.contains("<g class=\"lease\" data-epoch=\"1\">"));
        assert!(html.contains("lease epoch 1 held by r1/i1 from 1.000000s to 6.000000s (released)"));
        assert!(html.contains("class=\"fault fault-shade down\""), "crash shaded on r1");
        assert!(html.contains("crash r1 from 8.000000s to 9.000000s (healed)"));
        assert!(html.contains("class=\"fault fault-all\""), "the store stall tints every lane");
        assert!(html.contains("<g class=\"worker\" data-worker=\"w1.1\">"));
        for st in ["\"st-spawning\"", "\"st-hot\"", "\"st-hot_idle\"", "\"st-retired terminal\""] {
            assert!(html.contains(st), "{st}");
        }
        assert!(html.contains("<div id=\"violation\" class=\"verdict fail\"><b>VIOLATION S2</b> at 12.000000s"));
        // The message is escaped, not markup.
        assert!(html.contains("two &lt;holders&gt; &amp; &quot;more&quot;"));
        assert!(!html.contains("<holders>"));
        assert!(html.contains("class=\"vline\""));
        assert!(!html.contains("PASS"));
        assert!(html.contains("haywire timeline: leader-crash seed 7 mutant release-before-cancel"));
        assert!(html.contains("17 events · 12.000000s simulated"));
        // Self-contained: nothing fetched.
        let fetched = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for needle in ["http", "<script", "src=", "@import", "url("] {
            assert!(!fetched.contains(needle), "{needle}");
        }
    }

    #[test]
    fn passing_trace_says_pass_and_output_is_deterministic() {
        let t = sample(false);
        let html = timeline_html(&t);
        assert!(html.contains("<b>PASS</b>"));
        assert!(!html.contains("id=\"violation\""));
        assert_eq!(html, timeline_html(&t.clone()));
    }

    #[test]
    fn odd_traces_do_not_panic() {
        let mut t = sample(false);
        t.events.clear();
        let html = timeline_html(&t);
        assert!(html.contains("PASS") && html.contains("data-lane=\"store\""));
        // Unknown nodes, events without an instance, healings with no fault.
        let mut t = sample(true);
        for e in &mut t.events {
            e.inst = None;
        }
        t.events.push(crate::event::Event {
            t: 1,
            node: "???<b>".into(),
            inst: None,
            kind: EventKind::PartitionHealed { target: "<x>".into() },
        });
        let html = timeline_html(&t);
        assert!(html.contains("data-lane=\"r1\"") && !html.contains("<x>") && !html.contains("<b>???"));
    }

    #[test]
    fn many_workers_are_capped_keeping_the_named_one() {
        let mut t = sample(true);
        let template = t.events.iter().find(|e| matches!(e.kind, EventKind::WorkerWrite { .. })).unwrap().clone();
        for i in 0..(MAX_WORKER_ROWS + 50) {
            let mut e = template.clone();
            if let EventKind::WorkerWrite { id, .. } = &mut e.kind {
                *id = format!("w9.{i}");
            }
            t.events.insert(4, e);
        }
        let last = t.events.len() - 1;
        t.events[last].kind = EventKind::Violation { invariant: "L2".into(), message: "w9.340 idle".into() };
        let html = timeline_html(&t);
        assert_eq!(html.matches("<g class=\"worker\"").count(), MAX_WORKER_ROWS);
        assert!(html.contains("<g class=\"worker\" data-worker=\"w9.340\" data-named=\"true\">"));
        assert!(html.contains("51 omitted"));
    }

    #[test]
    fn whole_word_names_and_ticks() {
        assert!(names("w2.1 (hot_idle)", "w2.1"));
        assert!(names("idle: w2.1.", "w2.1"));
        assert!(!names("w2.10 idle", "w2.1"));
        assert!(!names("xw2.1", "w2.1"));
        assert!(!names("w2.1.5", "w2.1"));
        assert_eq!(nice_step_ms(0), 100);
        assert_eq!(nice_step_ms(117_800), 10_000);
        assert_eq!(nice_step_ms(100_000_000), 100_000_000u64.div_ceil(15));
    }
}
