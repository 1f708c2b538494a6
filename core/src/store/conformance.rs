//! The store conformance suite: one set of cases, generic over a backend
//! factory, run against every backend ([`MemStore`], [`SqliteStore`] in
//! memory and on a file), plus SQLite-only cases (durability, schema, WAL,
//! sharing a file) and a property test checking that SQLite agrees with the
//! reference model step by step.

use super::*;
use crate::clock::Millis;
use crate::worker::WorkerState;
use crate::worker::WorkerState as S;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const L: &str = "leader";

fn id(n: u64) -> InstanceId {
    InstanceId(n)
}

fn rec(holder: Option<u64>, epoch: u64, expires_at: u64, version: u64) -> LeaseRecord {
    LeaseRecord { name: L.to_string(), holder: holder.map(InstanceId), epoch, expires_at, version }
}

#[track_caller]
fn applied(r: Result<CasResult, StoreError>) -> LeaseRecord {
    match r {
        Ok(CasResult::Applied(rec)) => rec,
        other => panic!("expected Applied, got {other:?}"),
    }
}

#[track_caller]
fn rejected(r: Result<CasResult, StoreError>) -> (Reject, Option<LeaseRecord>) {
    match r {
        Ok(CasResult::Rejected { reason, current }) => (reason, current),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[track_caller]
fn seq_of(r: Result<EffectResult, StoreError>) -> u64 {
    match r {
        Ok(EffectResult::Applied { seq }) => seq,
        other => panic!("expected an applied effect, got {other:?}"),
    }
}

#[track_caller]
fn fence_reason(r: Result<EffectResult, StoreError>) -> FenceReject {
    match r {
        Ok(EffectResult::Rejected { reason }) => reason,
        other => panic!("expected a rejected effect, got {other:?}"),
    }
}

#[track_caller]
fn read<B: StoreBackend>(b: &mut B, name: &str) -> Option<LeaseRecord> {
    b.read_lease(name).expect("read_lease")
}

// ---------------------------------------------------------------------------
// Temporary database files.

/// A unique path under the temp dir; removes the database and its WAL/SHM
/// side files on drop.
struct TempDb {
    path: PathBuf,
}

impl TempDb {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("haywire-store-{}-{n}-{tag}.sqlite", std::process::id()));
        let db = TempDb { path };
        db.remove();
        db
    }

    fn side_files(&self) -> [PathBuf; 3] {
        let p = self.path.as_os_str();
        let with = |suffix: &str| {
            let mut s = p.to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        [self.path.clone(), with("-wal"), with("-shm")]
    }

    fn remove(&self) {
        for f in self.side_files() {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A file-backed [`SqliteStore`] that owns its temporary file. Fields drop in
/// order: the connection closes before the files are removed.
struct FileStore {
    store: SqliteStore,
    _db: TempDb,
}

impl FileStore {
    fn new(tag: &str) -> Self {
        let db = TempDb::new(tag);
        let store = SqliteStore::open(&db.path).expect("open sqlite file");
        FileStore { store, _db: db }
    }
}

impl StoreBackend for FileStore {
    fn read_lease(&mut self, name: &str) -> Result<Option<LeaseRecord>, StoreError> {
        self.store.read_lease(name)
    }
    fn acquire_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: Option<u64>,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        self.store.acquire_lease(name, holder, expected_version, ttl_ms, now)
    }
    fn renew_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        ttl_ms: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        self.store.renew_lease(name, holder, expected_version, ttl_ms, now)
    }
    fn release_lease(
        &mut self,
        name: &str,
        holder: InstanceId,
        expected_version: u64,
        now: Millis,
    ) -> Result<CasResult, StoreError> {
        self.store.release_lease(name, holder, expected_version, now)
    }
    fn fenced_effect(
        &mut self,
        name: &str,
        holder: InstanceId,
        epoch: u64,
        effect: &str,
        now: Millis,
    ) -> Result<EffectResult, StoreError> {
        self.store.fenced_effect(name, holder, epoch, effect, now)
    }
    fn effects(&mut self) -> Result<Vec<EffectRow>, StoreError> {
        self.store.effects()
    }
    fn register_instance(&mut self, id: InstanceId, dead: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.store.register_instance(id, dead, now)
    }
    fn heartbeat_instance(&mut self, id: InstanceId, dead: Option<u64>, now: Millis) -> Result<bool, StoreError> {
        self.store.heartbeat_instance(id, dead, now)
    }
    fn list_instances(&mut self) -> Result<Vec<InstanceRecord>, StoreError> {
        self.store.list_instances()
    }
    fn reserve_slot(&mut self, w: &str, org: &str, oc: u32, gc: u32, now: Millis) -> Result<SlotResult, StoreError> {
        self.store.reserve_slot(w, org, oc, gc, now)
    }
    fn free_slot(&mut self, w: &str, fence: Option<&LeaseFence>, now: Millis) -> Result<SlotResult, StoreError> {
        self.store.free_slot(w, fence, now)
    }
    fn list_slots(&mut self) -> Result<Vec<SlotRecord>, StoreError> {
        self.store.list_slots()
    }
    fn insert_worker(&mut self, w: &WorkerRecord, now: Millis) -> Result<WorkerCas, StoreError> {
        self.store.insert_worker(w, now)
    }
    fn update_worker(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: WorkerState,
        to: WorkerState,
        session: Option<u64>,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        self.store.update_worker(id, owner, epoch, from, to, session, fence, now)
    }
    fn claim_worker_to(
        &mut self,
        id: &str,
        owner: InstanceId,
        epoch: u64,
        from: Option<WorkerState>,
        to: Option<WorkerState>,
        new_owner: InstanceId,
        fence: Option<&LeaseFence>,
        now: Millis,
    ) -> Result<WorkerCas, StoreError> {
        self.store.claim_worker_to(id, owner, epoch, from, to, new_owner, fence, now)
    }
    fn list_workers(&mut self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.store.list_workers()
    }
}

// ---------------------------------------------------------------------------
// The generic cases. Each takes a factory returning a fresh, empty backend.

fn acquire_free_creates_epoch_one<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert_eq!(read(&mut b, L), None);
    let r = applied(b.acquire_lease(L, id(1), None, 100, 10));
    assert_eq!(r, rec(Some(1), 1, 110, 1));
    assert_eq!(read(&mut b, L), Some(r));
    assert_eq!(b.effects().unwrap(), vec![]);
}

fn acquire_version_must_match<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    // No record yet: only `None` matches.
    assert_eq!(rejected(b.acquire_lease(L, id(1), Some(0), 100, 0)), (Reject::StaleVersion, None));
    assert_eq!(rejected(b.acquire_lease(L, id(1), Some(1), 100, 0)), (Reject::StaleVersion, None));
    assert_eq!(read(&mut b, L), None);
    let r = applied(b.acquire_lease(L, id(1), None, 100, 0));
    // A record exists: `None` is stale, even once it has expired.
    assert_eq!(rejected(b.acquire_lease(L, id(2), None, 100, 500)), (Reject::StaleVersion, Some(r.clone())));
    assert_eq!(rejected(b.acquire_lease(L, id(2), Some(2), 100, 500)), (Reject::StaleVersion, Some(r.clone())));
    assert_eq!(rejected(b.acquire_lease(L, id(2), Some(0), 100, 500)), (Reject::StaleVersion, Some(r.clone())));
    assert_eq!(read(&mut b, L), Some(r));
}

fn acquire_expired_bumps_epoch<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let r1 = applied(b.acquire_lease(L, id(1), None, 100, 0));
    assert_eq!(r1, rec(Some(1), 1, 100, 1));
    // expires_at <= now: expired exactly at the boundary.
    let r2 = applied(b.acquire_lease(L, id(2), Some(1), 50, 100));
    assert_eq!(r2, rec(Some(2), 2, 150, 2));
    // Long after expiry.
    let r3 = applied(b.acquire_lease(L, id(3), Some(2), 10, 1_000));
    assert_eq!(r3, rec(Some(3), 3, 1_010, 3));
    // The previous holder may take it back once expired, with a new epoch.
    let r4 = applied(b.acquire_lease(L, id(3), Some(3), 10, 1_010));
    assert_eq!(r4, rec(Some(3), 4, 1_020, 4));
    assert_eq!(read(&mut b, L), Some(r4));
}

fn acquire_held_is_rejected<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let r = applied(b.acquire_lease(L, id(1), None, 100, 0));
    for now in [0, 1, 50, 99] {
        assert_eq!(rejected(b.acquire_lease(L, id(2), Some(1), 100, now)), (Reject::HeldByOther, Some(r.clone())));
    }
    // The rule is "free or expired", whoever asks: the holder itself cannot
    // re-acquire an unexpired lease (it renews instead).
    assert_eq!(rejected(b.acquire_lease(L, id(1), Some(1), 100, 99)), (Reject::HeldByOther, Some(r.clone())));
    // A stale version takes precedence over HeldByOther.
    assert_eq!(rejected(b.acquire_lease(L, id(2), Some(7), 100, 50)), (Reject::StaleVersion, Some(r.clone())));
    assert_eq!(read(&mut b, L), Some(r));
}

