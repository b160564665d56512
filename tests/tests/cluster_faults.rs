//! Three daemons on one PostgreSQL through 50 fault cycles (issue #19), in
//! a binary of its own: it runs for minutes and must not share the cores
//! with the suite's tests.
//!
//! A 2,000-window ETL backfill and a live every-second workflow run while
//! the test, in turn, SIGKILLs the leader (and restarts it), SIGSTOPs the
//! leader past its lease (then SIGCONTs it), ends every database session
//! (`pg_terminate_backend`) and restarts PostgreSQL. Each daemon logs every
//! attempt it starts before anything is fenced, so a duplicate execution is
//! visible, not only a duplicate commit. At the end: exactly one committed
//! success per task and window; every partition written whole by the run
//! that committed; the live cursor never moved back; never more attempts
//! executing at once, across all nodes, than the tenant's quota; and every
//! duplicate execution belongs to a node that was killed, paused or cut off
//! from the database after it started.

#[path = "cluster_faults/audit.rs"]
mod audit;
#[allow(dead_code)] // the driver serves the suite too
#[path = "suite/driver.rs"]
mod daemon;
#[path = "suite/exactly_once.rs"]
mod exactly_once;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tidemark::client::Client;
use tidemark::store::{PgStore, StateStore};
use tidemark_tests::pg::PgCluster;
use tidemark_tests::plugins::*;

use audit::{Fault, Incarnation};
use daemon::{plugin_dir, wait_for, Daemon, ADMIN};

const WINDOWS: i64 = 2_000;
const CYCLES: usize = 50;
const QUOTA: usize = 4;
const START: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
const HOUR: i64 = 3_600_000;
/// Daemon log filter: warnings, and every attempt's start and end.
const LOG: &str = "warn,tidemark::engine::attempt=debug";

struct Node {
    id: String,
    daemon: Option<Daemon>,
    data: tempfile::TempDir,
    /// Index of its current process in the incarnations.
    current: usize,
}

struct Cluster {
    db: String,
    plugins: tempfile::TempDir,
    workflows: tempfile::TempDir,
    logs: tempfile::TempDir,
    nodes: Vec<Node>,
    incarnations: Vec<Incarnation>,
}

impl Cluster {
    fn start_node(&mut self, i: usize) {
        let id = self.nodes[i].id.clone();
        let log = self
            .logs
            .path()
            .join(format!("{id}-{}.log", self.incarnations.len()));
        let words = ["--store", &self.db, "--node-id", &id, "--lease", "2s"];
        let args: Vec<&std::ffi::OsStr> = words.iter().map(std::ffi::OsStr::new).collect();
        let daemon = Daemon::start_logged(
            self.nodes[i].data.path(),
            Some(self.plugins.path()),
            Some(self.workflows.path()),
            &args,
            &log,
            LOG,
        );
        self.incarnations.push(Incarnation {
            node: id,
            log,
            killed: None,
            stops: Vec::new(),
        });
        self.nodes[i].current = self.incarnations.len() - 1;
        self.nodes[i].daemon = Some(daemon);
    }

    fn url(&self, i: usize) -> &str {
        &self.nodes[i].daemon.as_ref().expect("running").url
    }

    /// The leader as some node other than `not` sees it.
    fn leader_seen_by_others(&self, not: Option<usize>) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|&i| Some(i) != not && self.nodes[i].daemon.is_some())
            .find_map(|i| leader(self.url(i)))
            .and_then(|id| self.nodes.iter().position(|n| n.id == id))
            .filter(|&l| Some(l) != not)
    }

    fn live(&self) -> Vec<usize> {
        self.nodes.iter().map(|n| n.current).collect()
    }
}

fn leader(url: &str) -> Option<String> {
    Client::new(url)
        .with_token(Some(ADMIN.into()))
        .get("/api/v1/nodes")
        .ok()
        .and_then(|v| v["leader"].as_str().map(str::to_owned))
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn workflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/etl.toml");
    std::fs::copy(example, dir.path().join("etl.toml")).unwrap();
    std::fs::write(
        dir.path().join("tick.toml"),
        "name = \"tick\"\ncatchup = false\n[schedule]\ncron = \"* * * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"t\"\nplugin = \"hello\"\n",
    )
    .unwrap();
    dir
}

