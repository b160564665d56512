//! The real `tidemark serve` binary on a temporary data dir, driven over
//! HTTP and the CLI, and killed with SIGKILL at arbitrary moments.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tidemark::store::{SledStore, TaskData};
use tidemark_tests::plugins::*;
use tidemark_tests::tidemark_bin;

const H: i64 = 3_600_000;

pub use crate::driver::{plugin_dir, wait_for, Daemon, KillOnDrop, ADMIN};

#[test]
fn serve_apply_push_run_window_and_list() {
    let data = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(data.path(), None, None);
    let (code, _, err) = d.cli(&["plugin", "list"]);
    assert_eq!(code, 1, "no token");
    assert!(err.contains("missing Authorization header"), "{err}");
    d.login_as_new_tenant("acme");
    let (code, out, err) = d.cli(&["plugin", "push", "hello", HELLO]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("plugin hello version 1"), "{out}");
    // Quotas: the admin caps plugins; the tenant sees it and is refused.
    let (code, out, err) = d.cli_as(ADMIN, &["tenant", "quotas", "acme", "--set", "plugins=1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("plugins"), "{out}");
    let (code, out, err) = d.cli(&["quotas", "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["quotas"]["plugins"].as_u64(),
            v["usage"]["plugins"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let (code, _, err) = d.cli(&["plugin", "push", "other", HELLO]);
    assert_eq!(code, 1);
    assert!(err.contains("quota plugins exceeded"), "{err}");
    let (code, _, err) = d.cli_as(ADMIN, &["tenant", "quotas", "acme", "--set", "plugins=x"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = d.cli_as(ADMIN, &["tenant", "quotas", "acme", "--unset", "plugins"]);
    assert_eq!(code, 0, "{err}");
    let wf = data.path().join("wf.toml");
    std::fs::write(
        &wf,
        "name = \"greet\"\ncatchup = false\n[schedule]\ncron = \"0 0 * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"hi\"\nplugin = \"hello\"\n",
    )
    .unwrap();
    let (code, out, err) = d.cli(&["apply", "-f", wf.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("workflow greet version 1"), "{out}");
    let (code, out, err) = d.cli(&["run-window", "greet", "2024-03-01T12:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2024-03-01T00:00:00Z .. 2024-03-02T00:00:00Z"),
        "{out}"
    );
    wait_for("the manual run", Duration::from_secs(30), || {
        d.runs("greet")
            .iter()
            .any(|r| r["window_start_ms"] == 1_709_251_200_000i64 && r["state"] == "succeeded")
    });
    // Event runs: a retried trigger with the same key is the same run.
    let trigger = || {
        let (code, out, err) = d.cli(&[
            "trigger",
            "greet",
            "--payload",
            r#"{"a": 1}"#,
            "--idempotency-key",
            "k1",
            "--output",
            "json",
        ]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()["run_id"]
            .as_u64()
            .unwrap()
    };
    let event = trigger();
    assert_eq!(trigger(), event);
    let (code, _, err) = d.cli(&["trigger", "greet", "--payload", "{oops"]);
    assert_eq!(code, 2);
    assert!(err.contains("--payload is not JSON"), "{err}");
    wait_for("the event run", Duration::from_secs(30), || {
        let (_, out, _) = d.cli(&["runs", "show", &event.to_string()]);
        out.contains(": succeeded (event trigger)")
    });
    let (code, out, err) = d.cli(&["runs", "show", &event.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("attempt hi #1: ok hello"), "{out}");
    // Provenance: the trigger's key and the token that asked, as JSON and
    // as text; the manual run beside it.
    let (code, out, err) = d.cli(&["runs", "why", &event.to_string(), "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let why: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            why["cause"]["kind"].as_str(),
            why["cause"]["idempotency_key"].as_str(),
            why["requested_by"]["label"].as_str(),
        ),
        (Some("trigger"), Some("k1"), Some("first token"))
    );
    let digest = tidemark::executor::digest(&std::fs::read(HELLO).unwrap());
    assert_eq!(why["tasks"][0]["plugin_digest"], digest.as_str());
    let manual = d
        .runs("greet")
        .iter()
        .find(|r| r["window_start_ms"] == 1_709_251_200_000i64)
        .and_then(|r| r["id"].as_u64())
        .unwrap();
    let (code, out, err) = d.cli(&["runs", "why", &manual.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("why:          manual"), "{out}");
    assert!(out.contains(&format!("digest {digest}")), "{out}");
    let (code, out, err) = d.cli(&[
        "runs",
        "why",
        &manual.to_string(),
        "--compare",
        &event.to_string(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("cannot be compared"), "{err}");
    // Backfill: preview, run, follow.
    let (code, out, err) = d.cli(&[
        "backfill",
        "create",
        "greet",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-04",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("plan: 2 runs, 1 skipped"), "{out}");
    assert!(out.contains("skipped: already succeeded"), "{out}");
    // A cascade scope naming a workflow the tenant does not have.
    let (code, _, err) = d.cli(&[
        "backfill",
        "create",
        "greet",
        "--dates",
        "2024-03-01",
        "--downstream",
        "direct",
        "--exclude-downstream",
        "nope",
        "--dry-run",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("downstream_exclude: workflow \"nope\" does not exist"),
        "{err}"
    );
    let (code, out, err) = d.cli(&[
        "backfill",
        "create",
        "greet",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-04",
        "--mode",
        "serial",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    // `watch` follows it to the end and exits 0 because it succeeded.
    let (code, out, err) = d.cli(&["backfill", "watch", &id, "--interval", "50ms"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "backfill {id} succeeded: 2 succeeded, 0 failed, 1 skipped"
        )),
        "{out}"
    );
    // A backfill that fails: `watch` exits non-zero.
    let (code, _, err) = d.cli(&["plugin", "push", "panic", PANIC]);
    assert_eq!(code, 0, "{err}");
    let boom = data.path().join("boom.toml");
    std::fs::write(&boom, "name = \"boom\"\npaused = true\n[schedule]\ncron = \"0 0 * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"panic\"\n").unwrap();
    let (code, _, err) = d.cli(&["apply", "-f", boom.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = d.cli(&["backfill", "create", "boom", "--dates", "2024-03-01"]);
    assert_eq!(code, 0, "{err}");
    let failing = out.split_whitespace().nth(1).unwrap().to_owned();
    let (code, out, _) = d.cli(&["backfill", "watch", &failing, "--interval", "50ms"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed: 0 succeeded, 1 failed"), "{out}");
    let (code, out, err) = d.cli(&["backfill", "retry-failed", &failing, "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["backfill"]["id"].to_string(),
            v["backfill"]["state"].as_str()
        ),
        (failing.clone(), Some("running"))
    );
    let (_, out, _) = d.cli(&["backfill", "status", &id]);
    assert!(
        out.contains("3 done (2 succeeded, 0 failed, 1 skipped"),
        "{out}"
    );
    let (code, _, err) = d.cli(&[
        "backfill",
        "create",
        "greet",
        "--start",
        "2024-03-04",
        "--end",
        "2024-03-01",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("end: must be after start"), "{err}");
    // Errors come back with the server's message and a non-zero exit.
    let (code, _, err) = d.cli(&["run-window", "nope", "2024-03-01T12:00:00Z"]);
    assert_eq!(code, 1);
    assert!(err.contains("workflow \"nope\" not found"), "{err}");
    let bad = data.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[schedule]\ncron = \"0 0 * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n").unwrap();
    let (code, _, err) = d.cli(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("schedule.cron"), "{err}");
    assert_eq!(d.terminate(), 0, "graceful shutdown exits 0");
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Issue #8: a `Daemon` dropped without `terminate`, or held by a test that
/// fails, left its `tidemark serve` running after the suite.
#[test]
fn a_dropped_daemon_leaves_no_process_behind() {
    let data = tempfile::tempdir().unwrap();
    let d = Daemon::start(data.path(), None, None);
    let pid = d.pid();
    assert!(process_exists(pid), "the daemon runs as {pid}");
    drop(d);
    assert!(
        !process_exists(pid),
        "the dropped daemon {pid} still exists"
    );

    // A failed assertion unwinds through the test holding the daemon.
    let data = tempfile::tempdir().unwrap();
    let started = std::cell::Cell::new(None);
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let d = Daemon::start(data.path(), None, None);
        started.set(Some(d.pid()));
        assert_eq!(d.cli(&["plugin", "list"]).0, 42, "an assertion that fails");
    }));
    assert!(failed.is_err());
    let pid = started.get().expect("the daemon started");
    assert!(
        !process_exists(pid),
        "the daemon {pid} of the failed test still exists"
    );
}

/// Issue #13: the generated admin token was printed into the daemon's
/// output, which is its log under a service manager.
#[test]
fn the_admin_token_never_reaches_the_log() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = KillOnDrop(
        Command::new(tidemark_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env_remove("TIDEMARK_ADMIN_TOKEN")
            .env("RUST_LOG", "debug")
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("spawning tidemark serve"),
    );
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_for("the daemon to listen", Duration::from_secs(60), || {
        read(&out_path).contains("tidemark listening on")
    });
    let token_file = data.path().join("admin-token");
    let token = read(&token_file).trim().to_owned();
    assert!(token.len() >= 16, "generated token {token:?}");
    // The token works, so requests made with it are in the debug log too.
    let url = read(&out_path)
        .lines()
        .find_map(|l| l.strip_prefix("tidemark listening on ").map(str::to_owned))
        .unwrap();
    tidemark::client::Client::new(&url)
        .with_token(Some(token.clone()))
        .get("/api/v1/tenants")
        .expect("the admin token lists tenants");
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(child.0.wait().unwrap().success());
    let (out, err) = (read(&out_path), read(&err_path));
    assert!(
        out.contains(&format!(
            "generated the admin token into {}",
            token_file.display()
        )),
        "{out}"
    );
    assert!(!out.contains(&token), "stdout shows the token: {out}");
    assert!(!err.contains(&token), "the log shows the token: {err}");

    // A configured token must not be guessable; the refusal does not echo it.
    let out = Command::new(tidemark_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("TIDEMARK_ADMIN_TOKEN", "s3cret")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("admin_token: must be at least 16 characters"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

/// Expected `summary` of the ETL pipeline for a window, from the extract
/// plugin's generator.
fn expected_summary(window_start: i64, events: u64) -> (u64, u64) {
    const G: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut amount = 0;
    for i in 0..events {
        let mut z = (window_start as u64 ^ i.wrapping_mul(G)).wrapping_add(G);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        amount += ((z ^ (z >> 31)) >> 32) % 1000;
    }
    (events, amount)
}

#[test]
fn sigkill_at_arbitrary_moments_loses_and_repeats_nothing() {
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[ETL_EXTRACT, ETL_TRANSFORM, ETL_LOAD]);
    let workflows = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let start = (now / H) * H - 200 * H;
    let start_iso = chrono::DateTime::from_timestamp_millis(start)
        .unwrap()
        .to_rfc3339();
    let events = 400;
    std::fs::write(
        workflows.path().join("etl.toml"),
        format!(
            "name = \"etl\"\nmax_active_runs = 8\n[schedule]\ncron = \"0 * * * *\"\nstart = \"{start_iso}\"\n\
             [[tasks]]\nname = \"extract\"\nplugin = \"etl-extract\"\nparams = {{ events = {events} }}\n\
             [[tasks]]\nname = \"transform\"\nplugin = \"etl-transform\"\ndepends_on = [\"extract\"]\n\
             [[tasks]]\nname = \"load\"\nplugin = \"etl-load\"\ndepends_on = [\"transform\"]\n"
        ),
    )
    .unwrap();

    // The tenant exists before the first kill, so every start finds its token.
    let first = Daemon::start(data.path(), Some(plugins.path()), None);
    assert!(
        first.token.is_some(),
        "the default tenant's token is written on first start"
    );
    assert_eq!(first.terminate(), 0);

    // Kill the daemon at spread-out moments of its work (a fixed sequence,
    // so a failure reproduces), restarting it each time.
    let mut progress = Vec::new();
    for delay_ms in [150u64, 40, 300, 90, 220, 10, 500] {
        let d = Daemon::start(data.path(), Some(plugins.path()), Some(workflows.path()));
        std::thread::sleep(Duration::from_millis(delay_ms));
        d.kill9();
        let store = SledStore::open(&data.path().join("state")).unwrap();
        let done = (0..200)
            .filter(|i| {
                store
                    .dataset_get("default", "summary", start + i * H, "window")
                    .ok()
                    .flatten()
                    .is_some()
            })
            .count();
        progress.push(done);
    }

    let d = Daemon::start(data.path(), Some(plugins.path()), Some(workflows.path()));
    wait_for("every window to succeed", Duration::from_secs(120), || {
        let runs = d.runs("etl");
        runs.len() >= 200 && runs.iter().all(|r| r["state"] == "succeeded")
    });
    let runs = d.runs("etl");
    for r in &runs {
        let detail = d.get(&format!("/api/v1/runs/{}", r["id"]));
        let attempts = detail["attempts"].as_array().cloned().unwrap_or_default();
        for task in ["extract", "transform", "load"] {
            let ok = attempts
                .iter()
                .filter(|a| a["task"] == task && a["error_kind"].is_null())
                .count();
            assert_eq!(
                ok, 1,
                "window {} task {task}: {ok} successful attempts",
                r["window_start_ms"]
            );
        }
    }
    assert_eq!(d.terminate(), 0);

    // The datasets equal those of an uninterrupted run.
    let store = SledStore::open(&data.path().join("state")).unwrap();
    for r in &runs {
        let w = r["window_start_ms"].as_i64().unwrap();
        let raw = store
            .dataset_get("default", "summary", w, "window")
            .unwrap()
            .expect("summary row");
        let v: Value = serde_json::from_slice(&raw).unwrap();
        let (n, amount) = expected_summary(w, events);
        assert_eq!(
            (v["events"].as_u64(), v["amount"].as_u64()),
            (Some(n), Some(amount)),
            "window {w}"
        );
        let rows = store
            .dataset_scan("default", "events", w..w + 1, "", None, 10_000)
            .unwrap();
        assert_eq!(
            rows.len() as u64,
            events,
            "no duplicate or missing rows in window {w}"
        );
    }
    eprintln!("windows with a summary after each kill: {progress:?}");
}