fn renew_by_holder_only<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    applied(b.acquire_lease(L, id(1), None, 100, 0));
    let r = applied(b.renew_lease(L, id(1), 1, 200, 50));
    assert_eq!(r, rec(Some(1), 1, 250, 2));
    assert_eq!(rejected(b.renew_lease(L, id(2), 2, 200, 60)), (Reject::NotHolder, Some(r.clone())));
    assert_eq!(read(&mut b, L), Some(r.clone()));
    // A renew may shorten the lease too: expires_at is simply now + ttl.
    let r = applied(b.renew_lease(L, id(1), 2, 10, 60));
    assert_eq!(r, rec(Some(1), 1, 70, 3));
    // Renew checks the version and the holder, not expiry: while nobody else
    // has taken it, the holder may renew a lapsed lease, keeping its epoch.
    let r = applied(b.renew_lease(L, id(1), 3, 100, 500));
    assert_eq!(r, rec(Some(1), 1, 600, 4));
    assert_eq!(read(&mut b, L), Some(r));
}

fn stale_version_rejected<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    applied(b.acquire_lease(L, id(1), None, 100, 0));
    let r = applied(b.renew_lease(L, id(1), 1, 100, 10));
    assert_eq!(r.version, 2);
    for stale in [0, 1, 3, u64::MAX] {
        assert_eq!(rejected(b.renew_lease(L, id(1), stale, 100, 20)), (Reject::StaleVersion, Some(r.clone())));
        assert_eq!(rejected(b.release_lease(L, id(1), stale, 20)), (Reject::StaleVersion, Some(r.clone())));
        assert_eq!(rejected(b.acquire_lease(L, id(2), Some(stale), 100, 500)), (Reject::StaleVersion, Some(r.clone())));
        // StaleVersion takes precedence over NotHolder.
        assert_eq!(rejected(b.renew_lease(L, id(2), stale, 100, 20)), (Reject::StaleVersion, Some(r.clone())));
        assert_eq!(rejected(b.release_lease(L, id(2), stale, 20)), (Reject::StaleVersion, Some(r.clone())));
    }
    // Nothing changed.
    assert_eq!(read(&mut b, L), Some(r));
}

fn release_by_non_holder_rejected<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let r = applied(b.acquire_lease(L, id(1), None, 100, 0));
    assert_eq!(rejected(b.release_lease(L, id(2), 1, 10)), (Reject::NotHolder, Some(r.clone())));
    // Even once it has expired, only the holder may release.
    assert_eq!(rejected(b.release_lease(L, id(2), 1, 500)), (Reject::NotHolder, Some(r.clone())));
    assert_eq!(read(&mut b, L), Some(r));
}

fn release_then_acquire_bumps_epoch_by_one<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    applied(b.acquire_lease(L, id(1), None, 100, 0));
    // Release clears the holder, keeps the epoch and sets expires_at = now.
    let released = applied(b.release_lease(L, id(1), 1, 30));
    assert_eq!(released, rec(None, 1, 30, 2));
    assert_eq!(read(&mut b, L), Some(released.clone()));
    // A released lease has no holder: neither renew nor release again.
    assert_eq!(rejected(b.release_lease(L, id(1), 2, 31)), (Reject::NotHolder, Some(released.clone())));
    assert_eq!(rejected(b.renew_lease(L, id(1), 2, 100, 31)), (Reject::NotHolder, Some(released.clone())));
    // Free at once, at the same instant, for anyone.
    let r = applied(b.acquire_lease(L, id(2), Some(2), 100, 30));
    assert_eq!(r, rec(Some(2), 2, 130, 3));
    // And released again by its new holder, then re-taken by the first one.
    let released = applied(b.release_lease(L, id(2), 3, 40));
    assert_eq!(released, rec(None, 2, 40, 4));
    let r = applied(b.acquire_lease(L, id(1), Some(4), 100, 40));
    assert_eq!(r, rec(Some(1), 3, 140, 5));
}

fn long_chain_of_holders<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let mut now = 0u64;
    let mut version = None;
    let mut writes = 0u64;
    let ttl = 100;
    for k in 1..=60u64 {
        let holder = id(k % 5 + 1);
        let r = applied(b.acquire_lease(L, holder, version, ttl, now));
        writes += 1;
        assert_eq!(r.epoch, k, "epoch +1 per change of holder");
        assert_eq!(r.version, writes, "version +1 per applied write");
        assert_eq!(r.holder, Some(holder));
        version = Some(r.version);
        // A few renews: version moves, epoch does not.
        for _ in 0..(k % 3) {
            now += 10;
            let r = applied(b.renew_lease(L, holder, version.unwrap(), ttl, now));
            writes += 1;
            assert_eq!((r.epoch, r.version), (k, writes));
            version = Some(r.version);
        }
        // Every competitor is rejected without consuming a version.
        let other = id((k + 1) % 5 + 1);
        assert_eq!(rejected(b.acquire_lease(L, other, version, ttl, now)).0, Reject::HeldByOther);
        assert_eq!(rejected(b.renew_lease(L, other, version.unwrap(), ttl, now)).0, Reject::NotHolder);
        // Hand over by release or by expiry, alternately.
        if k % 2 == 0 {
            let r = applied(b.release_lease(L, holder, version.unwrap(), now));
            writes += 1;
            assert_eq!((r.holder, r.epoch, r.version), (None, k, writes));
            version = Some(r.version);
        } else {
            now += ttl;
        }
    }
    let last = read(&mut b, L).unwrap();
    assert_eq!(last.epoch, 60);
    assert_eq!(Some(last.version), version);
    assert_eq!(last.version, writes);
}

fn no_record_for_renew_or_release<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert_eq!(rejected(b.renew_lease(L, id(1), 0, 100, 0)), (Reject::NoRecord, None));
    assert_eq!(rejected(b.renew_lease(L, id(1), 1, 100, 0)), (Reject::NoRecord, None));
    assert_eq!(rejected(b.release_lease(L, id(1), 0, 0)), (Reject::NoRecord, None));
    assert_eq!(rejected(b.release_lease(L, id(1), 1, 0)), (Reject::NoRecord, None));
    assert_eq!(read(&mut b, L), None);
    // Another lease existing does not make this one exist.
    applied(b.acquire_lease("other", id(1), None, 100, 0));
    assert_eq!(rejected(b.renew_lease(L, id(1), 1, 100, 0)), (Reject::NoRecord, None));
    assert_eq!(rejected(b.release_lease(L, id(1), 1, 0)), (Reject::NoRecord, None));
    assert_eq!(read(&mut b, L), None);
}

fn leases_are_independent<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let a = applied(b.acquire_lease("a", id(1), None, 100, 0));
    let x = applied(b.acquire_lease("b", id(2), None, 50, 0));
    assert_eq!((a.epoch, a.version, x.epoch, x.version), (1, 1, 1, 1));
    let a2 = applied(b.renew_lease("a", id(1), 1, 100, 10));
    assert_eq!(read(&mut b, "b"), Some(x.clone()));
    assert_eq!(read(&mut b, "a"), Some(a2));
    assert_eq!(seq_of(b.fenced_effect("b", id(2), 1, "on b", 10)), 1);
    assert_eq!(fence_reason(b.fenced_effect("a", id(2), 1, "wrong lease", 10)), FenceReject::NotHolder);
    assert_eq!(seq_of(b.fenced_effect("a", id(1), 1, "on a", 11)), 2);
}

fn fenced_effects<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 1, "no lease yet", 0)), FenceReject::NoLease);
    applied(b.acquire_lease(L, id(1), None, 100, 0));
    assert_eq!(seq_of(b.fenced_effect(L, id(1), 1, "e1", 0)), 1);
    assert_eq!(seq_of(b.fenced_effect(L, id(1), 1, "e2", 99)), 2);
    assert_eq!(fence_reason(b.fenced_effect(L, id(2), 1, "not holder", 10)), FenceReject::NotHolder);
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 2, "future epoch", 10)), FenceReject::StaleEpoch);
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 0, "past epoch", 10)), FenceReject::StaleEpoch);
    // expires_at <= now is expired.
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 1, "expired", 100)), FenceReject::Expired);
    assert_eq!(fence_reason(b.fenced_effect("missing", id(1), 1, "no lease", 10)), FenceReject::NoLease);
    // A renewed lease fences again at the same epoch.
    applied(b.renew_lease(L, id(1), 1, 100, 100));
    assert_eq!(seq_of(b.fenced_effect(L, id(1), 1, "e3", 150)), 3);
    // Another holder takes over: the old epoch is fenced off.
    applied(b.acquire_lease(L, id(2), Some(2), 100, 200));
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 1, "deposed", 201)), FenceReject::NotHolder);
    assert_eq!(fence_reason(b.fenced_effect(L, id(2), 1, "old epoch", 201)), FenceReject::StaleEpoch);
    assert_eq!(seq_of(b.fenced_effect(L, id(2), 2, "e4", 201)), 4);
    // After release: no holder.
    applied(b.release_lease(L, id(2), 3, 250));
    assert_eq!(fence_reason(b.fenced_effect(L, id(2), 2, "released", 250)), FenceReject::NotHolder);
    // Text round-trips as is.
    applied(b.acquire_lease(L, id(1), Some(4), 100, 300));
    let odd = "'; DROP TABLE effects; -- \"quoted\" \u{1F980} \n\t\0 end";
    assert_eq!(seq_of(b.fenced_effect(L, id(1), 3, odd, 300)), 5);
    assert_eq!(seq_of(b.fenced_effect(L, id(1), 3, "", 301)), 6);

    let row = |seq, holder, epoch, effect: &str, at| EffectRow {
        seq,
        lease: L.to_string(),
        holder: id(holder),
        epoch,
        effect: effect.to_string(),
        at,
    };
    assert_eq!(
        b.effects().unwrap(),
        vec![
            row(1, 1, 1, "e1", 0),
            row(2, 1, 1, "e2", 99),
            row(3, 1, 1, "e3", 150),
            row(4, 2, 2, "e4", 201),
            row(5, 1, 3, odd, 300),
            row(6, 1, 3, "", 301),
        ]
    );
}

