//! Workflows: apply (TOML or JSON), get (a version), list, versions,
//! pause/unpause, delete.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

use super::auth::TenantCaller;
use super::bodies::workflows::{
    Applied, PauseState, WorkflowDefinition, WorkflowList, WorkflowVersion, WorkflowVersions,
};
use super::error::{Body, Path, Query};
use super::{Api, ApiError, AppState};
use crate::workflow::RawWorkflow;

#[utoipa::path(
    post,
    path = "/api/v1/workflows",
    operation_id = "apply_workflow",
    tag = "workflows",
    summary = "Create or update a workflow (TOML or JSON)",
    request_body(
        description = "The definition: JSON, or TOML with the same keys (`application/toml`)",
        content(
            (WorkflowDefinition = "application/json"),
            (String = "application/toml"),
        )
    ),
    responses((status = 200, description = "The version stored (the current one if nothing changed)", body = Applied))
)]
pub async fn apply(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Body(body): Body,
) -> Api<Json<Applied>> {
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
    Ok(Json(Applied {
        name: stored.name,
        version: stored.version,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    version: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}",
    operation_id = "get_workflow",
    tag = "workflows",
    summary = "A workflow definition (newest or ?version=N)",
    params(("name" = String, Path, description = "Workflow name"), VersionQuery),
    responses((status = 200, description = "A workflow definition (newest or ?version=N)", body = WorkflowVersion))
)]
pub async fn get(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Api<Json<WorkflowVersion>> {
    let wf = s
        .engine
        .store()
        .workflow_get(&tenant, &name, q.version)
        .map_err(ApiError::internal)?
        .ok_or_else(|| match q.version {
            Some(v) => ApiError::not_found(format!("workflow {name:?} has no version {v}")),
            None => ApiError::not_found(format!("workflow {name:?} not found")),
        })?;
    Ok(Json(wf.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows",
    operation_id = "list_workflows",
    tag = "workflows",
    summary = "The tenant's workflows, by name",
    params(super::page::PageQuery),
    responses((status = 200, description = "The tenant's workflows", body = WorkflowList))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<super::page::PageQuery>,
) -> Api<Json<WorkflowList>> {
    let (workflows, next) = q.apply(s.engine.workflows(&tenant)?, |w| w.name.clone())?;
    Ok(Json(WorkflowList {
        workflows: workflows.into_iter().map(Into::into).collect(),
        next,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/versions",
    operation_id = "list_workflow_versions",
    tag = "workflows",
    summary = "Every version of a workflow",
    params(("name" = String, Path, description = "Workflow name"), super::page::PageQuery),
    responses((status = 200, description = "Every version of a workflow", body = WorkflowVersions))
)]
pub async fn versions(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<super::page::PageQuery>,
) -> Api<Json<WorkflowVersions>> {
    let (versions, next) = q.apply(s.engine.workflow_versions(&tenant, &name)?, |w| w.version)?;
    Ok(Json(WorkflowVersions {
        name,
        versions: versions.into_iter().map(Into::into).collect(),
        next,
    }))
}

async fn set_paused(
    tenant: String,
    s: Arc<AppState>,
    name: String,
    paused: bool,
) -> Api<Json<PauseState>> {
    let w = s.engine.set_paused(&tenant, &name, paused).await?;
    Ok(Json(PauseState {
        name: w.name,
        version: w.version,
        paused: w.raw.paused,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/pause",
    operation_id = "pause_workflow",
    tag = "workflows",
    summary = "Pause a workflow",
    params(("name" = String, Path, description = "Workflow name")),
    responses((status = 200, description = "The version now current", body = PauseState))
)]
pub async fn pause(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<Json<PauseState>> {
    set_paused(tenant, s, name, true).await
}

#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/unpause",
    operation_id = "unpause_workflow",
    tag = "workflows",
    summary = "Unpause a workflow",
    params(("name" = String, Path, description = "Workflow name")),
    responses((status = 200, description = "The version now current", body = PauseState))
)]
pub async fn unpause(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<Json<PauseState>> {
    set_paused(tenant, s, name, false).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/workflows/{name}",
    operation_id = "delete_workflow",
    tag = "workflows",
    summary = "Delete a workflow",
    params(("name" = String, Path, description = "Workflow name")),
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
