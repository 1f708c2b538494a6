//! The lease and its fenced effects, on every backend.

use super::*;

pub(super) fn acquire_free_creates_epoch_one<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert_eq!(read(&mut b, L), None);
    let r = applied(b.acquire_lease(L, id(1), None, 100, 10));
    assert_eq!(r, rec(Some(1), 1, 110, 1));
    assert_eq!(read(&mut b, L), Some(r));
    assert_eq!(b.effects().unwrap(), vec![]);
}

pub(super) fn acquire_version_must_match<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn acquire_expired_bumps_epoch<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn acquire_held_is_rejected<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn renew_by_holder_only<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn stale_version_rejected<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn release_by_non_holder_rejected<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    let r = applied(b.acquire_lease(L, id(1), None, 100, 0));
    assert_eq!(rejected(b.release_lease(L, id(2), 1, 10)), (Reject::NotHolder, Some(r.clone())));
    // Even once it has expired, only the holder may release.
    assert_eq!(rejected(b.release_lease(L, id(2), 1, 500)), (Reject::NotHolder, Some(r.clone())));
    assert_eq!(read(&mut b, L), Some(r));
}

pub(super) fn release_then_acquire_bumps_epoch_by_one<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn long_chain_of_holders<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn no_record_for_renew_or_release<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn leases_are_independent<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn fenced_effects<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn fence_reject_precedence<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    applied(b.acquire_lease(L, id(1), None, 100, 0));
    // NotHolder before StaleEpoch before Expired.
    assert_eq!(fence_reason(b.fenced_effect(L, id(2), 9, "x", 500)), FenceReject::NotHolder);
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 9, "x", 500)), FenceReject::StaleEpoch);
    assert_eq!(fence_reason(b.fenced_effect(L, id(1), 1, "x", 500)), FenceReject::Expired);
    assert_eq!(b.effects().unwrap(), vec![]);
}

/// E1: an effect key commits at most once, whatever the lease says when
/// the retry comes (docs/design.md §7, E1).
pub(super) fn effect_keys_commit_once<B: StoreBackend>(mk: impl Fn() -> B) {
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

pub(super) fn u64_values_round_trip<B: StoreBackend>(mk: impl Fn() -> B) {
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

/// Arithmetic that would overflow refuses the write, changing nothing
/// (one checked rule for every backend); rejections are decided first.
pub(super) fn arithmetic_overflow_is_an_error_not_a_panic<B: StoreBackend>(mk: impl Fn() -> B) {
    let mut b = mk();
    assert!(matches!(b.acquire_lease(L, id(1), None, 2, u64::MAX - 1), Err(StoreError::Failed(_))));
    assert_eq!(read(&mut b, L), None);
    let r = applied(b.acquire_lease(L, id(1), None, 1, u64::MAX - 1));
    assert_eq!(r.expires_at, u64::MAX);
    assert!(matches!(b.renew_lease(L, id(1), 1, u64::MAX, 5), Err(StoreError::Failed(_))));
    assert_eq!(read(&mut b, L), Some(r.clone()));
    assert_eq!(rejected(b.acquire_lease(L, id(2), Some(1), u64::MAX, 5)), (Reject::HeldByOther, Some(r)));
}
