//! Request authentication: extractors that resolve the bearer token.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::{ApiError, AppState};
use crate::run::Requester;
use crate::tenancy::{AuthError, Principal};

/// A request made with a tenant's token; handlers act on this tenant only.
pub struct TenantCaller(pub String);

/// A tenant's request that creates runs: the tenant, and who asked (the
/// token's id and label), recorded in the runs' provenance.
pub struct Asker {
    pub tenant: String,
    pub requested_by: Requester,
}

/// A request made with the admin token.
pub struct AdminCaller;

fn unauthorized(e: AuthError) -> ApiError {
    let status = if e == AuthError::Unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNAUTHORIZED
    };
    ApiError::new(status, "unauthorized", e.to_string())
}

fn forbidden_admin() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this endpoint needs a tenant token; the admin token only manages tenants",
    )
}

fn principal(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    state
        .tenancy
        .authenticate(parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes()))
        .map_err(unauthorized)
}

impl FromRequestParts<Arc<AppState>> for TenantCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        match principal(parts, state)? {
            Principal::Tenant { tenant, .. } => Ok(TenantCaller(tenant)),
            Principal::Admin => Err(forbidden_admin()),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Asker {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        match principal(parts, state)? {
            Principal::Tenant {
                tenant,
                token_id,
                label,
            } => Ok(Asker {
                tenant,
                requested_by: Requester::Token {
                    id: token_id,
                    label,
                },
            }),
            Principal::Admin => Err(forbidden_admin()),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        match principal(parts, state)? {
            Principal::Admin => Ok(AdminCaller),
            Principal::Tenant { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this endpoint needs the admin token",
            )),
        }
    }
}
