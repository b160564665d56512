//! A `tidemark serve` process driven over HTTP, as a user drives it (the
//! daemon and failover benchmarks).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tidemark_tests::tidemark_bin;

pub const ADMIN: &str = "bench-admin-token";

pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts the daemon with the preload directories and `args`; returns
    /// once it listens. The default tenant's token is read from `data`
    /// (empty if another node created the tenant).
    pub fn start(data: &Path, plugins: &Path, workflows: &Path, args: &[&str]) -> Daemon {
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
            .args(args)
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
            .unwrap_or_default()
            .trim()
            .to_owned();
        Daemon { child, url, token }
    }

    pub fn post(&self, path: &str, body: &Value) -> Value {
        ureq::post(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token))
            .send_json(body)
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(code, r) => {
                    panic!(
                        "POST {path}: {code}: {}",
                        r.into_string().unwrap_or_default()
                    )
                }
                e => panic!("POST {path}: {e}"),
            })
            .into_json()
            .expect("json")
    }

    pub fn get(&self, path: &str) -> Value {
        ureq::get(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_json()
            .expect("json")
    }

    /// utime + stime of the daemon, in milliseconds.
    pub fn cpu_ms(&self) -> f64 {
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

    pub fn peak_rss_mb(&self) -> f64 {
        super::peak_rss_mb(&self.child.id().to_string())
    }

    /// Runs a backfill to its end and reports its throughput.
    pub fn backfill(&self, label: &str, body: Value, tasks_per_window: u64) {
        self.backfill_with(&[], label, body, tasks_per_window);
    }

    /// [`Daemon::backfill`] through this daemon, counting the CPU time of
    /// `others` (the other nodes of a cluster) with its own.
    pub fn backfill_with(
        &self,
        others: &[&Daemon],
        label: &str,
        body: Value,
        tasks_per_window: u64,
    ) {
        let all = || self.cpu_ms() + others.iter().map(|d| d.cpu_ms()).sum::<f64>();
        let cpu0 = all();
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
        let cpu = all() - cpu0;
        assert_eq!(b["state"], "succeeded", "{b}");
        assert_eq!(b["failed"], 0, "{b}");
        let windows = b["succeeded"].as_u64().unwrap();
        let runs = windows * tasks_per_window;
        let rss = std::iter::once(self)
            .chain(others.iter().copied())
            .map(|d| d.peak_rss_mb())
            .fold(0.0, f64::max);
        println!(
            "{label}: {windows} windows, {runs} task-runs in {wall:.2} s = {:.0} task-runs/s; \
             CPU of {} daemon(s) {:.3} ms per task-run; peak RSS {rss:.0} MB",
            runs as f64 / wall,
            1 + others.len(),
            cpu / runs as f64,
        );
    }
}
