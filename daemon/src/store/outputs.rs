//! Object-storage outputs as the store knows them: which objects are the
//! published output of a task's window (the truth readers inside Tidemark
//! go by, committed in the same batch as the task's success), which of
//! those still have to be published to the object store itself, and which
//! attempts have staged objects that may become garbage.

use serde::{Deserialize, Serialize};

use super::keys::{self, OUTPUT, OUTPUT_PENDING, STAGING};
use super::sled_store::{backend, SledStore};
use super::StoreError;

/// One object of a window's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputObject {
    /// The name the task wrote.
    pub name: String,
    /// Where it is stored, relative to the container's root.
    pub key: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// The output of one task in one window in one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub connection: String,
    pub workflow: String,
    pub task: String,
    pub window_start: i64,
    pub run_id: u64,
    pub attempt: u32,
    pub committed_ms: i64,
    pub objects: Vec<OutputObject>,
    /// The manifest in the object store names exactly these objects.
    pub published: bool,
    /// The automatic check of the published output, for workflows that
    /// declare one (`[checks] outputs = "after_window"`); `None` otherwise.
    /// Records written before checks existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<OutputCheckRecord>,
}

impl OutputRecord {
    /// Whether the publisher still owes this output work: its manifest, or
    /// its declared check.
    pub fn work_left(&self) -> bool {
        !self.published || self.check_pending()
    }

    pub fn check_pending(&self) -> bool {
        self.check
            .as_ref()
            .is_some_and(|c| c.state == CheckState::Pending)
    }
}

/// Where a declared output check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Committed; checked once published and its run has ended.
    Pending,
    Passed,
    /// The object store does not hold what was committed.
    Failed,
}

/// The result of the automatic check of one window output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputCheckRecord {
    pub state: CheckState,
    /// When it ran.
    pub checked_ms: Option<i64>,
    /// What the window's manifest said, once checked.
    pub manifest: Option<crate::blob::ManifestState>,
    pub missing: Vec<String>,
    pub size_mismatch: Vec<String>,
    pub checksum_mismatch: Vec<String>,
    pub extra: Vec<String>,
}

impl OutputCheckRecord {
    pub fn pending() -> Self {
        OutputCheckRecord {
            state: CheckState::Pending,
            checked_ms: None,
            manifest: None,
            missing: Vec::new(),
            size_mismatch: Vec::new(),
            checksum_mismatch: Vec::new(),
            extra: Vec::new(),
        }
    }
}

/// An attempt that has written objects to a container. Written durably
/// before its first object, removed when the objects are published (with
/// the success) or deleted, so a crash in between leaves a trace for the
/// garbage collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingRecord {
    pub connection: String,
    pub workflow: String,
    pub task: String,
    pub window_start: i64,
    pub run_id: u64,
    pub attempt: u32,
    /// Every staged key starts with this (relative to the container's root).
    pub prefix: String,
}

