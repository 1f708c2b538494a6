//! The worker fleet (instances, slots, workers), on every backend.

use super::*;

/// docs/design.md §2.6: the store never revives a dead instance. With a
/// threshold, a heartbeat or registration of an instance already dead by it
/// is refused and changes nothing; a live one is stamped; without one it is
/// the plain upsert.
pub(super) fn dead_instances_are_not_revived<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert!(b.register_instance(id(1), Some(30), 10).unwrap());
    assert!(b.heartbeat_instance(id(1), Some(30), 39).unwrap(), "29 ms old: alive");
    assert_eq!(b.list_instances().unwrap(), vec![inst(1, 10, 39)]);
    assert!(!b.heartbeat_instance(id(1), Some(30), 69).unwrap(), "30 ms old: dead");
    assert!(!b.register_instance(id(1), Some(30), 70).unwrap());
    assert_eq!(b.list_instances().unwrap(), vec![inst(1, 10, 39)], "a refused heartbeat changes nothing");
    // An unknown instance is registered, whatever the threshold.
    assert!(b.heartbeat_instance(id(2), Some(30), 100).unwrap());
    // The plain upsert (no threshold) revives: what the zombie mutant sends.
    assert!(b.heartbeat_instance(id(1), None, 100).unwrap());
    assert_eq!(b.list_instances().unwrap(), vec![inst(1, 10, 100), inst(2, 100, 100)]);
}

/// docs/design.md §2.5: a stopping instance is marked draining; the mark
/// stays through its heartbeats, marking again is a no-op, and a dead or
/// unknown instance is refused (it has nothing to hand over).
pub(super) fn draining_is_marked_once_and_kept<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert!(!b.drain_instance(id(1), Some(30), 5).unwrap(), "unknown: refused");
    assert_eq!(b.list_instances().unwrap(), vec![], "a refused drain creates nothing");
    b.register_instance(id(1), Some(30), 10).unwrap();
    b.register_instance(id(2), Some(30), 10).unwrap();
    assert!(b.drain_instance(id(1), Some(30), 20).unwrap());
    assert!(b.drain_instance(id(1), Some(30), 21).unwrap(), "again: a no-op that succeeds");
    let draining = InstanceRecord { draining: true, ..inst(1, 10, 10) };
    assert_eq!(b.list_instances().unwrap(), vec![draining.clone(), inst(2, 10, 10)]);
    assert!(b.heartbeat_instance(id(1), Some(30), 25).unwrap());
    assert_eq!(b.list_instances().unwrap()[0], InstanceRecord { heartbeat_at: 25, ..draining }, "kept through heartbeats");
    assert!(!b.drain_instance(id(2), Some(30), 40).unwrap(), "dead: refused");
    assert!(!b.list_instances().unwrap()[1].draining);
}

pub(super) fn instances_register_heartbeat_list<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert_eq!(b.list_instances().unwrap(), vec![]);
    b.register_instance(id(2), None, 10).unwrap();
    b.register_instance(id(1), None, 20).unwrap();
    assert_eq!(b.list_instances().unwrap(), vec![inst(1, 20, 20), inst(2, 10, 10)]);
    // A heartbeat advances heartbeat_at and keeps started_at.
    b.heartbeat_instance(id(2), None, 35).unwrap();
    assert_eq!(b.list_instances().unwrap(), vec![inst(1, 20, 20), inst(2, 10, 35)]);
    // Registering again is a refresh: started_at stays the first sighting.
    b.register_instance(id(1), None, 50).unwrap();
    assert_eq!(b.list_instances().unwrap(), vec![inst(1, 20, 50), inst(2, 10, 35)]);
    // A heartbeat of an unknown instance registers it.
    b.heartbeat_instance(id(7), None, 60).unwrap();
    b.heartbeat_instance(id(2), None, 60).unwrap();
    b.heartbeat_instance(id(2), None, 60).unwrap();
    assert_eq!(b.list_instances().unwrap(), vec![inst(1, 20, 50), inst(2, 10, 60), inst(7, 60, 60)]);
    // Instances do not touch the other tables.
    assert_eq!(workers(&mut b), vec![]);
    assert_eq!(slots(&mut b), vec![]);
    assert_eq!(read(&mut b, L), None);
}

pub(super) fn slots_respect_org_and_global_caps<B: StoreBackend>(mk: impl Fn() -> B) {
    use SlotResult::*;
    let mut b = mk();
    assert_eq!(reserve(&mut b, "a1", "a", 2, 3, 0), Reserved);
    assert_eq!(reserve(&mut b, "a2", "a", 2, 3, 1), Reserved);
    assert_eq!(reserve(&mut b, "a3", "a", 2, 3, 2), OrgCap);
    // Exists comes first: even at the org cap, even for another org.
    assert_eq!(reserve(&mut b, "a1", "a", 2, 3, 2), Exists);
    assert_eq!(reserve(&mut b, "a1", "b", 2, 3, 2), Exists);
    // Another org still reserves, until the fleet is full.
    assert_eq!(reserve(&mut b, "b1", "b", 2, 3, 3), Reserved);
    assert_eq!(reserve(&mut b, "b2", "b", 2, 3, 4), GlobalCap);
    assert_eq!(reserve(&mut b, "c1", "c", 2, 3, 4), GlobalCap);
    // OrgCap before GlobalCap when both are hit; Exists before either.
    assert_eq!(reserve(&mut b, "a3", "a", 2, 3, 4), OrgCap);
    assert_eq!(reserve(&mut b, "b1", "b", 2, 3, 4), Exists);
    // The caps are the caller's, per request.
    assert_eq!(reserve(&mut b, "b2", "b", 2, 4, 5), Reserved);
    assert_eq!(reserve(&mut b, "a3", "a", 3, 3, 6), GlobalCap);
    assert_eq!(reserve(&mut b, "z", "z", 0, 100, 6), OrgCap);
    assert_eq!(reserve(&mut b, "z", "z", 100, 0, 6), GlobalCap);
    // A cap already exceeded (a smaller cap than before) refuses too.
    assert_eq!(reserve(&mut b, "a3", "a", 1, 100, 6), OrgCap);
    assert_eq!(reserve(&mut b, "c1", "c", 100, 2, 6), GlobalCap);
    assert_eq!(slots(&mut b), vec![slot("a1", "a", 0), slot("a2", "a", 1), slot("b1", "b", 3), slot("b2", "b", 5)]);
}

