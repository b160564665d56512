use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::keys;
use super::{DatasetEntry, StagedOutputs, StoreError, TaskData, TaskScope};

/// The embedded store: one sled database. The `state` tree holds every
/// record a state change touches (runs, window index, cursors, attempts,
/// dataset partitions) so one atomic batch covers it; checkpoints and plugin
/// blobs have trees of their own.
#[derive(Clone)]
pub struct SledStore {
    pub(super) db: sled::Db,
    pub(super) checkpoints: sled::Tree,
    pub(super) state: sled::Tree,
    pub(super) blobs: sled::Tree,
    group: Arc<GroupCommit>,
    /// Index entries written for runs that have not ended (see
    /// [`RunIndex`]).
    pub(super) run_index: Arc<Mutex<std::collections::HashMap<(String, u64), RunIndex>>>,
    /// Fault injection for tests: while set, every state change fails as a
    /// disk would (see [`SledStore::inject_write_failures`]).
    fail_writes: Arc<std::sync::atomic::AtomicBool>,
    /// Fault injection for tests: state changes that succeed before
    /// `fail_writes` is set (`u64::MAX`: no countdown).
    writes_left: Arc<AtomicU64>,
    /// Fault injection for tests: while set, range reads of the window index
    /// fail.
    fail_window_reads: Arc<std::sync::atomic::AtomicBool>,
}

/// What the store wrote to the window index for a run that has not ended,
/// so its next writes need not read the index back. Only `apply` writes
/// these keys, one batch at a time, and while a run is active no other run
/// of its window writes the window's record ("one active run per window";
/// event runs write none): so what was written is what is stored. The
/// entry goes when the run ends; a restart starts empty and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunIndex {
    /// The state the window's record holds for this run.
    pub window: Option<crate::run::RunState>,
}

/// Group commit: a writer applies its batch, then waits for a flush that
/// started after its write. One flush covers every write before it, so
/// concurrent writers share flushes instead of paying one each.
#[derive(Default)]
struct GroupCommit {
    written: AtomicU64,
    flushed: AtomicU64,
    lock: Mutex<()>,
}

