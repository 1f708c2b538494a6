//! One live run (docs/design.md §11): the store and its gateway, N replica
//! processes, the clients and the fault driver; then the journals merged
//! into one trace and judged.

use crate::clients::{self, ClientWorld, Ports};
use crate::clock::RunClock;
use crate::gateway::{Gateway, GatewayRequest, Reopen};
use crate::journal::Journal;
use crate::judge::{self, Failover, Jitter};
use crate::schedule::{self, LiveFault, Timed};
use crate::wire;
use haywire_core::store::{PgClock, PgServer, PgStore, SqliteStore, StoreBackend, StoreError};
use haywire_core::Mutant;
use haywire_sim::options::MAX_REPLICAS;
use haywire_sim::{ClockSpec, FaultRates, RunOptions, Violation};
use haywire_traces::{EventKind, Trace};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

/// Where the store lives.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreSpec {
    /// A SQLite file (created; it must not hold a store already).
    Sqlite(PathBuf),
    /// A PostgreSQL server the user runs (its database must hold no
    /// haywire store yet).
    Postgres(String),
    /// A throwaway PostgreSQL server haywire starts, restarts as a fault,
    /// and removes at the end.
    PostgresTemp,
}

impl FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "expected sqlite:PATH, postgres:URL (postgresql://user@host:port/db) or postgres:temp";
        match s.split_once(':') {
            Some(("sqlite", path)) if !path.is_empty() => Ok(StoreSpec::Sqlite(PathBuf::from(path))),
            Some(("postgres", "temp")) => Ok(StoreSpec::PostgresTemp),
            Some(("postgres", url)) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreSpec::Postgres(url.to_string()))
            }
            _ => Err(format!("bad store '{s}': {usage}")),
        }
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreSpec::Postgres(url) => write!(f, "postgres:{url}"),
            StoreSpec::PostgresTemp => f.write_str("postgres:temp"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LiveArgs {
    pub replicas: usize,
    pub store: StoreSpec,
    /// Length of the fault phase (the quiet period follows).
    pub seconds: u64,
    pub seed: u64,
    pub mutant: Option<Mutant>,
    pub clients: usize,
    /// Where the journals, process logs, options and trace go.
    pub dir: PathBuf,
    /// Shell command that restarts a `postgres:URL` server (without one,
    /// the fault reconnects the pool only).
    pub restart_cmd: Option<String>,
    /// The program to start replica processes with (`haywire`).
    pub program: PathBuf,
    /// Progress lines on stderr.
    pub verbose: bool,
}

/// What a live run leaves.
pub struct LiveReport {
    pub trace: Trace,
    pub trace_path: PathBuf,
    pub violation: Option<Violation>,
    pub failovers: Vec<Failover>,
    pub jitter: Jitter,
    pub plan: Vec<Timed>,
    pub options: RunOptions,
}

/// The options record of a live world: the simulator's fleet world with
/// real clocks (no skew, no drift), loopback latency, and fleet timings
/// shortened so a run of a minute or two sees workers idle, reaped and
/// taken over.
pub fn live_options(args: &LiveArgs) -> Result<RunOptions, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut o = haywire_scenarios::world::fleet(&mut rng);
    let n = args.replicas;
    o.replicas = n;
    o.initial_replicas = n;
    o.clocks = vec![ClockSpec { skew_ms: 0, drift_ppm: 0 }; n];
    o.fault_phase_ms = args.seconds * 1000;
    o.latency_ms = (1, 5);
    o.faults = FaultRates::default();
    o.pod_start_ms = (100, 500);
    if let Some(m) = args.mutant {
        o.replica.mutants = haywire_core::Mutants::only(m);
    }
    // A lease of seconds, not the production 15 s, so a run of a minute
    // sees several terms, and a leader can be frozen past its lease yet
    // short of its self-fence deadline (schedule::LONG_PAUSE_MS).
    let l = &mut o.replica.lease;
    l.ttl_ms = 12_000;
    l.renew_interval_ms = 2_000;
    l.renew_deadline_ms = 4_000;
    l.retry_period_ms = 1_000;
    // Sweeps of two effects 2 s apart, a second between sweeps: a leader
    // stopped just after a sweep's first effect still has a step to go,
    // longer than a contender's retry (schedule::LiveFault::StopLeader).
    o.replica.reconciler.interval_ms = 1_000;
    o.replica.reconciler.effects_per_sweep = 2;
    o.replica.reconciler.step_ms = 2_000;
    let f = &mut o.replica.fleet;
    f.heartbeat_ms = 3_000;
    f.dead_after_ms = 22_000;
    f.hot_idle_ttl_ms = 8_000;
    f.reap_interval_ms = 3_000;
    f.orphan_pass_deadline_ms = 2_000;
    f.orphan_min_age_ms = 5_000;
    f.resume_window_ms = 10_000;
    f.client_timeout_ms = 20_000;
    o.workload.clients = args.clients;
    o.workload.think_ms = 1_500;
    o.workload.session_ms = (300, 4_000);
    o.workload.orgs = 2;
    o.workload.dup_reconnect_pct = 20;
    haywire_scenarios::world::settle_bounds(&mut o);
    // Patience and reconnect bounds for loopback, not a simulated network
    // of pods that take seconds to start; the quiet period then outlasts a
    // session, a reconnect, TTL, a death and three reap passes.
    let f = &o.replica.fleet;
    o.workload.patience_ms = 10_000;
    o.workload.reconnect_ms = f.dead_after_ms + 8_000;
    o.quiet_ms = o.workload.session_ms.1
        + o.workload.reconnect_ms
        + f.resume_window_ms
        + f.hot_idle_ttl_ms
        + f.dead_after_ms
        + 3 * f.reap_interval_ms
        + 5_000;
    o.validate()?;
    Ok(o)
}

