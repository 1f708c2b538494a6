//! Each invariant on short hand-written traces: one that breaks it and one
//! that does not, so a reader sees what every check means.
//!
//! Times are in seconds of simulated time; the bounds in [`params`] are
//! small round numbers, not the defaults.

use super::*;
use haywire_traces::{EventKind as K, JobRow, LeaseOp, LeaseState, Lifecycle as L, SlotOp, SlotReply, WorkerOp, WorkerRow};

const S: u64 = 1_000_000;

/// Bounds for the fleet's checks; L1's are out of the way (see
/// [`lease_params`]) so each test is about the invariant it names.
fn params() -> OracleParams {
    OracleParams {
        takeover_us: 10_000 * S,
        contend_us: 10_000 * S,
        enforce_s2: true,
        fleet: FleetParams {
            org_cap: 2,
            global_cap: 3,
            ttl_us: 60 * S,
            reap_us: 10 * S,
            dead_after_us: 45 * S,
            dead_threshold_us: 30 * S,
            heartbeat_us: 15 * S,
            stale_spawn_us: 600 * S,
            min_hot_idle: 1,
            slack_us: 2 * S,
            quick_us: S / 2,
            max_pause_us: S,
            drift_beyond: vec![false; 3],
            orphan_min_age_us: 30 * S,
            orphan_pass_us: 0,
            headroom_nodes: 0,
            health_bound_us: 5 * S,
            resume_window_us: 30 * S,
            client_timeout_us: 60 * S,
            drain_bound_us: 20 * S,
            reconnect_us: 50 * S,
            reply_flight_us: S / 100,
        },
        cron: CronParams {
            enabled: true,
            reconcile_us: 15 * S,
            misfire_us: 5 * S,
            run_timeout_us: 20 * S,
            cap: Some(2),
            due_us: 60 * S,
            owner_us: 50 * S,
            edit_us: 20 * S,
            handoff_us: 5 * S,
            settings_us: 35 * S,
            estimate_ms: 50,
        },
    }
}

/// A run fed event by event. Instances in `beating` heartbeat every 10 s,
/// and `leader` renews its lease every 5 s, as time passes.
struct Run {
    o: Oracle,
    beating: Vec<u64>,
    leader: Option<(u64, u64)>,
    next_beat: f64,
    next_renew: f64,
    version: u64,
}

/// L1's own bounds: a free lease is taken within 3 s, a non-holder asks
/// the store every 5 s.
fn lease_params() -> OracleParams {
    OracleParams { takeover_us: 3 * S, contend_us: 5 * S, ..params() }
}

impl Run {
    fn new() -> Run {
        Run::with(params())
    }

    fn with(p: OracleParams) -> Run {
        Run { o: Oracle::new(p, 3), beating: Vec::new(), leader: None, next_beat: 10.0, next_renew: 5.0, version: 100 }
    }

    /// The keep-alive events due before `t`.
    fn advance(&mut self, t: f64) -> Option<Violation> {
        loop {
            let (beat, renew) = (self.next_beat, self.next_renew);
            let next = if self.leader.is_some() { beat.min(renew) } else { beat };
            if next >= t {
                return None;
            }
            let us = (next * S as f64) as u64;
            let mut events = Vec::new();
            if next == beat {
                self.next_beat += 10.0;
                events.extend(self.beating.iter().map(|&i| K::InstanceHeartbeat { from: i }));
            } else if let Some((inst, epoch)) = self.leader {
                self.next_renew += 5.0;
                self.version += 1;
                let expires_at_ms = (next * 1000.0) as u64 + 15_000;
                let lease = LeaseState { holder: Some(inst), epoch, expires_at_ms, version: self.version };
                events.push(K::LeaseWrite {
                    from: inst,
                    op: LeaseOp::Renew,
                    applied: true,
                    reject: None,
                    lease: Some(lease),
                    reply_lost: false,
                });
            }
            for kind in events {
                if let Some(v) = self.o.observe(&Event { t: us, node: "store".into(), inst: None, kind }) {
                    return Some(v);
                }
            }
        }
    }

    /// Feed one event at `t` seconds (after the keep-alives due before it);
    /// the violation it causes, if any.
    fn at(&mut self, t: f64, node: &str, inst: Option<u64>, kind: K) -> Option<Violation> {
        if let Some(v) = self.advance(t) {
            return Some(v);
        }
        let e = Event { t: (t * S as f64) as u64, node: node.into(), inst, kind };
        self.o.observe(&e)
    }

    /// Feed an event that must be fine.
    fn ok(&mut self, t: f64, node: &str, inst: Option<u64>, kind: K) {
        if let Some(v) = self.at(t, node, inst, kind) {
            panic!("unexpected violation at {t}s: {v:?}");
        }
    }

    fn sim(&mut self, t: f64, kind: K) {
        self.ok(t, "sim", None, kind)
    }

    fn store(&mut self, t: f64, kind: K) {
        self.ok(t, "store", None, kind)
    }

    fn tick(&mut self, t: f64) -> Option<Violation> {
        self.advance(t).or_else(|| self.o.check_time((t * S as f64) as u64))
    }

    /// Ticks every 100 ms from `from` to `to`: the first violation.
    fn ticks(&mut self, from: f64, to: f64) -> Option<Violation> {
        let mut t = from;
        while t <= to {
            if let Some(v) = self.tick(t) {
                return Some(v);
            }
            t += 0.1;
        }
        None
    }

    fn finish(&mut self, t: f64) -> Option<Violation> {
        self.o.finish((t * S as f64) as u64)
    }

    /// Replica `r<i>` starts as instance `inst` and registers.
    fn start(&mut self, t: f64, i: usize, inst: u64) {
        self.ok(t, &format!("r{i}"), Some(inst), K::Started);
        self.store(t, K::InstanceRegistered { from: inst });
    }

    /// `inst` acquires (or renews) the lease at `epoch`, expiring at `exp` s.
    fn lease(&mut self, t: f64, inst: u64, op: LeaseOp, epoch: u64, exp: f64, version: u64) {
        let lease = LeaseState { holder: Some(inst), epoch, expires_at_ms: (exp * 1000.0) as u64, version };
        self.store(t, K::LeaseWrite { from: inst, op, applied: true, reject: None, lease: Some(lease), reply_lost: false });
    }

    fn write(&mut self, t: f64, w: Write) -> Option<Violation> {
        self.at(t, "store", None, w.event())
    }
}

/// A worker write the store applied.
struct Write {
    from: u64,
    op: WorkerOp,
    id: &'static str,
    as_: Option<(u64, u64)>,
    fence: Option<u64>,
    row: WorkerRow,
}

impl Write {
    fn event(self) -> K {
        K::WorkerWrite {
            from: self.from,
            op: self.op,
            id: self.id.into(),
            applied: true,
            as_owner: self.as_.map(|a| a.0),
            as_epoch: self.as_.map(|a| a.1),
            fence: self.fence,
            reject: None,
            worker: Some(self.row),
            reply_lost: false,
        }
    }
}

fn row(state: L, org: &str, owner: u64, epoch: u64, session: Option<u64>) -> WorkerRow {
    WorkerRow { state, org: org.into(), owner, epoch, session }
}

fn insert(from: u64, id: &'static str, org: &str, session: Option<u64>) -> Write {
    Write { from, op: WorkerOp::Insert, id, as_: None, fence: None, row: row(L::Spawning, org, from, 1, session) }
}

fn update(from: u64, id: &'static str, epoch: u64, state: L, session: Option<u64>) -> Write {
    Write { from, op: WorkerOp::Update, id, as_: Some((from, epoch)), fence: None, row: row(state, "o", from, epoch, session) }
}

/// `from` claims `id` from (`owner`, `epoch`), landing it in `state`.
fn claim(from: u64, id: &'static str, owner: u64, epoch: u64, state: L) -> Write {
    Write { from, op: WorkerOp::Claim, id, as_: Some((owner, epoch)), fence: None, row: row(state, "o", from, epoch + 1, None) }
}

