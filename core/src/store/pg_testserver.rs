//! A throwaway PostgreSQL server for the Postgres store's tests.
//!
//! Started once per test process from the installed server binaries: a
//! fresh cluster in a temp dir, trust auth, on a free loopback port. Test
//! statics are never dropped, so the server is launched under a watchdog
//! shell that stops it and removes its files once the test process is gone.
//! As root (CI, the dev machines), `initdb` refuses to run, so the cluster
//! belongs to the `postgres` system user (or `nobody`) and the server runs
//! as that user through `runuser`.
//!
//! No binaries: outside CI the Postgres tests say so and pass; under CI
//! (`CI` set) they fail, since CI installs them.

use postgres::{Client, NoTls};
use super::pg_server::{command, find_binaries, free_port, initdb, run_as};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

/// The running server.
pub(crate) struct TestServer {
    port: u16,
    admin: Mutex<Client>,
    next: AtomicUsize,
}

enum Start {
    Up(Box<TestServer>),
    Missing,
    Failed(String),
}

/// The shared server, started on first use; `None` when PostgreSQL is not
/// installed and this is not CI (the caller skips its test). Panics under
/// CI without PostgreSQL, or when the server does not start.
pub(crate) fn server() -> Option<&'static TestServer> {
    static SERVER: OnceLock<Start> = OnceLock::new();
    static SAID: Once = Once::new();
    match SERVER.get_or_init(start) {
        Start::Up(s) => Some(s),
        Start::Missing if std::env::var_os("CI").is_some() => {
            panic!("PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin; CI must install them (apt-get install postgresql)")
        }
        Start::Missing => {
            // Straight to stderr: the harness would swallow eprintln! of a passing test.
            SAID.call_once(|| {
                let _ = writeln!(std::io::stderr(), "skipped: PostgreSQL not installed (store::conformance::postgres*)");
            });
            None
        }
        Start::Failed(why) => panic!("the test PostgreSQL server did not start: {why}"),
    }
}

impl TestServer {
    /// A connection string for sessions whose tables live in `schema`.
    pub(crate) fn url(&self, schema: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres?options=-c%20search_path%3D{schema}", self.port)
    }

    /// A superuser session on the server's `postgres` database.
    pub(crate) fn admin(&self) -> MutexGuard<'_, Client> {
        // A test that panicked holding it leaves the session usable.
        self.admin.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create a new empty schema named after `tag`; returns its name.
    pub(crate) fn fresh_schema(&self, tag: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let clean: String =
            tag.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let mut name = format!("hw{n}_{clean}");
        name.truncate(63); // NAMEDATALEN - 1; the number keeps it unique.
        self.admin().batch_execute(&format!("CREATE SCHEMA {name}")).expect("create schema");
        name
    }

    pub(crate) fn drop_schema(&self, name: &str) {
        self.admin().batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).expect("drop schema");
    }
}

fn start() -> Start {
    let Some(bin) = find_binaries() else { return Start::Missing };
    match launch(&bin) {
        Ok(server) => Start::Up(Box::new(server)),
        Err(why) => Start::Failed(why),
    }
}

fn launch(bin: &Path) -> Result<TestServer, String> {
    let user = run_as()?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("haywire-pg-{}-{stamp}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let result = init_and_start(bin, &dir, user.as_ref());
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn init_and_start(bin: &Path, dir: &Path, user: Option<&(String, u32, u32)>) -> Result<TestServer, String> {
    let name = user.map(|(name, _, _)| name.as_str());
    if let Some((_, uid, gid)) = user {
        std::os::unix::fs::chown(dir, Some(*uid), Some(*gid)).map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    initdb(bin, dir, name)?;
    // A port can be taken between picking and binding it: try a few.
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let mut watchdog = spawn_watchdog(bin, dir, name, port)?;
        match wait_ready(&mut watchdog, dir, port) {
            Ok(admin) => return Ok(TestServer { port, admin: Mutex::new(admin), next: AtomicUsize::new(0) }),
            Err(why) => {
                let _ = watchdog.kill();
                let _ = watchdog.wait();
                last = why;
            }
        }
    }
    Err(last)
}

/// The server under a shell that waits for the test process to go, then
/// stops the server (fast shutdown) and removes the cluster. If the server
/// dies first, the files stay for [`wait_ready`] to read its log.
const WATCHDOG: &str = r#"
"$2/postgres" -D "$3/data" -p "$4" -k "$3" -F -c listen_addresses=127.0.0.1 \
    -c max_connections=300 -c shared_buffers=16MB -c synchronous_commit=off -c full_page_writes=off \
    >"$3/log" 2>&1 &
p=$!
while [ -d "/proc/$1" ] && kill -0 "$p" 2>/dev/null; do sleep 0.5; done
kill -INT "$p" 2>/dev/null
wait "$p"
[ -d "/proc/$1" ] && exit 1
rm -rf "$3"
"#;

fn spawn_watchdog(bin: &Path, dir: &Path, user: Option<&str>, port: u16) -> Result<Child, String> {
    command(user, Path::new("/bin/sh"))
        .arg("-c")
        .arg(WATCHDOG)
        .arg("haywire-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(bin)
        .arg(dir)
        .arg(port.to_string())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C of the tests reaches the test
        // process, and the watchdog still cleans up after it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("start the server: {e}"))
}

fn wait_ready(watchdog: &mut Child, dir: &Path, port: u16) -> Result<Client, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let conn = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2");
    loop {
        match Client::connect(&conn, NoTls) {
            Ok(client) => return Ok(client),
            Err(e) => {
                let log = || std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                if let Ok(Some(status)) = watchdog.try_wait() {
                    return Err(format!("the server exited ({status}): {}", log()));
                }
                if Instant::now() > deadline {
                    return Err(format!("no connection on port {port} after 60 s: {e}; log: {}", log()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