/// Output records and staging markers.
pub trait OutputStore: Send + Sync {
    fn output_get(
        &self,
        tenant: &str,
        connection: &str,
        workflow: &str,
        task: &str,
        window_start: i64,
    ) -> Result<Option<OutputRecord>, StoreError>;
    /// Outputs of one workflow's windows in `[since, until)`, every task
    /// and container.
    fn outputs_of(
        &self,
        tenant: &str,
        workflow: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<OutputRecord>, StoreError>;
    /// Outputs committed but not yet published, or published with their
    /// declared check still to run, of every tenant.
    fn outputs_pending(&self) -> Result<Vec<(String, OutputRecord)>, StoreError>;
    /// Marks an output published if the stored record is still the one the
    /// publisher wrote (same run and attempt); `false` if a newer commit
    /// replaced it, whose own publish is then still pending. An output
    /// whose check is pending stays on the work list.
    fn output_published(&self, tenant: &str, r: &OutputRecord) -> Result<bool, StoreError>;
    /// Records the check of a published output, under the same condition
    /// (a newer commit gets its own check), and takes it off the work list.
    fn output_checked(
        &self,
        tenant: &str,
        r: &OutputRecord,
        check: OutputCheckRecord,
    ) -> Result<bool, StoreError>;
    /// Records durably that an attempt is about to stage objects.
    fn staging_mark(&self, tenant: &str, s: &StagingRecord) -> Result<(), StoreError>;
    fn staging_clear(&self, tenant: &str, s: &StagingRecord) -> Result<(), StoreError>;
    /// Every staging marker of every tenant.
    fn staging_all(&self) -> Result<Vec<(String, StagingRecord)>, StoreError>;
}

/// The part of an output key after its kind byte and tenant.
fn output_rest(connection: &str, workflow: &str, task: &str, window_start: i64) -> Vec<u8> {
    let mut k = Vec::new();
    keys::push_name(&mut k, workflow);
    keys::push_name(&mut k, connection);
    keys::push_name(&mut k, task);
    k.extend_from_slice(&keys::instant(window_start));
    k
}

fn output_key(kind: u8, tenant: &str, r: &OutputRecord) -> Vec<u8> {
    let mut k = keys::tenant_prefix(kind, tenant);
    k.extend(output_rest(
        &r.connection,
        &r.workflow,
        &r.task,
        r.window_start,
    ));
    k
}

fn staging_key(tenant: &str, s: &StagingRecord) -> Vec<u8> {
    let mut k = keys::u64_key(keys::tenant_prefix(STAGING, tenant), s.run_id);
    keys::push_name(&mut k, &s.task);
    k.extend_from_slice(&s.attempt.to_be_bytes());
    keys::push_name(&mut k, &s.connection);
    k
}

/// Which commit a work-list entry is for.
fn pending_value(r: &OutputRecord) -> Vec<u8> {
    let mut v = r.run_id.to_be_bytes().to_vec();
    v.extend_from_slice(&r.attempt.to_be_bytes());
    keys::encode_value(&v)
}

/// The tenant of a key `kind tenant 0 ...`.
fn key_tenant(key: &[u8]) -> Option<String> {
    let rest = key.get(1..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

impl SledStore {
    /// Adds committed outputs to a state batch: each replaces the record of
    /// its window and joins the publisher's work list, and the attempt's
    /// staging markers go (the record now owns its objects).
    pub(super) fn stage_object_outputs(
        &self,
        batch: &mut sled::Batch,
        outputs: &[(String, OutputRecord)],
    ) {
        for (tenant, r) in outputs {
            batch.insert(output_key(OUTPUT, tenant, r), keys::encode_json(r));
            batch.insert(output_key(OUTPUT_PENDING, tenant, r), pending_value(r));
            let marker = StagingRecord {
                connection: r.connection.clone(),
                workflow: r.workflow.clone(),
                task: r.task.clone(),
                window_start: r.window_start,
                run_id: r.run_id,
                attempt: r.attempt,
                prefix: String::new(),
            };
            batch.remove(staging_key(tenant, &marker));
        }
    }

    /// Changes the stored record of `r`'s window if it is still `r`'s
    /// commit (same run and attempt), and takes it off the publisher's
    /// work list once nothing is left to do; `false` if a newer commit
    /// replaced it.
    fn output_update(
        &self,
        op: &'static str,
        tenant: &str,
        r: &OutputRecord,
        change: impl FnOnce(&mut OutputRecord),
    ) -> Result<bool, StoreError> {
        self.check_injected_failure(op)?;
        let key = output_key(OUTPUT, tenant, r);
        let Some(old) = self.state.get(&key).map_err(backend(op))? else {
            return Ok(false);
        };
        let mut current: OutputRecord = keys::decode_json(op, &old)?;
        if (current.run_id, current.attempt) != (r.run_id, r.attempt) {
            return Ok(false);
        }
        change(&mut current);
        // Compare-and-swap so a commit that lands meanwhile (a re-run of
        // the window) is never marked by an older publish or check.
        let swapped = self
            .state
            .compare_and_swap(&key, Some(old), Some(keys::encode_json(&current)))
            .map_err(backend(op))?;
        if swapped.is_err() {
            return Ok(false);
        }
        if !current.work_left() {
            // Likewise, the work-list entry goes only if it is still this one.
            let _ = self
                .state
                .compare_and_swap(
                    output_key(OUTPUT_PENDING, tenant, r),
                    Some(pending_value(r)),
                    None as Option<Vec<u8>>,
                )
                .map_err(backend(op))?;
        }
        self.flush(op)?;
        Ok(true)
    }

    fn all_json<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        kind: u8,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let mut out = Vec::new();
        for item in self.state.scan_prefix([kind]) {
            let (k, v) = item.map_err(backend(op))?;
            let tenant = key_tenant(&k).ok_or_else(|| StoreError::Corrupt {
                op,
                detail: "key without a tenant".into(),
            })?;
            out.push((tenant, keys::decode_json(op, &v)?));
        }
        Ok(out)
    }
}

impl OutputStore for SledStore {
    fn output_get(
        &self,
        tenant: &str,
        connection: &str,
        workflow: &str,
        task: &str,
        window_start: i64,
    ) -> Result<Option<OutputRecord>, StoreError> {
        const OP: &str = "reading a window's output";
        let mut k = keys::tenant_prefix(OUTPUT, tenant);
        k.extend(output_rest(connection, workflow, task, window_start));
        match self.state.get(k).map_err(backend(OP))? {
            None => Ok(None),
            Some(v) => keys::decode_json(OP, &v).map(Some),
        }
    }

    fn outputs_of(
        &self,
        tenant: &str,
        workflow: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<OutputRecord>, StoreError> {
        const OP: &str = "listing a workflow's outputs";
        let prefix = keys::named_prefix(OUTPUT, tenant, workflow);
        let mut out = Vec::new();
        for item in self.state.scan_prefix(prefix) {
            let (_, v) = item.map_err(backend(OP))?;
            let r: OutputRecord = keys::decode_json(OP, &v)?;
            if (since..until).contains(&r.window_start) {
                out.push(r);
            }
        }
        out.sort_by(|a, b| {
            (a.window_start, &a.task, &a.connection).cmp(&(b.window_start, &b.task, &b.connection))
        });
        Ok(out)
    }

    fn outputs_pending(&self) -> Result<Vec<(String, OutputRecord)>, StoreError> {
        const OP: &str = "listing outputs to publish";
        let mut out = Vec::new();
        for item in self.state.scan_prefix([OUTPUT_PENDING]) {
            let (k, _) = item.map_err(backend(OP))?;
            let mut record_key = k.to_vec();
            record_key[0] = OUTPUT;
            let tenant = key_tenant(&k).ok_or_else(|| StoreError::Corrupt {
                op: OP,
                detail: "pending output key without a tenant".into(),
            })?;
            if let Some(v) = self.state.get(&record_key).map_err(backend(OP))? {
                out.push((tenant, keys::decode_json(OP, &v)?));
            }
        }
        Ok(out)
    }

    fn output_published(&self, tenant: &str, r: &OutputRecord) -> Result<bool, StoreError> {
        self.output_update("marking an output published", tenant, r, |rec| {
            rec.published = true;
        })
    }

    fn output_checked(
        &self,
        tenant: &str,
        r: &OutputRecord,
        check: OutputCheckRecord,
    ) -> Result<bool, StoreError> {
        self.output_update("recording an output's check", tenant, r, |rec| {
            rec.check = Some(check);
        })
    }

    fn staging_mark(&self, tenant: &str, s: &StagingRecord) -> Result<(), StoreError> {
        const OP: &str = "recording staged objects";
        self.check_injected_failure(OP)?;
        self.state
            .insert(staging_key(tenant, s), keys::encode_json(s))
            .map_err(backend(OP))?;
        self.flush(OP)
    }

    fn staging_clear(&self, tenant: &str, s: &StagingRecord) -> Result<(), StoreError> {
        const OP: &str = "clearing staged objects";
        self.state
            .remove(staging_key(tenant, s))
            .map_err(backend(OP))?;
        self.flush(OP)
    }

    fn staging_all(&self) -> Result<Vec<(String, StagingRecord)>, StoreError> {
        self.all_json("listing staged objects", STAGING)
    }
}
