//! Notifications, pure: what a tenant subscribes to and where it is sent.
//!
//! A [`RawTarget`] (what a user sends) is validated into a [`TargetSpec`]:
//! a webhook URL, the connection whose sealed secret signs the payloads,
//! and the [`EventType`]s it subscribes to. Checking the URL against the
//! tenant's egress allowlist and the connection against the store is the
//! engine's job (`engine/notify.rs`); delivering is `engine/deliver.rs`.
//! An [`Event`] becomes one JSON payload per subscribed target
//! ([`payload`]), signed by [`sign`] and retried on the [`backoff`]
//! schedule.

mod sign;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use sign::{sign, signature_header, SIGNATURE_HEADER};

use crate::workflow::check_name;

/// What a target can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A backfill ended: one summary (counts, failed windows with their
    /// first errors, duration against the estimate).
    #[serde(rename = "backfill.ended")]
    BackfillEnded,
    /// A backfill paused itself before passing its budget.
    #[serde(rename = "backfill.paused")]
    BackfillPaused,
    /// A running backfill made no progress for the engine's stuck time.
    #[serde(rename = "backfill.stuck")]
    BackfillStuck,
    /// A live (not backfill) run failed after its retries.
    #[serde(rename = "run.failed")]
    RunFailed,
    /// The gap detector's periodic pass found gaps.
    #[serde(rename = "gap.detected")]
    GapDetected,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::BackfillEnded,
        EventType::BackfillPaused,
        EventType::BackfillStuck,
        EventType::RunFailed,
        EventType::GapDetected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BackfillEnded => "backfill.ended",
            EventType::BackfillPaused => "backfill.paused",
            EventType::BackfillStuck => "backfill.stuck",
            EventType::RunFailed => "run.failed",
            EventType::GapDetected => "gap.detected",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Why a target was refused: the field, and a message that never holds a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TargetError {
    pub field: String,
    pub message: String,
}

impl TargetError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        TargetError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A notification target as a user writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: String,
    /// `http(s)://` URL the payloads are POSTed to.
    pub url: String,
    /// The connection holding the signing secret.
    pub connection: String,
    /// Its secret field; `token` unless given.
    #[serde(default)]
    pub secret_field: Option<String>,
    /// Event types, e.g. `backfill.ended`.
    pub events: Vec<String>,
}

/// A validated target (the URL's allowlist check still to do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    pub url: String,
    pub connection: String,
    pub secret_field: String,
    pub events: Vec<EventType>,
}

/// Longest URL accepted.
const MAX_URL: usize = 2048;

impl RawTarget {
    pub fn validate(&self) -> Result<TargetSpec, TargetError> {
        check_name("name", &self.name).map_err(|e| TargetError::field("name", e.to_string()))?;
        if self.url.len() > MAX_URL {
            return Err(TargetError::field(
                "url",
                format!("longer than {MAX_URL} bytes"),
            ));
        }
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| TargetError::field("url", format!("not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(TargetError::field(
                    "url",
                    "must start with http:// or https://",
                ))
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(TargetError::field("url", "has no host"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // Credentials in a URL would be shown back in every response.
            return Err(TargetError::field(
                "url",
                "must not carry credentials; the signature authenticates the sender",
            ));
        }
        check_name("connection", &self.connection)
            .map_err(|e| TargetError::field("connection", e.to_string()))?;
        let secret_field = self.secret_field.clone().unwrap_or_else(|| "token".into());
        if secret_field.is_empty() {
            return Err(TargetError::field("secret_field", "must not be empty"));
        }
        if self.events.is_empty() {
            return Err(TargetError::field(
                "events",
                "subscribe to at least one event type",
            ));
        }
        let mut events = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            let t = EventType::parse(e).ok_or_else(|| {
                TargetError::field(
                    format!("events[{i}]"),
                    format!(
                        "unknown event type {e:?}; expected one of {}",
                        EventType::ALL.map(EventType::as_str).join(", ")
                    ),
                )
            })?;
            if !events.contains(&t) {
                events.push(t);
            }
        }
        events.sort();
        Ok(TargetSpec {
            name: self.name.clone(),
            url: self.url.clone(),
            connection: self.connection.clone(),
            secret_field,
            events,
        })
    }
}

/// One failed window of a backfill with its first error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedWindow {
    pub workflow: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub run_id: Option<u64>,
    pub error: Option<String>,
}

/// Something that happened, as the engine reports it once it is durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The summary is read from the store by the sender, not the engine.
    BackfillEnded { backfill: u64 },
    BackfillPaused {
        backfill: u64,
        workflow: String,
        reason: String,
    },
    BackfillStuck {
        backfill: u64,
        workflow: String,
        idle_ms: i64,
    },
    RunFailed {
        run_id: u64,
        workflow: String,
        window_start_ms: i64,
        window_end_ms: i64,
        task: Option<String>,
        error: Option<String>,
    },
    GapDetected {
        workflow: String,
        missing: usize,
        failed: usize,
        stale: usize,
        /// The first gaps' window starts, oldest first.
        windows: Vec<i64>,
        /// The repair backfill the detector created, if it did.
        repair_backfill: Option<u64>,
    },
}

