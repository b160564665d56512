//! Tenant and token endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::auth::{AdminCaller, TenantCaller};
use super::bodies::tenancy::{
    NewTenant, NewToken, QuotaOverrides, QuotaValues, TenantCreated, TenantList, TenantQuotas,
    Token, TokenCreated, TokenList,
};
use super::error::{json, Body, Path, Query};
use super::{ApiError, AppState};
use crate::tenancy::TenancyError;

type Api<T> = Result<T, ApiError>;

impl From<TenancyError> for ApiError {
    fn from(e: TenancyError) -> Self {
        match &e {
            TenancyError::Name(_) | TenancyError::Label => {
                ApiError::bad_request("invalid_argument", e.to_string())
            }
            TenancyError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            TenancyError::TenantNotFound(_) | TenancyError::TokenNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            TenancyError::Store(_)
            | TenancyError::Random(_)
            | TenancyError::AdminFile { .. }
            | TenancyError::WeakAdminToken { .. } => ApiError::internal(e),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Api<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    summary = "Create a tenant and its first token (admin)",
    request_body(content = NewTenant, content_type = "application/json"),
    responses((status = 201, description = "The tenant and its first token's secret (shown only here)", body = TenantCreated))
)]
pub async fn create_tenant(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Body(body): Body,
) -> Api<(StatusCode, Json<TenantCreated>)> {
    let req: NewTenant = json(&body)?;
    let now = s.engine.clock().now_ms();
    let (tenant, token, secret) = s.tenancy.create_tenant(&req.name, now)?;
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant: tenant.into(),
            token: secret,
            token_id: token.id,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    tag = "tenants",
    summary = "Every tenant, by name (admin)",
    params(super::page::PageQuery),
    responses((status = 200, description = "Every tenant (admin)", body = TenantList))
)]
pub async fn list_tenants(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<super::page::PageQuery>,
) -> Api<Json<TenantList>> {
    let (tenants, next) = q.apply(s.tenancy.tenants()?, |t| t.name.clone())?;
    Ok(Json(TenantList {
        tenants: tenants.into_iter().map(Into::into).collect(),
        next,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{name}",
    tag = "tenants",
    summary = "Delete a tenant and everything it owns (admin)",
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 204, description = "Delete a tenant and everything it owns (admin)"))
)]
pub async fn delete_tenant(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<StatusCode> {
    s.tenancy.delete_tenant(&name)?;
    s.engine.forget_tenant(&name);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/tenants/{name}/tokens",
    tag = "tenants",
    summary = "Create a token of a tenant (admin)",
    params(("name" = String, Path, description = "Tenant name")),
    request_body(content = NewToken, content_type = "application/json", description = "May be empty"),
    responses((status = 201, description = "The token and its secret (shown only here)", body = TokenCreated))
)]
pub async fn admin_create_token(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Body(body): Body,
) -> Api<(StatusCode, Json<TokenCreated>)> {
    issue_token(&s, &tenant, &body)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{name}/tokens",
    tag = "tenants",
    summary = "Tokens of a tenant, by id (admin)",
    params(("name" = String, Path, description = "Tenant name"), super::page::PageQuery),
    responses((status = 200, description = "Tokens of a tenant (admin)", body = TokenList))
)]
pub async fn admin_list_tokens(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Query(q): Query<super::page::PageQuery>,
) -> Api<Json<TokenList>> {
    if !s.tenancy.tenant_exists(&tenant)? {
        return Err(TenancyError::TenantNotFound(tenant).into());
    }
    tokens_page(&s, &tenant, &q)
}

#[utoipa::path(
    delete,
    path = "/api/v1/tenants/{name}/tokens/{id}",
    tag = "tenants",
    summary = "Revoke a token of a tenant (admin)",
    params(("name" = String, Path, description = "Tenant name"), ("id" = u64, Path, description = "Token id")),
    responses((status = 200, description = "The revoked token", body = Token))
)]
pub async fn admin_revoke_token(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Path((tenant, id)): Path<(String, String)>,
) -> Api<Json<Token>> {
    let id = super::error::number("token id", &id)?;
    Ok(Json(Token::from(&s.tenancy.revoke_token(&tenant, id)?)))
}

