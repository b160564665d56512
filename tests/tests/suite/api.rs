//! REST resources through the router: workflows (list, versions, pause,
//! delete), run logs paged, dataset partitions paged, readiness.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::executor::Trigger;
use tidemark::store::SledStore;
use tidemark::tenancy::Tenancy;
use tidemark_tests::plugins::*;
use tower::ServiceExt;

/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;
const H: i64 = 3_600_000;

pub(crate) struct World {
    pub(crate) engine: Engine,
    pub(crate) app: axum::Router,
    pub(crate) token: String,
    pub(crate) clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    world_with(&[
        ("extract", ETL_EXTRACT),
        ("chatty", CHATTY),
        ("hello", HELLO),
    ])
    .await
}

/// An engine on a temporary sled store at `T0 + 10 h` (manual clock), its
/// API, and tenant `acme` (with its token) holding `plugins` by name.
pub(crate) async fn world_with(plugins: &[(&str, &str)]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = Arc::new(ManualClock::new(T0 + 10 * H + 5));
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        clock.clone(),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let tenancy = Tenancy::new(store, "admin-for-api-tests");
    let token = tenancy.create_tenant("acme", T0).unwrap().2;
    for (name, path) in plugins {
        engine
            .push_plugin("acme", name, std::fs::read(path).unwrap())
            .await
            .unwrap();
    }
    let app = tidemark::api::app(engine.clone(), tenancy);
    World {
        engine,
        app,
        token,
        clock,
        _dir: dir,
    }
}