/// r1/i1 leads; worker `w1.1` of org `o` is spawned by i1 for session 1 of
/// client c1, made hot and handed over at 5 s.
fn serving() -> Run {
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.start(0.0, 2, 2);
    r.lease(0.1, 1, LeaseOp::Acquire, 1, 15.0, 1);
    // Both keep heartbeating and i1 keeps leading.
    r.beating = vec![1, 2];
    r.leader = Some((1, 1));
    r.ok(1.0, "c1", None, K::SessionRequested { session: 1, org: "o".into(), replica: "r1".into() });
    r.store(1.1, K::SlotWrite {
        from: 1,
        op: SlotOp::Reserve,
        worker: "w1.1".into(),
        org: Some("o".into()),
        result: SlotReply::Reserved,
        fence: None,
        reply_lost: false,
    });
    assert_eq!(r.write(1.2, insert(1, "w1.1", "o", Some(1))), None);
    r.ok(1.3, "cluster", None, K::SecretCreated { from: 1, name: "secret-w1.1".into(), gated: None });
    r.ok(1.4, "cluster", None, K::PodCreated { from: 1, name: "pod-w1.1".into(), start_ms: 500, placeholder: false, gated: None });
    assert_eq!(r.write(1.5, update(1, "w1.1", 1, L::Activating, Some(1))), None);
    assert_eq!(r.write(4.9, update(1, "w1.1", 1, L::Hot, Some(1))), None);
    r.ok(5.0, "c1", None, K::SessionStarted { session: 1, worker: "w1.1".into() });
    r
}

/// The owner retires `id`: drained at `t`, its pod and secret deleted,
/// retired, its slot freed.
fn retire(r: &mut Run, t: f64, id: &'static str) {
    assert_eq!(r.write(t, update(1, id, 1, L::Draining, None)), None);
    r.ok(t + 0.05, "cluster", None, K::PodDeleted { from: 1, name: format!("pod-{id}"), gated: None });
    r.ok(t + 0.1, "cluster", None, K::SecretDeleted { from: 1, name: format!("secret-{id}"), gated: None });
    retire_row(r, t + 0.2, id);
}

/// The row retired and its slot freed, its pod and secret left as they are.
fn retire_row(r: &mut Run, t: f64, id: &'static str) {
    assert_eq!(r.write(t, update(1, id, 1, L::Retired, None)), None);
    let free = K::SlotWrite {
        from: 1,
        op: SlotOp::Free,
        worker: id.into(),
        org: None,
        result: SlotReply::Freed,
        fence: None,
        reply_lost: false,
    };
    r.store(t + 0.1, free);
}

fn inv(v: Option<Violation>) -> &'static str {
    v.map(|v| v.invariant).unwrap_or("none")
}

// --- S1 exclusive effects ---

#[test]
fn s1_effects_land_only_under_the_live_lease() {
    let mut r = serving();
    let effect = |from, epoch, key: &str| K::EffectWrite {
        from,
        epoch,
        key: key.into(),
        applied: true,
        seq: Some(1),
        reject: None,
        reply_lost: false,
    };
    assert_eq!(r.at(2.0, "store", None, effect(1, 1, "a")), None);
    // From a non-holder, at a stale epoch, or after expiry: broken.
    assert_eq!(inv(Run::new().at(1.0, "store", None, effect(1, 1, "b"))), "S1");
    assert_eq!(inv(serving().at(2.0, "store", None, effect(2, 1, "c"))), "S1");
    assert_eq!(inv(serving().at(2.0, "store", None, effect(1, 2, "d"))), "S1");
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.lease(0.1, 1, LeaseOp::Acquire, 1, 15.0, 1);
    assert_eq!(r.at(14.9, "store", None, effect(1, 1, "e")), None);
    assert_eq!(inv(r.at(15.5, "store", None, effect(1, 1, "f"))), "S1");
}

#[test]
fn s1_fenced_writes_and_leader_cluster_calls_land_only_under_the_live_lease() {
    // A fenced worker write from the holder at its epoch: fine.
    let mut r = serving();
    let mut w = update(1, "w1.1", 1, L::Hot, Some(1));
    w.fence = Some(1);
    assert_eq!(r.write(6.0, w), None);
    // The same after the lease moved on: broken.
    let mut r = serving();
    r.lease(16.0, 2, LeaseOp::Acquire, 2, 31.0, 2);
    let mut w = update(1, "w1.1", 1, L::Hot, Some(1));
    w.fence = Some(1);
    assert_eq!(inv(r.write(16.5, w)), "S1");
    // A pod delete sent by a leader task of epoch 1 that lands once i2 holds
    // epoch 2: broken. The same delete from a task that is not leader-gated
    // is no leader effect.
    let mut r = serving();
    r.lease(16.0, 2, LeaseOp::Acquire, 2, 31.0, 2);
    let del = |gated| K::PodDeleted { from: 1, name: "pod-w9.9".into(), gated };
    assert_eq!(r.at(16.1, "cluster", None, del(None)), None);
    assert_eq!(inv(r.at(16.2, "cluster", None, del(Some(1)))), "S1");
    let secret = K::SecretDeleted { from: 2, name: "secret-w9.9".into(), gated: Some(2) };
    assert_eq!(r.at(16.3, "cluster", None, secret), None);
}

// --- S2 no double holder ---

#[test]
fn s2_leader_tasks_of_two_terms_never_overlap() {
    let started = |epoch| K::LoopStarted { name: "janitor".into(), epoch };
    let stopped = |epoch| K::LoopStopped { name: "janitor".into(), epoch };
    let mut r = Run::new();
    r.ok(1.0, "r1", Some(1), started(1));
    // i2 starts leading while i1's task still runs: broken.
    assert_eq!(inv(r.at(2.0, "r2", Some(2), started(2))), "S2");
    // Once i1's task has finished, i2 may lead.
    let mut r = Run::new();
    r.ok(1.0, "r1", Some(1), started(1));
    r.ok(1.5, "r1", Some(1), stopped(1));
    assert_eq!(r.at(2.0, "r2", Some(2), started(2)), None);
    // A process that died took its tasks with it.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "r1", Some(1), started(1));
    r.sim(1.5, K::Crash { target: "r1".into() });
    assert_eq!(r.at(2.0, "r2", Some(2), started(2)), None);
    // Beyond the pause and drift bounds S2 is not promised.
    let mut p = params();
    p.enforce_s2 = false;
    let mut r = Run::with(p);
    r.ok(1.0, "r1", Some(1), started(1));
    assert_eq!(r.at(2.0, "r2", Some(2), started(2)), None);
}

/// The pause bound is judged from the pauses the injector did, not from
/// the options: a plan's long pause (max_pause_us is 1 s here) lifts S2
/// from the moment it outlasts the bound; a pause within it does not.
#[test]
fn s2_is_lifted_by_a_pause_beyond_the_bound_as_it_runs() {
    let started = |epoch| K::LoopStarted { name: "janitor".into(), epoch };
    let pause = || K::Pause { target: "r1".into(), ms: 500 };
    let resume = || K::Resume { target: "r1".into() };
    // A short pause, over: S2 holds.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "r1", Some(1), started(1));
    r.sim(1.2, pause());
    r.sim(1.8, resume());
    assert_eq!(inv(r.at(2.0, "r2", Some(2), started(2))), "S2");
    // Still frozen 3 s on (whatever the fault said it would last): beyond.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "r1", Some(1), started(1));
    r.sim(1.2, pause());
    assert_eq!(r.at(4.2, "r2", Some(2), started(2)), None);
    // A long pause that ended before: beyond, for the rest of the run.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "r1", Some(1), started(1));
    r.sim(1.2, pause());
    r.sim(3.5, resume());
    assert_eq!(r.at(4.0, "r2", Some(2), started(2)), None);
    // Frozen, but not yet beyond the bound: S2 holds.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "r1", Some(1), started(1));
    r.sim(1.2, pause());
    assert_eq!(inv(r.at(1.9, "r2", Some(2), started(2))), "S2");
}

// --- L1 no abandoned lease ---

