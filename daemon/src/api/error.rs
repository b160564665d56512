use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::engine::EngineError;

/// An API failure: status, a stable machine code, and a message safe to show.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// Logs the cause; the client only learns that it was internal.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {err}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the daemon's log".into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let (status, code) = match &e {
            EngineError::Definition(_) => (StatusCode::BAD_REQUEST, "invalid_workflow"),
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
            EngineError::WindowBusy { .. } => (StatusCode::CONFLICT, "window_busy"),
            EngineError::NotRetryable { .. }
            | EngineError::AlreadyEnded { .. }
            | EngineError::Transition(_) => (StatusCode::CONFLICT, "invalid_state"),
            EngineError::Store(_) | EngineError::Join(_) => return ApiError::internal(e),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({ "error": { "code": self.code, "message": self.message, "details": {} } });
        (self.status, Json(body)).into_response()
    }
}