fn open_store(spec: &StoreSpec, server: Option<&PgServer>) -> Result<Box<dyn StoreBackend>, StoreError> {
    Ok(match spec {
        StoreSpec::Sqlite(path) => Box::new(SqliteStore::open(path)?),
        StoreSpec::Postgres(url) => Box::new(PgStore::connect(url, 4, PgClock::Given)?),
        StoreSpec::PostgresTemp => {
            let url = server.map(|s| s.url()).ok_or(StoreError::Unavailable("no server".into()))?;
            Box::new(PgStore::connect(&url, 4, PgClock::Given)?)
        }
    })
}

/// A live run judges from the store's first write: it must start empty.
fn check_empty(b: &mut dyn StoreBackend, lease: &str) -> Result<(), String> {
    let e = |e: StoreError| e.to_string();
    let busy = b.read_lease(lease).map_err(e)?.is_some()
        || !b.list_instances().map_err(e)?.is_empty()
        || !b.list_workers().map_err(e)?.is_empty();
    if busy {
        return Err("the store already holds a lease, instances or workers: a live run needs an empty store (a new \
                    SQLite file, or a database without haywire's tables)"
            .into());
    }
    Ok(())
}

/// One replica machine as the driver sees it.
#[derive(Default)]
struct Machine {
    pid: Option<Pid>,
    spawns: u32,
    /// Set when the driver itself ends the process (so the waiter does
    /// not report the exit as unexpected).
    expected: bool,
    paused: bool,
    exit: Option<watch::Receiver<Option<i32>>>,
}

struct Driver {
    args: LiveArgs,
    journal: Arc<Journal>,
    gateway: Arc<Gateway>,
    gateway_addr: SocketAddr,
    options_path: PathBuf,
    machines: Mutex<Vec<Machine>>,
    ports: Ports,
    grace: Duration,
    origin_us: u64,
}

fn name_of(i: usize) -> String {
    format!("r{}", i + 1)
}

impl Driver {
    fn say(&self, msg: &str) {
        if self.args.verbose {
            let t = self.journal.clock().now_us();
            eprintln!("[{:>4}.{:03}s] {msg}", t / 1_000_000, (t / 1000) % 1000);
        }
    }

    fn record(&self, kind: EventKind) {
        self.journal.record("sim", None, kind);
    }

