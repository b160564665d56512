//! The host side of `blobstore`: reads go to the container as it is;
//! writes are staged under the attempt's own prefix, recorded durably
//! before the first one, and handed to the engine in the report, which
//! commits them as the window's output with the task's success.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::attempt::AttemptError;
use super::bindings::blobstore::{
    BlobError as WitError, ObjectMetadata, ObjectPage, OutputObject as WitObject, PublishedOutput,
};
use super::host::HostState;
use crate::blob::{self, BlobError, Container};
use crate::store::{OutputObject, StagingRecord};

/// Most objects one `list-objects` call returns.
const MAX_LIST: u32 = 1000;

/// The containers an attempt may use: every connection its workflow names,
/// opened, or why it cannot be used as a container.
#[derive(Clone, Default)]
pub struct ObjectAccess(pub Arc<HashMap<String, Result<Container, String>>>);

impl std::fmt::Debug for ObjectAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl PartialEq for ObjectAccess {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ObjectAccess {}

/// What an attempt staged in one container.
#[derive(Debug, Clone)]
pub struct StagedContainer {
    pub container: Container,
    /// The durable marker written before the first object.
    pub marker: StagingRecord,
    /// Objects by the name the task wrote.
    pub objects: BTreeMap<String, OutputObject>,
}

/// Object writes of one attempt, by container.
#[derive(Debug, Default)]
pub struct StagedObjects {
    pub containers: BTreeMap<String, StagedContainer>,
    bytes: u64,
}

impl StagedObjects {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }
}

/// Per-attempt state of the interface.
#[derive(Debug, Default)]
pub struct BlobState {
    pub(super) staged: StagedObjects,
    pub(super) run_id: u64,
    pub(super) attempt: u32,
}

fn wit(e: BlobError) -> WitError {
    let m = e.to_string();
    match e {
        BlobError::InvalidName { .. } => WitError::InvalidName(m),
        BlobError::NotFound { .. } => WitError::NotFound(m),
        BlobError::Denied { .. } => WitError::Denied(m),
        BlobError::Unavailable { .. } => WitError::Unavailable(m),
        BlobError::Setup { .. } => WitError::NoSuchContainer(m),
    }
}

impl HostState {
    fn container(&self, name: &str) -> Result<Container, WitError> {
        match self.limits.objects.0.get(name) {
            Some(Ok(c)) => Ok(c.clone()),
            Some(Err(why)) => Err(WitError::NoSuchContainer(format!(
                "connection {name}: {why}"
            ))),
            None => Err(WitError::NoSuchContainer(format!(
                "{name:?} is not a connection this workflow names in `connections`"
            ))),
        }
    }

    fn window_dir(&self) -> String {
        blob::window_dir(
            &self.scope.workflow,
            &self.scope.task,
            self.scope.window_start,
        )
    }
}

impl super::bindings::blobstore::Host for HostState {
    async fn get_data(
        &mut self,
        container: String,
        name: String,
        start: u64,
        end: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        let c = match self.container(&container) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = blob::check_object_name(&name) {
            return Ok(Err(wit(e)));
        }
        // A read is bounded by the attempt's memory anyway; this keeps one
        // call from buffering more than the guest could take.
        let end = end.min(start.saturating_add(self.limits.memory_bytes as u64));
        Ok(c.get_range(&name, start, end).await.map_err(wit))
    }

