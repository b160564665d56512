//! The HTTP API under `/api/v1` (axum). One error shape everywhere:
//! `{"error": {"code", "message", "details"}}`. Clients see a safe message;
//! internal causes go to the log.

mod auth;
mod backfills;
mod console;
mod data;
mod egress;
mod error;
mod openapi;
mod page;
mod tenants;
mod workflows;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use error::Query;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The router, apart from any socket, so tests can call it directly. Every
/// route comes from its handler's `#[utoipa::path]`, so the OpenAPI
/// document served at `/api/v1/openapi.json` cannot drift from it.
pub fn app(engine: Engine, tenancy: crate::tenancy::Tenancy) -> Router {
    let (router, doc) = routes().split_for_parts();
    let doc = Arc::new(openapi::finish(doc));
    let state = Arc::new(AppState { engine, tenancy });
    router
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .merge(console::router())
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// A span per request; its method, path and status end in the log.
async fn request_span(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", %method, path);
    async move {
        let started = std::time::Instant::now();
        let resp = next.run(req).await;
        tracing::debug!(
            status = resp.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "request"
        );
        resp
    }
    .instrument(span)
    .await
}

fn routes() -> OpenApiRouter<Arc<AppState>> {
    let plugins = OpenApiRouter::new()
        .routes(routes!(push_plugin))
        .layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES));
    OpenApiRouter::new()
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(list_plugins))
        .routes(routes!(get_plugin))
        .routes(routes!(delete_plugin_version))
        .routes(routes!(workflows::apply, workflows::list))
        .routes(routes!(workflows::get, workflows::delete))
        .routes(routes!(workflows::versions))
        .routes(routes!(workflows::pause))
        .routes(routes!(workflows::unpause))
        .routes(routes!(list_runs, run_window))
        .routes(routes!(trigger))
        .routes(routes!(get_run))
        .routes(routes!(data::logs))
        .routes(routes!(data::partition))
        .routes(routes!(retry_run))
        .routes(routes!(cancel_run))
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(tenants::delete_tenant))
        .routes(routes!(
            tenants::admin_create_token,
            tenants::admin_list_tokens
        ))
        .routes(routes!(tenants::admin_revoke_token))
        .routes(routes!(tenants::create_token, tenants::list_tokens))
        .routes(routes!(tenants::revoke_token))
        .routes(routes!(tenants::own_quotas))
        .routes(routes!(tenants::tenant_quotas, tenants::set_quotas))
        .routes(routes!(egress::get_egress, egress::set_egress))
        .routes(routes!(egress::own_egress))
        .routes(routes!(backfills::create, backfills::list))
        .routes(routes!(backfills::get))
        .routes(routes!(backfills::windows))
        .routes(routes!(backfills::strip))
        .routes(routes!(backfills::pause))
        .routes(routes!(backfills::resume))
        .routes(routes!(backfills::cancel))
        .routes(routes!(backfills::retry_failed))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(plugins)
}

type Api<T> = Result<T, ApiError>;

/// Ready when the store answers (the engine is open once the router
/// exists).
#[utoipa::path(
    get,
    path = "/readyz",
    security(()),
    tag = "health",
    summary = "Ready when the store answers and accepts writes",
    responses(
        (status = 200, description = "Ready when the store answers and accepts writes", body = String),
        (status = 503, description = "The store cannot be read or refuses writes", body = String)
    )
)]
async fn readyz(State(s): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    // Reads may work while writes fail (a full disk): both must.
    if let Err(f) = s.engine.store_health() {
        tracing::error!("not ready: the store refuses writes: {}", f.message);
        return (StatusCode::SERVICE_UNAVAILABLE, "store cannot write");
    }
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
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "Prometheus metrics (admin token)",
    responses((status = 200, description = "Prometheus metrics (admin token)", body = String, content_type = "application/openmetrics-text"))
)]
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

#[utoipa::path(
    put,
    path = "/api/v1/plugins/{name}",
    tag = "plugins",
    summary = "Upload a plugin version (.wasm component, validated against the world)",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Upload a plugin version (.wasm component, validated against the world)", body = serde_json::Value))
)]
async fn push_plugin(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Api<(StatusCode, Json<Value>)> {
    let meta = s.engine.push_plugin(&tenant, &name, body.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(json!(meta))))
}

