//! Run endpoints: list a workflow's runs, run a window now, the HTTP
//! trigger, one run with its attempts, why it exists and what changed
//! against another run of its window, retry and cancel.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

use super::auth::{Asker, TenantCaller};
use super::bodies::provenance::{RunComparison, RunWhy};
use super::bodies::runs::{Attempt, Run, RunDetail, RunList, RunWindowRequest, Triggered};
use super::error::{json, Body, Path, Query};
use super::{instant, Api, ApiError, AppState};
use crate::executor::Trigger;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Window starts from this instant (RFC 3339 or epoch milliseconds).
    from: Option<String>,
    /// Window starts before this instant (RFC 3339 or epoch milliseconds).
    to: Option<String>,
    limit: Option<usize>,
    /// Only runs in this state.
    #[param(value_type = Option<super::bodies::runs::RunState>)]
    state: Option<String>,
    /// Continue after this window start (the `next` of the previous page).
    after: Option<i64>,
}

pub(crate) fn run_id(id: &str) -> Api<u64> {
    super::error::number("run id", id)
}

#[utoipa::path(
    get,
    path = "/api/v1/workflows/{name}/runs",
    operation_id = "list_runs",
    tag = "runs",
    summary = "Runs of a workflow by window range and state",
    params(("name" = String, Path, description = "Workflow name"), RunsQuery),
    responses((status = 200, description = "A page of runs, by window start", body = RunList))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Api<Json<RunList>> {
    let tenant = tenant.as_str();
    if s.engine.workflow(tenant, &name).is_none() {
        return Err(ApiError::not_found(format!("workflow {name:?} not found")));
    }
    let from = q
        .from
        .as_deref()
        .map(|v| instant("from", v))
        .transpose()?
        .unwrap_or(i64::MIN)
        .max(q.after.map_or(i64::MIN, |a| a.saturating_add(1)));
    let to =
        q.to.as_deref()
            .map(|v| instant("to", v))
            .transpose()?
            .unwrap_or(i64::MAX);
    let state = match q.state.as_deref() {
        None => None,
        Some(v) => Some(crate::run::RunState::parse(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_argument",
                format!("state: {v:?} is not a run state"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let mut runs: Vec<_> = s
        .engine
        .runs_of(tenant, &name, from, to, usize::MAX)?
        .into_iter()
        .filter(|r| state.is_none_or(|st| r.state == st))
        .take(limit + 1)
        .collect();
    let next = (runs.len() > limit)
        .then(|| {
            runs.truncate(limit);
            runs.last().map(|r| r.window_start)
        })
        .flatten();
    Ok(Json(RunList {
        runs: runs.iter().map(Run::from).collect(),
        next,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/runs",
    operation_id = "run_window",
    tag = "runs",
    summary = "Run the window containing an instant now",
    params(("name" = String, Path, description = "Workflow name")),
    request_body(content = RunWindowRequest, content_type = "application/json"),
    responses((status = 201, description = "The run it started", body = Run))
)]
pub async fn run_window(
    Asker {
        tenant,
        requested_by,
    }: Asker,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Api<(StatusCode, Json<Run>)> {
    s.engine.take_trigger(&tenant)?;
    let req: RunWindowRequest = json(&body)?;
    let at = instant("window", &req.window)?;
    let run = s
        .engine
        .run_window_by(&tenant, &name, at, Trigger::Manual, requested_by)
        .await?;
    Ok((StatusCode::CREATED, Json(Run::from(&run))))
}

#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    operation_id = "get_run",
    tag = "runs",
    summary = "A run with its task attempts",
    params(("id" = u64, Path, description = "Run id")),
    responses((status = 200, description = "A run with its task attempts", body = RunDetail))
)]
pub async fn get(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Api<Json<RunDetail>> {
    let id = run_id(&id)?;
    let tenant = tenant.as_str();
    let run = s
        .engine
        .run(tenant, id)?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
    let attempts = s.engine.attempts(tenant, id)?;
    let outputs = s.engine.run_outputs(tenant, &run)?;
    Ok(Json(RunDetail {
        outputs: outputs.into_iter().map(Into::into).collect(),
        payload: super::bodies::runs::payload(&run.payload),
        run: Run::from(&run),
        attempts: attempts.into_iter().map(Attempt::from).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/retry",
    operation_id = "retry_run",
    tag = "runs",
    summary = "Re-run a failed or cancelled run from its failed tasks (who asked is recorded)",
    params(("id" = u64, Path, description = "Run id")),
    responses((status = 200, description = "The run, queued again", body = Run))
)]
pub async fn retry(
    Asker {
        tenant,
        requested_by,
    }: Asker,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Api<Json<Run>> {
    let id = run_id(&id)?;
    let run = s.engine.retry_run_by(&tenant, id, requested_by).await?;
    Ok(Json(Run::from(&run)))
}

#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    operation_id = "cancel_run",
    tag = "runs",
    summary = "Cancel a run (interrupt=true also stops attempts in flight)",
    params(("id" = u64, Path, description = "Run id"), super::backfills::CancelQuery),
    responses((status = 200, description = "The run", body = Run))
)]
pub async fn cancel(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<super::backfills::CancelQuery>,
) -> Api<Json<Run>> {
    let id = run_id(&id)?;
    let run = s.engine.cancel_run_with(&tenant, id, q.interrupt).await?;
    Ok(Json(Run::from(&run)))
}

/// Whether a trigger's `Content-Type` declares JSON (`application/json` or
/// any `+json` type); none at all is taken as JSON too.
fn declares_json(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(v) = v.to_str() else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Starts an event run whose tasks get the body (a JSON document, or
/// nothing) as payload. The `Idempotency-Key` header makes retries safe:
/// the same key answers with the same run (200 and `Idempotent-Replayed:
/// true`) instead of a new one.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/trigger",
    operation_id = "trigger",
    tag = "runs",
    summary = "Start an event run with a JSON payload (Idempotency-Key makes retries safe)",
    description = "The body is the payload: any JSON document, sent as `application/json`, or empty. Other content types are refused with 415, a body that is not UTF-8 JSON with 400.",
    params(("name" = String, Path, description = "Workflow name"), ("Idempotency-Key" = Option<String>, Header, description = "Same key, same run (1-255 visible ASCII characters)")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "Any JSON document"),
    responses(
        (status = 201, description = "The event run it started", body = Triggered,
            headers(("Location" = String, description = "The run's URL"))),
        (status = 200, description = "The run this Idempotency-Key started before", body = Triggered,
            headers(("Location" = String, description = "The run's URL"), ("Idempotent-Replayed" = String, description = "`true`"))),
    )
)]
pub async fn trigger(
    Asker {
        tenant,
        requested_by,
    }: Asker,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Api<(StatusCode, HeaderMap, Json<Triggered>)> {
    s.engine.take_trigger(&tenant)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().map_err(|e| {
                ApiError::bad_request("invalid_header", format!("Idempotency-Key: {e}"))
            })?;
            crate::engine::check_idempotency_key(k)
                .map_err(|m| ApiError::bad_request("invalid_header", m))?;
            Some(k.to_owned())
        }
    };
    if !body.is_empty() {
        if !declares_json(&headers) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the payload must be JSON: send it as Content-Type: application/json",
            ));
        }
        // UTF-8 first: serde_json skips the bytes of strings it does not
        // keep without checking them.
        let text = std::str::from_utf8(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the payload is not UTF-8: {e}"))
        })?;
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the payload is not JSON: {e}"))
        })?;
    }
    let t = s
        .engine
        .trigger_by(&tenant, &name, body.to_vec(), key.as_deref(), requested_by)
        .await?;
    let mut out = HeaderMap::new();
    let url = format!("/api/v1/runs/{}", t.run.id);
    if let Ok(v) = url.parse() {
        out.insert(axum::http::header::LOCATION, v);
    }
    let status = if t.created {
        StatusCode::CREATED
    } else {
        out.insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
        StatusCode::OK
    };
    Ok((
        status,
        out,
        Json(Triggered {
            run_id: t.run.id,
            url,
            run: Run::from(&t.run),
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/why",
    operation_id = "run_why",
    tag = "runs",
    summary = "Why a run exists: its cause, who asked, its version, plugin digests and what it read",
    params(("id" = u64, Path, description = "Run id")),
    responses((status = 200, description = "The run's provenance", body = RunWhy))
)]
pub async fn why(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Api<Json<RunWhy>> {
    let id = run_id(&id)?;
    Ok(Json(RunWhy::from(&s.engine.why(&tenant, id)?)))
}

#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/compare/{other}",
    operation_id = "compare_runs",
    tag = "runs",
    summary = "What changed between two runs of one window",
    description = "Version, cause, who asked, task params, plugin digests, upstream runs and dataset partitions read. Runs of different workflows or windows are refused with 400 `not_comparable`.",
    params(
        ("id" = u64, Path, description = "Run id"),
        ("other" = u64, Path, description = "The run to compare it with"),
    ),
    responses((status = 200, description = "Both runs' provenance and their differences", body = RunComparison))
)]
pub async fn compare(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path((id, other)): Path<(String, String)>,
) -> Api<Json<RunComparison>> {
    let (id, other) = (run_id(&id)?, run_id(&other)?);
    let (a, b, cmp) = s.engine.compare_runs(&tenant, id, other)?;
    Ok(Json(RunComparison::new(&a, &b, &cmp)))
}