pub(super) fn slots_free_and_reserve_again<B: StoreBackend>(mk: impl Fn() -> B) {
    use SlotResult::*;
    let mut b = mk();
    assert_eq!(free(&mut b, "w1", None, 0), NotFound);
    assert_eq!(reserve(&mut b, "w1", "a", 1, 1, 0), Reserved);
    assert_eq!(reserve(&mut b, "w2", "b", 1, 1, 1), GlobalCap);
    assert_eq!(free(&mut b, "w1", None, 5), Freed);
    assert_eq!(free(&mut b, "w1", None, 6), NotFound);
    assert_eq!(free(&mut b, "never", None, 6), NotFound);
    assert_eq!(slots(&mut b), vec![]);
    assert_eq!(reserve(&mut b, "w2", "b", 1, 1, 7), Reserved);
    assert_eq!(reserve(&mut b, "w1", "a", 1, 1, 8), GlobalCap);
    assert_eq!(free(&mut b, "w2", None, 9), Freed);
    // The same worker reserves again, with a fresh reservation time.
    assert_eq!(reserve(&mut b, "w1", "a", 1, 1, 10), Reserved);
    assert_eq!(slots(&mut b), vec![slot("w1", "a", 10)]);
}

pub(super) fn slots_free_is_fenced<B: StoreBackend>(mk: impl Fn() -> B) {
    use SlotResult::*;
    let mut b = mk();
    assert_eq!(reserve(&mut b, "w1", "a", 5, 5, 0), Reserved);
    // No lease at all: the fence fails.
    assert_eq!(free(&mut b, "w1", Some(&fence(1, 1)), 0), Fenced);
    applied(b.acquire_lease(FL, id(1), None, 100, 0));
    let failing = [
        fence(2, 1),                                                       // held by another
        fence(1, 2),                                                       // another epoch
        fence(1, 0),                                                       // a past epoch
        LeaseFence { lease: "elsewhere".into(), holder: id(1), epoch: 1 }, // no such lease
    ];
    for f in &failing {
        assert_eq!(free(&mut b, "w1", Some(f), 10), Fenced, "{f:?}");
    }
    // Expired: expires_at <= now.
    assert_eq!(free(&mut b, "w1", Some(&fence(1, 1)), 100), Fenced);
    // Fenced is decided before NotFound.
    assert_eq!(free(&mut b, "none", Some(&fence(2, 1)), 10), Fenced);
    // Nothing was freed.
    assert_eq!(slots(&mut b), vec![slot("w1", "a", 0)]);
    // A holding fence frees it, once.
    assert_eq!(free(&mut b, "w1", Some(&fence(1, 1)), 99), Freed);
    assert_eq!(free(&mut b, "w1", Some(&fence(1, 1)), 99), NotFound);
    // A released lease fences off its last holder.
    assert_eq!(reserve(&mut b, "w2", "a", 5, 5, 99), Reserved);
    applied(b.release_lease(FL, id(1), 1, 99));
    assert_eq!(free(&mut b, "w2", Some(&fence(1, 1)), 99), Fenced);
    // The next holder's fence, at its own epoch, holds.
    let l = applied(b.acquire_lease(FL, id(2), Some(2), 100, 100));
    assert_eq!(l.epoch, 2);
    assert_eq!(free(&mut b, "w2", Some(&fence(2, 1)), 100), Fenced);
    assert_eq!(slots(&mut b), vec![slot("w2", "a", 99)]);
    assert_eq!(free(&mut b, "w2", Some(&fence(2, 2)), 100), Freed);
    assert_eq!(slots(&mut b), vec![]);
    // Fences never commit effects.
    assert_eq!(b.effects().unwrap(), vec![]);
}

