//! Throughput of the real daemon, driven over HTTP as a user drives it.
//!
//! Starts `tidemark serve` on a temporary data dir with the Rust plugins,
//! then times, from `POST /api/v1/backfills` to the backfill's end:
//!
//! 1. `chain`: a daily 3-task chain of trivial tasks (`sum`: adds numbers,
//!    writes one dataset row), `CHAIN_WINDOWS` windows (3,650);
//! 2. `etl`: the example ETL workflow (500 events per window, three Rust
//!    plugins), `ETL_WINDOWS` hourly windows (2,000).
//!
//! Each at `PARALLELISM` (64). Prints task-runs/s, the daemon's CPU time per
//! task-run (utime + stime from /proc) and its peak RSS (VmHWM).
//!
//! `cargo bench -p tidemark-tests --bench daemon` (`ONLY=chain|etl`; the
//! daemon's defaults, or `CONFIG=FILE` for `serve --config`, and
//! `TIDEMARK_MAX_ATTEMPTS=N`, which the daemon reads).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tidemark_tests::plugins;
use tidemark_tests::tidemark_bin;

const ADMIN: &str = "bench-admin-token";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Daemon {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(data: &Path, plugins: &Path, workflows: &Path) -> Daemon {
        let mut child = Command::new(tidemark_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .arg("--plugins")
            .arg(plugins)
            .arg("--workflows")
            .arg(workflows)
            .args(
                std::env::var_os("CONFIG")
                    .map(|c| [std::ffi::OsString::from("--config"), c])
                    .into_iter()
                    .flatten(),
            )
            .env("RUST_LOG", "warn")
            .env("TIDEMARK_ADMIN_TOKEN", ADMIN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning tidemark serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut url = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(u) = line.strip_prefix("tidemark listening on ") {
                url = Some(u.to_owned());
                break;
            }
        }
        let url = url.expect("the daemon did not start listening");
        let token = std::fs::read_to_string(data.join("default-token"))
            .expect("default token")
            .trim()
            .to_owned();
        Daemon { child, url, token }
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        ureq::post(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token))
            .send_json(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .into_json()
            .expect("json")
    }

    fn get(&self, path: &str) -> Value {
        ureq::get(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_json()
            .expect("json")
    }

    /// utime + stime of the daemon, in milliseconds.
    fn cpu_ms(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/PID/stat");
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line.
        let rest = &stat[stat.rfind(')').expect("stat") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks * 1000.0 / hz
    }

    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Runs a backfill to its end and reports its throughput.
    fn backfill(&self, label: &str, body: Value, tasks_per_window: u64) {
        let cpu0 = self.cpu_ms();
        let t = Instant::now();
        let created = self.post("/api/v1/backfills", &body);
        let id = created["backfill"]["id"].as_u64().expect("backfill id");
        let deadline = Instant::now() + Duration::from_secs(1800);
        let b = loop {
            let b = self.get(&format!("/api/v1/backfills/{id}"))["backfill"].clone();
            let state = b["state"].as_str().unwrap_or_default();
            if !matches!(state, "running" | "paused") {
                break b;
            }
            assert!(Instant::now() < deadline, "backfill {id} did not end: {b}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let wall = t.elapsed().as_secs_f64();
        let cpu = self.cpu_ms() - cpu0;
        assert_eq!(b["state"], "succeeded", "{b}");
        let windows = b["succeeded"].as_u64().unwrap();
        let runs = windows * tasks_per_window;
        println!(
            "{label}: {windows} windows, {runs} task-runs in {wall:.2} s = {:.0} task-runs/s; \
             daemon CPU {:.3} ms per task-run; peak RSS {:.0} MB",
            runs as f64 / wall,
            cpu / runs as f64,
            self.peak_rss_mb()
        );
    }
}

const CHAIN: &str = r#"name = "chain"
paused = true
max_active_runs = 10000
[schedule]
cron = "0 0 * * *"
start = "2000-01-01"
[[tasks]]
name = "a"
plugin = "sum"
[[tasks]]
name = "b"
plugin = "sum"
depends_on = ["a"]
[[tasks]]
name = "c"
plugin = "sum"
depends_on = ["b"]
"#;

fn main() {
    let only = std::env::var("ONLY").unwrap_or_default();
    let parallelism = env("PARALLELISM", 64);
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin_dir = dir.path().join("plugins");
    let wf_dir = dir.path().join("workflows");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::fs::create_dir_all(&wf_dir).unwrap();
    for (name, path) in [
        ("sum", plugins::SUM),
        ("etl-extract", plugins::ETL_EXTRACT),
        ("etl-transform", plugins::ETL_TRANSFORM),
        ("etl-load", plugins::ETL_LOAD),
    ] {
        std::fs::copy(path, plugin_dir.join(format!("{name}.wasm"))).unwrap();
    }
    std::fs::write(wf_dir.join("chain.toml"), CHAIN).unwrap();
    let etl = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/etl.toml"))
        .expect("examples/etl.toml")
        .replace("catchup = false", "catchup = false\npaused = true")
        .replace("max_active_runs = 4", "max_active_runs = 10000");
    std::fs::write(wf_dir.join("etl.toml"), etl).unwrap();

    let daemon = Daemon::start(&dir.path().join("data"), &plugin_dir, &wf_dir);
    if only.is_empty() || only == "chain" {
        let windows = env("CHAIN_WINDOWS", 3_650) as i64;
        let end =
            chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + chrono::Duration::days(windows);
        daemon.backfill(
            "chain",
            json!({"workflow": "chain", "start": "2000-01-01", "end": end.to_string(),
                   "parallelism": parallelism}),
            3,
        );
    }
    if only.is_empty() || only == "etl" {
        let windows = env("ETL_WINDOWS", 2_000) as i64;
        let start = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
        let end = start + chrono::Duration::hours(windows);
        daemon.backfill(
            "etl",
            json!({"workflow": "etl", "start": start.to_rfc3339(), "end": end.to_rfc3339(),
                   "parallelism": parallelism}),
            3,
        );
    }
}
