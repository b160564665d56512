//! Backfill endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::{Asker, TenantCaller};
use super::bodies::backfills::{
    BackfillList, BackfillRequest, BackfillStatus, Strip, WindowCursor, WindowList,
};
use super::bodies::plan::DryRun;
use super::error::{json, Body, Path, Query};
use super::{ApiError, AppState};
use crate::backfill::RawBackfillRequest;
use crate::engine::BackfillAction;
use crate::store::WindowState;

type Api<T> = Result<T, ApiError>;

#[utoipa::path(
    post,
    path = "/api/v1/backfills",
    operation_id = "create_backfill",
    tag = "backfills",
    summary = "Create a backfill, or with dry_run return its plan",
    request_body(content = BackfillRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The backfill, started", body = BackfillStatus),
        (status = 200, description = "With `dry_run`: what it would do", body = DryRun),
    )
)]
pub async fn create(
    Asker {
        tenant,
        requested_by,
    }: Asker,
    State(s): State<Arc<AppState>>,
    Body(body): Body,
) -> Api<Response> {
    let req: BackfillRequest = json(&body)?;
    let raw = RawBackfillRequest::from(req);
    check_version(&s, &tenant, &raw)?;
    match s
        .engine
        .create_backfill_by(&tenant, raw, requested_by)
        .await?
    {
        Ok(record) => Ok((
            StatusCode::CREATED,
            Json(BackfillStatus::new(&record, s.engine.clock().now_ms())),
        )
            .into_response()),
        Err(mut plan) => Ok((
            StatusCode::OK,
            Json(DryRun {
                dry_run: true,
                waiting: plan.waiting.take(),
                estimate: std::mem::take(&mut plan.estimate).into(),
                plan: plan.into(),
            }),
        )
            .into_response()),
    }
}

/// A version the workflow does not have is named as such: the engine only
/// says that it found no workflow.
fn check_version(s: &AppState, tenant: &str, raw: &RawBackfillRequest) -> Api<()> {
    let Some(v) = raw.version else {
        return Ok(());
    };
    if s.engine.workflow(tenant, &raw.workflow).is_none() {
        return Ok(()); // the engine's "workflow not found" is right
    }
    let stored = s
        .engine
        .store()
        .workflow_get(tenant, &raw.workflow, Some(v))
        .map_err(ApiError::internal)?;
    match stored {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!(
            "version {v} of workflow {:?} not found",
            raw.workflow
        ))),
    }
}

/// Backfills in id (creation) order, paged; `order=desc` lists the newest
/// first, as an operator's list wants them.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Continue after this backfill id (the `next` of the previous page).
    after: Option<u64>,
    limit: Option<usize>,
    /// `asc` (default, oldest first) or `desc` (newest first).
    #[param(value_type = Option<String>)]
    order: Option<ListOrder>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ListOrder {
    #[default]
    Asc,
    Desc,
}