pub(super) fn backend(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Backend { op, source }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// sled's own IO threads can hold the directory's lock for a moment
    /// after the last handle of a store was dropped (seen on a loaded
    /// machine when an engine reopens the store it just closed), so a busy
    /// lock is retried for a few seconds before it is an error. Another
    /// live process holding it still fails, just not at once.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match sled::Config::new()
                .path(path)
                // Space is cheaper than the CPU that compacting pages takes
                // on every commit of the hot path.
                .mode(sled::Mode::HighThroughput)
                .open()
            {
                Ok(db) => return Self::with_db(db),
                // sled reports a busy lock only as text.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        }
    }

    /// A store that lives only as long as this value (for `task run` without
    /// `--data`, and tests).
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|source| StoreError::Open {
                path: "<temporary>".into(),
                source,
            })?;
        Self::with_db(db)
    }

    fn with_db(db: sled::Db) -> Result<Self, StoreError> {
        let checkpoints = db.open_tree("checkpoints").map_err(backend("open tree"))?;
        let state = db.open_tree("state").map_err(backend("open tree"))?;
        let blobs = db.open_tree("blobs").map_err(backend("open tree"))?;
        let store = SledStore {
            db,
            checkpoints,
            state,
            blobs,
            group: Arc::default(),
            run_index: Arc::default(),
            fail_writes: Arc::default(),
            fail_window_reads: Arc::default(),
            writes_left: Arc::new(AtomicU64::new(u64::MAX)),
        };
        store.finish_tenant_deletions()?;
        store.convert_dataset_rows()?;
        Ok(store)
    }

    /// Converts dataset rows of the former one-entry-per-row layout into
    /// partition values, once: the default tree remembers that it is done,
    /// so later opens do not scan every dataset.
    fn convert_dataset_rows(&self) -> Result<(), StoreError> {
        const MARK: &[u8] = b"dataset-layout";
        const PARTITIONS: &[u8] = b"partitions";
        let op = "converting dataset rows to partitions";
        if self.db.get(MARK).map_err(backend(op))?.as_deref() == Some(PARTITIONS) {
            return Ok(());
        }
        let n = super::partitions::migrate_rows(&self.state)?;
        if n > 0 {
            tracing::info!(
                rows = n,
                "converted dataset rows to one value per partition"
            );
        }
        self.db.insert(MARK, PARTITIONS).map_err(backend(op))?;
        self.flush(op)
    }

    /// While `on`, every state change ([`super::StateStore::apply`]) fails
    /// with an I/O error, as on a full or read-only disk. For tests of what
    /// the engine does when its store cannot write.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, on: bool) {
        self.writes_left.store(u64::MAX, Ordering::SeqCst);
        self.fail_writes.store(on, Ordering::SeqCst);
    }

    /// Lets `n` more state changes succeed, then fails every later one (a
    /// disk filling up at a chosen moment).
    #[doc(hidden)]
    pub fn inject_write_failures_after(&self, n: u64) {
        self.fail_writes.store(n == 0, Ordering::SeqCst);
        self.writes_left.store(n, Ordering::SeqCst);
    }

    /// While `on`, range reads of the window index (`windows`) fail with an
    /// I/O error.
    #[doc(hidden)]
    pub fn inject_window_read_failures(&self, on: bool) {
        self.fail_window_reads.store(on, Ordering::SeqCst);
    }

    pub(super) fn check_injected_read_failure(&self, op: &'static str) -> Result<(), StoreError> {
        if self.fail_window_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                op,
                source: sled::Error::Io(std::io::Error::other("injected read failure")),
            });
        }
        Ok(())
    }

    pub(super) fn check_injected_failure(&self, op: &'static str) -> Result<(), StoreError> {
        let left = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                u64::MAX | 0 => None,
                n => Some(n - 1),
            });
        if left == Ok(1) {
            self.fail_writes.store(true, Ordering::SeqCst);
        }
        if self.fail_writes.load(Ordering::SeqCst) && left != Ok(1) {
            return Err(StoreError::Backend {
                op,
                source: sled::Error::Io(std::io::Error::other(
                    "injected write failure (no space left on device)",
                )),
            });
        }
        Ok(())
    }

    /// Makes every write that returned before this call durable.
    pub(super) fn flush(&self, op: &'static str) -> Result<(), StoreError> {
        let mine = self.group.written.fetch_add(1, Ordering::SeqCst) + 1;
        // A poisoned lock only means another flusher panicked; the counters
        // are still right.
        let _guard = self.group.lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.group.flushed.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        let upto = self.group.written.load(Ordering::SeqCst);
        self.db.flush().map_err(backend(op))?;
        self.group.flushed.store(upto, Ordering::SeqCst);
        Ok(())
    }

    /// Stages the replacement of `partition` of each dataset in `outputs`:
    /// one value per partition (see [`super::partitions`]).
    pub(super) fn stage_outputs(
        &self,
        batch: &mut sled::Batch,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<i64, StoreError> {
        const OP: &str = "committing dataset writes";
        let mut delta = 0i64;
        for (dataset, rows) in outputs.by_dataset() {
            let k = keys::partition_prefix(tenant, dataset, partition);
            delta -= self.stored_len(OP, &k)?;
            let v = super::partitions::encode(rows);
            delta += (k.len() + v.len()) as i64;
            batch.insert(k, v);
        }
        Ok(delta)
    }

    /// What committing `outputs` would change the tenant's stored dataset
    /// bytes by (the partitions they replace are subtracted), counted
    /// without encoding anything.
    pub(super) fn outputs_delta(
        &self,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<i64, StoreError> {
        const OP: &str = "sizing dataset writes";
        let mut delta = 0i64;
        for (dataset, rows) in outputs.by_dataset() {
            let k = keys::partition_prefix(tenant, dataset, partition);
            delta -= self.stored_len(OP, &k)?;
            let size = rows.map(|(key, value)| super::partitions::row_len(key, value));
            delta += (k.len() + super::partitions::encoded_len(size.sum())) as i64;
        }
        Ok(delta)
    }

    /// Bytes the entry at `k` takes (key and value), 0 if there is none.
    fn stored_len(&self, op: &'static str, k: &[u8]) -> Result<i64, StoreError> {
        Ok(self
            .state
            .get(k)
            .map_err(backend(op))?
            .map_or(0, |old| (k.len() + old.len()) as i64))
    }

    pub(super) fn usage_get(&self, tenant: &str) -> Result<u64, StoreError> {
        const OP: &str = "reading usage";
        Ok(self
            .state
            .get(keys::tenant_prefix(keys::USAGE, tenant))
            .map_err(backend(OP))?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }
}

impl TaskData for SledStore {
    fn checkpoint_load(&self, s: &TaskScope) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "loading a checkpoint";
        let key = keys::checkpoint_key(&s.tenant, &s.workflow, &s.task, s.window_start);
        match self.checkpoints.get(key).map_err(backend(OP))? {
            None => Ok(None),
            Some(raw) => keys::decode_value(OP, &raw).map(Some),
        }
    }

    fn checkpoint_save(&self, s: &TaskScope, data: &[u8]) -> Result<(), StoreError> {
        const OP: &str = "saving a checkpoint";
        let key = keys::checkpoint_key(&s.tenant, &s.workflow, &s.task, s.window_start);
        self.checkpoints
            .insert(key, keys::encode_value(data))
            .map_err(backend(OP))?;
        // A checkpoint exists to survive a crash: it must be on disk before
        // the guest moves on.
        self.flush(OP)
    }

    fn checkpoint_clear(&self, s: &TaskScope) -> Result<(), StoreError> {
        const OP: &str = "clearing a checkpoint";
        let key = keys::checkpoint_key(&s.tenant, &s.workflow, &s.task, s.window_start);
        self.checkpoints.remove(key).map_err(backend(OP))?;
        self.flush(OP)
    }

    fn dataset_get_versioned(
        &self,
        tenant: &str,
        dataset: &str,
        partition: i64,
        key: &str,
        with_version: bool,
    ) -> Result<(Option<Vec<u8>>, Option<String>), StoreError> {
        const OP: &str = "reading a dataset";
        let k = keys::partition_prefix(tenant, dataset, partition);
        match self.state.get(k).map_err(backend(OP))? {
            None => Ok((None, None)),
            Some(raw) => Ok((
                super::partitions::rows(OP, &raw)?
                    .find(key)?
                    .map(<[u8]>::to_vec),
                with_version.then(|| super::partitions::version(&raw)),
            )),
        }
    }

    fn partition_version(
        &self,
        tenant: &str,
        dataset: &str,
        partition: i64,
    ) -> Result<Option<String>, StoreError> {
        const OP: &str = "reading a partition's version";
        let k = keys::partition_prefix(tenant, dataset, partition);
        Ok(self
            .state
            .get(k)
            .map_err(backend(OP))?
            .map(|raw| super::partitions::version(&raw)))
    }

    fn dataset_scan_versioned(
        &self,
        tenant: &str,
        dataset: &str,
        partitions: Range<i64>,
        prefix: &str,
        after: Option<(i64, &str)>,
        limit: usize,
        with_versions: bool,
    ) -> Result<super::ScanPage, StoreError> {
        const OP: &str = "scanning a dataset";
        let base = keys::dataset_prefix(tenant, dataset);
        let mut out = Vec::new();
        let mut versions = Vec::new();
        if partitions.is_empty() || limit == 0 {
            return Ok((out, versions));
        }
        // Resume inside the partition of `after`, strictly after its key.
        let (first, after_key) = match after {
            Some((p, k)) if p >= partitions.start => (p, Some(k)),
            _ => (partitions.start, None),
        };
        if first >= partitions.end {
            return Ok((out, versions));
        }
        let lo = keys::partition_prefix(tenant, dataset, first);
        let hi = keys::partition_prefix(tenant, dataset, partitions.end);
        for item in self.state.range(lo..hi) {
            let (k, v) = item.map_err(backend(OP))?;
            let partition = (k.len() == base.len() + 8)
                .then(|| keys::decode_instant(&k[base.len()..]))
                .flatten()
                .ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    detail: "undecodable partition key".into(),
                })?;
            let skip_to = after_key.filter(|_| partition == first);
            let mut rows = super::partitions::rows(OP, &v)?;
            while let Some((key, value)) = rows.next_row()? {
                if skip_to.is_some_and(|a| key <= a) || key < prefix {
                    continue;
                }
                if !key.starts_with(prefix) {
                    // Keys are sorted: nothing further in this partition.
                    break;
                }
                if with_versions && versions.last().map(|(p, _)| *p) != Some(partition) {
                    versions.push((partition, super::partitions::version(&v)));
                }
                out.push(DatasetEntry {
                    partition,
                    key: key.to_owned(),
                    value: value.to_vec(),
                });
                if out.len() == limit {
                    return Ok((out, versions));
                }
            }
        }
        Ok((out, versions))
    }

    fn dataset_commit(
        &self,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<(), StoreError> {
        const OP: &str = "committing dataset writes";
        let mut batch = sled::Batch::default();
        self.stage_outputs(&mut batch, tenant, partition, outputs)?;
        // One batch on one tree is atomic: readers see the old partition or
        // the new one, never a mix.
        self.state.apply_batch(batch).map_err(backend(OP))?;
        self.flush(OP)
    }
}
