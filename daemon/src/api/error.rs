use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::engine::EngineError;
use crate::quota::QuotaError;

/// An API failure: status, a stable machine code, and a message safe to show.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Machine-readable specifics (e.g. which quota, its limit).
    pub details: Value,
    /// Seconds, sent as `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Logs the cause; the client only learns that it was internal.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {err}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the daemon's log",
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let (status, code) = match &e {
            EngineError::Definition(_) => (StatusCode::BAD_REQUEST, "invalid_workflow"),
            // The compiler child failing to start is the daemon's fault, not
            // the upload's.
            EngineError::Plugin(crate::executor::PluginError::Compiler { .. }) => {
                return ApiError::internal(e)
            }
            EngineError::Plugin(_) => (StatusCode::BAD_REQUEST, "invalid_plugin"),
            EngineError::WorkflowNotFound(_)
            | EngineError::RunNotFound(_)
            | EngineError::BackfillNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::Backfill(_) => (StatusCode::BAD_REQUEST, "invalid_backfill"),
            EngineError::BackfillEnded { .. } | EngineError::BackfillActive { .. } => {
                (StatusCode::CONFLICT, "invalid_state")
            }
            EngineError::Unsupported(_) => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
            EngineError::NoWindow { .. } => (StatusCode::BAD_REQUEST, "no_window"),
            EngineError::NotComparable { .. } => (StatusCode::BAD_REQUEST, "not_comparable"),
            EngineError::GapRange(_) => (StatusCode::BAD_REQUEST, "invalid_range"),
            EngineError::WindowBusy { .. } => (StatusCode::CONFLICT, "window_busy"),
            EngineError::NotRetryable { .. }
            | EngineError::AlreadyEnded { .. }
            | EngineError::Transition(_) => (StatusCode::CONFLICT, "invalid_state"),
            EngineError::Quota(q) => return q.clone().into(),
            EngineError::TenantNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::Connection(c) => {
                use crate::engine::ConnectionOpError as C;
                match c {
                    C::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_connection"),
                    C::Exists(_) => (StatusCode::CONFLICT, "exists"),
                    C::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                    C::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
                    C::InUse { .. } | C::SignsTargets { .. } => (StatusCode::CONFLICT, "in_use"),
                    C::Secrets(_) => return ApiError::internal(e),
                }
            }
            EngineError::Notify(n) => {
                use crate::engine::NotifyOpError as N;
                match n {
                    N::Invalid(t) => {
                        let mut err = ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_notification_target",
                            e.to_string(),
                        );
                        err.details = json!({ "field": t.field });
                        return err;
                    }
                    N::Exists(_) => (StatusCode::CONFLICT, "exists"),
                    N::NotFound(_) | N::DeliveryNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                }
            }
            EngineError::InUse(_) => (StatusCode::CONFLICT, "in_use"),
            EngineError::Blob(crate::blob::BlobError::Setup { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "connection_unusable")
            }
            // The object store, not the daemon, failed or refused.
            EngineError::Blob(_) => (StatusCode::BAD_GATEWAY, "object_store"),
            EngineError::PluginNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            EngineError::Store(_) | EngineError::Join(_) | EngineError::StoreFailed { .. } => {
                return ApiError::internal(e)
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<QuotaError> for ApiError {
    fn from(e: QuotaError) -> Self {
        let message = e.to_string();
        match e {
            QuotaError::Exceeded { quota, limit, .. } => {
                // An upload too large is 413 like any oversized body.
                let status = if quota == "plugin_bytes" {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::FORBIDDEN
                };
                let mut err = ApiError::new(status, "quota_exceeded", message);
                err.details = json!({ "quota": quota, "limit": limit });
                err
            }
            QuotaError::RateLimited {
                limit,
                retry_after_s,
            } => {
                let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                err.details = json!({ "quota": "triggers_per_minute", "limit": limit });
                err.retry_after = Some(retry_after_s);
                err
            }
            QuotaError::Invalid { quota, .. } => {
                let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_quota", message);
                err.details = json!({ "quota": quota });
                err
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        resp
    }
}

/// `axum::extract::Query` whose rejection is an [`ApiError`] in the one
/// error shape (axum's own answers in plain text).
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// The request body, whose rejections (over the size limit, unreadable)
/// answer in the one error shape: axum's own answer in plain text.
pub struct Body(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                let status = e.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        status,
                        "body_too_large",
                        "the request body is larger than this endpoint accepts",
                    )
                } else {
                    ApiError::new(status, "invalid_body", e.body_text())
                }
            })
    }
}

/// `axum::extract::Path` whose rejection (say, a segment that is not
/// UTF-8 once decoded) is an [`ApiError`] in the one error shape.
pub struct Path<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::new(e.status(), "invalid_path", e.body_text()))
    }
}

/// A JSON body parsed into `T`; the 400 names what is wrong.
pub fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
}

/// A number from a path segment; `what` names it in the 400 answer.
pub fn number<T>(what: &str, raw: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    raw.parse().map_err(|e| {
        ApiError::bad_request(
            "invalid_argument",
            format!("{what} {raw:?} is not a number ({e})"),
        )
    })
}
