//! A real PostgreSQL for the tests: a private cluster (`initdb` + `pg_ctl`
//! on a free port in a temporary directory), one per test binary, stopped
//! when the binary exits; each test gets a database of its own.
//!
//! With `TIDEMARK_TEST_PG` set to a URL (`postgres://postgres@host:port/db`)
//! the tests use that server's host and port instead and start nothing;
//! they create their databases there as the superuser `postgres`, without
//! a password (trust authentication, as the private cluster has).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// A running cluster: superuser `postgres`, trust authentication, on
/// `127.0.0.1:port`.
pub struct PgCluster {
    bin: PathBuf,
    /// Holds `data/`, the socket and `pg.log`; removed with the cluster.
    dir: Option<tempfile::TempDir>,
    host: String,
    port: u16,
    /// A server `TIDEMARK_TEST_PG` names: never stopped by us.
    external: bool,
}

/// The directory of the newest installed version's binaries.
pub fn pg_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL is not installed: run scripts/postgres.sh (or scripts/setup.sh)")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `program args...`, as the `postgres` user when we are root
/// (PostgreSQL refuses to run as root).
fn run_as_postgres(program: &Path, args: &[&str]) -> Output {
    let mut cmd = if is_root() {
        let line = std::iter::once(program.display().to_string())
            .chain(args.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut c = Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", &line]);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    };
    cmd.output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// The server's options: local TCP and a socket in the cluster's own
/// directory; no fsync (tests never survive a machine crash).
fn server_options(port: u16, dir: &Path) -> String {
    format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        dir.display()
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn check(what: &str, out: Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

static SHARED: OnceLock<Mutex<Option<PgCluster>>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(m) = SHARED.get() {
        if let Ok(mut c) = m.lock() {
            drop(c.take());
        }
    }
}

impl PgCluster {
    /// Starts a new cluster (about 2 s).
    pub fn start() -> PgCluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("tidemark-pg-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        if is_root() {
            check(
                "chown",
                Command::new("chown")
                    .args(["-R", "postgres", &d.display().to_string()])
                    .output()
                    .expect("chown"),
            );
        }
        let data = d.join("data");
        check(
            "initdb",
            run_as_postgres(
                &bin.join("initdb"),
                &[
                    "-D",
                    &data.display().to_string(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            ),
        );
        let port = free_port();
        let opts = server_options(port, d);
        check(
            "pg_ctl start",
            run_as_postgres(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    &data.display().to_string(),
                    "-o",
                    &opts,
                    "-l",
                    &d.join("pg.log").display().to_string(),
                    "-w",
                    "start",
                ],
            ),
        );
        PgCluster {
            bin,
            dir: Some(dir),
            host: "127.0.0.1".into(),
            port,
            external: false,
        }
    }

    /// The cluster of this test binary (started on first use, stopped when
    /// the binary exits), or the server `TIDEMARK_TEST_PG` names.
    pub fn shared() -> &'static Mutex<Option<PgCluster>> {
        SHARED.get_or_init(|| {
            let cluster = match std::env::var("TIDEMARK_TEST_PG") {
                Ok(url) => PgCluster::external(&url),
                Err(_) => {
                    let c = PgCluster::start();
                    // Statics are never dropped: stop it at exit instead.
                    // SAFETY: registers a plain `extern "C"` function.
                    unsafe { libc::atexit(stop_shared) };
                    c
                }
            };
            Mutex::new(Some(cluster))
        })
    }

    fn external(url: &str) -> PgCluster {
        let rest = url
            .split_once("://")
            .map(|(_, r)| r)
            .expect("TIDEMARK_TEST_PG is a postgres:// URL");
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let hostport = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        PgCluster {
            bin: pg_bin(),
            dir: None,
            host: host.to_owned(),
            port: port.parse().expect("TIDEMARK_TEST_PG's port"),
            external: true,
        }
    }

    /// A new, empty database on the shared cluster; returns its URL.
    pub fn fresh_database() -> String {
        let guard = PgCluster::shared()
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .expect("the shared cluster is stopped")
            .create_database()
    }

    /// Creates a database named after this process and a counter.
    pub fn create_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// `postgres://postgres@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{}:{}/{db}", self.host, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops a cluster this process started (fast shutdown: sessions are
    /// ended, as in a database outage).
    pub fn stop(&self) {
        let (bin, data) = self.own("stop");
        check(
            "pg_ctl stop",
            run_as_postgres(&bin, &["-D", &data, "-m", "fast", "-w", "stop"]),
        );
    }

    /// Starts a cluster [`PgCluster::stop`] stopped, on the same port with
    /// the same options.
    pub fn start_again(&self) {
        let (bin, data) = self.own("start");
        let dir = self.dir.as_ref().expect("own cluster").path();
        let log = dir.join("pg.log");
        let opts = server_options(self.port, dir);
        check(
            "pg_ctl start",
            run_as_postgres(
                &bin,
                &[
                    "-D",
                    &data,
                    "-o",
                    &opts,
                    "-l",
                    &log.display().to_string(),
                    "-w",
                    "start",
                ],
            ),
        );
    }

    fn own(&self, what: &str) -> (PathBuf, String) {
        assert!(
            !self.external,
            "cannot {what} a server this process did not start"
        );
        let dir = self.dir.as_ref().expect("own cluster");
        (
            self.bin.join("pg_ctl"),
            dir.path().join("data").display().to_string(),
        )
    }

    /// Runs one SQL command as the superuser; panics on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("running psql");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        check(&format!("psql {sql:?}"), out);
        stdout.trim().to_owned()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.external {
            return;
        }
        if let Some(dir) = &self.dir {
            let data = dir.path().join("data").display().to_string();
            let out = run_as_postgres(
                &self.bin.join("pg_ctl"),
                &["-D", &data, "-m", "fast", "-w", "stop"],
            );
            if !out.status.success() {
                eprintln!(
                    "stopping PostgreSQL in {data}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
