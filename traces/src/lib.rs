//! haywire-traces: what a simulated run leaves behind.
//!
//! The event schema ([`Event`], [`EventKind`]), the JSON Lines form (a header
//! line with the run's options, then one event per line), a canonical text
//! form for reading and snapshotting, a stable hash, and a first-divergence
//! diff; and two views of a trace: a self-contained HTML timeline
//! ([`timeline_html`]) and Chrome trace-event JSON for ui.perfetto.dev
//! ([`perfetto_json`]). Depends on serde only.

mod diff;
mod event;
mod perfetto;
mod spans;
mod timeline_html;
mod trace;

pub use diff::{first_divergence, first_event_divergence, Divergence};
pub use event::{Event, EventKind, JobRow, LeaseOp, LeaseState, Lifecycle, SlotOp, SlotReply, WorkerOp, WorkerRow};
pub use perfetto::perfetto_json;
pub use timeline_html::timeline_html;
pub use trace::{canonical_event, event_json, fnv1a64, Names, Trace, TraceError, TraceHeader, FORMAT, INSTANCE_FIELDS};

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trace {
        Trace {
            header: TraceHeader {
                haywire_trace: FORMAT,
                scenario: "steady".into(),
                seed: 7,
                mutant: None,
                options: serde_json::json!({"replicas": 3}),
                plan: None,
                live: None,
            },
            events: vec![
                Event { t: 0, node: "r1".into(), inst: Some(1), kind: EventKind::Started },
                Event { t: 1_500_000, node: "r1".into(), inst: Some(1), kind: EventKind::LeaseAcquired { epoch: 1 } },
                Event {
                    t: 1_500_100,
                    node: "store".into(),
                    inst: None,
                    kind: EventKind::LeaseWrite {
                        from: 1,
                        op: LeaseOp::Acquire,
                        applied: true,
                        reject: None,
                        lease: Some(LeaseState { holder: Some(1), epoch: 1, expires_at_ms: 16_500, version: 1 }),
                        reply_lost: false,
                    },
                },
                Event {
                    t: 2_000_000,
                    node: "sim".into(),
                    inst: None,
                    kind: EventKind::Violation { invariant: "S2".into(), message: "two holders".into() },
                },
            ],
        }
    }

    #[test]
    fn jsonl_round_trips() {
        let t = sample();
        let text = t.to_jsonl();
        assert_eq!(text.lines().count(), 5);
        let back = Trace::from_jsonl(&text).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.to_jsonl(), text);
    }

    /// A trace read back from its file hashes as it did when written, floats
    /// in the options record included (`haywire diff a a` and `replay`
    /// print one hash).
    #[test]
    fn a_trace_read_back_hashes_the_same() {
        let mut t = sample();
        t.header.options = serde_json::json!({"rate": 0.1 + 0.2, "per_min": 1.0 / 3.0, "tiny": 2.5e-300, "big": 1.7976931348623157e308});
        for _ in 0..3 {
            let back = Trace::from_jsonl(&t.to_jsonl()).unwrap();
            assert_eq!(back.to_jsonl(), t.to_jsonl());
            assert_eq!(back.hash(), t.hash());
            t = back;
        }
    }

    #[test]
    fn events_only_divergence_ignores_the_header() {
        let a = sample();
        let mut b = sample();
        b.header.mutant = Some("elector-runs-once".into());
        assert_eq!(first_divergence(&a, &b, 2).unwrap().line, 0);
        assert_eq!(first_event_divergence(&a, &b, 2), None);
        b.events[3].t += 5;
        let d = first_event_divergence(&a, &b, 2).unwrap();
        assert_eq!(d.line, 4, "numbered as in the whole trace (0 = header)");
        assert_eq!(d.before.len(), 2);
    }

    #[test]
    fn canonical_text_is_readable() {
        let lines = sample().canonical_lines();
        assert_eq!(lines[0], r#"# scenario=steady seed=7 mutant=none options={"replicas":3}"#);
        assert_eq!(lines[2], "[    1.500000s] r1/i1    lease_acquired epoch=1");
        assert_eq!(
            lines[3],
            r#"[    1.500100s] store    lease_write applied=true from=r1/i1 lease={"epoch":1,"expires_at_ms":16500,"holder":1,"version":1} op=acquire"#
        );
        assert_eq!(lines[4], r#"[    2.000000s] sim      violation invariant=S2 message="two holders""#);
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = sample();
        assert_eq!(a.hash(), sample().hash());
        assert_eq!(a.hash().len(), 16);
        let mut b = sample();
        b.events[1].t += 1;
        assert_ne!(a.hash(), b.hash());
        // FNV-1a reference values.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn first_divergence_finds_the_first_differing_line() {
        let a = sample();
        assert_eq!(first_divergence(&a, &a, 3), None);
        let mut b = sample();
        b.events[2].kind = EventKind::StoreRead { from: 2 };
        let d = first_divergence(&a, &b, 2).unwrap();
        assert_eq!(d.line, 3);
        assert_eq!(d.before.len(), 2);
        assert!(d.left.unwrap().contains("lease_write"));
        assert!(d.right.unwrap().contains("store_read from=i2"), "an instance no event named");
        let mut c = sample();
        c.events.pop();
        let d = first_divergence(&a, &c, 1).unwrap();
        assert_eq!(d.line, 4);
        assert_eq!(d.right, None);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(Trace::from_jsonl("").is_err());
        assert!(Trace::from_jsonl("not json").is_err());
        let mut text = sample().to_jsonl();
        text.push_str("{\"t\":1,\"node\":\"x\",\"ev\":\"no_such_event\"}\n");
        let err = Trace::from_jsonl(&text).unwrap_err();
        assert_eq!(err.line, 6);
        // States, ops and replies are typed: an unknown one fails the parse
        // instead of defaulting to something.
        for bad in [
            r#"{"t":1,"node":"store","ev":"worker_write","from":1,"op":"insert","id":"w","applied":true,"worker":{"state":"idle","org":"o","owner":1,"epoch":1}}"#,
            r#"{"t":1,"node":"store","ev":"worker_write","from":1,"op":"upsert","id":"w","applied":false}"#,
            r#"{"t":1,"node":"store","ev":"lease_write","from":1,"op":"steal","applied":false}"#,
            r#"{"t":1,"node":"store","ev":"slot_write","from":1,"op":"reserve","worker":"w","result":"Maybe"}"#,
        ] {
            let text = format!("{}{bad}\n", sample().to_jsonl());
            assert_eq!(Trace::from_jsonl(&text).unwrap_err().line, 6, "{bad}");
        }
        let good = r#"{"t":1,"node":"store","ev":"worker_write","from":1,"op":"insert","id":"w","applied":true,"worker":{"state":"hot_idle","org":"o","owner":1,"epoch":1}}"#;
        assert!(Trace::from_jsonl(&format!("{}{good}\n", sample().to_jsonl())).is_ok());
        let wrong_format = text.replacen("\"haywire_trace\":1", "\"haywire_trace\":99", 1);
        assert!(Trace::from_jsonl(&wrong_format).unwrap_err().message.contains("format 99"));
    }
}
