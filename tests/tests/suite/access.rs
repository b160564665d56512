//! Every endpoint against every kind of caller, through the router: another
//! tenant's objects answer exactly like missing ones.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tidemark::clock::ManualClock;
use tidemark::engine::{Engine, EngineConfig};
use tidemark::executor::Trigger;
use tidemark::store::SledStore;
use tidemark::tenancy::Tenancy;
use tidemark::workflow::RawWorkflow;
use tidemark_tests::plugins::*;
use tower::ServiceExt;

const ADMIN: &str = "admin-secret-for-tests";
const T0: i64 = 1_709_251_200_000;

struct World {
    app: axum::Router,
    a: String,
    b: String,
    revoked: String,
    a_token_id: u64,
    run_id: u64,
    backfill_id: u64,
}

async fn world() -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let engine = Engine::open(
        store.clone(),
        crate::engine_executor(),
        Arc::new(ManualClock::new(T0 + 3_600_000)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    let tenancy = Tenancy::new(store, ADMIN);
    let (_, _, a) = tenancy.create_tenant("alpha", T0).unwrap();
    let (_, _, b) = tenancy.create_tenant("beta", T0).unwrap();
    let (old, revoked) = tenancy.create_token("alpha", "old", T0).unwrap();
    tenancy.revoke_token("alpha", old.id).unwrap();
    let (extra, _) = tenancy.create_token("alpha", "extra", T0).unwrap();
    engine
        .push_plugin("alpha", "hello", std::fs::read(HELLO).unwrap())
        .await
        .unwrap();
    let wf = "name = \"wf\"\ncatchup = false\npaused = true\n[schedule]\ncron = \"0 0 * * *\"\nstart = \"2024-01-01\"\n[[tasks]]\nname = \"t\"\nplugin = \"hello\"\n";
    engine
        .apply_workflow("alpha", RawWorkflow::from_toml(wf).unwrap())
        .await
        .unwrap();
    let run = engine
        .run_window("alpha", "wf", T0, Trigger::Manual)
        .await
        .unwrap();
    engine.settle().await.unwrap();
    let backfill = engine
        .create_backfill(
            "alpha",
            serde_json::from_value(serde_json::json!({"workflow": "wf", "dates": ["2024-02-01"]}))
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    engine.settle().await.unwrap();
    let app = tidemark::api::app(engine, tenancy);
    (
        World {
            app,
            a,
            b,
            revoked,
            a_token_id: extra.id,
            run_id: run.id,
            backfill_id: backfill.id,
        },
        dir,
    )
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_vec())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn access_matrix() {
    let (w, _dir) = world().await;
    let run = w.run_id;
    let hello = std::fs::read(HELLO).unwrap();
    let wf_json = br#"{"name":"wf2","schedule":{"cron":"@daily","start":"2024-01-01"},"tasks":[{"name":"t","plugin":"hello"}]}"#.to_vec();
    let window = br#"{"window":"2024-03-05T00:00:00Z"}"#.to_vec();
    use StatusCode as S;
    // (method, path, body, status for the owner, status for another tenant)
    let bf = w.backfill_id;
    let dry_run = br#"{"workflow":"wf","dates":["2024-02-02"],"dry_run":true}"#.to_vec();
    let tenant_endpoints: Vec<(&str, String, Vec<u8>, S, S)> = vec![
        ("GET", "/api/v1/plugins".into(), vec![], S::OK, S::OK),
        ("GET", "/api/v1/quotas".into(), vec![], S::OK, S::OK),
        ("GET", "/api/v1/workflows".into(), vec![], S::OK, S::OK),
        (
            "GET",
            "/api/v1/plugins/hello/versions".into(),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "DELETE",
            "/api/v1/plugins/hello/versions/1".into(),
            vec![],
            S::CONFLICT,
            S::NOT_FOUND,
        ),
        (
            "GET",
            "/api/v1/workflows/wf/versions".into(),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "POST",
            "/api/v1/workflows/wf/pause".into(),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "GET",
            format!("/api/v1/runs/{run}/logs"),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "GET",
            format!("/api/v1/datasets/events/partitions/{T0}"),
            vec![],
            S::OK,
            S::OK,
        ),
        (
            "POST",
            "/api/v1/workflows/wf/trigger".into(),
            br#"{"event":1}"#.to_vec(),
            S::CREATED,
            S::NOT_FOUND,
        ),
        ("GET", "/api/v1/backfills".into(), vec![], S::OK, S::OK),
        (
            "POST",
            "/api/v1/backfills".into(),
            dry_run,
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "GET",
            format!("/api/v1/backfills/{bf}"),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "GET",
            format!("/api/v1/backfills/{bf}/windows"),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/backfills/{bf}/pause"),
            vec![],
            S::CONFLICT,
            S::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/backfills/{bf}/resume"),
            vec![],
            S::CONFLICT,
            S::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/backfills/{bf}/cancel?interrupt=true"),
            vec![],
            S::CONFLICT,
            S::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/backfills/{bf}/retry-failed"),
            vec![],
            S::CONFLICT,
            S::NOT_FOUND,
        ),
        (
            "GET",
            "/api/v1/workflows/wf".into(),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "GET",
            "/api/v1/workflows/wf/runs".into(),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "GET",
            format!("/api/v1/runs/{run}"),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/runs/{run}/retry"),
            vec![],
            S::CONFLICT,
            S::NOT_FOUND,
        ),
        (
            "POST",
            format!("/api/v1/runs/{run}/cancel"),
            vec![],
            S::CONFLICT,
            S::NOT_FOUND,
        ),
        (
            "POST",
            "/api/v1/workflows/wf/runs".into(),
            window.clone(),
            S::CREATED,
            S::NOT_FOUND,
        ),
        ("GET", "/api/v1/tokens".into(), vec![], S::OK, S::OK),
        (
            "DELETE",
            format!("/api/v1/tokens/{}", w.a_token_id),
            vec![],
            S::OK,
            S::NOT_FOUND,
        ),
        (
            "PUT",
            "/api/v1/plugins/hello".into(),
            hello.clone(),
            S::CREATED,
            S::CREATED,
        ),
        // beta pushed its own `hello` in the row above, so its apply works too.
        (
            "POST",
            "/api/v1/workflows".into(),
            wf_json.clone(),
            S::OK,
            S::OK,
        ),
        // Each tenant deletes its own `wf2` from the row above.
        (
            "DELETE",
            "/api/v1/workflows/wf2".into(),
            vec![],
            S::NO_CONTENT,
            S::NO_CONTENT,
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            br#"{"label":"ci"}"#.to_vec(),
            S::CREATED,
            S::CREATED,
        ),
    ];
    let bearer = |t: &str| format!("Bearer {t}");
    let bad_auth = [
        None,
        Some(bearer(&w.revoked)),
        Some("Basic YWxhZGRpbjpvcGVu".into()),
        Some("Bearer".into()),
        Some("Bearer a b".into()),
        Some(bearer("tm_nope")),
    ];
    let mut checked = 0;
    for (method, path, body, own, other) in &tenant_endpoints {
        for auth in &bad_auth {
            let (status, v) = call(&w.app, method, path, auth.as_deref(), body).await;
            assert_eq!(status, S::UNAUTHORIZED, "{method} {path} with {auth:?}");
            assert_eq!(v["error"]["code"], "unauthorized");
            checked += 1;
        }
        let (status, _) = call(&w.app, method, path, Some(&bearer(ADMIN)), body).await;
        assert_eq!(status, S::FORBIDDEN, "{method} {path} with the admin token");
        // The other tenant first: its request must not change the owner's
        // objects (the owner's call then sees them untouched).
        let (status, v) = call(&w.app, method, path, Some(&bearer(&w.b)), body).await;
        assert_eq!(status, *other, "{method} {path} as another tenant: {v}");
        if status == S::NOT_FOUND {
            // Exactly like a missing object of one's own.
            let missing = path
                .replace(&format!("/backfills/{bf}"), "/backfills/999997")
                .replace("/wf", "/nothing-here")
                .replace(&run.to_string(), "999999")
                .replace(&w.a_token_id.to_string(), "999998");
            let (s2, v2) = call(&w.app, method, &missing, Some(&bearer(&w.b)), body).await;
            assert_eq!(s2, S::NOT_FOUND, "{method} {missing}");
            assert_eq!(v["error"]["code"], v2["error"]["code"]);
        }
        let (status, v) = call(&w.app, method, path, Some(&bearer(&w.a)), body).await;
        assert_eq!(status, *own, "{method} {path} as the owner: {v}");
        checked += 3;
    }
    // Another tenant's lists never show the owner's objects.
    let (_, v) = call(&w.app, "GET", "/api/v1/tokens", Some(&bearer(&w.b)), &[]).await;
    assert!(
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["tenant"] == "beta"),
        "{v}"
    );

    // Admin endpoints: only the admin token.
    let admin_endpoints: Vec<(&str, &str, Vec<u8>, S)> = vec![
        ("GET", "/api/v1/tenants", vec![], S::OK),
        ("GET", "/metrics", vec![], S::OK),
        ("GET", "/api/v1/tenants/alpha/quotas", vec![], S::OK),
        (
            "POST",
            "/api/v1/tenants",
            br#"{"name":"gamma"}"#.to_vec(),
            S::CREATED,
        ),
        ("GET", "/api/v1/tenants/gamma/tokens", vec![], S::OK),
        ("POST", "/api/v1/tenants/gamma/tokens", vec![], S::CREATED),
        ("GET", "/api/v1/tenants/gamma/quotas", vec![], S::OK),
        (
            "PUT",
            "/api/v1/tenants/gamma/quotas",
            br#"{"weight":2}"#.to_vec(),
            S::OK,
        ),
        ("DELETE", "/api/v1/tenants/gamma", vec![], S::NO_CONTENT),
    ];
    for (method, path, body, ok) in &admin_endpoints {
        for auth in &bad_auth {
            let (status, _) = call(&w.app, method, path, auth.as_deref(), body).await;
            assert_eq!(status, S::UNAUTHORIZED, "{method} {path} with {auth:?}");
        }
        let (status, _) = call(&w.app, method, path, Some(&bearer(&w.a)), body).await;
        assert_eq!(status, S::FORBIDDEN, "{method} {path} with a tenant token");
        let (status, v) = call(&w.app, method, path, Some(&bearer(ADMIN)), body).await;
        assert_eq!(status, *ok, "{method} {path} as admin: {v}");
        checked += bad_auth.len() + 2;
    }
    eprintln!("access matrix: {checked} requests checked");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_lifecycle_and_token_revocation() {
    let (w, _dir) = world().await;
    let bearer = |t: &str| format!("Bearer {t}");
    // A new token works until it is revoked.
    let (s, v) = call(
        &w.app,
        "POST",
        "/api/v1/tokens",
        Some(&bearer(&w.a)),
        br#"{"label":"ci"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let token = v["token"].as_str().unwrap().to_owned();
    let id = v["id"].as_u64().unwrap();
    assert_eq!(
        call(&w.app, "GET", "/api/v1/plugins", Some(&bearer(&token)), &[])
            .await
            .0,
        StatusCode::OK
    );
    let (_, list) = call(&w.app, "GET", "/api/v1/tokens", Some(&bearer(&w.a)), &[]).await;
    assert!(
        !list.to_string().contains(&token),
        "secrets are never listed"
    );
    assert!(list.to_string().contains("\"label\":\"ci\""));
    assert_eq!(
        call(
            &w.app,
            "DELETE",
            &format!("/api/v1/tokens/{id}"),
            Some(&bearer(&w.a)),
            &[]
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&w.app, "GET", "/api/v1/plugins", Some(&bearer(&token)), &[])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Bad names and duplicates are refused.
    let (s, v) = call(
        &w.app,
        "POST",
        "/api/v1/tenants",
        Some(&bearer(ADMIN)),
        br#"{"name":"bad name"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = call(
        &w.app,
        "POST",
        "/api/v1/tenants",
        Some(&bearer(ADMIN)),
        br#"{"name":"alpha"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Deleting a tenant invalidates its tokens and removes its objects.
    assert_eq!(
        call(
            &w.app,
            "DELETE",
            "/api/v1/tenants/alpha",
            Some(&bearer(ADMIN)),
            &[]
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&w.app, "GET", "/api/v1/plugins", Some(&bearer(&w.a)), &[])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v) = call(
        &w.app,
        "POST",
        "/api/v1/tenants",
        Some(&bearer(ADMIN)),
        br#"{"name":"alpha"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    // A tenant of the same name starts empty: nothing of the old one remains.
    let fresh = bearer(v["token"].as_str().unwrap());
    let (_, v) = call(&w.app, "GET", "/api/v1/backfills", Some(&fresh), &[]).await;
    assert_eq!(v["backfills"], serde_json::json!([]), "{v}");
    let path = format!("/api/v1/backfills/{}", w.backfill_id);
    assert_eq!(
        call(&w.app, "GET", &path, Some(&fresh), &[]).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, v) = call(&w.app, "GET", "/api/v1/plugins", Some(&fresh), &[]).await;
    assert_eq!(v["plugins"], serde_json::json!([]), "{v}");
    let (_, v) = call(&w.app, "GET", "/api/v1/quotas", Some(&fresh), &[]).await;
    assert_eq!(v["usage"]["dataset_bytes"], 0, "{v}");
    let (_, v) = call(&w.app, "GET", "/api/v1/tenants", Some(&bearer(ADMIN)), &[]).await;
    assert_eq!(v["tenants"].as_array().unwrap().len(), 2);
}