#[test]
fn l1_a_released_lease_is_taken_within_the_takeover_bound() {
    let takeover_only = || OracleParams { contend_us: 10_000 * S, ..lease_params() };
    let mut r = Run::with(takeover_only());
    r.start(0.0, 1, 1);
    r.lease(0.1, 1, LeaseOp::Acquire, 1, 15.0, 1);
    let free = LeaseState { holder: None, epoch: 1, expires_at_ms: 5_000, version: 2 };
    r.store(5.0, K::LeaseWrite { from: 1, op: LeaseOp::Release, applied: true, reject: None, lease: Some(free.clone()), reply_lost: false });
    assert_eq!(r.ticks(5.0, 8.0), None);
    assert_eq!(inv(r.tick(8.2)), "L1");
    // Taken in time: fine.
    let mut r = Run::with(takeover_only());
    r.start(0.0, 1, 1);
    r.lease(0.1, 1, LeaseOp::Acquire, 1, 15.0, 1);
    r.store(5.0, K::LeaseWrite { from: 1, op: LeaseOp::Release, applied: true, reject: None, lease: Some(free), reply_lost: false });
    r.lease(7.0, 1, LeaseOp::Acquire, 2, 22.0, 3);
    assert_eq!(r.ticks(5.0, 12.0), None);
}

#[test]
fn l1_a_healthy_non_holder_keeps_asking_the_store() {
    let mut r = Run::with(lease_params());
    r.start(0.0, 1, 1);
    r.start(0.0, 2, 2);
    r.lease(0.1, 1, LeaseOp::Acquire, 1, 1000.0, 1);
    for k in 1..20 {
        r.store(k as f64 * 2.0, K::StoreRead { from: 2 });
        r.lease(k as f64 * 2.0, 1, LeaseOp::Renew, 1, 1000.0, 1 + k);
    }
    assert_eq!(r.ticks(0.2, 40.0), None);
    // i2 falls silent (an elector that stopped) while nothing stops it.
    assert_eq!(inv(r.ticks(40.1, 46.0)), "L1");
}

// --- S3 fencing and the lifecycle ---

#[test]
fn s3_writes_follow_owner_epoch_and_the_lifecycle() {
    // Stale epoch.
    let mut r = serving();
    assert_eq!(inv(r.write(6.0, update(1, "w1.1", 0, L::HotIdle, None))), "S3");
    // A claim bumps the epoch by exactly one.
    let mut r = serving();
    assert_eq!(r.write(6.0, claim(2, "w1.1", 1, 1, L::Hot)), None);
    let mut r = serving();
    let mut c = claim(2, "w1.1", 1, 1, L::Hot);
    c.row.epoch = 3;
    assert_eq!(inv(r.write(6.0, c)), "S3");
    // The oracle's own lifecycle: hot -> activating is no step.
    let mut r = serving();
    assert_eq!(inv(r.write(6.0, update(1, "w1.1", 1, L::Activating, Some(1)))), "S3");
    // A second insert of one id.
    let mut r = serving();
    assert_eq!(inv(r.write(6.0, insert(1, "w1.1", "o", None))), "S3");
    // A write to a worker never inserted.
    assert_eq!(inv(Run::new().write(1.0, update(1, "w7.7", 1, L::Hot, None))), "S3");
    // An update that changes the owner without a claim.
    let mut r = serving();
    let mut u = update(1, "w1.1", 1, L::Hot, Some(1));
    u.row.owner = 2;
    assert_eq!(inv(r.write(6.0, u)), "S3");
}

#[test]
fn the_lifecycle_table_is_the_designs() {
    use workers::may_become;
    for (a, b) in [(L::Spawning, L::Activating), (L::Activating, L::Hot), (L::Hot, L::HotIdle), (L::HotIdle, L::Hot)] {
        assert!(may_become(a, b), "{a} -> {b}");
    }
    for (a, b) in [(L::HotIdle, L::Draining), (L::Draining, L::Retired), (L::Spawning, L::Retired), (L::Hot, L::Lost)] {
        assert!(may_become(a, b), "{a} -> {b}");
    }
    for (a, b) in [(L::Hot, L::Retired), (L::Draining, L::Hot), (L::Retired, L::Retired), (L::Lost, L::Hot), (L::Spawning, L::Hot)]
    {
        assert!(!may_become(a, b), "{a} -> {b}");
    }
}

// --- S4 caps ---

#[test]
fn s4_live_workers_and_slots_stay_under_the_caps() {
    let mut r = serving();
    assert_eq!(r.write(6.0, insert(1, "w1.2", "o", None)), None);
    // A third live worker in org o (cap 2).
    assert_eq!(inv(r.write(6.1, insert(1, "w1.3", "o", None))), "S4");
    // The fleet cap (3), across orgs.
    let mut r = serving();
    assert_eq!(r.write(6.0, insert(1, "w1.2", "p", None)), None);
    assert_eq!(r.write(6.1, insert(1, "w1.3", "q", None)), None);
    assert_eq!(inv(r.write(6.2, insert(1, "w1.4", "z", None))), "S4");
    // The store's own slot count.
    let mut r = serving();
    let reserve = |w: &str| K::SlotWrite {
        from: 1,
        op: SlotOp::Reserve,
        worker: w.into(),
        org: Some("o".into()),
        result: SlotReply::Reserved,
        fence: None,
        reply_lost: false,
    };
    assert_eq!(r.at(6.0, "store", None, reserve("w1.2")), None);
    assert_eq!(inv(r.at(6.1, "store", None, reserve("w1.3"))), "S4");
}

/// S4 counts each slot in the org holding it now (the model keeps the
/// counts as slots are written): a slot reserved again under another org,
/// or freed, no longer counts where it was.
#[test]
fn s4_counts_each_slot_in_the_org_holding_it_now() {
    let slot = |w: &str, op: SlotOp, org: Option<&str>, result: SlotReply| K::SlotWrite {
        from: 1,
        op,
        worker: w.into(),
        org: org.map(Into::into),
        result,
        fence: None,
        reply_lost: false,
    };
    let reserve = |w: &str, org: &str| slot(w, SlotOp::Reserve, Some(org), SlotReply::Reserved);
    // w1.1 holds one of o's two slots; w1.2 takes the other, then moves to p.
    let mut r = serving();
    assert_eq!(r.at(6.0, "store", None, reserve("w1.2", "o")), None);
    assert_eq!(r.at(6.1, "store", None, reserve("w1.2", "p")), None);
    assert_eq!(r.at(6.2, "store", None, reserve("w1.3", "o")), None);
    // o holds two again (w1.1, w1.3): a third is over its cap.
    assert_eq!(inv(r.at(6.3, "store", None, reserve("w1.4", "o"))), "S4");
    // Freed, a slot leaves its org's count.
    let mut r = serving();
    assert_eq!(r.at(6.0, "store", None, reserve("w1.2", "o")), None);
    assert_eq!(r.at(6.1, "store", None, slot("w1.2", SlotOp::Free, None, SlotReply::Freed)), None);
    assert_eq!(r.at(6.2, "store", None, reserve("w1.3", "o")), None);
}

// --- S5 no live session lost ---

#[test]
fn s5_a_held_worker_is_not_ended_while_its_server_is_up() {
    // Marked lost by a reaper while c1 holds it and i1 is up: broken.
    let mut r = serving();
    assert_eq!(inv(r.write(6.0, claim(2, "w1.1", 1, 1, L::Lost))), "S5");
    // Its pod deleted under the client: broken.
    let mut r = serving();
    assert_eq!(inv(r.at(6.0, "cluster", None, K::PodDeleted { from: 2, name: "pod-w1.1".into(), gated: None })), "S5");
    // Once the server died, its sessions are orphans and may be ended.
    let mut r = serving();
    r.sim(6.0, K::Crash { target: "r1".into() });
    assert_eq!(r.write(40.0, claim(2, "w1.1", 1, 1, L::Lost)), None);
    // After the client is done, the worker may go (here with its owner's
    // shutdown: it is that owner's floor).
    let mut r = serving();
    r.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    assert_eq!(r.write(6.1, update(1, "w1.1", 1, L::HotIdle, None)), None);
    r.sim(69.0, K::ShutdownRequested { target: "r1".into() });
    assert_eq!(r.write(70.0, update(1, "w1.1", 1, L::Draining, None)), None);
    // A server paused beyond its bound cannot fence in time: not promised.
    let mut r = serving();
    r.sim(6.0, K::Pause { target: "r1".into(), ms: 40_000 });
    assert_eq!(r.write(40.0, claim(2, "w1.1", 1, 1, L::Lost)), None);
}

