//! One process's events, as JSONL on disk. Each event is one `write` of one
//! whole line to an unbuffered file, so what a process recorded survives
//! its SIGKILL; lines are stamped under the lock, so a journal's order is
//! its time order.

use crate::clock::RunClock;
use haywire_traces::{Event, EventKind};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

pub struct Journal {
    file: Mutex<File>,
    clock: RunClock,
}

impl Journal {
    pub fn create(path: &Path, clock: RunClock) -> Result<Journal, String> {
        let file = File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(Journal { file: Mutex::new(file), clock })
    }

    pub fn clock(&self) -> RunClock {
        self.clock
    }

    pub fn record(&self, node: &str, inst: Option<u64>, kind: EventKind) {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let event = Event { t: self.clock.now_us(), node: node.to_string(), inst, kind };
        let mut line = haywire_traces::event_json(&event);
        line.push('\n');
        // A journal that cannot be written loses the run's ground truth:
        // the run cannot be judged, so stop rather than judge half of it.
        if let Err(e) = f.write_all(line.as_bytes()) {
            panic!("journal write failed: {e}");
        }
    }
}

/// Read a journal back; a torn last line (the process died mid-write) is
/// dropped, any other bad line is an error.
pub fn read(path: &Path) -> Result<Vec<Event>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Event>(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => return Err(format!("{} line {}: {e}", path.display(), i + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_process_recorded_reads_back_and_a_torn_last_line_is_dropped() {
        let dir = std::env::temp_dir().join(format!("haywire-journal-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r1-1.jsonl");
        let j = Journal::create(&path, RunClock::start()).unwrap();
        j.record("r1", Some(3), EventKind::Started);
        j.record("sim", None, EventKind::Crash { target: "r1".into() });
        let events = read(&path).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].node.as_str(), events[0].inst), ("r1", Some(3)));
        assert!(events[0].t <= events[1].t, "a journal is in time order");
        // SIGKILL mid-write: the last line is cut short.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"t\":5,\"node\":\"r").unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);
        // A bad line anywhere else is an error, not silently skipped.
        std::fs::write(&path, "nonsense\n{\"t\":1,\"node\":\"sim\",\"ev\":\"quiet_period\"}\n").unwrap();
        assert!(read(&path).unwrap_err().contains("line 1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
