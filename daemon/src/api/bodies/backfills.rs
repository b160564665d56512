//! Backfills: the request, the backfill with its progress, dry-run plans,
//! windows and the state strip.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_enum;
pub use super::runs::Priority;
use crate::backfill::RawBackfillRequest;
use crate::store::{BackfillRecord, BackfillWindow as StoredWindow};

api_enum! {
    /// `parallel`: up to `parallelism` windows at once; `serial`: one at a
    /// time, in order.
    Mode = crate::backfill::Mode { Parallel, Serial }
}

api_enum! {
    /// Window order: `asc` (oldest first) or `desc`.
    Order = crate::backfill::Order { Asc, Desc }
}

api_enum! {
    /// Which windows run: `missing` (never succeeded), `failed` (ran and
    /// failed) or `all`.
    Rerun = crate::backfill::Rerun { Missing, Failed, All }
}

api_enum! {
    /// A window with another active run: `wait` for it, `skip` the window,
    /// or `cancel_other`.
    Overlap = crate::backfill::Overlap { Wait, Skip, CancelOther }
}

api_enum! {
    /// Also re-run workflows downstream: `none`, `direct` dependents, or
    /// `transitive` (level by level).
    Downstream = crate::backfill::Downstream { None, Direct, Transitive }
}

api_enum! {
    /// `running`, `paused`, then `succeeded` (no window failed), `failed` or
    /// `cancelled`.
    BackfillState = crate::store::BackfillState { Running, Paused, Succeeded, Failed, Cancelled }
}

api_enum! {
    /// What happened to one window of a backfill.
    WindowState = crate::store::WindowState { Running, Succeeded, Failed, Skipped, Cancelled }
}

/// A backfill request: a range (`start`, `end`) or a list of `dates` of a
/// workflow's windows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    #[schema(example = "etl")]
    pub workflow: String,
    /// Range start: an RFC 3339 instant or a date (midnight in the
    /// workflow's zone); with `end`.
    #[serde(default)]
    #[schema(example = "2024-03-01")]
    pub start: Option<String>,
    #[serde(default)]
    #[schema(example = "2024-03-02")]
    pub end: Option<String>,
    /// Dates or instants; each selects the window that contains it.
    #[serde(default)]
    pub dates: Option<Vec<String>>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub parallelism: Option<u32>,
    #[serde(default)]
    pub order: Order,
    #[serde(default)]
    pub rerun: Rerun,
    /// Run each window from this task on (the tasks before it are skipped).
    #[serde(default)]
    pub from_task: Option<String>,
    #[serde(default)]
    pub downstream: Downstream,
    /// Only these downstream workflows may be added by the cascade (and it
    /// passes only through them). Each must be downstream of `workflow`
    /// under `downstream`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downstream_include: Vec<String>,
    /// These downstream workflows are never added, nor is anything reached
    /// only through them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downstream_exclude: Vec<String>,
    /// The workflow version to run (default: the newest).
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub priority: Priority,
    /// Stop starting windows after this many failed.
    #[serde(default)]
    pub max_failed_windows: Option<u32>,
    #[serde(default)]
    pub overlap: Overlap,
    /// Answer with the plan instead of starting.
    #[serde(default)]
    pub dry_run: bool,
    /// Off-peak hours: outside them no new window starts (windows already
    /// started finish); the backfill shows `waiting: off-peak until ...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hours: Option<AllowedHours>,
    /// No window starts before this RFC 3339 instant (must be in the
    /// future).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-12-01T20:00:00Z")]
    pub start_at: Option<String>,
    /// Limits on wall time, fuel and bytes written: the backfill pauses
    /// itself before a window that would pass one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<super::estimates::Budget>,
}

/// Hours in which a backfill may start windows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowedHours {
    /// IANA time zone of the spans.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    /// `[DAYS ]HH:MM-HH:MM`: DAYS a comma list of `Mon`..`Sun` or ranges
    /// (`Mon-Fri`), none for every day; a span ending at or before its
    /// start runs past midnight.
    #[schema(example = json!(["Mon-Fri 20:00-06:00", "Sat,Sun 00:00-24:00"]))]
    pub spans: Vec<String>,
}

impl From<AllowedHours> for crate::backfill::RawCalendar {
    fn from(a: AllowedHours) -> Self {
        crate::backfill::RawCalendar {
            timezone: a.timezone,
            spans: a.spans,
        }
    }
}

impl From<crate::backfill::RawCalendar> for AllowedHours {
    fn from(c: crate::backfill::RawCalendar) -> Self {
        AllowedHours {
            timezone: c.timezone,
            spans: c.spans,
        }
    }
}

macro_rules! default_is_domain_default {
    ($($t:ident),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                <crate::backfill::$t>::default().into()
            }
        }
    )*};
}

default_is_domain_default!(Mode, Order, Rerun, Downstream, Priority, Overlap);