#[test]
fn s5_a_spawn_a_client_waits_for_is_given_up_only_by_its_server() {
    let waiting = || {
        let mut r = Run::new();
        r.start(0.0, 1, 1);
        r.start(0.0, 2, 2);
        r.ok(1.0, "c1", None, K::SessionRequested { session: 1, org: "o".into(), replica: "r1".into() });
        assert_eq!(r.write(1.2, insert(1, "w1.1", "o", Some(1))), None);
        assert_eq!(r.write(1.5, update(1, "w1.1", 1, L::Activating, Some(1))), None);
        r
    };
    // A reaper takes the activation over and retires it: broken.
    let mut r = waiting();
    assert_eq!(inv(r.write(9.0, claim(2, "w1.1", 1, 1, L::Retired))), "S5");
    // The server's own spawn gives up (its client gets an error): fine.
    let mut r = waiting();
    assert_eq!(r.write(9.0, update(1, "w1.1", 1, L::Retired, None)), None);
}

#[test]
fn s5_no_session_starts_on_a_worker_whose_pod_is_long_dead() {
    let mut r = serving();
    r.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    assert_eq!(r.write(6.1, update(1, "w1.1", 1, L::HotIdle, None)), None);
    r.sim(7.0, K::PodDied { name: "pod-w1.1".into() });
    let reuse = |r: &mut Run, t: f64| {
        r.ok(t - 0.2, "c2", None, K::SessionRequested { session: 2, org: "o".into(), replica: "r1".into() });
        assert_eq!(r.write(t - 0.1, update(1, "w1.1", 1, L::Hot, Some(2))), None);
        r.at(t, "c2", None, K::SessionStarted { session: 2, worker: "w1.1".into() })
    };
    // Within the health-check bound (5 s) the pool may not know yet.
    let mut early = serving();
    early.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    assert_eq!(early.write(6.1, update(1, "w1.1", 1, L::HotIdle, None)), None);
    early.sim(7.0, K::PodDied { name: "pod-w1.1".into() });
    assert_eq!(reuse(&mut early, 10.0), None);
    // Past it: broken.
    assert_eq!(inv(reuse(&mut r, 13.0)), "S5");
}

// --- S6 exclusive and isolated ---

#[test]
fn s6_a_session_starts_only_on_its_own_hot_bound_worker() {
    // Another client still holds it.
    let mut r = serving();
    r.ok(6.0, "c2", None, K::SessionRequested { session: 2, org: "o".into(), replica: "r1".into() });
    assert_eq!(inv(r.at(6.5, "c2", None, K::SessionStarted { session: 2, worker: "w1.1".into() })), "S6");
    // A worker of another org.
    let mut r = serving();
    r.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    r.ok(6.1, "c2", None, K::SessionRequested { session: 2, org: "p".into(), replica: "r1".into() });
    assert_eq!(r.write(6.2, update(1, "w1.1", 1, L::Hot, Some(2))), None);
    assert_eq!(inv(r.at(6.3, "c2", None, K::SessionStarted { session: 2, worker: "w1.1".into() })), "S6");
    // A row the store still holds activating (memory said hot).
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "c1", None, K::SessionRequested { session: 1, org: "o".into(), replica: "r1".into() });
    assert_eq!(r.write(1.2, insert(1, "w1.1", "o", Some(1))), None);
    assert_eq!(r.write(1.5, update(1, "w1.1", 1, L::Activating, Some(1))), None);
    assert_eq!(inv(r.at(5.0, "c1", None, K::SessionStarted { session: 1, worker: "w1.1".into() })), "S6");
    // The worker, bound to this session, hot, same org: fine (serving()).
    serving();
}

// --- L3 progress ---

#[test]
fn l3_requests_to_a_healthy_replica_are_answered() {
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "c1", None, K::SessionRequested { session: 1, org: "o".into(), replica: "r1".into() });
    assert_eq!(inv(r.at(40.0, "c1", None, K::SessionTimedOut { session: 1 })), "L3");
    // The store was failing meanwhile: excused.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "c1", None, K::SessionRequested { session: 1, org: "o".into(), replica: "r1".into() });
    r.sim(2.0, K::StoreFaults { fail_pct: 50, lost_reply_pct: 0 });
    r.sim(30.0, K::StoreFaultsHealed);
    assert_eq!(r.at(40.0, "c1", None, K::SessionTimedOut { session: 1 }), None);
    // Still unanswered when the run ends: broken; answered: fine.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.ok(1.0, "c1", None, K::SessionRequested { session: 1, org: "o".into(), replica: "r1".into() });
    r.store(1.5, K::LeaseWrite {
        from: 1,
        op: LeaseOp::Acquire,
        applied: true,
        reject: None,
        lease: Some(LeaseState { holder: Some(1), epoch: 1, expires_at_ms: 999_000, version: 1 }),
        reply_lost: false,
    });
    assert_eq!(inv(r.finish(2.0)), "L3");
    let mut r = serving();
    r.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    r.ok(6.1, "c1", None, K::SessionRequested { session: 2, org: "o".into(), replica: "r1".into() });
    r.ok(6.2, "c1", None, K::SessionRefused { session: 2, error: "at capacity".into() });
    assert_ne!(inv(r.finish(7.0)), "L3");
}

