//! Connection endpoints: create, list, show, rotate, delete. Secrets go in
//! and never come out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::auth::TenantCaller;
use super::bodies::connections::{Connection, ConnectionList, NewConnection, RotateConnection};
use super::error::{json, Body, Path};
use super::{Api, AppState};

#[utoipa::path(
    post,
    path = "/api/v1/connections",
    operation_id = "create_connection",
    tag = "connections",
    summary = "Create a connection; its secrets are sealed and never shown again",
    request_body(content = NewConnection, content_type = "application/json"),
    responses((status = 201, description = "The connection, secrets as fingerprints", body = Connection))
)]
pub async fn create(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Body(body): Body,
) -> Api<(StatusCode, Json<Connection>)> {
    let req: NewConnection = json(&body)?;
    let record = s.engine.create_connection(&tenant, &req.into())?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/connections",
    operation_id = "list_connections",
    tag = "connections",
    summary = "The tenant's connections, by name",
    responses((status = 200, description = "Every connection, secrets as fingerprints", body = ConnectionList))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
) -> Api<Json<ConnectionList>> {
    let connections = s
        .engine
        .connections(&tenant)?
        .into_iter()
        .map(Connection::from)
        .collect();
    Ok(Json(ConnectionList {
        connections,
        next: None,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/connections/{name}",
    operation_id = "get_connection",
    tag = "connections",
    summary = "One connection",
    params(("name" = String, Path, description = "Connection name")),
    responses((status = 200, description = "The connection, secrets as fingerprints", body = Connection))
)]
pub async fn get(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<Json<Connection>> {
    Ok(Json(s.engine.connection(&tenant, &name)?.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/connections/{name}/rotate",
    operation_id = "rotate_connection",
    tag = "connections",
    summary = "Replace secrets (and optionally settings); workflows use them from their next attempt",
    params(("name" = String, Path, description = "Connection name")),
    request_body(content = RotateConnection, content_type = "application/json"),
    responses((status = 200, description = "The connection after rotation", body = Connection))
)]
pub async fn rotate(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Api<Json<Connection>> {
    let req: RotateConnection = json(&body)?;
    let record = s
        .engine
        .rotate_connection(&tenant, &name, req.config, req.secrets)?;
    Ok(Json(record.into()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/connections/{name}",
    operation_id = "delete_connection",
    tag = "connections",
    summary = "Delete a connection no workflow names and no notification target signs with",
    params(("name" = String, Path, description = "Connection name")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<StatusCode> {
    s.engine.delete_connection(&tenant, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