fn fence_reject_precedence<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    applied(b.acquire_lease(L, id(1), None, 100, 0));
    // NotHolder before StaleEpoch before Expired.
    assert_eq!(fence_reason(b.fenced_effect(L, id(2), 9, "x", 500)), FenceReject::NotHolder);
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 9, "x", 500)), FenceReject::StaleEpoch);
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 1, "x", 500)), FenceReject::Expired);
    assert_eq!(b.effects().unwrap(), vec![]);
}

/// E1: an effect key commits at most once, whatever the lease says when
/// the retry comes (DESIGN.md, invariant E1).
fn effect_keys_commit_once<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    applied(b.acquire_lease(L, id(1), None, 100, 0));
    assert_eq!(seq_of(b.fenced_effect(L, id(1), 1, "k1", 0)), 1);
    // The retry of a commit whose reply was lost: nothing new is written.
    assert_eq!(b.fenced_effect(L, id(1), 1, "k1", 5), Ok(EffectResult::Duplicate { seq: 1 }));
    // Still a duplicate after the lease moved on: the first commit stands.
    applied(b.acquire_lease(L, id(2), Some(1), 100, 200));
    assert_eq!(b.fenced_effect(L, id(1), 1, "k1", 201), Ok(EffectResult::Duplicate { seq: 1 }));
    // A rejected key never committed, so it may commit later.
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 1, "k2", 202)), FenceReject::NotHolder);
    assert_eq!(seq_of(b.fenced_effect(L, id(2), 2, "k2", 203)), 2);
    // Keys are per lease.
    applied(b.acquire_lease("other", id(3), None, 100, 204));
    assert_eq!(seq_of(b.fenced_effect("other", id(3), 1, "k1", 205)), 3);
    assert_eq!(b.effects().unwrap().len(), 3);
}

fn apply_matches_typed_calls<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut via_apply = mk();
    let mut typed = mk();
    let name = || L.to_string();
    let wk = worker("w1", "acme", S::Spawning, 2, 1);
    let upd = |from, to, epoch, fence| StoreRequest::UpdateWorker {
        id: "w1".into(),
        owner: id(2),
        epoch,
        from,
        to,
        session: None,
        fence,
    };
    let claim = |owner, epoch, new_owner, fence| StoreRequest::ClaimWorker {
        id: "w1".into(),
        owner: id(owner),
        epoch,
        from: None,
        to: None,
        new_owner: id(new_owner),
        fence,
    };
    let script: Vec<(StoreRequest, Millis)> = vec![
        (StoreRequest::ReadLease { name: name() }, 0),
        (StoreRequest::RenewLease { name: name(), holder: id(1), expected_version: 0, ttl_ms: 10 }, 0),
        (StoreRequest::FencedEffect { name: name(), holder: id(1), epoch: 1, effect: "early".into() }, 0),
        (StoreRequest::AcquireLease { name: name(), holder: id(1), expected_version: None, ttl_ms: 100 }, 0),
        (StoreRequest::AcquireLease { name: name(), holder: id(2), expected_version: Some(1), ttl_ms: 100 }, 5),
        (StoreRequest::FencedEffect { name: name(), holder: id(1), epoch: 1, effect: "a".into() }, 10),
        (StoreRequest::RenewLease { name: name(), holder: id(1), expected_version: 1, ttl_ms: 100 }, 20),
        (StoreRequest::RenewLease { name: name(), holder: id(2), expected_version: 2, ttl_ms: 100 }, 20),
        (StoreRequest::ReleaseLease { name: name(), holder: id(1), expected_version: 1 }, 30),
        (StoreRequest::ReadLease { name: name() }, 30),
        (StoreRequest::ReleaseLease { name: name(), holder: id(1), expected_version: 2 }, 40),
        (StoreRequest::AcquireLease { name: name(), holder: id(2), expected_version: Some(3), ttl_ms: 100 }, 50),
        (StoreRequest::FencedEffect { name: name(), holder: id(2), epoch: 2, effect: "b".into() }, 60),
        (StoreRequest::FencedEffect { name: name(), holder: id(2), epoch: 2, effect: "late".into() }, 150),
        (StoreRequest::ReadLease { name: "missing".into() }, 150),
        // The fleet (fenced by its own lease, so the one above is untouched).
        (StoreRequest::ListInstances, 155),
        (StoreRequest::RegisterInstance { id: id(2), dead_after_ms: None }, 160),
        (StoreRequest::HeartbeatInstance { id: id(2), dead_after_ms: None }, 170),
        (StoreRequest::HeartbeatInstance { id: id(3), dead_after_ms: None }, 170),
        (StoreRequest::RegisterInstance { id: id(2), dead_after_ms: None }, 172),
        (StoreRequest::ListInstances, 175),
        (StoreRequest::ListSlots, 175),
        (StoreRequest::ReserveSlot { worker: "w1".into(), org: "acme".into(), org_cap: 1, global_cap: 2 }, 180),
        (StoreRequest::ReserveSlot { worker: "w2".into(), org: "acme".into(), org_cap: 1, global_cap: 2 }, 180),
        (StoreRequest::ReserveSlot { worker: "w1".into(), org: "acme".into(), org_cap: 1, global_cap: 2 }, 180),
        (StoreRequest::ReserveSlot { worker: "w2".into(), org: "beta".into(), org_cap: 1, global_cap: 2 }, 181),
        (StoreRequest::ReserveSlot { worker: "w3".into(), org: "gamma".into(), org_cap: 1, global_cap: 2 }, 182),
        (StoreRequest::ListSlots, 183),
        (StoreRequest::ListWorkers, 185),
        (StoreRequest::InsertWorker { worker: wk.clone() }, 190),
        (StoreRequest::InsertWorker { worker: WorkerRecord { org: "beta".into(), ..wk.clone() } }, 191),
        (StoreRequest::AcquireLease { name: FL.into(), holder: id(2), expected_version: None, ttl_ms: 1_000 }, 195),
        (upd(S::Spawning, S::Activating, 1, Some(fence(2, 1))), 200),
        (upd(S::Activating, S::Hot, 1, Some(fence(3, 1))), 201),
        (upd(S::Spawning, S::Hot, 1, None), 202),
        (upd(S::Activating, S::HotIdle, 1, None), 203),
        (upd(S::Activating, S::Hot, 7, None), 204),
        (upd(S::Activating, S::Activating, 1, None), 205),
        (
            StoreRequest::UpdateWorker {
                id: "nope".into(),
                owner: id(2),
                epoch: 1,
                from: S::Hot,
                to: S::Hot,
                session: None,
                fence: None,
            },
            206,
        ),
        (claim(2, 1, 3, Some(fence(2, 2))), 210),
        (claim(2, 1, 3, Some(fence(2, 1))), 211),
        (claim(2, 1, 3, None), 212),
        (
            StoreRequest::ClaimWorker {
                id: "nope".into(),
                owner: id(2),
                epoch: 1,
                from: None,
                to: None,
                new_owner: id(3),
                fence: None,
            },
            213,
        ),
        (
            StoreRequest::UpdateWorker {
                id: "w1".into(),
                owner: id(3),
                epoch: 2,
                from: S::Activating,
                to: S::Hot,
                session: Some(5),
                fence: None,
            },
            214,
        ),
        (StoreRequest::FreeSlot { worker: "w1".into(), fence: Some(fence(3, 1)) }, 220),
        (StoreRequest::FreeSlot { worker: "w1".into(), fence: Some(fence(2, 1)) }, 221),
        (StoreRequest::FreeSlot { worker: "w1".into(), fence: None }, 222),
        (StoreRequest::FreeSlot { worker: "w2".into(), fence: None }, 223),
        (StoreRequest::ReserveSlot { worker: "w3".into(), org: "gamma".into(), org_cap: 1, global_cap: 2 }, 224),
        (StoreRequest::ListWorkers, 230),
        (StoreRequest::ListSlots, 230),
        (StoreRequest::ListInstances, 230),
    ];
    for (req, now) in &script {
        let got = via_apply.apply(req, *now).expect("apply");
        let want = match req {
            StoreRequest::ReadLease { name } => StoreReply::Lease(typed.read_lease(name).unwrap()),
            StoreRequest::AcquireLease { name, holder, expected_version, ttl_ms } => {
                StoreReply::Cas(typed.acquire_lease(name, *holder, *expected_version, *ttl_ms, *now).unwrap())
            }
            StoreRequest::RenewLease { name, holder, expected_version, ttl_ms } => {
                StoreReply::Cas(typed.renew_lease(name, *holder, *expected_version, *ttl_ms, *now).unwrap())
            }
            StoreRequest::ReleaseLease { name, holder, expected_version } => {
                StoreReply::Cas(typed.release_lease(name, *holder, *expected_version, *now).unwrap())
            }
            StoreRequest::FencedEffect { name, holder, epoch, effect } => {
                StoreReply::Effect(typed.fenced_effect(name, *holder, *epoch, effect, *now).unwrap())
            }
            StoreRequest::RegisterInstance { id, dead_after_ms } => {
                if typed.register_instance(*id, *dead_after_ms, *now).unwrap() { StoreReply::Done } else { StoreReply::InstanceDead }
            }
            StoreRequest::HeartbeatInstance { id, dead_after_ms } => {
                if typed.heartbeat_instance(*id, *dead_after_ms, *now).unwrap() { StoreReply::Done } else { StoreReply::InstanceDead }
            }
            StoreRequest::ListInstances => StoreReply::Instances { now: *now, list: typed.list_instances().unwrap() },
            StoreRequest::ReserveSlot { worker, org, org_cap, global_cap } => {
                StoreReply::Slot(typed.reserve_slot(worker, org, *org_cap, *global_cap, *now).unwrap())
            }
            StoreRequest::FreeSlot { worker, fence } => {
                StoreReply::Slot(typed.free_slot(worker, fence.as_ref(), *now).unwrap())
            }
            StoreRequest::ListSlots => StoreReply::Slots { now: *now, list: typed.list_slots().unwrap() },
            StoreRequest::InsertWorker { worker } => StoreReply::Worker(typed.insert_worker(worker, *now).unwrap()),
            StoreRequest::UpdateWorker { id, owner, epoch, from, to, session, fence } => StoreReply::Worker(
                typed.update_worker(id, *owner, *epoch, *from, *to, *session, fence.as_ref(), *now).unwrap(),
            ),
            StoreRequest::ClaimWorker { id, owner, epoch, from, to, new_owner, fence } => StoreReply::Worker(
                typed.claim_worker_to(id, *owner, *epoch, *from, *to, *new_owner, fence.as_ref(), *now).unwrap(),
            ),
            StoreRequest::ListWorkers => StoreReply::Workers { now: *now, list: typed.list_workers().unwrap() },
        };
        assert_eq!(got, want, "{} at {now}", req.op());
    }
    assert_eq!(via_apply.effects().unwrap(), typed.effects().unwrap());
    assert_eq!(via_apply.effects().unwrap().len(), 2);
    assert_eq!(read(&mut via_apply, L), Some(rec(Some(2), 2, 150, 4)));
    // The fleet ended in the same place, and where the script says.
    assert_eq!(via_apply.list_instances().unwrap(), typed.list_instances().unwrap());
    assert_eq!(via_apply.list_instances().unwrap(), vec![inst(2, 160, 172), inst(3, 170, 170)]);
    assert_eq!(slots(&mut via_apply), slots(&mut typed));
    assert_eq!(slots(&mut via_apply), vec![slot("w3", "gamma", 224)]);
    assert_eq!(workers(&mut via_apply), workers(&mut typed));
    let w = workers(&mut via_apply);
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].state, w[0].owner, w[0].owner_epoch, w[0].version, w[0].session, w[0].updated_at),
        (S::Hot, id(3), 2, 5, Some(5), 214)
    );
}