pub(super) fn workers_insert_stamps_times<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let w = WorkerRecord { session: Some(9), ..worker("w1", "acme", S::Spawning, 1, 1) };
    let r = w_applied(b.insert_worker(&w, 42));
    assert_eq!(r, WorkerRecord { created_at: 42, updated_at: 42, idle_since: 42, version: 1, ..w.clone() });
    assert_eq!(workers(&mut b), vec![r.clone()]);
    // Exists: the current row comes back and nothing changes.
    let other = worker("w1", "other", S::Hot, 2, 5);
    assert_eq!(w_rejected(b.insert_worker(&other, 50)), (WorkerReject::Exists, Some(r.clone())));
    assert_eq!(w_rejected(b.insert_worker(&w, 51)), (WorkerReject::Exists, Some(r.clone())));
    // Exists reports the row as it is now, after updates.
    let r2 = w_applied(step_worker(&mut b, "w1", 1, 1, S::Spawning, S::Activating, 60));
    assert_eq!(w_rejected(b.insert_worker(&w, 61)), (WorkerReject::Exists, Some(r2.clone())));
    // Any state, owner and epoch are taken as given.
    let w0 = worker("w0", "other", S::HotIdle, 3, 17);
    let r0 = w_applied(b.insert_worker(&w0, 70));
    assert_eq!(r0, WorkerRecord { created_at: 70, updated_at: 70, idle_since: 70, version: 1, ..w0 });
    assert_eq!(workers(&mut b), vec![r0, r2]);
    // Workers and slots are separate tables.
    assert_eq!(slots(&mut b), vec![]);
}

pub(super) fn worker_lifecycle<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let mut cur = w_applied(b.insert_worker(&worker("w1", "acme", S::Spawning, 1, 1), 0));
    // (from, to, now, session, idle_since after)
    let path = [
        (S::Spawning, S::Activating, 10, None, 0),
        (S::Activating, S::Hot, 20, Some(5), 0),
        (S::Hot, S::HotIdle, 30, None, 30),
        (S::HotIdle, S::Hot, 40, Some(6), 30),
        (S::Hot, S::HotIdle, 50, None, 50),
        (S::HotIdle, S::Draining, 60, None, 50),
        (S::Draining, S::Retired, 70, None, 50),
    ];
    for (k, (from, to, now, session, idle_since)) in path.into_iter().enumerate() {
        let r = w_applied(b.update_worker("w1", id(1), 1, from, to, session, None, now));
        let want = WorkerRecord { state: to, session, updated_at: now, idle_since, version: k as u64 + 2, ..cur };
        assert_eq!(r, want, "{from} -> {to}");
        assert_eq!(workers(&mut b), vec![r.clone()]);
        cur = r;
    }
    assert_eq!((cur.created_at, cur.owner, cur.owner_epoch, cur.version), (0, id(1), 1, 8));
}

pub(super) fn worker_heartbeat_keeps_idle_since<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    w_applied(b.insert_worker(&worker("w1", "acme", S::Spawning, 1, 1), 0));
    w_applied(step_worker(&mut b, "w1", 1, 1, S::Spawning, S::Activating, 10));
    // A heartbeat during a long activation: updated_at and version move.
    for (k, now) in [20u64, 30, 40].into_iter().enumerate() {
        let r = w_applied(step_worker(&mut b, "w1", 1, 1, S::Activating, S::Activating, now));
        assert_eq!((r.state, r.updated_at, r.idle_since, r.version), (S::Activating, now, 0, k as u64 + 3));
    }
    let r = w_applied(b.update_worker("w1", id(1), 1, S::Activating, S::Hot, Some(7), None, 50));
    assert_eq!((r.updated_at, r.idle_since, r.version, r.session), (50, 0, 6, Some(7)));
    let r = w_applied(b.update_worker("w1", id(1), 1, S::Hot, S::Hot, Some(7), None, 55));
    assert_eq!((r.updated_at, r.idle_since, r.version, r.session), (55, 0, 7, Some(7)));
    let r = w_applied(step_worker(&mut b, "w1", 1, 1, S::Hot, S::HotIdle, 60));
    assert_eq!((r.updated_at, r.idle_since, r.version, r.session), (60, 60, 8, None));
    // Staying hot-idle is not entering it: idle_since stays.
    let r = w_applied(step_worker(&mut b, "w1", 1, 1, S::HotIdle, S::HotIdle, 70));
    assert_eq!((r.updated_at, r.idle_since, r.version), (70, 60, 9));
    // A heartbeat binds whatever session it carries.
    let r = w_applied(b.update_worker("w1", id(1), 1, S::HotIdle, S::HotIdle, Some(3), None, 80));
    assert_eq!((r.updated_at, r.idle_since, r.version, r.session), (80, 60, 10, Some(3)));
    assert_eq!(workers(&mut b), vec![r]);
}

