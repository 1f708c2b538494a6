//! One control-plane process: its lease coordinator and leader-gated work.

use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::{ConfigError, ReplicaConfig};
use crate::cron::scheduler::{Cron, CronParams};
use crate::cron::{JobRunner, SettingsCache};
use crate::store::SettingsRecord;
use crate::fence::{FenceSwitch, Gated};
use crate::ids::InstanceId;
use crate::lease::{AllOf, LeaseCoordinator, LeaderWork};
use crate::mutants::{Mutant, Mutants};
use crate::observe::{CoreEvent, Observer};
use crate::reconciler::Reconciler;
use crate::registry::{heartbeat_and_fence, SelfFence};
use crate::store::Store;
use crate::worker::{Janitor, Pool, Reapers, Sessions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use crate::signal as watch;

/// A running replica. Dropping it without [`Replica::shutdown`] is a crash:
/// the coordinator is aborted and nothing is released (its leader-gated
/// loops see their cancel channel close and exit).
pub struct Replica {
    instance: InstanceId,
    mutants: Mutants,
    obs: Arc<dyn Observer>,
    shutdown_tx: watch::Sender<bool>,
    /// Stops the heartbeat, at the very end of a shutdown.
    exit_tx: watch::Sender<bool>,
    fenced: watch::Receiver<bool>,
    /// `None` once shut down.
    coordinator: Option<tokio::task::JoinHandle<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    is_leader: Arc<AtomicBool>,
    sessions: Arc<dyn Sessions>,
    /// The pool's part of a shutdown, given the coordinator to wait for
    /// meanwhile (none: do not wait for it).
    drain: Option<Box<dyn FnOnce(Option<tokio::task::JoinHandle<()>>) -> crate::worker::pool::BoxFuture<'static, ()> + Send>>,
    janitor_last_ok: Arc<AtomicU64>,
    fallback_last_ok: Arc<AtomicU64>,
    /// The cron scheduler's stop (its timers and runs outlive no replica),
    /// and its graceful shutdown; none without cron.
    cron: Option<CronPart>,
    settings: Option<Arc<SettingsCache>>,
}

/// The cron scheduler, behind what the replica needs of it (its store
/// type is the replica's fenced store, which the struct does not name).
struct CronPart {
    abort: Box<dyn Fn() + Send + Sync>,
    shutdown: Box<dyn FnOnce() -> crate::worker::pool::BoxFuture<'static, ()> + Send>,
}

/// The replica's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub is_leader: bool,
    /// Store time of the last janitor / fallback pass in which nothing
    /// failed (0: never).
    pub janitor_last_reap: u64,
    pub fallback_last_reap: u64,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(c) = self.coordinator.take() {
            c.abort();
        }
        if let Some(cron) = &self.cron {
            (cron.abort)();
        }
        for t in self.background.drain(..) {
            t.abort();
        }
    }
}

impl Replica {
    /// Start a replica as a fresh `instance` (mint a new one per process
    /// start). Spawns its tasks on the current runtime.
    pub fn start<S: Store, C: Clock, K: Cluster>(
        instance: InstanceId,
        config: ReplicaConfig,
        store: Arc<S>,
        clock: Arc<C>,
        cluster: Arc<K>,
        obs: Arc<dyn Observer>,
    ) -> Result<Replica, ConfigError> {
        Self::start_with_runner(instance, config, store, clock, cluster, obs, None)
    }

