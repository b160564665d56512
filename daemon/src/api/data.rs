//! Run logs (paged) and dataset reads: a window's partition, with its keys
//! paged.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;

use super::auth::TenantCaller;
use super::bodies::plugins::{Partition, PartitionEntry};
use super::bodies::runs::{log_instant, LogLine, RunLogs};
use super::error::{Path, Query};
use super::runs::run_id;
use super::{instant, Api, ApiError, AppState};
use crate::workflow::check_name;

const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    task: Option<String>,
    attempt: Option<u32>,
    /// Continue after this line number (from `next`).
    after: Option<u64>,
    limit: Option<usize>,
}

/// The log lines of a run's attempts in order (task, attempt, line),
/// numbered so that `after` continues where a page ended.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/logs",
    operation_id = "run_logs",
    tag = "runs",
    summary = "Log lines of a run, paged",
    params(("id" = u64, Path, description = "Run id"), LogsQuery),
    responses((status = 200, description = "Log lines of a run, paged", body = RunLogs))
)]
pub async fn logs(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Api<Json<RunLogs>> {
    let id = run_id(&id)?;
    if s.engine.run(&tenant, id)?.is_none() {
        return Err(ApiError::not_found(format!("run {id} not found")));
    }
    let limit = q.limit.unwrap_or(200).clamp(1, MAX_PAGE);
    let start = q.after.map_or(0, |a| a.saturating_add(1));
    let mut lines = Vec::new();
    let mut n = 0u64;
    let mut more = false;
    'attempts: for a in s.engine.attempts(&tenant, id)? {
        if q.task.as_deref().is_some_and(|t| t != a.task)
            || q.attempt.is_some_and(|x| x != a.attempt)
        {
            continue;
        }
        for l in a.log {
            if n >= start {
                if lines.len() == limit {
                    more = true;
                    break 'attempts;
                }
                lines.push(LogLine {
                    n,
                    task: a.task.clone(),
                    attempt: a.attempt,
                    at_ms: log_instant(a.started_ms, l.at_ms),
                    source: l.source.into(),
                    message: l.message,
                });
            }
            n += 1;
        }
    }
    let next = more.then(|| lines.last().map(|l| l.n)).flatten();
    Ok(Json(RunLogs {
        run_id: id,
        lines,
        next,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartitionQuery {
    /// Only keys with this prefix.
    prefix: Option<String>,
    /// Continue after this key (from `next`).
    after: Option<String>,
    limit: Option<usize>,
}

/// Entries of one window's partition of a dataset, in key order. Values
/// that are UTF-8 come as `value`, others as `value_base64`.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{dataset}/partitions/{window}",
    operation_id = "get_partition",
    tag = "datasets",
    summary = "A window's partition of a dataset, keys paged",
    params(("dataset" = String, Path, description = "Dataset name"), ("window" = String, Path, description = "Window start, RFC 3339 or ms"), PartitionQuery),
    responses((status = 200, description = "A window's partition of a dataset, keys paged", body = Partition))
)]
pub async fn partition(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path((dataset, window)): Path<(String, String)>,
    Query(q): Query<PartitionQuery>,
) -> Api<Json<Partition>> {
    check_name("dataset", &dataset)
        .map_err(|e| ApiError::bad_request("invalid_argument", e.to_string()))?;
    let start = instant("window", &window)?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let entries = s
        .engine
        .store()
        .dataset_scan(
            &tenant,
            &dataset,
            start..start.saturating_add(1),
            q.prefix.as_deref().unwrap_or(""),
            q.after.as_deref().map(|k| (start, k)),
            limit + 1,
        )
        .map_err(ApiError::internal)?;
    let more = entries.len() > limit;
    let out: Vec<PartitionEntry> = entries
        .into_iter()
        .take(limit)
        .map(|e| match String::from_utf8(e.value) {
            Ok(v) => PartitionEntry {
                key: e.key,
                value: Some(v),
                value_base64: None,
            },
            Err(raw) => PartitionEntry {
                key: e.key,
                value: None,
                value_base64: Some(
                    base64::engine::general_purpose::STANDARD.encode(raw.into_bytes()),
                ),
            },
        })
        .collect();
    let next = more.then(|| out.last().map(|e| e.key.clone())).flatten();
    Ok(Json(Partition {
        dataset,
        window_start_ms: start,
        entries: out,
        next,
    }))
}