pub(super) fn worker_update_rejections<B: StoreBackend>(mk: impl Fn() -> B) {
    use WorkerReject::*;
    let mut b = mk();
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 3, S::Spawning, S::Activating, 0)), (NoWorker, None));
    let r = w_applied(b.insert_worker(&worker("w1", "acme", S::Activating, 1, 3), 0));
    let cur = Some(r.clone());
    assert_eq!(w_rejected(step_worker(&mut b, "nope", 1, 3, S::Activating, S::Hot, 1)), (NoWorker, None));
    // StaleOwner: another owner, or the right owner at another epoch.
    for (owner, epoch) in [(2, 3), (1, 2), (1, 4), (1, 0), (2, 4), (0, 3)] {
        assert_eq!(
            w_rejected(step_worker(&mut b, "w1", owner, epoch, S::Activating, S::Hot, 1)),
            (StaleOwner, cur.clone()),
            "owner {owner} epoch {epoch}"
        );
    }
    // StaleOwner before WrongState and BadTransition.
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 2, 3, S::Spawning, S::Hot, 1)), (StaleOwner, cur.clone()));
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 9, S::Activating, S::Spawning, 1)), (StaleOwner, cur.clone()));
    // WrongState: `from` is not the current state, even for a valid step.
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 3, S::Spawning, S::Activating, 1)), (WrongState, cur.clone()));
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 3, S::Hot, S::HotIdle, 1)), (WrongState, cur.clone()));
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 3, S::Retired, S::Retired, 1)), (WrongState, cur.clone()));
    // WrongState before BadTransition.
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 3, S::Spawning, S::Hot, 1)), (WrongState, cur.clone()));
    // BadTransition: not a lifecycle step.
    for to in [S::HotIdle, S::Draining, S::Spawning] {
        assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 3, S::Activating, to, 1)), (BadTransition, cur.clone()));
    }
    // Nothing changed.
    assert_eq!(workers(&mut b), vec![r]);
    // spawning -> hot skips activation.
    let s = w_applied(b.insert_worker(&worker("w2", "acme", S::Spawning, 1, 1), 2));
    assert_eq!(w_rejected(step_worker(&mut b, "w2", 1, 1, S::Spawning, S::Hot, 3)), (BadTransition, Some(s.clone())));
    assert_eq!(w_rejected(step_worker(&mut b, "w2", 1, 1, S::Spawning, S::Draining, 3)), (BadTransition, Some(s)));
    // Draining never goes back.
    let d = w_applied(b.insert_worker(&worker("w3", "acme", S::Draining, 1, 1), 2));
    for to in [S::Hot, S::HotIdle, S::Activating, S::Spawning] {
        assert_eq!(w_rejected(step_worker(&mut b, "w3", 1, 1, S::Draining, to, 3)), (BadTransition, Some(d.clone())));
    }
}

pub(super) fn terminal_workers_are_final<B: StoreBackend>(mk: impl Fn() -> B) {
    use WorkerReject::*;
    let mut b = mk();
    // Every live state may end as lost; spawning and activating may retire.
    let mut ends = vec![];
    let live = [S::Spawning, S::Activating, S::Hot, S::HotIdle, S::Draining];
    for (k, s) in live.into_iter().enumerate() {
        let wid = format!("lost{k}");
        w_applied(b.insert_worker(&worker(&wid, "o", s, 1, 1), 0));
        ends.push(w_applied(step_worker(&mut b, &wid, 1, 1, s, S::Lost, 10)));
    }
    for (k, s) in [S::Spawning, S::Activating].into_iter().enumerate() {
        let wid = format!("ret{k}");
        w_applied(b.insert_worker(&worker(&wid, "o", s, 1, 1), 0));
        ends.push(w_applied(step_worker(&mut b, &wid, 1, 1, s, S::Retired, 10)));
    }
    let before = workers(&mut b);
    for end in &ends {
        assert_eq!(end.version, 2);
        for to in WorkerState::ALL {
            // Nothing leaves a terminal state, not even a heartbeat.
            assert_eq!(
                w_rejected(step_worker(&mut b, &end.id, 1, 1, end.state, to, 20)),
                (BadTransition, Some(end.clone())),
                "{} -> {to}",
                end.state
            );
        }
        // Nor can a terminal worker be claimed...
        assert_eq!(w_rejected(b.claim_worker(&end.id, id(1), 1, None, id(2), None, 20)), (WrongState, Some(end.clone())));
        // ...though a stale owner learns it is stale first.
        assert_eq!(w_rejected(b.claim_worker(&end.id, id(2), 1, None, id(2), None, 20)), (StaleOwner, Some(end.clone())));
    }
    assert_eq!(workers(&mut b), before);
}

/// A claim conditioned on a state takes the worker only in that state: the
/// race of a reaper that saw it idle and an owner that reused it since
/// (hot_idle -> hot keeps the owner epoch, so the epoch alone cannot tell).
pub(super) fn claim_worker_only_from_the_state_seen<B: StoreBackend>(mk: impl Fn() -> B) {
    use WorkerReject::*;
    let mut b = mk();
    let w = WorkerRecord { session: Some(4), ..worker("w1", "acme", S::Hot, 1, 1) };
    w_applied(b.insert_worker(&w, 0));
    let idle = w_applied(b.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, None, 5));
    // The owner reuses it: same owner, same epoch, now hot.
    let hot = w_applied(b.update_worker("w1", id(1), 1, S::HotIdle, S::Hot, Some(9), None, 6));
    assert_eq!((hot.owner_epoch, idle.owner_epoch), (1, 1));
    // A reaper that saw it hot-idle is refused, and nothing changes.
    assert_eq!(w_rejected(b.claim_worker("w1", id(1), 1, Some(S::HotIdle), id(2), None, 7)), (WrongState, Some(hot.clone())));
    assert_eq!(workers(&mut b), vec![hot.clone()]);
    // Claiming the state it is in, or with no condition, works.
    let c = w_applied(b.claim_worker("w1", id(1), 1, Some(S::Hot), id(2), None, 8));
    assert_eq!((c.owner, c.owner_epoch, c.state, c.session), (id(2), 2, S::Hot, Some(9)));
    let c = w_applied(b.claim_worker("w1", id(2), 2, None, id(3), None, 9));
    assert_eq!((c.owner, c.owner_epoch), (id(3), 3));
}

