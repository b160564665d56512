//! The gap and late-data detector: what a workflow's windows lack, and
//! the backfill that repairs it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::auth::{Asker, TenantCaller};
use super::bodies::backfills::BackfillStatus;
use super::bodies::gaps::{GapReport, Repair, RepairRequest};
use super::error::{json, Body, Path, Query};
use super::{ApiError, AppState};
use crate::engine::EngineError;

type Api<T> = Result<T, ApiError>;

/// Which windows to examine.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GapQuery {
    /// First window start, RFC 3339 or ms (default: the workflow's repair
    /// lookback, 7 days unless it sets one, before `until`).
    since: Option<String>,
    /// Window starts before this, RFC 3339 or ms (default and latest: now).
    until: Option<String>,
}

fn range(since: Option<&str>, until: Option<&str>) -> Api<(Option<i64>, Option<i64>)> {
    Ok((
        since.map(|v| super::instant("since", v)).transpose()?,
        until.map(|v| super::instant("until", v)).transpose()?,
    ))
}

/// The head version, so the plan pins what the scan judged.
fn head_version(s: &AppState, tenant: &str, name: &str) -> Api<u32> {
    s.engine
        .workflow(tenant, name)
        .map(|l| l.version)
        .ok_or_else(|| EngineError::WorkflowNotFound(name.to_owned()).into())
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/gaps",
    operation_id = "workflow_gaps",
    tag = "workflows",
    summary = "Windows that are missing, failed or stale, with the plan that repairs them",
    params(("name" = String, Path, description = "Workflow name"), GapQuery),
    responses((status = 200, description = "The gaps, each with its reason, and a dry-run repair plan", body = GapReport))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<GapQuery>,
) -> Api<Json<GapReport>> {
    let (since, until) = range(q.since.as_deref(), q.until.as_deref())?;
    let version = head_version(&s, &tenant, &name)?;
    let report = s.engine.gaps(&tenant, &name, since, until)?;
    Ok(Json(GapReport::new(&report, version)))
}

#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/gaps/repair",
    operation_id = "repair_gaps",
    tag = "workflows",
    summary = "Find the gaps and create the backfill that repairs them (paused with `propose`)",
    params(("name" = String, Path, description = "Workflow name")),
    request_body(content = RepairRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The repair backfill was created", body = Repair),
        (status = 200, description = "Nothing to repair: `backfill` is null", body = Repair),
    )
)]
pub async fn repair(
    Asker {
        tenant,
        requested_by,
    }: Asker,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Api<(StatusCode, Json<Repair>)> {
    let req: RepairRequest = if body.is_empty() {
        RepairRequest::default()
    } else {
        json(&body)?
    };
    let (since, until) = range(req.since.as_deref(), req.until.as_deref())?;
    let version = head_version(&s, &tenant, &name)?;
    let (report, created) = s
        .engine
        .repair_gaps(&tenant, &name, since, until, req.propose, requested_by)
        .await?;
    let now = s.engine.clock().now_ms();
    let status = if created.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Repair {
            report: GapReport::new(&report, version),
            backfill: created.map(|b| BackfillStatus::new(&b, now)),
        }),
    ))
}