#[utoipa::path(
    get,
    path = "/api/v1/plugins",
    tag = "plugins",
    summary = "Every plugin version of the tenant, by name and version",
    params(page::PageQuery),
    responses((status = 200, description = "Every plugin version of the tenant", body = serde_json::Value))
)]
async fn list_plugins(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<page::PageQuery>,
) -> Api<Json<Value>> {
    let plugins = s
        .engine
        .store()
        .plugin_list(&tenant)
        .map_err(ApiError::internal)?;
    let (plugins, next) = q.apply(plugins, |p| (p.name.clone(), p.version))?;
    Ok(Json(json!({ "plugins": plugins, "next": next })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    state: Option<String>,
    /// Continue after this window start (the `next` of the previous page).
    after: Option<i64>,
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

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/runs",
    tag = "runs",
    summary = "Runs of a workflow by window range and state",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name"), RunsQuery),
    responses((status = 200, description = "Runs of a workflow by window range and state", body = serde_json::Value))
)]
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
        .unwrap_or(i64::MIN)
        .max(q.after.map_or(i64::MIN, |a| a.saturating_add(1)));
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
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let mut runs: Vec<_> = s
        .engine
        .runs_of(tenant, &name, from, to, usize::MAX)?
        .into_iter()
        .filter(|r| state.is_none_or(|st| r.state == st))
        .take(limit + 1)
        .collect();
    let next = (runs.len() > limit)
        .then(|| {
            runs.truncate(limit);
            runs.last().map(|r| r.window_start)
        })
        .flatten();
    Ok(Json(json!({ "runs": runs, "next": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunWindowBody {
    /// Any instant inside the window to run.
    window: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/runs",
    tag = "runs",
    summary = "Run the window containing an instant now",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 201, description = "Run the window containing an instant now", body = serde_json::Value))
)]
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
    error::number("run id", id)
}

#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    summary = "A run with its task attempts",
    params(("id" = String, Path, description = "A numeric id")),
    responses((status = 200, description = "A run with its task attempts", body = serde_json::Value))
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/retry",
    tag = "runs",
    summary = "Re-run a failed or cancelled run from its failed tasks",
    params(("id" = String, Path, description = "A numeric id")),
    responses((status = 200, description = "Re-run a failed or cancelled run from its failed tasks", body = serde_json::Value))
)]
async fn retry_run(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Api<Json<Value>> {
    let id = run_id(&id)?;
    Ok(Json(json!(s.engine.retry_run(&tenant, id).await?)))
}

#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    tag = "runs",
    summary = "Cancel a run (interrupt=true also stops attempts in flight)",
    params(("id" = String, Path, description = "A numeric id"), backfills::CancelQuery),
    responses((status = 200, description = "Cancel a run (interrupt=true also stops attempts in flight)", body = serde_json::Value))
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/trigger",
    tag = "runs",
    summary = "Start an event run with a JSON payload (Idempotency-Key makes retries safe)",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name"), ("Idempotency-Key" = String, Header, description = "Same key, same run")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 201, description = "Start an event run with a JSON payload (Idempotency-Key makes retries safe)", body = serde_json::Value))
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/plugins/{name}/versions",
    tag = "plugins",
    summary = "Every version of a plugin: digest, size, exports",
    params(("name" = String, Path, description = "Plugin name"), page::PageQuery),
    responses((status = 200, description = "The versions", body = serde_json::Value))
)]
async fn get_plugin(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<page::PageQuery>,
) -> Api<Json<Value>> {
    let versions = s.engine.plugin_versions(&tenant, &name)?;
    let (versions, next) = q.apply(versions, |p| p.version)?;
    Ok(Json(
        json!({ "name": name, "versions": versions, "next": next }),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/plugins/{name}/versions/{version}",
    tag = "plugins",
    summary = "Delete a plugin version no workflow uses",
    params(
        ("name" = String, Path, description = "Plugin name"),
        ("version" = String, Path, description = "Version number")
    ),
    responses((status = 204, description = "Deleted"))
)]
async fn delete_plugin_version(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Api<StatusCode> {
    let version: u32 = error::number("plugin version", &version)?;
    s.engine.delete_plugin_version(&tenant, &name, version)?;
    Ok(StatusCode::NO_CONTENT)
}
