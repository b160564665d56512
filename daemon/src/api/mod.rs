//! The HTTP API under `/api/v1` (axum). One error shape everywhere:
//! `{"error": {"code", "message", "details"}}`. Clients see a safe message;
//! internal causes go to the log.

mod auth;
mod backfills;
mod data;
mod error;
mod tenants;
mod workflows;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub use error::ApiError;

use auth::TenantCaller;

use crate::engine::Engine;
use crate::executor::Trigger;

/// Largest plugin upload (interpreters compiled to components are big).
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;
/// Largest other request body.
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub tenancy: crate::tenancy::Tenancy,
}

/// The router, apart from any socket, so tests can call it directly.
pub fn app(engine: Engine, tenancy: crate::tenancy::Tenancy) -> Router {
    let state = Arc::new(AppState { engine, tenancy });
    let plugins = Router::new()
        .route("/api/v1/plugins/{name}", put(push_plugin))
        .layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/plugins", get(list_plugins))
        .route(
            "/api/v1/workflows",
            post(workflows::apply).get(workflows::list),
        )
        .route(
            "/api/v1/workflows/{name}",
            get(workflows::get).delete(workflows::delete),
        )
        .route(
            "/api/v1/workflows/{name}/versions",
            get(workflows::versions),
        )
        .route("/api/v1/workflows/{name}/pause", post(workflows::pause))
        .route("/api/v1/workflows/{name}/unpause", post(workflows::unpause))
        .route(
            "/api/v1/workflows/{name}/runs",
            get(list_runs).post(run_window),
        )
        .route("/api/v1/workflows/{name}/trigger", post(trigger))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/logs", get(data::logs))
        .route(
            "/api/v1/datasets/{dataset}/partitions/{window}",
            get(data::partition),
        )
        .route("/api/v1/runs/{id}/retry", post(retry_run))
        .route("/api/v1/runs/{id}/cancel", post(cancel_run))
        .route(
            "/api/v1/tenants",
            post(tenants::create_tenant).get(tenants::list_tenants),
        )
        .route("/api/v1/tenants/{name}", delete(tenants::delete_tenant))
        .route(
            "/api/v1/tenants/{name}/tokens",
            post(tenants::admin_create_token).get(tenants::admin_list_tokens),
        )
        .route(
            "/api/v1/tenants/{name}/tokens/{id}",
            delete(tenants::admin_revoke_token),
        )
        .route(
            "/api/v1/tokens",
            post(tenants::create_token).get(tenants::list_tokens),
        )
        .route("/api/v1/tokens/{id}", delete(tenants::revoke_token))
        .route("/api/v1/quotas", get(tenants::own_quotas))
        .route(
            "/api/v1/tenants/{name}/quotas",
            get(tenants::tenant_quotas).put(tenants::set_quotas),
        )
        .route(
            "/api/v1/backfills",
            post(backfills::create).get(backfills::list),
        )
        .route("/api/v1/backfills/{id}", get(backfills::get))
        .route("/api/v1/backfills/{id}/windows", get(backfills::windows))
        .route("/api/v1/backfills/{id}/pause", post(backfills::pause))
        .route("/api/v1/backfills/{id}/resume", post(backfills::resume))
        .route("/api/v1/backfills/{id}/cancel", post(backfills::cancel))
        .route(
            "/api/v1/backfills/{id}/retry-failed",
            post(backfills::retry_failed),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(plugins)
        .with_state(state)
}

type Api<T> = Result<T, ApiError>;

/// Ready when the store answers (the engine is open once the router
/// exists).
async fn readyz(State(s): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    match s.engine.store().tenant_list() {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::error!("not ready: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

/// Prometheus metrics. They name every tenant, so only the admin token
/// reads them (Prometheus: `authorization: { credentials: ADMIN_TOKEN }`).
async fn metrics(
    _: auth::AdminCaller,
    State(s): State<Arc<AppState>>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let engine = s.engine.clone();
    let text = tokio::task::spawn_blocking(move || engine.metrics_text())
        .await
        .unwrap_or_else(|e| format!("# metrics failed: {e}\n"));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

async fn push_plugin(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Api<(StatusCode, Json<Value>)> {
    let meta = s.engine.push_plugin(&tenant, &name, body.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(json!(meta))))
}

async fn list_plugins(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
) -> Api<Json<Value>> {
    let plugins = s
        .engine
        .store()
        .plugin_list(&tenant)
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "plugins": plugins })))
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    state: Option<String>,
}

/// An instant given as milliseconds or RFC 3339.
pub(crate) fn instant(name: &str, s: &str) -> Api<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_argument",
                format!("{name}: {s:?} is not an RFC 3339 instant or milliseconds ({e})"),
            )
        })
}

