//! The API contract (issue 16): every body in the OpenAPI document has a
//! schema and follows the conventions, and the edges answer in the one
//! error shape with the right code (oversized bodies, trigger payloads that
//! are not JSON, bad plugin names, missing workflow versions).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::store::SledStore;
use tidemark::tenancy::Tenancy;
use tidemark_tests::plugins::HELLO;
use tower::ServiceExt;

/// 2024-03-01T00:00:00Z.
const T0: i64 = 1_709_251_200_000;

struct World {
    app: axum::Router,
    token: String,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        Arc::new(ManualClock::new(T0)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let tenancy = Tenancy::new(store, "admin-for-contract-tests");
    let token = tenancy.create_tenant("acme", T0).unwrap().2;
    engine
        .push_plugin("acme", "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    World {
        app: tidemark::api::app(engine, tenancy),
        token,
        _dir: dir,
    }
}

/// Sends a request; answers the status, the content type and the body as
/// JSON (`Null` if it is not JSON).
async fn send(
    w: &World,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", w.token));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = w
        .app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        ct,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(no error shape)")
}

const WORKFLOW: &str = "name = \"w\"\npaused = true\n[schedule]\ncron = \"0 * * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_answer_413_in_the_error_shape() {
    let w = world().await;
    let big = vec![b' '; tidemark::api::MAX_BODY_BYTES + 1];
    for path in ["/api/v1/backfills", "/api/v1/workflows/w/trigger"] {
        let (status, ct, v) = send(&w, "POST", path, Some("application/json"), big.clone()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
        assert_eq!(code(&v), "body_too_large", "{path}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trigger_takes_json_payloads_only() {
    let w = world().await;
    let path = "/api/v1/workflows/nope/trigger";
    // Refused before the workflow is looked up: 415 for a type that is not
    // JSON, 400 for bytes that are not UTF-8 JSON.
    let refused: [(Option<&str>, &[u8], StatusCode, &str); 5] = [
        (
            Some("text/plain"),
            b"{\"a\": 1}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"a=1",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Some("application/json"),
            b"{\"a\": \"\xff\xfe\"}",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Some("application/json"),
            b"hello",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (None, b"\xff", StatusCode::BAD_REQUEST, "invalid_json"),
    ];
    for (ct, body, want, want_code) in refused {
        let (status, _, v) = send(&w, "POST", path, ct, body.to_vec()).await;
        assert_eq!(
            (status, code(&v)),
            (want, want_code),
            "{ct:?} {body:?}: {v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains("payload"),
            "{v}"
        );
    }
    // Accepted (and then the workflow is not found): JSON types, no type,
    // and an empty body whatever its type.
    let accepted: [(Option<&str>, &[u8]); 5] = [
        (Some("application/json"), b"{\"a\": \"\xc3\xa9\"}"),
        (Some("application/json; charset=utf-8"), b"[1, 2]"),
        (Some("application/cloudevents+json"), b"{}"),
        (None, b"17"),
        (Some("text/plain"), b""),
    ];
    for (ct, body) in accepted {
        let (status, _, v) = send(&w, "POST", path, ct, body.to_vec()).await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{ct:?}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_plugin_name_is_an_invalid_name() {
    let w = world().await;
    let wasm = std::fs::read(HELLO).unwrap();
    for name in ["a".repeat(300), "-dash".into(), "a%20b".into()] {
        let path = format!("/api/v1/plugins/{name}");
        let (status, _, v) = send(
            &w,
            "PUT",
            &path,
            Some("application/octet-stream"),
            wasm.clone(),
        )
        .await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_name"),
            "{name}: {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("plugin name"),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_of_a_missing_version_names_the_version() {
    let w = world().await;
    let (status, _, v) = send(
        &w,
        "POST",
        "/api/v1/workflows",
        Some("application/toml"),
        WORKFLOW.into(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let req = |version: u32| {
        json!({"workflow": "w", "start": "2024-01-01", "end": "2024-01-02", "version": version, "dry_run": true})
            .to_string()
            .into_bytes()
    };
    let (status, _, v) = send(
        &w,
        "POST",
        "/api/v1/backfills",
        Some("application/json"),
        req(7),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        v["error"]["message"],
        "version 7 of workflow \"w\" not found"
    );
    let (status, _, v) = send(
        &w,
        "POST",
        "/api/v1/backfills",
        Some("application/json"),
        req(1),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["dry_run"], true);
    assert_eq!(
        v["plan"]["entries"][0]["window_start_ms"],
        1_704_067_200_000i64
    );
    assert_eq!(v["plan"]["entries"][0]["action"], "run");
    // A workflow that does not exist is still named as a workflow.
    let body =
        json!({"workflow": "nope", "start": "2024-01-01", "end": "2024-01-02", "version": 1});
    let (status, _, v) = send(
        &w,
        "POST",
        "/api/v1/backfills",
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["message"], "workflow \"nope\" not found");
}

/// Walks every schema in `v`, with the property name it is under.
fn walk<'a>(v: &'a Value, name: &str, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                for (k, p) in props {
                    out.push((k.clone(), p));
                }
            }
            for (k, x) in m {
                walk(x, if k == "properties" { name } else { k }, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, name, out)),
        _ => {}
    }
}

#[test]
fn every_body_has_a_schema_that_follows_the_conventions() {
    let doc = serde_json::to_value(tidemark::api::document()).unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            for (status, r) in op["responses"].as_object().unwrap() {
                for (ct, c) in r["content"].as_object().into_iter().flatten() {
                    let schema = &c["schema"];
                    assert!(
                        schema.is_object() && schema != &json!({}),
                        "{method} {path} {status} {ct}: no schema"
                    );
                }
            }
            for (ct, c) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                // The trigger's payload is any JSON document, by design.
                if !path.ends_with("/trigger") {
                    assert_ne!(c["schema"], json!({}), "{method} {path} request {ct}");
                }
            }
        }
    }
    assert!(operations >= 39, "{operations}");
    let mut props = Vec::new();
    walk(&doc["components"], "", &mut props);
    for (name, p) in &props {
        // Instants are integers named `*_ms`: no other integer field may
        // have a name that reads as an instant.
        let integer = p["type"] == "integer"
            || p["type"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("integer")));
        let instant_like = ["start", "end", "from", "to", "at", "due"]
            .iter()
            .any(|w| name == w || name.ends_with(&format!("_{w}")));
        assert!(
            !(integer && instant_like),
            "{name}: an instant not named *_ms"
        );
    }
    // Enums are lower-case snake_case strings (no Rust spelling).
    let mut enums = Vec::new();
    fn enums_of<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                if let Some(e) = m.get("enum") {
                    out.push(e);
                }
                m.values().for_each(|x| enums_of(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| enums_of(x, out)),
            _ => {}
        }
    }
    enums_of(&doc, &mut enums);
    assert!(enums.len() >= 10, "{}", enums.len());
    for e in enums.iter().flat_map(|e| e.as_array().unwrap()) {
        let s = e.as_str().unwrap_or("");
        assert!(
            s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "enum value {e}"
        );
    }
}
