//! Runs, their tasks and attempts, log lines, and what a trigger answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::api_enum;
use crate::store::AttemptRecord;

api_enum! {
    /// `queued` (waiting for a slot), `waiting_upstream` (for windows of
    /// upstream workflows), `running`, then `succeeded`, `failed` or
    /// `cancelled`.
    RunState = crate::run::RunState {
        Queued, WaitingUpstream, Running, Succeeded, Failed, Cancelled,
    }
}

api_enum! {
    /// A task of a run: `pending`, `running`, `retrying` (after a backoff),
    /// then `succeeded`, `failed`, `upstream_failed` (a dependency failed),
    /// `skipped` (not part of this run) or `cancelled`.
    TaskState = crate::run::TaskState {
        Pending, Running, Retrying, Succeeded, Failed, UpstreamFailed, Skipped, Cancelled,
    }
}

api_enum! {
    /// Why a run exists: its schedule, a backfill, a manual run of a window,
    /// or an event (the HTTP trigger).
    Trigger = crate::executor::Trigger { Scheduled, Backfill, Manual, Event }
}

api_enum! {
    /// Why an attempt failed; each limit has its own kind.
    ErrorKind = crate::executor::ErrorKind {
        FuelExhausted, DeadlineExceeded, MemoryLimit, LogLimit, OutputLimit,
        Trap, Task, Host, Cancelled, Quota,
    }
}

api_enum! {
    /// Where a log line came from: the task's log levels or its stdout and
    /// stderr.
    LogSource = crate::executor::LogSource { Trace, Debug, Info, Warn, Error, Stdout, Stderr }
}

api_enum! {
    /// A backfill run's priority: `low` and `normal` draw from the backfill
    /// pool below live runs, `high` goes first.
    Priority = crate::backfill::Priority { Low, Normal, High }
}

/// One task of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskRun {
    pub name: String,
    pub state: TaskState,
    /// Attempts started so far.
    pub attempts: u32,
    /// Failed attempts that count against the retry policy.
    pub failures: u32,
    /// When a `retrying` task becomes `pending` again.
    #[schema(required = true)]
    pub retry_at_ms: Option<i64>,
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// An upstream window a run waits for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamWait {
    pub workflow: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
}

/// One run of a workflow for one window `[window_start_ms, window_end_ms)`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Run {
    pub id: u64,
    pub tenant: String,
    pub workflow: String,
    /// The workflow version this run uses.
    pub version: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub trigger: Trigger,
    pub state: RunState,
    /// In the definition's topological order.
    pub tasks: Vec<TaskRun>,
    /// Upstream windows not yet succeeded, while `waiting_upstream`.
    pub waiting_on: Vec<UpstreamWait>,
    pub created_ms: i64,
    #[schema(required = true)]
    pub started_ms: Option<i64>,
    #[schema(required = true)]
    pub ended_ms: Option<i64>,
    /// The backfill that created this run.
    #[schema(required = true)]
    pub backfill_id: Option<u64>,
    /// A backfill run's priority; live runs have none.
    #[schema(required = true)]
    pub priority: Option<Priority>,
}

impl From<&crate::run::Run> for Run {
    fn from(r: &crate::run::Run) -> Self {
        Run {
            id: r.id,
            tenant: r.tenant.clone(),
            workflow: r.workflow.clone(),
            version: r.version,
            window_start_ms: r.window_start,
            window_end_ms: r.window_end,
            trigger: r.trigger.into(),
            state: r.state.into(),
            tasks: r
                .tasks
                .iter()
                .map(|t| TaskRun {
                    name: t.name.clone(),
                    state: t.state.into(),
                    attempts: t.attempts,
                    failures: t.failures,
                    retry_at_ms: t.retry_at,
                    last_error: t.last_error.clone(),
                })
                .collect(),
            waiting_on: r
                .waiting_on
                .iter()
                .map(|w| UpstreamWait {
                    workflow: w.workflow.clone(),
                    window_start_ms: w.window_start,
                    window_end_ms: w.window_end,
                })
                .collect(),
            created_ms: r.created_ms,
            started_ms: r.started_ms,
            ended_ms: r.ended_ms,
            backfill_id: r.backfill,
            priority: r.priority.map(Into::into),
        }
    }
}

/// One line of an attempt's log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptLogLine {
    /// When the line was written.
    pub at_ms: i64,
    pub source: LogSource,
    pub message: String,
}

