//! Plugin endpoints: upload a version, list, versions, delete.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::auth::TenantCaller;
use super::bodies::plugins::{PluginList, PluginVersion, PluginVersions, WasmComponent};
use super::error::{Body, Path, Query};
use super::{page, Api, ApiError, AppState};

#[utoipa::path(
    put,
    path = "/api/v1/plugins/{name}",
    operation_id = "push_plugin",
    tag = "plugins",
    summary = "Upload a plugin version (.wasm component, validated against the world)",
    params(("name" = String, Path, description = "Plugin name")),
    request_body(content = WasmComponent, content_type = "application/octet-stream"),
    responses((status = 201, description = "The stored version", body = PluginVersion))
)]
pub async fn push(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Api<(StatusCode, Json<PluginVersion>)> {
    // Checked here too so a bad name is refused as a name (`invalid_name`),
    // before the quota and the component are looked at.
    crate::workflow::check_name("plugin name", &name)
        .map_err(|e| ApiError::bad_request("invalid_name", e.to_string()))?;
    let meta = s.engine.push_plugin(&tenant, &name, body.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(meta.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/plugins",
    operation_id = "list_plugins",
    tag = "plugins",
    summary = "Every plugin version of the tenant, by name and version",
    params(page::PageQuery),
    responses((status = 200, description = "Every plugin version of the tenant", body = PluginList))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<page::PageQuery>,
) -> Api<Json<PluginList>> {
    let plugins = s
        .engine
        .store()
        .plugin_list(&tenant)
        .map_err(ApiError::internal)?;
    let (plugins, next) = q.apply(plugins, |p| (p.name.clone(), p.version))?;
    Ok(Json(PluginList {
        plugins: plugins.into_iter().map(Into::into).collect(),
        next: next.map(page::plugin_cursor),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/plugins/{name}/versions",
    operation_id = "list_plugin_versions",
    tag = "plugins",
    summary = "Every version of a plugin: digest, size, exports",
    params(("name" = String, Path, description = "Plugin name"), page::PageQuery),
    responses((status = 200, description = "The versions", body = PluginVersions))
)]
pub async fn versions(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<page::PageQuery>,
) -> Api<Json<PluginVersions>> {
    let versions = s.engine.plugin_versions(&tenant, &name)?;
    let (versions, next) = q.apply(versions, |p| p.version)?;
    Ok(Json(PluginVersions {
        name,
        versions: versions.into_iter().map(Into::into).collect(),
        next,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/plugins/{name}/versions/{version}",
    operation_id = "delete_plugin_version",
    tag = "plugins",
    summary = "Delete a plugin version no workflow uses",
    params(
        ("name" = String, Path, description = "Plugin name"),
        ("version" = u32, Path, description = "Version number")
    ),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete_version(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Api<StatusCode> {
    let version: u32 = super::error::number("plugin version", &version)?;
    s.engine.delete_plugin_version(&tenant, &name, version)?;
    Ok(StatusCode::NO_CONTENT)
}
