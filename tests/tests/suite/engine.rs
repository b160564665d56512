//! The engine with real plugins, a real sled store and a manual clock.

use std::sync::Arc;

use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig, EngineError};
use tidemark::executor::{Executor, ExecutorConfig, Trigger};
use tidemark::run::{RunState, TaskState};
use tidemark::store::{SledStore, StateStore, TaskData};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::*;
use tidemark_tests::shared_cache_dir;

const H: i64 = 3_600_000;
/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;
const TENANT: &str = "default";

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    store: Arc<SledStore>,
    _dir: tempfile::TempDir,
}

fn executor() -> Arc<Executor> {
    Arc::new(
        Executor::new(ExecutorConfig {
            cache_dir: Some(shared_cache_dir()),
            max_instances: Some(32),
        })
        .unwrap(),
    )
}

async fn open(dir: tempfile::TempDir, now: i64) -> Fixture {
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::open(
        store.clone(),
        executor(),
        clock.clone(),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    Fixture {
        engine,
        clock,
        store,
        _dir: dir,
    }
}

async fn fixture(now: i64) -> Fixture {
    let f = open(tempfile::tempdir().unwrap(), now).await;
    for (name, path) in [
        ("etl-extract", ETL_EXTRACT),
        ("etl-transform", ETL_TRANSFORM),
        ("etl-load", ETL_LOAD),
        ("flaky", FLAKY),
        ("resumable", RESUMABLE),
        ("hello", HELLO),
    ] {
        f.engine
            .push_plugin(TENANT, name, std::fs::read(path).unwrap())
            .await
            .unwrap();
    }
    f
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

async fn apply(f: &Fixture, toml: &str) {
    f.engine
        .apply_workflow(TENANT, RawWorkflow::from_toml(toml).unwrap())
        .await
        .unwrap();
}

fn runs(f: &Fixture, wf: &str) -> Vec<tidemark::run::Run> {
    f.engine
        .runs_of(TENANT, wf, i64::MIN, i64::MAX, 100_000)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_windows_run_once_in_dependency_order() {
    let f = fixture(T0 + 3 * H + 1).await;
    apply(&f, ETL).await;
    f.engine.settle().await.unwrap();
    let rs = runs(&f, "etl");
    assert_eq!(
        rs.iter().map(|r| r.window_start).collect::<Vec<_>>(),
        [T0, T0 + H, T0 + 2 * H]
    );
    for r in &rs {
        assert_eq!(r.state, RunState::Succeeded, "{r:?}");
        assert_eq!(r.trigger, Trigger::Scheduled);
        assert!(r
            .tasks
            .iter()
            .all(|t| t.state == TaskState::Succeeded && t.attempts == 1));
        let summary = f
            .store
            .dataset_get(TENANT, "summary", r.window_start, "window")
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&summary).unwrap();
        assert_eq!(v["events"], 40);
    }
    // Time passes: exactly the newly closed window runs.
    f.clock.advance(H);
    f.engine.settle().await.unwrap();
    assert_eq!(runs(&f, "etl").len(), 4);
    assert_eq!(f.engine.active_runs(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_creates_no_window_twice_and_reruns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hello_etl = ETL
        .replace("etl-extract", "hello")
        .replace("etl-transform", "hello")
        .replace("etl-load", "hello");
    let now = T0 + 2 * H + 1;
    {
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let engine = Engine::open(
            store,
            executor(),
            Arc::new(ManualClock::new(now)),
            EngineConfig::default(),
        )
        .await
        .unwrap();
        engine
            .push_plugin(TENANT, "hello", std::fs::read(HELLO).unwrap())
            .await
            .unwrap();
        engine
            .apply_workflow(TENANT, RawWorkflow::from_toml(&hello_etl).unwrap())
            .await
            .unwrap();
        engine.settle().await.unwrap();
        assert_eq!(
            engine
                .runs_of(TENANT, "etl", i64::MIN, i64::MAX, 100)
                .unwrap()
                .len(),
            2
        );
        engine.close().await;
    }
    // A new daemon on the same data at the same time.
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = Engine::open(
        store,
        executor(),
        Arc::new(ManualClock::new(now)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    engine.settle().await.unwrap();
    let rs = engine
        .runs_of(TENANT, "etl", i64::MIN, i64::MAX, 100)
        .unwrap();
    assert_eq!(rs.len(), 2, "no window created twice");
    for r in &rs {
        assert_eq!(r.state, RunState::Succeeded);
        assert_eq!(
            engine.attempts(TENANT, r.id).unwrap().len(),
            3,
            "no task ran again"
        );
    }
}

const FLAKY_WF: &str = r#"
name = "flaky"
[schedule]
cron = "0 0 * * *"
start = "2024-03-01T00:00:00Z"
[[tasks]]
name = "first"
plugin = "hello"
[[tasks]]
name = "flaky"
plugin = "flaky"
params = { fail_times = 2 }
depends_on = ["first"]
retries = RETRIES
retry_delay = "10s"
[[tasks]]
name = "last"
plugin = "hello"
depends_on = ["flaky"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn retries_wait_for_their_backoff_then_succeed() {
    let f = fixture(T0 + 24 * H).await;
    apply(&f, &FLAKY_WF.replace("RETRIES", "3")).await;
    f.engine.settle().await.unwrap();
    let run = &runs(&f, "flaky")[0];
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.tasks[1].state, TaskState::Retrying);
    assert_eq!(run.tasks[1].retry_at, Some(T0 + 24 * H + 10_000));
    // Not yet due.
    f.clock.advance(9_999);
    f.engine.settle().await.unwrap();
    assert_eq!(runs(&f, "flaky")[0].tasks[1].attempts, 1);
    f.clock.advance(1);
    f.engine.settle().await.unwrap();
    assert_eq!(runs(&f, "flaky")[0].tasks[1].attempts, 2);
    f.clock.advance(10_000);
    f.engine.settle().await.unwrap();
    let run = &runs(&f, "flaky")[0];
    assert_eq!(run.state, RunState::Succeeded);
    let attempts = f.engine.attempts(TENANT, run.id).unwrap();
    let flaky: Vec<_> = attempts.iter().filter(|a| a.task == "flaky").collect();
    assert_eq!(flaky.len(), 3);
    assert!(
        flaky[0].error_kind.is_some()
            && flaky[1].error_kind.is_some()
            && flaky[2].error_kind.is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_retries_from_its_failed_task() {
    let f = fixture(T0 + 24 * H).await;
    apply(
        &f,
        &FLAKY_WF
            .replace("RETRIES", "0")
            .replace("fail_times = 2", "fail_times = 1"),
    )
    .await;
    f.engine.settle().await.unwrap();
    let run = runs(&f, "flaky").remove(0);
    assert_eq!(run.state, RunState::Failed);
    let states: Vec<_> = run.tasks.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [
            TaskState::Succeeded,
            TaskState::Failed,
            TaskState::Cancelled
        ]
    );
    assert!(matches!(
        f.engine.retry_run(TENANT, run.id + 1000).await,
        Err(EngineError::RunNotFound(_))
    ));
    f.engine.retry_run(TENANT, run.id).await.unwrap();
    f.engine.settle().await.unwrap();
    let run = f.engine.run(TENANT, run.id).unwrap().unwrap();
    assert_eq!(run.state, RunState::Succeeded);
    let attempts = f.engine.attempts(TENANT, run.id).unwrap();
    let count = |task: &str| attempts.iter().filter(|a| a.task == task).count();
    assert_eq!(
        (count("first"), count("flaky"), count("last")),
        (1, 2, 1),
        "first is not re-run"
    );
    assert!(matches!(
        f.engine.retry_run(TENANT, run.id).await,
        Err(EngineError::NotRetryable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_attempt_resumes_from_its_checkpoint_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let f = open(dir, T0).await;
    f.engine
        .push_plugin(TENANT, "resumable", std::fs::read(RESUMABLE).unwrap())
        .await
        .unwrap();
    apply(
        &f,
        r#"
name = "res"
[schedule]
cron = "0 0 * * *"
start = "2024-03-01T00:00:00Z"
[[tasks]]
name = "work"
plugin = "resumable"
params = { items = 50, every = 10 }
"#,
    )
    .await;
    // Simulate a daemon killed mid-attempt: the run is recorded as running
    // its task, and the attempt had checkpointed 30 items.
    let run = f
        .engine
        .run_window(TENANT, "res", T0, Trigger::Manual)
        .await
        .unwrap();
    let mut running = run.clone();
    running.state = RunState::Running;
    running.tasks[0].state = TaskState::Running;
    running.tasks[0].attempts = 1;
    f.store
        .apply(&tidemark::store::Changes {
            runs: vec![running],
            ..Default::default()
        })
        .unwrap();
    let checkpoint = serde_json::json!({"next": 30, "processed_by": vec![1; 30]});
    let scope = tidemark::store::TaskScope {
        tenant: TENANT.into(),
        workflow: "res".into(),
        task: "work".into(),
        window_start: T0,
    };
    f.store
        .checkpoint_save(&scope, &serde_json::to_vec(&checkpoint).unwrap())
        .unwrap();
    let store = f.store.clone();
    drop(f.engine);

    let engine = Engine::open(
        store.clone(),
        executor(),
        Arc::new(ManualClock::new(T0 + 1)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    engine.settle().await.unwrap();
    let run = engine.run(TENANT, run.id).unwrap().unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{run:?}");
    assert_eq!(run.tasks[0].attempts, 2);
    let summary = store
        .dataset_get(TENANT, "resumable", T0, "summary")
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&summary).unwrap();
    assert_eq!(v["resumed_from"], 30);
    assert_eq!(v["attempt"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn downstream_waits_for_its_upstream_windows() {
    let f = fixture(T0 + 24 * H + 1).await;
    apply(
        &f,
        &ETL.replace("name = \"etl\"", "name = \"events\"\npaused = true"),
    )
    .await;
    let report = r#"
name = "report"
[schedule]
cron = "0 0 * * *"
start = "2024-03-01T00:00:00Z"
[[tasks]]
name = "t"
plugin = "hello"
[[upstream]]
workflow = "events"
"#;
    apply(&f, report).await;
    f.engine.settle().await.unwrap();
    let r = &runs(&f, "report")[0];
    assert_eq!(r.state, RunState::WaitingUpstream);
    assert_eq!(r.waiting_on.len(), 24);
    assert_eq!(r.waiting_on[0].workflow, "events");
    // Unpausing the upstream lets its 24 windows run, then the report.
    apply(&f, &ETL.replace("name = \"etl\"", "name = \"events\"")).await;
    f.engine.settle().await.unwrap();
    assert_eq!(runs(&f, "events").len(), 24);
    let r = &runs(&f, "report")[0];
    assert_eq!(r.state, RunState::Succeeded);
    assert!(r.waiting_on.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn paused_workflows_create_nothing_and_run_window_now_works() {
    let f = fixture(T0 + 5 * H).await;
    apply(&f, &ETL.replace("[schedule]", "paused = true\n[schedule]")).await;
    f.engine.settle().await.unwrap();
    assert!(runs(&f, "etl").is_empty());
    // Run a window by hand, even one that has not closed yet.
    let run = f
        .engine
        .run_window(TENANT, "etl", T0 + 5 * H + 10, Trigger::Manual)
        .await
        .unwrap();
    assert_eq!(run.window_start, T0 + 5 * H);
    let again = f
        .engine
        .run_window(TENANT, "etl", T0 + 5 * H, Trigger::Manual)
        .await;
    assert!(
        matches!(again, Err(EngineError::WindowBusy { .. })),
        "{again:?}"
    );
    f.engine.settle().await.unwrap();
    let rs = runs(&f, "etl");
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].state, RunState::Succeeded);
    assert_eq!(rs[0].trigger, Trigger::Manual);
    assert!(matches!(
        f.engine
            .run_window(TENANT, "nope", T0, Trigger::Manual)
            .await,
        Err(EngineError::WorkflowNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_definitions_change_nothing() {
    let f = fixture(T0).await;
    let bad = ETL.replace("etl-load", "not-pushed");
    let err = f
        .engine
        .apply_workflow(TENANT, RawWorkflow::from_toml(&bad).unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown plugin not-pushed"),
        "{err}"
    );
    assert!(f.store.workflow_get(TENANT, "etl", None).unwrap().is_none());
    let err = f
        .engine
        .push_plugin(TENANT, "bad", b"not wasm".to_vec())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a WebAssembly file"), "{err}");
    assert!(f
        .store
        .plugin_list(TENANT)
        .unwrap()
        .iter()
        .all(|p| p.name != "bad"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_change_creates_a_version_and_runs_record_theirs() {
    let f = fixture(T0 + H + 1).await;
    apply(&f, ETL).await;
    f.engine.settle().await.unwrap();
    let v2 = ETL.replace("events = 40", "events = 41");
    apply(&f, &v2).await;
    apply(&f, &v2).await; // unchanged: no new version
    f.clock.advance(H);
    f.engine.settle().await.unwrap();
    let rs = runs(&f, "etl");
    assert_eq!(rs.iter().map(|r| r.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        f.store
            .workflow_get(TENANT, "etl", None)
            .unwrap()
            .unwrap()
            .version,
        2
    );
    let v1 = f
        .store
        .workflow_get(TENANT, "etl", Some(1))
        .unwrap()
        .unwrap();
    assert!(toml_params(&v1).contains("40"));
}

fn toml_params(w: &tidemark::store::StoredWorkflow) -> String {
    format!("{:?}", w.raw.tasks[0].params)
}