api_enum! {
    /// How an outbound HTTP request ended: `ok` (a response arrived),
    /// `denied` (no allowlist pattern allows it), `address_prohibited`
    /// (only refused addresses), `requests_quota`, `concurrency_quota`,
    /// `request_body_size`, `response_body_size`, `connect_timeout`,
    /// `read_timeout`, `total_timeout`, `failed` or `unfinished`.
    HttpOutcome = crate::executor::HttpOutcome {
        Ok, Denied, AddressProhibited, RequestsQuota, ConcurrencyQuota, RequestBodySize,
        ResponseBodySize, ConnectTimeout, ReadTimeout, TotalTimeout, Failed, Unfinished,
    }
}

/// One outbound HTTP request of an attempt (never its path, headers or
/// bodies).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HttpRequest {
    pub method: String,
    /// `host:port`.
    pub host: String,
    /// `null` when no response arrived.
    #[schema(required = true)]
    pub status: Option<u16>,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// A duration in milliseconds, to the end of the response body.
    pub duration_ms: u64,
    pub outcome: HttpOutcome,
    /// Why it failed; `null` when it did not.
    #[schema(required = true)]
    pub error: Option<String>,
}

/// What happened in one attempt of a task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub run_id: u64,
    pub task: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// `null` when the attempt succeeded.
    #[schema(required = true)]
    pub error_kind: Option<ErrorKind>,
    /// The task's summary on success, the error message otherwise.
    pub message: String,
    /// Fuel burned; `null` when a deadline interrupted the guest.
    #[schema(required = true)]
    pub fuel: Option<u64>,
    pub log: Vec<AttemptLogLine>,
    /// Its outbound HTTP requests, in order.
    pub http: Vec<HttpRequest>,
}

impl From<AttemptRecord> for Attempt {
    fn from(a: AttemptRecord) -> Self {
        Attempt {
            log: a
                .log
                .into_iter()
                .map(|l| AttemptLogLine {
                    at_ms: log_instant(a.started_ms, l.at_ms),
                    source: l.source.into(),
                    message: l.message,
                })
                .collect(),
            run_id: a.run_id,
            task: a.task,
            attempt: a.attempt,
            started_ms: a.started_ms,
            ended_ms: a.ended_ms,
            error_kind: a.error_kind.map(Into::into),
            message: a.message,
            fuel: a.fuel,
            http: a
                .http
                .into_iter()
                .map(|r| HttpRequest {
                    method: r.method,
                    host: r.host,
                    status: r.status,
                    bytes_out: r.bytes_out,
                    bytes_in: r.bytes_in,
                    duration_ms: r.ms,
                    outcome: r.outcome.into(),
                    error: r.error,
                })
                .collect(),
        }
    }
}

/// The store keeps a line's offset from the attempt's start; the API shows
/// instants only.
pub fn log_instant(started_ms: i64, offset_ms: u64) -> i64 {
    started_ms.saturating_add(i64::try_from(offset_ms).unwrap_or(i64::MAX))
}

/// A run with its attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    pub run: Run,
    pub attempts: Vec<Attempt>,
    /// An event run's payload (the JSON body of its trigger); `null` for
    /// other runs and events without a body.
    #[schema(required = true)]
    pub payload: Option<Value>,
    /// The object-storage outputs this run committed that are still its
    /// window's current ones, with their checks.
    pub outputs: Vec<super::outputs::OutputBody>,
}

/// An event run's payload as the API shows it: the JSON document it was
/// sent as (the trigger refuses anything else).
pub fn payload(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    // Payloads stored before the trigger checked them may not be JSON.
    Some(
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())),
    )
}

/// A page of a workflow's runs, by window start.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
    /// The `after` of the next page (a window start), `null` on the last.
    #[schema(required = true)]
    pub next: Option<i64>,
}

/// `POST /workflows/{name}/runs`: run the window containing an instant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunWindowRequest {
    /// Any instant inside the window: RFC 3339 or epoch milliseconds.
    pub window: String,
}

/// The event run a trigger started (201) or, for a repeated
/// `Idempotency-Key`, the run it started the first time (200).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Triggered {
    pub run_id: u64,
    /// Where the run is: `/api/v1/runs/{run_id}` (also the `Location`).
    pub url: String,
    pub run: Run,
}

/// One numbered log line of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Its number in the run's log; `after` continues after it.
    pub n: u64,
    pub task: String,
    pub attempt: u32,
    pub at_ms: i64,
    pub source: LogSource,
    pub message: String,
}

/// A page of a run's log lines, in order (task, attempt, line).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunLogs {
    pub run_id: u64,
    pub lines: Vec<LogLine>,
    /// The `after` of the next page, `null` on the last.
    #[schema(required = true)]
    pub next: Option<u64>,
}