/// The live workflow's cursor, sampled until `stop`: it must never move
/// back, whichever node writes it.
fn sample_cursor(db: String, stop: Arc<AtomicBool>, seen: Arc<Mutex<Vec<i64>>>) {
    let store = PgStore::open(&db).expect("sampler store");
    while !stop.load(Ordering::SeqCst) {
        // A read during an outage fails; the next sample tries again.
        if let Ok(Some(c)) = store.cursor_get("default", "tick") {
            seen.lock().unwrap().push(c);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The attempts of the backfill's failed windows, for a failure message.
fn failures(db: &str) -> String {
    let store = PgStore::open(db).unwrap();
    let windows = store
        .windows("default", "etl", START, START + WINDOWS * HOUR, 100_000)
        .unwrap();
    let mut out = String::new();
    for (s, w) in windows
        .iter()
        .filter(|(_, w)| w.state.as_str() != "succeeded")
        .take(5)
    {
        for a in store.attempts("default", w.run_id).unwrap() {
            out += &format!(
                "window {s} run {} {} attempt {}: {:?} {}\n",
                a.run_id, a.task, a.attempt, a.error_kind, a.message
            );
        }
    }
    out
}

fn backfill_state(url: &str, token: &str, id: u64) -> Option<Value> {
    Client::new(url)
        .with_token(Some(token.into()))
        .get(&format!("/api/v1/backfills/{id}"))
        .ok()
        .map(|v| v["backfill"].clone())
}

#[test]
fn three_daemons_survive_fifty_fault_cycles_without_double_commits() {
    let pg = PgCluster::start();
    let db = pg.create_database();
    let name = db.rsplit('/').next().unwrap().to_owned();
    let mut c = Cluster {
        db: db.clone(),
        plugins: plugin_dir(&[ETL_EXTRACT, ETL_TRANSFORM, ETL_LOAD, HELLO]),
        workflows: workflows(),
        logs: tempfile::Builder::new()
            .prefix("cf-logs")
            .tempdir_in("/tmp")
            .unwrap(),
        nodes: ["n1", "n2", "n3"]
            .iter()
            .map(|id| Node {
                id: (*id).into(),
                daemon: None,
                data: tempfile::tempdir().unwrap(),
                current: 0,
            })
            .collect(),
        incarnations: Vec::new(),
    };
    for i in 0..3 {
        c.start_node(i);
    }
    let token = c.nodes[0].daemon.as_ref().unwrap().token.clone().unwrap();
    let (code, _, err) = c.nodes[1].daemon.as_ref().unwrap().cli_as(
        ADMIN,
        &[
            "tenant",
            "quotas",
            "default",
            "--set",
            &format!("concurrent_attempts={QUOTA}"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    let created = Client::new(c.url(2))
        .with_token(Some(token.clone()))
        .post_json(
            "/api/v1/backfills",
            &json!({"workflow": "etl", "start": iso(START), "end": iso(START + WINDOWS * HOUR), "parallelism": 8}),
        )
        .expect("backfill");
    let id = created["backfill"]["id"].as_u64().expect("id");

    let stop = Arc::new(AtomicBool::new(false));
    let cursors = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (db, stop, seen) = (db.clone(), stop.clone(), cursors.clone());
        std::thread::spawn(move || sample_cursor(db, stop, seen))
    };
    let cursor_now = || cursors.lock().unwrap().last().copied().unwrap_or(0);

    let mut faults: Vec<Fault> = Vec::new();
    let mut failovers: Vec<Duration> = Vec::new();
    for cycle in 0..CYCLES {
        let before = cursor_now();
        let mut found = None;
        wait_for("a leader", Duration::from_secs(60), || {
            found = c.leader_seen_by_others(None);
            found.is_some()
        });
        let l = found.unwrap();
        let at = SystemTime::now();
        match cycle % 4 {
            0 => {
                let victim = c.nodes[l].current;
                let t = Instant::now();
                c.nodes[l].daemon.take().unwrap().kill9();
                c.incarnations[victim].killed = Some(at);
                faults.push(Fault::kill(at, victim));
                wait_for("another node to lead", Duration::from_secs(30), || {
                    c.leader_seen_by_others(Some(l)).is_some()
                });
                failovers.push(t.elapsed());
                c.start_node(l);
            }
            1 => {
                let victim = c.nodes[l].current;
                let pid = c.nodes[l].daemon.as_ref().unwrap().pid();
                signal(pid, "-STOP");
                wait_for("another node to lead", Duration::from_secs(30), || {
                    c.leader_seen_by_others(Some(l)).is_some()
                });
                signal(pid, "-CONT");
                let woke = SystemTime::now();
                c.incarnations[victim].stops.push((at, woke));
                faults.push(Fault::pause(at, woke, victim));
                wait_for(
                    "the paused node to stand by",
                    Duration::from_secs(30),
                    || leader(c.url(l)).is_some_and(|id| id != c.nodes[l].id),
                );
            }
            2 => {
                pg.psql(
                    &name,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                );
                faults.push(Fault::cut_off(at, SystemTime::now(), c.live()));
            }
            _ => {
                pg.stop();
                // An outage shorter than a lease, then one longer, in turn.
                let down = if cycle % 8 == 3 { 500 } else { 2_500 };
                std::thread::sleep(Duration::from_millis(down));
                pg.start_again();
                faults.push(Fault::cut_off(at, SystemTime::now(), c.live()));
            }
        }
        // Progress after each fault: the live workflow planned again.
        wait_for(
            "the live cursor to move on",
            Duration::from_secs(60),
            || cursor_now() > before,
        );
    }
    wait_for("the backfill to succeed", Duration::from_secs(600), || {
        (0..3).any(|i| {
            backfill_state(c.url(i), &token, id).is_some_and(|b| {
                assert_ne!(b["state"], "failed", "{b}\n{}", failures(&db));
                b["state"] == "succeeded" && b["succeeded"] == WINDOWS as u64
            })
        })
    });
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    for node in &mut c.nodes {
        assert_eq!(node.daemon.take().unwrap().terminate(), 0);
    }
    let ended = SystemTime::now();

    // 1. Exactly one committed success per task and window, and each
    //    window's partition written whole.
    exactly_once::check_etl_exactly_once(&db, START, WINDOWS);
    let store = PgStore::open(&db).unwrap();
    // The live workflow too: every window it ran has one committed run.
    let live = store
        .windows("default", "tick", i64::MIN, i64::MAX, 100_000)
        .unwrap();
    assert!(live.len() > CYCLES, "live windows: {}", live.len());
    for (s, w) in &live {
        let attempts = store.attempts("default", w.run_id).unwrap();
        let ok = attempts.iter().filter(|a| a.error_kind.is_none()).count();
        assert!(ok <= 1, "live window {s}: {attempts:?}");
    }
    // 2. The live cursor only moved forward.
    let seen = cursors.lock().unwrap().clone();
    assert!(seen.len() > 100, "samples: {}", seen.len());
    for pair in seen.windows(2) {
        assert!(pair[0] <= pair[1], "the cursor moved back: {pair:?}");
    }
    // 3 and 4. From what each process logged it started.
    let executions = audit::executions(&c.incarnations, ended);
    let (most, when) = audit::most_at_once(&executions, &c.incarnations);
    assert!(
        most <= QUOTA,
        "{most} attempts executing at once at {when:?}, quota {QUOTA}"
    );
    let duplicates = audit::unexplained_duplicates(&executions, &faults);
    assert!(
        duplicates.is_empty(),
        "duplicates with no fault of their node: {duplicates:#?}"
    );
    let report = audit::report(&executions, &faults, &mut failovers);
    eprintln!("{report}");
}
