//! The HTML timeline of a real failing run, opened in headless Chromium:
//! the lanes, a lease bar and the violation are in the DOM the browser
//! builds from the file (not just in the string we wrote).
//!
//! Chromium: `/usr/bin/chromium` or `chromium` on PATH. Without it the test
//! is skipped, except under CI (`CI` set), where `.ci/run` installs it and
//! its absence is a failure.
//!
//! Environment:
//! - `HAYWIRE_SCREENSHOT=path.png` also saves a 1600x900 screenshot of the
//!   page. `docs/timeline.png` is made this way:
//!   `HAYWIRE_TIMELINE_RUN="chaos 25 no-fallback-reaper" HAYWIRE_SCREENSHOT=docs/timeline.png cargo test --test timeline_html`
//! - `HAYWIRE_TIMELINE_RUN="<scenario> <seed> <mutant>"` renders that run
//!   instead of the default: the first failing seed of no-fallback-reaper's
//!   home scenario (leases, faults, workers and a violation in one short run).

use haywire_core::Mutant;
use haywire_sim::{run, Outcome, RunConfig};
use haywire_traces::{timeline_html, EventKind, Trace};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
fn chromium_renders_the_timeline_of_a_failing_run() {
    let Some(chromium) = find_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed: .ci/run installs it (apt-get install chromium) before cargo test"
        );
        println!("skipped: chromium not installed");
        return;
    };
    let outcome = failing_run();
    let trace = &outcome.trace;
    let invariant = trace
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Violation { invariant, .. } => Some(invariant.clone()),
            _ => None,
        })
        .expect("a failing run's trace has a violation event");

    let dir = TempDir::new();
    let page = dir.path().join("timeline.html");
    std::fs::write(&page, timeline_html(trace)).expect("write the page");
    let url = format!("file://{}", page.display());

    let dom = chromium_run(&chromium, &dir, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom);
    assert!(dom.contains("</svg>"), "no SVG in the dumped DOM:\n{}", head(&dom));
    for lane in replicas(trace).iter().map(String::as_str).chain(["store", "faults"]) {
        assert!(dom.contains(&format!("class=\"lane\" data-lane=\"{lane}\"")), "no lane {lane} in the DOM");
    }
    assert!(dom.contains("<g class=\"lease\""), "no lease bar in the DOM");
    let at = dom.find("id=\"violation\"").expect("no violation element in the DOM");
    let element = &dom[at..dom[at..].find("</div>").map_or(dom.len(), |end| at + end)];
    assert!(element.contains(&format!("VIOLATION {invariant}")), "violation element lacks {invariant}: {element}");
    let has_workers = trace.events.iter().any(|e| matches!(e.kind, EventKind::WorkerWrite { applied: true, .. }));
    if has_workers {
        assert!(dom.contains("<g class=\"worker\" data-worker=\""), "no worker row in the DOM");
    }

    if let Some(png) = std::env::var_os("HAYWIRE_SCREENSHOT") {
        // Relative paths are the caller's: cargo runs tests from the package root.
        let png = std::path::absolute(PathBuf::from(png)).expect("screenshot path");
        let arg = format!("--screenshot={}", png.display());
        chromium_run(&chromium, &dir, &["--hide-scrollbars", "--window-size=1600,900", &arg, &url]);
        assert!(png.metadata().map(|m| m.len() > 0).unwrap_or(false), "no screenshot at {}", png.display());
        println!("screenshot: {}", png.display());
    }
}

/// The run to draw: `HAYWIRE_TIMELINE_RUN`, or the first seed of the
/// mutant's home scenario that fails.
fn failing_run() -> Outcome {
    if let Ok(spec) = std::env::var("HAYWIRE_TIMELINE_RUN") {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let [scenario, seed, mutant] = parts[..] else {
            panic!("HAYWIRE_TIMELINE_RUN: expected '<scenario> <seed> <mutant>', got '{spec}'")
        };
        let s = haywire_scenarios::by_name(scenario).unwrap_or_else(|| panic!("no scenario {scenario}"));
        let seed: u64 = seed.parse().unwrap_or_else(|_| panic!("bad seed {seed}"));
        let m: Mutant = mutant.parse().unwrap_or_else(|_| panic!("no mutant {mutant}"));
        let o = run(s, seed, &RunConfig { mutant: Some(m), store: None }).expect("the run starts");
        assert!(o.violation.is_some(), "{spec} passes: pick a failing run");
        return o;
    }
    let m = Mutant::NoFallbackReaper;
    let home = haywire_scenarios::home_of(m);
    let cfg = RunConfig { mutant: Some(m), store: None };
    (0..m.seed_budget())
        .map(|seed| run(home, seed, &cfg).expect("the run starts"))
        .find(|o| o.violation.is_some())
        .unwrap_or_else(|| panic!("mutant {m} not caught in {} within its seed budget", home.name))
}

fn replicas(trace: &Trace) -> BTreeSet<String> {
    trace
        .events
        .iter()
        .map(|e| e.node.as_str())
        .filter(|n| n.len() > 1 && n.starts_with('r') && n[1..].bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

fn find_chromium() -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("chromium")).find(|p| p.is_file())
}

/// Headless Chromium with a fresh profile, no network chatter and a time
/// limit (a wedged browser fails the test instead of hanging it).
fn chromium_run(chromium: &Path, dir: &TempDir, args: &[&str]) -> Vec<u8> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let profile = dir.path().join(format!("profile-{n}"));
    let out = dir.path().join(format!("stdout-{n}"));
    let err = dir.path().join(format!("stderr-{n}"));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took over 120 s: {}", String::from_utf8_lossy(&std::fs::read(&err).unwrap_or_default()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = String::from_utf8_lossy(&std::fs::read(&err).unwrap_or_default()).into_owned();
    assert!(status.success(), "chromium failed ({status}):\n{stderr}");
    std::fs::read(&out).expect("chromium's output")
}

fn head(s: &str) -> &str {
    &s[..s.char_indices().nth(2000).map_or(s.len(), |(i, _)| i)]
}

/// A directory removed when the test ends (no tempfile dependency for one
/// test).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!("haywire-timeline-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
