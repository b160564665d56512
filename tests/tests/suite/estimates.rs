//! Backfill estimates and budgets, on a manual clock: a dry run's estimate
//! from recorded history (exact values at each level: version, plugin,
//! default), a fuel budget that pauses a backfill before the window that
//! would pass it and a resume that continues it, the estimate stored with
//! the backfill next to what it spent, and refused budgets.

use std::sync::Arc;

use tidemark::backfill::estimate::{Basis, Estimate, Range};
use tidemark::backfill::RawBackfillRequest;
use tidemark::clock::ManualClock;
use tidemark::engine::{BackfillAction, Engine, EngineConfig, EngineError};
use tidemark::executor::{ErrorKind, Trigger};
use tidemark::run::{Run, RunState};
use tidemark::schedule::Window;
use tidemark::store::{AttemptRecord, BackfillState, Changes, SledStore};
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::{ECHO, HELLO, SUM};

const T: &str = "acme";
const H: i64 = 3_600_000;

fn at(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

async fn setup() -> (Engine, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2024-06-01T00:00:00Z")));
    let e = Engine::open(
        Arc::new(SledStore::open(dir.path()).unwrap()),
        crate::engine_executor(),
        clock.clone(),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    for (name, file) in [("hello", HELLO), ("echo", ECHO), ("sum", SUM)] {
        e.push_plugin(T, name, std::fs::read(file).unwrap())
            .await
            .unwrap();
    }
    (e, clock, dir)
}

async fn apply(e: &Engine, toml: &str) {
    e.apply_workflow(T, RawWorkflow::from_toml(toml).unwrap())
        .await
        .unwrap();
}

fn request(v: serde_json::Value) -> RawBackfillRequest {
    serde_json::from_value(v).unwrap()
}

fn r(low: u64, expected: u64, high: u64) -> Range {
    Range {
        low,
        expected,
        high,
    }
}

/// `(task, plugin, duration ms, fuel, bytes, failed)`.
type Attempt<'a> = (&'a str, &'a str, i64, u64, u64, bool);

/// Stores a succeeded run of `workflow` for the window at `start` that took
/// `run_ms`, with these attempts.
fn history(e: &Engine, workflow: &str, start: i64, run_ms: i64, attempts: &[Attempt]) {
    let head = e.workflow(T, workflow).unwrap();
    let id = e.store().next_run_id().unwrap();
    let w = Window {
        start,
        end: start + H,
    };
    let mut run = Run::new(id, T, &head.def, head.version, w, Trigger::Scheduled, start);
    run.state = RunState::Succeeded;
    run.started_ms = Some(start + H);
    run.ended_ms = Some(start + H + run_ms);
    let records = attempts
        .iter()
        .enumerate()
        .map(|(i, (task, plugin, ms, fuel, bytes, failed))| {
            (
                T.to_owned(),
                AttemptRecord {
                    run_id: id,
                    task: task.to_string(),
                    attempt: i as u32 + 1,
                    started_ms: start + H,
                    ended_ms: start + H + ms,
                    error_kind: failed.then_some(ErrorKind::Task),
                    message: String::new(),
                    fuel: Some(*fuel),
                    log: Vec::new(),
                    http: Vec::new(),
                    plugin: Some(plugin.to_string()),
                    bytes_written: (!failed).then_some(*bytes),
                    plugin_digest: None,
                    reads: Vec::new(),
                    reads_omitted: 0,
                },
            )
        })
        .collect();
    e.store()
        .apply(&Changes {
            runs: vec![run],
            attempts: records,
            ..Default::default()
        })
        .unwrap();
}

async fn dry_run(e: &Engine, v: serde_json::Value) -> Estimate {
    match e.create_backfill(T, request(v)).await.unwrap() {
        Err(plan) => plan.estimate,
        Ok(b) => panic!("a dry run created backfill {}", b.id),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_estimates_from_recorded_history_with_exact_values() {
    let (e, _clock, _dir) = setup().await;
    apply(
        &e,
        "name = \"wf\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"a\"\nplugin = \"hello\"\nretries = 1\n\
         [[tasks]]\nname = \"b\"\nplugin = \"echo\"\ndepends_on = [\"a\"]\nretries = 0\n",
    )
    .await;
    apply(
        &e,
        "name = \"fresh\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"x\"\nplugin = \"echo\"\nretries = 0\n\
         [[tasks]]\nname = \"y\"\nplugin = \"sum\"\ndepends_on = [\"x\"]\nretries = 0\n\
         timeout = \"10s\"\nfuel = 50000000\n",
    )
    .await;
    let t0 = at("2024-01-01T00:00:00Z");
    history(
        &e,
        "wf",
        t0,
        1_000,
        &[
            ("a", "hello", 300, 1_000, 10, false),
            ("b", "echo", 500, 3_000, 0, false),
        ],
    );
    // A failed attempt is not a sample: only the retry that succeeded is.
    history(
        &e,
        "wf",
        t0 + H,
        1_400,
        &[
            ("a", "hello", 9_999, 99_999, 0, true),
            ("a", "hello", 500, 2_000, 20, false),
            ("b", "echo", 700, 5_000, 0, false),
        ],
    );

    // Six windows at parallelism 4: two waves.
    let est = dry_run(
        &e,
        serde_json::json!({"workflow": "wf", "start": "2024-02-01T00:00:00Z",
            "end": "2024-02-01T06:00:00Z", "parallelism": 4, "dry_run": true}),
    )
    .await;
    assert_eq!(est.workflows.len(), 1);
    let w = &est.workflows[0];
    assert_eq!((w.runs, w.parallelism), (6, 4));
    let a = &w.tasks[0];
    assert_eq!((a.basis, a.samples), (Basis::Version, 2));
    assert_eq!(a.duration_ms, r(300, 400, 500));
    assert_eq!(a.fuel, r(1_000, 1_500, 2_000));
    assert_eq!(a.bytes, r(10, 15, 20));
    let b = &w.tasks[1];
    assert_eq!((b.basis, b.samples), (Basis::Version, 2));
    assert_eq!(b.fuel, r(3_000, 4_000, 5_000));
    // Its own two runs: 1.0 s and 1.4 s.
    assert_eq!((w.run_basis, w.run_samples), (Basis::Version, 2));
    assert_eq!(w.run_ms, r(1_000, 1_200, 1_400));
    assert_eq!(w.wall_ms, r(2_000, 2_400, 2_800));
    // 6 x 2 tasks; high: a may run twice.
    assert_eq!(w.task_runs, r(12, 12, 18));
    assert_eq!(w.fuel, r(24_000, 33_000, 42_000));
    assert_eq!(w.bytes, r(60, 90, 120));
    assert_eq!(est.total.fuel, w.fuel);
    assert_eq!(est.total.wall_ms, w.wall_ms);
    assert!(!est.truncated);

    // No history of its own: `x` rests on the echo plugin's attempts in
    // `wf`, `y` (sum never ran) on the defaults and its limits.
    let est = dry_run(
        &e,
        serde_json::json!({"workflow": "fresh", "start": "2024-02-01T00:00:00Z",
            "end": "2024-02-01T02:00:00Z", "dry_run": true}),
    )
    .await;
    let w = &est.workflows[0];
    assert_eq!((w.runs, w.parallelism), (2, 8));
    let x = &w.tasks[0];
    assert_eq!((x.basis, x.samples), (Basis::Plugin, 2));
    assert_eq!(x.duration_ms, r(500, 600, 700));
    assert_eq!(x.fuel, r(3_000, 4_000, 5_000));
    let y = &w.tasks[1];
    assert_eq!((y.basis, y.samples), (Basis::Default, 0));
    assert_eq!(y.duration_ms, r(0, 1_000, 10_000));
    assert_eq!(y.fuel, r(0, 10_000_000, 50_000_000));
    assert_eq!(y.bytes, r(0, 0, 64 << 20));
    // The weakest basis; the critical path x then y; one wave.
    assert_eq!((w.run_basis, w.run_samples), (Basis::Default, 0));
    assert_eq!(w.run_ms, r(500, 1_600, 10_700));
    assert_eq!(w.wall_ms, w.run_ms);
    assert_eq!(w.fuel, r(6_000, 20_008_000, 100_010_000));
    assert!(
        e.store().backfills(T).unwrap().is_empty(),
        "dry runs store nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fuel_budget_the_plan_exceeds_pauses_before_the_window_that_would_pass_it() {
    let (e, _clock, _dir) = setup().await;
    apply(
        &e,
        "name = \"wf\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"a\"\nplugin = \"hello\"\nretries = 0\n",
    )
    .await;
    // What one window burns, measured by a one-window backfill.
    let probe = e
        .create_backfill(
            T,
            request(serde_json::json!({"workflow": "wf", "dates": ["2024-03-01T00:00:00Z"]})),
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    e.settle().await.unwrap();
    let probe = e.backfill(T, probe).unwrap().unwrap();
    assert_eq!(probe.state, BackfillState::Succeeded);
    let f = probe.actual.fuel;
    assert!(f > 0, "hello burns fuel");
    assert_eq!(probe.actual.task_runs, 1);

    // Five windows, one at a time; room for two and a half.
    let budget = f * 5 / 2;
    let id = e
        .create_backfill(
            T,
            request(serde_json::json!({"workflow": "wf", "mode": "serial",
                "start": "2024-03-02T00:00:00Z", "end": "2024-03-02T05:00:00Z",
                "budget": {"max_fuel": budget}})),
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!(b.state, BackfillState::Paused);
    assert_eq!((b.succeeded, b.running), (2, 0), "paused before the third");
    let spent = b.actual.fuel;
    // Windows of the same task burn the same fuel, give or take a little.
    assert!(spent.abs_diff(2 * f) <= f / 10, "{spent} vs 2 x {f}");
    assert_eq!(
        b.pause_reason.as_deref(),
        Some(
            format!(
                "budget: fuel {spent} spent of {budget}; with the next window about {} \
                 (resume to go on without the budget)",
                spent + spent / 2
            )
            .as_str()
        )
    );
    let windows = e.store().backfill_windows(T, id, None, 100).unwrap();
    assert_eq!(windows.len(), 2, "the third window was never started");
    // It stays paused: nothing resumes it but a resume.
    e.settle().await.unwrap();
    assert_eq!(e.backfill(T, id).unwrap().unwrap().succeeded, 2);

    // Created with the estimate it now stands against (one sample of `a`:
    // the probe's window).
    let est = b.estimate.clone().expect("stored with its estimate");
    assert_eq!(est.workflows[0].tasks[0].basis, Basis::Version);
    assert_eq!(est.workflows[0].tasks[0].samples, 1);
    assert_eq!(est.total.fuel, Range::exact(5 * f));
    assert_eq!(est.total.task_runs, r(5, 5, 5));

    let resumed = e
        .backfill_action(T, id, BackfillAction::Resume)
        .await
        .unwrap();
    assert!(resumed.budget_lifted);
    assert_eq!(resumed.pause_reason, None);
    e.settle().await.unwrap();
    let b = e.backfill(T, id).unwrap().unwrap();
    assert_eq!((b.state, b.succeeded), (BackfillState::Succeeded, 5));
    assert_eq!(b.actual.task_runs, 5);
    assert!(b.actual.fuel > budget, "resumed past the budget");
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_or_negative_budgets_are_refused_storing_nothing() {
    let (e, _clock, _dir) = setup().await;
    apply(
        &e,
        "name = \"wf\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"a\"\nplugin = \"hello\"\n",
    )
    .await;
    let cases = [
        (
            serde_json::json!({"max_fuel": 0}),
            "budget.max_fuel: must be positive (got 0)",
        ),
        (
            serde_json::json!({"max_wall_seconds": -60}),
            "budget.max_wall_seconds: must be positive (got -60)",
        ),
        (
            serde_json::json!({"max_bytes": -1, "max_fuel": 10}),
            "budget.max_bytes: must be positive (got -1)",
        ),
    ];
    for (budget, want) in cases {
        for dry_run in [false, true] {
            let req = request(serde_json::json!({"workflow": "wf",
                "start": "2024-03-02T00:00:00Z", "end": "2024-03-02T05:00:00Z",
                "budget": budget, "dry_run": dry_run}));
            match e.create_backfill(T, req).await {
                Err(EngineError::Backfill(err)) => {
                    assert!(err.to_string().contains(want), "{err} vs {want}")
                }
                Err(other) => panic!("{want}: wrong error {other}"),
                Ok(_) => panic!("{want}: accepted"),
            }
        }
    }
    // An unknown limit is refused when the request is decoded.
    let unknown: Result<RawBackfillRequest, _> = serde_json::from_value(serde_json::json!(
        {"workflow": "wf", "dates": ["2024-03-02"], "budget": {"max_money": 5}}
    ));
    assert!(unknown.unwrap_err().to_string().contains("max_money"));
    assert!(e.store().backfills(T).unwrap().is_empty());
}

/// Through the router: refused budgets are a 400 naming the field and
/// store nothing; a dry run answers its estimate; a backfill's GET shows
/// the estimate it was created with, what it spent and why it paused.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_refuses_bad_budgets_and_shows_estimate_against_actual() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let (e, _clock, _dir) = setup().await;
    apply(
        &e,
        "name = \"wf\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n\
         [[tasks]]\nname = \"a\"\nplugin = \"hello\"\nretries = 0\n",
    )
    .await;
    let tenancy = tidemark::tenancy::Tenancy::new(e.store().clone(), "admin-for-estimate-tests");
    let token = tenancy.create_tenant(T, 0).unwrap().2;
    let app = tidemark::api::app(e.clone(), tenancy);
    let call = |method: &'static str, path: String, body: serde_json::Value| {
        let app = app.clone();
        let token = token.clone();
        async move {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body.to_string()))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            (status, v)
        }
    };
    let req = |extra: serde_json::Value| {
        let mut r = serde_json::json!({"workflow": "wf", "mode": "serial",
            "start": "2024-03-02T00:00:00Z", "end": "2024-03-02T03:00:00Z"});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r
    };
    for (budget, field) in [
        (serde_json::json!({"max_fuel": 0}), "budget.max_fuel"),
        (serde_json::json!({"max_bytes": -2}), "budget.max_bytes"),
        (
            serde_json::json!({"max_wall_seconds": 0}),
            "budget.max_wall_seconds",
        ),
    ] {
        let (s, v) = call(
            "POST",
            "/api/v1/backfills".into(),
            req(serde_json::json!({ "budget": budget })),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains(field), "{v} names {field}");
    }
    let (s, v) = call("GET", "/api/v1/backfills".into(), serde_json::json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["backfills"], serde_json::json!([]), "nothing stored");

    let (s, v) = call(
        "POST",
        "/api/v1/backfills".into(),
        req(serde_json::json!({"dry_run": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let w = &v["estimate"]["workflows"][0];
    assert_eq!(
        (w["runs"].as_u64(), w["parallelism"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(w["tasks"][0]["basis"], "default", "no history yet");
    assert_eq!(v["estimate"]["total"]["task_runs"]["expected"], 3);

    // A tiny budget: the first window starts (nothing spent yet), and the
    // backfill pauses before the second.
    let (s, v) = call(
        "POST",
        "/api/v1/backfills".into(),
        req(serde_json::json!({"budget": {"max_fuel": 1}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["backfill"]["request"]["budget"]["max_fuel"], 1);
    let id = v["backfill"]["id"].as_u64().unwrap();
    e.settle().await.unwrap();
    let (s, v) = call(
        "GET",
        format!("/api/v1/backfills/{id}"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["backfill"]["state"], "paused");
    assert_eq!(v["backfill"]["succeeded"], 1);
    let reason = v["backfill"]["pause_reason"].as_str().unwrap();
    assert!(reason.starts_with("budget: fuel "), "{reason}");
    assert_eq!(v["estimate"]["task_runs"]["expected"], 3);
    assert_eq!(v["actual"]["task_runs"], 1);
    assert!(v["actual"]["fuel"].as_u64().unwrap() > 1);
}
