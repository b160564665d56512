//! The records the engine stores: plugin and workflow versions, attempts,
//! the per-window index, and [`Changes`], one atomic state change.

use serde::{Deserialize, Serialize};

use super::StagedOutputs;
use crate::executor::{ErrorKind, HttpRequestRecord, LogLine};
use crate::run::{Run, RunState};
use crate::workflow::RawWorkflow;

/// A stored plugin version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginMeta {
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub size: u64,
    pub created_ms: i64,
    /// What the component exports (validated at upload).
    #[serde(default)]
    pub exports: Vec<String>,
}

/// A stored workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredWorkflow {
    pub name: String,
    pub version: u32,
    pub raw: RawWorkflow,
    pub created_ms: i64,
}

/// What happened in one attempt, kept for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub run_id: u64,
    pub task: String,
    pub attempt: u32,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// `None` when the attempt succeeded.
    pub error_kind: Option<ErrorKind>,
    /// The summary on success, the error message otherwise.
    pub message: String,
    pub fuel: Option<u64>,
    pub log: Vec<LogLine>,
    /// The attempt's outbound HTTP requests (method, host, status, bytes,
    /// milliseconds; never headers or bodies). Absent in records written
    /// before outbound HTTP existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRequestRecord>,
    /// The plugin the task names (name, or digest), so estimates can find
    /// its history in other workflows. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Dataset and object bytes a successful attempt committed. Absent in
    /// older records and failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    /// The digest of the plugin version the attempt ran (a name resolves
    /// to whichever version was newest then). Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<String>,
    /// Dataset partitions the attempt read and the version of each it saw.
    /// Absent in older records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<crate::run::DatasetRead>,
    /// Distinct partitions read beyond the ones `reads` names.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reads_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The latest run of one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub run_id: u64,
    pub state: RunState,
}

/// One atomic, durable state change.
#[derive(Debug, Default)]
pub struct Changes {
    pub runs: Vec<Run>,
    /// `(tenant, workflow, start of the last window created live)`.
    pub cursors: Vec<(String, String, i64)>,
    pub attempts: Vec<(String, AttemptRecord)>,
    /// `(tenant, partition, outputs)`: committed with the task's success.
    pub outputs: Vec<(String, i64, StagedOutputs)>,
    /// `(tenant, output)`: object-storage outputs committed with the
    /// task's success; each replaces its window's output.
    pub object_outputs: Vec<(String, super::OutputRecord)>,
    pub backfills: Vec<super::BackfillRecord>,
    /// `(tenant, window)`.
    pub backfill_windows: Vec<(String, super::BackfillWindow)>,
    /// `(tenant, workflow, idempotency key, run id)`: written with the run
    /// the key created.
    pub idempotency: Vec<(String, String, String, u64)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
            && self.cursors.is_empty()
            && self.attempts.is_empty()
            && self.outputs.is_empty()
            && self.object_outputs.is_empty()
            && self.backfills.is_empty()
            && self.backfill_windows.is_empty()
            && self.idempotency.is_empty()
    }

    /// Appends `newer` to changes that are not durable yet (a write that
    /// failed), so one batch carries both: of two states of one record, the
    /// later one wins, and two commits of one partition of a dataset become
    /// the newer one.
    pub fn merge(&mut self, newer: Changes) {
        self.runs.extend(newer.runs);
        self.cursors.extend(newer.cursors);
        self.attempts.extend(newer.attempts);
        for (tenant, partition, outputs) in newer.outputs {
            match self
                .outputs
                .iter_mut()
                .find(|(t, p, _)| *t == tenant && *p == partition)
            {
                Some((_, _, older)) => older.replace_datasets(outputs),
                None => self.outputs.push((tenant, partition, outputs)),
            }
        }
        // Later records of one window replace earlier ones in batch order.
        self.object_outputs.extend(newer.object_outputs);
        self.backfills.extend(newer.backfills);
        self.backfill_windows.extend(newer.backfill_windows);
        self.idempotency.extend(newer.idempotency);
    }
}