/// A take-over and its first step in one CAS: the claimed row never sits
/// hot-idle under the reaper's name.
pub(super) fn claim_worker_to_moves_the_state_in_the_same_write<B: StoreBackend>(mk: impl Fn() -> B) {
    use WorkerReject::*;
    let mut b = mk();
    w_applied(b.insert_worker(&worker("w1", "acme", S::Hot, 1, 1), 0));
    let idle = w_applied(b.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, None, 5));
    // A step the lifecycle forbids is refused, after the state check.
    assert_eq!(
        w_rejected(b.claim_worker_to("w1", id(1), 1, Some(S::HotIdle), Some(S::Activating), id(2), None, 6)),
        (BadTransition, Some(idle.clone()))
    );
    assert_eq!(
        w_rejected(b.claim_worker_to("w1", id(1), 1, Some(S::Hot), Some(S::Draining), id(2), None, 6)),
        (WrongState, Some(idle.clone()))
    );
    let c = w_applied(b.claim_worker_to("w1", id(1), 1, Some(S::HotIdle), Some(S::Draining), id(2), None, 7));
    assert_eq!(
        c,
        WorkerRecord { state: S::Draining, owner: id(2), owner_epoch: 2, updated_at: 7, version: idle.version + 1, ..idle.clone() }
    );
    assert_eq!(workers(&mut b), vec![c.clone()]);
    // To lost, with the session cleared.
    let w = WorkerRecord { session: Some(3), ..worker("w2", "acme", S::Hot, 1, 1) };
    w_applied(b.insert_worker(&w, 8));
    let lost = w_applied(b.claim_worker_to("w2", id(1), 1, None, Some(S::Lost), id(2), None, 9));
    assert_eq!((lost.state, lost.session, lost.owner, lost.owner_epoch), (S::Lost, None, id(2), 2));
    // A terminal row is never claimed.
    assert_eq!(w_rejected(b.claim_worker_to("w2", id(2), 2, None, Some(S::Lost), id(3), None, 10)).0, WrongState);
}

/// docs/design.md §2.4: a claim naming an idle floor is judged in its own
/// write over the owner's hot-idle rows as they are then: refused as
/// InFloor (after the other checks, changing nothing) for a worker the
/// floor keeps or not yet past the TTL, applied for one beyond it. Another
/// owner's rows and the owner's busy ones do not count.
pub(super) fn claim_within_floor_judges_the_owners_idle_rows_now<B: StoreBackend>(mk: impl Fn() -> B) {
    use WorkerReject::*;
    let mut b = mk();
    let floor = IdleFloor { keep: 1, ttl_ms: 100 };
    for (wid, owner, at) in [("w1", 1, 10), ("w2", 1, 20), ("x1", 2, 30)] {
        w_applied(b.insert_worker(&worker(wid, "acme", S::Hot, owner, 1), at));
        w_applied(step_worker(&mut b, wid, owner, 1, S::Hot, S::HotIdle, at));
    }
    let claim = |b: &mut B, wid: &str, owner: u64, epoch: u64, now: Millis| {
        b.claim_worker_within_floor(wid, id(owner), epoch, Some(S::HotIdle), Some(S::Draining), id(9), Some(&floor), None, now)
    };
    let before = workers(&mut b);
    let w1 = before[0].clone();
    assert_eq!(w_rejected(claim(&mut b, "w1", 1, 1, 109)), (InFloor, Some(w1.clone())), "not yet past the TTL");
    assert_eq!(w_rejected(claim(&mut b, "w2", 1, 1, 500)).0, InFloor, "the owner's newest: its floor");
    assert_eq!(w_rejected(claim(&mut b, "x1", 2, 1, 500)).0, InFloor, "another owner's floor is its own");
    assert_eq!(w_rejected(claim(&mut b, "w1", 1, 7, 500)).0, StaleOwner, "the usual checks come first");
    assert_eq!(workers(&mut b), before, "a refused claim changes nothing");
    // The newer one is taken for a session: the older is now the floor.
    w_applied(step_worker(&mut b, "w2", 1, 1, S::HotIdle, S::Hot, 500));
    assert_eq!(w_rejected(claim(&mut b, "w1", 1, 1, 500)).0, InFloor);
    // Parked again, it is the floor once more and the older goes.
    w_applied(step_worker(&mut b, "w2", 1, 1, S::Hot, S::HotIdle, 600));
    let c = w_applied(claim(&mut b, "w1", 1, 1, 700));
    assert_eq!(
        c,
        WorkerRecord { state: S::Draining, owner: id(9), owner_epoch: 2, updated_at: 700, version: w1.version + 1, ..w1 }
    );
    // Without a floor, a claim is the plain one.
    let x = w_applied(b.claim_worker_within_floor("x1", id(2), 1, Some(S::HotIdle), None, id(9), None, None, 700));
    assert_eq!((x.state, x.owner), (S::HotIdle, id(9)));
}

