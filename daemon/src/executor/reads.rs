//! The dataset partitions an attempt read, each with the version it saw:
//! the input side of a run's provenance, and what a later commit of an
//! upstream partition is compared with.

use std::collections::BTreeMap;

use crate::run::DatasetRead;
use crate::store::TaskData;

/// Most distinct partitions recorded per attempt: a task scanning years of
/// an hourly dataset must not turn its attempt record into megabytes. Reads
/// past it are counted, not named.
pub const MAX_READS: usize = 1024;

/// Partitions read so far, in `(dataset, partition)` order.
#[derive(Debug, Default)]
pub struct ReadLog {
    seen: BTreeMap<(String, i64), Option<String>>,
    omitted: u64,
}

impl ReadLog {
    /// Records a read of `partition` of `dataset` the first time it happens.
    /// The version is looked up then, just after the data was read: the
    /// store has no snapshot across two calls, so a commit in between is
    /// possible, and then the newer version is named (the one a rerun would
    /// see). A failed lookup is logged and the read is not recorded: a read
    /// must never fail because of its bookkeeping.
    pub fn note(&mut self, data: &dyn TaskData, tenant: &str, dataset: &str, partition: i64) {
        let key = (dataset.to_owned(), partition);
        if self.seen.contains_key(&key) {
            return;
        }
        if self.seen.len() >= MAX_READS {
            self.omitted += 1;
            return;
        }
        match data.partition_version(tenant, dataset, partition) {
            Ok(v) => {
                self.seen.insert(key, v);
            }
            Err(e) => tracing::warn!(dataset, partition, "recording a read: {e}"),
        }
    }

    /// The reads, and how many distinct reads went unrecorded past
    /// [`MAX_READS`].
    pub fn take(&mut self) -> (Vec<DatasetRead>, u64) {
        let seen = std::mem::take(&mut self.seen);
        let reads = seen
            .into_iter()
            .map(|((dataset, partition), version)| DatasetRead {
                dataset,
                partition,
                version,
            })
            .collect();
        (reads, std::mem::take(&mut self.omitted))
    }
}
