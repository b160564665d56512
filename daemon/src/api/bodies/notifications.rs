//! Notifications: the targets a tenant creates and the delivery log it
//! reads. A target names the connection whose secret signs its payloads;
//! no body ever carries the secret.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_enum;
use crate::notify::RawTarget;
use crate::store::{DeliveryRecord, NotifyTargetRecord};

api_enum! {
    /// `pending` (tried again at `next_attempt_ms`), `delivered` (a 2xx
    /// answer) or `failed` (out of attempts, or its target is gone).
    DeliveryState = crate::store::DeliveryState { Pending, Delivered, Failed }
}

/// A new notification target. Event types: `backfill.ended`,
/// `backfill.paused`, `backfill.stuck`, `run.failed`, `gap.detected`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNotifyTarget {
    pub name: String,
    /// `http(s)://` URL the payloads are POSTed to; it must be within the
    /// tenant's egress allowlist.
    #[schema(example = "https://hooks.example.com/tidemark")]
    pub url: String,
    /// The connection whose secret signs the payloads (HMAC-SHA256).
    pub connection: String,
    /// The connection's secret field that signs; `token` if omitted.
    #[serde(default)]
    pub secret_field: Option<String>,
    #[schema(example = json!(["backfill.ended", "run.failed"]))]
    pub events: Vec<String>,
}

impl From<NewNotifyTarget> for RawTarget {
    fn from(t: NewNotifyTarget) -> Self {
        RawTarget {
            name: t.name,
            url: t.url,
            connection: t.connection,
            secret_field: t.secret_field,
            events: t.events,
        }
    }
}

/// A notification target as shown (the secret stays in its connection).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotifyTarget {
    pub name: String,
    pub url: String,
    pub connection: String,
    pub secret_field: String,
    pub events: Vec<String>,
    pub created_ms: i64,
}

impl From<NotifyTargetRecord> for NotifyTarget {
    fn from(r: NotifyTargetRecord) -> Self {
        NotifyTarget {
            name: r.name,
            url: r.url,
            connection: r.connection,
            secret_field: r.secret_field,
            events: r.events.iter().map(|e| e.as_str().to_owned()).collect(),
            created_ms: r.created_ms,
        }
    }
}

/// A tenant's targets, by name (a tenant has few: one page).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotifyTargetList {
    pub targets: Vec<NotifyTarget>,
    /// Always null: the list is never paged.
    pub next: Option<String>,
}

/// One event sent to one target: its attempts and outcome.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// Grows with creation time; also the payload's `id`.
    pub delivery_id: u64,
    pub target: String,
    /// The URL of the last attempt.
    pub url: String,
    pub event: String,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_ms: Option<i64>,
    /// The last answer's HTTP status; null if the receiver never answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The JSON payload as sent (only when one delivery is asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

impl Delivery {
    pub fn from_record(r: DeliveryRecord, with_payload: bool) -> Self {
        Delivery {
            delivery_id: r.id,
            target: r.target,
            url: r.url,
            event: r.event.as_str().to_owned(),
            state: r.state.into(),
            attempts: r.attempts,
            next_attempt_ms: r.next_attempt_ms,
            last_status: r.last_status,
            last_error: r.last_error,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            payload: with_payload.then(|| serde_json::from_str(&r.body).unwrap_or_default()),
        }
    }
}

/// A page of the delivery log, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
    /// Pass as `before` for the next (older) page; null on the last.
    pub next: Option<u64>,
}
