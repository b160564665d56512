//! The HTTP API under `/api/v1` (axum). One error shape everywhere:
//! `{"error": {"code", "message", "details"}}`. Clients see a safe message;
//! internal causes go to the log.

mod auth;
mod backfills;
pub mod bodies;
mod connections;
mod console;
mod data;
mod egress;
mod error;
mod gaps;
mod nodes;
mod notifications;
mod openapi;
mod outputs;
mod page;
mod plugins;
mod runs;
mod tenants;
mod workflows;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;

use crate::engine::Engine;

/// Largest plugin upload (interpreters compiled to components are big).
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;
/// Largest other request body.
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub tenancy: crate::tenancy::Tenancy,
    /// This daemon among the nodes sharing the store.
    pub membership: crate::cluster::Membership,
}

/// The router, apart from any socket, so tests can call it directly. Every
/// route comes from its handler's `#[utoipa::path]`, so the OpenAPI
/// document served at `/api/v1/openapi.json` cannot drift from it.
pub fn app(engine: Engine, tenancy: crate::tenancy::Tenancy) -> Router {
    let membership = crate::cluster::Membership::Embedded {
        id: "local".into(),
        addr: String::new(),
        started_ms: engine.clock().now_ms(),
    };
    app_in(engine, tenancy, membership)
}

/// [`app`] for a daemon that knows its place among the nodes.
pub fn app_in(
    engine: Engine,
    tenancy: crate::tenancy::Tenancy,
    membership: crate::cluster::Membership,
) -> Router {
    let (router, doc) = routes().split_for_parts();
    let doc = Arc::new(openapi::finish(doc));
    let state = Arc::new(AppState {
        engine,
        tenancy,
        membership,
    });
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

/// The OpenAPI document, as `/api/v1/openapi.json` serves it (`tidemark
/// openapi` writes it; `docs/openapi.json` is its committed copy).
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, doc) = routes().split_for_parts();
    openapi::finish(doc)
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

pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    let plugins = OpenApiRouter::new()
        .routes(routes!(plugins::push))
        .layer(DefaultBodyLimit::max(MAX_PLUGIN_BYTES));
    OpenApiRouter::new()
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(plugins::list))
        .routes(routes!(plugins::versions))
        .routes(routes!(plugins::delete_version))
        .routes(routes!(workflows::apply, workflows::list))
        .routes(routes!(workflows::get, workflows::delete))
        .routes(routes!(workflows::versions))
        .routes(routes!(connections::create, connections::list))
        .routes(routes!(connections::get, connections::delete))
        .routes(routes!(connections::rotate))
        .routes(routes!(notifications::create, notifications::list))
        .routes(routes!(notifications::delete))
        .routes(routes!(notifications::deliveries))
        .routes(routes!(notifications::delivery))
        .routes(routes!(workflows::pause))
        .routes(routes!(workflows::unpause))
        .routes(routes!(runs::list, runs::run_window))
        .routes(routes!(runs::trigger))
        .routes(routes!(runs::get))
        .routes(routes!(runs::why))
        .routes(routes!(runs::compare))
        .routes(routes!(data::logs))
        .routes(routes!(data::partition))
        .routes(routes!(runs::retry))
        .routes(routes!(runs::cancel))
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
        .routes(routes!(outputs::verify))
        .routes(routes!(outputs::list))
        .routes(routes!(gaps::list))
        .routes(routes!(gaps::repair))
        .routes(routes!(nodes::list))
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
        (status = 200, description = "Ready: the store answers and accepts writes", body = String, content_type = "text/plain"),
        (status = 503, description = "The store cannot be read or refuses writes", body = String, content_type = "text/plain"),
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

/// An instant given as epoch milliseconds or RFC 3339.
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
