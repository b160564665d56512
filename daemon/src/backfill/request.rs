//! The backfill request, raw (JSON / CLI) and validated.

use serde::{Deserialize, Serialize};

use crate::schedule;
use crate::workflow::WorkflowDef;

pub const MAX_DATES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Up to `parallelism` windows at once.
    #[default]
    Parallel,
    /// One window at a time, in order.
    Serial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// Which windows of the selection run.
///
/// The default is `missing`: windows that never succeeded (never ran, or
/// whose latest run failed). Re-running windows that succeeded costs work
/// and replaces data, so it must be asked for (`all`); `failed` repairs only
/// windows that ran and failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rerun {
    #[default]
    Missing,
    Failed,
    All,
}

/// Against live runs: `low` (default) and `normal` draw from the backfill
/// pool below live runs; `high` is an urgent repair that goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Low,
    Normal,
    High,
}

/// What a backfill does with a window that has another active run (live,
/// manual or another backfill's). A window never has two active runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Wait for the other run to end, then decide (default: nothing lost,
    /// nothing run twice at once).
    #[default]
    Wait,
    /// Leave the window out (recorded as skipped, with the reason).
    Skip,
    /// Cancel the other run (its attempts in flight finish), then run.
    CancelOther,
}

/// A backfill request as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackfillRequest {
    pub workflow: String,
    /// Range start (instant or date in the workflow's zone); with `end`.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
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
    #[serde(default)]
    pub from_task: Option<String>,
    #[serde(default)]
    pub downstream: super::Downstream,
    /// Only these downstream workflows (with `downstream`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downstream_include: Vec<String>,
    /// Never these downstream workflows (with `downstream`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downstream_exclude: Vec<String>,
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub max_failed_windows: Option<u32>,
    #[serde(default)]
    pub overlap: Overlap,
    #[serde(default)]
    pub dry_run: bool,
    /// Off-peak hours: outside them no new window starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hours: Option<super::RawCalendar>,
    /// No window starts before this instant (RFC 3339, in the future).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// Limits on wall time, fuel and bytes written: passing one pauses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<super::RawBudget>,
}

/// Why a request was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RequestError {
    pub field: &'static str,
    pub message: String,
}

pub(crate) fn err(field: &'static str, message: impl Into<String>) -> RequestError {
    RequestError {
        field,
        message: message.into(),
    }
}

/// A validated request against one workflow definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillSpec {
    pub workflow: String,
    pub selection: super::Selection,
    pub mode: Mode,
    /// 1 in serial mode.
    pub parallelism: u32,
    pub order: Order,
    pub rerun: Rerun,
    pub from_task: Option<String>,
    pub downstream: super::Downstream,
    /// Which downstream workflows the cascade may add.
    pub scope: super::CascadeScope,
    pub version: Option<u32>,
    pub priority: Priority,
    pub max_failed_windows: Option<u32>,
    pub overlap: Overlap,
    pub dry_run: bool,
    pub calendar: Option<super::Calendar>,
    /// UTC ms.
    pub start_at: Option<i64>,
    pub budget: super::Budget,
}

impl BackfillSpec {
    /// Why no window may start at `now`, and until when: the start-at time
    /// first, then the calendar.
    pub fn waiting(&self, now: i64) -> Option<(i64, String)> {
        if let Some(at) = self.start_at.filter(|at| now < *at) {
            return Some((
                at,
                format!("waiting: start-at {}", schedule::format_utc(at)),
            ));
        }
        let cal = self.calendar.as_ref()?;
        let until = cal.closed_until(now)?;
        Some((
            until,
            format!(
                "waiting: off-peak until {} ({})",
                schedule::format_utc(until),
                cal.local(until)
            ),
        ))
    }
}

