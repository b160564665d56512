//! Per-tenant quotas: each one enforced with its own error, usage reported,
//! and fair share of attempt slots across tenants.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tidemark::clock::ManualClock;
use tidemark::engine::{BackfillAction, Engine, EngineConfig, EngineError};
use tidemark::executor::{ErrorKind, Trigger};
use tidemark::quota::QuotaError;
use tidemark::run::RunState;
use tidemark::store::SledStore;
use tidemark::tenancy::Tenancy;
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::*;
use tower::ServiceExt;

const ADMIN: &str = "admin-secret-for-quota-tests";
/// 2024-03-04T00:00:00Z.
const MON: i64 = 1_709_510_400_000;
const H: i64 = 3_600_000;

struct World {
    engine: Engine,
    clock: Arc<ManualClock>,
    app: axum::Router,
    tokens: Vec<String>,
    _dir: tempfile::TempDir,
}

/// An engine with tenants `alpha` and `beta` (records, so quotas can be
/// overridden) and `slots` attempt slots in all.
async fn world(slots: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(MON + 24 * H));
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        clock.clone(),
        EngineConfig {
            max_concurrent_attempts: slots,
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap();
    let tenancy = Tenancy::new(store, ADMIN);
    let mut tokens = Vec::new();
    for t in ["alpha", "beta"] {
        tokens.push(tenancy.create_tenant(t, MON).unwrap().2);
    }
    let app = tidemark::api::app(engine.clone(), tenancy);
    World {
        engine,
        clock,
        app,
        tokens,
        _dir: dir,
    }
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value, Option<String>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, v, retry)
}