/// Creates a token of `tenant`; the response is the only time its secret is shown.
fn issue_token(s: &AppState, tenant: &str, body: &[u8]) -> Api<(StatusCode, Json<TokenCreated>)> {
    let req: NewToken = parse(body)?;
    let (t, secret) = s
        .tenancy
        .create_token(tenant, &req.label, s.engine.clock().now_ms())?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: t.id,
            tenant: t.tenant,
            label: t.label,
            created_ms: t.created_ms,
            token: secret,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tenants",
    summary = "Create a token of the calling tenant",
    request_body(content = NewToken, content_type = "application/json", description = "May be empty"),
    responses((status = 201, description = "The token and its secret (shown only here)", body = TokenCreated))
)]
pub async fn create_token(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Body(body): Body,
) -> Api<(StatusCode, Json<TokenCreated>)> {
    issue_token(&s, &tenant, &body)
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tenants",
    summary = "Tokens of the calling tenant, by id",
    params(super::page::PageQuery),
    responses((status = 200, description = "Tokens of the calling tenant", body = TokenList))
)]
pub async fn list_tokens(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<super::page::PageQuery>,
) -> Api<Json<TokenList>> {
    tokens_page(&s, &tenant, &q)
}

fn tokens_page(s: &AppState, tenant: &str, q: &super::page::PageQuery) -> Api<Json<TokenList>> {
    let (tokens, next) = q.apply(s.tenancy.tokens(tenant)?, |t| t.id)?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(Token::from).collect(),
        next,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tenants",
    summary = "Revoke a token of the calling tenant",
    params(("id" = u64, Path, description = "Token id")),
    responses((status = 200, description = "The revoked token", body = Token))
)]
pub async fn revoke_token(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Api<Json<Token>> {
    let id = super::error::number("token id", &id)?;
    Ok(Json(Token::from(&s.tenancy.revoke_token(&tenant, id)?)))
}

fn quotas_json(s: &AppState, tenant: &str) -> Api<Json<TenantQuotas>> {
    let overrides = s
        .engine
        .store()
        .tenant_get(tenant)
        .map_err(ApiError::internal)?
        .map(|t| t.quotas)
        .unwrap_or_default();
    Ok(Json(TenantQuotas {
        tenant: tenant.to_owned(),
        quotas: QuotaValues::from(s.engine.quotas(tenant).as_ref()),
        overrides: QuotaOverrides::from_stored(&overrides),
        usage: s.engine.usage(tenant)?.into(),
    }))
}

/// The calling tenant's quotas and what it uses of them.
#[utoipa::path(
    get,
    path = "/api/v1/quotas",
    tag = "tenants",
    summary = "The calling tenant's quotas and usage",
    responses((status = 200, description = "The calling tenant's quotas and usage", body = TenantQuotas))
)]
pub async fn own_quotas(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
) -> Api<Json<TenantQuotas>> {
    quotas_json(&s, &tenant)
}

#[utoipa::path(
    get,
    path = "/api/v1/tenants/{name}/quotas",
    tag = "tenants",
    summary = "A tenant's quotas and usage (admin)",
    params(("name" = String, Path, description = "Tenant name")),
    responses((status = 200, description = "A tenant's quotas and usage (admin)", body = TenantQuotas))
)]
pub async fn tenant_quotas(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> Api<Json<TenantQuotas>> {
    if !s.tenancy.tenant_exists(&tenant)? {
        return Err(TenancyError::TenantNotFound(tenant).into());
    }
    quotas_json(&s, &tenant)
}

/// Replaces a tenant's quota overrides: a JSON object of quota name →
/// value; quotas it does not name take the configured defaults.
#[utoipa::path(
    put,
    path = "/api/v1/tenants/{name}/quotas",
    tag = "tenants",
    summary = "Replace a tenant's quota overrides (admin)",
    params(("name" = String, Path, description = "Tenant name")),
    request_body(content = QuotaOverrides, content_type = "application/json"),
    responses((status = 200, description = "The tenant's quotas, overrides and usage now", body = TenantQuotas))
)]
pub async fn set_quotas(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Body(body): Body,
) -> Api<Json<TenantQuotas>> {
    let overrides: crate::quota::Overrides = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected an object of quota name to value: {e}"),
        )
    })?;
    s.engine.set_quotas(&tenant, overrides)?;
    quotas_json(&s, &tenant)
}
