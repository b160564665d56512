//! Backfills through the engine, with real plugins and a manual clock.

use std::sync::Arc;

use tidemark::backfill::RawBackfillRequest;
use tidemark::clock::ManualClock;
use tidemark::engine::{BackfillAction, Engine, EngineConfig, EngineError};
use tidemark::executor::Trigger;
use tidemark::run::{RunState, TaskState};
use tidemark::store::{BackfillState, SledStore, WindowState};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::*;

pub const H: i64 = 3_600_000;
/// 2024-03-04T00:00:00Z, a Monday.
pub const MON: i64 = 1_709_510_400_000;
pub const T: &str = "acme";

async fn engine(dir: &std::path::Path) -> Engine {
    let store = Arc::new(SledStore::open(dir).unwrap());
    let engine = Engine::open(
        store,
        crate::engine_executor(),
        Arc::new(ManualClock::new(MON + 30 * 24 * H)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    engine
        .push_plugin(T, "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    engine
}

/// a -> b -> c, hourly, paused so only backfills create runs.
const WF: &str = "name = \"wf\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
[[tasks]]\nname = \"a\"\nplugin = \"hello\"\n[[tasks]]\nname = \"b\"\nplugin = \"hello\"\ndepends_on = [\"a\"]\n\
[[tasks]]\nname = \"c\"\nplugin = \"hello\"\ndepends_on = [\"b\"]\n";

pub async fn setup() -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    e.apply_workflow(T, RawWorkflow::from_toml(WF).unwrap())
        .await
        .unwrap();
    (e, dir)
}

/// A one-task workflow `name` on `cron` from 2024-02-26 running `plugin`,
/// depending on `up` (if not empty); `extra` is more top-level TOML.
fn chained(name: &str, cron: &str, plugin: &str, up: &str, extra: &str) -> RawWorkflow {
    let mut t = format!("name = \"{name}\"\n{extra}\n[schedule]\ncron = \"{cron}\"\nstart = \"2024-02-26\"\n[[tasks]]\nname = \"t\"\nplugin = \"{plugin}\"\nparams = {{ fail_times = 1 }}\n");
    if !up.is_empty() {
        t.push_str(&format!("[[upstream]]\nworkflow = \"{up}\"\n"));
    }
    RawWorkflow::from_toml(&t).unwrap()
}

fn req(json: serde_json::Value) -> RawBackfillRequest {
    serde_json::from_value(json).unwrap()
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339()
}

pub async fn start(e: &Engine, json: serde_json::Value) -> u64 {
    e.create_backfill(T, req(json))
        .await
        .unwrap()
        .expect("not a dry run")
        .id
}

/// Steps the engine one pass at a time, checking the parallelism bound after
/// every pass; returns the windows' run ids in creation order.
pub async fn run_checked(e: &Engine, id: u64, parallelism: usize) -> usize {
    let mut max_seen = 0;
    for _ in 0..1000 {
        e.tick().await.unwrap();
        let active = e.active_runs_of_backfill(id);
        assert!(
            active <= parallelism,
            "{active} windows at once, parallelism {parallelism}"
        );
        max_seen = max_seen.max(active);
        e.wait_idle().await;
        if e.backfill(T, id).unwrap().unwrap().state.is_terminal() {
            return max_seen;
        }
    }
    panic!("backfill {id} did not finish");
}

fn window_runs(e: &Engine, id: u64) -> Vec<(i64, u64)> {
    let ws = e.store().backfill_windows(T, id, None, 10_000).unwrap();
    let mut v: Vec<(i64, u64)> = ws
        .iter()
        .filter_map(|w| w.run_id.map(|r| (w.window_start, r)))
        .collect();
    // Run ids grow in creation order.
    v.sort_by_key(|(_, r)| *r);
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_runs_one_window_at_a_time_in_order_both_ways() {
    let (e, _d) = setup().await;
    let asc = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 6 * H), "mode": "serial"})).await;
    assert_eq!(run_checked(&e, asc, 1).await, 1);
    let order: Vec<i64> = window_runs(&e, asc).iter().map(|(w, _)| *w).collect();
    assert_eq!(order, (0..6).map(|i| MON + i * H).collect::<Vec<_>>());
    let b = e.backfill(T, asc).unwrap().unwrap();
    assert_eq!(
        (b.state, b.succeeded, b.failed, b.running),
        (BackfillState::Succeeded, 6, 0, 0)
    );

    let desc = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 6 * H), "mode": "serial", "order": "desc", "rerun": "all"})).await;
    run_checked(&e, desc, 1).await;
    let order: Vec<i64> = window_runs(&e, desc).iter().map(|(w, _)| *w).collect();
    assert_eq!(order, (0..6).rev().map(|i| MON + i * H).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_never_exceeds_its_parallelism() {
    let (e, _d) = setup().await;
    let id = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 20 * H), "parallelism": 3})).await;
    assert_eq!(run_checked(&e, id, 3).await, 3, "and uses it");
    assert_eq!(e.backfill(T, id).unwrap().unwrap().succeeded, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_modes_and_date_lists_select_their_windows() {
    let (e, _d) = setup().await;
    for h in [0, 1] {
        e.run_window(T, "wf", MON + h * H, Trigger::Manual)
            .await
            .unwrap();
    }
    e.settle().await.unwrap();
    let missing = start(
        &e,
        serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 4 * H)}),
    )
    .await;
    e.settle().await.unwrap();
    let ws = e.store().backfill_windows(T, missing, None, 100).unwrap();
    let states: Vec<(WindowState, &str)> =
        ws.iter().map(|w| (w.state, w.reason.as_str())).collect();
    assert_eq!(
        states[0],
        (WindowState::Skipped, "skipped: already succeeded")
    );
    assert_eq!(states[1].0, WindowState::Skipped);
    assert_eq!(states[2].0, WindowState::Succeeded);
    let b = e.backfill(T, missing).unwrap().unwrap();
    assert_eq!((b.skipped, b.succeeded), (2, 2));

    let all = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 4 * H), "rerun": "all"})).await;
    e.settle().await.unwrap();
    assert_eq!(e.backfill(T, all).unwrap().unwrap().succeeded, 4);

    let dates = start(
        &e,
        serde_json::json!({"workflow": "wf", "dates": [iso(MON + 7 * H + 5), iso(MON + 9 * H)]}),
    )
    .await;
    e.settle().await.unwrap();
    let ws: Vec<i64> = e
        .store()
        .backfill_windows(T, dates, None, 100)
        .unwrap()
        .iter()
        .map(|w| w.window_start)
        .collect();
    assert_eq!(ws, [MON + 7 * H, MON + 9 * H]);
}

