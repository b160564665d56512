//! The real daemon on PostgreSQL (`tidemark serve --store postgres://...`):
//! the ETL example end to end, a restart that finds everything in the
//! database, and the one-line errors of a bad connection string, an
//! unreachable database and a schema from a newer Tidemark.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tidemark::store::{PgStore, StateStore, TaskData};
use tidemark_tests::pg::PgCluster;
use tidemark_tests::plugins::*;
use tidemark_tests::tidemark_bin;

use crate::daemon::{plugin_dir, wait_for, Daemon};

fn etl_workflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/etl.toml");
    std::fs::copy(example, dir.path().join("etl.toml")).unwrap();
    dir
}

fn succeeded_runs(d: &Daemon) -> Vec<u64> {
    d.runs("etl")
        .iter()
        .filter(|r| r["state"] == "succeeded")
        .filter_map(|r| r["id"].as_u64())
        .collect()
}

#[test]
fn the_etl_example_runs_on_postgres_and_survives_a_restart() {
    let url = PgCluster::fresh_database();
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[ETL_EXTRACT, ETL_TRANSFORM, ETL_LOAD]);
    let workflows = etl_workflows();
    let store_arg = [std::ffi::OsStr::new("--store"), url.as_ref()];
    let d = Daemon::start_with_args(
        data.path(),
        Some(plugins.path()),
        Some(workflows.path()),
        &store_arg,
    );
    let (code, out, err) = d.cli(&["run-window", "etl", "2024-03-01T12:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2024-03-01T12:00:00Z"), "{out}");
    wait_for("the ETL run", Duration::from_secs(60), || {
        !succeeded_runs(&d).is_empty()
    });
    let before = succeeded_runs(&d);
    assert_eq!(d.terminate(), 0);
    // The state is in PostgreSQL, not in the data directory.
    assert!(!data.path().join("state").exists());
    let store = PgStore::open(&url).unwrap();
    let run = store
        .run_get("default", before[0])
        .unwrap()
        .expect("the run");
    assert_eq!(run.tasks.len(), 3);
    let attempts = store.attempts("default", before[0]).unwrap();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(
        attempts.iter().all(|a| a.error_kind.is_none()),
        "{attempts:?}"
    );
    // extract wrote its 500 events of each window it ran (the one asked
    // for and maybe the newest live one) as one partition each.
    let events = store
        .dataset_scan("default", "events", i64::MIN..i64::MAX, "", None, 100_000)
        .unwrap();
    let mut per_window = std::collections::BTreeMap::<i64, usize>::new();
    for e in &events {
        *per_window.entry(e.partition).or_default() += 1;
    }
    assert_eq!(
        per_window.get(&1_709_294_400_000),
        Some(&500),
        "{per_window:?}"
    );
    assert!(per_window.values().all(|n| *n == 500), "{per_window:?}");
    let bytes = store.dataset_bytes("default").unwrap();
    assert!(bytes > 0);
    drop(store);

    // Restarted on the same database: the run, its attempts and the
    // workflow version are there; preloading the same files changes none.
    let d = Daemon::start_with_args(
        data.path(),
        Some(plugins.path()),
        Some(workflows.path()),
        &store_arg,
    );
    // (The newest live window may have finished since, or run now.)
    let after = succeeded_runs(&d);
    assert!(
        before.iter().all(|id| after.contains(id)),
        "{before:?} {after:?}"
    );
    let (code, out, err) = d.cli(&["runs", "show", &before[0].to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("succeeded"), "{out}");
    let (code, out, err) = d.cli(&["workflow", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("etl"), "{out}");
    assert_eq!(d.terminate(), 0);
    let store = PgStore::open(&url).unwrap();
    assert_eq!(
        store
            .workflow_get("default", "etl", None)
            .unwrap()
            .map(|w| w.version),
        Some(1)
    );
    assert!(store.dataset_bytes("default").unwrap() >= bytes);
}

/// Runs `tidemark serve` expecting it to fail; returns the exit code and
/// its error line (checked to be the only `error:` line).
fn serve_fails(store: &str) -> (i32, String) {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(tidemark_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args(["--store", store])
        .env("TIDEMARK_ADMIN_TOKEN", crate::daemon::ADMIN)
        .env("RUST_LOG", "off")
        .output()
        .expect("running tidemark serve");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "stderr: {stderr}");
    assert!(
        !stderr.contains("hunter2") && !stdout.contains("hunter2"),
        "{stderr}{stdout}"
    );
    (out.status.code().unwrap_or(-1), errors[0].to_owned())
}

#[test]
fn a_bad_store_is_one_clear_line_without_the_password() {
    // Not a PostgreSQL URL, and one that does not parse: refused as
    // configuration (exit 3) before anything connects.
    let (code, line) = serve_fails("mysql://tide:hunter2@db/tidemark");
    assert_eq!(code, 3, "{line}");
    assert!(
        line.contains("store: mysql://tide:***@db/tidemark is not a postgres:// URL"),
        "{line}"
    );
    let (code, line) = serve_fails("postgres://tide:hunter2@db:port/tidemark");
    assert_eq!(code, 3, "{line}");
    assert!(
        line.contains("tide:***@db:port/tidemark is not a PostgreSQL connection string"),
        "{line}"
    );

    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let (code, line) = serve_fails(&format!("postgres://tide:hunter2@127.0.0.1:{port}/db"));
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("connecting to PostgreSQL at postgres://tide:***@127.0.0.1"),
        "{line}"
    );
    assert!(line.contains("refused"), "{line}");

    // A database a newer Tidemark migrated.
    let url = PgCluster::fresh_database();
    drop(PgStore::open(&url).unwrap());
    {
        let guard = PgCluster::shared().lock().unwrap();
        guard.as_ref().unwrap().psql(
            url.rsplit('/').next().unwrap(),
            "INSERT INTO refinery_schema_history VALUES (42, 'future', '', '')",
        );
    }
    let with_password = url.replacen("postgres@", "postgres:hunter2@", 1);
    let (code, line) = serve_fails(&with_password);
    assert_eq!(code, 1, "{line}");
    let supported = tidemark::store::pg_schema_version();
    assert!(
        line.contains(&format!(
            "has schema version 42, newer than the {supported}"
        )),
        "{line}"
    );
    assert!(line.contains("postgres:***@127.0.0.1"), "{line}");
}

#[test]
fn config_check_shows_the_store_without_its_password() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("tidemark.toml");
    std::fs::write(
        &file,
        "store = \"postgres://tide:hunter2@db:5432/tidemark\"\n",
    )
    .unwrap();
    let out = Command::new(tidemark_bin())
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("store = \"postgres://tide:***@db:5432/tidemark\""),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"));
    // Unset, it is the embedded store.
    std::fs::write(&file, "").unwrap();
    let out = Command::new(tidemark_bin())
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("store = \"embedded\""));
}