impl RawBackfillRequest {
    /// Refuses a start-at time that is not in the future (`now`, UTC ms).
    pub fn check_start_at(&self, now: i64) -> Result<(), RequestError> {
        if let Some(at) = &self.start_at {
            let t = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| {
                err(
                    "start_at",
                    format!("{at:?} is not an RFC 3339 instant: {e}"),
                )
            })?;
            if t.timestamp_millis() <= now {
                return Err(err(
                    "start_at",
                    format!("{at:?} is in the past; omit it to start now"),
                ));
            }
        }
        Ok(())
    }

    /// Validates against the definition the backfill will use.
    pub fn validate(&self, def: &WorkflowDef) -> Result<BackfillSpec, RequestError> {
        let tz = def.schedule.tz();
        let parse = |field: &'static str, s: &str| {
            schedule::parse_instant_or_date(s, tz).map_err(|m| err(field, m))
        };
        let (supported_from, supported_until) = schedule::supported_span(tz);
        let outside = |field: &'static str, text: &str| {
            err(
                field,
                format!(
                    "{text:?} is outside the supported years {}-{}",
                    schedule::FIRST_YEAR,
                    schedule::LAST_YEAR
                ),
            )
        };
        let first = def.start;
        let before_first = |field: &'static str, what: String| {
            err(
                field,
                format!(
                    "{what} before the workflow's first window ({}); backfill from there on",
                    schedule::format_utc(first)
                ),
            )
        };
        let selection = match (&self.start, &self.end, &self.dates) {
            (Some(s), Some(e), None) => {
                let start = parse("start", s)?;
                let end = parse("end", e)?;
                if !(supported_from..supported_until).contains(&start) {
                    return Err(outside("start", s));
                }
                if !(supported_from..=supported_until).contains(&end) {
                    return Err(outside("end", e));
                }
                if end <= start {
                    return Err(err("end", "must be after start"));
                }
                // Windows before the first one are refused rather than
                // clamped away: a silently shortened range looks like a
                // complete backfill. A start before the first window is
                // fine when no window of the range starts before it.
                if end <= first {
                    return Err(before_first("end", format!("the range ends at {e:?},")));
                }
                let earliest = def.schedule.windows(start, end).next();
                if earliest.is_some_and(|w| w.start < first) {
                    return Err(before_first("start", format!("{s:?} selects windows")));
                }
                super::Selection::Range { start, end }
            }
            (None, None, Some(dates)) => {
                if dates.is_empty() {
                    return Err(err("dates", "needs at least one date"));
                }
                if dates.len() > MAX_DATES {
                    return Err(err("dates", format!("at most {MAX_DATES} dates")));
                }
                let mut starts = Vec::with_capacity(dates.len());
                for d in dates {
                    let at = parse("dates", d)?;
                    if !(supported_from..supported_until).contains(&at) {
                        return Err(outside("dates", d));
                    }
                    let w = def.schedule.window_containing(at).ok_or_else(|| {
                        err("dates", format!("{d:?} is in no window of the schedule"))
                    })?;
                    if w.start < first {
                        return Err(before_first("dates", format!("{d:?} is in a window")));
                    }
                    starts.push(w.start);
                }
                starts.sort_unstable();
                starts.dedup();
                super::Selection::Windows(starts)
            }
            (None, None, None) => return Err(err("start", "give start and end, or dates")),
            (Some(_), None, _) => return Err(err("end", "required with start")),
            (None, Some(_), _) => return Err(err("start", "required with end")),
            (Some(_), Some(_), Some(_)) => {
                return Err(err(
                    "dates",
                    "give either start and end, or dates, not both",
                ))
            }
        };
        let parallelism = match (self.mode, self.parallelism) {
            (Mode::Serial, None | Some(1)) => 1,
            (Mode::Serial, Some(_)) => {
                return Err(err("parallelism", "serial mode runs one window at a time"))
            }
            (Mode::Parallel, None) => 8,
            (Mode::Parallel, Some(p)) if (1..=10_000).contains(&p) => p,
            (Mode::Parallel, Some(_)) => {
                return Err(err("parallelism", "must be between 1 and 10000"))
            }
        };
        if let Some(t) = &self.from_task {
            if def.task(t).is_none() {
                return Err(err(
                    "from_task",
                    format!("workflow {:?} has no task {t:?}", def.name),
                ));
            }
        }
        if self.max_failed_windows == Some(0) {
            return Err(err(
                "max_failed_windows",
                "must be at least 1 (omit it to never stop)",
            ));
        }
        let calendar = self
            .allowed_hours
            .as_ref()
            .map(super::Calendar::parse)
            .transpose()?;
        let start_at = match &self.start_at {
            None => None,
            Some(at) => Some(
                chrono::DateTime::parse_from_rfc3339(at)
                    .map_err(|e| {
                        err(
                            "start_at",
                            format!("{at:?} is not an RFC 3339 instant: {e}"),
                        )
                    })?
                    .timestamp_millis(),
            ),
        };
        let budget = self
            .budget
            .as_ref()
            .map(super::RawBudget::validate)
            .transpose()?
            .unwrap_or_default();
        Ok(BackfillSpec {
            budget,
            calendar,
            start_at,
            workflow: self.workflow.clone(),
            selection,
            mode: self.mode,
            parallelism,
            order: self.order,
            rerun: self.rerun,
            from_task: self.from_task.clone(),
            downstream: self.downstream,
            scope: super::CascadeScope::parse(
                self.downstream,
                &self.workflow,
                &self.downstream_include,
                &self.downstream_exclude,
            )?,
            version: self.version,
            priority: self.priority,
            max_failed_windows: self.max_failed_windows,
            overlap: self.overlap,
            dry_run: self.dry_run,
        })
    }
}
