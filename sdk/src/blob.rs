//! Object storage: the containers (object-storage connections) a workflow
//! names, with the window's output staged and published exactly once.

use crate::bindings::tidemark::task::blobstore::{self, BlobError};
use crate::{Error, Result};

/// One object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative to the container's root.
    pub name: String,
    pub size: u64,
    /// Milliseconds since the epoch, when the store says.
    pub modified: Option<i64>,
}

/// One object of a published window output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputObject {
    /// The name its task wrote.
    pub name: String,
    /// Where it is stored: pass to [`Container::read`].
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

/// A window's published output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedOutput {
    pub run_id: String,
    pub attempt: u32,
    pub committed_at: i64,
    pub objects: Vec<OutputObject>,
}

/// A container: a connection of kind `s3` or `fs` that the workflow names
/// in `connections`.
///
/// ```ignore
/// let lake = Container::new("lake");
/// lake.write("part-0.jsonl", b"{\"n\":1}\n")?;   // this window's output
/// let input = lake.read("raw/2026-01-01.json")?; // anything in the bucket
/// ```
///
/// What this attempt writes becomes the window's output only when the
/// attempt succeeds, replacing the previous output as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    name: String,
}

fn err(e: BlobError) -> Error {
    match e {
        BlobError::Unavailable(m) => Error::retryable(m),
        BlobError::NoSuchContainer(m)
        | BlobError::InvalidName(m)
        | BlobError::NotFound(m)
        | BlobError::Denied(m) => Error::fatal(m),
    }
}

impl Container {
    pub fn new(name: impl Into<String>) -> Self {
        Container { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stages one object of this window's output.
    pub fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        blobstore::write_data(&self.name, name, data).map_err(err)
    }

    /// The whole object.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.read_range(name, 0, u64::MAX)
    }

    /// Bytes `[start, end)` of an object.
    pub fn read_range(&self, name: &str, start: u64, end: u64) -> Result<Vec<u8>> {
        blobstore::get_data(&self.name, name, start, end).map_err(err)
    }

    /// Whether an object exists, and its size.
    pub fn info(&self, name: &str) -> Result<Option<ObjectInfo>> {
        match blobstore::object_info(&self.name, name) {
            Ok(m) => Ok(Some(ObjectInfo {
                name: m.name,
                size: m.size,
                modified: m.created_at,
            })),
            Err(BlobError::NotFound(_)) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Every object whose name starts with `prefix`, in name order.
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page =
                blobstore::list_objects(&self.name, prefix, after.as_deref(), 1000).map_err(err)?;
            out.extend(page.objects.into_iter().map(|m| ObjectInfo {
                name: m.name,
                size: m.size,
                modified: m.created_at,
            }));
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Drops an object this attempt wrote from its output.
    pub fn discard(&self, name: &str) -> Result<()> {
        blobstore::delete_object(&self.name, name).map_err(err)
    }

    /// The published output of `task` of `workflow` for the window that
    /// starts at `window_start` (ms), as committed.
    pub fn output(
        &self,
        workflow: &str,
        task: &str,
        window_start: i64,
    ) -> Result<Option<PublishedOutput>> {
        let found =
            blobstore::window_output(&self.name, workflow, task, window_start).map_err(err)?;
        Ok(found.map(|o| PublishedOutput {
            run_id: o.run_id,
            attempt: o.attempt,
            committed_at: o.committed_at,
            objects: o
                .objects
                .into_iter()
                .map(|x| OutputObject {
                    name: x.name,
                    key: x.key,
                    size: x.size,
                    sha256: x.sha256,
                })
                .collect(),
        }))
    }

    /// The objects of a published window output, `(name, bytes)`, in name
    /// order; empty if that window published nothing here.
    pub fn read_output(
        &self,
        workflow: &str,
        task: &str,
        window_start: i64,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let Some(out) = self.output(workflow, task, window_start)? else {
            return Ok(Vec::new());
        };
        out.objects
            .into_iter()
            .map(|o| Ok((o.name, self.read(&o.key)?)))
            .collect()
    }
}
