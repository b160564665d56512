//! What the gap detector found in a workflow's windows, and the repair it
//! made or proposes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::backfills::{BackfillRequest, BackfillStatus};
use crate::gap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// Due, and never ran.
    Missing,
    /// Its latest run failed or was cancelled.
    Failed,
    /// It succeeded, but an input it read (or an upstream window it waited
    /// for) was committed again afterwards.
    Stale,
}

impl From<gap::GapKind> for GapKind {
    fn from(k: gap::GapKind) -> Self {
        match k {
            gap::GapKind::Missing => GapKind::Missing,
            gap::GapKind::Failed => GapKind::Failed,
            gap::GapKind::Stale => GapKind::Stale,
        }
    }
}

/// One window that needs repair.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Gap {
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub kind: GapKind,
    /// Its latest run; `null` when it never ran.
    #[schema(required = true)]
    pub run_id: Option<u64>,
    pub reason: String,
}

/// The gaps of a workflow's due windows starting in `[since_ms,
/// until_ms)`, and the backfill request that repairs exactly them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GapReport {
    pub workflow: String,
    pub since_ms: i64,
    pub until_ms: i64,
    /// Windows examined.
    pub scanned: u64,
    /// More windows were due than one scan examines: the newest were.
    pub truncated: bool,
    /// In window order.
    pub gaps: Vec<Gap>,
    /// `"2 missing, 1 stale"`; empty when there are no gaps.
    pub summary: String,
    /// A dry-run backfill request for exactly these windows (POST it to
    /// `/api/v1/backfills`, with `dry_run` false to start it); `null` when
    /// there is nothing to repair.
    #[schema(required = true)]
    pub plan: Option<BackfillRequest>,
}

impl GapReport {
    pub fn new(r: &gap::Report, version: u32) -> Self {
        GapReport {
            workflow: r.workflow.clone(),
            since_ms: r.since,
            until_ms: r.until,
            scanned: r.scanned as u64,
            truncated: r.truncated,
            gaps: r
                .gaps
                .iter()
                .map(|g| Gap {
                    window_start_ms: g.window.start,
                    window_end_ms: g.window.end,
                    kind: g.kind.into(),
                    run_id: g.run_id,
                    reason: g.reason.clone(),
                })
                .collect(),
            summary: r.summary(),
            plan: r.request(version, true).map(Into::into),
        }
    }
}

/// A repair asked for through the API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairRequest {
    /// First window start (RFC 3339 or milliseconds); default: the
    /// workflow's repair lookback before `until`.
    #[serde(default)]
    pub since: Option<String>,
    /// Window starts before this; default and latest: now.
    #[serde(default)]
    pub until: Option<String>,
    /// Create the backfill paused, for someone to approve (resume).
    #[serde(default)]
    pub propose: bool,
}

/// What a repair request found and created.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Repair {
    pub report: GapReport,
    /// The repair backfill; `null` when there was nothing to repair.
    #[schema(required = true)]
    pub backfill: Option<BackfillStatus>,
}

/// Who made a gap repair backfill, and how many windows it repairs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RepairOrigin {
    /// `auto` or `propose`: the detector made it on its own for a workflow
    /// that opted in; `request`: someone asked for it.
    pub by: RepairBy,
    pub windows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepairBy {
    Auto,
    Propose,
    Request,
}

impl From<&gap::RepairOrigin> for RepairOrigin {
    fn from(o: &gap::RepairOrigin) -> Self {
        RepairOrigin {
            by: match o.mode {
                gap::RepairMode::Auto => RepairBy::Auto,
                gap::RepairMode::Propose => RepairBy::Propose,
                gap::RepairMode::Off => RepairBy::Request,
            },
            windows: o.reasons.len() as u64,
        }
    }
}
