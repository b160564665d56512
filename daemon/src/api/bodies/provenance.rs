//! A run's provenance (`GET /runs/{id}/why`) and two runs of one window
//! compared (`GET /runs/{id}/compare/{other}`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::runs::Trigger;
use crate::run;

/// A window of another workflow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamWindow {
    pub workflow: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
}

/// Why a run exists, by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// Stored before provenance was recorded.
    Unrecorded,
    /// The workflow's schedule made the window due.
    Schedule,
    /// Someone ran the window containing `at_ms` now.
    Manual { at_ms: i64 },
    /// The HTTP trigger, with the request's idempotency key if it sent one.
    Trigger {
        #[schema(required = true)]
        idempotency_key: Option<String>,
    },
    /// A backfill selected the window; `reason` is why its rerun policy
    /// ran it.
    Backfill { backfill_id: u64, reason: String },
    /// A backfill's cascade: the windows of workflows it repaired that this
    /// window depends on.
    Cascade {
        backfill_id: u64,
        upstream: Vec<UpstreamWindow>,
    },
    /// A gap repair backfill: why the detector found the window wanting.
    GapRepair { backfill_id: u64, reason: String },
}

impl From<&run::Cause> for Cause {
    fn from(c: &run::Cause) -> Self {
        match c {
            run::Cause::Unrecorded => Cause::Unrecorded,
            run::Cause::Schedule => Cause::Schedule,
            run::Cause::Manual { at } => Cause::Manual { at_ms: *at },
            run::Cause::Trigger { idempotency_key } => Cause::Trigger {
                idempotency_key: idempotency_key.clone(),
            },
            run::Cause::Backfill { backfill, reason } => Cause::Backfill {
                backfill_id: *backfill,
                reason: reason.clone(),
            },
            run::Cause::Cascade { backfill, upstream } => Cause::Cascade {
                backfill_id: *backfill,
                upstream: upstream
                    .iter()
                    .map(|u| UpstreamWindow {
                        workflow: u.workflow.clone(),
                        window_start_ms: u.window_start,
                        window_end_ms: u.window_end,
                    })
                    .collect(),
            },
            run::Cause::GapRepair { backfill, reason } => Cause::GapRepair {
                backfill_id: *backfill,
                reason: reason.clone(),
            },
        }
    }
}

/// Who asked for a run, by `kind`: the daemon's `scheduler`, or a tenant
/// `token` (its id and label) through the API.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestedBy {
    Unrecorded,
    Scheduler,
    Token { token_id: u64, label: String },
}

impl From<&run::Requester> for RequestedBy {
    fn from(r: &run::Requester) -> Self {
        match r {
            run::Requester::Unrecorded => RequestedBy::Unrecorded,
            run::Requester::Scheduler => RequestedBy::Scheduler,
            run::Requester::Token { id, label } => RequestedBy::Token {
                token_id: *id,
                label: label.clone(),
            },
        }
    }
}

/// One retry of the run: who asked and when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetryRequest {
    pub requested_by: RequestedBy,
    /// When the retry was asked (epoch milliseconds).
    pub at_ms: i64,
}

/// An upstream window that had succeeded when the run stopped waiting, and
/// the run that made it succeed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamRun {
    pub workflow: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub run_id: u64,
}

/// A dataset partition a task read, and the content version it saw.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasetRead {
    pub dataset: String,
    pub partition_ms: i64,
    /// A digest of the partition's content when first read; `null` when
    /// the partition did not exist.
    #[schema(required = true)]
    pub version: Option<String>,
}

/// A task parameter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// What one task ran and read, from its last attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskOrigin {
    pub task: String,
    /// The plugin as the workflow version names it.
    #[schema(required = true)]
    pub plugin: Option<String>,
    /// The digest of the component the last attempt ran.
    #[schema(required = true)]
    pub plugin_digest: Option<String>,
    #[schema(required = true)]
    pub attempt: Option<u32>,
    pub params: Vec<Param>,
    pub reads: Vec<DatasetRead>,
    /// Distinct partitions read beyond those listed.
    pub reads_omitted: u64,
}

/// Why a run exists, who asked, the workflow version it is pinned to, and
/// what it was built from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunWhy {
    pub run_id: u64,
    pub workflow: String,
    pub version: u32,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub trigger: Trigger,
    pub cause: Cause,
    /// The cause in one line.
    pub summary: String,
    pub requested_by: RequestedBy,
    /// Retries asked of the run, oldest first; they keep its cause and
    /// `requested_by`.
    pub retries: Vec<RetryRequest>,
    /// Upstream windows satisfied when it started, in dependency order.
    pub upstream: Vec<UpstreamRun>,
    pub tasks: Vec<TaskOrigin>,
}

impl From<&crate::engine::Why> for RunWhy {
    fn from(w: &crate::engine::Why) -> Self {
        let r = &w.run;
        let p = &r.provenance;
        RunWhy {
            run_id: r.id,
            workflow: r.workflow.clone(),
            version: r.version,
            window_start_ms: r.window_start,
            window_end_ms: r.window_end,
            trigger: r.trigger.into(),
            cause: (&p.cause).into(),
            summary: p.cause.describe(),
            requested_by: (&p.requested_by).into(),
            retries: p
                .retries
                .iter()
                .map(|r| RetryRequest {
                    requested_by: (&r.requested_by).into(),
                    at_ms: r.at,
                })
                .collect(),
            upstream: p
                .upstream
                .iter()
                .map(|u| UpstreamRun {
                    workflow: u.workflow.clone(),
                    window_start_ms: u.window_start,
                    window_end_ms: u.window_end,
                    run_id: u.run_id,
                })
                .collect(),
            tasks: w
                .tasks
                .iter()
                .map(|t| TaskOrigin {
                    task: t.task.clone(),
                    plugin: t.plugin.clone(),
                    plugin_digest: t.plugin_digest.clone(),
                    attempt: t.attempt,
                    params: t
                        .params
                        .iter()
                        .map(|(name, value)| Param {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    reads: t
                        .reads
                        .iter()
                        .map(|d| DatasetRead {
                            dataset: d.dataset.clone(),
                            partition_ms: d.partition,
                            version: d.version.clone(),
                        })
                        .collect(),
                    reads_omitted: t.reads_omitted,
                })
                .collect(),
        }
    }
}

/// One field that differs between the two runs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Difference {
    /// `version`, `cause`, `requested_by`, `payload`, `params:TASK.NAME`,
    /// `plugin:TASK`, `read:TASK:DATASET@PARTITION_MS`, `upstream:WF@START_MS`.
    pub field: String,
    /// Its value in the first run; `null` if absent there.
    #[schema(required = true)]
    pub this: Option<String>,
    /// Its value in the other run; `null` if absent there.
    #[schema(required = true)]
    pub other: Option<String>,
}

/// Two runs of one window: each one's provenance and what changed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunComparison {
    pub this: RunWhy,
    pub other: RunWhy,
    /// Empty when nothing differs.
    pub differences: Vec<Difference>,
}

impl RunComparison {
    pub fn new(a: &crate::engine::Why, b: &crate::engine::Why, cmp: &run::Comparison) -> Self {
        RunComparison {
            this: a.into(),
            other: b.into(),
            differences: cmp
                .differences
                .iter()
                .map(|d| Difference {
                    field: d.field.clone(),
                    this: d.this.clone(),
                    other: d.other.clone(),
                })
                .collect(),
        }
    }
}