#[utoipa::path(
    get,
    path = "/api/v1/backfills",
    operation_id = "list_backfills",
    tag = "backfills",
    summary = "Backfills of the tenant",
    params(ListQuery),
    responses((status = 200, description = "Backfills of the tenant", body = BackfillList))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Api<Json<BackfillList>> {
    let now = s.engine.clock().now_ms();
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let mut out = Vec::new();
    let mut next = None;
    let desc = q.order.unwrap_or_default() == ListOrder::Desc;
    let mut all = s
        .engine
        .store()
        .backfills(&tenant)
        .map_err(ApiError::internal)?;
    if desc {
        all.reverse();
    }
    // `after` is the last id of the previous page, in the order asked for.
    let past = |id: u64| q.after.is_none_or(|a| if desc { id < a } else { id > a });
    for b in all.into_iter().filter(|b| past(b.id)) {
        if out.len() == limit {
            next = out.last().map(|v: &BackfillStatus| v.backfill.id);
            break;
        }
        let b = s.engine.backfill(&tenant, b.id)?.unwrap_or(b);
        out.push(BackfillStatus::new(&b, now));
    }
    Ok(Json(BackfillList {
        backfills: out,
        next,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/backfills/{id}",
    operation_id = "get_backfill",
    tag = "backfills",
    summary = "A backfill and its progress",
    params(("id" = u64, Path, description = "Backfill id")),
    responses((status = 200, description = "A backfill and its progress", body = BackfillStatus))
)]
pub async fn get(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<BackfillStatus>> {
    let id = super::error::number("backfill id", &raw)?;
    let b = s
        .engine
        .backfill(&tenant, id)?
        .ok_or_else(|| ApiError::not_found(format!("backfill {id} not found")))?;
    Ok(Json(BackfillStatus::new(&b, s.engine.clock().now_ms())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowsQuery {
    /// Only windows in this state: running, succeeded, failed, skipped or
    /// cancelled.
    #[param(value_type = Option<super::bodies::backfills::WindowState>)]
    state: Option<String>,
    /// Continue after this workflow and window start (from `next`).
    after_workflow: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/backfills/{id}/windows",
    operation_id = "list_backfill_windows",
    tag = "backfills",
    summary = "Windows of a backfill, paged, filtered by state",
    params(("id" = u64, Path, description = "Backfill id"), WindowsQuery),
    responses((status = 200, description = "Windows of a backfill, paged, filtered by state", body = WindowList))
)]
pub async fn windows(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
    Query(q): Query<WindowsQuery>,
) -> Api<Json<WindowList>> {
    let id = super::error::number("backfill id", &raw)?;
    if s.engine.backfill(&tenant, id)?.is_none() {
        return Err(ApiError::not_found(format!("backfill {id} not found")));
    }
    let state = match q.state.as_deref() {
        None => None,
        Some(v) => Some(WindowState::parse(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_argument",
                format!(
                    "state: {v:?} is not one of running, succeeded, failed, skipped, cancelled"
                ),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let mut after = match (&q.after_workflow, q.after) {
        (Some(w), Some(t)) => Some((w.clone(), t)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_argument",
                "after_workflow and after go together",
            ))
        }
    };
    let mut out = Vec::new();
    // Filtering by state scans forward page by page; bounded per request.
    for _ in 0..100 {
        let page = s
            .engine
            .store()
            .backfill_windows(
                &tenant,
                id,
                after.as_ref().map(|(w, t)| (w.as_str(), *t)),
                1000,
            )
            .map_err(ApiError::internal)?;
        let exhausted = page.len() < 1000;
        for w in page {
            after = Some((w.workflow.clone(), w.window_start));
            if state.is_none_or(|st| w.state == st) {
                out.push(w);
                if out.len() == limit {
                    break;
                }
            }
        }
        if out.len() == limit || exhausted {
            break;
        }
    }
    let next = (out.len() == limit)
        .then(|| {
            out.last().map(|w| WindowCursor {
                after_workflow: w.workflow.clone(),
                after: w.window_start,
            })
        })
        .flatten();
    Ok(Json(WindowList {
        windows: out.into_iter().map(Into::into).collect(),
        next,
    }))
}

async fn act(
    tenant: String,
    s: Arc<AppState>,
    raw: String,
    action: BackfillAction,
) -> Api<Json<BackfillStatus>> {
    let id = super::error::number("backfill id", &raw)?;
    let b = s.engine.backfill_action(&tenant, id, action).await?;
    Ok(Json(BackfillStatus::new(&b, s.engine.clock().now_ms())))
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills/{id}/pause",
    operation_id = "pause_backfill",
    tag = "backfills",
    summary = "Pause a backfill",
    params(("id" = u64, Path, description = "Backfill id")),
    responses((status = 200, description = "The backfill and its progress", body = BackfillStatus))
)]
pub async fn pause(
    TenantCaller(t): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<BackfillStatus>> {
    act(t, s, raw, BackfillAction::Pause).await
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills/{id}/resume",
    operation_id = "resume_backfill",
    tag = "backfills",
    summary = "Resume a backfill",
    params(("id" = u64, Path, description = "Backfill id")),
    responses((status = 200, description = "The backfill and its progress", body = BackfillStatus))
)]
pub async fn resume(
    TenantCaller(t): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<BackfillStatus>> {
    act(t, s, raw, BackfillAction::Resume).await
}

/// `?interrupt=true` stops attempts in flight instead of letting them finish.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CancelQuery {
    #[serde(default)]
    pub interrupt: bool,
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills/{id}/cancel",
    operation_id = "cancel_backfill",
    tag = "backfills",
    summary = "Cancel a backfill",
    params(("id" = u64, Path, description = "Backfill id"), CancelQuery),
    responses((status = 200, description = "The backfill and its progress", body = BackfillStatus))
)]
pub async fn cancel(
    TenantCaller(t): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
    Query(q): Query<CancelQuery>,
) -> Api<Json<BackfillStatus>> {
    let action = BackfillAction::Cancel {
        interrupt: q.interrupt,
    };
    act(t, s, raw, action).await
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills/{id}/retry-failed",
    operation_id = "retry_failed_windows",
    tag = "backfills",
    summary = "Re-run the failed windows of an ended backfill",
    params(("id" = u64, Path, description = "Backfill id")),
    responses((status = 200, description = "The backfill and its progress", body = BackfillStatus))
)]
pub async fn retry_failed(
    TenantCaller(t): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<BackfillStatus>> {
    act(t, s, raw, BackfillAction::RetryFailed).await
}

/// Which part of a backfill's state strip to count.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StripQuery {
    /// A workflow of the backfill (default: the one it was started on).
    workflow: Option<String>,
    /// Range of window starts, RFC 3339 or ms (default: the backfill's).
    from: Option<String>,
    to: Option<String>,
    /// Time buckets (1..=4096, default 200): an even split whose inner
    /// edges move to the nearest tile boundary when buckets are wider than
    /// a tile; each bucket carries its own start and end.
    buckets: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/backfills/{id}/strip",
    operation_id = "backfill_strip",
    tag = "backfills",
    summary = "Window states counted in near-equal time buckets (a state strip of any size)",
    params(("id" = u64, Path, description = "Backfill id"), StripQuery),
    responses((status = 200, description = "Counts per state and pending windows for each bucket", body = Strip))
)]
pub async fn strip(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
    Query(q): Query<StripQuery>,
) -> Api<Json<Strip>> {
    let id = super::error::number("backfill id", &raw)?;
    let from = q
        .from
        .as_deref()
        .map(|v| super::instant("from", v))
        .transpose()?;
    let to =
        q.to.as_deref()
            .map(|v| super::instant("to", v))
            .transpose()?;
    let strip = s.engine.backfill_strip(
        &tenant,
        id,
        q.workflow.as_deref(),
        (from, to),
        q.buckets.unwrap_or(200),
    )?;
    Ok(Json(strip.into()))
}