impl From<BackfillRequest> for RawBackfillRequest {
    fn from(r: BackfillRequest) -> Self {
        let BackfillRequest {
            workflow,
            start,
            end,
            dates,
            mode,
            parallelism,
            order,
            rerun,
            from_task,
            downstream,
            downstream_include,
            downstream_exclude,
            version,
            priority,
            max_failed_windows,
            overlap,
            dry_run,
            allowed_hours,
            start_at,
            budget,
        } = r;
        RawBackfillRequest {
            workflow,
            start,
            end,
            dates,
            mode: mode.into(),
            parallelism,
            order: order.into(),
            rerun: rerun.into(),
            from_task,
            downstream: downstream.into(),
            downstream_include,
            downstream_exclude,
            version,
            priority: priority.into(),
            max_failed_windows,
            overlap: overlap.into(),
            dry_run,
            allowed_hours: allowed_hours.map(Into::into),
            start_at,
            budget: budget.map(Into::into),
        }
    }
}

impl From<RawBackfillRequest> for BackfillRequest {
    fn from(r: RawBackfillRequest) -> Self {
        let RawBackfillRequest {
            workflow,
            start,
            end,
            dates,
            mode,
            parallelism,
            order,
            rerun,
            from_task,
            downstream,
            downstream_include,
            downstream_exclude,
            version,
            priority,
            max_failed_windows,
            overlap,
            dry_run,
            allowed_hours,
            start_at,
            budget,
        } = r;
        BackfillRequest {
            workflow,
            start,
            end,
            dates,
            mode: mode.into(),
            parallelism,
            order: order.into(),
            rerun: rerun.into(),
            from_task,
            downstream: downstream.into(),
            downstream_include,
            downstream_exclude,
            version,
            priority: priority.into(),
            max_failed_windows,
            overlap: overlap.into(),
            dry_run,
            allowed_hours: allowed_hours.map(Into::into),
            start_at,
            budget: budget.map(Into::into),
        }
    }
}

/// How far a backfill has produced the windows of its current stage.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MaterializeCursor {
    /// Ascending range: the next window starts at or after `at_ms`.
    From { at_ms: i64 },
    /// Descending range: the next window starts before `at_ms`.
    Before { at_ms: i64 },
    /// Date list: `count` windows produced so far.
    Taken { count: u64 },
    /// Every window of the stage has been produced.
    Done,
}

impl From<crate::backfill::Cursor> for MaterializeCursor {
    fn from(c: crate::backfill::Cursor) -> Self {
        use crate::backfill::Cursor as C;
        match c {
            C::From(at_ms) => MaterializeCursor::From { at_ms },
            C::Before(at_ms) => MaterializeCursor::Before { at_ms },
            C::Taken(n) => MaterializeCursor::Taken { count: n as u64 },
            C::Done => MaterializeCursor::Done,
        }
    }
}

/// One workflow's windows in a backfill's downstream cascade.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stage {
    pub workflow: String,
    pub version: u32,
    /// Window starts, ascending.
    pub window_starts_ms: Vec<i64>,
}

/// A backfill: its request, state and window counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Backfill {
    pub id: u64,
    pub tenant: String,
    pub request: BackfillRequest,
    /// The workflow version its runs use.
    pub version: u32,
    pub state: BackfillState,
    pub cursor: MaterializeCursor,
    /// Windows materialized so far, by state.
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[schema(required = true)]
    pub ended_ms: Option<i64>,
    /// Why no new windows start right now, if so.
    #[schema(required = true)]
    pub throttled: Option<String>,
    /// 0 while running the selected workflow; `n` while running `stages[n-1]`.
    pub stage: u64,
    /// Downstream stages, added as the stages before them finish.
    pub stages: Vec<Stage>,
    /// Windows of the selected workflow (estimated for a range).
    #[schema(required = true)]
    pub estimated_total: Option<u64>,
    /// Why it is paused: `paused on request`, or the budget it would pass
    /// (`budget: ...`); `null` unless paused.
    #[schema(required = true)]
    pub pause_reason: Option<String>,
    /// A resume after a budget pause lifted its budget.
    pub budget_lifted: bool,
    /// Set when it repairs gaps: who made it and how many windows; each
    /// run's `why` names its window's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_repair: Option<super::gaps::RepairOrigin>,
}

/// Derived progress of a backfill.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// Windows that ended (succeeded, failed, skipped or cancelled).
    pub done: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub windows_per_second: f64,
    #[schema(required = true)]
    pub estimated_total: Option<u64>,
    /// Estimated seconds left (a duration); `null` when unknown or ended.
    #[schema(required = true)]
    pub eta_seconds: Option<f64>,
    /// Every window of every stage has been produced.
    pub all_materialized: bool,
    #[schema(required = true)]
    pub throttled: Option<String>,
}