    async fn write_data(
        &mut self,
        container: String,
        name: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let c = match self.container(&container) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = blob::check_object_name(&name) {
            return Ok(Err(wit(e)));
        }
        let previous = self
            .blob
            .staged
            .containers
            .get(&container)
            .and_then(|s| s.objects.get(&name))
            .map_or(0, |o| o.size);
        let bytes = self.blob.staged.bytes - previous + data.len() as u64;
        if bytes > self.limits.object_bytes {
            let limit = self.limits.object_bytes;
            return Err(self.trap(AttemptError::ObjectLimit { limit }));
        }
        let dir = self.window_dir();
        let prefix = blob::attempt_prefix(&dir, self.blob.run_id, self.blob.attempt);
        if !self.blob.staged.containers.contains_key(&container) {
            let marker = StagingRecord {
                connection: container.clone(),
                workflow: self.scope.workflow.clone(),
                task: self.scope.task.clone(),
                window_start: self.scope.window_start,
                run_id: self.blob.run_id,
                attempt: self.blob.attempt,
                prefix: prefix.clone(),
            };
            // Durable before the first object exists, so a crash after it
            // leaves a marker the garbage collector finds.
            if let Err(e) = self.data.staging_mark(&self.scope.tenant, &marker) {
                return Err(self.store_failure("recording staged objects", e));
            }
            self.blob.staged.containers.insert(
                container.clone(),
                StagedContainer {
                    container: c.clone(),
                    marker,
                    objects: BTreeMap::new(),
                },
            );
        }
        let key = format!("{prefix}{name}");
        let sha256 = hex::encode(Sha256::digest(&data));
        let size = data.len() as u64;
        if let Err(e) = c.put(&key, data).await {
            return Ok(Err(wit(e)));
        }
        self.blob.staged.bytes = bytes;
        if let Some(s) = self.blob.staged.containers.get_mut(&container) {
            s.objects.insert(
                name.clone(),
                OutputObject {
                    name,
                    key,
                    size,
                    sha256,
                },
            );
        }
        Ok(Ok(()))
    }

    async fn list_objects(
        &mut self,
        container: String,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<ObjectPage, WitError>> {
        let c = match self.container(&container) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = blob::check_prefix(&prefix) {
            return Ok(Err(wit(e)));
        }
        let limit = limit.clamp(1, MAX_LIST) as usize;
        let all = match c.list(&prefix).await {
            Ok(all) => all,
            Err(e) => return Ok(Err(wit(e))),
        };
        let page: Vec<ObjectMetadata> = all
            .into_iter()
            .filter(|o| after.as_ref().is_none_or(|a| o.key.as_str() > a.as_str()))
            .take(limit)
            .map(|o| ObjectMetadata {
                name: o.key,
                size: o.size,
                created_at: o.modified_ms,
            })
            .collect();
        let next = if page.len() == limit {
            page.last().map(|o| o.name.clone())
        } else {
            None
        };
        Ok(Ok(ObjectPage {
            objects: page,
            next,
        }))
    }

    async fn object_info(
        &mut self,
        container: String,
        name: String,
    ) -> wasmtime::Result<Result<ObjectMetadata, WitError>> {
        let c = match self.container(&container) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = blob::check_object_name(&name) {
            return Ok(Err(wit(e)));
        }
        Ok(c.head(&name)
            .await
            .map(|o| ObjectMetadata {
                name,
                size: o.size,
                created_at: o.modified_ms,
            })
            .map_err(wit))
    }

    async fn delete_object(
        &mut self,
        container: String,
        name: String,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let c = match self.container(&container) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = blob::check_object_name(&name) {
            return Ok(Err(wit(e)));
        }
        let removed = self
            .blob
            .staged
            .containers
            .get_mut(&container)
            .and_then(|s| s.objects.remove(&name));
        let Some(o) = removed else {
            return Ok(Err(WitError::NotFound(format!(
                "{container}: this attempt wrote no object {name:?}; published output changes only by a later successful attempt of its window"
            ))));
        };
        self.blob.staged.bytes -= o.size;
        Ok(c.delete(&o.key).await.map_err(wit))
    }

    async fn window_output(
        &mut self,
        container: String,
        workflow: String,
        task: String,
        window_start: i64,
    ) -> wasmtime::Result<Result<Option<PublishedOutput>, WitError>> {
        if let Err(e) = self.container(&container) {
            return Ok(Err(e));
        }
        let found = self.data.output_get(
            &self.scope.tenant,
            &container,
            &workflow,
            &task,
            window_start,
        );
        let record = match found {
            Ok(r) => r,
            Err(e) => {
                return Ok(Err(WitError::Unavailable(format!(
                    "reading the output of {workflow}/{task}: {e}"
                ))))
            }
        };
        Ok(Ok(record.map(|r| PublishedOutput {
            run_id: r.run_id.to_string(),
            attempt: r.attempt,
            committed_at: r.committed_ms,
            objects: r
                .objects
                .into_iter()
                .map(|o| WitObject {
                    name: o.name,
                    key: o.key,
                    size: o.size,
                    sha256: o.sha256,
                })
                .collect(),
        })))
    }
}