async fn list_runs(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Api<Json<Value>> {
    let tenant = tenant.as_str();
    if s.engine.workflow(tenant, &name).is_none() {
        return Err(ApiError::not_found(format!("workflow {name:?} not found")));
    }
    let from = q
        .from
        .as_deref()
        .map(|v| instant("from", v))
        .transpose()?
        .unwrap_or(i64::MIN);
    let to =
        q.to.as_deref()
            .map(|v| instant("to", v))
            .transpose()?
            .unwrap_or(i64::MAX);
    let state = match q.state.as_deref() {
        None => None,
        Some(v) => Some(crate::run::RunState::parse(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_argument",
                format!("state: {v:?} is not a run state"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let runs: Vec<_> = s
        .engine
        .runs_of(tenant, &name, from, to, usize::MAX)?
        .into_iter()
        .filter(|r| state.is_none_or(|st| r.state == st))
        .take(limit)
        .collect();
    Ok(Json(json!({ "runs": runs })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunWindowBody {
    /// Any instant inside the window to run.
    window: String,
}

async fn run_window(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Api<(StatusCode, Json<Value>)> {
    s.engine.take_trigger(&tenant)?;
    let req: RunWindowBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let at = instant("window", &req.window)?;
    let run = s
        .engine
        .run_window(&tenant, &name, at, Trigger::Manual)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(run))))
}

pub(crate) fn run_id(id: &str) -> Api<u64> {
    id.parse().map_err(|_| {
        ApiError::bad_request("invalid_argument", format!("run id {id:?} is not a number"))
    })
}

async fn get_run(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Api<Json<Value>> {
    let id = run_id(&id)?;
    let tenant = tenant.as_str();
    let run = s
        .engine
        .run(tenant, id)?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
    let attempts = s.engine.attempts(tenant, id)?;
    Ok(Json(json!({ "run": run, "attempts": attempts })))
}

async fn retry_run(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Api<Json<Value>> {
    let id = run_id(&id)?;
    Ok(Json(json!(s.engine.retry_run(&tenant, id).await?)))
}

async fn cancel_run(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<backfills::CancelQuery>,
) -> Api<Json<Value>> {
    let id = run_id(&id)?;
    let run = s.engine.cancel_run_with(&tenant, id, q.interrupt).await?;
    Ok(Json(json!(run)))
}

/// Starts an event run whose tasks get the body (any JSON) as payload. The
/// `Idempotency-Key` header makes retries safe: the same key answers with
/// the same run (200 and `Idempotent-Replayed: true`) instead of a new one.
async fn trigger(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Api<(StatusCode, HeaderMap, Json<Value>)> {
    s.engine.take_trigger(&tenant)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().map_err(|e| {
                ApiError::bad_request("invalid_header", format!("Idempotency-Key: {e}"))
            })?;
            crate::engine::check_idempotency_key(k)
                .map_err(|m| ApiError::bad_request("invalid_header", m))?;
            Some(k.to_owned())
        }
    };
    if !body.is_empty() {
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the payload is not JSON: {e}"))
        })?;
    }
    let t = s
        .engine
        .trigger(&tenant, &name, body.to_vec(), key.as_deref())
        .await?;
    let mut out = HeaderMap::new();
    let url = format!("/api/v1/runs/{}", t.run.id);
    if let Ok(v) = url.parse() {
        out.insert(axum::http::header::LOCATION, v);
    }
    let status = if t.created {
        StatusCode::CREATED
    } else {
        out.insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
        StatusCode::OK
    };
    Ok((
        status,
        out,
        Json(json!({ "run_id": t.run.id, "url": url, "run": t.run })),
    ))
}
