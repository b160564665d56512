//! The nodes sharing the store (admin).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::auth::AdminCaller;
use super::bodies::nodes::NodeList;
use super::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    tag = "cluster",
    summary = "The daemons sharing this store: heartbeat, leases, attempts (admin)",
    responses((status = 200, description = "Every node, and which one leads", body = NodeList))
)]
pub async fn list(
    _: AdminCaller,
    State(s): State<Arc<AppState>>,
) -> Result<Json<NodeList>, ApiError> {
    let status = s
        .membership
        .status(s.engine.in_flight())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(status.into()))
}
