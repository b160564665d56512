//! Backfill endpoints.

use std::sync::Arc;

use super::error::Query;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::TenantCaller;
use super::{ApiError, AppState};
use crate::backfill::RawBackfillRequest;
use crate::engine::BackfillAction;
use crate::store::{BackfillRecord, WindowState};

type Api<T> = Result<T, ApiError>;

/// The record plus derived progress: windows done, rate.
fn progress(b: &BackfillRecord, now: i64) -> Value {
    let done = b.succeeded + b.failed + b.skipped + b.cancelled;
    let elapsed_s = ((b.ended_ms.unwrap_or(now) - b.created_ms).max(1)) as f64 / 1000.0;
    json!({
        "backfill": b,
        "progress": {
            "done": done,
            "running": b.running,
            "succeeded": b.succeeded,
            "failed": b.failed,
            "skipped": b.skipped,
            "cancelled": b.cancelled,
            "windows_per_second": done as f64 / elapsed_s,
            "estimated_total": b.estimated_total,
            "eta_seconds": b
                .estimated_total
                .filter(|_| done > 0 && b.ended_ms.is_none())
                .map(|t| t.saturating_sub(done) as f64 * elapsed_s / done as f64),
            "all_materialized": b.cursor == crate::backfill::Cursor::Done,
            "throttled": b.throttled,
        }
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills",
    tag = "backfills",
    summary = "Create a backfill, or with dry_run return its plan",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 201, description = "Create a backfill, or with dry_run return its plan", body = serde_json::Value))
)]
pub async fn create(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    body: Bytes,
) -> Api<(StatusCode, Json<Value>)> {
    let raw: RawBackfillRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    match s.engine.create_backfill(&tenant, raw).await? {
        Ok(record) => Ok((
            StatusCode::CREATED,
            Json(progress(&record, s.engine.clock().now_ms())),
        )),
        Err(plan) => Ok((
            StatusCode::OK,
            Json(json!({ "dry_run": true, "plan": plan })),
        )),
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
    tag = "backfills",
    summary = "Backfills of the tenant",
    params(ListQuery),
    responses((status = 200, description = "Backfills of the tenant", body = serde_json::Value))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> Api<Json<Value>> {
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
            next = out
                .last()
                .and_then(|v: &Value| v["backfill"]["id"].as_u64());
            break;
        }
        let b = s.engine.backfill(&tenant, b.id)?.unwrap_or(b);
        out.push(progress(&b, now));
    }
    Ok(Json(json!({ "backfills": out, "next": next })))
}

#[utoipa::path(
    get,
    path = "/api/v1/backfills/{id}",
    tag = "backfills",
    summary = "A backfill and its progress",
    params(("id" = String, Path, description = "A numeric id")),
    responses((status = 200, description = "A backfill and its progress", body = serde_json::Value))
)]
pub async fn get(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<Value>> {
    let id = super::error::number("backfill id", &raw)?;
    let b = s
        .engine
        .backfill(&tenant, id)?
        .ok_or_else(|| ApiError::not_found(format!("backfill {id} not found")))?;
    Ok(Json(progress(&b, s.engine.clock().now_ms())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowsQuery {
    state: Option<String>,
    /// Continue after this workflow and window start (from `next`).
    after_workflow: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/backfills/{id}/windows",
    tag = "backfills",
    summary = "Windows of a backfill, paged, filtered by state",
    params(("id" = String, Path, description = "A numeric id"), WindowsQuery),
    responses((status = 200, description = "Windows of a backfill, paged, filtered by state", body = serde_json::Value))
)]
pub async fn windows(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
    Query(q): Query<WindowsQuery>,
) -> Api<Json<Value>> {
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
            out.last()
                .map(|w| json!({ "after_workflow": w.workflow, "after": w.window_start }))
        })
        .flatten();
    Ok(Json(json!({ "windows": out, "next": next })))
}

async fn act(
    tenant: String,
    s: Arc<AppState>,
    raw: String,
    action: BackfillAction,
) -> Api<Json<Value>> {
    let id = super::error::number("backfill id", &raw)?;
    let b = s.engine.backfill_action(&tenant, id, action).await?;
    Ok(Json(progress(&b, s.engine.clock().now_ms())))
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills/{id}/pause",
    tag = "backfills",
    summary = "Pause a backfill",
    params(("id" = String, Path, description = "A numeric id")),
    responses((status = 200, description = "Pause a backfill", body = serde_json::Value))
)]
pub async fn pause(
    TenantCaller(t): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<Value>> {
    act(t, s, raw, BackfillAction::Pause).await
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills/{id}/resume",
    tag = "backfills",
    summary = "Resume a backfill",
    params(("id" = String, Path, description = "A numeric id")),
    responses((status = 200, description = "Resume a backfill", body = serde_json::Value))
)]
pub async fn resume(
    TenantCaller(t): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<Value>> {
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
    tag = "backfills",
    summary = "Cancel a backfill",
    params(("id" = String, Path, description = "A numeric id"), CancelQuery),
    responses((status = 200, description = "Cancel a backfill", body = serde_json::Value))
)]
pub async fn cancel(
    TenantCaller(t): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
    Query(q): Query<CancelQuery>,
) -> Api<Json<Value>> {
    let action = BackfillAction::Cancel {
        interrupt: q.interrupt,
    };
    act(t, s, raw, action).await
}

#[utoipa::path(
    post,
    path = "/api/v1/backfills/{id}/retry-failed",
    tag = "backfills",
    summary = "Re-run the failed windows of an ended backfill",
    params(("id" = String, Path, description = "A numeric id")),
    responses((status = 200, description = "Re-run the failed windows of an ended backfill", body = serde_json::Value))
)]
pub async fn retry_failed(
    TenantCaller(t): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
) -> Api<Json<Value>> {
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
    tag = "backfills",
    summary = "Window states counted in near-equal time buckets (a state strip of any size)",
    params(("id" = String, Path, description = "A numeric id"), StripQuery),
    responses((status = 200, description = "Counts per state and pending windows for each bucket", body = serde_json::Value))
)]
pub async fn strip(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(raw): Path<String>,
    Query(q): Query<StripQuery>,
) -> Api<Json<Value>> {
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
    Ok(Json(json!(strip)))
}
