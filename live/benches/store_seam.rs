//! The store seam on real tokio (docs/design.md §11): lease renew and
//! worker CAS through core's `Store` seam, on a SQLite file (`LocalStore`,
//! each call on tokio's blocking pool) and on PostgreSQL (`PgStore`, a
//! throwaway server), one client and 8 concurrent clients. Each client is
//! its own connection, as each replica process is, and works on its own
//! lease and worker row, so the numbers are the backend's cost of one
//! write under contention for the database, not lost CAS races.
//!
//! `RUSTFLAGS= cargo bench -p haywire-live --bench store_seam --target-dir target/live`
//!
//! Criterion reports the time per operation (with 8 clients, wall time
//! over all clients' operations: the inverse of throughput); each bench
//! also prints the median and p99 latency of one call as a client saw it.

#[cfg(madsim)]
fn main() {}

#[cfg(not(madsim))]
fn main() {
    live::main();
}

#[cfg(not(madsim))]
mod live {
    use criterion::{BenchmarkId, Criterion};
    use haywire_core::store::{
        LocalStore, PgClock, PgServer, PgStore, SqliteStore, Store, StoreBackend, StoreReply, StoreRequest, WorkerRecord,
        WorkerState,
    };
    use haywire_core::{InstanceId, WallClock};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    type Seam = Arc<dyn Fn(StoreRequest) -> std::pin::Pin<Box<dyn std::future::Future<Output = StoreReply> + Send>> + Send + Sync>;

    /// One client's connection as a call function.
    fn seam<B: StoreBackend + 'static>(backend: B) -> Seam {
        let store = Arc::new(LocalStore::new(backend, WallClock));
        Arc::new(move |req| {
            let store = store.clone();
            Box::pin(async move { store.call(req).await.expect("bench store call") })
        })
    }

    /// A client's own lease and worker row, and the state to CAS them on.
    struct Client {
        call: Seam,
        me: InstanceId,
        lease: String,
        version: u64,
        worker: String,
        epoch: u64,
    }

    impl Client {
        /// Client `k` of a pool of `n` (each pool its own leases and rows).
        async fn new(call: Seam, k: usize, n: usize) -> Client {
            let me = InstanceId(k as u64 + 1);
            let lease = format!("bench-lease-{n}-{k}");
            let worker = format!("bench-w{n}-{k}");
            let got = call(StoreRequest::AcquireLease { name: lease.clone(), holder: me, expected_version: None, ttl_ms: 3_600_000 }).await;
            let version = match got {
                StoreReply::Cas(haywire_core::store::CasResult::Applied(r)) => r.version,
                other => panic!("acquire: {other:?}"),
            };
            let row = WorkerRecord {
                id: worker.clone(),
                org: "bench".into(),
                state: WorkerState::Spawning,
                owner: me,
                owner_epoch: 1,
                pod: format!("pod-{worker}"),
                secret: format!("secret-{worker}"),
                session: None,
                created_at: 0,
                updated_at: 0,
                idle_since: 0,
                version: 0,
            };
            call(StoreRequest::InsertWorker { worker: row }).await;
            Client { call, me, lease, version, worker, epoch: 1 }
        }

        async fn renew(&mut self) {
            let req = StoreRequest::RenewLease { name: self.lease.clone(), holder: self.me, expected_version: self.version, ttl_ms: 3_600_000 };
            match (self.call)(req).await {
                StoreReply::Cas(haywire_core::store::CasResult::Applied(r)) => self.version = r.version,
                other => panic!("renew: {other:?}"),
            }
        }

        /// A claim: CAS on (owner, epoch), epoch + 1.
        async fn worker_cas(&mut self) {
            let req = StoreRequest::ClaimWorker {
                id: self.worker.clone(),
                owner: self.me,
                epoch: self.epoch,
                from: None,
                to: None,
                new_owner: self.me,
                fence: None,
                floor: None,
            };
            match (self.call)(req).await {
                StoreReply::Worker(haywire_core::store::WorkerCas::Applied(w)) => self.epoch = w.owner_epoch,
                other => panic!("worker CAS: {other:?}"),
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Op {
        Renew,
        WorkerCas,
    }

    /// Run `iters` operations spread over the clients at once; the wall
    /// time, and every call's latency.
    async fn round(clients: &mut Vec<Client>, op: Op, iters: u64) -> (Duration, Vec<Duration>) {
        let n = clients.len() as u64;
        let per = iters.div_ceil(n);
        let started = Instant::now();
        let tasks: Vec<_> = std::mem::take(clients)
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(per as usize);
                    for _ in 0..per {
                        let at = Instant::now();
                        match op {
                            Op::Renew => c.renew().await,
                            Op::WorkerCas => c.worker_cas().await,
                        }
                        lat.push(at.elapsed());
                    }
                    (c, lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            let (c, lat) = t.await.expect("bench client");
            clients.push(c);
            all.extend(lat);
        }
        (started.elapsed() * (iters as u32) / ((per * n) as u32).max(1), all)
    }

    fn percentile(sorted: &[Duration], p: f64) -> Duration {
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }

    fn bench_backend(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, open: &dyn Fn() -> Seam) {
        let mut group = c.benchmark_group(format!("store_seam/{name}"));
        group.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
        for clients in [1usize, 8] {
            // Connect outside the runtime: PostgreSQL's client blocks.
            let seams: Vec<Seam> = (0..clients).map(|_| open()).collect();
            let mut pool: Vec<Client> = rt.block_on(async {
                let mut v = Vec::new();
                for (k, seam) in seams.into_iter().enumerate() {
                    v.push(Client::new(seam, k, clients).await);
                }
                v
            });
            for (label, op) in [("renew", Op::Renew), ("worker_cas", Op::WorkerCas)] {
                let mut lat: Vec<Duration> = Vec::new();
                group.bench_function(BenchmarkId::new(label, format!("{clients}_clients")), |b| {
                    b.iter_custom(|iters| {
                        let (wall, l) = rt.block_on(round(&mut pool, op, iters));
                        lat.extend(l);
                        wall
                    })
                });
                lat.sort();
                if !lat.is_empty() {
                    println!(
                        "store_seam/{name}/{label}/{clients}_clients: one call's latency median {:.3} ms, p99 {:.3} ms ({} calls)",
                        percentile(&lat, 0.5).as_secs_f64() * 1e3,
                        percentile(&lat, 0.99).as_secs_f64() * 1e3,
                        lat.len()
                    );
                }
            }
        }
        group.finish();
    }

    pub fn main() {
        let mut c = Criterion::default().configure_from_args();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
        let dir = std::env::temp_dir().join(format!("haywire-store-seam-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("bench dir");
        let file = dir.join("store.db");
        bench_backend(&mut c, &rt, "sqlite_file", &|| seam(SqliteStore::open(&file).expect("open the SQLite file")));
        match PgServer::start() {
            Ok(server) => {
                let url = server.url();
                bench_backend(&mut c, &rt, "postgres", &|| seam(PgStore::connect(&url, 1, PgClock::Database).expect("connect")));
            }
            Err(e) => println!("store_seam/postgres: skipped ({e})"),
        }
        let _ = std::fs::remove_dir_all(&dir);
        c.final_summary();
    }
}