#[tokio::test(flavor = "multi_thread")]
async fn from_task_reruns_only_that_task_and_its_downstream() {
    let (e, _d) = setup().await;
    let id = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 2 * H), "from_task": "b", "rerun": "all"})).await;
    e.settle().await.unwrap();
    for (_, run_id) in window_runs(&e, id) {
        let run = e.run(T, run_id).unwrap().unwrap();
        assert_eq!(run.state, RunState::Succeeded);
        let states: Vec<TaskState> = run.tasks.iter().map(|t| t.state).collect();
        assert_eq!(
            states,
            [
                TaskState::Skipped,
                TaskState::Succeeded,
                TaskState::Succeeded
            ]
        );
        let tasks: Vec<String> = e
            .attempts(T, run_id)
            .unwrap()
            .into_iter()
            .map(|a| a.task)
            .collect();
        assert_eq!(tasks, ["b", "c"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_cancel() {
    let (e, _d) = setup().await;
    let id = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 5 * H), "mode": "serial"})).await;
    e.backfill_action(T, id, BackfillAction::Pause)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.running + b.succeeded),
        (BackfillState::Paused, 0),
        "paused: nothing starts"
    );
    e.backfill_action(T, id, BackfillAction::Resume)
        .await
        .unwrap();
    e.settle().await.unwrap();
    assert_eq!(e.backfill(T, id).unwrap().unwrap().succeeded, 5);
    assert!(matches!(
        e.backfill_action(T, id, BackfillAction::Pause).await,
        Err(EngineError::BackfillEnded { .. })
    ));

    let id = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 5 * H), "mode": "serial", "rerun": "all"})).await;
    e.tick().await.unwrap();
    e.backfill_action(T, id, BackfillAction::Cancel { interrupt: false })
        .await
        .unwrap();
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(b.state, BackfillState::Cancelled);
    let windows = e.store().backfill_windows(T, id, None, 100).unwrap();
    assert_eq!(windows.len(), 1, "nothing after the cancel: {windows:?}");
    assert!(matches!(
        windows[0].state,
        WindowState::Succeeded | WindowState::Cancelled
    ));
    assert!(matches!(
        e.backfill_action(T, 999_999, BackfillAction::Pause).await,
        Err(EngineError::BackfillNotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_never_has_two_active_runs() {
    let (e, _d) = setup().await;
    let manual = e.run_window(T, "wf", MON, Trigger::Manual).await.unwrap();
    let id = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + H), "rerun": "all"})).await;
    e.tick().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert!(
        b.throttled
            .as_deref()
            .unwrap_or("")
            .contains("waiting for the active run"),
        "{b:?}"
    );
    assert_eq!(e.active_runs_of_backfill(id), 0);
    e.settle().await.unwrap();
    assert_eq!(
        e.run(T, manual.id).unwrap().unwrap().state,
        RunState::Succeeded
    );
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.succeeded, b.throttled),
        (BackfillState::Succeeded, 1, None)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_mid_backfill_continues_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let e = engine(dir.path()).await;
        e.apply_workflow(T, RawWorkflow::from_toml(WF).unwrap())
            .await
            .unwrap();
        let id = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 5 * H), "mode": "serial"})).await;
        for _ in 0..3 {
            e.tick().await.unwrap();
            e.wait_idle().await;
        }
        assert!(
            e.backfill(T, id).unwrap().unwrap().succeeded < 5,
            "stopped mid-way"
        );
        e.close().await;
        id
    };
    let e = engine(dir.path()).await;
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.succeeded, b.skipped),
        (BackfillState::Succeeded, 5, 0)
    );
    for (w, run) in window_runs(&e, id) {
        assert_eq!(
            e.attempts(T, run).unwrap().len(),
            3,
            "window {w}: every task ran exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_lists_the_cascade_and_writes_nothing() {
    let (e, _d) = setup().await;
    let events = WF.replace("name = \"wf\"", "name = \"events\"");
    e.apply_workflow(T, RawWorkflow::from_toml(&events).unwrap())
        .await
        .unwrap();
    let report = "name = \"report\"\npaused = true\n[schedule]\ncron = \"0 0 * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n[[upstream]]\nworkflow = \"events\"\n";
    e.apply_workflow(T, RawWorkflow::from_toml(report).unwrap())
        .await
        .unwrap();
    let summary = "name = \"summary\"\npaused = true\n[schedule]\ncron = \"0 0 * * 1\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n[[upstream]]\nworkflow = \"report\"\n";
    e.apply_workflow(T, RawWorkflow::from_toml(summary).unwrap())
        .await
        .unwrap();
    // Sunday and Monday.
    let plan = e
        .create_backfill(T, req(serde_json::json!({"workflow": "events", "start": iso(MON - 24 * H), "end": iso(MON + 24 * H), "downstream": "transitive", "dry_run": true})))
        .await
        .unwrap()
        .expect_err("a dry run returns a plan");
    let per_wf = |name: &str| plan.entries.iter().filter(|p| p.workflow == name).count();
    assert_eq!(
        (per_wf("events"), per_wf("report"), per_wf("summary")),
        (48, 2, 2)
    );
    // Execution order: every report after the events, every summary after the reports.
    let pos = |name: &str| {
        plan.entries
            .iter()
            .position(|p| p.workflow == name)
            .unwrap()
    };
    assert!(pos("events") < pos("report") && pos("report") < pos("summary"));
    assert_eq!(plan.runs, 52);
    assert!(
        e.store().backfills(T).unwrap().is_empty(),
        "a dry run stores nothing"
    );
    assert!(e
        .store()
        .windows(T, "events", i64::MIN, i64::MAX, 10)
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_and_store_nothing() {
    let (e, _d) = setup().await;
    let err = e
        .create_backfill(
            T,
            req(serde_json::json!({"workflow": "nope", "start": iso(MON), "end": iso(MON + H)})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::WorkflowNotFound(_)));
    let err = e
        .create_backfill(
            T,
            req(serde_json::json!({"workflow": "wf", "start": iso(MON + H), "end": iso(MON)})),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("end: must be after start"),
        "{err}"
    );
    assert!(e.store().backfills(T).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_failed_resumes_failed_windows_from_their_failed_task() {
    let (e, _d) = setup().await;
    e.push_plugin(T, "flaky", std::fs::read(FLAKY).unwrap())
        .await
        .unwrap();
    let wf = "name = \"fragile\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
[[tasks]]\nname = \"a\"\nplugin = \"hello\"\n[[tasks]]\nname = \"f\"\nplugin = \"flaky\"\nparams = { fail_times = 1 }\ndepends_on = [\"a\"]\n\
[[tasks]]\nname = \"c\"\nplugin = \"hello\"\ndepends_on = [\"f\"]\n";
    e.apply_workflow(T, RawWorkflow::from_toml(wf).unwrap())
        .await
        .unwrap();
    let id = start(
        &e,
        serde_json::json!({"workflow": "fragile", "start": iso(MON), "end": iso(MON + 3 * H)}),
    )
    .await;
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.failed, b.succeeded),
        (BackfillState::Failed, 3, 0)
    );
    let failed = e.store().backfill_windows(T, id, None, 10).unwrap();
    assert!(
        failed
            .iter()
            .all(|w| w.state == WindowState::Failed && w.reason.contains("flaky")),
        "{failed:?}"
    );

    let again = e
        .backfill_action(T, id, BackfillAction::RetryFailed)
        .await
        .unwrap();
    assert_eq!(
        (again.id, again.state, again.running, again.failed),
        (id, BackfillState::Running, 3, 0)
    );
    assert!(matches!(
        e.backfill_action(T, id, BackfillAction::RetryFailed).await,
        Err(EngineError::BackfillActive { .. })
    ));
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.failed, b.succeeded, b.running),
        (BackfillState::Succeeded, 0, 3, 0)
    );
    for (_, run) in window_runs(&e, id) {
        let tasks: Vec<(String, u32)> = e
            .attempts(T, run)
            .unwrap()
            .into_iter()
            .map(|a| (a.task, a.attempt))
            .collect();
        // `a` ran once; `f` failed on attempt 1 and succeeded on attempt 2; then `c`.
        assert_eq!(
            tasks,
            [
                ("a".into(), 1),
                ("c".into(), 1),
                ("f".into(), 1),
                ("f".into(), 2)
            ]
        );
    }
    assert!(matches!(
        e.backfill_action(T, id, BackfillAction::RetryFailed).await,
        Err(EngineError::BackfillEnded { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn downstream_cascade_reruns_dependents_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    // Sunday Mar 10, 00:00 + 1 day: the week of Mar 4 has closed.
    let clock = Arc::new(ManualClock::new(MON + 7 * 24 * H + 1));
    let e = Engine::open(
        store,
        crate::engine_executor(),
        clock,
        EngineConfig::default(),
    )
    .await
    .unwrap();
    e.push_plugin(T, "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    let wf =
        |name: &str, cron: &str, up: &str| chained(name, cron, "hello", up, "max_active_runs = 64");
    e.apply_workflow(T, wf("events", "0 * * * *", ""))
        .await
        .unwrap();
    e.apply_workflow(T, wf("report", "0 0 * * *", "events"))
        .await
        .unwrap();
    e.apply_workflow(T, wf("summary", "0 0 * * 1", "report"))
        .await
        .unwrap();
    // Live history first: 12 days of events and reports, two weeks of summaries.
    e.settle().await.unwrap();
    assert_eq!(
        e.runs_of(T, "summary", i64::MIN, i64::MAX, 10)
            .unwrap()
            .len(),
        2
    );

    // Repair Sunday Mar 3 and Monday Mar 4 of `events`, transitively.
    let mut body = serde_json::json!({"workflow": "events", "start": iso(MON - 24 * H), "end": iso(MON + 24 * H), "rerun": "all", "downstream": "transitive"});
    body["dry_run"] = true.into();
    let plan = e
        .create_backfill(T, req(body.clone()))
        .await
        .unwrap()
        .expect_err("plan");
    body["dry_run"] = false.into();
    let id = e
        .create_backfill(T, req(body))
        .await
        .unwrap()
        .expect("started")
        .id;
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.succeeded, b.failed),
        (BackfillState::Succeeded, 52, 0),
        "{b:?}"
    );
    let windows = e.store().backfill_windows(T, id, None, 1000).unwrap();
    let count = |wf: &str| windows.iter().filter(|w| w.workflow == wf).count();
    assert_eq!(
        (count("events"), count("report"), count("summary")),
        (48, 2, 2)
    );
    // The executed windows are exactly the dry run's plan.
    let mut planned: Vec<(String, i64)> = plan
        .entries
        .iter()
        .map(|p| (p.workflow.clone(), p.window_start))
        .collect();
    let mut ran: Vec<(String, i64)> = windows
        .iter()
        .map(|w| (w.workflow.clone(), w.window_start))
        .collect();
    planned.sort();
    ran.sort();
    assert_eq!(planned, ran);
    // Dependency order: every report run was created after every events
    // run of the backfill ended, every summary after the reports.
    let max_id = |wf: &str| {
        windows
            .iter()
            .filter(|w| w.workflow == wf)
            .filter_map(|w| w.run_id)
            .max()
            .unwrap()
    };
    let min_id = |wf: &str| {
        windows
            .iter()
            .filter(|w| w.workflow == wf)
            .filter_map(|w| w.run_id)
            .min()
            .unwrap()
    };
    assert!(max_id("events") < min_id("report") && max_id("report") < min_id("summary"));
    for w in windows.iter().filter(|w| w.workflow != "events") {
        assert_eq!(w.reason, "downstream of a repaired window: succeeded");
        let run = e.run(T, w.run_id.unwrap()).unwrap().unwrap();
        assert_eq!(run.state, RunState::Succeeded);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_holds_backfills_back_but_never_live_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let config = EngineConfig {
        backfill_admission_limit: 2,
        ..EngineConfig::default()
    };
    let e = Engine::open(
        store,
        crate::engine_executor(),
        Arc::new(ManualClock::new(MON + 30 * 24 * H)),
        config,
    )
    .await
    .unwrap();
    e.push_plugin(T, "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    e.apply_workflow(T, RawWorkflow::from_toml(WF).unwrap())
        .await
        .unwrap();
    // Two runs outside the backfill make the engine "loaded".
    e.run_window(T, "wf", MON + 20 * H, Trigger::Manual)
        .await
        .unwrap();
    e.run_window(T, "wf", MON + 21 * H, Trigger::Manual)
        .await
        .unwrap();
    let id = start(
        &e,
        serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 6 * H)}),
    )
    .await;
    assert_eq!(e.backfill(T, id).unwrap().unwrap().estimated_total, Some(6));
    e.tick().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert!(
        b.throttled
            .as_deref()
            .unwrap_or("")
            .starts_with("overload: 2 active runs"),
        "{b:?}"
    );
    assert_eq!(
        e.active_runs_of_backfill(id),
        0,
        "no window admitted while overloaded"
    );
    // The other runs were not held back, and once they end the backfill proceeds.
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.succeeded, b.throttled),
        (BackfillState::Succeeded, 6, None)
    );
    let dates = start(
        &e,
        serde_json::json!({"workflow": "wf", "dates": [iso(MON), iso(MON + 3 * H)]}),
    )
    .await;
    assert_eq!(
        e.backfill(T, dates).unwrap().unwrap().estimated_total,
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn overlap_skip_and_cancel_other() {
    let (e, _d) = setup().await;
    let manual = e.run_window(T, "wf", MON, Trigger::Manual).await.unwrap();
    let id = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON), "end": iso(MON + 2 * H), "rerun": "all", "overlap": "skip"})).await;
    e.settle().await.unwrap();
    let ws = e.store().backfill_windows(T, id, None, 10).unwrap();
    assert_eq!(
        (ws[0].state, ws[0].reason.as_str()),
        (
            WindowState::Skipped,
            "skipped: another run of the window is active"
        )
    );
    assert_eq!(ws[1].state, WindowState::Succeeded);
    assert_eq!(
        e.run(T, manual.id).unwrap().unwrap().state,
        RunState::Succeeded,
        "skip leaves the other run alone"
    );

    let other = e
        .run_window(T, "wf", MON + 5 * H, Trigger::Manual)
        .await
        .unwrap();
    let id = start(&e, serde_json::json!({"workflow": "wf", "start": iso(MON + 5 * H), "end": iso(MON + 6 * H), "rerun": "all", "overlap": "cancel_other"})).await;
    e.settle().await.unwrap();
    assert_eq!(
        e.run(T, other.id).unwrap().unwrap().state,
        RunState::Cancelled
    );
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!((b.state, b.succeeded), (BackfillState::Succeeded, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_with_interrupt_stops_attempts_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    e.push_plugin(T, "spin", std::fs::read(SPIN).unwrap())
        .await
        .unwrap();
    // Fuel and time enough that only an interrupt ends the attempt.
    let wf = "name = \"busy\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
        [[tasks]]\nname = \"spin\"\nplugin = \"spin\"\nfuel = 10_000_000_000_000\ntimeout = \"1h\"\n\
        [[tasks]]\nname = \"after\"\nplugin = \"hello\"\ndepends_on = [\"spin\"]\n";
    e.apply_workflow(T, RawWorkflow::from_toml(wf).unwrap())
        .await
        .unwrap();
    let id = e
        .create_backfill(T, req(serde_json::json!({"workflow": "busy", "start": iso(MON), "end": iso(MON + 3 * H), "parallelism": 2})))
        .await
        .unwrap()
        .unwrap()
        .id;
    e.tick().await.unwrap();
    assert_eq!(e.active_runs_of_backfill(id), 2);
    e.backfill_action(T, id, BackfillAction::Cancel { interrupt: true })
        .await
        .unwrap();
    // Returns only because both spinning attempts were interrupted.
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.cancelled, b.running, b.succeeded, b.failed),
        (BackfillState::Cancelled, 2, 0, 0, 0)
    );
    let windows = e.store().backfill_windows(T, id, None, 100).unwrap();
    assert_eq!(windows.len(), 2, "the third window never started");
    for w in windows {
        assert_eq!(w.state, WindowState::Cancelled);
        let run = e.run(T, w.run_id.unwrap()).unwrap().unwrap();
        assert_eq!(run.state, RunState::Cancelled);
        let states: Vec<TaskState> = run.tasks.iter().map(|t| t.state).collect();
        assert_eq!(states, [TaskState::Cancelled, TaskState::Cancelled]);
        let attempts = e.store().attempts(T, run.id).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            attempts[0].error_kind,
            Some(tidemark::executor::ErrorKind::Cancelled)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_run_whose_upstream_cannot_succeed_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let wf = |name: &str, cron: &str, up: &str| chained(name, cron, "hello", up, "paused = true");
    e.apply_workflow(T, wf("events", "0 * * * *", ""))
        .await
        .unwrap();
    e.apply_workflow(T, wf("report", "0 0 * * *", "events"))
        .await
        .unwrap();
    // `events` never ran for Monday: the report's window cannot be repaired.
    let id = start(
        &e,
        serde_json::json!({"workflow": "report", "dates": [iso(MON)]}),
    )
    .await;
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!((b.state, b.failed), (BackfillState::Failed, 1));
    let w = &e.store().backfill_windows(T, id, None, 10).unwrap()[0];
    assert_eq!(w.state, WindowState::Failed);
    assert_eq!(
        w.reason,
        "upstream window events 2024-03-04T00:00:00Z has not succeeded (never ran): repair it first (or include it in the backfill)"
    );
    // Repair the upstream, then retry: the window now runs and succeeds.
    let up = start(
        &e,
        serde_json::json!({"workflow": "events", "start": iso(MON), "end": iso(MON + 24 * H)}),
    )
    .await;
    e.settle().await.unwrap();
    assert_eq!(e.backfill(T, up).unwrap().unwrap().succeeded, 24);
    e.backfill_action(T, id, BackfillAction::RetryFailed)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.succeeded, b.failed),
        (BackfillState::Succeeded, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_failed_also_runs_the_cascade_of_windows_it_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    e.push_plugin(T, "flaky", std::fs::read(FLAKY).unwrap())
        .await
        .unwrap();
    let wf = |name: &str, cron: &str, plugin: &str, up: &str| {
        chained(name, cron, plugin, up, "paused = true")
    };
    e.apply_workflow(T, wf("events", "0 * * * *", "flaky", ""))
        .await
        .unwrap();
    e.apply_workflow(T, wf("report", "0 0 * * *", "hello", "events"))
        .await
        .unwrap();
    let id = start(&e, serde_json::json!({"workflow": "events", "start": iso(MON), "end": iso(MON + 24 * H), "downstream": "direct"})).await;
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    // Every events window failed once: nothing to cascade to.
    assert_eq!(
        (b.state, b.failed, b.succeeded, b.stages.len()),
        (BackfillState::Failed, 24, 0, 0)
    );
    e.backfill_action(T, id, BackfillAction::RetryFailed)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(
        (b.state, b.failed, b.succeeded),
        (BackfillState::Succeeded, 0, 25)
    );
    let ws = e.store().backfill_windows(T, id, None, 100).unwrap();
    let report: Vec<_> = ws.iter().filter(|w| w.workflow == "report").collect();
    assert_eq!(report.len(), 1);
    assert_eq!(
        (report[0].window_start, report[0].state),
        (MON, WindowState::Succeeded)
    );
}
