//! The cron scheduler against a real (in-memory) store on simulated time:
//! a single scheduler fires every slot once; two share the jobs; a lost
//! reply is settled by reading the record back; a paused job stops and an
//! edit re-arms; a shutdown releases jobs and finishes its runs.

use crate::clock::{Clock, Millis};
use crate::cron::scheduler::{Cron, CronParams};
use crate::cron::{CronConfig, JobRunner};
use crate::ids::InstanceId;
use crate::mutants::Mutants;
use crate::signal as watch;
use crate::store::{FireKind, JobStatus, Schedule, StoreBackend, StoreReply, StoreRequest};
use crate::testkit::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Records every run it is handed, and takes `run_ms` of simulated time.
#[derive(Clone, Default)]
struct Runs {
    log: Arc<Mutex<Vec<(String, Millis)>>>,
    run_ms: u64,
}

impl JobRunner for Runs {
    fn run(&self, job: &str, slot: Millis) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        lock(&self.log).push((job.to_string(), slot));
        let d = std::time::Duration::from_millis(self.run_ms);
        Box::pin(async move { tokio::time::sleep(d).await })
    }
}

impl Runs {
    fn of(&self, job: &str) -> Vec<Millis> {
        lock(&self.log).iter().filter(|(j, _)| j == job).map(|(_, s)| *s).collect()
    }
}

fn cfg() -> CronConfig {
    CronConfig { enabled: true, reconcile_ms: 2_000, misfire_after_ms: 1_500, max_concurrent_runs: 0, ..CronConfig::default() }
}

fn params(me: Option<InstanceId>) -> CronParams {
    CronParams { me, cfg: cfg(), dead_after_ms: 30_000, call_timeout_ms: 1_000, drain_timeout_ms: 5_000, mutants: Mutants::none() }
}

async fn create(w: &Harness, id: &str, every_ms: u64) {
    let req = StoreRequest::CreateJob { id: id.into(), schedule: Schedule::Every { ms: every_ms } };
    w.inner.call_now(req);
}

trait CallNow {
    fn call_now(&self, req: StoreRequest) -> StoreReply;
}

impl CallNow for crate::store::LocalStore<crate::store::MemStore, crate::clock::SystemClock> {
    fn call_now(&self, req: StoreRequest) -> StoreReply {
        let now = crate::clock::SystemClock::now(&self.clock_ref());
        self.with_backend(|b| b.apply(&req, now)).expect("store call")
    }
}

fn start<S: crate::store::Store>(
    w: &Harness,
    p: CronParams,
    store: Arc<S>,
    runs: &Runs,
) -> (Arc<Cron<S, crate::clock::SystemClock>>, watch::Sender<bool>) {
    let cron = Arc::new(Cron::new(p, store, Arc::new(w.clock.clone()), Arc::new(runs.clone())));
    let (tx, rx) = watch::channel(false);
    tokio::spawn(cron.clone().reconcile_loop(rx));
    (cron, tx)
}

async fn register(w: &Harness, who: InstanceId) {
    w.inner.call_now(StoreRequest::RegisterInstance { id: who, dead_after_ms: None });
}

#[madsim::test]
async fn a_single_scheduler_fires_every_slot_once_and_a_lone_replica_does_the_same() {
    let w = Harness::new();
    create(&w, "j", 5_000).await;
    let single = Runs::default();
    let (c, tx) = start(&w, params(None), w.client(), &single);
    w.at(31_000).await;
    let want = single.of("j");
    assert_eq!(want, [5_000, 10_000, 15_000, 20_000, 25_000, 30_000]);
    tx.send(true).unwrap();
    c.abort_all();

    let w = Harness::new();
    register(&w, A).await;
    create(&w, "j", 5_000).await;
    let lone = Runs::default();
    let (_c, _tx) = start(&w, params(Some(A)), w.client(), &lone);
    // Heartbeats keep A alive (the registry's job in a replica).
    for t in (10_000..=30_000).step_by(10_000) {
        w.at(t).await;
        register(&w, A).await;
    }
    w.at(31_000).await;
    assert_eq!(lone.of("j"), want, "one replica behaves as one scheduler");
}