/// A backfill and its progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackfillStatus {
    pub backfill: Backfill,
    pub progress: Progress,
    /// What it was estimated to cost when created; `null` for backfills
    /// created before estimates existed.
    #[schema(required = true)]
    pub estimate: Option<super::estimates::EstimateTotals>,
    /// The same estimate per workflow, each task's figures with the basis
    /// they rest on (level and samples); empty when `estimate` is `null`.
    pub estimate_workflows: Vec<super::estimates::WorkflowEstimate>,
    /// What it has spent so far.
    pub actual: super::estimates::Spent,
}

impl BackfillStatus {
    pub fn new(b: &BackfillRecord, now_ms: i64) -> Self {
        let done = b.succeeded + b.failed + b.skipped + b.cancelled;
        let elapsed_s = ((b.ended_ms.unwrap_or(now_ms) - b.created_ms).max(1)) as f64 / 1000.0;
        let progress = Progress {
            done,
            running: b.running,
            succeeded: b.succeeded,
            failed: b.failed,
            skipped: b.skipped,
            cancelled: b.cancelled,
            windows_per_second: done as f64 / elapsed_s,
            estimated_total: b.estimated_total,
            eta_seconds: b
                .estimated_total
                .filter(|_| done > 0 && b.ended_ms.is_none())
                .map(|t| t.saturating_sub(done) as f64 * elapsed_s / done as f64),
            all_materialized: b.cursor == crate::backfill::Cursor::Done,
            throttled: b.throttled.clone(),
        };
        let backfill = Backfill {
            id: b.id,
            tenant: b.tenant.clone(),
            request: b.request.clone().into(),
            version: b.version,
            state: b.state.into(),
            cursor: b.cursor.into(),
            running: b.running,
            succeeded: b.succeeded,
            failed: b.failed,
            skipped: b.skipped,
            cancelled: b.cancelled,
            created_ms: b.created_ms,
            updated_ms: b.updated_ms,
            ended_ms: b.ended_ms,
            throttled: b.throttled.clone(),
            stage: b.stage as u64,
            stages: b
                .stages
                .iter()
                .map(|s| Stage {
                    workflow: s.workflow.clone(),
                    version: s.version,
                    window_starts_ms: s.windows.clone(),
                })
                .collect(),
            estimated_total: b.estimated_total,
            pause_reason: b
                .pause_reason
                .clone()
                .filter(|_| b.state == crate::store::BackfillState::Paused),
            budget_lifted: b.budget_lifted,
            gap_repair: b.repair.as_ref().map(Into::into),
        };
        BackfillStatus {
            backfill,
            progress,
            estimate: b.estimate.as_ref().map(|e| e.total.into()),
            estimate_workflows: b
                .estimate
                .iter()
                .flat_map(|e| e.workflows.iter().cloned().map(Into::into))
                .collect(),
            actual: super::estimates::Spent::new(b, now_ms),
        }
    }
}

/// A page of backfills.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackfillList {
    pub backfills: Vec<BackfillStatus>,
    /// The `after` of the next page (a backfill id), `null` on the last.
    #[schema(required = true)]
    pub next: Option<u64>,
}

/// One window of a backfill: what happened to it and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackfillWindow {
    pub backfill_id: u64,
    pub workflow: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub state: WindowState,
    #[schema(required = true)]
    pub run_id: Option<u64>,
    /// Why it ran or was skipped, or the error it failed with.
    pub reason: String,
}

impl From<StoredWindow> for BackfillWindow {
    fn from(w: StoredWindow) -> Self {
        BackfillWindow {
            backfill_id: w.backfill,
            workflow: w.workflow,
            window_start_ms: w.window_start,
            window_end_ms: w.window_end,
            state: w.state.into(),
            run_id: w.run_id,
            reason: w.reason,
        }
    }
}

/// Where the next page of windows starts: pass both back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WindowCursor {
    pub after_workflow: String,
    /// A window start (epoch milliseconds).
    pub after: i64,
}

/// A page of a backfill's windows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WindowList {
    pub windows: Vec<BackfillWindow>,
    #[schema(required = true)]
    pub next: Option<WindowCursor>,
}

/// Window states of one time bucket of a strip.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StripBucket {
    pub start_ms: i64,
    pub end_ms: i64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    /// Windows not started yet (estimated for a range).
    pub pending: u64,
}

/// A backfill's windows of one workflow counted by state in time buckets
/// over `[from_ms, to_ms)`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Strip {
    pub workflow: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub buckets: Vec<StripBucket>,
}

impl From<crate::engine::Strip> for Strip {
    fn from(s: crate::engine::Strip) -> Self {
        Strip {
            workflow: s.workflow,
            from_ms: s.from,
            to_ms: s.to,
            buckets: s
                .buckets
                .into_iter()
                .map(|b| StripBucket {
                    start_ms: b.start,
                    end_ms: b.end,
                    running: b.counts.running,
                    succeeded: b.counts.succeeded,
                    failed: b.counts.failed,
                    skipped: b.counts.skipped,
                    cancelled: b.counts.cancelled,
                    pending: b.pending,
                })
                .collect(),
        }
    }
}
