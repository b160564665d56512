//! The HTTP trigger: event runs with a payload, idempotency keys, and bad
//! input refused.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::run::RunState;
use tidemark::store::SledStore;
use tidemark::tenancy::Tenancy;
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::*;
use tower::ServiceExt;

const T0: i64 = 1_709_251_200_000;

async fn setup() -> (Engine, axum::Router, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        Arc::new(ManualClock::new(T0 + 1234)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let tenancy = Tenancy::new(store, "admin-for-trigger-tests");
    let token = tenancy.create_tenant("acme", T0).unwrap().2;
    engine
        .push_plugin("acme", "echo", std::fs::read(ECHO).unwrap())
        .await
        .unwrap();
    // Hourly and live: event runs must neither block nor hide its windows.
    let wf = "name = \"hook\"\ncatchup = false\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"echo\"\nplugin = \"echo\"\n";
    engine
        .apply_workflow("acme", RawWorkflow::from_toml(wf).unwrap())
        .await
        .unwrap();
    let app = tidemark::api::app(engine.clone(), tenancy);
    (engine, app, token, dir)
}

async fn post(
    app: &axum::Router,
    token: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value, axum::http::HeaderMap) {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_default(),
        headers,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn same_key_same_run_different_keys_different_runs() {
    let (e, app, token, _dir) = setup().await;
    let path = "/api/v1/workflows/hook/trigger";
    let (s1, v1, h1) = post(&app, &token, path, Some("order-17"), r#"{"order": 17}"#).await;
    assert_eq!(s1, StatusCode::CREATED, "{v1}");
    let id = v1["run_id"].as_u64().unwrap();
    assert_eq!(v1["url"], format!("/api/v1/runs/{id}"));
    assert_eq!(h1["location"], format!("/api/v1/runs/{id}"));
    // A client retry: the same run, not a second one.
    let (s2, v2, h2) = post(&app, &token, path, Some("order-17"), r#"{"order": 17}"#).await;
    assert_eq!((s2, v2["run_id"].as_u64()), (StatusCode::OK, Some(id)));
    assert_eq!(h2["idempotent-replayed"], "true");
    let (s3, v3, _) = post(&app, &token, path, Some("order-18"), r#"{"order": 18}"#).await;
    assert_eq!(s3, StatusCode::CREATED);
    let other = v3["run_id"].as_u64().unwrap();
    assert_ne!(other, id);
    e.settle().await.unwrap();
    // Each event run got its own payload.
    for (run, order, at) in [(id, 17, T0 + 1234), (other, 18, T0 + 1235)] {
        let r = e.run("acme", run).unwrap().unwrap();
        assert_eq!(r.state, RunState::Succeeded);
        assert_eq!(
            (r.window_start, r.window_end),
            (at, at),
            "distinct instants"
        );
        let got = e
            .store()
            .dataset_get("acme", "echo", r.window_start, "payload")
            .unwrap();
        assert_eq!(got, Some(format!("{{\"order\": {order}}}").into_bytes()));
    }
    // The live window of the hour is still the schedule's to run.
    assert!(e
        .store()
        .window_get("acme", "hook", T0)
        .unwrap()
        .is_none_or(|w| w.run_id != id && w.run_id != other));
    // After the runs ended, the key still answers with its run.
    let (s4, v4, _) = post(&app, &token, path, Some("order-17"), "{}").await;
    assert_eq!((s4, v4["run_id"].as_u64()), (StatusCode::OK, Some(id)));
    // No key: every request is a new run.
    let (_, a, _) = post(&app, &token, path, None, "").await;
    let (_, b, _) = post(&app, &token, path, None, "").await;
    assert_ne!(a["run_id"], b["run_id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_triggers_are_refused_and_create_nothing() {
    let (e, app, token, _dir) = setup().await;
    let before = e.active_runs();
    let path = "/api/v1/workflows/hook/trigger";
    let (s, v, _) = post(&app, &token, path, None, "{not json").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let long = "k".repeat(300);
    let (s, v, _) = post(&app, &token, path, Some(&long), "{}").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"]["message"],
        "Idempotency-Key must be 1 to 255 characters"
    );
    let (s, _, _) = post(
        &app,
        &token,
        "/api/v1/workflows/nope/trigger",
        Some("x"),
        "{}",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e.active_runs(), before);
    assert_eq!(
        post(&app, "tm_wrong", path, None, "{}").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_retries_with_one_key_make_one_run() {
    let (e, app, token, _dir) = setup().await;
    let mut handles = Vec::new();
    for _ in 0..16 {
        let (app, token) = (app.clone(), token.clone());
        handles.push(tokio::spawn(async move {
            post(
                &app,
                &token,
                "/api/v1/workflows/hook/trigger",
                Some("same"),
                "{}",
            )
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for h in handles {
        let (s, v, _) = h.await.unwrap();
        created += usize::from(s == StatusCode::CREATED);
        ids.insert(v["run_id"].as_u64().unwrap());
    }
    assert_eq!((ids.len(), created), (1, 1));
    e.settle().await.unwrap();
}
