//! The estimate against the real daemon: backfills of the `etl` example
//! record history, a dry run estimates the next backfill from it, and the
//! backfill's actual wall time, task-runs and fuel fall inside the ranges
//! it was created with.

use std::path::PathBuf;

use serde_json::Value;
use tidemark_tests::plugins::*;

use crate::daemon::{plugin_dir, Daemon};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn json(d: &Daemon, args: &[&str]) -> Value {
    let (code, out, err) = d.cli(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Creates a backfill of `etl` over `[start, end)` at parallelism 2 and
/// follows it to its end; returns its status.
fn backfill(d: &Daemon, start: &str, end: &str) -> Value {
    let args = [
        "backfill",
        "create",
        "etl",
        "--start",
        start,
        "--end",
        end,
        "--parallelism",
        "2",
        "--output",
        "json",
    ];
    let id = json(d, &args)["backfill"]["id"].to_string();
    let (code, out, err) = d.cli(&["backfill", "watch", &id, "--interval", "50ms"]);
    assert_eq!(code, 0, "{out} {err}");
    json(d, &["backfill", "status", &id, "--output", "json"])
}

fn within(what: &str, actual: u64, range: &Value) {
    let (low, high) = (
        range["low"].as_u64().unwrap(),
        range["high"].as_u64().unwrap(),
    );
    eprintln!(
        "etl estimate vs actual: {what}: {actual} in {low}..{high} (expected {})",
        range["expected"]
    );
    assert!(
        (low..=high).contains(&actual),
        "{what}: actual {actual} outside the estimate {low}..{high}"
    );
}

#[test]
fn the_etl_examples_actual_cost_falls_inside_its_estimate() {
    let data = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(&[ETL_EXTRACT, ETL_TRANSFORM, ETL_LOAD]);
    let workflows = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("examples/etl.toml"),
        workflows.path().join("etl.toml"),
    )
    .unwrap();
    let d = Daemon::start(data.path(), Some(plugins.path()), Some(workflows.path()));

    // History: twelve windows of the example.
    backfill(&d, "2024-03-01T00:00:00Z", "2024-03-01T12:00:00Z");

    let dry = json(
        &d,
        &[
            "backfill",
            "create",
            "etl",
            "--start",
            "2024-03-02T00:00:00Z",
            "--end",
            "2024-03-02T12:00:00Z",
            "--parallelism",
            "2",
            "--dry-run",
            "--output",
            "json",
        ],
    );
    let w = &dry["estimate"]["workflows"][0];
    assert_eq!(w["runs"], 12);
    assert_eq!(w["run_basis"], "version", "{w}");
    for t in w["tasks"].as_array().unwrap() {
        assert_eq!(t["basis"], "version", "{t}");
        assert!(t["samples"].as_u64().unwrap() >= 12, "{t}");
    }
    // The text form says what it rests on.
    let (code, out, err) = d.cli(&[
        "backfill",
        "create",
        "etl",
        "--start",
        "2024-03-02T00:00:00Z",
        "--end",
        "2024-03-02T12:00:00Z",
        "--parallelism",
        "2",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("run duration rests on: version"), "{out}");
    assert!(out.contains("task extract: version"), "{out}");

    let status = backfill(&d, "2024-03-02T00:00:00Z", "2024-03-02T12:00:00Z");
    assert_eq!(status["backfill"]["state"], "succeeded", "{status}");
    let (estimate, actual) = (&status["estimate"], &status["actual"]);
    assert_eq!(
        estimate["fuel"], dry["estimate"]["total"]["fuel"],
        "created with it"
    );
    within(
        "wall ms",
        actual["wall_ms"].as_u64().unwrap(),
        &estimate["wall_ms"],
    );
    within(
        "task-runs",
        actual["task_runs"].as_u64().unwrap(),
        &estimate["task_runs"],
    );
    within("fuel", actual["fuel"].as_u64().unwrap(), &estimate["fuel"]);
    within(
        "bytes",
        actual["bytes"].as_u64().unwrap(),
        &estimate["bytes"],
    );
    assert!(
        actual["bytes"].as_u64().unwrap() > 0,
        "load writes a summary row"
    );
    // The text status sets them side by side.
    let id = status["backfill"]["id"].to_string();
    let (code, out, err) = d.cli(&["backfill", "status", &id]);
    assert_eq!(code, 0, "{err}");
    let fuel = format!("  fuel: {}; estimated ", actual["fuel"]);
    assert!(out.contains(&fuel), "{out}");

    // Budget flags: a zero limit is refused naming the field, nothing stored.
    let before = json(&d, &["backfill", "list", "--output", "json"]);
    for (flag, value, field) in [
        ("--max-fuel", "0", "budget.max_fuel"),
        ("--max-bytes", "-5", "budget.max_bytes"),
        ("--max-wall", "0s", "budget.max_wall_seconds"),
    ] {
        let (code, _, err) = d.cli(&[
            "backfill",
            "create",
            "etl",
            "--start",
            "2024-03-03",
            "--end",
            "2024-03-04",
            flag,
            value,
        ]);
        assert_ne!(code, 0, "{flag} {value}");
        assert!(err.contains(field), "{flag} {value}: {err}");
    }
    assert_eq!(json(&d, &["backfill", "list", "--output", "json"]), before);
}