#[madsim::test]
async fn two_replicas_share_the_jobs_and_each_slot_runs_once() {
    let w = Harness::new();
    register(&w, A).await;
    register(&w, B).await;
    for j in ["a", "b", "c", "d"] {
        create(&w, j, 3_000).await;
    }
    let runs = Runs::default();
    let (_ca, _ta) = start(&w, params(Some(A)), w.client(), &runs);
    let (_cb, _tb) = start(&w, params(Some(B)), w.client(), &runs);
    w.at(20_500).await;
    let jobs = match w.inner.call_now(StoreRequest::ListJobs) {
        StoreReply::Jobs { list, .. } => list,
        other => panic!("{other:?}"),
    };
    let owned_by = |who| jobs.iter().filter(|j| j.owner == Some(who)).count();
    assert_eq!((owned_by(A), owned_by(B)), (2, 2), "least-loaded: {jobs:?}");
    for j in ["a", "b", "c", "d"] {
        let mut slots = runs.of(j);
        let n = slots.len();
        slots.dedup();
        assert_eq!(slots.len(), n, "job {j} ran a slot twice: {:?}", runs.of(j));
        assert!(n >= 5, "job {j}: {:?}", runs.of(j));
    }
}

#[madsim::test]
async fn a_lost_fire_reply_is_settled_by_reading_the_record() {
    let w = Harness::new();
    register(&w, A).await;
    create(&w, "j", 4_000).await;
    let store = w.client();
    store.lose_next(1, is_op("commit_fire"));
    let runs = Runs::default();
    let (_c, _tx) = start(&w, params(Some(A)), store.clone(), &runs);
    w.at(9_000).await;
    assert_eq!(runs.of("j"), [4_000, 8_000], "the committed slot whose reply was lost runs once");
    assert!(!store.reached("read_fire").is_empty());
}

#[madsim::test]
async fn a_paused_job_stops_and_an_edit_re_arms_the_new_schedule() {
    let w = Harness::new();
    register(&w, A).await;
    create(&w, "j", 4_000).await;
    let runs = Runs::default();
    let (_c, _tx) = start(&w, params(Some(A)), w.client(), &runs);
    w.at(9_000).await;
    w.inner.call_now(StoreRequest::EditJob { id: "j".into(), schedule: None, status: Some(JobStatus::Paused) });
    w.at(20_000).await;
    assert_eq!(runs.of("j"), [4_000, 8_000], "nothing while paused");
    let edit = StoreRequest::EditJob { id: "j".into(), schedule: Some(Schedule::Every { ms: 3_000 }), status: Some(JobStatus::Active) };
    w.inner.call_now(edit);
    w.at(30_000).await;
    assert_eq!(runs.of("j"), [4_000, 8_000, 23_000, 26_000, 29_000], "the new schedule, from the edit");
}

#[madsim::test]
async fn shutdown_releases_the_jobs_and_finishes_the_runs() {
    let w = Harness::new();
    register(&w, A).await;
    create(&w, "j", 4_000).await;
    let runs = Runs { run_ms: 60_000, ..Runs::default() };
    let (cron, tx) = start(&w, params(Some(A)), w.client(), &runs);
    w.at(4_500).await;
    assert_eq!(cron.runs_in_flight(), 1);
    tx.send(true).unwrap();
    cron.shutdown().await;
    assert!(w.now() <= 4_500 + 5_000 + 1_500, "the run had the drain timeout, no more: {}", w.now());
    let jobs = match w.inner.call_now(StoreRequest::ListJobs) {
        StoreReply::Jobs { list, .. } => list,
        other => panic!("{other:?}"),
    };
    assert_eq!(jobs[0].owner, None, "released");
    let running = match w.inner.call_now(StoreRequest::ListRunning) {
        StoreReply::Running { list, .. } => list,
        other => panic!("{other:?}"),
    };
    assert!(running.is_empty(), "the cut-off run's record is finished: {running:?}");
    let fires = match w.inner.call_now(StoreRequest::ReadFire { job: "j".into(), slot: 4_000 }) {
        StoreReply::FireRead(f) => f,
        other => panic!("{other:?}"),
    };
    assert_eq!(fires.map(|f| f.kind), Some(FireKind::Run));
}
