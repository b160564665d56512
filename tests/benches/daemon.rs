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
//! `TIDEMARK_MAX_ATTEMPTS=N`, which the daemon reads). `STORE=postgres`
//! runs the daemon as one node on a private PostgreSQL server (started
//! and stopped by the bench) instead of the embedded store; with
//! `NODES=N` as well, N nodes of one cluster (`n0` leads, being started
//! first; the backfills are created and watched through the last node, a
//! standby that forwards), CPU counted over all of them.

use serde_json::json;
use tidemark_tests::pg::PgCluster;
use tidemark_tests::plugins;

mod common;
use common::daemon::Daemon;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

    let pg = (std::env::var("STORE").as_deref() == Ok("postgres")).then(PgCluster::start);
    let url = pg.as_ref().map(|pg| pg.create_database());
    let n = env("NODES", 1).max(1);
    assert!(n == 1 || pg.is_some(), "NODES needs STORE=postgres");
    let mut nodes: Vec<Daemon> = (0..n)
        .map(|i| {
            let id = format!("n{i}");
            let mut args: Vec<&str> = url.iter().flat_map(|u| ["--store", u.as_str()]).collect();
            if n > 1 {
                args.extend(["--node-id", id.as_str()]);
            }
            Daemon::start(
                &dir.path().join(format!("data-{id}")),
                &plugin_dir,
                &wf_dir,
                &args,
            )
        })
        .collect();
    let token = nodes[0].token.clone();
    for d in &mut nodes {
        d.token = token.clone();
    }
    let (daemon, others) = nodes.split_last().expect("a node");
    let others: Vec<&Daemon> = others.iter().collect();
    println!(
        "store: {}",
        match (&pg, n) {
            (None, _) => "sled".to_owned(),
            (Some(_), 1) => "postgres (one node)".to_owned(),
            (Some(_), n) => format!("postgres ({n} nodes, driven through a standby)"),
        }
    );
    if only.is_empty() || only == "chain" {
        let windows = env("CHAIN_WINDOWS", 3_650) as i64;
        let end =
            chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + chrono::Duration::days(windows);
        daemon.backfill_with(
            &others,
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
        daemon.backfill_with(
            &others,
            "etl",
            json!({"workflow": "etl", "start": start.to_rfc3339(), "end": end.to_rfc3339(),
                   "parallelism": parallelism}),
            3,
        );
    }
}