fn u64_values_round_trip<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let big = id(u64::MAX);
    let past_i64 = id(i64::MAX as u64 + 1);
    // Times straddling i64::MAX: expiry must compare as u64.
    let t0 = i64::MAX as u64 - 5;
    let r = applied(b.acquire_lease(L, big, None, 10, t0));
    assert_eq!(
        r,
        LeaseRecord { name: L.into(), holder: Some(big), epoch: 1, expires_at: i64::MAX as u64 + 5, version: 1 }
    );
    assert_eq!(read(&mut b, L), Some(r.clone()));
    let t1 = i64::MAX as u64 + 1;
    assert_eq!(rejected(b.acquire_lease(L, past_i64, Some(1), 10, t1)), (Reject::HeldByOther, Some(r.clone())));
    assert_eq!(seq_of(b.fenced_effect(L, big, 1, "big", t1)), 1);
    assert_eq!(fence_reason(b.fenced_effect(L, big, u64::MAX, "x", t1)), FenceReject::StaleEpoch);
    assert_eq!(fence_reason(b.fenced_effect(L, big, 1, "x", r.expires_at)), FenceReject::Expired);
    assert_eq!(rejected(b.renew_lease(L, big, u64::MAX, 1, t1)), (Reject::StaleVersion, Some(r.clone())));
    let r2 = applied(b.acquire_lease(L, past_i64, Some(1), 1_000, r.expires_at));
    assert_eq!(
        r2,
        LeaseRecord { name: L.into(), holder: Some(past_i64), epoch: 2, expires_at: t1 + 1_004, version: 2 }
    );
    assert_eq!(read(&mut b, L), Some(r2));
    // Near the very top of the range.
    let top = u64::MAX - 100;
    let r3 = applied(b.acquire_lease("top", id(0), None, 100, top));
    assert_eq!(r3.expires_at, u64::MAX);
    assert_eq!(seq_of(b.fenced_effect("top", id(0), 1, "top", u64::MAX - 1)), 2);
    // A fresh key at the very last instant is refused: expiry compares as u64.
    assert_eq!(fence_reason(b.fenced_effect("top", id(0), 1, "top-late", u64::MAX)), FenceReject::Expired);
    // The committed key's retry finds its seq (read back intact), whatever the time.
    assert_eq!(b.fenced_effect("top", id(0), 1, "top", u64::MAX), Ok(EffectResult::Duplicate { seq: 2 }));
    assert_eq!(
        b.effects().unwrap(),
        vec![
            EffectRow { seq: 1, lease: L.into(), holder: big, epoch: 1, effect: "big".into(), at: t1 },
            EffectRow { seq: 2, lease: "top".into(), holder: id(0), epoch: 1, effect: "top".into(), at: u64::MAX - 1 },
        ]
    );
}

// ---------------------------------------------------------------------------
// The worker fleet: instances, slots, workers.

/// The lease that fences fleet writes in these cases.
const FL: &str = "fleet";

fn fence(holder: u64, epoch: u64) -> LeaseFence {
    LeaseFence { lease: FL.to_string(), holder: id(holder), epoch }
}

/// A worker as a caller would insert it; the times and version are junk the
/// store must overwrite.
fn worker(wid: &str, org: &str, state: WorkerState, owner: u64, epoch: u64) -> WorkerRecord {
    WorkerRecord {
        id: wid.to_string(),
        org: org.to_string(),
        state,
        owner: id(owner),
        owner_epoch: epoch,
        pod: format!("pod-{wid}"),
        secret: format!("secret-{wid}"),
        session: None,
        created_at: 777,
        updated_at: 888,
        idle_since: 999,
        version: 55,
    }
}

fn inst(n: u64, started_at: Millis, heartbeat_at: Millis) -> InstanceRecord {
    InstanceRecord { id: id(n), started_at, heartbeat_at }
}

fn slot(w: &str, org: &str, reserved_at: Millis) -> SlotRecord {
    SlotRecord { worker: w.to_string(), org: org.to_string(), reserved_at }
}

#[track_caller]
fn w_applied(r: Result<WorkerCas, StoreError>) -> WorkerRecord {
    match r {
        Ok(WorkerCas::Applied(rec)) => rec,
        other => panic!("expected an applied worker write, got {other:?}"),
    }
}

#[track_caller]
fn w_rejected(r: Result<WorkerCas, StoreError>) -> (WorkerReject, Option<WorkerRecord>) {
    match r {
        Ok(WorkerCas::Rejected { reason, current }) => (reason, current),
        other => panic!("expected a rejected worker write, got {other:?}"),
    }
}

#[track_caller]
fn workers<B: StoreBackend>(b: &mut B) -> Vec<WorkerRecord> {
    b.list_workers().expect("list_workers")
}