pub(super) fn claim_worker_fences_stale_owners<B: StoreBackend>(mk: impl Fn() -> B) {
    use WorkerReject::*;
    let mut b = mk();
    assert_eq!(w_rejected(b.claim_worker("nope", id(1), 1, None, id(2), None, 0)), (NoWorker, None));
    let w = WorkerRecord { session: Some(4), ..worker("w1", "acme", S::Hot, 1, 1) };
    w_applied(b.insert_worker(&w, 0));
    let r0 = w_applied(b.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, Some(4), None, 5));
    let c = w_applied(b.claim_worker("w1", id(1), 1, None, id(2), None, 10));
    // New owner, epoch + 1, updated_at and version move; nothing else does.
    assert_eq!(c, WorkerRecord { owner: id(2), owner_epoch: 2, updated_at: 10, version: 3, ..r0.clone() });
    assert_eq!((c.state, c.idle_since, c.session), (S::HotIdle, 5, Some(4)));
    // The old (owner, epoch) is stale for updates and claims alike...
    let stale = Some(c.clone());
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 1, S::HotIdle, S::Hot, 11)), (StaleOwner, stale.clone()));
    assert_eq!(w_rejected(b.claim_worker("w1", id(1), 1, None, id(1), None, 11)), (StaleOwner, stale.clone()));
    // ...and so are the new owner at the old epoch and the old owner at the new one.
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 2, 1, S::HotIdle, S::Hot, 11)), (StaleOwner, stale.clone()));
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 1, 2, S::HotIdle, S::Hot, 11)), (StaleOwner, stale.clone()));
    // The new owner writes at the new epoch.
    let u = w_applied(b.update_worker("w1", id(2), 2, S::HotIdle, S::Hot, Some(8), None, 20));
    assert_eq!((u.owner, u.owner_epoch, u.version, u.session), (id(2), 2, 4, Some(8)));
    // Re-claiming by the owner itself still bumps the epoch.
    let c = w_applied(b.claim_worker("w1", id(2), 2, None, id(2), None, 30));
    assert_eq!((c.owner, c.owner_epoch, c.version, c.state), (id(2), 3, 5, S::Hot));
    assert_eq!(w_rejected(step_worker(&mut b, "w1", 2, 2, S::Hot, S::Hot, 31)).0, StaleOwner);
    // A chain of claims: the epoch grows by exactly one each time, and every
    // pair seen before is rejected from then on.
    let mut seen = vec![(1u64, 1u64), (2, 2)];
    let (mut owner, mut epoch, mut version) = (2u64, 3u64, 5u64);
    for k in 0..20u64 {
        let next = k % 4 + 1;
        let now = 40 + k;
        let r = w_applied(b.claim_worker("w1", id(owner), epoch, None, id(next), None, now));
        assert_eq!((r.owner, r.owner_epoch, r.version, r.updated_at), (id(next), epoch + 1, version + 1, now));
        assert_eq!((r.state, r.created_at, r.idle_since), (S::Hot, 0, 5));
        seen.push((owner, epoch));
        for &(o, e) in &seen {
            assert_eq!(w_rejected(b.claim_worker("w1", id(o), e, None, id(9), None, now)), (StaleOwner, Some(r.clone())));
            assert_eq!(w_rejected(step_worker(&mut b, "w1", o, e, S::Hot, S::Hot, now)), (StaleOwner, Some(r.clone())));
        }
        (owner, epoch, version) = (next, epoch + 1, version + 1);
    }
    assert_eq!(epoch, 23);
    let last = workers(&mut b);
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].owner, last[0].owner_epoch, last[0].version), (id(owner), epoch, version));
}

pub(super) fn fenced_worker_writes<B: StoreBackend>(mk: impl Fn() -> B) {
    use WorkerReject::*;
    let mut b = mk();
    let r = w_applied(b.insert_worker(&worker("w1", "acme", S::Hot, 1, 1), 0));
    let cur = Some(r.clone());
    // No lease yet: any fence fails.
    let f = fence(9, 1);
    assert_eq!(
        w_rejected(b.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, Some(&f), 0)),
        (Fenced, cur.clone())
    );
    assert_eq!(w_rejected(b.claim_worker("w1", id(1), 1, None, id(2), Some(&f), 0)), (Fenced, cur.clone()));
    applied(b.acquire_lease(FL, id(9), None, 100, 0));
    let holding = fence(9, 1);
    let failing = [
        fence(8, 1),                                             // held by another
        fence(9, 2),                                             // another epoch
        fence(9, 0),                                             // a past epoch
        LeaseFence { lease: L.into(), holder: id(9), epoch: 1 }, // a lease nobody holds
    ];
    for f in &failing {
        assert_eq!(
            w_rejected(b.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, Some(f), 10)),
            (Fenced, cur.clone()),
            "{f:?}"
        );
        assert_eq!(w_rejected(b.claim_worker("w1", id(1), 1, None, id(2), Some(f), 10)), (Fenced, cur.clone()), "{f:?}");
        // Fenced comes before StaleOwner, WrongState and BadTransition.
        assert_eq!(
            w_rejected(b.update_worker("w1", id(5), 7, S::Spawning, S::Hot, None, Some(f), 10)),
            (Fenced, cur.clone())
        );
        assert_eq!(w_rejected(b.claim_worker("w1", id(5), 7, None, id(2), Some(f), 10)), (Fenced, cur.clone()));
        // NoWorker comes before Fenced.
        assert_eq!(
            w_rejected(b.update_worker("nope", id(1), 1, S::Hot, S::HotIdle, None, Some(f), 10)),
            (NoWorker, None)
        );
        assert_eq!(w_rejected(b.claim_worker("nope", id(1), 1, None, id(2), Some(f), 10)), (NoWorker, None));
    }
    // Expired at expires_at.
    assert_eq!(
        w_rejected(b.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, Some(&holding), 100)),
        (Fenced, cur.clone())
    );
    assert_eq!(w_rejected(b.claim_worker("w1", id(1), 1, None, id(2), Some(&holding), 100)), (Fenced, cur.clone()));
    assert_eq!(workers(&mut b), vec![r]);
    // A holding fence lets the write through...
    let u = w_applied(b.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, Some(&holding), 50));
    assert_eq!((u.state, u.version, u.idle_since), (S::HotIdle, 2, 50));
    // ...but does not stand in for the owner check or the state checks.
    assert_eq!(
        w_rejected(b.update_worker("w1", id(9), 1, S::HotIdle, S::Hot, None, Some(&holding), 51)),
        (StaleOwner, Some(u.clone()))
    );
    assert_eq!(
        w_rejected(b.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, Some(&holding), 51)),
        (WrongState, Some(u.clone()))
    );
    let c = w_applied(b.claim_worker("w1", id(1), 1, None, id(2), Some(&holding), 60));
    assert_eq!((c.owner, c.owner_epoch, c.version), (id(2), 2, 3));
    // The lease moves on: the old fence fails, the new one holds.
    applied(b.acquire_lease(FL, id(8), Some(1), 100, 200));
    assert_eq!(
        w_rejected(b.update_worker("w1", id(2), 2, S::HotIdle, S::Hot, None, Some(&holding), 210)),
        (Fenced, Some(c.clone()))
    );
    let u = w_applied(b.update_worker("w1", id(2), 2, S::HotIdle, S::Hot, Some(1), Some(&fence(8, 2)), 210));
    assert_eq!((u.state, u.version, u.session), (S::Hot, 4, Some(1)));
    // Released: no fence holds.
    applied(b.release_lease(FL, id(8), 2, 220));
    assert_eq!(w_rejected(b.claim_worker("w1", id(2), 2, None, id(3), Some(&fence(8, 2)), 220)), (Fenced, Some(u.clone())));
    // Unfenced writes do not look at the lease at all.
    let c = w_applied(b.claim_worker("w1", id(2), 2, None, id(3), None, 230));
    assert_eq!((c.owner, c.owner_epoch, c.version), (id(3), 3, 5));
    assert_eq!(workers(&mut b), vec![c]);
    assert_eq!(b.effects().unwrap(), vec![]);
}

