//! Failover of a two-node cluster on PostgreSQL under load (issue #19).
//!
//! Starts a private PostgreSQL server and two `tidemark serve` nodes with a
//! lease of `LEASE_SECS` (5), runs a long ETL backfill (8 windows at once),
//! then `ROUNDS` (20) times SIGKILLs whichever node leads and measures, from
//! the kill, how long until the backfill commits its next window: the
//! first work the surviving node reclaimed and finished. The killed node is
//! started again (it joins as a standby) before the next round. Prints the
//! distribution (min, p50, p90, p99, max).
//!
//! `cargo bench -p tidemark-tests --bench failover`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tidemark_tests::pg::PgCluster;
use tidemark_tests::plugins;

mod common;
use common::daemon::{Daemon, ADMIN};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn get(url: &str, path: &str, token: &str) -> Option<Value> {
    ureq::get(&format!("{url}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_json()
        .ok()
}

struct Node {
    id: String,
    data: PathBuf,
    daemon: Option<Daemon>,
}

fn main() {
    let rounds = env("ROUNDS", 20) as usize;
    let lease = format!("{}s", env("LEASE_SECS", 5));
    let pg = PgCluster::start();
    let url = pg.create_database();
    let dir = tempfile::tempdir().expect("tempdir");
    let (plugin_dir, wf_dir) = (dir.path().join("plugins"), dir.path().join("workflows"));
    std::fs::create_dir_all(&plugin_dir).unwrap();
    std::fs::create_dir_all(&wf_dir).unwrap();
    for (name, path) in [
        ("etl-extract", plugins::ETL_EXTRACT),
        ("etl-transform", plugins::ETL_TRANSFORM),
        ("etl-load", plugins::ETL_LOAD),
    ] {
        std::fs::copy(path, plugin_dir.join(format!("{name}.wasm"))).unwrap();
    }
    let etl = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/etl.toml"))
        .expect("examples/etl.toml")
        .replace("catchup = false", "catchup = false\npaused = true")
        .replace("max_active_runs = 4", "max_active_runs = 10000");
    std::fs::write(wf_dir.join("etl.toml"), etl).unwrap();
    let start = |id: &str, data: &PathBuf| {
        std::fs::create_dir_all(data).unwrap();
        let args = [
            "--store",
            url.as_str(),
            "--node-id",
            id,
            "--lease",
            lease.as_str(),
        ];
        Daemon::start(data, &plugin_dir, &wf_dir, &args)
    };
    let mut nodes: Vec<Node> = ["n0", "n1"]
        .iter()
        .map(|id| {
            let data = dir.path().join(id);
            let daemon = start(id, &data);
            Node {
                id: (*id).to_owned(),
                data,
                daemon: Some(daemon),
            }
        })
        .collect();
    let token = nodes[0].daemon.as_ref().unwrap().token.clone();
    let created = nodes[0].daemon.as_ref().unwrap().post(
        "/api/v1/backfills",
        &json!({"workflow": "etl", "start": "2024-01-01T00:00:00Z",
                "end": "2029-01-01T00:00:00Z", "parallelism": 8}),
    );
    let id = created["backfill"]["id"].as_u64().expect("backfill id");
    let backfill = format!("/api/v1/backfills/{id}");
    let succeeded =
        |url: &str| get(url, &backfill, &token).and_then(|b| b["backfill"]["succeeded"].as_u64());
    let mut times = Vec::new();
    for round in 0..rounds {
        let any = nodes[0].daemon.as_ref().unwrap().url.clone();
        // Under way, and a leader known, before each kill.
        let deadline = Instant::now() + Duration::from_secs(60);
        let leader = loop {
            let v = get(&any, "/api/v1/nodes", ADMIN);
            let leader = v
                .as_ref()
                .and_then(|v| v["leader"].as_str().map(str::to_owned));
            let moving = succeeded(&any).is_some_and(|n| n > 0);
            if let (Some(l), true) = (leader, moving) {
                break l;
            }
            assert!(Instant::now() < deadline, "no leader making progress");
            std::thread::sleep(Duration::from_millis(50));
        };
        let (dead, alive) = if leader == nodes[0].id {
            (0, 1)
        } else {
            (1, 0)
        };
        let survivor = nodes[alive].daemon.as_ref().unwrap().url.clone();
        let mut victim = nodes[dead].daemon.take().unwrap();
        victim.child.kill().expect("SIGKILL");
        let killed = Instant::now();
        let _ = victim.child.wait();
        // The count the survivor starts from (what was durable), then the
        // first window it finishes.
        let deadline = killed + Duration::from_secs(60);
        let mut base = None;
        let elapsed = loop {
            if let Some(n) = succeeded(&survivor) {
                match base {
                    None => base = Some(n),
                    Some(b) if n > b => break killed.elapsed(),
                    Some(_) => {}
                }
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no progress after the kill"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        println!(
            "round {round}: killed {}, next window committed after {:.2} s",
            nodes[dead].id,
            elapsed.as_secs_f64()
        );
        times.push(elapsed.as_secs_f64());
        nodes[dead].daemon = Some(start(&nodes[dead].id, &nodes[dead].data));
    }
    times.sort_by(f64::total_cmp);
    let pct =
        |p: f64| times[(((times.len() as f64) * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "failover (lease {lease}, {rounds} kills of the leader under an ETL backfill): \
         min {:.2} s, p50 {:.2} s, p90 {:.2} s, p99 {:.2} s, max {:.2} s",
        times[0],
        pct(0.5),
        pct(0.9),
        pct(0.99),
        times[times.len() - 1]
    );
}
