//! The cron admin and the settings readers (docs/design.md §2.7).
//!
//! The admin creates the workload's jobs at the start, then, through the
//! fault phase, edits their schedules, pauses, resumes, deletes and creates
//! jobs, and writes the settings row, each at its seeded rate; a write that
//! fails is simply not retried (the store's record of it is the truth).
//! The readers ask every running replica for the settings it serves, so
//! the oracle sees what a client of each replica would (C5).

use crate::addresses::replica_addr;
use crate::client_node::think as wait;
use crate::options::CronWorkload;
use crate::remote_store::RemoteStore;
use crate::replica_node::{SessionReply, SessionRequest};
use crate::rpc::{Caller, SESSION_TAG};
use crate::store_node::STORE_ADDR;
use crate::world::{Shared, World};
use haywire_core::store::{JobStatus, Schedule, Store, StoreReply, StoreRequest};
use haywire_traces::EventKind;
use madsim::net::Endpoint;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Duration;

/// Cron expressions the admin draws from: they fall due together across
/// jobs, so fires race for the cap.
const EXPRESSIONS: [&str; 4] = ["*/10 * * * * *", "*/15 * * * * *", "5/20 * * * * *", "*/30 * * * * *"];

/// How long a reader waits for a replica's answer.
const READ_PATIENCE: Duration = Duration::from_secs(2);

fn schedule(rng: &Shared<ChaCha8Rng>, c: &CronWorkload) -> Schedule {
    let mut rng = rng.lock();
    if rng.gen_range(0..100) < c.cron_pct {
        Schedule::Cron { expr: EXPRESSIONS[rng.gen_range(0..EXPRESSIONS.len())].to_string() }
    } else {
        // Whole seconds, so a reader of the trace can follow the slots.
        let (lo, hi) = (c.every_ms.0.div_ceil(1000), (c.every_ms.1 / 1000).max(c.every_ms.0.div_ceil(1000)));
        Schedule::Every { ms: rng.gen_range(lo..=hi) * 1000 }
    }
}

async fn store_for(tag_base: u64) -> RemoteStore {
    let ep = match Endpoint::bind("0.0.0.0:0").await {
        Ok(ep) => ep,
        Err(e) => panic!("the cron admin cannot bind a socket: {e}"),
    };
    RemoteStore::new(Arc::new(Caller::new(ep, 0, usize::MAX, tag_base)), STORE_ADDR)
}

/// The admin's main: jobs `j1..jN` at the start, then changes until the
/// quiet period.
pub async fn admin(world: Arc<World>) {
    let c = world.clients.lock().workload.cron.clone();
    let store = store_for(2_000_000).await;
    let rng = &world.rng;
    let mut next_id = 1;
    // The initial jobs are retried until they exist: the workload's premise.
    for _ in 0..c.jobs {
        let id = format!("j{next_id}");
        next_id += 1;
        let s = schedule(rng, &c);
        loop {
            let req = StoreRequest::CreateJob { id: id.clone(), schedule: s.clone() };
            if let Ok(StoreReply::Job(_)) = store.call(req).await {
                break;
            }
            crate::timer::sleep(Duration::from_secs(1)).await;
        }
    }
    let settings = {
        let w = world.clone();
        madsim::task::spawn(async move { write_settings(w, c.settings_every_ms).await })
    };
    if c.admin_every_ms > 0 {
        loop {
            crate::timer::sleep(wait(rng, c.admin_every_ms)).await;
            if world.clients.lock().quiet {
                break;
            }
            let jobs = match store.call(StoreRequest::ListJobs).await {
                Ok(StoreReply::Jobs { list, .. }) => list,
                _ => continue,
            };
            let live: Vec<_> = jobs.iter().filter(|j| j.status != JobStatus::Deleted).collect();
            let (roll, pick) = {
                let mut r = rng.lock();
                (r.gen_range(0..100u32), r.gen_range(0..live.len().max(1)))
            };
            let req = match (roll, live.get(pick)) {
                (0..=34, Some(j)) => StoreRequest::EditJob { id: j.id.clone(), schedule: Some(schedule(rng, &c)), status: None },
                (35..=59, Some(j)) => {
                    let status = if j.status == JobStatus::Paused { JobStatus::Active } else { JobStatus::Paused };
                    StoreRequest::EditJob { id: j.id.clone(), schedule: None, status: Some(status) }
                }
                (60..=69, Some(j)) if live.len() > 2 => {
                    StoreRequest::EditJob { id: j.id.clone(), schedule: None, status: Some(JobStatus::Deleted) }
                }
                _ => {
                    let id = format!("j{next_id}");
                    next_id += 1;
                    StoreRequest::CreateJob { id, schedule: schedule(rng, &c) }
                }
            };
            let _ = store.call(req).await;
        }
    }
    let _ = settings.await;
}

async fn write_settings(world: Arc<World>, every_ms: u64) {
    if every_ms == 0 {
        return;
    }
    let store = store_for(2_000_001).await;
    let mut n = 0u64;
    loop {
        crate::timer::sleep(wait(&world.rng, every_ms)).await;
        if world.clients.lock().quiet {
            return;
        }
        n += 1;
        let _ = store.call(StoreRequest::WriteSettings { value: format!("config-{n}") }).await;
    }
}

/// The readers: every `read_every_ms`, ask each running replica what
/// settings it serves, until the run ends.
pub async fn readers(world: Arc<World>) {
    let every = world.clients.lock().workload.cron.read_every_ms;
    if every == 0 {
        return;
    }
    let ep = match Endpoint::bind("0.0.0.0:0").await {
        Ok(ep) => ep,
        Err(e) => panic!("the settings reader cannot bind a socket: {e}"),
    };
    let caller = Caller::new(ep, 0, usize::MAX, 2_000_002);
    loop {
        crate::timer::sleep(Duration::from_millis(every)).await;
        let targets: Vec<(usize, String)> = {
            let p = world.processes.lock();
            (0..p.machines.len()).filter(|&i| p.machines[i].enabled).map(|i| (i, p.machines[i].name.clone())).collect()
        };
        for (i, name) in targets {
            let call = caller.call::<SessionRequest, SessionReply>(replica_addr(i), SESSION_TAG, SessionRequest::ReadSettings);
            let Ok(Ok(Ok(v))) = crate::timer::timeout(READ_PATIENCE, call).await else { continue };
            let version = v.parse::<u64>().ok();
            world.recorder.record("sim", None, EventKind::SettingsServed { replica: name, version });
        }
    }
}