    /// [`Replica::start`], with the job runner its cron scheduler fires
    /// runs through (required when `config.cron.enabled`).
    pub fn start_with_runner<S: Store, C: Clock, K: Cluster>(
        instance: InstanceId,
        config: ReplicaConfig,
        store: Arc<S>,
        clock: Arc<C>,
        cluster: Arc<K>,
        obs: Arc<dyn Observer>,
        runner: Option<Arc<dyn JobRunner>>,
    ) -> Result<Replica, ConfigError> {
        config.validate()?;
        if config.cron.enabled && runner.is_none() {
            return Err(ConfigError("cron.enabled needs a job runner to fire runs through".into()));
        }
        obs.observe(CoreEvent::Started { instance });
        // Every call of this instance goes through the fence switch: once it
        // fences itself, nothing of it reaches the store or the cluster.
        let switch = FenceSwitch::new();
        let store = Arc::new(Gated::new(store, switch.clone()));
        let cluster = Arc::new(Gated::new(cluster, switch.clone()));
        let pool = Arc::new(Pool::new(
            instance,
            config.fleet.clone(),
            config.mutants.clone(),
            store.clone(),
            clock.clone(),
            cluster.clone(),
            obs.clone(),
        ));
        let reapers = Arc::new(Reapers {
            me: instance,
            cfg: config.fleet.clone(),
            lease_name: config.lease.name.clone(),
            mutants: config.mutants.clone(),
            store: store.clone(),
            clock: clock.clone(),
            cluster,
            obs: obs.clone(),
            pool: pool.clone(),
            janitor_last_ok: Arc::new(AtomicU64::new(0)),
            fallback_last_ok: Arc::new(AtomicU64::new(0)),
            unsettled: Default::default(),
        });
        let reconciler = Reconciler {
            instance,
            lease_name: config.lease.name.clone(),
            cfg: config.reconciler.clone(),
            rpc_timeout_ms: config.lease.rpc_timeout_ms,
            store: store.clone(),
            clock: clock.clone(),
            obs: obs.clone(),
        };
        let work: Vec<Arc<dyn LeaderWork>> = vec![Arc::new(reconciler), Arc::new(Janitor(reapers.clone()))];
        let coordinator = LeaseCoordinator::new(
            instance,
            config.lease.clone(),
            config.mutants.clone(),
            store.clone(),
            clock.clone(),
            Arc::new(AllOf(work)),
            obs.clone(),
        );
        let is_leader = coordinator.is_leader_metric();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        // The heartbeat goes on until the process exits: a replica still
        // shutting down is alive, and must not be taken for dead.
        let (exit_tx, exit_rx) = watch::channel(false);
        let (fenced_tx, fenced) = watch::channel(false);
        // The zombie mutant: never fence, and heartbeat with the plain upsert
        // that revives a dead instance.
        let zombie = config.mutants.on(Mutant::ZombieInstance);
        let fenced_pool = pool.clone();
        let stop: Box<dyn Fn() + Send + Sync> = Box::new(move || {
            switch.throw();
            fenced_pool.fence();
        });
        let fence = (config.fleet.self_fence && !zombie)
            .then(|| SelfFence { after_ms: config.self_fence_after_ms(), stop, fenced: fenced_tx });
        let threshold = (!zombie).then_some(config.fleet.dead_after_ms);
        let mut cron_part = None;
        let mut settings = None;
        let mut cron_tasks = Vec::new();
        if let (true, Some(runner)) = (config.cron.enabled, runner) {
            let params = CronParams {
                me: Some(instance),
                cfg: config.cron.clone(),
                dead_after_ms: config.fleet.dead_after_ms,
                call_timeout_ms: config.fleet.call_timeout_ms,
                drain_timeout_ms: config.fleet.drain_timeout_ms,
                mutants: config.mutants.clone(),
            };
            let cron = Arc::new(Cron::new(params, store.clone(), clock.clone(), runner));
            cron_tasks.push(tokio::spawn(cron.clone().reconcile_loop(shutdown_rx.clone())));
            let cache = Arc::new(SettingsCache::new());
            let poll = cache.clone().poll_loop(
                config.cron.clone(),
                config.fleet.call_timeout_ms,
                config.mutants.clone(),
                store.clone(),
                clock.clone(),
                exit_rx.clone(),
            );
            cron_tasks.push(tokio::spawn(poll));
            settings = Some(cache);
            let (aborting, stopping) = (cron.clone(), cron);
            cron_part = Some(CronPart {
                abort: Box::new(move || aborting.abort_all()),
                shutdown: Box::new(move || Box::pin(async move { stopping.shutdown().await })),
            });
        }
        let mut background = vec![
            tokio::spawn(heartbeat_and_fence(instance, config.fleet.clone(), store, clock, obs.clone(), exit_rx, fence, threshold)),
            tokio::spawn(reapers.clone().upkeep_loop(shutdown_rx.clone())),
            tokio::spawn(pool.clone().health_loop(shutdown_rx.clone())),
        ];
        background.extend(cron_tasks);
        let coordinator = tokio::spawn(coordinator.run(shutdown_rx));
        let drain_pool = pool.clone();
        Ok(Replica {
            instance,
            mutants: config.mutants,
            obs,
            shutdown_tx,
            exit_tx,
            fenced,
            coordinator: Some(coordinator),
            background,
            is_leader,
            sessions: pool,
            drain: Some(Box::new(move |coordinator| {
                Box::pin(async move {
                    // Sessions drain while leader work stops; idle workers
                    // are retired once it has (docs/design.md §2.5).
                    let sessions = drain_pool.drain_sessions();
                    match coordinator {
                        Some(c) => {
                            let _ = tokio::join!(c, sessions);
                        }
                        None => sessions.await,
                    }
                    drain_pool.shutdown().await
                })
            })),
            janitor_last_ok: reapers.janitor_last_ok.clone(),
            fallback_last_ok: reapers.fallback_last_ok.clone(),
            cron: cron_part,
            settings,
        })
    }

