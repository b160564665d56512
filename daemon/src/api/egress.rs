//! A tenant's egress allowlist: the hosts its tasks may call over HTTP
//! (admin-managed; tasks narrow it with their own `allowed_hosts`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{AdminCaller, TenantCaller};
use super::{ApiError, AppState};
use crate::egress::Allowlist;

/// The request to replace a tenant's allowlist.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressRequest {
    /// `scheme://host[:port]` patterns: scheme `http`, `https` or `*`; host
    /// a name, `*.domain`, `*`, an IP address or a CIDR range (`[...]` for
    /// IPv6); port a number, `lo-hi` or `*` (default: the scheme's). Empty
    /// allows no outbound HTTP.
    pub allowed_hosts: Vec<String>,
}

/// A tenant's egress allowlist.
#[derive(Debug, Serialize, ToSchema)]
pub struct EgressResponse {
    pub tenant: String,
    /// The patterns, as written.
    pub allowed_hosts: Vec<String>,
}

fn response(s: &AppState, tenant: String) -> Result<Json<EgressResponse>, ApiError> {
    let allowed_hosts = s.engine.egress(&tenant)?;
    Ok(Json(EgressResponse {
        tenant,
        allowed_hosts,
    }))
}

/// A tenant's egress allowlist.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{name}/egress",
    tag = "tenants",
    summary = "A tenant's egress allowlist (admin)",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name")),
    responses((status = 200, description = "A tenant's egress allowlist (admin)", body = EgressResponse))
)]
pub async fn get_egress(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> Result<Json<EgressResponse>, ApiError> {
    response(&s, tenant)
}

/// Replaces a tenant's egress allowlist. A malformed pattern is a 400
/// naming it, and nothing is stored.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{name}/egress",
    tag = "tenants",
    summary = "Replace a tenant's egress allowlist (admin)",
    params(("name" = String, Path, description = "A workflow, plugin or tenant name")),
    request_body(content = EgressRequest, content_type = "application/json"),
    responses((status = 200, description = "Replace a tenant's egress allowlist (admin)", body = EgressResponse))
)]
pub async fn set_egress(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Json<EgressResponse>, ApiError> {
    let req: EgressRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected {{\"allowed_hosts\": [\"scheme://host[:port]\", ...]}}: {e}"),
        )
    })?;
    let list = Allowlist::parse(&req.allowed_hosts).map_err(|e| {
        let mut err = ApiError::bad_request("invalid_pattern", e.to_string());
        err.details = serde_json::json!({ "pattern": e.pattern });
        err
    })?;
    s.engine.set_egress(&tenant, &list)?;
    response(&s, tenant)
}

/// The calling tenant's egress allowlist.
#[utoipa::path(
    get,
    path = "/api/v1/egress",
    tag = "tenants",
    summary = "The calling tenant's egress allowlist",
    responses((status = 200, description = "The calling tenant's egress allowlist", body = EgressResponse))
)]
pub async fn own_egress(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
) -> Result<Json<EgressResponse>, ApiError> {
    response(&s, tenant)
}