pub(super) fn fleet_lists_are_ordered<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    // Byte-wise string order: uppercase before lowercase, "10" before "9",
    // a prefix before its extensions, non-ASCII after ASCII.
    let ids = ["b", "a", "aa", "B", "10", "9", "é", "z", "", "a\u{0}", "ab", "Z"];
    for (k, wid) in ids.iter().enumerate() {
        w_applied(b.insert_worker(&worker(wid, "o", S::Spawning, 1, 1), k as u64));
        assert_eq!(reserve(&mut b, wid, &format!("org{}", k % 3), 100, 100, k as u64), SlotResult::Reserved);
    }
    let mut sorted: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(workers(&mut b).into_iter().map(|w| w.id).collect::<Vec<_>>(), sorted);
    assert_eq!(slots(&mut b).into_iter().map(|s| s.worker).collect::<Vec<_>>(), sorted);
    // Numeric instance order, across the i64 sign boundary.
    let big = i64::MAX as u64;
    let inst_ids = [5, u64::MAX, 0, big + 1, big, 1, big + 2, 1 << 32];
    for (k, n) in inst_ids.into_iter().enumerate() {
        b.register_instance(id(n), None, k as u64).unwrap();
    }
    let mut want = inst_ids.to_vec();
    want.sort();
    assert_eq!(b.list_instances().unwrap().into_iter().map(|i| i.id.0).collect::<Vec<_>>(), want);
}

/// A replica's own reaper reads its own rows, the rows it minted, its
/// take-overs and the unended rows of owners not alive; and the slots of
/// what it minted or owns. Nothing else, in id order.
pub(super) fn own_scope_lists_what_a_fallback_pass_reads<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    b.register_instance(id(2), None, 0).unwrap();
    b.register_instance(id(1), None, 100).unwrap();
    b.register_instance(id(3), None, 100).unwrap();
    let rows = [
        ("w1.1", 1, S::Hot),
        ("w1.2", 3, S::Hot),
        ("w2.1", 2, S::Hot),
        ("w2.2", 2, S::Retired),
        ("w3.1", 3, S::Hot),
        ("w3.2", 1, S::HotIdle),
        ("w3.3", 3, S::Draining),
        ("w9.1", 9, S::Spawning),
        ("w1", 3, S::Hot),
    ];
    for (wid, owner, state) in rows {
        w_applied(b.insert_worker(&worker(wid, "o", state, owner, 1), 100));
        assert_eq!(reserve(&mut b, wid, "o", 100, 100, 100), SlotResult::Reserved);
    }
    let scope = OwnScope { instance: id(1), minted_prefix: "w1.".into(), ids: vec!["w3.3".into(), "gone".into()], dead_after_ms: 50 };
    let ids = |r: StoreReply| match r {
        StoreReply::Workers { now, list } => (now, list.into_iter().map(|w| w.id).collect::<Vec<_>>()),
        StoreReply::Slots { now, list } => (now, list.into_iter().map(|s| s.worker).collect::<Vec<_>>()),
        other => panic!("{other:?}"),
    };
    let listed = ids(b.apply(&StoreRequest::ListWorkersOf { scope: scope.clone() }, 100).unwrap());
    assert_eq!(listed, (100, vec!["w1.1".into(), "w1.2".into(), "w2.1".into(), "w3.2".into(), "w3.3".into(), "w9.1".into()]));
    let listed = ids(b.apply(&StoreRequest::ListSlotsOf { scope: scope.clone() }, 100).unwrap());
    assert_eq!(listed, (100, vec!["w1.1".to_string(), "w1.2".into(), "w3.2".into()]));
    // Later, 1 and 3 are dead too: every unended row is read.
    let listed = ids(b.apply(&StoreRequest::ListWorkersOf { scope: scope.clone() }, 200).unwrap()).1;
    assert_eq!(listed, ["w1", "w1.1", "w1.2", "w2.1", "w3.1", "w3.2", "w3.3", "w9.1"]);
    // An empty prefix is every id.
    let every = OwnScope { minted_prefix: String::new(), ..scope };
    assert_eq!(ids(b.apply(&StoreRequest::ListSlotsOf { scope: every }, 100).unwrap()).1.len(), rows.len());
}

