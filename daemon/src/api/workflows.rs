//! Workflows: apply (TOML or JSON), get (a version), list, versions,
//! pause/unpause, delete.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::TenantCaller;
use super::{Api, ApiError, AppState};
use crate::workflow::RawWorkflow;

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

#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    version: Option<u32>,
}

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

pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
) -> Api<Json<Value>> {
    Ok(Json(json!({ "workflows": s.engine.workflows(&tenant)? })))
}

pub async fn versions(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<Json<Value>> {
    let versions: Vec<Value> = s
        .engine
        .workflow_versions(&tenant, &name)?
        .into_iter()
        .map(|w| json!({ "version": w.version, "created_ms": w.created_ms, "definition": w.raw }))
        .collect();
    Ok(Json(json!({ "name": name, "versions": versions })))
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

pub async fn pause(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<Json<Value>> {
    set_paused(tenant, s, name, true).await
}

pub async fn unpause(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<Json<Value>> {
    set_paused(tenant, s, name, false).await
}

pub async fn delete(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<StatusCode> {
    s.engine.delete_workflow(&tenant, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
