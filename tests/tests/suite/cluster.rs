//! Several daemons on one PostgreSQL database: one leads (holds the engine
//! lease), the others forward the API to it and take over when it dies or
//! stalls past its lease; a stalled leader's writes are refused by the
//! database (fencing) and it steps down when it wakes.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tidemark::client::Client;
use tidemark::store::{PgStore, StoreError, TenantRecord, TenantStore, TokenRecord, ENGINE_LEASE};
use tidemark_tests::pg::PgCluster;
use tidemark_tests::plugins::*;

use crate::daemon::{plugin_dir, wait_for, Daemon, ADMIN};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn tenant(name: &str, token_id: u64) -> (TenantRecord, TokenRecord) {
    (
        TenantRecord {
            name: name.into(),
            created_ms: 0,
            quotas: Default::default(),
            egress: Vec::new(),
        },
        TokenRecord {
            id: token_id,
            tenant: name.into(),
            label: "first".into(),
            hash: format!("hash-{name}"),
            created_ms: 0,
            revoked: false,
        },
    )
}

/// The error of a write through a handle whose lease another owner took.
/// The takeover ends the old owner's sessions, so a write may find its
/// pooled connection terminated instead (writing nothing either way);
/// once the pool has replaced them, a new session is refused by the fence.
fn fenced_write(store: &PgStore, tenant: &TenantRecord, token: &TokenRecord) -> StoreError {
    for _ in 0..32 {
        let err = store.tenant_create(tenant, token).unwrap_err();
        let text = err.to_string();
        if !(text.contains("terminating connection") || text.contains("connection closed")) {
            return err;
        }
    }
    panic!("the pool kept handing out ended sessions");
}

#[test]
fn a_lapsed_lease_fences_its_owners_writes() {
    let url = PgCluster::fresh_database();
    let base = PgStore::open(&url).unwrap();
    let rt = runtime();
    // Every table of engine state carries the fencing trigger.
    assert_eq!(
        rt.block_on(base.unfenced_tables()).unwrap(),
        Vec::<String>::new()
    );

    let ttl = Duration::from_secs(1);
    let a_epoch = rt
        .block_on(base.lease_acquire(ENGINE_LEASE, "a", ttl))
        .unwrap()
        .expect("a free lease is granted");
    assert_eq!(a_epoch, 1);
    // Held: another node gets nothing.
    assert_eq!(
        rt.block_on(base.lease_acquire(ENGINE_LEASE, "b", ttl))
            .unwrap(),
        None
    );
    let a = base.fenced("a", a_epoch, ttl).unwrap();
    let (t, tok) = tenant("first", 1);
    assert!(a.tenant_create(&t, &tok).unwrap());

    // Once it lapses, b takes it with the next epoch.
    let b_epoch = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = rt
                .block_on(base.lease_acquire(ENGINE_LEASE, "b", ttl))
                .unwrap()
            {
                break e;
            }
            assert!(Instant::now() < deadline, "the lease never lapsed");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(b_epoch, 2);
    let holder = rt.block_on(base.lease_get(ENGINE_LEASE)).unwrap().unwrap();
    assert_eq!((holder.owner.as_str(), holder.epoch), ("b", 2));

    // a's handle can no longer write anything, and its write left nothing.
    let (t2, tok2) = tenant("second", 2);
    let err = fenced_write(&a, &t2, &tok2);
    assert!(err.is_fenced(), "{err}");
    assert!(
        err.to_string().contains("no longer holds the engine lease"),
        "{err}"
    );
    assert!(base.tenant_get("second").unwrap().is_none());
    // Nor can a renew what b holds now.
    assert!(!rt
        .block_on(base.lease_renew(ENGINE_LEASE, "a", a_epoch, ttl))
        .unwrap());
    // b's handle writes.
    let b = base.fenced("b", b_epoch, ttl).unwrap();
    assert!(b.tenant_create(&t2, &tok2).unwrap());
    assert!(base.tenant_get("second").unwrap().is_some());
    // Releasing ends it at once: a takes it back with epoch 3, and b's
    // handle is fenced in turn.
    rt.block_on(base.lease_release(ENGINE_LEASE, "b", b_epoch))
        .unwrap();
    assert_eq!(
        rt.block_on(base.lease_acquire(ENGINE_LEASE, "a", ttl))
            .unwrap(),
        Some(3)
    );
    let (t3, tok3) = tenant("third", 3);
    let err = fenced_write(&b, &t3, &tok3);
    assert!(err.is_fenced(), "{err}");
    assert!(base.tenant_get("third").unwrap().is_none());
    // An unfenced session (tools, a single daemon's tests) is not checked.
    assert!(base.tenant_create(&t3, &tok3).unwrap());
}