/// A spawn reads an org's hot-idle rows bound to no session; a reconnect
/// the rows bound to its session. In id order, nothing else.
pub(super) fn idle_and_session_lists<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let mut insert = |wid: &str, org: &str, state, session: Option<u64>| {
        let w = WorkerRecord { session, ..worker(wid, org, state, 1, 1) };
        w_applied(b.insert_worker(&w, 10));
    };
    insert("c", "o", S::HotIdle, None);
    insert("a", "o", S::HotIdle, None);
    insert("b", "o", S::HotIdle, Some(7));
    insert("d", "p", S::HotIdle, None);
    insert("e", "o", S::Hot, Some(7));
    insert("f", "o", S::Retired, None);
    let ids = |r: StoreReply| match r {
        StoreReply::Workers { list, .. } => list.into_iter().map(|w| w.id).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ids(b.apply(&StoreRequest::ListIdleWorkers { org: "o".into() }, 20).unwrap()), ["a", "c"]);
    assert_eq!(ids(b.apply(&StoreRequest::ListIdleWorkers { org: "q".into() }, 20).unwrap()), Vec::<String>::new());
    assert_eq!(ids(b.apply(&StoreRequest::ListSessionWorkers { session: 7 }, 20).unwrap()), ["b", "e"]);
    assert_eq!(ids(b.apply(&StoreRequest::ListSessionWorkers { session: u64::MAX }, 20).unwrap()), Vec::<String>::new());
}

pub(super) fn fleet_u64_values_round_trip<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let big = u64::MAX;
    let past_i64 = i64::MAX as u64 + 1;
    b.register_instance(id(big), None, past_i64).unwrap();
    b.heartbeat_instance(id(big), None, big).unwrap();
    b.register_instance(id(past_i64), None, 0).unwrap();
    assert_eq!(b.list_instances().unwrap(), vec![inst(past_i64, 0, 0), inst(big, past_i64, big)]);
    assert_eq!(reserve(&mut b, "w", "o", u32::MAX, u32::MAX, big), SlotResult::Reserved);
    assert_eq!(slots(&mut b), vec![slot("w", "o", big)]);
    // Owner, epoch, session and times all past i64::MAX.
    let w = WorkerRecord { session: Some(big), ..worker("w", "o", S::Hot, big, i64::MAX as u64) };
    let t0 = big - 100;
    let r = w_applied(b.insert_worker(&w, t0));
    assert_eq!(workers(&mut b), vec![r.clone()]);
    let c = w_applied(b.claim_worker("w", id(big), i64::MAX as u64, None, id(past_i64), None, t0 + 1));
    assert_eq!((c.owner, c.owner_epoch), (id(past_i64), past_i64));
    // A fence whose lease expires at u64::MAX, held by the biggest id.
    applied(b.acquire_lease(FL, id(big), None, 50, big - 50));
    let f = LeaseFence { lease: FL.into(), holder: id(big), epoch: 1 };
    let u =
        w_applied(b.update_worker("w", id(past_i64), past_i64, S::Hot, S::HotIdle, Some(past_i64), Some(&f), big - 1));
    assert_eq!(
        u,
        WorkerRecord {
            state: S::HotIdle,
            owner: id(past_i64),
            owner_epoch: past_i64,
            session: Some(past_i64),
            created_at: t0,
            updated_at: big - 1,
            idle_since: big - 1,
            version: 3,
            ..w.clone()
        }
    );
    assert_eq!(workers(&mut b), vec![u.clone()]);
    // At u64::MAX the lease has expired: fenced.
    assert_eq!(
        w_rejected(b.update_worker("w", id(past_i64), past_i64, S::HotIdle, S::Hot, None, Some(&f), big)),
        (WorkerReject::Fenced, Some(u))
    );
    assert_eq!(free(&mut b, "w", Some(&f), big), SlotResult::Fenced);
    assert_eq!(free(&mut b, "w", Some(&f), big - 1), SlotResult::Freed);
}

/// A claim that would overflow the owner epoch refuses the write, changing
/// nothing (one checked rule for every backend).
pub(super) fn fleet_overflow_is_an_error_not_a_panic<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let r = w_applied(b.insert_worker(&worker("w", "o", S::Hot, 1, u64::MAX), 0));
    assert!(matches!(b.claim_worker("w", id(1), u64::MAX, None, id(2), None, 1), Err(StoreError::Failed(_))));
    assert_eq!(workers(&mut b), vec![r.clone()]);
    // The state-only update does not touch the epoch.
    let u = w_applied(b.update_worker("w", id(1), u64::MAX, S::Hot, S::HotIdle, None, None, 2));
    assert_eq!((u.owner_epoch, u.version), (u64::MAX, 2));
}