async fn set(w: &World, tenant: &str, quotas: serde_json::Value) {
    let (status, v, _) = call(
        &w.app,
        "PUT",
        &format!("/api/v1/tenants/{tenant}/quotas"),
        ADMIN,
        quotas.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

fn workflow(name: &str, tasks: &[(&str, &str, &str)]) -> RawWorkflow {
    let mut t = format!(
        "name = \"{name}\"\npaused = true\nmax_active_runs = 100\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n"
    );
    for (task, plugin, extra) in tasks {
        t.push_str(&format!(
            "[[tasks]]\nname = \"{task}\"\nplugin = \"{plugin}\"\n{extra}\n"
        ));
    }
    RawWorkflow::from_toml(&t).unwrap()
}

fn quota_of(e: EngineError) -> &'static str {
    match e {
        EngineError::Quota(QuotaError::Exceeded { quota, .. }) => quota,
        other => panic!("not a quota error: {other}"),
    }
}

/// Runs `workflow`'s window at `at` to its end; the error kind of its first
/// task's last attempt.
async fn run_to_end(e: &Engine, tenant: &str, workflow: &str, at: i64) -> Option<ErrorKind> {
    let run = e
        .run_window(tenant, workflow, at, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    e.attempts(tenant, run.id)
        .unwrap()
        .last()
        .and_then(|a| a.error_kind)
}

#[tokio::test(flavor = "multi_thread")]
async fn quota_settings_are_validated_and_readable_by_the_tenant() {
    let w = world(8).await;
    let (status, v, _) = call(
        &w.app,
        "PUT",
        "/api/v1/tenants/alpha/quotas",
        ADMIN,
        br#"{"weight": 0}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_quota");
    assert_eq!(v["error"]["details"]["quota"], "weight");
    for bad in [&br#"{"gpu": 1}"#[..], br#"[1]"#, br#"{"plugins": "many"}"#] {
        let (status, v, _) = call(
            &w.app,
            "PUT",
            "/api/v1/tenants/alpha/quotas",
            ADMIN,
            bad.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    }
    set(&w, "alpha", serde_json::json!({"plugins": 7, "weight": 3})).await;
    let (status, v, _) = call(&w.app, "GET", "/api/v1/quotas", &w.tokens[0], vec![]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["quotas"]["plugins"], 7);
    assert_eq!(v["quotas"]["weight"], 3);
    assert_eq!(
        v["overrides"],
        serde_json::json!({"plugins": 7, "weight": 3})
    );
    assert_eq!(v["usage"]["plugins"], 0);
    // The other tenant keeps the defaults, and never sees alpha's.
    let (_, v, _) = call(&w.app, "GET", "/api/v1/quotas", &w.tokens[1], vec![]).await;
    assert_eq!(
        (v["tenant"].as_str(), v["quotas"]["weight"].as_u64()),
        (Some("beta"), Some(1))
    );
    let (status, _, _) = call(
        &w.app,
        "PUT",
        "/api/v1/tenants/nobody/quotas",
        ADMIN,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_quotas_refuse_with_the_quota_named() {
    let w = world(8).await;
    let e = &w.engine;
    let hello = std::fs::read(HELLO).unwrap();
    set(&w, "alpha", serde_json::json!({"plugin_bytes": 1000})).await;
    let (status, v, _) = call(
        &w.app,
        "PUT",
        "/api/v1/plugins/hello",
        &w.tokens[0],
        hello.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"]["code"], "quota_exceeded");
    assert_eq!(
        v["error"]["details"],
        serde_json::json!({"quota": "plugin_bytes", "limit": 1000})
    );

    set(&w, "alpha", serde_json::json!({"plugins": 1, "tasks_per_workflow": 1, "fuel_per_attempt": 100_000, "backfill_windows": 10})).await;
    e.push_plugin("alpha", "hello", hello.clone())
        .await
        .unwrap();
    let (status, v, _) = call(
        &w.app,
        "PUT",
        "/api/v1/plugins/other",
        &w.tokens[0],
        hello.clone(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["details"]["quota"].as_str()),
        (StatusCode::FORBIDDEN, Some("plugins"))
    );
    assert_eq!(e.usage("alpha").unwrap().plugins, 1, "nothing stored");

    let two = workflow(
        "two",
        &[("a", "hello", ""), ("b", "hello", "depends_on = [\"a\"]")],
    );
    assert_eq!(
        quota_of(e.apply_workflow("alpha", two).await.unwrap_err()),
        "tasks_per_workflow"
    );
    let greedy = workflow("greedy", &[("a", "hello", "fuel = 1_000_000")]);
    let err = e.apply_workflow("alpha", greedy).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "quota fuel_per_attempt exceeded: task \"a\" asks for 1000000 (limit 100000)"
    );
    assert!(e.workflow("alpha", "two").is_none() && e.workflow("alpha", "greedy").is_none());

    e.apply_workflow("alpha", workflow("wf", &[("a", "hello", "")]))
        .await
        .unwrap();
    let req = serde_json::json!({"workflow": "wf", "start": "2024-03-01", "end": "2024-03-02"});
    let err = e
        .create_backfill("alpha", serde_json::from_value(req).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "quota backfill_windows exceeded: the selection has about 24 windows; split it into several backfills (limit 10)"
    );
    let ok = serde_json::json!({"workflow": "wf", "start": "2024-03-01T00:00:00Z", "end": "2024-03-01T10:00:00Z"});
    e.create_backfill("alpha", serde_json::from_value(ok).unwrap())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trigger_rate_is_limited_per_tenant() {
    let w = world(8).await;
    for t in ["alpha", "beta"] {
        w.engine
            .push_plugin(t, "hello", std::fs::read(HELLO).unwrap())
            .await
            .unwrap();
        w.engine
            .apply_workflow(t, workflow("wf", &[("a", "hello", "")]))
            .await
            .unwrap();
    }
    set(&w, "alpha", serde_json::json!({"triggers_per_minute": 2})).await;
    let trigger = |token: String, hour: i64| {
        let app = w.app.clone();
        async move {
            let at = chrono::DateTime::from_timestamp_millis(MON + hour * H).unwrap();
            let body = serde_json::json!({"window": at.to_rfc3339()}).to_string();
            call(
                &app,
                "POST",
                "/api/v1/workflows/wf/runs",
                &token,
                body.into_bytes(),
            )
            .await
        }
    };
    assert_eq!(trigger(w.tokens[0].clone(), 0).await.0, StatusCode::CREATED);
    assert_eq!(trigger(w.tokens[0].clone(), 1).await.0, StatusCode::CREATED);
    let (status, v, retry) = trigger(w.tokens[0].clone(), 2).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(v["error"]["details"]["quota"], "triggers_per_minute");
    assert_eq!(retry.as_deref(), Some("30"));
    // Beta has its own bucket.
    assert_eq!(trigger(w.tokens[1].clone(), 2).await.0, StatusCode::CREATED);
    w.clock.advance(30_000);
    assert_eq!(trigger(w.tokens[0].clone(), 2).await.0, StatusCode::CREATED);
    assert_eq!(w.engine.usage("alpha").unwrap().trigger_tokens_left, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn per_attempt_quotas_hold_inside_the_sandbox() {
    let w = world(8).await;
    let e = &w.engine;
    for (name, path) in [
        ("hello", HELLO),
        ("spin", SPIN),
        ("hog", HOG),
        ("chatty", CHATTY),
    ] {
        e.push_plugin("alpha", name, std::fs::read(path).unwrap())
            .await
            .unwrap();
    }
    for (wf, plugin, quota, kind) in [
        (
            "fuel",
            "hello",
            "fuel_per_attempt",
            ErrorKind::FuelExhausted,
        ),
        (
            "memory",
            "hog",
            "memory_per_attempt",
            ErrorKind::MemoryLimit,
        ),
        (
            "chat",
            "chatty",
            "log_bytes_per_attempt",
            ErrorKind::LogLimit,
        ),
    ] {
        let limit = if quota == "memory_per_attempt" {
            4 << 20
        } else {
            1000
        };
        set(&w, "alpha", serde_json::json!({ quota: limit })).await;
        e.apply_workflow("alpha", workflow(wf, &[("t", plugin, "")]))
            .await
            .unwrap();
        assert_eq!(run_to_end(e, "alpha", wf, MON).await, Some(kind), "{wf}");
    }
    // Spin has all the fuel it wants; the deadline quota stops it.
    set(
        &w,
        "alpha",
        serde_json::json!({"timeout_per_attempt_ms": 300}),
    )
    .await;
    e.apply_workflow("alpha", workflow("spin", &[("t", "spin", "")]))
        .await
        .unwrap();
    assert_eq!(
        run_to_end(e, "alpha", "spin", MON).await,
        Some(ErrorKind::DeadlineExceeded)
    );
    // Beta, with the defaults, runs `hello` fine.
    e.push_plugin("beta", "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    e.apply_workflow("beta", workflow("fuel", &[("t", "hello", "")]))
        .await
        .unwrap();
    assert_eq!(run_to_end(e, "beta", "fuel", MON).await, None);
    let u = e.usage("beta").unwrap();
    assert!(u.fuel_consumed > 1000, "{u:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_dataset_bytes_are_counted_and_capped() {
    let w = world(8).await;
    let e = &w.engine;
    e.push_plugin("alpha", "extract", std::fs::read(ETL_EXTRACT).unwrap())
        .await
        .unwrap();
    e.apply_workflow(
        "alpha",
        workflow("x", &[("t", "extract", "params = { events = 100 }")]),
    )
    .await
    .unwrap();
    assert_eq!(run_to_end(e, "alpha", "x", MON).await, None);
    let one = e.usage("alpha").unwrap().dataset_bytes;
    assert!(one > 100 * 20, "100 rows of ~40 bytes: {one}");
    // Re-running the window replaces its partition: no double count.
    assert_eq!(run_to_end(e, "alpha", "x", MON).await, None);
    assert_eq!(e.usage("alpha").unwrap().dataset_bytes, one);
    // Room for exactly one more window's rows, not two.
    set(
        &w,
        "alpha",
        serde_json::json!({"dataset_bytes": one * 2 + one / 2}),
    )
    .await;
    assert_eq!(run_to_end(e, "alpha", "x", MON + H).await, None);
    let two = e.usage("alpha").unwrap().dataset_bytes;
    assert!(two > one + one / 2, "{two}");
    assert_eq!(
        run_to_end(e, "alpha", "x", MON + 2 * H).await,
        Some(ErrorKind::Quota)
    );
    assert_eq!(
        e.usage("alpha").unwrap().dataset_bytes,
        two,
        "nothing of the refused attempt"
    );
    let run = e
        .runs_of("alpha", "x", MON + 2 * H, MON + 3 * H, 1)
        .unwrap()
        .remove(0);
    assert_eq!(run.state, RunState::Failed);
    let last = e.attempts("alpha", run.id).unwrap().pop().unwrap();
    assert!(
        last.message
            .starts_with("quota exceeded: quota dataset_bytes exceeded"),
        "{}",
        last.message
    );
    assert_eq!(e.usage("beta").unwrap().dataset_bytes, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_attempts_keep_a_live_reserve() {
    let w = world(16).await;
    let e = &w.engine;
    e.push_plugin("alpha", "spin", std::fs::read(SPIN).unwrap())
        .await
        .unwrap();
    set(&w, "alpha", serde_json::json!({"concurrent_attempts": 3, "live_reserved_attempts": 1, "timeout_per_attempt_ms": 3_600_000})).await;
    e.apply_workflow(
        "alpha",
        workflow(
            "busy",
            &[("t", "spin", "fuel = 10_000_000_000_000\ntimeout = \"1h\"")],
        ),
    )
    .await
    .unwrap();
    let req = serde_json::json!({"workflow": "busy", "start": "2024-03-01", "end": "2024-03-02", "parallelism": 10});
    let bf = e
        .create_backfill("alpha", serde_json::from_value(req).unwrap())
        .await
        .unwrap()
        .unwrap();
    e.tick().await.unwrap();
    e.tick().await.unwrap();
    let u = e.usage("alpha").unwrap();
    assert_eq!(
        (u.running_backfill_attempts, u.running_live_attempts),
        (2, 0),
        "backfills leave the live reserve free"
    );
    let mut live = Vec::new();
    for h in 0..3 {
        live.push(
            e.run_window("alpha", "busy", MON + h * H, Trigger::Manual)
                .await
                .unwrap()
                .id,
        );
    }
    e.tick().await.unwrap();
    let u = e.usage("alpha").unwrap();
    assert_eq!(
        (u.running_backfill_attempts, u.running_live_attempts),
        (2, 1)
    );
    assert_eq!(
        e.in_flight(),
        3,
        "the quota, not the 16 free slots, is the bound"
    );
    e.backfill_action("alpha", bf.id, BackfillAction::Cancel { interrupt: true })
        .await
        .unwrap();
    for id in live {
        e.cancel_run_with("alpha", id, true).await.unwrap();
    }
    e.settle().await.unwrap();
    assert_eq!(e.usage("alpha").unwrap().running_attempts, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_are_shared_by_weight_under_contention() {
    let w = world(4).await;
    let e = &w.engine;
    for t in ["alpha", "beta"] {
        e.push_plugin(t, "spin", std::fs::read(SPIN).unwrap())
            .await
            .unwrap();
        set(&w, t, serde_json::json!({"timeout_per_attempt_ms": 3_600_000, "weight": if t == "alpha" { 3 } else { 1 }})).await;
        e.apply_workflow(
            t,
            workflow(
                "busy",
                &[("t", "spin", "fuel = 10_000_000_000_000\ntimeout = \"1h\"")],
            ),
        )
        .await
        .unwrap();
    }
    // Beta's runs are older: without fair share it would take every slot.
    let mut runs = Vec::new();
    for t in ["beta", "alpha"] {
        for h in 0..6 {
            runs.push((
                t,
                e.run_window(t, "busy", MON + h * H, Trigger::Manual)
                    .await
                    .unwrap()
                    .id,
            ));
        }
    }
    e.tick().await.unwrap();
    let (a, b) = (e.usage("alpha").unwrap(), e.usage("beta").unwrap());
    assert_eq!(
        (a.running_attempts, b.running_attempts),
        (3, 1),
        "4 slots at weights 3:1"
    );
    for (t, id) in runs {
        e.cancel_run_with(t, id, true).await.unwrap();
    }
    e.settle().await.unwrap();
}

/// Tenant A saturates its share with hostile plugins and a big backfill;
/// tenant B's hourly live window still starts in the pass that creates it.
#[tokio::test(flavor = "multi_thread")]
async fn a_noisy_tenant_does_not_delay_another_tenants_live_window() {
    let w = world(10).await;
    let e = &w.engine;
    for (name, path) in [
        ("spin", SPIN),
        ("hog", HOG),
        ("deep", DEEP),
        ("chatty", CHATTY),
        ("hello", HELLO),
    ] {
        e.push_plugin("alpha", name, std::fs::read(path).unwrap())
            .await
            .unwrap();
    }
    set(
        &w,
        "alpha",
        serde_json::json!({"weight": 1, "concurrent_attempts": 8}),
    )
    .await;
    let hostile = workflow(
        "hostile",
        &[
            (
                "spin",
                "spin",
                "fuel = 10_000_000_000_000\ntimeout = \"1h\"",
            ),
            ("hog", "hog", ""),
            ("deep", "deep", ""),
            ("chatty", "chatty", ""),
        ],
    );
    e.apply_workflow("alpha", hostile).await.unwrap();
    // Starts early enough for a backfill of over 20,000 hourly windows
    // (backfills before a workflow's start are refused).
    let mut bulk = workflow("bulk", &[("t", "hello", "")]);
    bulk.schedule.start = "2021-11-01".into();
    e.apply_workflow("alpha", bulk).await.unwrap();
    let mut hostile_runs = Vec::new();
    for h in 0..8 {
        hostile_runs.push(
            e.run_window("alpha", "hostile", MON + h * H, Trigger::Manual)
                .await
                .unwrap()
                .id,
        );
    }
    let req = serde_json::json!({"workflow": "bulk", "start": "2021-11-01", "end": "2024-02-26", "parallelism": 64});
    let bf = e
        .create_backfill("alpha", serde_json::from_value(req).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(bf.estimated_total.unwrap() > 20_000);
    e.push_plugin("beta", "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    let live = "name = \"hourly\"\ncatchup = false\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n";
    e.apply_workflow("beta", RawWorkflow::from_toml(live).unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        e.tick().await.unwrap();
    }
    let a = e.usage("alpha").unwrap();
    assert_eq!(a.running_attempts, 8, "alpha holds its whole quota: {a:?}");
    // Beta's next window closes; the pass that creates its run starts it.
    let before = e
        .runs_of("beta", "hourly", i64::MIN, i64::MAX, 100)
        .unwrap()
        .len();
    w.clock.advance(H);
    e.tick().await.unwrap();
    let runs = e
        .runs_of("beta", "hourly", i64::MIN, i64::MAX, 100)
        .unwrap();
    assert_eq!(runs.len(), before + 1);
    let newest = runs.iter().max_by_key(|r| r.window_start).unwrap();
    let run = e.run("beta", newest.id).unwrap().unwrap();
    assert_eq!(
        run.tasks[0].attempts, 1,
        "beta's window started in the same pass: {run:?}"
    );
    e.backfill_action("alpha", bf.id, BackfillAction::Cancel { interrupt: true })
        .await
        .unwrap();
    for id in hostile_runs {
        let _ = e.cancel_run_with("alpha", id, true).await;
    }
    e.settle().await.unwrap();
}

async fn scrape(w: &World, token: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .uri("/metrics")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = w.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_and_outcomes_are_exported_as_metrics() {
    let w = world(8).await;
    let e = &w.engine;
    e.push_plugin("alpha", "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    e.push_plugin("alpha", "extract", std::fs::read(ETL_EXTRACT).unwrap())
        .await
        .unwrap();
    set(&w, "alpha", serde_json::json!({"plugins": 9})).await;
    e.apply_workflow("alpha", workflow("x", &[("t", "extract", "")]))
        .await
        .unwrap();
    e.apply_workflow("alpha", workflow("tiny", &[("t", "hello", "fuel = 100")]))
        .await
        .unwrap();
    assert_eq!(run_to_end(e, "alpha", "x", MON).await, None);
    assert_eq!(
        run_to_end(e, "alpha", "tiny", MON).await,
        Some(ErrorKind::FuelExhausted)
    );
    assert_eq!(scrape(&w, &w.tokens[0]).await.0, StatusCode::FORBIDDEN);
    let (status, text) = scrape(&w, ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let get = |m: &str| metric(&text, m).unwrap_or_else(|| panic!("{m} missing:\n{text}"));
    assert_eq!(
        get("tidemark_quota_limit{tenant=\"alpha\",quota=\"plugins\"}"),
        9.0
    );
    assert_eq!(
        get("tidemark_quota_usage{tenant=\"alpha\",quota=\"plugins\"}"),
        2.0
    );
    assert_eq!(
        get("tidemark_quota_usage{tenant=\"alpha\",quota=\"dataset_bytes\"}"),
        e.usage("alpha").unwrap().dataset_bytes as f64
    );
    assert_eq!(
        get("tidemark_quota_usage{tenant=\"beta\",quota=\"dataset_bytes\"}"),
        0.0
    );
    assert_eq!(
        get("tidemark_attempts_total{tenant=\"alpha\",outcome=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        get("tidemark_attempts_total{tenant=\"alpha\",outcome=\"fuel_exhausted\"}"),
        1.0
    );
    assert_eq!(
        get("tidemark_runs_ended_total{tenant=\"alpha\",state=\"failed\"}"),
        1.0
    );
    assert_eq!(
        get("tidemark_runs_ended_total{tenant=\"alpha\",state=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        get("tidemark_fuel_consumed_total{tenant=\"alpha\"}"),
        e.usage("alpha").unwrap().fuel_consumed as f64
    );
}