#[test]
fn an_embedded_daemon_is_one_node_always_leading() {
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start_with_args(
        data.path(),
        None,
        None,
        &[
            std::ffi::OsStr::new("--node-id"),
            std::ffi::OsStr::new("solo"),
        ],
    );
    let v = nodes(&d.url);
    assert_eq!(
        (&v["store"], &v["leader"], &v["epoch"]),
        (&json!("embedded"), &json!("solo"), &json!(0)),
        "{v}"
    );
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(
        v["nodes"][0]["addr"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{v}"
    );
    // Admin only.
    let (code, _, err) = d.cli_as("not-a-token", &["nodes"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("401") || err.to_lowercase().contains("token"),
        "{err}"
    );
    // A node id that cannot be one is refused before anything starts.
    let out = std::process::Command::new(tidemark_tests::tidemark_bin())
        .args(["config", "check", "--node-id", "two words"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("node_id"),
        "{out:?}"
    );
}

fn etl_workflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/etl.toml");
    std::fs::copy(example, dir.path().join("etl.toml")).unwrap();
    dir
}

struct Node {
    daemon: Daemon,
    _data: tempfile::TempDir,
}

fn start_node(url: &str, id: &str, plugins: &Path, workflows: &Path) -> Node {
    let data = tempfile::tempdir().unwrap();
    let words = ["--store", url, "--node-id", id, "--lease", "2s"];
    let args: Vec<&std::ffi::OsStr> = words.iter().map(std::ffi::OsStr::new).collect();
    let daemon = Daemon::start_with_args(data.path(), Some(plugins), Some(workflows), &args);
    Node {
        daemon,
        _data: data,
    }
}

/// `GET /metrics` of one node: status and body.
fn scrape(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(&format!("{url}/metrics"));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {url}/metrics: {e}"),
    }
}

fn nodes(url: &str) -> Value {
    Client::new(url)
        .with_token(Some(ADMIN.into()))
        .get("/api/v1/nodes")
        .expect("GET /api/v1/nodes")
}

fn leader(url: &str) -> Option<String> {
    Client::new(url)
        .with_token(Some(ADMIN.into()))
        .get("/api/v1/nodes")
        .ok()
        .and_then(|v| v["leader"].as_str().map(str::to_owned))
}

/// Two nodes, `n1` leading, with the ETL example loaded and a backfill of
/// `windows` hourly windows started through the standby `n2`.
fn cluster_with_backfill(
    windows: i64,
) -> (String, Node, Node, String, u64, [tempfile::TempDir; 2]) {
    let url = PgCluster::fresh_database();
    let (n1, n2, token, id, dirs) = cluster_with_backfill_on(&url, windows);
    (url, n1, n2, token, id, dirs)
}

/// Two nodes on database `url` (n1 leading) and an hourly ETL backfill of
/// `windows` windows created through the standby.
fn cluster_with_backfill_on(
    url: &str,
    windows: i64,
) -> (Node, Node, String, u64, [tempfile::TempDir; 2]) {
    let plugins = plugin_dir(&[ETL_EXTRACT, ETL_TRANSFORM, ETL_LOAD]);
    let workflows = etl_workflows();
    let n1 = start_node(url, "n1", plugins.path(), workflows.path());
    let n2 = start_node(url, "n2", plugins.path(), workflows.path());
    let token = n1
        .daemon
        .token
        .clone()
        .expect("n1 created the default tenant");
    // Either node answers for the cluster: n2 by forwarding to n1.
    for d in [&n1.daemon, &n2.daemon] {
        let v = nodes(&d.url);
        assert_eq!(v["store"], "postgres", "{v}");
        assert_eq!(v["leader"], "n1", "{v}");
        let listed: Vec<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["id"].as_str())
            .collect();
        assert_eq!(listed, ["n1", "n2"], "{v}");
    }
    // Each node answers /metrics itself, naming itself: the leader with the
    // engine's series, the standby with its own only (and the request it
    // forwarded above).
    let (status, leading) = scrape(&n1.daemon.url, Some(ADMIN));
    assert_eq!(status, 200, "{leading}");
    assert!(
        leading.contains("tidemark_node_leader{node=\"n1\"} 1"),
        "{leading}"
    );
    assert!(leading.contains("# HELP tidemark_runs_ended "), "{leading}");
    assert_eq!(leading.matches("# EOF").count(), 1, "{leading}");
    let (status, standing) = scrape(&n2.daemon.url, Some(ADMIN));
    assert_eq!(status, 200, "{standing}");
    assert!(
        standing.contains("tidemark_node_leader{node=\"n2\"} 0"),
        "{standing}"
    );
    assert!(!standing.contains("tidemark_runs_ended"), "{standing}");
    assert!(
        standing
            .contains("tidemark_node_forwarded_requests_total{node=\"n2\",outcome=\"answered\"}"),
        "{standing}"
    );
    assert!(!standing.contains("node=\"n1\""), "{standing}");
    for token in [None, Some("not-the-admin-token")] {
        let (status, body) = scrape(&n2.daemon.url, token);
        assert_eq!(status, 401, "{body}");
        assert!(!body.contains("tidemark_node"), "{body}");
    }
    let start = 1_704_067_200_000i64; // 2024-01-01T00:00:00Z
    let end = start + windows * 3_600_000;
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    let created = Client::new(&n2.daemon.url)
        .with_token(Some(token.clone()))
        .post_json(
            "/api/v1/backfills",
            &json!({"workflow": "etl", "start": iso(start), "end": iso(end), "parallelism": 8}),
        )
        .expect("a backfill created through the standby");
    let id = created["backfill"]["id"].as_u64().expect("backfill id");
    // The preload directories stay: a node preloads them when it takes over.
    (n1, n2, token, id, [plugins, workflows])
}