async fn call(w: &World, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", w.token))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = w.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn wf(name: &str, plugin: &str, extra: &str) -> String {
    format!("name = \"{name}\"\ncatchup = false\n{extra}\n[schedule]\ncron = \"0 * * * *\"\ntimezone = \"Europe/Berlin\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"{plugin}\"\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn workflows_list_versions_pause_and_delete() {
    let w = world().await;
    assert_eq!(
        call(&w, "POST", "/api/v1/workflows", &wf("up", "hello", ""))
            .await
            .0,
        StatusCode::OK
    );
    let down = format!(
        "{}[[upstream]]\nworkflow = \"up\"\n",
        wf("down", "hello", "paused = true")
    );
    assert_eq!(
        call(&w, "POST", "/api/v1/workflows", &down).await.0,
        StatusCode::OK
    );
    w.engine.settle().await.unwrap();
    let (_, v) = call(&w, "GET", "/api/v1/workflows", "").await;
    let list = v["workflows"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let up = &list[1];
    assert_eq!(
        (
            up["name"].as_str(),
            up["cron"].as_str(),
            up["timezone"].as_str()
        ),
        (Some("up"), Some("0 * * * *"), Some("Europe/Berlin"))
    );
    assert_eq!(
        (up["paused"].as_bool(), up["last_window_state"].as_str()),
        (Some(false), Some("succeeded"))
    );
    assert_eq!(up["last_window_start_ms"], T0 + 9 * H);
    assert_eq!(up["next_due_ms"], T0 + 11 * H);
    assert_eq!(list[0]["upstream"], json!(["up"]));
    assert_eq!(list[0]["next_due_ms"], Value::Null, "paused");

    // Pause makes a new version that differs only in `paused`.
    let (s, v) = call(&w, "POST", "/api/v1/workflows/up/pause", "").await;
    assert_eq!(
        (s, v["version"].as_u64(), v["paused"].as_bool()),
        (StatusCode::OK, Some(2), Some(true))
    );
    let (_, v) = call(&w, "POST", "/api/v1/workflows/up/pause", "").await;
    assert_eq!(v["version"], 2, "already paused: no new version");
    let (_, v) = call(&w, "GET", "/api/v1/workflows/up/versions", "").await;
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (
            versions[0]["definition"]["paused"].as_bool(),
            versions[1]["definition"]["paused"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let (_, v) = call(&w, "GET", "/api/v1/workflows/up?version=1", "").await;
    assert_eq!(v["definition"]["paused"], false);
    let (s, v) = call(&w, "GET", "/api/v1/workflows/up?version=9", "").await;
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (
            StatusCode::NOT_FOUND,
            Some("workflow \"up\" has no version 9")
        )
    );
    let (_, v) = call(&w, "POST", "/api/v1/workflows/up/unpause", "").await;
    assert_eq!(
        (v["version"].as_u64(), v["paused"].as_bool()),
        (Some(3), Some(false))
    );

    let last_run = w
        .engine
        .runs_of("acme", "up", i64::MIN, i64::MAX, 10)
        .unwrap()[0]
        .id;
    // Delete: refused while a workflow depends on it, then allowed.
    let (s, v) = call(&w, "DELETE", "/api/v1/workflows/up", "").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("[\"down\"] depend on \"up\""));
    assert_eq!(
        call(&w, "DELETE", "/api/v1/workflows/down", "").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&w, "DELETE", "/api/v1/workflows/up", "").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&w, "GET", "/api/v1/workflows/up", "").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&w, "GET", "/api/v1/workflows/up/versions", "").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, v) = call(&w, "GET", "/api/v1/workflows", "").await;
    assert_eq!(v["workflows"], json!([]));
    // Its runs stay readable by id.
    let (s, v) = call(&w, "GET", &format!("/api/v1/runs/{last_run}"), "").await;
    assert_eq!(
        (s, v["run"]["workflow"].as_str()),
        (StatusCode::OK, Some("up"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_logs_and_dataset_partitions_are_paged() {
    let w = world().await;
    let e = &w.engine;
    call(
        &w,
        "POST",
        "/api/v1/workflows",
        &wf("x", "extract", "paused = true").replace(
            "plugin = \"extract\"",
            "plugin = \"extract\"\nparams = { events = 25 }",
        ),
    )
    .await;
    let run = e
        .run_window("acme", "x", T0, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    // 25 rows, pages of 10: keys in order, nothing lost, nothing repeated.
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => format!("/api/v1/datasets/events/partitions/{T0}?limit=10"),
            Some(k) => format!(
                "/api/v1/datasets/events/partitions/2024-03-01T00:00:00Z?limit=10&after={k}"
            ),
        };
        let (s, v) = call(&w, "GET", &path, "").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        for entry in v["entries"].as_array().unwrap() {
            assert!(entry["value"].as_str().unwrap().contains("\"user\""));
            keys.push(entry["key"].as_str().unwrap().to_owned());
        }
        match v["next"].as_str() {
            Some(k) => after = Some(k.to_owned()),
            None => break,
        }
    }
    assert_eq!(keys, (0..25).map(|i| format!("{i:06}")).collect::<Vec<_>>());
    let (s, _) = call(&w, "GET", "/api/v1/datasets/bad%20name/partitions/0", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(
        &w,
        "GET",
        "/api/v1/datasets/events/partitions/yesterday",
        "",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Logs: the chatty plugin floods until its log limit; page through.
    call(
        &w,
        "POST",
        "/api/v1/workflows",
        &wf("noisy", "chatty", "paused = true"),
    )
    .await;
    let run2 = e
        .run_window("acme", "noisy", T0, Trigger::Manual)
        .await
        .unwrap();
    e.settle().await.unwrap();
    let total = e
        .attempts("acme", run2.id)
        .unwrap()
        .iter()
        .map(|a| a.log.len())
        .sum::<usize>();
    assert!(total > 50, "{total}");
    let mut seen = 0;
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            None => format!("/api/v1/runs/{}/logs?limit=50", run2.id),
            Some(n) => format!("/api/v1/runs/{}/logs?limit=50&after={n}", run2.id),
        };
        let (_, v) = call(&w, "GET", &path, "").await;
        let lines = v["lines"].as_array().unwrap();
        for l in lines {
            assert_eq!(l["n"], seen as u64);
            seen += 1;
        }
        match v["next"].as_u64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, total);
    let (_, v) = call(
        &w,
        "GET",
        &format!("/api/v1/runs/{}/logs?task=nope", run.id),
        "",
    )
    .await;
    assert_eq!(v["lines"], json!([]));
    assert_eq!(
        call(&w, "GET", "/api/v1/runs/999999/logs", "").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness() {
    let w = world().await;
    for path in ["/healthz", "/readyz"] {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        assert_eq!(
            w.app.clone().oneshot(req).await.unwrap().status(),
            StatusCode::OK
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_every_route() {
    let w = world().await;
    let req = Request::builder()
        .uri("/api/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let resp = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("401") && responses.contains_key("500"),
                "{method} {path}"
            );
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} documents no success"
            );
            // Every path parameter in the template is declared.
            for name in path
                .split('{')
                .skip(1)
                .map(|p| p.split('}').next().unwrap())
            {
                let declared = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == name && p["in"] == "path");
                assert!(declared, "{method} {path}: {name}");
            }
        }
    }
    // Each documented operation is served: a request without a token gets
    // 401 (auth runs first), never 404/405 from the router.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{name}", "x")
                .replace("{id}", "1")
                .replace("{dataset}", "d")
                .replace("{window}", "0");
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .body(Body::empty())
                .unwrap();
            let status = w.app.clone().oneshot(req).await.unwrap().status();
            let public = path == "/readyz";
            assert!(
                status == StatusCode::UNAUTHORIZED || (public && status == StatusCode::OK),
                "{method} {concrete}: {status}"
            );
        }
    }
    assert!(operations >= 39, "{operations}");
    eprintln!("openapi: {} paths, {operations} operations", paths.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_versions_and_deleting_an_unused_one() {
    let w = world().await;
    let (s, v) = call(&w, "GET", "/api/v1/plugins/hello/versions", "").await;
    assert_eq!(s, StatusCode::OK);
    let v1 = &v["versions"][0];
    assert_eq!(
        (v1["version"].as_u64(), v1["size"].as_u64()),
        (Some(1), Some(std::fs::metadata(HELLO).unwrap().len()))
    );
    assert!(v1["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(v1["exports"], json!(["run"]), "{v1}");
    // In use by a workflow: refused with the user named.
    call(
        &w,
        "POST",
        "/api/v1/workflows",
        &wf("uses", "hello", "paused = true"),
    )
    .await;
    let (s, v) = call(&w, "DELETE", "/api/v1/plugins/hello/versions/1", "").await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        v["error"]["message"],
        "plugin hello version 1 is used by task \"t\" of workflow \"uses\""
    );
    // Unused: deleted, and gone.
    let (s, _) = call(&w, "DELETE", "/api/v1/plugins/chatty/versions/1", "").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&w, "GET", "/api/v1/plugins/chatty/versions", "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&w, "DELETE", "/api/v1/plugins/chatty/versions/1", "")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = call(&w, "DELETE", "/api/v1/plugins/hello/versions/one", "").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_argument"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_are_listed_in_pages() {
    let w = world().await;
    call(
        &w,
        "POST",
        "/api/v1/workflows",
        &wf("h", "hello", "paused = true"),
    )
    .await;
    for i in 0..7 {
        w.engine
            .run_window("acme", "h", T0 + i * H, Trigger::Manual)
            .await
            .unwrap();
    }
    w.engine.settle().await.unwrap();
    let mut starts = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            None => "/api/v1/workflows/h/runs?limit=3".to_owned(),
            Some(a) => format!("/api/v1/workflows/h/runs?limit=3&after={a}"),
        };
        let (s, v) = call(&w, "GET", &path, "").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let page = v["runs"].as_array().unwrap();
        assert!(page.len() <= 3);
        starts.extend(page.iter().map(|r| r["window_start_ms"].as_i64().unwrap()));
        match v["next"].as_i64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(starts, (0..7).map(|i| T0 + i * H).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn backfills_are_listed_in_pages() {
    let w = world().await;
    call(
        &w,
        "POST",
        "/api/v1/workflows",
        &wf("h", "hello", "paused = true"),
    )
    .await;
    let mut ids = Vec::new();
    for day in 1..=5 {
        let body = json!({"workflow": "h", "dates": [format!("2024-02-0{day}")]}).to_string();
        let (s, v) = call(&w, "POST", "/api/v1/backfills", &body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["backfill"]["id"].as_u64().unwrap());
    }
    let pages = |order: &'static str| {
        let w = &w;
        async move {
            let mut seen = Vec::new();
            let mut after: Option<u64> = None;
            loop {
                let mut path = format!("/api/v1/backfills?limit=2{order}");
                if let Some(a) = after {
                    path.push_str(&format!("&after={a}"));
                }
                let (s, v) = call(w, "GET", &path, "").await;
                assert_eq!(s, StatusCode::OK, "{v}");
                let page = v["backfills"].as_array().unwrap();
                assert!(page.len() <= 2);
                seen.extend(page.iter().map(|b| b["backfill"]["id"].as_u64().unwrap()));
                match v["next"].as_u64() {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            seen
        }
    };
    assert_eq!(pages("").await, ids);
    assert_eq!(pages("&order=asc").await, ids);
    let newest_first: Vec<u64> = ids.iter().rev().copied().collect();
    assert_eq!(pages("&order=desc").await, newest_first);
    let (s, v) = call(&w, "GET", "/api/v1/backfills?order=sideways", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("order"),
        "{v}"
    );
    w.engine.settle().await.unwrap();
}
