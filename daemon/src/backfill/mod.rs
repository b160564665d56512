//! Backfills: re-running a workflow over historical windows.
//!
//! This module is pure, like the planner: a validated [`BackfillSpec`], a
//! durable [`Cursor`] that yields the selected windows in segments (never all
//! at once, so a million-window backfill costs nothing up front), the
//! [`Rerun`] decision per window, and the downstream [`cascade`] that a
//! repair implies. The engine persists cursors and acts on the decisions.

mod budget;
mod calendar;
mod cascade;
pub mod estimate;
mod request;
mod scope;
pub(crate) use request::err as request_error;
mod select;
mod state;

pub use budget::{exceeded as budget_exceeded, Actual, Budget, RawBudget};
pub use calendar::{Calendar, RawCalendar};
pub use cascade::{cascade, CascadeStep, Downstream};
pub use request::{
    BackfillSpec, Mode, Order, Overlap, Priority, RawBackfillRequest, RequestError, Rerun,
};
pub use scope::{CascadeScope, FIELD_EXCLUDE, FIELD_INCLUDE};
pub use select::{Cursor, Selection};
pub use state::{BackfillEvent, BackfillState, InvalidBackfillTransition};

use crate::run::RunState;

/// Why a window is part of a backfill's plan or left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run(RunReason),
    Skip(SkipReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunReason {
    /// The window never succeeded.
    Missing,
    /// Its latest run failed or was cancelled.
    Failed,
    /// `rerun = all`: it succeeded and runs again.
    Rerun,
    /// A downstream window of a repaired upstream window.
    Downstream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// It already succeeded and `rerun` is not `all`.
    AlreadySucceeded,
    /// It never ran and `rerun = failed` only repairs failures.
    NeverRan,
    /// Another run of it is active and the overlap policy is `skip`.
    Overlap,
}

impl RunReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RunReason::Missing => "missing: never succeeded",
            RunReason::Failed => "failed: its latest run failed",
            RunReason::Rerun => "rerun=all",
            RunReason::Downstream => "downstream of a repaired window",
        }
    }
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::AlreadySucceeded => "skipped: already succeeded",
            SkipReason::NeverRan => "skipped: never ran (rerun=failed)",
            SkipReason::Overlap => "skipped: another run of the window is active",
        }
    }
}

/// Whether a window with latest run state `latest` runs under `rerun`.
pub fn decide(rerun: Rerun, latest: Option<RunState>) -> Decision {
    use RunState as S;
    match (rerun, latest) {
        (Rerun::All, Some(S::Succeeded)) => Decision::Run(RunReason::Rerun),
        (_, Some(S::Succeeded)) => Decision::Skip(SkipReason::AlreadySucceeded),
        (_, Some(S::Failed | S::Cancelled)) => Decision::Run(RunReason::Failed),
        (Rerun::Failed, None) => Decision::Skip(SkipReason::NeverRan),
        (_, None) => Decision::Run(RunReason::Missing),
        // Active: the overlap policy decides (the default waits for it).
        (_, Some(_)) => Decision::Run(RunReason::Missing),
    }
}

#[cfg(test)]
mod tests;
