//! Provenance endpoints: why a run exists, and what changed between two
//! runs of one window.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::auth::TenantCaller;
use super::bodies::provenance::{RunComparison, RunWhy};
use super::error::Path;
use super::runs::run_id;
use super::{Api, AppState};

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
