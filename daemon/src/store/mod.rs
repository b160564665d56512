//! Persistence. This module is the only one that knows its backends: sled
//! (`SledStore`, the embedded default) and PostgreSQL (`PgStore`, in `pg/`,
//! the groundwork for several daemons on one database); everything else
//! sees the narrow traits below.
//!
//! Every record is tenant-scoped: the tenant is the first component of every
//! key.

mod backfills;
mod connections;
mod keys;
mod notify;
mod outputs;
mod partitions;
mod pg;
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
pub use notify::{DeliveryRecord, DeliveryState, NotifyStore, NotifyTargetRecord};
pub use outputs::{
    CheckState, OutputCheckRecord, OutputObject, OutputRecord, OutputStore, StagingRecord,
};
pub use pg::{
    check_node_id, check_url, redact_url, supported_schema as pg_schema_version, LeaseRecord,
    NodeRecord, PgStore, ENGINE_LEASE,
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

/// Dataset writes staged by one attempt, by dataset, then key.
///
/// On commit each dataset present here has its partition for the attempt's
/// window replaced by exactly these entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagedOutputs {
    // Nested rather than keyed by `(dataset, key)`: a task writes many rows
    // to few datasets, and each put then compares and allocates only its
    // key (the guest's own string, moved in).
    entries: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    bytes: usize,
}

impl StagedOutputs {
    /// Stages one write; returns the staged byte count afterwards. A repeated
    /// key replaces the earlier value and its bytes.
    pub fn put(&mut self, dataset: &str, key: impl Into<String>, value: Vec<u8>) -> usize {
        let key = key.into();
        let cost = dataset.len() + key.len() + value.len();
        let rows = match self.entries.get_mut(dataset) {
            Some(rows) => rows,
            None => self.entries.entry(dataset.to_owned()).or_default(),
        };
        let key_len = key.len();
        if let Some(old) = rows.insert(key, value) {
            self.bytes -= dataset.len() + key_len + old.len();
        }
        self.bytes += cost;
        self.bytes
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The datasets written, each once, in name order.
    pub fn datasets(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Replaces every dataset that `newer` writes with `newer`'s entries
    /// (a later commit of the same partitions).
    pub fn replace_datasets(&mut self, newer: StagedOutputs) {
        for (dataset, rows) in newer.entries {
            let added: usize = rows
                .iter()
                .map(|(k, v)| dataset.len() + k.len() + v.len())
                .sum();
            if let Some(old) = self.entries.insert(dataset.clone(), rows) {
                let removed: usize = old
                    .iter()
                    .map(|(k, v)| dataset.len() + k.len() + v.len())
                    .sum();
                self.bytes -= removed;
            }
            self.bytes += added;
        }
    }

    /// Each dataset written, in name order, with its rows in key order.
    pub fn by_dataset(
        &self,
    ) -> impl Iterator<Item = (&str, impl Iterator<Item = (&str, &[u8])> + Clone)> {
        self.entries.iter().map(|(d, rows)| {
            (
                d.as_str(),
                rows.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            )
        })
    }

    /// Entries in `(dataset, key)` order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &[u8])> + Clone {
        self.entries.iter().flat_map(|(d, rows)| {
            rows.iter()
                .map(move |(k, v)| (d.as_str(), k.as_str(), v.as_slice()))
        })
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
    // The PostgreSQL backend's. A connection string appears only as
    // `pg::redact_url` leaves it: never with its password.
    #[error("{url} is not a PostgreSQL connection string: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("connecting to PostgreSQL at {url}: {}", chain(.source))]
    Connect {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{op}: PostgreSQL: {}", chain(.source))]
    Postgres {
        op: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{op}: PostgreSQL: {}", chain(.source))]
    Pool {
        op: &'static str,
        #[source]
        source: deadpool_postgres::PoolError,
    },
    #[error("building the PostgreSQL connection pool: {source}")]
    PoolBuild {
        #[source]
        source: deadpool_postgres::BuildError,
    },
    #[error(
        "the PostgreSQL store at {url} has schema version {found}, newer than the \
         {supported} this Tidemark supports: run a Tidemark at least as new as the \
         one that migrated it"
    )]
    SchemaTooNew {
        url: String,
        found: i64,
        supported: i64,
    },
    #[error("migrating the PostgreSQL store at {url}: {}", chain(.source))]
    Migrate {
        url: String,
        #[source]
        source: refinery::Error,
    },
    #[error("starting the PostgreSQL store's runtime: {source}")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: the PostgreSQL store's runtime has shut down")]
    RuntimeGone { op: &'static str },
    /// Another node took the engine lease over: this node's writes are
    /// refused by the database. The caller must stop acting as the owner.
    #[error("{op}: refused: {detail}")]
    Fenced { op: &'static str, detail: String },
}

impl StoreError {
    /// Whether this statement failed only because an earlier one of its
    /// transaction had (SQLSTATE 25P02): the earlier failure is the cause.
    pub(crate) fn is_aborted_transaction(&self) -> bool {
        matches!(self, StoreError::Postgres { source, .. }
            if source.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION))
    }
}

impl StoreError {
    /// The write was refused because this node no longer owns the work.
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced { .. })
    }
}

/// An error and its causes on one line: tokio-postgres says only "db
/// error" or "error connecting to server" and leaves the why to its source.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // Some wrappers (the pool's) already repeat their source's text.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// A scan's entries, and the content version of each partition they come
/// from (when asked for), in partition order.
pub type ScanPage = (Vec<DatasetEntry>, Vec<(i64, String)>);

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
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .dataset_get_versioned(tenant, dataset, partition, key, false)?
            .0)
    }

    /// [`TaskData::dataset_get`], and with `with_version` the content
    /// version of the partition it looked in (`None` if it does not exist),
    /// taken from the same read: what an attempt's read records, so no
    /// commit can come between what it saw and the version it names.
    fn dataset_get_versioned(
        &self,
        tenant: &str,
        dataset: &str,
        partition: i64,
        key: &str,
        with_version: bool,
    ) -> Result<(Option<Vec<u8>>, Option<String>), StoreError>;

    /// The content version of a dataset partition (see
    /// [`partitions::version`]), `None` if it does not exist: what an
    /// attempt's read records, so a later commit of the partition shows.
    fn partition_version(
        &self,
        tenant: &str,
        dataset: &str,
        partition: i64,
    ) -> Result<Option<String>, StoreError>;

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
    ) -> Result<Vec<DatasetEntry>, StoreError> {
        let (entries, _) =
            self.dataset_scan_versioned(tenant, dataset, partitions, prefix, after, limit, false)?;
        Ok(entries)
    }

    /// [`TaskData::dataset_scan`], and with `with_versions` the content
    /// version of each partition it returned entries of, from the same
    /// read, in partition order.
    #[allow(clippy::too_many_arguments)]
    fn dataset_scan_versioned(
        &self,
        tenant: &str,
        dataset: &str,
        partitions: Range<i64>,
        prefix: &str,
        after: Option<(i64, &str)>,
        limit: usize,
        with_versions: bool,
    ) -> Result<ScanPage, StoreError>;

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
