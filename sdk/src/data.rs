use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::tidemark::task::{checkpoint, dataset};
use crate::{Error, Result, Window};

/// Typed access to this task's checkpoint in this window, stored as JSON.
///
/// ```ignore
/// let cp = Checkpoint::<Progress>::new();
/// let mut progress = cp.load()?.unwrap_or_default();
/// // ... work, then every so often:
/// cp.save(&progress)?;
/// ```
pub struct Checkpoint<T> {
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Default for Checkpoint<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Serialize + DeserializeOwned> Checkpoint<T> {
    pub fn new() -> Self {
        Checkpoint { _type: PhantomData }
    }

    /// The last saved state, if any attempt saved one.
    pub fn load(&self) -> Result<Option<T>> {
        match checkpoint::load() {
            None => Ok(None),
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        }
    }

    /// Durably replaces the saved state.
    pub fn save(&self, state: &T) -> Result<()> {
        let bytes = serde_json::to_vec(state)?;
        checkpoint::save(&bytes).map_err(|e| Error::fatal(format!("checkpoint: {e}")))
    }

    pub fn clear(&self) {
        checkpoint::clear()
    }
}

/// One committed key/value pair of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Start of the window whose partition holds the pair.
    pub partition: i64,
    pub key: String,
    pub value: Vec<u8>,
}

impl Entry {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.value)?)
    }
}

/// A named, tenant-scoped, window-partitioned dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    name: String,
}

impl Dataset {
    pub fn new(name: impl Into<String>) -> Self {
        Dataset { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stages `value` under `key` in the current window's partition; it
    /// becomes visible when the attempt succeeds.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        Ok(dataset::put(&self.name, key, value)?)
    }

    pub fn put_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.put(key, &serde_json::to_vec(value)?)
    }

    /// A committed value of the partition whose window starts at `partition`.
    pub fn get(&self, partition: i64, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(dataset::get(&self.name, partition, key)?)
    }

    pub fn get_json<T: DeserializeOwned>(&self, partition: i64, key: &str) -> Result<Option<T>> {
        match self.get(partition, key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        }
    }

    /// Committed entries of all partitions whose window start lies in
    /// `[since, until)` and whose key starts with `prefix`, in
    /// `(partition, key)` order, fetched page by page.
    pub fn scan(&self, since: i64, until: i64, prefix: &str) -> Scan {
        Scan {
            dataset: self.name.clone(),
            since,
            until,
            prefix: prefix.to_owned(),
            after: None,
            buffer: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Committed entries of the partitions inside `window` (for a daily task
    /// reading an hourly dataset: the day's 24 hourly partitions).
    pub fn scan_window(&self, window: &Window, prefix: &str) -> Scan {
        self.scan(window.start_ms, window.end_ms, prefix)
    }
}

/// Iterator over a dataset scan; each item is a `Result` because every page
/// is a host call that can fail.
pub struct Scan {
    dataset: String,
    since: i64,
    until: i64,
    prefix: String,
    after: Option<(i64, String)>,
    buffer: std::vec::IntoIter<dataset::Entry>,
    done: bool,
}

const PAGE: u32 = 512;

impl Iterator for Scan {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.buffer.next() {
                return Some(Ok(Entry {
                    partition: e.partition,
                    key: e.key,
                    value: e.value,
                }));
            }
            if self.done {
                return None;
            }
            let page = match dataset::scan(
                &self.dataset,
                self.since,
                self.until,
                &self.prefix,
                self.after.as_ref().map(|(p, k)| (p, k.as_str())),
                PAGE,
            ) {
                Ok(page) => page,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            };
            self.done = page.next.is_none();
            self.after = page.next;
            self.buffer = page.entries.into_iter();
        }
    }
}