impl Event {
    pub fn kind(&self) -> EventType {
        match self {
            Event::BackfillEnded { .. } => EventType::BackfillEnded,
            Event::BackfillPaused { .. } => EventType::BackfillPaused,
            Event::BackfillStuck { .. } => EventType::BackfillStuck,
            Event::RunFailed { .. } => EventType::RunFailed,
            Event::GapDetected { .. } => EventType::GapDetected,
        }
    }
}

/// A backfill's end as a notification tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillSummary {
    pub backfill: u64,
    pub workflow: String,
    pub state: String,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub failed_windows: Vec<FailedWindow>,
    /// More failed windows than listed.
    pub failed_windows_truncated: bool,
    pub duration_ms: Option<i64>,
    /// The estimate's expected wall time, and its range.
    pub estimated_ms: Option<u64>,
    pub estimated_low_ms: Option<u64>,
    pub estimated_high_ms: Option<u64>,
}

/// Failed windows a `backfill.ended` payload lists at most.
pub const MAX_FAILED_WINDOWS: usize = 20;

/// The JSON body of one delivery. `data` is the event's own fields (for a
/// backfill's end, the summary the sender read).
pub fn payload(id: u64, tenant: &str, at_ms: i64, kind: EventType, data: Value) -> Value {
    json!({
        "id": id.to_string(),
        "type": kind.as_str(),
        "tenant": tenant,
        "created_at": crate::schedule::format_utc(at_ms),
        "data": data,
    })
}

/// The event's fields as `data`; `None` for a backfill's end, whose data
/// is its [`BackfillSummary`].
pub fn event_data(e: &Event) -> Option<Value> {
    Some(match e {
        Event::BackfillEnded { .. } => return None,
        Event::BackfillPaused {
            backfill,
            workflow,
            reason,
        } => json!({"backfill": backfill, "workflow": workflow, "reason": reason}),
        Event::BackfillStuck {
            backfill,
            workflow,
            idle_ms,
        } => json!({"backfill": backfill, "workflow": workflow, "idle_ms": idle_ms}),
        Event::RunFailed {
            run_id,
            workflow,
            window_start_ms,
            window_end_ms,
            task,
            error,
        } => json!({
            "run_id": run_id, "workflow": workflow,
            "window_start_ms": window_start_ms, "window_end_ms": window_end_ms,
            "task": task, "error": error,
        }),
        Event::GapDetected {
            workflow,
            missing,
            failed,
            stale,
            windows,
            repair_backfill,
        } => json!({
            "workflow": workflow, "missing": missing, "failed": failed, "stale": stale,
            "windows": windows, "repair_backfill": repair_backfill,
        }),
    })
}

/// How long to wait before attempt `n + 1` after `n` failed attempts:
/// `base × 2^(n-1)`, at most `max`.
pub fn backoff(failed_attempts: u32, base_ms: i64, max_ms: i64) -> i64 {
    let shift = failed_attempts.saturating_sub(1).min(30);
    base_ms.saturating_mul(1i64 << shift).min(max_ms).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str, events: &[&str]) -> RawTarget {
        RawTarget {
            name: "ops".into(),
            url: url.into(),
            connection: "hooks".into(),
            secret_field: None,
            events: events.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn targets_are_validated_with_the_field_named() {
        let ok = raw(
            "https://hooks.example.com/x",
            &["run.failed", "backfill.ended", "run.failed"],
        )
        .validate()
        .unwrap();
        assert_eq!(
            ok.events,
            vec![EventType::BackfillEnded, EventType::RunFailed]
        );
        assert_eq!(ok.secret_field, "token");
        let e = raw("https://h.example.com", &["run.failed", "run.exploded"])
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "events[1]");
        assert!(e.message.contains("run.exploded"), "{e}");
        for bad in [
            "ftp://h.example.com",
            "not a url",
            "https://u:p@h.example.com/",
        ] {
            assert_eq!(
                raw(bad, &["run.failed"]).validate().unwrap_err().field,
                "url",
                "{bad}"
            );
        }
        assert_eq!(
            raw("https://h.example.com", &[])
                .validate()
                .unwrap_err()
                .field,
            "events"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b: Vec<i64> = (1..=6).map(|n| backoff(n, 1000, 10_000)).collect();
        assert_eq!(b, vec![1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(backoff(200, 1000, 60_000), 60_000);
    }

    #[test]
    fn event_types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
    }
}