#[track_caller]
fn slots<B: StoreBackend>(b: &mut B) -> Vec<SlotRecord> {
    b.list_slots().expect("list_slots")
}

#[track_caller]
fn reserve<B: StoreBackend>(b: &mut B, w: &str, org: &str, org_cap: u32, global_cap: u32, now: Millis) -> SlotResult {
    b.reserve_slot(w, org, org_cap, global_cap, now).expect("reserve_slot")
}

#[track_caller]
fn free<B: StoreBackend>(b: &mut B, w: &str, f: Option<&LeaseFence>, now: Millis) -> SlotResult {
    b.free_slot(w, f, now).expect("free_slot")
}

/// `update_worker` without a session or fence.
fn step_worker<B: StoreBackend>(
    b: &mut B,
    wid: &str,
    owner: u64,
    epoch: u64,
    from: WorkerState,
    to: WorkerState,
    now: Millis,
) -> Result<WorkerCas, StoreError> {
    b.update_worker(wid, id(owner), epoch, from, to, None, None, now)
}

/// DESIGN.md part 6: the store never revives a dead instance. With a
/// threshold, a heartbeat or registration of an instance already dead by it
/// is refused and changes nothing; a live one is stamped; without one it is
/// the plain upsert.
fn dead_instances_are_not_revived<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn instances_register_heartbeat_list<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn slots_respect_org_and_global_caps<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn slots_free_and_reserve_again<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn slots_free_is_fenced<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn workers_insert_stamps_times<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn worker_lifecycle<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn worker_heartbeat_keeps_idle_since<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn worker_update_rejections<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn terminal_workers_are_final<B: StoreBackend>(mk: impl Fn() -> B) {
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
fn claim_worker_only_from_the_state_seen<B: StoreBackend>(mk: impl Fn() -> B) {
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
fn claim_worker_to_moves_the_state_in_the_same_write<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn claim_worker_fences_stale_owners<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn fenced_worker_writes<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn fleet_lists_are_ordered<B: StoreBackend>(mk: impl Fn() -> B) {
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

fn fleet_u64_values_round_trip<B: StoreBackend>(mk: impl Fn() -> B) {
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

/// Stamps out one `#[test]` per case and backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $case() { super::$case(crate::store::MemStore::new); })*
        }
        mod sqlite_mem {
            $(#[test] fn $case() {
                super::$case(|| crate::store::SqliteStore::open_in_memory().expect("open in memory"));
            })*
        }
        mod sqlite_file {
            $(#[test] fn $case() { super::$case(|| super::FileStore::new(stringify!($case))); })*
        }
    };
}

conformance!(
    acquire_free_creates_epoch_one,
    acquire_version_must_match,
    acquire_expired_bumps_epoch,
    acquire_held_is_rejected,
    renew_by_holder_only,
    stale_version_rejected,
    release_by_non_holder_rejected,
    release_then_acquire_bumps_epoch_by_one,
    long_chain_of_holders,
    no_record_for_renew_or_release,
    leases_are_independent,
    fenced_effects,
    effect_keys_commit_once,
    fence_reject_precedence,
    apply_matches_typed_calls,
    u64_values_round_trip,
    instances_register_heartbeat_list,
    dead_instances_are_not_revived,
    slots_respect_org_and_global_caps,
    slots_free_and_reserve_again,
    slots_free_is_fenced,
    workers_insert_stamps_times,
    worker_lifecycle,
    worker_heartbeat_keeps_idle_since,
    worker_update_rejections,
    terminal_workers_are_final,
    claim_worker_fences_stale_owners,
    claim_worker_only_from_the_state_seen,
    claim_worker_to_moves_the_state_in_the_same_write,
    fenced_worker_writes,
    fleet_lists_are_ordered,
    fleet_u64_values_round_trip,
);

// ---------------------------------------------------------------------------
// SQLite-only cases.

mod sqlite_only {
    use super::*;

    fn pragma_i64(path: &Path, name: &str) -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.pragma_query_value(None, name, |r| r.get(0)).unwrap()
    }

    #[test]
    fn reopen_keeps_lease_and_effects() {
        let db = TempDb::new("reopen");
        let (lease, effects) = {
            let mut s = SqliteStore::open(&db.path).unwrap();
            applied(s.acquire_lease(L, id(1), None, 100, 0));
            let lease = applied(s.renew_lease(L, id(1), 1, 100, 10));
            assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "one", 20)), 1);
            assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "two", 30)), 2);
            (lease, s.effects().unwrap())
        };
        let mut s = SqliteStore::open(&db.path).unwrap();
        assert_eq!(read(&mut s, L), Some(lease.clone()));
        assert_eq!(s.effects().unwrap(), effects);
        // And it carries on where it left off.
        assert_eq!(rejected(s.acquire_lease(L, id(2), Some(2), 100, 50)), (Reject::HeldByOther, Some(lease)));
        assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "three", 60)), 3);
        drop(s);
        let mut s = SqliteStore::open(&db.path).unwrap();
        assert_eq!(s.effects().unwrap().len(), 3);
    }

    #[test]
    fn file_uses_wal_and_records_schema_version() {
        let db = TempDb::new("wal");
        let _s = SqliteStore::open(&db.path).unwrap();
        let conn = rusqlite::Connection::open(&db.path).unwrap();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode.to_ascii_lowercase(), "wal");
        assert_eq!(pragma_i64(&db.path, "user_version"), 3);
    }

    #[test]
    fn newer_schema_is_rejected() {
        let db = TempDb::new("schema");
        {
            let conn = rusqlite::Connection::open(&db.path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        match SqliteStore::open(&db.path) {
            Err(StoreError::Backend(msg)) => assert!(msg.contains("99") && msg.contains("newer"), "{msg}"),
            Err(e) => panic!("wrong error: {e:?}"),
            Ok(_) => panic!("opened a database with a newer schema"),
        }
        // Untouched.
        assert_eq!(pragma_i64(&db.path, "user_version"), 99);
    }

    #[test]
    fn not_a_database_is_a_backend_error() {
        let db = TempDb::new("garbage");
        std::fs::write(&db.path, vec![0xA5u8; 8192]).unwrap();
        assert!(matches!(SqliteStore::open(&db.path), Err(StoreError::Backend(_))));
        let dir = TempDb::new("dir");
        std::fs::create_dir_all(&dir.path).unwrap();
        let res = SqliteStore::open(&dir.path);
        let _ = std::fs::remove_dir(&dir.path);
        assert!(matches!(res, Err(StoreError::Backend(_))));
    }

    #[test]
    fn two_connections_share_one_file() {
        let db = TempDb::new("shared");
        let mut a = SqliteStore::open(&db.path).unwrap();
        let mut b = SqliteStore::open(&db.path).unwrap();
        let r = applied(a.acquire_lease(L, id(1), None, 100, 0));
        assert_eq!(read(&mut b, L), Some(r.clone()));
        // Both read version 1 and race: exactly one CAS wins.
        assert_eq!(rejected(b.acquire_lease(L, id(2), None, 100, 10)), (Reject::StaleVersion, Some(r.clone())));
        let r2 = applied(a.renew_lease(L, id(1), 1, 100, 10));
        assert_eq!(rejected(b.renew_lease(L, id(1), 1, 100, 10)), (Reject::StaleVersion, Some(r2.clone())));
        let r3 = applied(b.acquire_lease(L, id(2), Some(2), 100, 110));
        assert_eq!(r3, rec(Some(2), 2, 210, 3));
        assert_eq!(fence_reason(a.fenced_effect(L, id(1), 1, "deposed", 120)), FenceReject::NotHolder);
        assert_eq!(seq_of(b.fenced_effect(L, id(2), 2, "b1", 120)), 1);
        assert_eq!(seq_of(a.fenced_effect(L, id(2), 2, "via a", 121)), 2);
        assert_eq!(a.effects().unwrap(), b.effects().unwrap());
    }

    #[test]
    fn concurrent_writers_lose_no_update() {
        // Several threads, each with its own connection, hammer one lease
        // with read-then-CAS renews; every applied write bumps the version by
        // one, so the final version counts the applied writes exactly.
        let db = TempDb::new("threads");
        {
            let mut s = SqliteStore::open(&db.path).unwrap();
            applied(s.acquire_lease(L, id(1), None, u64::MAX / 4, 0));
        }
        let threads = 4;
        let per_thread = 25;
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let path = db.path.clone();
                std::thread::spawn(move || {
                    let mut s = SqliteStore::open(&path).unwrap();
                    let mut applied_writes = 0u64;
                    while applied_writes < per_thread {
                        let v = s.read_lease(L).unwrap().unwrap().version;
                        match s.renew_lease(L, InstanceId(1), v, 100, v) {
                            Ok(CasResult::Applied(_)) => applied_writes += 1,
                            Ok(CasResult::Rejected { reason: Reject::StaleVersion, .. }) => {}
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    applied_writes
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let mut s = SqliteStore::open(&db.path).unwrap();
        assert_eq!(read(&mut s, L).unwrap().version, 1 + total);
        assert_eq!(total, threads * per_thread);
    }

    /// The version-1 schema exactly as that build created it.
    const SCHEMA_V1: &str = "
        CREATE TABLE IF NOT EXISTS leases (
            name       TEXT    PRIMARY KEY NOT NULL,
            holder     INTEGER NULL,
            epoch      INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            version    INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS effects (
            seq    INTEGER PRIMARY KEY,
            lease  TEXT    NOT NULL,
            holder INTEGER NOT NULL,
            epoch  INTEGER NOT NULL,
            effect TEXT    NOT NULL,
            at     INTEGER NOT NULL
        );
        PRAGMA user_version = 1;
    ";

    fn tables(path: &Path) -> Vec<String> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").unwrap();
        let names = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<Vec<String>, _>>().unwrap();
        names
    }

    #[test]
    fn version_one_database_is_migrated() {
        let db = TempDb::new("migrate");
        {
            let conn = rusqlite::Connection::open(&db.path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute("INSERT INTO leases VALUES ('leader', 1, 3, 500, 7)", []).unwrap();
            conn.execute("INSERT INTO effects VALUES (1, 'leader', 1, 3, 'old', 400)", []).unwrap();
        }
        assert_eq!(pragma_i64(&db.path, "user_version"), 1);
        assert_eq!(tables(&db.path), ["effects", "leases"]);
        let lease = rec(Some(1), 3, 500, 7);
        let old = EffectRow { seq: 1, lease: L.into(), holder: id(1), epoch: 3, effect: "old".into(), at: 400 };
        {
            let mut s = SqliteStore::open(&db.path).unwrap();
            // The old rows are kept...
            assert_eq!(read(&mut s, L), Some(lease.clone()));
            assert_eq!(s.effects().unwrap(), vec![old.clone()]);
            // ...and the fleet tables are there, empty and usable.
            assert_eq!(s.list_instances().unwrap(), vec![]);
            assert_eq!(slots(&mut s), vec![]);
            assert_eq!(workers(&mut s), vec![]);
            s.register_instance(id(1), None, 10).unwrap();
            assert_eq!(reserve(&mut s, "w1", "o", 1, 1, 10), SlotResult::Reserved);
            w_applied(s.insert_worker(&worker("w1", "o", S::Spawning, 1, 1), 10));
            // The old lease fences the new tables.
            let f = LeaseFence { lease: L.into(), holder: id(1), epoch: 3 };
            w_applied(s.update_worker("w1", id(1), 1, S::Spawning, S::Activating, None, Some(&f), 20));
            // The old effect's key is taken.
            assert_eq!(s.fenced_effect(L, id(1), 3, "old", 21), Ok(EffectResult::Duplicate { seq: 1 }));
        }
        assert_eq!(pragma_i64(&db.path, "user_version"), 3);
        assert_eq!(tables(&db.path), ["effects", "instances", "leases", "slots", "workers"]);
        // Reopening a migrated database changes nothing.
        let mut s = SqliteStore::open(&db.path).unwrap();
        assert_eq!(pragma_i64(&db.path, "user_version"), 3);
        assert_eq!(read(&mut s, L), Some(lease));
        assert_eq!(s.effects().unwrap(), vec![old]);
        assert_eq!(s.list_instances().unwrap(), vec![inst(1, 10, 10)]);
        assert_eq!(slots(&mut s), vec![slot("w1", "o", 10)]);
        let w = workers(&mut s);
        assert_eq!((w.len(), w[0].state, w[0].version), (1, S::Activating, 2));
    }

    /// A version-2 database (the fleet tables, no key index on effects) is
    /// migrated to 3: its rows are kept and an effect key commits at most
    /// once, in the schema too.
    #[test]
    fn version_two_database_gains_the_effect_key_index() {
        let db = TempDb::new("migrate2");
        let key_index = |path: &Path| -> i64 {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'effects_by_key'", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let old = {
            let mut s = SqliteStore::open(&db.path).unwrap();
            applied(s.acquire_lease(L, id(1), None, 100, 0));
            assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "e1", 1)), 1);
            s.effects().unwrap()
        };
        // Back to the schema version 2 wrote: everything but the index.
        {
            let conn = rusqlite::Connection::open(&db.path).unwrap();
            conn.execute_batch("DROP INDEX effects_by_key; PRAGMA user_version = 2;").unwrap();
        }
        assert_eq!((pragma_i64(&db.path, "user_version"), key_index(&db.path)), (2, 0));
        let mut s = SqliteStore::open(&db.path).unwrap();
        assert_eq!((pragma_i64(&db.path, "user_version"), key_index(&db.path)), (3, 1));
        assert_eq!(s.effects().unwrap(), old);
        assert_eq!(s.fenced_effect(L, id(1), 1, "e1", 2), Ok(EffectResult::Duplicate { seq: 1 }));
        // The index itself refuses a second row for the key.
        let conn = rusqlite::Connection::open(&db.path).unwrap();
        let err = conn.execute("INSERT INTO effects (lease, holder, epoch, effect, at) VALUES (?1, 1, 1, 'e1', 3)", [L]).unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        conn.execute("INSERT INTO effects (lease, holder, epoch, effect, at) VALUES ('other', 1, 1, 'e1', 3)", []).unwrap();
        assert_eq!(seq_of(s.fenced_effect(L, id(1), 1, "e2", 4)), 3);
        assert_eq!(s.effects().unwrap().len(), 3);
    }

    #[test]
    fn version_four_is_rejected() {
        let db = TempDb::new("schema4");
        {
            let conn = rusqlite::Connection::open(&db.path).unwrap();
            conn.pragma_update(None, "user_version", 4).unwrap();
        }
        assert!(matches!(SqliteStore::open(&db.path), Err(StoreError::Backend(m)) if m.contains("newer")));
        assert_eq!(pragma_i64(&db.path, "user_version"), 4);
        assert_eq!(tables(&db.path), Vec::<String>::new());
    }

    #[test]
    fn reopen_keeps_the_fleet() {
        let db = TempDb::new("reopen-fleet");
        let (instances, slot_rows, worker_rows) = {
            let mut s = SqliteStore::open(&db.path).unwrap();
            s.register_instance(id(u64::MAX), None, 5).unwrap();
            s.heartbeat_instance(id(1), None, 6).unwrap();
            assert_eq!(reserve(&mut s, "w1", "o", 2, 2, 7), SlotResult::Reserved);
            let w = WorkerRecord { session: Some(3), ..worker("w1", "o", S::Hot, 1, 1) };
            w_applied(s.insert_worker(&w, 8));
            w_applied(s.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, None, 9));
            w_applied(s.claim_worker("w1", id(1), 1, None, id(2), None, 10));
            (s.list_instances().unwrap(), slots(&mut s), workers(&mut s))
        };
        let mut s = SqliteStore::open(&db.path).unwrap();
        assert_eq!(s.list_instances().unwrap(), instances);
        assert_eq!(slots(&mut s), slot_rows);
        assert_eq!(workers(&mut s), worker_rows);
        // And it carries on where it left off.
        assert_eq!(w_rejected(s.claim_worker("w1", id(1), 1, None, id(1), None, 11)).0, WorkerReject::StaleOwner);
        let c = w_applied(s.claim_worker("w1", id(2), 2, None, id(3), None, 11));
        assert_eq!((c.owner_epoch, c.version, c.idle_since, c.created_at), (3, 4, 9, 8));
    }

    #[test]
    fn unknown_worker_state_is_a_backend_error() {
        let db = TempDb::new("badstate");
        let mut s = SqliteStore::open(&db.path).unwrap();
        w_applied(s.insert_worker(&worker("w1", "o", S::Hot, 1, 1), 0));
        w_applied(s.insert_worker(&worker("w2", "o", S::Hot, 1, 1), 0));
        {
            let conn = rusqlite::Connection::open(&db.path).unwrap();
            assert_eq!(conn.execute("UPDATE workers SET state = 'idle' WHERE id = 'w1'", []).unwrap(), 1);
        }
        let is_backend = |r: Result<WorkerCas, StoreError>| match r {
            Err(StoreError::Backend(m)) => assert!(m.contains("idle"), "{m}"),
            other => panic!("expected a backend error, got {other:?}"),
        };
        assert!(matches!(s.list_workers(), Err(StoreError::Backend(m)) if m.contains("idle")));
        is_backend(s.update_worker("w1", id(1), 1, S::Hot, S::HotIdle, None, None, 1));
        is_backend(s.claim_worker("w1", id(1), 1, None, id(2), None, 1));
        is_backend(s.insert_worker(&worker("w1", "o", S::Hot, 1, 1), 1));
        // Other rows are unaffected, and the failed writes left no lock behind.
        w_applied(s.update_worker("w2", id(1), 1, S::Hot, S::HotIdle, None, None, 2));
        assert_eq!(reserve(&mut s, "w2", "o", 1, 1, 2), SlotResult::Reserved);
    }

    #[test]
    fn fleet_overflow_is_an_error_not_a_panic() {
        // MemStore bumps the owner epoch unchecked; SQLite refuses the write.
        let mut s = SqliteStore::open_in_memory().unwrap();
        let r = w_applied(s.insert_worker(&worker("w", "o", S::Hot, 1, u64::MAX), 0));
        assert!(matches!(s.claim_worker("w", id(1), u64::MAX, None, id(2), None, 1), Err(StoreError::Failed(_))));
        assert_eq!(workers(&mut s), vec![r.clone()]);
        // The state-only update does not touch the epoch.
        let u = w_applied(s.update_worker("w", id(1), u64::MAX, S::Hot, S::HotIdle, None, None, 2));
        assert_eq!((u.owner_epoch, u.version), (u64::MAX, 2));
    }

    #[test]
    fn concurrent_reservations_respect_the_caps() {
        // Threads on their own connections race to reserve; the caps hold
        // exactly, because each reservation counts and inserts in one
        // IMMEDIATE transaction.
        let db = TempDb::new("slots-threads");
        drop(SqliteStore::open(&db.path).unwrap());
        let (threads, per_thread, org_cap, global_cap) = (4usize, 12usize, 5u32, 17u32);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let path = db.path.clone();
                std::thread::spawn(move || {
                    let mut s = SqliteStore::open(&path).unwrap();
                    (0..per_thread)
                        .filter(|k| {
                            let org = format!("org{}", k % 3);
                            match s.reserve_slot(&format!("t{t}-{k}"), &org, org_cap, global_cap, 0).unwrap() {
                                SlotResult::Reserved => true,
                                SlotResult::OrgCap | SlotResult::GlobalCap => false,
                                other => panic!("unexpected {other:?}"),
                            }
                        })
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let mut s = SqliteStore::open(&db.path).unwrap();
        let rows = slots(&mut s);
        // 3 orgs of at most 5: the org caps bind before the global one.
        assert_eq!(total, 15);
        assert_eq!(rows.len(), total);
        for org in ["org0", "org1", "org2"] {
            assert_eq!(rows.iter().filter(|r| r.org == org).count(), org_cap as usize);
        }
    }

    #[test]
    fn concurrent_claims_have_one_winner_per_epoch() {
        let db = TempDb::new("claim-threads");
        {
            let mut s = SqliteStore::open(&db.path).unwrap();
            w_applied(s.insert_worker(&worker("w", "o", S::Hot, 0, 1), 0));
        }
        let (threads, per_thread) = (4u64, 10u64);
        let handles: Vec<_> = (1..=threads)
            .map(|me| {
                let path = db.path.clone();
                std::thread::spawn(move || {
                    let mut s = SqliteStore::open(&path).unwrap();
                    let mut won = vec![];
                    while (won.len() as u64) < per_thread {
                        let cur = s.list_workers().unwrap().remove(0);
                        match s.claim_worker("w", cur.owner, cur.owner_epoch, None, InstanceId(me), None, 0).unwrap() {
                            WorkerCas::Applied(r) => won.push(r.owner_epoch),
                            WorkerCas::Rejected { reason: WorkerReject::StaleOwner, .. } => {}
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    won
                })
            })
            .collect();
        let mut epochs: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        epochs.sort();
        // Every epoch from 2 on was won exactly once.
        assert_eq!(epochs, (2..2 + threads * per_thread).collect::<Vec<_>>());
        let mut s = SqliteStore::open(&db.path).unwrap();
        let w = workers(&mut s).remove(0);
        assert_eq!((w.owner_epoch, w.version), (1 + threads * per_thread, 1 + threads * per_thread));
    }

    #[test]
    fn in_memory_stores_are_private() {
        let mut a = SqliteStore::open_in_memory().unwrap();
        let mut b = SqliteStore::open_in_memory().unwrap();
        applied(a.acquire_lease(L, id(1), None, 100, 0));
        assert_eq!(read(&mut b, L), None);
    }

    #[test]
    fn arithmetic_overflow_is_an_error_not_a_panic() {
        // MemStore computes `now + ttl` unchecked (a panic in debug builds);
        // SQLite refuses the write, changing nothing.
        let mut s = SqliteStore::open_in_memory().unwrap();
        assert!(matches!(s.acquire_lease(L, id(1), None, 2, u64::MAX - 1), Err(StoreError::Failed(_))));
        assert_eq!(read(&mut s, L), None);
        let r = applied(s.acquire_lease(L, id(1), None, 1, u64::MAX - 1));
        assert_eq!(r.expires_at, u64::MAX);
        assert!(matches!(s.renew_lease(L, id(1), 1, u64::MAX, 5), Err(StoreError::Failed(_))));
        assert_eq!(read(&mut s, L), Some(r.clone()));
        // Rejections are decided before any arithmetic, as in MemStore.
        assert_eq!(rejected(s.acquire_lease(L, id(2), Some(1), u64::MAX, 5)), (Reject::HeldByOther, Some(r)));
    }
}

// ---------------------------------------------------------------------------
// SQLite agrees with the reference model on random operation sequences.

mod model {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 2] = ["a", "b"];
    const WORKERS: [&str; 3] = ["w1", "w2", "w3"];
    const ORGS: [&str; 2] = ["o1", "o2"];

    /// A lease fence: `holder` `None` means the lease's current holder (or 1),
    /// `epoch` an offset from its current epoch.
    #[derive(Clone, Debug)]
    struct FenceOp {
        lease: usize,
        holder: Option<u64>,
        epoch: i64,
    }

    /// The target state of an update: `Step(k)` picks the `k`-th state the
    /// worker's current state may become (so that walks go deep), `Any` any.
    #[derive(Clone, Debug)]
    enum To {
        Step(usize),
        Any(WorkerState),
    }

    #[derive(Clone, Debug)]
    enum Op {
        Read {
            lease: usize,
        },
        /// `version`: `None` asks for a missing record, else an offset from the
        /// current version (or from 0 if there is none).
        Acquire {
            lease: usize,
            holder: u64,
            version: Option<i64>,
            ttl: u64,
        },
        Renew {
            lease: usize,
            holder: u64,
            version: i64,
            ttl: u64,
        },
        Release {
            lease: usize,
            holder: u64,
            version: i64,
        },
        /// `epoch`: an offset from the current epoch.
        Fence {
            lease: usize,
            holder: u64,
            epoch: i64,
        },
        Register {
            inst: u64,
        },
        Heartbeat {
            inst: u64,
            /// The dead threshold the heartbeat names (None: a plain upsert).
            dead: Option<u64>,
        },
        Reserve {
            worker: usize,
            org: usize,
            org_cap: u32,
            global_cap: u32,
        },
        Free {
            worker: usize,
            fence: Option<FenceOp>,
        },
        Insert {
            worker: usize,
            org: usize,
            state: WorkerState,
            owner: u64,
            epoch: u64,
            session: Option<u64>,
        },
        /// `owner` `None`: the current owner; `epoch` an offset from the
        /// current owner epoch; `from` `None`: the current state.
        Update {
            worker: usize,
            owner: Option<u64>,
            epoch: i64,
            from: Option<WorkerState>,
            to: To,
            session: Option<u64>,
            fence: Option<FenceOp>,
        },
        Claim {
            worker: usize,
            owner: Option<u64>,
            epoch: i64,
            from: Option<WorkerState>,
            to: Option<WorkerState>,
            new_owner: u64,
            fence: Option<FenceOp>,
        },
    }

    fn op() -> impl Strategy<Value = (Op, u64)> {
        let lease = 0..NAMES.len();
        let holder = 1..4u64;
        let off = prop_oneof![4 => Just(0i64), 1 => -2..=2i64];
        // Some long leases, so that fleet fences often hold.
        let ttl = prop_oneof![1..120u64, 200..600u64];
        let inst = prop_oneof![3 => 1..4u64, 1 => Just(u64::MAX), 1 => Just(1u64 << 63)];
        let worker = 0..WORKERS.len();
        let org = 0..ORGS.len();
        let state = prop::sample::select(WorkerState::ALL.to_vec());
        let fence = prop::option::weighted(
            0.4,
            (lease.clone(), prop::option::weighted(0.3, holder.clone()), off.clone())
                .prop_map(|(lease, holder, epoch)| FenceOp { lease, holder, epoch }),
        );
        let owner = prop::option::weighted(0.25, holder.clone());
        let session = prop::option::of(0..3u64);
        let to = prop_oneof![3 => (0..4usize).prop_map(To::Step), 1 => state.clone().prop_map(To::Any)];
        let op = prop_oneof![
            1 => lease.clone().prop_map(|lease| Op::Read { lease }),
            4 => (lease.clone(), holder.clone(), prop::option::weighted(0.8, off.clone()), ttl.clone())
                .prop_map(|(lease, holder, version, ttl)| Op::Acquire { lease, holder, version, ttl }),
            3 => (lease.clone(), holder.clone(), off.clone(), ttl)
                .prop_map(|(lease, holder, version, ttl)| Op::Renew { lease, holder, version, ttl }),
            2 => (lease.clone(), holder.clone(), off.clone())
                .prop_map(|(lease, holder, version)| Op::Release { lease, holder, version }),
            3 => (lease, holder.clone(), off.clone()).prop_map(|(lease, holder, epoch)| Op::Fence { lease, holder, epoch }),
            1 => inst.clone().prop_map(|inst| Op::Register { inst }),
            1 => (inst, proptest::option::of(1u64..40)).prop_map(|(inst, dead)| Op::Heartbeat { inst, dead }),
            3 => (worker.clone(), org.clone(), 0..3u32, 0..4u32)
                .prop_map(|(worker, org, org_cap, global_cap)| Op::Reserve { worker, org, org_cap, global_cap }),
            2 => (worker.clone(), fence.clone()).prop_map(|(worker, fence)| Op::Free { worker, fence }),
            5 => (worker.clone(), org, state.clone(), holder.clone(), 0..3u64, session.clone()).prop_map(
                |(worker, org, state, owner, epoch, session)| Op::Insert { worker, org, state, owner, epoch, session }
            ),
            8 => (worker.clone(), owner.clone(), off.clone(), prop::option::weighted(0.15, state.clone()), to, session, fence.clone())
                .prop_map(|(worker, owner, epoch, from, to, session, fence)| {
                    Op::Update { worker, owner, epoch, from, to, session, fence }
                }),
            3 => (worker, owner, off, prop::option::of(state.clone()), prop::option::weighted(0.4, state), holder, fence).prop_map(
                |(worker, owner, epoch, from, to, new_owner, fence)| Op::Claim { worker, owner, epoch, from, to, new_owner, fence }
            ),
        ];
        // How far the store's clock advances before the op.
        (op, prop_oneof![2 => Just(0u64), 3 => 1..40u64, 1 => 40..150u64])
    }

    fn shift(base: u64, off: i64) -> u64 {
        base.saturating_add_signed(off)
    }

    /// The reference model's records before the op, so that offsets and
    /// "current" choices usually hit the live values.
    struct Snap {
        leases: Vec<Option<LeaseRecord>>,
        workers: Vec<Option<WorkerRecord>>,
    }

    impl Snap {
        fn of(mem: &mut MemStore) -> Self {
            let all = mem.list_workers().unwrap();
            Snap {
                leases: NAMES.iter().map(|n| mem.read_lease(n).unwrap()).collect(),
                workers: WORKERS.iter().map(|w| all.iter().find(|r| r.id == *w).cloned()).collect(),
            }
        }

        fn lease_version(&self, lease: usize) -> u64 {
            self.leases[lease].as_ref().map_or(0, |r| r.version)
        }

        fn lease_epoch(&self, lease: usize) -> u64 {
            self.leases[lease].as_ref().map_or(0, |r| r.epoch)
        }

        fn fence(&self, f: &Option<FenceOp>) -> Option<LeaseFence> {
            f.as_ref().map(|f| LeaseFence {
                lease: NAMES[f.lease].to_string(),
                holder: InstanceId(
                    f.holder.unwrap_or_else(|| self.leases[f.lease].as_ref().and_then(|r| r.holder).map_or(1, |h| h.0)),
                ),
                epoch: shift(self.lease_epoch(f.lease), f.epoch),
            })
        }

        /// The `(owner, epoch)` an op presents for `worker`.
        fn owner(&self, worker: usize, owner: Option<u64>, epoch: i64) -> (InstanceId, u64) {
            let cur = self.workers[worker].as_ref();
            let o = owner.unwrap_or_else(|| cur.map_or(1, |w| w.owner.0));
            (InstanceId(o), shift(cur.map_or(1, |w| w.owner_epoch), epoch))
        }

        fn state(&self, worker: usize) -> WorkerState {
            self.workers[worker].as_ref().map_or(WorkerState::Spawning, |w| w.state)
        }
    }

    fn step<B: StoreBackend>(b: &mut B, op: &Op, snap: &Snap, now: Millis) -> Result<StoreReply, StoreError> {
        Ok(match op {
            &Op::Read { lease } => StoreReply::Lease(b.read_lease(NAMES[lease])?),
            &Op::Acquire { lease, holder, version, ttl } => {
                let v = version.map(|off| shift(snap.lease_version(lease), off));
                StoreReply::Cas(b.acquire_lease(NAMES[lease], InstanceId(holder), v, ttl, now)?)
            }
            &Op::Renew { lease, holder, version, ttl } => {
                let v = shift(snap.lease_version(lease), version);
                StoreReply::Cas(b.renew_lease(NAMES[lease], InstanceId(holder), v, ttl, now)?)
            }
            &Op::Release { lease, holder, version } => {
                let v = shift(snap.lease_version(lease), version);
                StoreReply::Cas(b.release_lease(NAMES[lease], InstanceId(holder), v, now)?)
            }
            &Op::Fence { lease, holder, epoch } => {
                let e = shift(snap.lease_epoch(lease), epoch);
                let effect = format!("fx{holder}@{now}");
                StoreReply::Effect(b.fenced_effect(NAMES[lease], InstanceId(holder), e, &effect, now)?)
            }
            &Op::Register { inst } => {
                b.register_instance(InstanceId(inst), None, now)?;
                StoreReply::Done
            }
            &Op::Heartbeat { inst, dead } => {
                if b.heartbeat_instance(InstanceId(inst), dead, now)? {
                    StoreReply::Done
                } else {
                    StoreReply::InstanceDead
                }
            }
            &Op::Reserve { worker, org, org_cap, global_cap } => {
                StoreReply::Slot(b.reserve_slot(WORKERS[worker], ORGS[org], org_cap, global_cap, now)?)
            }
            Op::Free { worker, fence } => {
                StoreReply::Slot(b.free_slot(WORKERS[*worker], snap.fence(fence).as_ref(), now)?)
            }
            &Op::Insert { worker, org, state, owner, epoch, session } => {
                let w = WorkerRecord {
                    id: WORKERS[worker].to_string(),
                    org: ORGS[org].to_string(),
                    state,
                    owner: InstanceId(owner),
                    owner_epoch: epoch,
                    pod: format!("pod{owner}"),
                    secret: format!("s{now}"),
                    session,
                    created_at: 1,
                    updated_at: 2,
                    idle_since: 3,
                    version: 4,
                };
                StoreReply::Worker(b.insert_worker(&w, now)?)
            }
            Op::Update { worker, owner, epoch, from, to, session, fence } => {
                let (o, e) = snap.owner(*worker, *owner, *epoch);
                let from = from.unwrap_or_else(|| snap.state(*worker));
                let to = match *to {
                    To::Any(s) => s,
                    To::Step(k) => {
                        let next: Vec<_> = WorkerState::ALL.into_iter().filter(|s| from.can_become(*s)).collect();
                        if next.is_empty() {
                            from
                        } else {
                            next[k % next.len()]
                        }
                    }
                };
                let f = snap.fence(fence);
                StoreReply::Worker(b.update_worker(WORKERS[*worker], o, e, from, to, *session, f.as_ref(), now)?)
            }
            Op::Claim { worker, owner, epoch, from, to, new_owner, fence } => {
                let (o, e) = snap.owner(*worker, *owner, *epoch);
                let f = snap.fence(fence);
                let new_owner = InstanceId(*new_owner);
                StoreReply::Worker(b.claim_worker_to(WORKERS[*worker], o, e, *from, *to, new_owner, f.as_ref(), now)?)
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn sqlite_agrees_with_memstore(seeded in any::<bool>(), ops in prop::collection::vec(op(), 0..60)) {
            let mut mem = MemStore::new();
            let mut sql = SqliteStore::open_in_memory().unwrap();
            let mut now: Millis = 0;
            // Half the runs start with a long lease on "a", so that fleet
            // fences often hold.
            let seed = seeded.then_some((Op::Acquire { lease: 0, holder: 1, version: None, ttl: 2_000 }, 0));
            for (i, (op, advance)) in seed.iter().chain(ops.iter()).enumerate() {
                now += advance;
                let snap = Snap::of(&mut mem);
                let want = step(&mut mem, op, &snap, now);
                let got = step(&mut sql, op, &snap, now);
                prop_assert!(want.is_ok(), "MemStore failed: {:?}", want);
                prop_assert_eq!(&got, &want, "step {} {:?} at {}", i, op, now);
                for name in NAMES {
                    prop_assert_eq!(sql.read_lease(name).unwrap(), mem.read_lease(name).unwrap());
                }
                prop_assert_eq!(sql.list_instances().unwrap(), mem.list_instances().unwrap());
                prop_assert_eq!(sql.list_slots().unwrap(), mem.list_slots().unwrap());
                prop_assert_eq!(sql.list_workers().unwrap(), mem.list_workers().unwrap());
            }
            prop_assert_eq!(sql.effects().unwrap(), mem.effects().unwrap());
        }
    }
}
