//! Persistence. This module is the only one that knows sled; everything else
//! sees the narrow traits below, so the same daemon can later run over
//! another backend (PostgreSQL for several nodes) with sled as the embedded
//! default.
//!
//! Every record is tenant-scoped: the tenant is the first component of every
//! key.

mod backfills;
mod connections;
mod keys;
mod outputs;
mod partitions;
mod records;
mod sled_store;
mod state;
mod tenants;

use std::collections::BTreeMap;
use std::ops::Range;

pub use backfills::{
    BackfillRecord, BackfillState, BackfillStore, BackfillWindow, Stage, StateCounts, WindowState,
};
pub use connections::{ConnectionRecord, ConnectionStore, SealedSecret};
pub use outputs::{
    CheckState, OutputCheckRecord, OutputObject, OutputRecord, OutputStore, StagingRecord,
};
pub use records::{AttemptRecord, Changes, PluginMeta, StoredWorkflow, WindowRecord};
pub use sled_store::SledStore;
pub use state::StateStore;
pub use tenants::{TenantRecord, TenantStore, TokenRecord};

/// Names one task's state in one window: the scope of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskScope {
    pub tenant: String,
    pub workflow: String,
    pub task: String,
    /// Start of the window, UTC milliseconds.
    pub window_start: i64,
}

/// One committed dataset entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetEntry {
    pub partition: i64,
    pub key: String,
    pub value: Vec<u8>,
}

/// Dataset writes staged by one attempt, keyed by `(dataset, key)`.
///
/// On commit each dataset present here has its partition for the attempt's
/// window replaced by exactly these entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagedOutputs {
    entries: BTreeMap<(String, String), Vec<u8>>,
    bytes: usize,
}

impl StagedOutputs {
    /// Stages one write; returns the staged byte count afterwards. A repeated
    /// key replaces the earlier value and its bytes.
    pub fn put(&mut self, dataset: &str, key: &str, value: Vec<u8>) -> usize {
        let cost = dataset.len() + key.len() + value.len();
        if let Some(old) = self
            .entries
            .insert((dataset.to_owned(), key.to_owned()), value)
        {
            self.bytes -= dataset.len() + key.len() + old.len();
        }
        self.bytes += cost;
        self.bytes
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The datasets written, each once, in name order.
    pub fn datasets(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.entries.keys().map(|(d, _)| d.as_str()).collect();
        names.dedup();
        names
    }

    /// Replaces every dataset that `newer` writes with `newer`'s entries
    /// (a later commit of the same partitions).
    pub fn replace_datasets(&mut self, newer: StagedOutputs) {
        let replaced: Vec<String> = newer.datasets().iter().map(|d| d.to_string()).collect();
        let mut bytes = self.bytes;
        self.entries.retain(|(d, k), v| {
            let keep = !replaced.contains(d);
            if !keep {
                bytes -= d.len() + k.len() + v.len();
            }
            keep
        });
        self.bytes = bytes;
        for (d, k, v) in newer.iter() {
            self.put(d, k, v.to_vec());
        }
    }

    /// Entries in `(dataset, key)` order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &[u8])> {
        self.entries
            .iter()
            .map(|((d, k), v)| (d.as_str(), k.as_str(), v.as_slice()))
    }
}

/// A storage failure, with the operation that hit it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error("{op}: {source}")]
    Backend {
        op: &'static str,
        #[source]
        source: sled::Error,
    },
    #[error("{op}: record has unknown format version {version}")]
    Format { op: &'static str, version: u8 },
    #[error("{op}: corrupt record: {detail}")]
    Corrupt { op: &'static str, detail: String },
}

/// What a running attempt may read and write: its own checkpoints and the
/// datasets of its tenant.
///
/// Implementations are synchronous and fast (local sled or memory); host
/// functions call them directly from the attempt.
pub trait TaskData: OutputStore + Send + Sync + 'static {
    fn checkpoint_load(&self, scope: &TaskScope) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces the checkpoint durably before returning.
    fn checkpoint_save(&self, scope: &TaskScope, data: &[u8]) -> Result<(), StoreError>;
    fn checkpoint_clear(&self, scope: &TaskScope) -> Result<(), StoreError>;

    fn dataset_get(
        &self,
        tenant: &str,
        dataset: &str,
        partition: i64,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Entries of partitions in `partitions` with keys starting with
    /// `prefix`, strictly after `after`, in `(partition, key)` order, at most
    /// `limit`.
    fn dataset_scan(
        &self,
        tenant: &str,
        dataset: &str,
        partitions: Range<i64>,
        prefix: &str,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<DatasetEntry>, StoreError>;

    /// Atomically replaces, for every dataset in `outputs`, the partition
    /// `partition` with the staged entries, durably before returning.
    fn dataset_commit(
        &self,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod tests;
