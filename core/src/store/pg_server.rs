//! A PostgreSQL server of haywire's own, from the installed binaries: a
//! fresh cluster in a temporary directory, trust auth, on a free loopback
//! port. The store's tests start one (`pg_testserver`), and so does a live
//! run on `postgres:temp` ([`PgServer`]), which also restarts it as a fault.
//! As root `initdb` refuses to run, so the cluster then belongs to the
//! `postgres` system user (or `nobody`) and every server command runs as
//! that user through `runuser`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The directory holding `initdb` and `postgres`: PATH first, then
/// Debian's `/usr/lib/postgresql/<version>/bin`, newest first.
pub(crate) fn find_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        // Debian links /usr/bin tools to a wrapper; the real binaries sit
        // together in the versioned dir the link leads to.
        if let Ok(real) = std::fs::canonicalize(dir.join("initdb")) {
            if let Some(bin) = real.parent().filter(|d| has_both(d)) {
                return Some(bin.to_path_buf());
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// `Some(user)` to run the server as, when we are root.
pub(crate) fn run_as() -> Result<Option<(String, u32, u32)>, String> {
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    if !root {
        return Ok(None);
    }
    let id = |user: &str, flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    for user in ["postgres", "nobody"] {
        if let (Some(uid), Some(gid)) = (id(user, "-u"), id(user, "-g")) {
            return Ok(Some((user.to_string(), uid, gid)));
        }
    }
    Err("running as root, and neither a postgres nor a nobody user exists to run the server as".into())
}

/// `program args...`, as `user` when given.
pub(crate) fn command(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("find a free port: {e}"))
}

/// `initdb` a cluster into `dir/data` as `user`.
pub(crate) fn initdb(bin: &Path, dir: &Path, name: Option<&str>) -> Result<(), String> {
    let data = dir.join("data");
    let out = command(name, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// A server this process started and owns: restarted on demand, stopped
/// and its files removed when dropped.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    user: Option<String>,
    port: u16,
}

impl PgServer {
    /// Start a fresh server. Errors say what is missing or what failed.
    pub fn start() -> Result<PgServer, String> {
        let bin = find_binaries().ok_or(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in /usr/lib/postgresql/*/bin \
             (Debian: apt-get install postgresql)",
        )?;
        let user = run_as()?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("haywire-live-pg-{}-{stamp}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if let Some((_, uid, gid)) = &user {
            std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let server = PgServer { bin, dir, user: user.map(|u| u.0), port: free_port()? };
        initdb(&server.bin, &server.dir, server.user.as_deref())?;
        server.pg_ctl(&["start"])?;
        Ok(server)
    }

    /// A connection string for the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stop the server (fast: open sessions are cut off, as in a real
    /// restart) and start it again on the same port and data.
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl(&["restart", "-m", "fast"])
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100 -c shared_buffers=16MB -F",
            self.port,
            self.dir.display()
        );
        let out = command(self.user.as_deref(), &self.bin.join("pg_ctl"))
            .args(args)
            .arg("-w")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(opts)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run pg_ctl: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl {} failed: {}{}{log}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Stop the server at once and remove its files (what dropping it does;
    /// for a caller about to exit without running destructors).
    pub fn stop(&self) {
        let _ = command(self.user.as_deref(), &self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
