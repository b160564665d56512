//! Workflows: apply (TOML or JSON), get (a version), list, versions,
//! pause/unpause, delete.

use std::sync::Arc;

use super::error::Query;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::TenantCaller;
use super::{Api, ApiError, AppState};
use crate::workflow::RawWorkflow;

#[utoipa::path(
    post,
    path = "/api/v1/workflows",
    tag = "workflows",
    summary = "Create or update a workflow (TOML or JSON)",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, description = "Create or update a workflow (TOML or JSON)", body = serde_json::Value))
)]
pub async fn apply(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Api<Json<Value>> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type.contains("json")
        || (!content_type.contains("toml") && body.trim_ascii_start().starts_with(b"{"));
    let raw = if is_json {
        RawWorkflow::from_json(&body)
    } else {
        let text = std::str::from_utf8(&body).map_err(|e| {
            ApiError::bad_request("invalid_workflow", format!("TOML must be UTF-8: {e}"))
        })?;
        RawWorkflow::from_toml(text)
    }
    .map_err(|e| ApiError::bad_request("invalid_workflow", e.to_string()))?;
    let stored = s.engine.apply_workflow(&tenant, raw).await?;
    Ok(Json(
        json!({ "name": stored.name, "version": stored.version }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    version: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}",
    tag = "workflows",
    summary = "A workflow definition (newest or ?version=N)",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name"), VersionQuery),
    responses((status = 200, description = "A workflow definition (newest or ?version=N)", body = serde_json::Value))
)]
pub async fn get(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Api<Json<Value>> {
    let wf = s
        .engine
        .store()
        .workflow_get(&tenant, &name, q.version)
        .map_err(ApiError::internal)?
        .ok_or_else(|| match q.version {
            Some(v) => ApiError::not_found(format!("workflow {name:?} has no version {v}")),
            None => ApiError::not_found(format!("workflow {name:?} not found")),
        })?;
    Ok(Json(
        json!({ "name": wf.name, "version": wf.version, "created_ms": wf.created_ms, "definition": wf.raw }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    tag = "workflows",
    summary = "The tenant's workflows, by name",
    params(super::page::PageQuery),
    responses((status = 200, description = "The tenant's workflows", body = serde_json::Value))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<super::page::PageQuery>,
) -> Api<Json<Value>> {
    let (workflows, next) = q.apply(s.engine.workflows(&tenant)?, |w| w.name.clone())?;
    Ok(Json(json!({ "workflows": workflows, "next": next })))
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/versions",
    tag = "workflows",
    summary = "Every version of a workflow",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name"), super::page::PageQuery),
    responses((status = 200, description = "Every version of a workflow", body = serde_json::Value))
)]
pub async fn versions(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<super::page::PageQuery>,
) -> Api<Json<Value>> {
    let (versions, next) = q.apply(s.engine.workflow_versions(&tenant, &name)?, |w| w.version)?;
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|w| json!({ "version": w.version, "created_ms": w.created_ms, "definition": w.raw }))
        .collect();
    Ok(Json(
        json!({ "name": name, "versions": versions, "next": next }),
    ))
}

async fn set_paused(
    tenant: String,
    s: Arc<AppState>,
    name: String,
    paused: bool,
) -> Api<Json<Value>> {
    let w = s.engine.set_paused(&tenant, &name, paused).await?;
    Ok(Json(
        json!({ "name": w.name, "version": w.version, "paused": w.raw.paused }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/pause",
    tag = "workflows",
    summary = "Pause a workflow",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name")),
    responses((status = 200, description = "Pause a workflow", body = serde_json::Value))
)]
pub async fn pause(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<Json<Value>> {
    set_paused(tenant, s, name, true).await
}

#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/unpause",
    tag = "workflows",
    summary = "Unpause a workflow",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name")),
    responses((status = 200, description = "Unpause a workflow", body = serde_json::Value))
)]
pub async fn unpause(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<Json<Value>> {
    set_paused(tenant, s, name, false).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/workflows/{name}",
    tag = "workflows",
    summary = "Delete a workflow",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name")),
    responses((status = 204, description = "Delete a workflow"))
)]
pub async fn delete(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<StatusCode> {
    s.engine.delete_workflow(&tenant, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
