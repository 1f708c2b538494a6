//! The secret reaper (field report 004): only orphan secrets go (and the
//! NoSecretReaper mutant leaks them), scoped by instance so a live peer's
//! are left to it (and the SecretReaperUnscoped mutant is not).

use crate::testkit::fleet::*;
use crate::testkit::*;
use crate::mutants::{Mutant, Mutants};
use crate::registry::live_instances;
use crate::store::WorkerRecord;
use crate::worker::pool::deployment_selector;
use crate::worker::{Gate, WorkerState};

struct Objects {
    live_worker: WorkerRecord,
}

/// A janitor pass at 40 s over: A's live hot worker (its own secret, plus a
/// rotated secret for the same pod), an orphan secret and an orphan pod (old,
/// nothing owns them), a young secret, one with an empty pod label, B's
/// spawning worker's secret (old, pod not created yet), and another
/// deployment's old secret and pod.
async fn secret_reaper_world(mutants: Mutants) -> (Harness, Objects) {
    let w = Harness::new();
    let c = cfg();
    let (pool, reapers) = w.pool_and_reapers(&c, mutants);
    let epoch = w.hold_lease(A).await;

    let id = pool.acquire("org", 1).await.unwrap();
    let live = w.row(&id);
    w.create_secret("secret-rotated", &c.deployment, &live.pod);
    w.create_secret("secret-orphan", &c.deployment, "pod-crashed");
    w.create_pod("pod-orphan", deployment_selector(&c.deployment));
    w.create_secret("secret-unlabelled", &c.deployment, "");
    w.create_secret("secret-other-deploy", "other", "pod-gone");
    w.create_pod("pod-other-deploy", deployment_selector("other"));
    // B is alive and mid-spawn: its row and secret exist, its pod not yet.
    w.insert_b_spawning().await;
    w.create_secret("secret-w2.1", &c.deployment, "pod-w2.1");

    w.at(40_000).await;
    w.create_secret("secret-young", &c.deployment, "pod-never");
    w.beat(A).await;
    w.beat(B).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    (w, Objects { live_worker: live })
}

#[madsim::test]
async fn secret_reaper_deletes_only_orphan_secrets() {
    let (w, o) = secret_reaper_world(Mutants::none()).await;
    assert!(!w.has_secret("secret-orphan"), "the orphan secret is deleted: {:?}", w.secrets());
    assert!(!w.has_pod("pod-orphan"), "the orphan pod is deleted");
    for kept in [o.live_worker.secret.as_str(), "secret-rotated", "secret-young", "secret-unlabelled", "secret-w2.1", "secret-other-deploy"] {
        assert!(w.has_secret(kept), "{kept} must be kept: {:?}", w.secrets());
    }
    assert!(w.has_pod(&o.live_worker.pod) && w.has_pod("pod-other-deploy"));
    assert_eq!(w.row(&o.live_worker.id).state, WorkerState::Hot);
    assert_eq!(w.row("w2.1").state, WorkerState::Spawning, "B's spawn is left alone");
}

#[madsim::test]
async fn mutant_no_secret_reaper_leaks_the_orphan_secret() {
    let (w, _) = secret_reaper_world(Mutants::only(Mutant::NoSecretReaper)).await;
    assert!(w.has_secret("secret-orphan"), "leaked forever");
    assert!(!w.has_pod("pod-orphan"), "orphan pods are still reaped");
}

/// Orphan secrets (no live row, pod gone, older than the minimum age) of a
/// dead instance, of one never registered and of the janitor's own are
/// deleted by the janitor; a live peer's is left to the peer, whose own
/// fallback pass deletes it; one with an empty pod label and a young one
/// survive.
#[madsim::test]
async fn secret_reaper_is_scoped_by_instance() {
    let w = Harness::new();
    let c = cfg();
    let (_pool, reapers) = w.pool_and_reapers(&c, Mutants::none());
    let pool_b = w.pool_on(B, w.client(), &c, Mutants::none());
    let reapers_b = w.reapers(&pool_b, w.client(), &c, Mutants::none());
    let epoch = w.hold_lease(A).await;
    w.beat(D).await;
    w.create_secret_of("s-dead", "pod-dead", D);
    w.create_secret_of("s-unknown", "pod-unknown", U);
    w.create_secret_of("s-own", "pod-own", A);
    w.create_secret_of("s-peer", "pod-peer", B);
    w.create_secret_of("s-no-pod", "", D);

    w.at(c.orphan_min_age_ms + 10_000).await;
    w.create_secret_of("s-young", "pod-young", D);
    w.beat(A).await;
    w.beat(B).await;
    let live = live_instances(&w.instances(), w.now(), c.dead_after_ms);
    assert_eq!(live.into_iter().collect::<Vec<_>>(), vec![A, B], "D is dead, U unknown");
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
    for gone in ["s-dead", "s-unknown", "s-own"] {
        assert!(!w.has_secret(gone), "{gone} is the janitor's to delete: {:?}", w.secrets());
    }
    for kept in ["s-peer", "s-no-pod", "s-young"] {
        assert!(w.has_secret(kept), "{kept} must survive the janitor: {:?}", w.secrets());
    }

    // The peer's own fallback pass deletes its own orphan, nothing else.
    reapers_b.fallback_pass().await;
    assert!(w.log.reap_failures(B).is_empty(), "{:?}", w.log.reap_failures(B));
    assert!(!w.has_secret("s-peer"), "the peer reaps its own orphan secret");
    assert!(w.has_secret("s-no-pod") && w.has_secret("s-young"), "{:?}", w.secrets());
    // The young one goes once it is old enough.
    w.at(2 * c.orphan_min_age_ms + 10_001).await;
    w.beat(A).await;
    w.beat(B).await;
    reapers.janitor_pass(&Gate::none(), epoch).await;
    assert_eq!(w.secrets(), vec!["s-no-pod".to_string()], "an empty pod label is never judged");
}

/// A live peer (B) is mid-spawn: its row and secret exist, its pod does
/// not yet; and it has an orphan secret of its own. The scoped janitor
/// leaves both; the pre-fix unscoped reaper deletes both, the spawning
/// worker's secret included.
#[madsim::test]
async fn secret_reaper_leaves_a_live_peers_secrets_and_the_mutant_does_not() {
    for (mutants, kept) in [(Mutants::none(), true), (Mutants::only(Mutant::SecretReaperUnscoped), false)] {
        let w = Harness::new();
        let c = cfg();
        let (_pool, reapers) = w.pool_and_reapers(&c, mutants.clone());
        let epoch = w.hold_lease(A).await;
        w.insert_b_spawning().await;
        w.create_secret_of("secret-w2.1", "pod-w2.1", B);
        w.create_secret_of("s-peer", "pod-peer", B);
        w.at(c.orphan_min_age_ms + 10_000).await;
        w.beat(A).await;
        w.beat(B).await;
        reapers.janitor_pass(&Gate::none(), epoch).await;
        assert!(w.log.reap_failures(A).is_empty(), "{:?}", w.log.reap_failures(A));
        assert_eq!(w.has_secret("secret-w2.1"), kept, "{mutants:?}: the spawning worker's secret: {:?}", w.secrets());
        assert_eq!(w.has_secret("s-peer"), kept, "{mutants:?}: the live peer's orphan: {:?}", w.secrets());
        assert_eq!(w.row("w2.1").state, WorkerState::Spawning);
    }
}