fn backfill(url: &str, token: &str, id: u64) -> Option<Value> {
    Client::new(url)
        .with_token(Some(token.into()))
        .get(&format!("/api/v1/backfills/{id}"))
        .ok()
}

/// Exactly one committed success per task of every window of the
/// backfill, and every window's events partition written whole once.
fn check_exactly_once(db: &str, windows: i64) {
    crate::exactly_once::check_etl_exactly_once(db, 1_704_067_200_000, windows);
}

fn wait_succeeded(url: &str, token: &str, id: u64, windows: u64) {
    wait_for("the backfill to succeed", Duration::from_secs(240), || {
        backfill(url, token, id).is_some_and(|b| {
            let b = &b["backfill"];
            assert_ne!(b["state"], "failed", "{b}");
            b["state"] == "succeeded" && b["succeeded"] == windows
        })
    });
}

#[test]
fn a_standby_takes_over_when_the_leader_is_killed() {
    let windows = 120;
    let (db, n1, n2, token, id, _dirs) = cluster_with_backfill(windows);
    wait_for("some windows done", Duration::from_secs(120), || {
        backfill(&n2.daemon.url, &token, id)
            .is_some_and(|b| b["backfill"]["succeeded"].as_u64() >= Some(10))
    });
    // `tidemark nodes` through the standby: the leader and both nodes.
    let (code, out, err) = n2.daemon.cli_as(ADMIN, &["nodes"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("store postgres, leader n1, lease epoch 1\n"),
        "{out}"
    );
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (line("n1")[1], line("n1")[4]),
        ("leader", "engine"),
        "{out}"
    );
    assert_eq!((line("n2")[1], line("n2")[4]), ("standby", "-"), "{out}");
    let killed = Instant::now();
    n1.daemon.kill9();
    wait_for("n2 to lead", Duration::from_secs(30), || {
        leader(&n2.daemon.url).as_deref() == Some("n2")
    });
    let failover = killed.elapsed();
    // A lease of 2 s and a poll of at most 0.4 s.
    assert!(
        failover < Duration::from_secs(8),
        "failover took {failover:?}"
    );
    eprintln!("failover after SIGKILL: {failover:?}");
    let v = nodes(&n2.daemon.url);
    assert_eq!(v["epoch"], 2, "{v}");
    wait_succeeded(&n2.daemon.url, &token, id, windows as u64);
    check_exactly_once(&db, windows);
}