/// A client still holding a worker whose pod died, past the health-check
/// bound, while its replica is up and healthy: broken. Fine if the session
/// ended, and judged again when a pod dies after the hold began or a hold
/// begins on a worker whose pod just died.
#[test]
fn l3_a_session_on_a_dead_pod_is_ended_within_the_health_bound() {
    let mut r = serving();
    r.sim(7.0, K::PodDied { name: "pod-w1.1".into() });
    assert_eq!(inv(r.ticks(7.0, 20.0)), "L3");
    let mut r = serving();
    r.sim(7.0, K::PodDied { name: "pod-w1.1".into() });
    r.ok(8.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    assert_eq!(r.ticks(8.0, 30.0), None);
    // A second client takes hold after the death: still judged once the
    // first lets go.
    let mut r = serving();
    r.sim(7.0, K::PodDied { name: "pod-w1.1".into() });
    r.ok(7.1, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    r.ok(7.15, "c2", None, K::SessionRequested { session: 2, org: "o".into(), replica: "r1".into() });
    assert_eq!(r.write(7.16, update(1, "w1.1", 1, L::Hot, Some(2))), None);
    r.ok(7.2, "c2", None, K::SessionStarted { session: 2, worker: "w1.1".into() });
    assert_eq!(inv(r.ticks(7.2, 20.0)), "L3");
}

// --- L2 no idle leak ---

/// `serving()`, then c1 ends at 6 s and i1 parks the worker; i1 has a
/// newer idle worker w1.2 (its floor), so w1.1 is beyond the floor.
fn idle_beyond_floor() -> Run {
    let mut r = serving();
    r.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    assert_eq!(r.write(6.1, update(1, "w1.1", 1, L::HotIdle, None)), None);
    assert_eq!(r.write(7.0, insert(1, "w1.2", "o", None)), None);
    assert_eq!(r.write(7.1, update(1, "w1.2", 1, L::Activating, None)), None);
    assert_eq!(r.write(7.2, update(1, "w1.2", 1, L::Hot, None)), None);
    assert_eq!(r.write(8.0, update(1, "w1.2", 1, L::HotIdle, None)), None);
    r
}

#[test]
fn l2_an_idle_worker_beyond_the_floor_starts_draining_within_ttl_reap_and_slack() {
    // TTL 60 s from the park at 6.1 s, + 10 s reap + 2 s slack = 78.1 s.
    let mut r = idle_beyond_floor();
    assert_eq!(r.ticks(8.0, 78.0), None);
    assert_eq!(inv(r.tick(78.3)), "L2");
    // Drained in time: fine.
    let mut r = idle_beyond_floor();
    assert_eq!(r.ticks(8.0, 70.0), None);
    retire(&mut r, 70.5, "w1.1");
    assert_eq!(r.ticks(70.9, 100.0), None);
    // The floor (w1.2) may stay, long past its TTL.
    let mut r = idle_beyond_floor();
    retire(&mut r, 70.5, "w1.1");
    assert_eq!(r.ticks(70.9, 200.0), None);
}

#[test]
fn l2_a_grant_after_its_client_gave_up_is_parked_within_the_client_timeout() {
    // c2 asks while i1 is frozen and gives up; i1 wakes and binds w1.1 to
    // that session at 38.6 s. No client holds it: the pool must park it
    // within the client timeout (60 s), and then it has its TTL (60 s):
    // due 38.6 + 60 + 60 + 10 + 2 = 170.6 s, not 78.1 s.
    let abandoned = || {
        let mut r = idle_beyond_floor();
        r.sim(8.5, K::Pause { target: "r1".into(), ms: 30_000 });
        r.ok(9.0, "c2", None, K::SessionRequested { session: 2, org: "o".into(), replica: "r1".into() });
        r.ok(20.0, "c2", None, K::SessionTimedOut { session: 2 });
        r.sim(38.5, K::Resume { target: "r1".into() });
        assert_eq!(r.write(38.6, update(1, "w1.1", 1, L::Hot, Some(2))), None);
        r
    };
    let mut r = abandoned();
    assert_eq!(r.ticks(38.7, 170.5), None);
    assert_eq!(inv(r.ticks(170.7, 171.0)), "L2");
    // Parked at the client timeout: fine. It is now i1's newest idle
    // worker (its floor, and may stay); w1.2 left the floor and goes.
    let mut r = abandoned();
    assert_eq!(r.ticks(38.7, 98.0), None);
    assert_eq!(r.write(98.6, update(1, "w1.1", 1, L::HotIdle, None)), None);
    retire(&mut r, 105.0, "w1.2");
    assert_eq!(r.ticks(105.4, 250.0), None);
}

#[test]
fn l2_the_deadline_waits_while_no_responsible_reaper_can_act() {
    // i1 is cut off from the store and nobody else leads: excused until it
    // heals at 90 s; due 90 + 10 + 2 s.
    let mut r = idle_beyond_floor();
    r.sim(50.0, K::Partition { target: "r1".into() });
    assert_eq!(r.ticks(8.0, 89.9), None);
    r.sim(90.0, K::PartitionHealed { target: "r1".into() });
    assert_eq!(r.ticks(90.0, 101.9), None);
    assert_eq!(inv(r.ticks(102.0, 103.0)), "L2");
}

#[test]
fn l2_no_reaper_drains_a_young_worker_or_one_in_its_owners_floor() {
    // Younger than the TTL.
    let mut r = idle_beyond_floor();
    assert_eq!(r.ticks(8.0, 30.0), None);
    assert_eq!(inv(r.write(30.0, claim(2, "w1.1", 1, 1, L::Draining))), "L2");
    // The floor (i1's newest idle worker), long past its TTL.
    let mut r = idle_beyond_floor();
    retire(&mut r, 70.0, "w1.1");
    assert_eq!(r.ticks(70.4, 100.0), None);
    assert_eq!(inv(r.write(100.0, claim(2, "w1.2", 1, 1, L::Draining))), "L2");
    // Past its TTL and beyond the floor: fine.
    let mut r = idle_beyond_floor();
    assert_eq!(r.ticks(8.0, 70.0), None);
    assert_eq!(r.write(70.0, claim(2, "w1.1", 1, 1, L::Draining)), None);
    // The owner retiring its own on a graceful shutdown is no reaper.
    let mut r = idle_beyond_floor();
    r.sim(20.0, K::ShutdownRequested { target: "r1".into() });
    assert_eq!(r.write(20.1, update(1, "w1.2", 1, L::Draining, None)), None);
}

#[test]
fn l2_a_drain_ends_and_nothing_is_left_at_the_end() {
    let mut r = idle_beyond_floor();
    assert_eq!(r.write(70.0, update(1, "w1.1", 1, L::Draining, None)), None);
    // Due 70 + 2 reap intervals + slack.
    assert_eq!(r.ticks(70.0, 91.9), None);
    assert_eq!(inv(r.ticks(92.0, 93.0)), "L2");
    // At the end: a pod with no live row (w1.1 retired as its owner shut
    // down).
    let mut r = serving();
    r.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    assert_eq!(r.write(6.1, update(1, "w1.1", 1, L::HotIdle, None)), None);
    r.sim(69.0, K::ShutdownRequested { target: "r1".into() });
    assert_eq!(r.write(70.0, update(1, "w1.1", 1, L::Draining, None)), None);
    assert_eq!(r.write(70.5, update(1, "w1.1", 1, L::Retired, None)), None);
    let freed = K::SlotWrite {
        from: 1,
        op: SlotOp::Free,
        worker: "w1.1".into(),
        org: None,
        result: SlotReply::Freed,
        fence: None,
        reply_lost: false,
    };
    r.store(70.6, freed);
    r.ok(70.7, "cluster", None, K::SecretDeleted { from: 1, name: "secret-w1.1".into(), gated: None });
    let v = r.finish(71.0).expect("the pod outlived its row");
    assert!(v.message.contains("pods = live rows"), "{v:?}");
    r.ok(71.1, "cluster", None, K::PodDeleted { from: 1, name: "pod-w1.1".into(), gated: None });
    assert_eq!(r.finish(71.2), None);
}

#[test]
fn l2_orphan_pods_and_secrets_are_deleted_in_time() {
    // w1.1 retired at 70.5 s with its pod left behind (created at 1.4 s,
    // so old enough): due at 70.5 + 10 + 2 = 82.5 s.
    let orphan = || {
        let mut r = idle_beyond_floor();
        assert_eq!(r.write(70.0, update(1, "w1.1", 1, L::Draining, None)), None);
        retire_row(&mut r, 70.5, "w1.1");
        r.ok(70.6, "cluster", None, K::SecretDeleted { from: 1, name: "secret-w1.1".into(), gated: None });
        r
    };
    let mut r = orphan();
    assert_eq!(r.ticks(70.7, 82.4), None);
    let v = r.ticks(82.5, 83.0).expect("the orphan pod is late");
    assert!(v.message.contains("no orphan pod"), "{v:?}");
    // Deleted in time: fine.
    let mut r = orphan();
    r.ok(80.0, "cluster", None, K::PodDeleted { from: 1, name: "pod-w1.1".into(), gated: Some(1) });
    assert_eq!(r.ticks(80.1, 120.0), None);
    // A cluster that refuses to delete it excuses it until it relents.
    let mut r = orphan();
    r.sim(75.0, K::DeleteRefused { name: "pod-w1.1".into(), ms: 30_000 });
    assert_eq!(r.ticks(75.1, 105.0), None);
    r.sim(105.0, K::DeleteRefusalHealed { name: "pod-w1.1".into() });
    assert_eq!(r.ticks(105.0, 116.9), None);
    assert!(r.ticks(117.0, 118.0).is_some());
    // An orphan secret (its spawn's row ended before the pod) likewise.
    let mut r = idle_beyond_floor();
    assert_eq!(r.write(70.0, update(1, "w1.1", 1, L::Draining, None)), None);
    retire_row(&mut r, 70.5, "w1.1");
    r.ok(70.6, "cluster", None, K::PodDeleted { from: 1, name: "pod-w1.1".into(), gated: None });
    let v = r.ticks(70.7, 83.0).expect("the orphan secret is late");
    assert!(v.message.contains("no orphan secret"), "{v:?}");
}

#[test]
fn l2_a_fault_on_one_kind_of_cluster_call_excuses_only_the_passes_that_need_it() {
    // The orphan secret of l2_orphan_pods_and_secrets_are_deleted_in_time
    // (due 82.5 s), with pod lists failing from 71 s to 100 s: still late.
    let orphan_secret = || {
        let mut r = idle_beyond_floor();
        assert_eq!(r.write(70.0, update(1, "w1.1", 1, L::Draining, None)), None);
        retire_row(&mut r, 70.5, "w1.1");
        r.ok(70.6, "cluster", None, K::PodDeleted { from: 1, name: "pod-w1.1".into(), gated: None });
        r
    };
    let mut r = orphan_secret();
    r.sim(71.0, K::ClusterOpsFault { ops: "pod_lists".into(), slow_ms: 0 });
    let v = r.ticks(71.0, 83.0).expect("a pod-list fault does not excuse a late secret");
    assert!(v.message.contains("no orphan secret"), "{v:?}");
    // Secret lists failing excuse it until they heal (then due 100 + 12).
    let mut r = orphan_secret();
    r.sim(71.0, K::ClusterOpsFault { ops: "secret_lists".into(), slow_ms: 3_000 });
    assert_eq!(r.ticks(71.0, 100.0), None);
    r.sim(100.0, K::ClusterOpsHealed { ops: "secret_lists".into() });
    assert_eq!(r.ticks(100.0, 111.9), None);
    assert_eq!(inv(r.ticks(112.0, 113.0)), "L2");
    // The bound allows for both orphan passes' deadlines (2 x 3 s here).
    let mut r = orphan_secret();
    r.o.params.fleet.orphan_pass_us = 3 * S;
    assert_eq!(r.ticks(70.7, 88.4), None);
    assert_eq!(inv(r.ticks(88.5, 89.0)), "L2");
}

#[test]
fn l2_a_live_owners_orphan_secret_waits_for_its_owner() {
    // i2 (up, not leading) leaves the orphan secret of its w2.1: its own
    // fallback is responsible, so a partition of i2 excuses it, though the
    // janitor (i1) is healthy.
    let setup = || {
        let mut r = serving();
        assert_eq!(r.write(10.0, insert(2, "w2.1", "o", None)), None);
        r.ok(10.1, "cluster", None, K::SecretCreated { from: 2, name: "secret-w2.1".into(), gated: None });
        assert_eq!(r.write(10.2, update(2, "w2.1", 1, L::Retired, None)), None);
        r
    };
    let mut r = setup();
    r.sim(10.3, K::Partition { target: "r2".into() });
    assert_eq!(r.ticks(10.3, 60.0), None);
    r.sim(60.0, K::PartitionHealed { target: "r2".into() });
    assert_eq!(r.ticks(60.0, 71.9), None);
    assert_eq!(inv(r.ticks(72.0, 73.0)), "L2");
    // Healthy all along: due at 10.1 + 30 + 10 + 2.
    let mut r = setup();
    assert_eq!(r.ticks(10.3, 52.0), None);
    assert_eq!(inv(r.ticks(52.2, 53.0)), "L2");
}

// --- H1 constant headroom ---

fn placeholder(r: &mut Run, t: f64, n: u32) {
    let name = format!("headroom-haywire-{n}");
    r.ok(t, "cluster", None, K::PodCreated { from: 1, name, start_ms: 0, placeholder: true, gated: Some(1) });
}

#[test]
fn h1_placeholders_stay_at_the_constant() {
    let with = |n| {
        let mut r = serving();
        r.o.params.fleet.headroom_nodes = n;
        r
    };
    // Two wanted, made at 6 s: fine, to the end; placeholders are no
    // orphans and not workers' pods.
    let mut r = with(2);
    placeholder(&mut r, 6.0, 0);
    placeholder(&mut r, 6.1, 1);
    assert_eq!(r.ticks(6.2, 60.0), None);
    assert!(r.o.m.orphans.is_empty());
    r.ok(60.5, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    retire(&mut r, 61.0, "w1.1");
    assert_eq!(r.finish(62.0), None);
    // None made: off since the first look at 5.1 s, due 10 + 2 s later.
    let mut r = with(2);
    assert_eq!(r.ticks(5.1, 17.0), None);
    assert_eq!(inv(r.ticks(17.2, 18.0)), "H1");
    // One too many (a count that follows demand): broken.
    let one_too_many = || {
        let mut r = with(1);
        placeholder(&mut r, 6.0, 0);
        assert_eq!(r.ticks(6.1, 19.9), None);
        placeholder(&mut r, 20.0, 1);
        r
    };
    let mut r = one_too_many();
    assert_eq!(r.ticks(20.0, 31.9), None);
    assert_eq!(inv(r.ticks(32.1, 33.0)), "H1");
    // A pod-list fault excuses it while on.
    let mut r = one_too_many();
    r.sim(20.5, K::ClusterOpsFault { ops: "pod_lists".into(), slow_ms: 0 });
    assert_eq!(r.ticks(20.6, 60.0), None);
    // At the end, a count off the constant: broken.
    let mut r = with(0);
    placeholder(&mut r, 6.0, 0);
    assert_eq!(inv(r.finish(7.0)), "H1");
}

// --- S5 for objects of awaited workers ---

#[test]
fn s5_an_awaited_workers_secret_is_deleted_only_by_its_own_spawn() {
    // c1 waits for w1.1 (row spawning for session 1, secret made).
    let waiting = || {
        let mut r = Run::new();
        r.start(0.0, 1, 1);
        r.start(0.0, 2, 2);
        r.lease(0.1, 2, LeaseOp::Acquire, 1, 15.0, 1);
        r.ok(1.0, "c1", None, K::SessionRequested { session: 1, org: "o".into(), replica: "r1".into() });
        assert_eq!(r.write(1.2, insert(1, "w1.1", "o", Some(1))), None);
        r.ok(1.3, "cluster", None, K::SecretCreated { from: 1, name: "secret-w1.1".into(), gated: None });
        r
    };
    // Another instance's janitor deletes it: broken.
    let mut r = waiting();
    let v = r.at(1.4, "cluster", None, K::SecretDeleted { from: 2, name: "secret-w1.1".into(), gated: Some(1) });
    assert_eq!(inv(v), "S5");
    // The spawn itself giving up: fine.
    let mut r = waiting();
    assert_eq!(r.at(1.4, "cluster", None, K::SecretDeleted { from: 1, name: "secret-w1.1".into(), gated: None }), None);
    // A session started on a worker whose secret is gone: broken.
    let mut r = waiting();
    r.ok(1.4, "cluster", None, K::SecretDeleted { from: 1, name: "secret-w1.1".into(), gated: None });
    r.ok(1.5, "cluster", None, K::PodCreated { from: 1, name: "pod-w1.1".into(), start_ms: 0, placeholder: false, gated: None });
    assert_eq!(r.write(1.6, update(1, "w1.1", 1, L::Activating, Some(1))), None);
    assert_eq!(r.write(2.0, update(1, "w1.1", 1, L::Hot, Some(1))), None);
    let v = r.at(2.1, "c1", None, K::SessionStarted { session: 1, worker: "w1.1".into() });
    assert!(v.as_ref().is_some_and(|v| v.invariant == "S5" && v.message.contains("no longer exists")), "{v:?}");
}

// --- E1 effects at most once ---

#[test]
fn e1_an_effect_key_commits_once() {
    let mut r = serving();
    let effect = |seq, key: &str| K::EffectWrite {
        from: 1,
        epoch: 1,
        key: key.into(),
        applied: true,
        seq: Some(seq),
        reject: None,
        reply_lost: false,
    };
    assert_eq!(r.at(2.0, "store", None, effect(1, "i1/e1/s1.0")), None);
    assert_eq!(r.at(2.1, "store", None, effect(2, "i1/e1/s1.1")), None);
    // A retry the store answered as a duplicate commits nothing: fine.
    let dup = K::EffectWrite {
        from: 1,
        epoch: 1,
        key: "i1/e1/s1.0".into(),
        applied: false,
        seq: Some(1),
        reject: Some("Duplicate".into()),
        reply_lost: false,
    };
    assert_eq!(r.at(2.2, "store", None, dup), None);
    // Committed again: broken.
    assert_eq!(inv(r.at(2.3, "store", None, effect(3, "i1/e1/s1.0"))), "E1");
}

// --- I1 no false death ---

#[test]
fn i1_a_live_connected_instance_keeps_its_heartbeat() {
    // r1/i1 registered at 0 s and never heartbeats again: due at 30 + 15 +
    // 2 s.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    assert_eq!(r.ticks(0.0, 46.9), None);
    assert_eq!(inv(r.ticks(47.0, 48.0)), "I1");
    // Cut off from the store, it cannot: excused until it heals.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    r.sim(10.0, K::Partition { target: "r1".into() });
    assert_eq!(r.ticks(0.0, 60.0), None);
    r.sim(60.0, K::PartitionHealed { target: "r1".into() });
    assert_eq!(r.ticks(60.0, 106.9), None);
    assert_eq!(inv(r.ticks(107.0, 108.0)), "I1");
    // Heartbeating: fine.
    let mut r = Run::new();
    r.start(0.0, 1, 1);
    for k in 1..10 {
        r.store(k as f64 * 15.0, K::InstanceHeartbeat { from: 1 });
    }
    assert_eq!(r.ticks(0.0, 140.0), None);
}

// --- S7 session continuity, L4 bounded drain ---

/// `from` takes session 1's worker `w1.1` over from (`owner`, `epoch`): the
/// row stays hot and bound to the session.
fn takeover(from: u64, owner: u64, epoch: u64) -> Write {
    Write { from, op: WorkerOp::Claim, id: "w1.1", as_: Some((owner, epoch)), fence: None, row: row(L::Hot, "o", from, epoch + 1, Some(1)) }
}

/// `serving()`, then r1 (i1, serving session 1) crashes at 6 s and c1
/// starts reconnecting through r2.
fn owner_crashed() -> Run {
    let mut r = serving();
    r.sim(6.0, K::Crash { target: "r1".into() });
    r.beating = vec![2];
    r.ok(6.5, "c1", None, K::SessionReconnecting { session: 1, worker: "w1.1".into(), replica: "r2".into() });
    r
}

#[test]
fn s7_a_sessions_worker_is_taken_over_only_from_an_owner_that_gave_it_up() {
    // From a live owner, up and heartbeating: two replicas serve it.
    let mut r = serving();
    assert_eq!(inv(r.write(6.0, takeover(2, 1, 1))), "S7");
    // From a crashed owner; from a draining one: fine.
    let mut r = owner_crashed();
    assert_eq!(r.write(7.0, takeover(2, 1, 1)), None);
    let mut r = serving();
    r.store(6.0, K::InstanceDraining { from: 1 });
    assert_eq!(r.write(7.0, takeover(2, 1, 1)), None);
    // A reaper ending it (lost) is no takeover of the session (S5's).
    let mut r = owner_crashed();
    assert_eq!(r.write(7.0, claim(2, "w1.1", 1, 1, L::Lost)), None);
}

#[test]
fn s7_a_reconnect_resumes_on_its_own_worker_through_one_replica() {
    let resumed = |replica: &str, worker: &str| K::SessionResumed { session: 1, worker: worker.into(), replica: replica.into() };
    // Taken over by i2 on r2, resumed there: fine; a second replica's
    // answer to the same reconnect: two replicas serve it.
    let mut r = owner_crashed();
    assert_eq!(r.write(7.0, takeover(2, 1, 1)), None);
    r.ok(7.1, "c1", None, resumed("r2", "w1.1"));
    assert_eq!(inv(r.at(7.2, "c1", None, resumed("r3", "w1.1"))), "S7");
    // Resumed without the store binding it under the answering instance.
    let mut r = owner_crashed();
    assert_eq!(inv(r.at(7.1, "c1", None, resumed("r2", "w1.1"))), "S7");
    // On another worker than it started on.
    let mut r = owner_crashed();
    assert_eq!(r.write(7.0, takeover(2, 1, 1)), None);
    assert_eq!(inv(r.at(7.1, "c1", None, resumed("r2", "w9.9"))), "S7");
    // Taken over by i2, then what the injector did to r2 (`faults`), then
    // resumed through r2 at 7.1 s.
    let after = |faults: &[(f64, K)]| {
        let mut r = owner_crashed();
        assert_eq!(r.write(7.0, takeover(2, 1, 1)), None);
        for (t, kind) in faults {
            r.sim(*t, kind.clone());
        }
        r.at(7.1, "c1", None, resumed("r2", "w1.1"))
    };
    let stop = || K::ShutdownRequested { target: "r2".into() };
    // By a replica the injector asked to stop (draining).
    assert_eq!(inv(after(&[(7.05, stop())])), "S7");
    // Asked to stop while its answer may still have been in flight (the
    // params allow 10 ms): given before the request, fine.
    assert_eq!(after(&[(7.095, stop())]), None);
    // Its replica went down while the answer may still have been in
    // flight: given while it was up, fine; down before it can have left:
    // not up.
    assert_eq!(after(&[(7.095, K::SelfFenced { target: "r2".into() })]), None);
    assert_eq!(inv(after(&[(7.05, K::Crash { target: "r2".into() })])), "S7");
    // The flight is counted from the first request, not a repeated one.
    assert_eq!(inv(after(&[(7.05, stop()), (7.095, stop())])), "S7");
}

#[test]
fn s7_a_client_gives_up_only_if_the_world_kept_it_from_its_worker() {
    let gave_up = || K::SessionLost { session: 1, worker: "w1.1".into(), error: "gave up reconnecting after 50000ms".into() };
    // Calm throughout, the store kept the worker hot and bound: lost.
    let mut r = owner_crashed();
    assert_eq!(inv(r.at(56.5, "c1", None, gave_up())), "S7");
    // A store fault meanwhile excuses it.
    let mut r = owner_crashed();
    r.sim(10.0, K::StoreFaults { fail_pct: 50, lost_reply_pct: 0 });
    r.sim(20.0, K::StoreFaultsHealed);
    assert_eq!(r.at(56.5, "c1", None, gave_up()), None);
    // So does a worker the store no longer keeps for it.
    let mut r = owner_crashed();
    assert_eq!(r.write(40.0, claim(2, "w1.1", 1, 1, L::Lost)), None);
    assert_eq!(r.at(56.5, "c1", None, gave_up()), None);
}

#[test]
fn s7_the_durable_record_agrees_with_what_the_client_was_told() {
    let ended = || K::SessionLost { session: 1, worker: "w1.1".into(), error: "session ended: worker w1.1 is gone".into() };
    // Told it ended while the store says it goes on under live i2.
    let mut r = owner_crashed();
    assert_eq!(r.write(7.0, takeover(2, 1, 1)), None);
    assert_eq!(inv(r.at(7.5, "c1", None, ended())), "S7");
    // The replica persisted the truth first: fine.
    let mut r = owner_crashed();
    assert_eq!(r.write(7.0, takeover(2, 1, 1)), None);
    assert_eq!(r.write(7.2, update(2, "w1.1", 2, L::Lost, None)), None);
    assert_eq!(r.at(7.5, "c1", None, ended()), None);
    // At the end no row is still bound to a session.
    let mut r = serving();
    r.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    assert_eq!(inv(r.finish(6.5)), "S7");
    let mut r = serving();
    r.ok(6.0, "c1", None, K::SessionEnded { session: 1, worker: "w1.1".into() });
    assert_eq!(r.write(6.1, update(1, "w1.1", 1, L::HotIdle, None)), None);
    assert_eq!(inv(r.finish(6.5)), "none");
}

#[test]
fn l4_a_drain_ends_within_its_bound() {
    // Asked to stop at 6 s, still up past 6 + 20 s.
    let mut r = serving();
    r.sim(6.0, K::ShutdownRequested { target: "r1".into() });
    assert_eq!(inv(r.ticks(6.0, 27.0)), "L4");
    // Exited in time.
    let mut r = serving();
    r.sim(6.0, K::ShutdownRequested { target: "r1".into() });
    r.sim(20.0, K::Exited { target: "r1".into(), graceful: true });
    assert_eq!(r.ticks(6.0, 40.0), None);
    // A pause during the drain excuses it.
    let mut r = serving();
    r.sim(6.0, K::ShutdownRequested { target: "r1".into() });
    r.sim(7.0, K::Pause { target: "r1".into(), ms: 500 });
    r.sim(7.5, K::Resume { target: "r1".into() });
    assert_eq!(r.ticks(6.0, 40.0).map(|v| v.invariant).filter(|i| *i == "L4"), None);
}

// --- C1–C5 cron coordination ---

fn jrow(every_ms: u64, status: &str, owner: Option<u64>, epoch: u64, since_ms: u64, spec: u64) -> JobRow {
    JobRow { schedule: format!("every {every_ms}ms"), every_ms: Some(every_ms), status: status.into(), owner, epoch, since_ms, spec }
}

fn job(from: u64, op: &str, row: JobRow, as_owner: Option<u64>) -> K {
    let as_epoch = (op == "claim").then_some(row.epoch.saturating_sub(1));
    K::JobWrite { from, op: op.into(), id: "j1".into(), applied: true, reject: None, job: Some(row), as_owner, as_epoch, reply_lost: false }
}

fn fire(from: u64, slot_ms: u64, kind: &str, epoch: u64) -> K {
    K::FireWrite {
        from,
        job: "j1".into(),
        slot_ms,
        kind: kind.into(),
        result: "committed".into(),
        as_owner: Some(from),
        as_epoch: epoch,
        deadline_ms: (kind == "run").then_some(slot_ms + 25_000),
        reply_lost: false,
    }
}

fn finished(slot_ms: u64) -> K {
    K::FireFinished { from: 1, job: "j1".into(), slot_ms }
}

fn started(slot_ms: u64) -> K {
    K::RunStarted { job: "j1".into(), slot_ms }
}

/// Two replicas; j1 every 10 s since 0, owned by i1 at epoch 1.
fn cron_world() -> Run {
    cron_world_with(params())
}

fn cron_world_with(p: OracleParams) -> Run {
    let mut r = Run::with(p);
    r.start(0.0, 1, 1);
    r.start(0.0, 2, 2);
    r.beating = vec![1, 2];
    r.store(0.1, job(0, "create", jrow(10_000, "active", None, 0, 0, 1), None));
    r.store(0.2, job(1, "claim", jrow(10_000, "active", Some(1), 1, 0, 1), None));
    r
}

#[test]
fn c1_a_slot_runs_once_after_its_own_record() {
    let mut r = cron_world();
    assert_eq!(inv(r.at(10.0, "r1", Some(1), started(10_000))), "C1", "no record yet");
    let mut r = cron_world();
    r.store(10.0, fire(1, 10_000, "run", 1));
    r.ok(10.01, "r1", Some(1), started(10_000));
    assert_eq!(inv(r.at(10.5, "r2", Some(2), started(10_000))), "C1", "a second run");
    assert_eq!(inv(r.at(20.0, "store", None, fire(2, 20_000, "run", 1))), "C1", "i2 is not the owner");
    assert_eq!(inv(r.at(20.0, "store", None, fire(1, 10_000, "missed", 1))), "C1", "a second record");
}

#[test]
fn c2_slots_settle_in_time_never_early_and_missed_only_when_late() {
    let mut r = cron_world();
    assert_eq!(inv(r.at(9.0, "store", None, fire(1, 10_000, "run", 1))), "C2", "early");
    let mut r = cron_world();
    assert_eq!(inv(r.at(11.0, "store", None, fire(1, 10_000, "missed", 1))), "C2", "missed while on time");
    let mut r = cron_world();
    r.store(16.0, fire(1, 10_000, "missed", 1));
    // Slot 20 s never settles: due by 20 + 60 s.
    assert_eq!(inv(r.ticks(16.0, 81.0)), "C2");
    let mut r = cron_world();
    for k in 1..=8u64 {
        r.store(k as f64 * 10.0 + 0.01, fire(1, k * 10_000, "run", 1));
        r.store(k as f64 * 10.0 + 0.02, finished(k * 10_000));
    }
    assert_eq!(r.ticks(0.5, 80.0), None);
}

#[test]
fn c3_jobs_move_only_from_the_gone_and_never_stay_ownerless() {
    let mut r = cron_world();
    assert_eq!(inv(r.at(5.0, "store", None, job(2, "claim", jrow(10_000, "active", Some(2), 2, 0, 1), Some(1)))), "C3");
    let mut r = cron_world();
    r.sim(3.0, K::Crash { target: "r1".into() });
    r.beating = vec![2];
    r.store(5.0, job(2, "claim", jrow(10_000, "active", Some(2), 2, 0, 1), Some(1)));
    // Released by its owner and claimed by nobody.
    let mut r = cron_world();
    r.store(1.0, job(1, "claim", jrow(10_000, "paused", None, 2, 0, 1), Some(1)));
    assert_eq!(inv(r.ticks(1.0, 52.0)), "C3");
    // A graceful stop that keeps its jobs.
    let mut r = cron_world();
    r.sim(2.0, K::ShutdownRequested { target: "r1".into() });
    assert_eq!(inv(r.at(3.0, "sim", None, K::Exited { target: "r1".into(), graceful: true })), "C3");
    let mut r = cron_world();
    r.sim(2.0, K::ShutdownRequested { target: "r1".into() });
    r.store(2.1, job(1, "claim", jrow(10_000, "active", None, 2, 0, 1), Some(1)));
    assert_eq!(r.at(3.0, "sim", None, K::Exited { target: "r1".into(), graceful: true }), None);
}

#[test]
fn c4_pauses_edits_the_cap_and_the_timeout_are_obeyed() {
    let mut r = cron_world();
    r.store(5.0, job(0, "edit", jrow(10_000, "paused", Some(1), 1, 5_000, 2), None));
    assert_eq!(inv(r.at(15.0, "store", None, fire(1, 15_000, "run", 1))), "C4", "paused");
    // Edited to every 7 s at 12 s: old slot 20 is fine at once, 50 is not.
    let mut r = cron_world();
    r.store(10.0, fire(1, 10_000, "run", 1));
    r.store(10.1, finished(10_000));
    r.store(12.0, job(0, "edit", jrow(7_000, "active", Some(1), 1, 12_000, 2), None));
    r.store(19.0, fire(1, 19_000, "run", 1));
    r.store(19.1, finished(19_000));
    r.store(20.0, fire(1, 20_000, "run", 1));
    r.store(20.1, finished(20_000));
    assert_eq!(inv(r.at(50.0, "store", None, fire(1, 50_000, "run", 1))), "C4", "the old schedule, past the bound");
    // Three runs at once against a cap of two: the store freed the first
    // run's place (finished) while it still runs.
    let mut r = cron_world();
    for k in 1..=3u64 {
        r.store(k as f64 * 10.0, fire(1, k * 10_000, "run", 1));
        let v = r.at(k as f64 * 10.0 + 0.01, "r1", Some(1), started(k * 10_000));
        if k == 1 {
            r.store(10.5, finished(10_000));
        }
        if k < 3 {
            assert_eq!(v, None);
        } else {
            assert_eq!(inv(v), "C4", "the third concurrent run");
        }
    }
    // Likewise a run past its record's hold (25 s) on a replica whose clock
    // drifts beyond its bound: not counted. Within its hold (the store
    // freed its place early, by a finish) it is.
    for (drifts, third_at, expect) in [(true, 35.5, None), (false, 35.5, Some("C4")), (true, 33.0, Some("C4"))] {
        let mut p = params();
        p.fleet.drift_beyond = vec![drifts, false, false];
        let mut r = cron_world_with(p);
        r.store(10.0, fire(1, 10_000, "run", 1));
        r.ok(10.01, "r1", Some(1), started(10_000));
        r.store(20.0, fire(1, 20_000, "run", 1));
        r.ok(20.01, "r1", Some(1), started(20_000));
        if third_at < 35.0 {
            r.store(30.0, finished(10_000));
        }
        r.store(third_at - 0.01, fire(1, 30_000, "run", 1));
        let v = r.at(third_at, "r1", Some(1), started(30_000));
        assert_eq!(v.map(|v| v.invariant), expect, "drifts {drifts}, third run at {third_at}");
    }
    // The store itself never commits a run past the cap.
    let mut r = cron_world();
    r.store(10.0, fire(1, 10_000, "run", 1));
    r.store(20.0, fire(1, 20_000, "run", 1));
    assert_eq!(inv(r.at(30.0, "store", None, fire(1, 30_000, "run", 1))), "C4");
    // A run past its timeout.
    let mut r = cron_world();
    r.store(10.0, fire(1, 10_000, "run", 1));
    r.ok(10.01, "r1", Some(1), started(10_000));
    let end = K::RunEnded { job: "j1".into(), slot_ms: 10_000, how: "done".into() };
    assert_eq!(inv(r.at(33.0, "r1", Some(1), end)), "C4");
}

#[test]
fn c5_settings_converge_and_never_go_back() {
    let served = |v: Option<u64>| K::SettingsServed { replica: "r1".into(), version: v };
    let mut r = cron_world();
    r.store(1.0, K::SettingsWrite { from: 0, version: 1 });
    r.store(2.0, K::SettingsWrite { from: 0, version: 2 });
    r.sim(3.0, served(Some(2)));
    assert_eq!(inv(r.at(4.0, "sim", None, served(Some(1)))), "C5", "older than served");
    let mut r = cron_world();
    r.store(1.0, K::SettingsWrite { from: 0, version: 1 });
    r.sim(30.0, served(None));
    assert_eq!(inv(r.at(37.0, "sim", None, served(None))), "C5", "not served a poll after");
    let mut r = cron_world();
    r.store(1.0, K::SettingsWrite { from: 0, version: 1 });
    r.sim(20.0, K::Partition { target: "r1".into() });
    r.sim(30.0, K::PartitionHealed { target: "r1".into() });
    assert_eq!(r.at(40.0, "sim", None, served(None)), None, "cut off: the bound starts at the heal");
}
