//! A handle on the real `tidemark serve` binary on a temporary data dir,
//! driven over HTTP and the CLI. Its own file, so the `timing` test binary
//! can use it without the suite's daemon tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tidemark_tests::tidemark_bin;

pub const ADMIN: &str = "test-admin-token";

pub struct Daemon {
    child: KillOnDrop,
    pub url: String,
    pub token: Option<String>,
}

/// The daemon's process, killed and reaped when dropped, so a failed
/// assertion, a panic while starting or a restart loop never leaves a
/// daemon running after the suite (issue #8).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Nothing can be reported from a drop; after `kill9`/`terminate`
        // the child is reaped already and both calls are no-ops.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    pub fn start(data: &Path, plugins: Option<&Path>, workflows: Option<&Path>) -> Daemon {
        Daemon::start_with_args(data, plugins, workflows, &[])
    }

    /// [`Daemon::start`] with more arguments for `serve` (`--config F`).
    pub fn start_with_args(
        data: &Path,
        plugins: Option<&Path>,
        workflows: Option<&Path>,
        args: &[&std::ffi::OsStr],
    ) -> Daemon {
        let log = std::env::var("TM_DAEMON_LOG").ok();
        let stderr = if log.is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let filter = log.unwrap_or("warn".into());
        Daemon::spawn(data, plugins, workflows, args, &filter, stderr)
    }

    /// [`Daemon::start_with_args`] logging JSON lines to `log` with the
    /// `RUST_LOG` filter `filter`, for tests that read what it did.
    #[allow(dead_code)] // the suite has no such test; `cluster_faults` has
    pub fn start_logged(
        data: &Path,
        plugins: Option<&Path>,
        workflows: Option<&Path>,
        args: &[&std::ffi::OsStr],
        log: &Path,
        filter: &str,
    ) -> Daemon {
        let file = std::fs::File::create(log).expect("creating the daemon's log");
        let mut with_json: Vec<&std::ffi::OsStr> = args.to_vec();
        with_json.extend(["--log-format", "json"].map(std::ffi::OsStr::new));
        Daemon::spawn(data, plugins, workflows, &with_json, filter, file.into())
    }

    fn spawn(
        data: &Path,
        plugins: Option<&Path>,
        workflows: Option<&Path>,
        args: &[&std::ffi::OsStr],
        filter: &str,
        stderr: Stdio,
    ) -> Daemon {
        let mut cmd = Command::new(tidemark_bin());
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grace",
            "5s",
            "--data",
        ])
        .arg(data)
        .env("RUST_LOG", filter)
        .env("TIDEMARK_ADMIN_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(stderr);
        if let Some(p) = plugins {
            cmd.arg("--plugins").arg(p);
        }
        if let Some(w) = workflows {
            cmd.arg("--workflows").arg(w);
        }
        cmd.args(args);
        // Guarded from here on: the waits below can panic.
        let mut child = KillOnDrop(cmd.spawn().expect("spawning tidemark serve"));
        let stdout = child.0.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("tidemark listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the daemon did not start listening");
        // With preloading, the daemon writes the default tenant's token.
        let token = std::fs::read_to_string(data.join("default-token"))
            .ok()
            .map(|t| t.trim().to_owned());
        Daemon { child, url, token }
    }

    /// Creates a tenant with the admin token and uses its token from now on.
    pub fn login_as_new_tenant(&mut self, name: &str) {
        let out = Command::new(tidemark_bin())
            .args(["tenant", "create", name])
            .env("TIDEMARK_SERVER", &self.url)
            .env("TIDEMARK_TOKEN", ADMIN)
            .output()
            .expect("tenant create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            token.starts_with("tm_"),
            "stdout: {token:?} stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.token = Some(token);
    }

    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_as(self.token.as_deref().unwrap_or(""), args)
    }

    pub fn cli_as(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(tidemark_bin())
            .args(args)
            .env("TIDEMARK_SERVER", &self.url)
            .env("TIDEMARK_TOKEN", token)
            .output()
            .expect("running the CLI");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn runs(&self, workflow: &str) -> Vec<Value> {
        let (code, out, err) = self.cli(&["runs", "list", workflow, "--output", "json"]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["runs"].as_array().cloned().unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Value {
        tidemark::client::Client::new(&self.url)
            .with_token(self.token.clone())
            .get(path)
            .expect("GET")
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn kill9(mut self) {
        self.child.0.kill().expect("SIGKILL");
        self.child.0.wait().expect("wait");
    }

    pub fn terminate(mut self) -> i32 {
        let pid = self.pid().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        self.child.0.wait().expect("wait").code().unwrap_or(-1)
    }
}

pub fn plugin_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for path in names {
        let p = PathBuf::from(path);
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