    pub fn instance(&self) -> InstanceId {
        self.instance
    }

    /// The "is leader" metric.
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::SeqCst)
    }

    pub fn metrics(&self) -> Metrics {
        Metrics {
            is_leader: self.is_leader(),
            janitor_last_reap: self.janitor_last_ok.load(Ordering::SeqCst),
            fallback_last_reap: self.fallback_last_ok.load(Ordering::SeqCst),
        }
    }

    /// Resolves once this instance has fenced itself (docs/design.md §2.6,
    /// "Health and self-fencing"): it could not confirm its heartbeat in
    /// time (or the store holds it dead), so others may take what it owns.
    /// By then it has stopped: its sessions ended with an error, new ones
    /// are refused, and no call of it reaches the store or the cluster. Its
    /// host drops it and, once the store answers, starts a new instance.
    /// Never resolves otherwise.
    pub fn fenced(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.fenced.clone();
        async move {
            loop {
                if *rx.borrow_and_update() {
                    return;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// The settings this replica serves (`None`: cron and settings are
    /// off, or the first read has not landed yet).
    pub fn settings(&self) -> Option<SettingsRecord> {
        self.settings.as_ref().and_then(|s| s.current())
    }

    /// A handle on the settings this replica serves, valid after it is gone.
    pub fn settings_cache(&self) -> Option<Arc<SettingsCache>> {
        self.settings.clone()
    }

    /// Client sessions, served by this replica's worker pool.
    pub fn sessions(&self) -> Arc<dyn Sessions> {
        self.sessions.clone()
    }

    /// Graceful shutdown: take no new sessions, stop leader-gated work and
    /// release the lease while live sessions drain (up to the drain
    /// timeout, then handed over), retire idle workers, and only then
    /// return (after which the process may exit).
    pub async fn shutdown(mut self) {
        self.obs.observe(CoreEvent::ShutdownBegan);
        let _ = self.shutdown_tx.send(true);
        let coordinator = self.coordinator.take().filter(|_| !self.mutants.on(Mutant::ShutdownNoWait));
        // Cron stops alongside: its jobs are released at once, its runs
        // get the drain timeout (docs/design.md §2.7).
        let cron = self.cron.take().map(|c| (c.shutdown)());
        let cron = async move {
            if let Some(c) = cron {
                c.await
            }
        };
        if let Some(drain) = self.drain.take() {
            let _ = tokio::join!(drain(coordinator), cron);
        } else {
            cron.await;
        }
        // With the mutant, the caller exits while the coordinator is still
        // stopping: its release dies with the process.
        let _ = self.exit_tx.send(true);
        self.obs.observe(CoreEvent::ShutdownDone);
    }
}
