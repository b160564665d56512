//! Regression tests of multi-tenant and durability promises found broken by
//! review (issue 16): each is named after what it guards.

use std::sync::Arc;

use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::executor::Trigger;
use tidemark::run::{Run, RunState, TaskState};
use tidemark::store::{SledStore, StateStore, TaskData};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::*;

const H: i64 = 3_600_000;
/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    store: Arc<SledStore>,
    _dir: tempfile::TempDir,
}

async fn fixture(now: i64, tenants: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::open(
        store.clone(),
        Arc::new(
            tidemark::executor::Executor::new(tidemark::executor::ExecutorConfig {
                cache_dir: Some(tidemark_tests::shared_cache_dir()),
                max_instances: Some(32),
            })
            .unwrap(),
        ),
        clock.clone(),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    for t in tenants {
        for (name, path) in [
            ("hello", HELLO),
            ("etl-extract", ETL_EXTRACT),
            ("etl-transform", ETL_TRANSFORM),
            ("etl-load", ETL_LOAD),
        ] {
            engine
                .push_plugin(t, name, std::fs::read(path).unwrap())
                .await
                .unwrap();
        }
    }
    Fixture {
        engine,
        clock,
        store,
        _dir: dir,
    }
}

async fn apply(f: &Fixture, tenant: &str, toml: &str) {
    f.engine
        .apply_workflow(tenant, RawWorkflow::from_toml(toml).unwrap())
        .await
        .unwrap();
}

fn runs(f: &Fixture, tenant: &str, wf: &str) -> Vec<Run> {
    f.engine
        .runs_of(tenant, wf, i64::MIN, i64::MAX, 100_000)
        .unwrap()
}

fn workflow(name: &str, cron: &str, extra: &str) -> String {
    format!(
        r#"
name = "{name}"
{extra}
[schedule]
cron = "{cron}"
start = "2024-03-01T00:00:00Z"
[[tasks]]
name = "t"
plugin = "hello"
"#
    )
}

const REPORT: &str = r#"
name = "report"
[schedule]
cron = "0 0 * * *"
start = "2024-03-01T00:00:00Z"
[[tasks]]
name = "t"
plugin = "hello"
[[upstream]]
workflow = "raw"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn upstream_schedules_are_per_tenant() {
    let f = fixture(T0 + 24 * H + 1, &["a", "b"]).await;
    // Same names, different upstream grains: `a`'s raw is hourly, `b`'s daily.
    apply(&f, "a", &workflow("raw", "0 * * * *", "paused = true")).await;
    apply(&f, "b", &workflow("raw", "0 0 * * *", "paused = true")).await;
    apply(&f, "a", REPORT).await;
    apply(&f, "b", REPORT).await;
    f.engine.settle().await.unwrap();
    let a = &runs(&f, "a", "report")[0];
    let b = &runs(&f, "b", "report")[0];
    assert_eq!(a.state, RunState::WaitingUpstream);
    assert_eq!(b.state, RunState::WaitingUpstream);
    assert_eq!(
        a.waiting_on.len(),
        24,
        "a's report waits on 24 hourly windows"
    );
    assert_eq!(
        b.waiting_on.len(),
        1,
        "b's report waits on its one daily window"
    );
    // Each tenant's raw runs: both reports run, after their own upstream.
    apply(&f, "a", &workflow("raw", "0 * * * *", "")).await;
    apply(&f, "b", &workflow("raw", "0 0 * * *", "")).await;
    f.engine.settle().await.unwrap();
    assert_eq!(runs(&f, "a", "raw").len(), 24);
    assert_eq!(runs(&f, "b", "raw").len(), 1);
    for t in ["a", "b"] {
        let r = &runs(&f, t, "report")[0];
        assert_eq!(r.state, RunState::Succeeded, "{t}");
        assert!(r.waiting_on.is_empty());
    }
}

const ETL: &str = r#"
name = "etl"
[schedule]
cron = "0 * * * *"
start = "2024-03-01T00:00:00Z"
[[tasks]]
name = "extract"
plugin = "etl-extract"
params = { events = 40 }
[[tasks]]
name = "transform"
plugin = "etl-transform"
depends_on = ["extract"]
[[tasks]]
name = "load"
plugin = "etl-load"
depends_on = ["transform"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_store_write_keeps_changes_until_the_store_recovers() {
    let f = fixture(T0 + 2 * H + 1, &["default"]).await;
    apply(&f, "default", ETL).await;
    // One pass creates both windows (one write) and starts their first
    // tasks (another); then the disk fills while the attempts run: their
    // successes and outputs cannot be written.
    f.store.inject_write_failures_after(2);
    f.engine.tick().await.unwrap();
    f.engine.wait_idle().await;
    assert!(f.engine.store_health().is_err());
    assert!(f.engine.tick().await.is_err());
    assert_eq!(
        f.engine.in_flight(),
        0,
        "nothing starts on changes not durable"
    );
    for r in runs(&f, "default", "etl") {
        assert!(
            f.store.attempts("default", r.id).unwrap().is_empty(),
            "nothing of the failed writes is in the store"
        );
    }
    // Space comes back: the kept changes are written, and the runs finish
    // with every task run exactly once and every output committed.
    f.store.inject_write_failures(false);
    f.engine.settle().await.unwrap();
    assert!(f.engine.store_health().is_ok());
    let rs = runs(&f, "default", "etl");
    assert_eq!(rs.len(), 2);
    for r in &rs {
        assert_eq!(r.state, RunState::Succeeded, "{r:?}");
        assert!(r
            .tasks
            .iter()
            .all(|t| t.state == TaskState::Succeeded && t.attempts == 1));
        assert_eq!(f.store.attempts("default", r.id).unwrap().len(), 3);
        let summary = f
            .store
            .dataset_get("default", "summary", r.window_start, "window")
            .unwrap()
            .expect("the summary partition is committed");
        let v: serde_json::Value = serde_json::from_slice(&summary).unwrap();
        assert_eq!(v["events"], 40, "every extracted event reached the summary");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_creation_sees_a_run_window_run_not_yet_persisted() {
    let f = fixture(T0 + H - 1, &["default"]).await;
    apply(&f, "default", &workflow("w", "0 * * * *", "")).await;
    // A run of the open window T0 is created by hand, but its write fails:
    // it exists in memory only.
    f.store.inject_write_failures(true);
    assert!(f
        .engine
        .run_window("default", "w", T0, Trigger::Manual)
        .await
        .is_err());
    f.store.inject_write_failures(false);
    // The window closes: live creation must not add a second run for it.
    f.clock.set(T0 + H + 1);
    f.engine.tick().await.unwrap();
    // The run may already have ended: its attempt ends it on success.
    assert!(f.engine.active_runs() <= 1, "one active run per window");
    f.engine.settle().await.unwrap();
    let rs = runs(&f, "default", "w");
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].trigger, Trigger::Manual);
    assert_eq!(rs[0].state, RunState::Succeeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_catchup_is_materialized_incrementally() {
    // Three hours of minutely windows to catch up, one run at a time.
    let f = fixture(T0 + 3 * H, &["default"]).await;
    apply(
        &f,
        "default",
        &workflow("m", "* * * * *", "max_active_runs = 1"),
    )
    .await;
    f.engine.tick().await.unwrap();
    assert!(
        f.engine.active_runs() <= 2,
        "catch-up created {} runs at once",
        f.engine.active_runs()
    );
    f.engine.settle().await.unwrap();
    let rs = runs(&f, "default", "m");
    assert_eq!(rs.len(), 180, "every window caught up, once");
    assert!(rs.iter().all(|r| r.state == RunState::Succeeded));
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_read_errors_do_not_fail_backfill_runs() {
    let f = fixture(T0 + 3 * 24 * H, &["default"]).await;
    apply(&f, "default", &workflow("raw", "0 0 * * *", "")).await;
    apply(&f, "default", REPORT).await;
    f.engine.settle().await.unwrap();
    let reports = runs(&f, "default", "report");
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| r.state == RunState::Succeeded));
    let request = serde_json::from_value(
        serde_json::json!({"workflow": "report", "start": "2024-03-01", "end": "2024-03-02", "rerun": "all"}),
    )
    .unwrap();
    let id = f
        .engine
        .create_backfill("default", request)
        .await
        .unwrap()
        .expect("not a dry run")
        .id;
    // The window index cannot be read for a while: the check fails, the
    // backfill's run does not (its upstream did succeed).
    f.store.inject_window_read_failures(true);
    for _ in 0..3 {
        assert!(f.engine.tick().await.is_err());
    }
    f.store.inject_window_read_failures(false);
    f.engine.settle().await.unwrap();
    let b = f.engine.backfill("default", id).unwrap().unwrap();
    assert_eq!((b.succeeded, b.failed), (1, 0), "{b:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_reports_a_store_that_cannot_write() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let f = fixture(T0 + 2 * H + 1, &["default"]).await;
    let app = tidemark::api::app(
        f.engine.clone(),
        tidemark::tenancy::Tenancy::new(f.store.clone(), "admin-for-integrity-tests"),
    );
    let ready = |app: axum::Router| async move {
        let req = Request::builder()
            .uri("/readyz")
            .body(Body::empty())
            .unwrap();
        app.oneshot(req).await.unwrap().status()
    };
    assert_eq!(ready(app.clone()).await, StatusCode::OK);
    apply(&f, "default", &workflow("w", "0 * * * *", "")).await;
    f.store.inject_write_failures(true);
    assert!(f.engine.tick().await.is_err());
    // Reads still work; the store is not ready because it cannot write.
    assert_eq!(ready(app.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    f.store.inject_write_failures(false);
    f.engine.settle().await.unwrap();
    assert_eq!(ready(app).await, StatusCode::OK);
    assert_eq!(runs(&f, "default", "w").len(), 2);
}
