//! Notification endpoints: targets (create, list, delete) and the delivery
//! log (paged newest first, and one delivery with its payload).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::auth::TenantCaller;
use super::bodies::notifications::{
    Delivery, DeliveryList, NewNotifyTarget, NotifyTarget, NotifyTargetList,
};
use super::error::{json, Body, Path, Query};
use super::{Api, AppState};

#[utoipa::path(
    post,
    path = "/api/v1/notifications/targets",
    operation_id = "create_notify_target",
    tag = "notifications",
    summary = "Create a webhook target subscribed to event types",
    request_body(content = NewNotifyTarget, content_type = "application/json"),
    responses((status = 201, description = "The target", body = NotifyTarget))
)]
pub async fn create(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Body(body): Body,
) -> Api<(StatusCode, Json<NotifyTarget>)> {
    let req: NewNotifyTarget = json(&body)?;
    let record = s.engine.create_notify_target(&tenant, &req.into())?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/notifications/targets",
    operation_id = "list_notify_targets",
    tag = "notifications",
    summary = "The tenant's notification targets, by name",
    responses((status = 200, description = "Every target", body = NotifyTargetList))
)]
pub async fn list(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
) -> Api<Json<NotifyTargetList>> {
    let targets = s
        .engine
        .notify_targets(&tenant)?
        .into_iter()
        .map(NotifyTarget::from)
        .collect();
    Ok(Json(NotifyTargetList {
        targets,
        next: None,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/notifications/targets/{name}",
    operation_id = "delete_notify_target",
    tag = "notifications",
    summary = "Delete a target; its pending deliveries fail at their next attempt",
    params(("name" = String, Path, description = "Target name")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Api<StatusCode> {
    s.engine.delete_notify_target(&tenant, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Deliveries older than this id (the `next` of the previous page).
    before: Option<u64>,
    /// At most this many (default 100, at most 500).
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/notifications/deliveries",
    operation_id = "list_deliveries",
    tag = "notifications",
    summary = "The delivery log, newest first: attempts, last status and error",
    params(DeliveriesQuery),
    responses((status = 200, description = "A page of deliveries", body = DeliveryList))
)]
pub async fn deliveries(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Query(q): Query<DeliveriesQuery>,
) -> Api<Json<DeliveryList>> {
    let limit = q
        .limit
        .unwrap_or(100)
        .clamp(1, crate::engine::MAX_DELIVERY_PAGE);
    let list = s.engine.deliveries(&tenant, q.before, limit)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryList {
        deliveries: list
            .into_iter()
            .map(|d| Delivery::from_record(d, false))
            .collect(),
        next,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/notifications/deliveries/{id}",
    operation_id = "get_delivery",
    tag = "notifications",
    summary = "One delivery, with the payload it sends",
    params(("id" = u64, Path, description = "Delivery id")),
    responses((status = 200, description = "The delivery", body = Delivery))
)]
pub async fn delivery(
    TenantCaller(tenant): TenantCaller,
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Api<Json<Delivery>> {
    let id = super::error::number("delivery id", &id)?;
    Ok(Json(Delivery::from_record(
        s.engine.delivery(&tenant, id)?,
        true,
    )))
}
