//! Object-storage outputs of windows and their consistency check.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_enum;
use crate::blob::WindowCheck;
use crate::engine::BackfillVerification;
use crate::store::{OutputCheckRecord, OutputObject, OutputRecord};

api_enum! {
    /// What the window's `_manifest.json` says: `current` (exactly the
    /// committed output), `pending` (committed, not yet published: the
    /// publisher is behind), `missing` or `stale` (another output).
    ManifestState = crate::blob::ManifestState { Current, Pending, Missing, Stale }
}

api_enum! {
    /// Where a declared output check is: `pending` (it runs once the
    /// output is published and its run has ended), `passed` or `failed`
    /// (the object store does not hold what was committed).
    CheckState = crate::store::CheckState { Pending, Passed, Failed }
}

/// The automatic check of one window output, declared by the workflow
/// (`[checks] outputs = "after_window"`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputCheckResult {
    pub state: CheckState,
    /// When it ran; `null` while pending.
    #[schema(required = true)]
    pub checked_ms: Option<i64>,
    /// What the window's `_manifest.json` said; `null` while pending.
    #[schema(required = true)]
    pub manifest: Option<ManifestState>,
    /// Published objects that were gone.
    pub missing: Vec<String>,
    pub size_mismatch: Vec<String>,
    pub checksum_mismatch: Vec<String>,
    /// Keys in the window's directory that no manifest names.
    pub extra: Vec<String>,
}

impl From<OutputCheckRecord> for OutputCheckResult {
    fn from(c: OutputCheckRecord) -> Self {
        OutputCheckResult {
            state: c.state.into(),
            checked_ms: c.checked_ms,
            manifest: c.manifest.map(Into::into),
            missing: c.missing,
            size_mismatch: c.size_mismatch,
            checksum_mismatch: c.checksum_mismatch,
            extra: c.extra,
        }
    }
}

/// One published object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputObjectBody {
    /// The name the task wrote.
    pub name: String,
    /// Its key relative to the container's root.
    pub key: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// The committed output of one task in one window in one container.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputBody {
    pub connection: String,
    pub workflow: String,
    pub task: String,
    pub window_start_ms: i64,
    pub run_id: u64,
    pub attempt: u32,
    pub committed_ms: i64,
    /// Whether its manifest has been written to the object store yet.
    pub published: bool,
    pub objects: Vec<OutputObjectBody>,
    /// Its automatic check; `null` when the workflow declared none when
    /// the output was committed.
    #[schema(required = true)]
    pub check: Option<OutputCheckResult>,
}

fn object(o: OutputObject) -> OutputObjectBody {
    OutputObjectBody {
        name: o.name,
        key: o.key,
        size: o.size,
        sha256: o.sha256,
    }
}

impl From<OutputRecord> for OutputBody {
    fn from(r: OutputRecord) -> Self {
        OutputBody {
            connection: r.connection,
            workflow: r.workflow,
            task: r.task,
            window_start_ms: r.window_start,
            run_id: r.run_id,
            attempt: r.attempt,
            committed_ms: r.committed_ms,
            published: r.published,
            objects: r.objects.into_iter().map(object).collect(),
            check: r.check.map(Into::into),
        }
    }
}

/// `{"outputs": [...]}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutputList {
    pub outputs: Vec<OutputBody>,
}

/// How one window's published output compares with the object store.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutputCheckBody {
    pub connection: String,
    pub workflow: String,
    pub task: String,
    pub window_start_ms: i64,
    /// True when the manifest is current and every object is there with
    /// its size and checksum, and nothing else is.
    pub consistent: bool,
    pub manifest: ManifestState,
    /// Published objects that are gone.
    pub missing: Vec<String>,
    pub size_mismatch: Vec<String>,
    pub checksum_mismatch: Vec<String>,
    /// Keys in the window's directory that no manifest names.
    pub extra: Vec<String>,
}

impl From<WindowCheck> for OutputCheckBody {
    fn from(c: WindowCheck) -> Self {
        OutputCheckBody {
            consistent: c.consistent(),
            connection: c.connection,
            workflow: c.workflow,
            task: c.task,
            window_start_ms: c.window_start,
            manifest: c.manifest.into(),
            missing: c.missing,
            size_mismatch: c.size_mismatch,
            checksum_mismatch: c.checksum_mismatch,
            extra: c.extra,
        }
    }
}

/// The consistency check of a backfill's published outputs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Verification {
    pub backfill_id: u64,
    /// Windows of the backfill (all stages) looked at.
    pub windows: u64,
    /// Outputs checked (a window may have several: per task and container).
    pub outputs: u64,
    pub consistent: u64,
    pub inconsistent: u64,
    /// Every check, inconsistent ones first.
    pub checks: Vec<OutputCheckBody>,
}

impl From<BackfillVerification> for Verification {
    fn from(v: BackfillVerification) -> Self {
        let mut checks: Vec<OutputCheckBody> = v.checks.into_iter().map(Into::into).collect();
        checks.sort_by_key(|c| c.consistent);
        let consistent = checks.iter().filter(|c| c.consistent).count() as u64;
        Verification {
            backfill_id: v.backfill,
            windows: v.windows,
            outputs: checks.len() as u64,
            consistent,
            inconsistent: checks.len() as u64 - consistent,
            checks,
        }
    }
}