#[test]
fn a_paused_leader_is_fenced_and_steps_down() {
    let windows = 120;
    let (db, n1, n2, token, id, _dirs) = cluster_with_backfill(windows);
    wait_for("some windows done", Duration::from_secs(120), || {
        backfill(&n2.daemon.url, &token, id)
            .is_some_and(|b| b["backfill"]["succeeded"].as_u64() >= Some(10))
    });
    let pid = n1.daemon.pid().to_string();
    let signal = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success())
    };
    signal("-STOP");
    wait_for("n2 to lead", Duration::from_secs(30), || {
        leader(&n2.daemon.url).as_deref() == Some("n2")
    });
    // Awake again with attempts in hand and a lease it no longer holds:
    // its commits are refused, it notices and forwards from then on.
    signal("-CONT");
    wait_for("n1 to stand by", Duration::from_secs(30), || {
        leader(&n1.daemon.url).as_deref() == Some("n2")
    });
    // Its attempts in hand end within the grace period, their commits
    // refused; it then stands by with none.
    wait_for("n1 to drop its attempts", Duration::from_secs(30), || {
        let v = nodes(&n1.daemon.url);
        let n1_status = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "n1")
            .cloned()
            .expect("n1 listed");
        assert_eq!(n1_status["leader"], false, "{v}");
        n1_status["attempts"] == 0
    });
    wait_succeeded(&n1.daemon.url, &token, id, windows as u64);
    check_exactly_once(&db, windows);
    assert_eq!(n1.daemon.terminate(), 0);
    assert_eq!(n2.daemon.terminate(), 0);
}

/// Faults of the database itself, on a private server: every session of
/// the daemons ended at once, then the server down for longer than a
/// lease. The nodes ride both out; the backfill ends exactly once.
#[test]
fn the_cluster_rides_out_ended_sessions_and_a_database_outage() {
    let windows = 120;
    let pg = PgCluster::start();
    let db = pg.create_database();
    let name = db.rsplit('/').next().unwrap().to_owned();
    let (n1, n2, token, id, _dirs) = cluster_with_backfill_on(&db, windows);
    let reach = |n: u64| {
        wait_for("more windows done", Duration::from_secs(120), || {
            backfill(&n2.daemon.url, &token, id)
                .is_some_and(|b| b["backfill"]["succeeded"].as_u64() >= Some(n))
        })
    };
    reach(10);
    let ended = pg.psql(
        &name,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert!(
        ended.parse::<u32>().unwrap() >= 2,
        "sessions ended: {ended}"
    );
    reach(40);
    pg.stop();
    // While it is down, requests fail with a status that says so, not a
    // hang.
    let err = Client::new(&n1.daemon.url)
        .with_token(Some(token.clone()))
        .get(&format!("/api/v1/backfills/{id}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("503"), "{err}");
    // Longer than a lease (2 s): the leader cannot renew and steps down.
    std::thread::sleep(Duration::from_secs(5));
    pg.start_again();
    wait_succeeded(&n2.daemon.url, &token, id, windows as u64);
    check_exactly_once(&db, windows);
    assert_eq!(n1.daemon.terminate(), 0);
    assert_eq!(n2.daemon.terminate(), 0);
}
