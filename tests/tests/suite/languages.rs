//! Tasks written in Python (componentize-py) and JavaScript
//! (componentize-js), built from the same `wit/` by `scripts/guests.sh`,
//! run beside Rust ones: the same ETL workflow writes byte-identical
//! datasets whichever language transforms and loads, and every limit stops
//! a hostile task of either language with its own error kind.

use std::sync::Arc;
use std::time::Duration;

use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::executor::{AttemptError, Limits};
use tidemark::run::{RunState, TaskState};
use tidemark::store::{DatasetEntry, SledStore, TaskData};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::*;

use crate::*;

/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;
const WINDOWS: i64 = 6;

const ETL: &str = r#"
name = "etl"
[schedule]
cron = "0 * * * *"
start = "2024-03-01T00:00:00Z"
[[tasks]]
name = "extract"
plugin = "etl-extract"
params = { events = 300 }
[[tasks]]
name = "transform"
plugin = "etl-transform"
depends_on = ["extract"]
[[tasks]]
name = "load"
plugin = "etl-load"
depends_on = ["transform"]
"#;

/// What the ETL workflow leaves in its datasets after `WINDOWS` hourly
/// windows, with the Rust extract and the given transform and load.
async fn etl_datasets(transform: &str, load: &str) -> Vec<(String, Vec<DatasetEntry>)> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(T0 + WINDOWS * HOUR + 1));
    let engine = Engine::open(
        store.clone(),
        engine_executor(),
        clock,
        EngineConfig::default(),
    )
    .await
    .unwrap();
    for (name, path) in [
        ("etl-extract", ETL_EXTRACT),
        ("etl-transform", transform),
        ("etl-load", load),
    ] {
        engine
            .push_plugin("default", name, std::fs::read(path).unwrap())
            .await
            .unwrap();
    }
    engine
        .apply_workflow("default", RawWorkflow::from_toml(ETL).unwrap())
        .await
        .unwrap();
    engine.settle().await.unwrap();
    let runs = engine
        .runs_of("default", "etl", i64::MIN, i64::MAX, 1000)
        .unwrap();
    assert_eq!(runs.len(), WINDOWS as usize, "{transform}");
    for r in &runs {
        assert_eq!(r.state, RunState::Succeeded, "{transform}: {r:?}");
        assert!(
            r.tasks
                .iter()
                .all(|t| t.state == TaskState::Succeeded && t.attempts == 1),
            "{transform}: every task succeeds at its first attempt: {r:?}"
        );
    }
    ["events", "user_totals", "summary"]
        .into_iter()
        .map(|ds| {
            let rows = store
                .dataset_scan("default", ds, T0..T0 + WINDOWS * HOUR, "", None, 1 << 20)
                .unwrap();
            (ds.to_owned(), rows)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_etl_steps_write_what_rust_writes() {
    let rust = etl_datasets(ETL_TRANSFORM, ETL_LOAD).await;
    // Not vacuous: every window has its events, totals and summary row.
    for (ds, rows) in &rust {
        let per_window = match ds.as_str() {
            "events" => 300,
            "summary" => 1,
            _ => 1,
        };
        assert!(
            rows.len() >= per_window * WINDOWS as usize,
            "{ds}: {} rows",
            rows.len()
        );
    }
    for (lang, transform, load) in [
        ("python", PY_ETL_TRANSFORM, PY_ETL_LOAD),
        ("javascript", JS_ETL_TRANSFORM, JS_ETL_LOAD),
    ] {
        let other = etl_datasets(transform, load).await;
        for ((ds, want), (_, got)) in rust.iter().zip(&other) {
            assert_eq!(got.len(), want.len(), "{lang}: rows of {ds}");
            for (w, g) in want.iter().zip(got) {
                assert_eq!(
                    (g.partition, &g.key, String::from_utf8_lossy(&g.value)),
                    (w.partition, &w.key, String::from_utf8_lossy(&w.value)),
                    "{lang}: {ds}"
                );
            }
        }
    }
}

/// A mixed pipeline: Python transforms, JavaScript loads.
#[tokio::test(flavor = "multi_thread")]
async fn languages_mix_within_one_workflow() {
    let rust = etl_datasets(ETL_TRANSFORM, ETL_LOAD).await;
    let mixed = etl_datasets(PY_ETL_TRANSFORM, JS_ETL_LOAD).await;
    assert_eq!(mixed, rust);
}

/// Task errors are data in every language: an empty input is retryable,
/// with the task's own message.
#[tokio::test(flavor = "multi_thread")]
async fn guest_errors_are_task_errors_in_every_language() {
    for plugin in [PY_ETL_TRANSFORM, JS_ETL_TRANSFORM, PY_ETL_LOAD, JS_ETL_LOAD] {
        let r = run(plugin, &invocation("t", DAY, &[]), &limits(), store()).await;
        match r.result {
            Err(AttemptError::Task { retryable, message }) => {
                assert!(retryable, "{plugin}");
                assert!(
                    message.starts_with("no input rows for window"),
                    "{plugin}: {message}"
                );
            }
            other => panic!("{plugin}: {other:?}"),
        }
    }
}

async fn hostile(plugin: &str, mode: &str, limits: Limits) -> AttemptError {
    let r = run(
        plugin,
        &invocation("hostile", DAY, &[("mode", mode)]),
        &limits,
        store(),
    )
    .await;
    assert!(r.outputs.is_empty(), "a failed attempt leaves no outputs");
    let err = r.result.expect_err("the hostile task must fail");
    assert_engine_healthy().await;
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_stop_hostile_python_and_javascript_tasks() {
    for plugin in [PY_HOSTILE, JS_HOSTILE] {
        // The same task succeeds when it behaves.
        let ok = run(plugin, &invocation("ok", DAY, &[]), &limits(), store()).await;
        assert_eq!(ok.result, Ok("ok".to_owned()), "{plugin}: {:?}", ok.log);

        let fuel = hostile(
            plugin,
            "spin",
            Limits {
                fuel: 50_000_000,
                ..limits()
            },
        )
        .await;
        assert_eq!(
            fuel,
            AttemptError::FuelExhausted { limit: 50_000_000 },
            "{plugin}"
        );

        let deadline = hostile(
            plugin,
            "spin",
            Limits {
                fuel: u64::MAX / 2,
                timeout: Duration::from_millis(300),
                ..limits()
            },
        )
        .await;
        assert_eq!(
            deadline,
            AttemptError::DeadlineExceeded { timeout_ms: 300 },
            "{plugin}"
        );

        let memory = hostile(
            plugin,
            "hog",
            Limits {
                memory_bytes: 64 << 20,
                ..limits()
            },
        )
        .await;
        assert_eq!(
            memory,
            AttemptError::MemoryLimit { limit: 64 << 20 },
            "{plugin}"
        );
    }
}

/// Each "Write a task in ..." page shows a plugin that is built and tested
/// here, verbatim.
#[test]
fn task_docs_show_the_tested_plugins() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (page, fence, plugin) in [
        (
            "docs/tasks/rust.md",
            "```rust\n",
            "plugins/etl-load/src/lib.rs",
        ),
        (
            "docs/tasks/python.md",
            "```python\n",
            "plugins/python/etl_load.py",
        ),
        (
            "docs/tasks/javascript.md",
            "```js\n",
            "plugins/js/etl-load.js",
        ),
    ] {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        let code = text
            .split_once(fence)
            .and_then(|(_, rest)| rest.split_once("```\n"))
            .map(|(code, _)| code)
            .unwrap_or_else(|| panic!("{page} has no {fence:?} block"));
        let source = std::fs::read_to_string(root.join(plugin)).unwrap();
        assert_eq!(code, source, "{page} is stale: copy {plugin} into it");
    }
}
