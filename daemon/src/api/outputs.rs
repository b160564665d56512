//! Object-storage outputs: what each window published, and the check that
//! the object store still holds exactly that.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::auth::TenantCaller;
use super::bodies::outputs::{OutputList, Verification};
use super::error::{Path, Query};
use super::{ApiError, AppState};

type Api<T> = Result<T, ApiError>;

/// Which windows' outputs to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    /// First window start, RFC 3339 or ms (default: the beginning).
    from: Option<String>,
    /// Window starts before this (default: the end of time).
    to: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/outputs",
    operation_id = "list_outputs",
    tag = "workflows",
    summary = "Committed object-storage outputs of a workflow's windows",
    params(("name" = String, Path, description = "Workflow name"), OutputQuery),
    responses((status = 200, description = "Outputs by window, task and connection", body = OutputList))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<OutputQuery>,
) -> Api<Json<OutputList>> {
    let from = q
        .from
        .as_deref()
        .map(|v| super::instant("from", v))
        .transpose()?
        .unwrap_or(i64::MIN);
    let to =
        q.to.as_deref()
            .map(|v| super::instant("to", v))
            .transpose()?
            .unwrap_or(i64::MAX);
    if s.engine.workflow(&tenant, &name).is_none() {
        return Err(crate::engine::EngineError::WorkflowNotFound(name).into());
    }
    let outputs = s.engine.outputs(&tenant, &name, from, to)?;
    Ok(Json(OutputList {
        outputs: outputs.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills/{id}/verify",
    operation_id = "verify_backfill",
    tag = "backfills",
    summary = "Re-read every published output of a backfill's windows and compare it with what was committed",
    params(("id" = u64, Path, description = "Backfill id")),
    responses((status = 200, description = "One check per output: consistent, or what is missing, altered or extra", body = Verification))
)]
pub async fn verify(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<Verification>> {
    let id = super::error::number("backfill id", &raw)?;
    let v = s.engine.verify_backfill(&tenant, id).await?;
    Ok(Json(v.into()))
}