    fn machines(&self) -> std::sync::MutexGuard<'_, Vec<Machine>> {
        self.machines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_port(&self, i: usize, port: Option<u16>) {
        self.ports.lock().unwrap_or_else(|p| p.into_inner())[i] = port;
    }

    /// Start replica `i`'s process and wait for its session port.
    async fn spawn(self: &Arc<Self>, i: usize) -> Result<(), String> {
        let spawn = {
            let mut m = self.machines();
            m[i].spawns += 1;
            m[i].spawns
        };
        let dir = &self.args.dir;
        let journal = dir.join(format!("{}-{spawn}.jsonl", name_of(i)));
        let log = std::fs::File::create(dir.join(format!("{}-{spawn}.log", name_of(i)))).map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(&self.args.program)
            .arg("live-replica")
            .args(["--index", &i.to_string()])
            .args(["--gateway", &self.gateway_addr.to_string()])
            .args(["--origin-us", &self.origin_us.to_string()])
            .arg("--journal")
            .arg(&journal)
            .arg("--options")
            .arg(&self.options_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.args.program.display()))?;
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        let port = match first {
            Ok(Ok(Some(line))) => line.strip_prefix("port ").and_then(|p| p.parse::<u16>().ok()),
            _ => None,
        };
        let Some(port) = port else {
            let _ = child.kill().await;
            return Err(format!("{} did not report its session port (see {}/{}-{spawn}.log)", name_of(i), dir.display(), name_of(i)));
        };
        let (tx, rx) = watch::channel(None);
        {
            let mut m = self.machines();
            m[i].pid = pid;
            m[i].expected = false;
            m[i].paused = false;
            m[i].exit = Some(rx);
        }
        self.set_port(i, Some(port));
        let me = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let code = status.as_ref().ok().and_then(|s| s.code()).unwrap_or(-1);
            me.set_port(i, None);
            let expected = {
                let mut m = me.machines();
                m[i].pid = None;
                m[i].expected
            };
            if !expected {
                // Nobody asked it to go: core crashed or panicked.
                me.record(EventKind::Exited { target: name_of(i), graceful: false });
                me.say(&format!("{} exited on its own ({status:?})", name_of(i)));
            }
            let _ = tx.send(Some(code));
        });
        Ok(())
    }

    fn pid(&self, i: usize) -> Option<Pid> {
        self.machines()[i].pid
    }

    async fn wait_exit(&self, i: usize, within: Duration) -> Option<i32> {
        let rx = self.machines()[i].exit.clone();
        let mut rx = rx?;
        let wait = async {
            loop {
                if let Some(code) = *rx.borrow_and_update() {
                    return code;
                }
                if rx.changed().await.is_err() {
                    return -1;
                }
            }
        };
        tokio::time::timeout(within, wait).await.ok()
    }

    fn skipped(&self, fault: &str, reason: String) {
        self.say(&format!("{fault} skipped: {reason}"));
        self.record(EventKind::FaultSkipped { fault: fault.into(), reason });
    }

    /// SIGKILL replica `i`; the trace says so once it is gone.
    async fn kill(&self, fault: &str, i: usize) -> bool {
        let Some(pid) = self.pid(i) else {
            self.skipped(fault, format!("{} is not running", name_of(i)));
            return false;
        };
        if self.machines()[i].paused {
            // Another fault holds it (the leader frozen past its lease must
            // wake up deposed, not be killed in its sleep).
            self.skipped(fault, format!("{} is paused by another fault", name_of(i)));
            return false;
        }
        self.machines()[i].expected = true;
        let _ = kill(pid, Signal::SIGKILL);
        self.wait_exit(i, Duration::from_secs(10)).await;
        self.record(EventKind::Crash { target: name_of(i) });
        self.say(&format!("SIGKILL {}", name_of(i)));
        true
    }

    /// SIGSTOP replica `i` for `ms`, then SIGCONT.
    async fn pause(&self, fault: &str, i: usize, ms: u64) {
        let Some(pid) = self.pid(i) else {
            return self.skipped(fault, format!("{} is not running", name_of(i)));
        };
        if self.machines()[i].paused {
            return self.skipped(fault, format!("{} is paused already", name_of(i)));
        }
        self.machines()[i].paused = true;
        let _ = kill(pid, Signal::SIGSTOP);
        self.record(EventKind::Pause { target: name_of(i), ms });
        self.say(&format!("SIGSTOP {} for {ms} ms", name_of(i)));
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.record(EventKind::Resume { target: name_of(i) });
        let _ = kill(pid, Signal::SIGCONT);
        self.machines()[i].paused = false;
    }

    async fn restart_later(self: &Arc<Self>, i: usize, down_ms: u64) {
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        if self.pid(i).is_some() {
            return;
        }
        self.record(EventKind::Restart { target: name_of(i) });
        if let Err(e) = self.spawn(i).await {
            self.say(&format!("restart of {} failed: {e}", name_of(i)));
        }
    }

    /// The lease holder's replica, once there is one that runs unpaused
    /// (waiting up to one fault slot).
    async fn leader(&self) -> Option<(u64, usize)> {
        for _ in 0..(schedule::SLOT_MS / 100) {
            // The store read blocks (PostgreSQL's client): not on the runtime.
            let gw = self.gateway.clone();
            if let Ok(Some((inst, i))) = tokio::task::spawn_blocking(move || gw.leader()).await {
                let m = &self.machines()[i];
                if m.pid.is_some() && !m.paused {
                    return Some((inst, i));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Wait (up to a fault slot) until `inst` has just begun a sweep: its
    /// first effect of a sweep committed, the next one a step away.
    async fn mid_sweep(&self, inst: u64) {
        let since = self.journal.clock().now_us();
        for _ in 0..(schedule::SLOT_MS / 10) {
            if self.gateway.sweep_began(inst).is_some_and(|t| t >= since) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn apply(self: &Arc<Self>, fault: LiveFault, restart: Arc<dyn Fn() -> Result<(), String> + Send + Sync>, reopen: Arc<Reopen>) {
        match fault {
            LiveFault::KillLeader { down_ms } => match self.leader().await {
                Some((_, i)) => {
                    if self.kill("kill_leader", i).await {
                        self.restart_later(i, down_ms).await;
                    }
                }
                None => self.skipped("kill_leader", "no replica held the lease".into()),
            },
            LiveFault::Kill { target, down_ms } => {
                if self.kill("kill", target).await {
                    self.restart_later(target, down_ms).await;
                }
            }
            LiveFault::PauseLeader { ms } => match self.leader().await {
                Some((_, i)) => self.pause("pause_leader", i, ms).await,
                None => self.skipped("pause_leader", "no replica held the lease".into()),
            },
            LiveFault::Pause { target, ms } => self.pause("pause", target, ms).await,
            LiveFault::StopLeader { down_ms } => {
                let Some((inst, i)) = self.leader().await else {
                    return self.skipped("stop_leader", "no replica held the lease".into());
                };
                // Mid-sweep: the moment a shutdown that releases before its
                // loops stop (field report 000) hands the lease over while
                // leader work still runs.
                self.mid_sweep(inst).await;
                let Some(pid) = self.pid(i) else {
                    return self.skipped("stop_leader", format!("{} went down meanwhile", name_of(i)));
                };
                if self.machines()[i].paused {
                    return self.skipped("stop_leader", format!("{} is paused by another fault", name_of(i)));
                }
                self.machines()[i].expected = true;
                self.record(EventKind::ShutdownRequested { target: name_of(i) });
                self.say(&format!("SIGTERM {}", name_of(i)));
                let _ = kill(pid, Signal::SIGTERM);
                let graceful = match self.wait_exit(i, self.grace).await {
                    Some(0) => true,
                    _ => {
                        let _ = kill(pid, Signal::SIGKILL);
                        self.wait_exit(i, Duration::from_secs(10)).await;
                        false
                    }
                };
                self.record(EventKind::Exited { target: name_of(i), graceful });
                self.restart_later(i, down_ms).await;
            }
            LiveFault::RestartDatabase => {
                self.say("restarting the database");
                let gw = self.gateway.clone();
                let done = tokio::task::spawn_blocking(move || gw.restart_store(|| restart(), &reopen)).await;
                match done {
                    Ok(Ok(())) => self.say("database back"),
                    Ok(Err(e)) => self.say(&format!("database restart: {e}")),
                    Err(e) => self.say(&format!("database restart: {e}")),
                }
            }
        }
    }
}

/// Run it: `Err` for a run that could not be set up (bad arguments, a
/// store that will not open, a replica that will not start); a broken
/// invariant is an `Ok` report with a violation.
pub fn run(args: LiveArgs) -> Result<LiveReport, String> {
    if args.replicas == 0 || args.replicas > MAX_REPLICAS {
        return Err(format!("--replicas must be 1..={MAX_REPLICAS}, got {}", args.replicas));
    }
    if args.seconds == 0 {
        return Err("--seconds must be positive".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    rt.block_on(run_async(args))
}

async fn run_async(args: LiveArgs) -> Result<LiveReport, String> {
    let opts = live_options(&args)?;
    if args.dir.join("driver.jsonl").exists() {
        // Its journals would be merged into this run's trace.
        return Err(format!("{} holds an earlier live run: give a new --dir", args.dir.display()));
    }
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("create {}: {e}", args.dir.display()))?;
    let options_path = args.dir.join("options.json");
    std::fs::write(&options_path, serde_json::to_string_pretty(&opts).map_err(|e| e.to_string())?)
        .map_err(|e| format!("write {}: {e}", options_path.display()))?;
    let server = match args.store {
        StoreSpec::PostgresTemp => {
            let s = tokio::task::spawn_blocking(PgServer::start).await.map_err(|e| e.to_string())??;
            Some(Arc::new(s))
        }
        _ => None,
    };
    if let StoreSpec::Sqlite(path) = &args.store {
        if path.exists() {
            return Err(format!("{} exists: a live run starts from an empty store (give a new path)", path.display()));
        }
    }
    let lease_name = opts.replica.lease.name.clone();
    let spec = args.store.clone();
    let srv = server.clone();
    let backend = tokio::task::spawn_blocking(move || -> Result<Box<dyn StoreBackend>, String> {
        let mut b = open_store(&spec, srv.as_deref()).map_err(|e| format!("open the store {spec}: {e}"))?;
        check_empty(b.as_mut(), &lease_name)?;
        Ok(b)
    })
    .await
    .map_err(|e| e.to_string())??;

    let clock = RunClock::start();
    let journal = Arc::new(Journal::create(&args.dir.join("driver.jsonl"), clock)?);
    let side = |stream: u64| {
        let mut r = ChaCha8Rng::seed_from_u64(args.seed);
        r.set_stream(stream);
        r
    };
    let gateway = Gateway::new(backend, journal.clone(), &opts.replica.lease.name, side(1), opts.pod_start_ms);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("bind the gateway: {e}"))?;
    let gateway_addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(wire::serve(listener, {
        let gw = gateway.clone();
        move |req: GatewayRequest| gw.clone().handle(req)
    }));

    let jitter = measure_jitter(gateway_addr, &gateway).await;
    let ports: Ports = Arc::new(Mutex::new(vec![None; args.replicas]));
    let driver = Arc::new(Driver {
        args: args.clone(),
        journal: journal.clone(),
        gateway: gateway.clone(),
        gateway_addr,
        options_path,
        machines: Mutex::new((0..args.replicas).map(|_| Machine::default()).collect()),
        ports: ports.clone(),
        grace: Duration::from_millis(opts.shutdown_grace_ms),
        origin_us: clock.origin_us,
    });
    driver.say(&format!(
        "live: {} replicas on {}, {} clients, {} s of faults then {} s quiet; jitter allowance {} ms",
        args.replicas,
        args.store,
        args.clients,
        args.seconds,
        opts.quiet_ms / 1000,
        jitter.allowance_us / 1000
    ));
    for i in 0..args.replicas {
        if let Err(e) = driver.spawn(i).await {
            kill_all(&driver).await;
            return Err(e);
        }
    }
    let world = ClientWorld::new(journal.clone(), ports, opts.workload.clone(), side(2));
    let client_tasks: Vec<_> = (0..args.clients).map(|c| tokio::spawn(clients::run(world.clone(), c))).collect();

    let plan = schedule::draw(args.seed, opts.fault_phase_ms, args.replicas);
    let restart: Arc<dyn Fn() -> Result<(), String> + Send + Sync> = match (&args.store, &args.restart_cmd, &server) {
        (StoreSpec::PostgresTemp, _, Some(s)) => {
            let s = s.clone();
            Arc::new(move || s.restart())
        }
        (StoreSpec::Postgres(_), Some(cmd), _) => {
            let cmd = cmd.clone();
            Arc::new(move || {
                let status = std::process::Command::new("sh").arg("-c").arg(&cmd).status().map_err(|e| e.to_string())?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("`{cmd}` failed: {status}"))
                }
            })
        }
        _ => Arc::new(|| Ok(())),
    };
    let spec = args.store.clone();
    let srv = server.clone();
    let reopen: Arc<Reopen> = Arc::new(Box::new(move || open_store(&spec, srv.as_deref())));
    let faults = {
        let driver = driver.clone();
        let plan = plan.clone();
        // One fault at a time, in plan order, each not before its time and
        // not before the one ahead of it healed (its process back): a
        // fault aimed at the leader then finds one, rather than the
        // failover of the fault before.
        async move {
            for t in plan {
                let now = driver.journal.clock().now_ms();
                tokio::time::sleep(Duration::from_millis(t.at_ms.saturating_sub(now))).await;
                driver.apply(t.fault, restart.clone(), reopen.clone()).await;
            }
        }
    };
    let phases = async {
        tokio::join!(faults, tokio::time::sleep(Duration::from_millis(opts.fault_phase_ms)));
        world.quiet.store(true, std::sync::atomic::Ordering::SeqCst);
        journal.record("sim", None, EventKind::QuietPeriod);
        driver.say("quiet period");
        tokio::time::sleep(Duration::from_millis(opts.quiet_ms)).await;
    };
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => {
            // Leave nothing running: the replicas, and haywire's own server.
            kill_all(&driver).await;
            if let Some(s) = &server {
                s.stop();
            }
            eprintln!("haywire live: interrupted; the journals are in {}", args.dir.display());
            std::process::exit(130);
        }
        _ = phases => {}
    }
    let end_us = clock.now_us();
    driver.say("run over; judging");
    for t in client_tasks {
        t.abort();
    }
    kill_all(&driver).await;
    let gw = gateway.clone();
    let _ = tokio::task::spawn_blocking(move || gw.close()).await;
    drop(server);

    let header_live = serde_json::json!({
        "store": args.store.to_string(),
        "jitter": &jitter,
        "plan": &plan,
        "journals": args.dir.display().to_string(),
    });
    let (trace, violation) = judge::merge_and_judge(&args, &opts, &jitter, end_us, header_live)?;
    let trace_path = args.dir.join("trace.jsonl");
    std::fs::write(&trace_path, trace.to_jsonl()).map_err(|e| format!("write {}: {e}", trace_path.display()))?;
    let failovers = judge::failovers(&trace.events);
    Ok(LiveReport { trace, trace_path, violation, failovers, jitter, plan, options: opts })
}

async fn kill_all(driver: &Arc<Driver>) {
    let pids: Vec<Pid> = {
        let mut m = driver.machines();
        m.iter_mut()
            .filter_map(|m| {
                m.expected = true;
                m.pid
            })
            .collect()
    };
    for pid in pids {
        let _ = kill(pid, Signal::SIGCONT);
        let _ = kill(pid, Signal::SIGKILL);
    }
    for i in 0..driver.args.replicas {
        driver.wait_exit(i, Duration::from_secs(10)).await;
    }
}

/// Measure how late this machine runs things, before the run: timer
/// oversleep, a loopback round trip to the gateway, and a store read.
async fn measure_jitter(gateway: SocketAddr, gw: &Arc<Gateway>) -> Jitter {
    let mut timer_us = 0u64;
    for _ in 0..100 {
        let at = crate::clock::mono_us();
        tokio::time::sleep(Duration::from_millis(5)).await;
        timer_us = timer_us.max((crate::clock::mono_us() - at).saturating_sub(5_000));
    }
    let mut rtt_us = 0u64;
    for _ in 0..100 {
        let at = crate::clock::mono_us();
        let _ = wire::call::<_, crate::gateway::GatewayReply>(gateway, &GatewayRequest::Ping).await;
        rtt_us = rtt_us.max(crate::clock::mono_us() - at);
    }
    let mut store_us = 0u64;
    for _ in 0..20 {
        let gw = gw.clone();
        let at = crate::clock::mono_us();
        let _ = tokio::task::spawn_blocking(move || gw.leader()).await;
        store_us = store_us.max(crate::clock::mono_us() - at);
    }
    Jitter::from_samples(timer_us, rtt_us, store_us)
}

/// The default run directory: `haywire-live-<seed>-<pid>` in the temp dir.
pub fn default_dir(seed: u64) -> PathBuf {
    std::env::temp_dir().join(format!("haywire-live-{seed}-{}", std::process::id()))
}


#[cfg(test)]
mod tests {
    use super::*;

    fn args(replicas: usize) -> LiveArgs {
        LiveArgs {
            replicas,
            store: StoreSpec::PostgresTemp,
            seconds: 60,
            seed: 7,
            mutant: None,
            clients: 3,
            dir: PathBuf::from("/nonexistent"),
            restart_cmd: None,
            program: PathBuf::from("haywire"),
            verbose: false,
        }
    }

    #[test]
    fn store_specs_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!("sqlite:/tmp/a.db".parse(), Ok(StoreSpec::Sqlite("/tmp/a.db".into())));
        assert_eq!("postgres:temp".parse(), Ok(StoreSpec::PostgresTemp));
        let url = "postgresql://me@127.0.0.1:5432/db";
        assert_eq!(format!("postgres:{url}").parse(), Ok(StoreSpec::Postgres(url.into())));
        for bad in ["", "sqlite:", "mysql:x", "postgres:", "postgres:localhost", "/tmp/a.db"] {
            let e = bad.parse::<StoreSpec>().unwrap_err();
            assert!(e.contains("sqlite:PATH") && e.contains("postgres:temp"), "{bad}: {e}");
        }
        for spec in ["sqlite:/tmp/a.db", "postgres:temp", "postgres:postgresql://x@y/z"] {
            assert_eq!(spec.parse::<StoreSpec>().unwrap().to_string(), spec);
        }
    }

    #[test]
    fn the_live_world_is_valid_at_every_size_and_its_long_pause_fits_its_timings() {
        for n in 1..=8 {
            let o = live_options(&args(n)).unwrap();
            assert_eq!((o.replicas, o.clocks.len()), (n, n));
            let (l, f) = (&o.replica.lease, &o.replica.fleet);
            // Frozen past the lease (another instance takes over by then)...
            assert!(schedule::LONG_PAUSE_MS.0 > l.ttl_ms + l.retry_period_ms + l.rpc_timeout_ms);
            // ...but woken before its self-fence deadline, counted from a
            // heartbeat up to one interval old.
            assert!(schedule::LONG_PAUSE_MS.1 + f.heartbeat_ms < o.replica.self_fence_after_ms());
            assert!(o.workload.patience_ms < o.quiet_ms);
            // A stop mid-sweep leaves a step longer than a contender's retry.
            assert!(o.replica.reconciler.step_ms > l.retry_period_ms + l.rpc_timeout_ms / 2);
        }
    }

    #[test]
    fn a_mutant_is_put_into_every_replica() {
        let mut a = args(3);
        a.mutant = Some(Mutant::ReleaseBeforeCancel);
        let o = live_options(&a).unwrap();
        assert!(o.replica.mutants.on(Mutant::ReleaseBeforeCancel));
        assert!(!live_options(&args(3)).unwrap().replica.mutants.on(Mutant::ReleaseBeforeCancel));
    }
}
