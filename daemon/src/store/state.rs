//! Engine state: plugins, workflow versions, runs, the per-window index,
//! live-scheduling cursors and attempt records.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;

use super::keys;
use super::records::{AttemptRecord, Changes, PluginMeta, StoredWorkflow, WindowRecord};
use super::sled_store::{backend, SledStore};
use super::{StagedOutputs, StoreError, TaskData};
use crate::run::Run;
use crate::workflow::{PluginRef, RawWorkflow};

/// Everything the engine persists. Implementations make each [`apply`]
/// atomic and durable before it returns.
///
/// [`apply`]: StateStore::apply
pub trait StateStore:
    TaskData
    + super::TenantStore
    + super::BackfillStore
    + super::ConnectionStore
    + super::OutputStore
    + super::NotifyStore
{
    /// Stores a plugin; returns the existing version if the newest one has
    /// the same digest, else a new version.
    fn plugin_put(
        &self,
        tenant: &str,
        name: &str,
        digest: &str,
        wasm: &[u8],
        exports: &[String],
        now: i64,
    ) -> Result<PluginMeta, StoreError>;
    /// Deletes one version; its blob goes too unless another version of the
    /// tenant has the same digest. `false` if there was no such version.
    fn plugin_delete(&self, tenant: &str, name: &str, version: u32) -> Result<bool, StoreError>;
    fn plugin_resolve(
        &self,
        tenant: &str,
        plugin: &PluginRef,
    ) -> Result<Option<PluginMeta>, StoreError>;
    fn plugin_blob(&self, tenant: &str, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn plugin_list(&self, tenant: &str) -> Result<Vec<PluginMeta>, StoreError>;

    /// Stores a new version unless `raw` equals the newest; returns the
    /// version in force.
    fn workflow_put(
        &self,
        tenant: &str,
        raw: &RawWorkflow,
        now: i64,
    ) -> Result<StoredWorkflow, StoreError>;
    /// The given version, or the newest.
    fn workflow_get(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError>;
    /// The newest version of every workflow of every tenant: `(tenant, wf)`.
    fn workflows_all(&self) -> Result<Vec<(String, StoredWorkflow)>, StoreError>;
    /// Every stored version of a workflow, oldest first.
    fn workflow_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<StoredWorkflow>, StoreError>;
    /// Removes a workflow's versions and its live cursor; its runs and the
    /// datasets it wrote stay.
    fn workflow_delete(&self, tenant: &str, name: &str) -> Result<(), StoreError>;

    fn next_run_id(&self) -> Result<u64, StoreError>;
    fn apply(&self, changes: &Changes) -> Result<(), StoreError>;
    /// Dataset bytes the tenant stores (keys and values, as written).
    fn dataset_bytes(&self, tenant: &str) -> Result<u64, StoreError>;
    /// How committing `outputs` to `partition` would change
    /// [`StateStore::dataset_bytes`].
    fn dataset_delta(
        &self,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<i64, StoreError>;
    fn run_get(&self, tenant: &str, id: u64) -> Result<Option<Run>, StoreError>;
    /// Every run that has not ended.
    fn runs_active(&self) -> Result<Vec<Run>, StoreError>;
    /// Latest run per window of `workflow`, windows starting in `[from, to)`.
    fn windows(
        &self,
        tenant: &str,
        workflow: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<(i64, WindowRecord)>, StoreError>;
    /// The newest window of `workflow` that has a run.
    fn window_latest(
        &self,
        tenant: &str,
        workflow: &str,
    ) -> Result<Option<(i64, WindowRecord)>, StoreError> {
        Ok(self.windows_newest(tenant, workflow, 1)?.pop())
    }
    /// The `limit` newest windows of `workflow` that have a run, newest
    /// first (a bounded read of recent history).
    fn windows_newest(
        &self,
        tenant: &str,
        workflow: &str,
        limit: usize,
    ) -> Result<Vec<(i64, WindowRecord)>, StoreError>;
    /// The run an idempotency key of `workflow`'s trigger created.
    fn idempotency_get(
        &self,
        tenant: &str,
        workflow: &str,
        key: &str,
    ) -> Result<Option<u64>, StoreError>;
    fn window_get(
        &self,
        tenant: &str,
        workflow: &str,
        start: i64,
    ) -> Result<Option<WindowRecord>, StoreError>;
    /// The windows of `workflow` starting at each of `starts`, in that
    /// order. A backend that pays a round trip per read answers in one.
    fn windows_at(
        &self,
        tenant: &str,
        workflow: &str,
        starts: &[i64],
    ) -> Result<Vec<Option<WindowRecord>>, StoreError> {
        starts
            .iter()
            .map(|s| self.window_get(tenant, workflow, *s))
            .collect()
    }
    fn cursor_get(&self, tenant: &str, workflow: &str) -> Result<Option<i64>, StoreError>;
    fn attempts(&self, tenant: &str, run_id: u64) -> Result<Vec<AttemptRecord>, StoreError>;
}

impl SledStore {
    fn get_as<T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.state.get(key).map_err(backend(op))? {
            None => Ok(None),
            Some(v) => keys::decode_json(op, &v).map(Some),
        }
    }

    fn last_with_prefix<T: DeserializeOwned>(
        &self,
        op: &'static str,
        prefix: Vec<u8>,
    ) -> Result<Option<T>, StoreError> {
        match self.state.scan_prefix(prefix).next_back() {
            None => Ok(None),
            Some(item) => keys::decode_json(op, &item.map_err(backend(op))?.1).map(Some),
        }
    }

    fn all_with_prefix<T: DeserializeOwned>(
        &self,
        op: &'static str,
        prefix: Vec<u8>,
    ) -> Result<Vec<T>, StoreError> {
        self.state
            .scan_prefix(prefix)
            .map(|item| keys::decode_json(op, &item.map_err(backend(op))?.1))
            .collect()
    }
}

/// A record with a version number that [`SledStore::claim_version`] can
/// allocate.
trait Versioned: serde::Serialize + DeserializeOwned + Clone {
    fn version(&self) -> u32;
}

impl Versioned for PluginMeta {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for StoredWorkflow {
    fn version(&self) -> u32 {
        self.version
    }
}

/// What a push does given the newest stored version.
enum Push<T> {
    /// Store this as the next version.
    New(T),
    /// The newest version already is this content.
    Same(T),
}

impl SledStore {
    /// Stores the record `next` makes from the newest one under `prefix` as
    /// a new version, allocated by compare-and-swap: of concurrent writers
    /// only one gets each number, and a loser re-reads and tries again.
    fn claim_version<T: Versioned>(
        &self,
        op: &'static str,
        prefix: Vec<u8>,
        next: impl Fn(Option<&T>) -> Push<T>,
    ) -> Result<T, StoreError> {
        loop {
            let newest: Option<T> = self.last_with_prefix(op, prefix.clone())?;
            let record = match next(newest.as_ref()) {
                Push::New(r) => r,
                Push::Same(existing) => return Ok(existing),
            };
            let key = keys::u64_key(prefix.clone(), record.version() as u64);
            let swapped = self
                .state
                .compare_and_swap(key, None as Option<&[u8]>, Some(keys::encode_json(&record)))
                .map_err(backend(op))?;
            // On a lost race another writer took this number: look again.
            if swapped.is_ok() {
                self.flush(op)?;
                return Ok(record);
            }
        }
    }
}

impl StateStore for SledStore {
    fn plugin_put(
        &self,
        tenant: &str,
        name: &str,
        digest: &str,
        wasm: &[u8],
        exports: &[String],
        now: i64,
    ) -> Result<PluginMeta, StoreError> {
        const OP: &str = "storing a plugin";
        let prefix = keys::named_prefix(keys::PLUGIN, tenant, name);
        // The blob first: a version record never points at a missing blob.
        // It is keyed by digest, so writing it again is harmless.
        self.blobs
            .insert(keys::blob_key(tenant, digest), wasm)
            .map_err(backend(OP))?;
        self.claim_version(OP, prefix, |newest: Option<&PluginMeta>| match newest {
            Some(m) if m.digest == digest => Push::Same(m.clone()),
            _ => Push::New(PluginMeta {
                name: name.to_owned(),
                version: newest.map_or(1, |m| m.version + 1),
                digest: digest.to_owned(),
                size: wasm.len() as u64,
                created_ms: now,
                exports: exports.to_vec(),
            }),
        })
    }

    fn plugin_delete(&self, tenant: &str, name: &str, version: u32) -> Result<bool, StoreError> {
        const OP: &str = "deleting a plugin version";
        let key = keys::u64_key(
            keys::named_prefix(keys::PLUGIN, tenant, name),
            version as u64,
        );
        let Some(meta) = self.get_as::<PluginMeta>(OP, &key)? else {
            return Ok(false);
        };
        self.state.remove(&key).map_err(backend(OP))?;
        let shared = self
            .plugin_list(tenant)?
            .iter()
            .any(|m| m.digest == meta.digest);
        if !shared {
            let blob_key = keys::blob_key(tenant, &meta.digest);
            self.blobs.remove(blob_key).map_err(backend(OP))?;
        }
        self.flush(OP)?;
        Ok(true)
    }

    fn plugin_resolve(
        &self,
        tenant: &str,
        plugin: &PluginRef,
    ) -> Result<Option<PluginMeta>, StoreError> {
        const OP: &str = "resolving a plugin";
        match plugin {
            PluginRef::Latest(name) => {
                self.last_with_prefix(OP, keys::named_prefix(keys::PLUGIN, tenant, name))
            }
            PluginRef::Version(name, v) => self.get_as(
                OP,
                &keys::u64_key(keys::named_prefix(keys::PLUGIN, tenant, name), *v as u64),
            ),
            PluginRef::Digest(d) => Ok(self
                .plugin_list(tenant)?
                .into_iter()
                .find(|m| &m.digest == d)),
        }
    }

    fn plugin_blob(&self, tenant: &str, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = keys::blob_key(tenant, digest);
        Ok(self
            .blobs
            .get(key)
            .map_err(backend("reading a plugin"))?
            .map(|v| v.to_vec()))
    }

    fn plugin_list(&self, tenant: &str) -> Result<Vec<PluginMeta>, StoreError> {
        self.all_with_prefix("listing plugins", keys::tenant_prefix(keys::PLUGIN, tenant))
    }

    fn workflow_put(
        &self,
        tenant: &str,
        raw: &RawWorkflow,
        now: i64,
    ) -> Result<StoredWorkflow, StoreError> {
        const OP: &str = "storing a workflow";
        let prefix = keys::named_prefix(keys::WORKFLOW, tenant, &raw.name);
        self.claim_version(OP, prefix, |newest: Option<&StoredWorkflow>| match newest {
            Some(w) if &w.raw == raw => Push::Same(w.clone()),
            _ => Push::New(StoredWorkflow {
                name: raw.name.clone(),
                version: newest.map_or(1, |w| w.version + 1),
                raw: raw.clone(),
                created_ms: now,
            }),
        })
    }

    fn workflow_get(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        const OP: &str = "reading a workflow";
        let prefix = keys::named_prefix(keys::WORKFLOW, tenant, name);
        match version {
            Some(v) => self.get_as(OP, &keys::u64_key(prefix, v as u64)),
            None => self.last_with_prefix(OP, prefix),
        }
    }

    fn workflow_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<StoredWorkflow>, StoreError> {
        self.all_with_prefix(
            "listing workflow versions",
            keys::named_prefix(keys::WORKFLOW, tenant, name),
        )
    }

    fn workflow_delete(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        const OP: &str = "deleting a workflow";
        let mut batch = sled::Batch::default();
        for k in self
            .state
            .scan_prefix(keys::named_prefix(keys::WORKFLOW, tenant, name))
            .keys()
        {
            batch.remove(k.map_err(backend(OP))?);
        }
        batch.remove(keys::named_prefix(keys::CURSOR, tenant, name));
        self.state.apply_batch(batch).map_err(backend(OP))?;
        self.flush(OP)
    }

    fn workflows_all(&self) -> Result<Vec<(String, StoredWorkflow)>, StoreError> {
        const OP: &str = "listing workflows";
        let mut out: Vec<(String, StoredWorkflow)> = Vec::new();
        for item in self.state.scan_prefix([keys::WORKFLOW]) {
            let (k, v) = item.map_err(backend(OP))?;
            let tenant = k[1..]
                .split(|b| *b == 0)
                .next()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default();
            let wf: StoredWorkflow = keys::decode_json(OP, &v)?;
            // Versions come in ascending order: keep the last of each name.
            match out.last_mut() {
                Some((t, last)) if *t == tenant && last.name == wf.name => *last = wf,
                _ => out.push((tenant, wf)),
            }
        }
        Ok(out)
    }

    fn next_run_id(&self) -> Result<u64, StoreError> {
        // sled persists the id counter, so ids never repeat across restarts.
        self.db
            .generate_id()
            .map(|id| id + 1)
            .map_err(backend("allocating a run id"))
    }

    fn apply(&self, changes: &Changes) -> Result<(), StoreError> {
        const OP: &str = "recording a state change";
        self.check_injected_failure(OP)?;
        let mut batch = sled::Batch::default();
        // A run can be in one change twice (changes kept from a failed write
        // merged with newer ones): its last state is the one that counts,
        // and the index entries below are decided against it alone.
        let mut last: HashMap<(&str, u64), usize> = HashMap::new();
        for (i, run) in changes.runs.iter().enumerate() {
            last.insert((run.tenant.as_str(), run.id), i);
        }
        // Taken for the whole write: only `persist` calls this, one at a
        // time, so it is never contended.
        let mut index = self.run_index.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = Vec::new();
        // Window records this batch writes, by the run that wrote them: an
        // older run later in the batch must not replace a newer one's.
        let mut window_owner: HashMap<Vec<u8>, u64> = HashMap::new();
        for (i, run) in changes.runs.iter().enumerate() {
            if last.get(&(run.tenant.as_str(), run.id)) != Some(&i) {
                continue;
            }
            let t = &run.tenant;
            batch.insert(
                keys::u64_key(keys::tenant_prefix(keys::RUN, t), run.id),
                keys::encode_json(run),
            );
            let wkey = keys::instant_key(
                keys::named_prefix(keys::WINDOW, t, &run.workflow),
                run.window_start,
            );
            // Event runs stand beside the schedule: they are not a window's
            // run, so they never hide or block one.
            // A run is written at every change, but its index entries change
            // only when it is created, starts or ends: each is written only
            // if it differs, since a sled insert costs far more than a read,
            // and what an active run's entries hold is remembered, since
            // reading them back costs more than the rest of its write.
            let cached = index.get(&(t.clone(), run.id)).copied();
            // Whether the window's record is this run's once written: a
            // run whose window a newer run holds is not remembered.
            let mut owned = true;
            if window_owner.get(&wkey).is_some_and(|owner| *owner > run.id) {
                owned = false;
            } else if run.trigger != crate::executor::Trigger::Event {
                let write = match cached {
                    Some(c) => c.window != Some(run.state),
                    None => {
                        let current: Option<WindowRecord> = self.get_as(OP, &wkey)?;
                        owned = current.as_ref().is_none_or(|c| c.run_id <= run.id);
                        current.is_none_or(|c| {
                            c.run_id < run.id || (c.run_id == run.id && c.state != run.state)
                        })
                    }
                };
                if write {
                    window_owner.insert(wkey.clone(), run.id);
                    batch.insert(
                        wkey,
                        keys::encode_json(&WindowRecord {
                            run_id: run.id,
                            state: run.state,
                        }),
                    );
                }
            }
            // A cached run has its history and active entries.
            if cached.is_none() {
                let mut hist = keys::instant_key(
                    keys::named_prefix(keys::RUN_BY_WINDOW, t, &run.workflow),
                    run.window_start,
                );
                hist.extend_from_slice(&run.id.to_be_bytes());
                if !self.state.contains_key(&hist).map_err(backend(OP))? {
                    batch.insert(hist, keys::encode_value(&[]));
                }
            }
            let active = keys::u64_key(keys::tenant_prefix(keys::ACTIVE, t), run.id);
            let is_active = match cached {
                Some(_) => true,
                None => self.state.contains_key(&active).map_err(backend(OP))?,
            };
            if run.state.is_terminal() || !owned {
                if run.state.is_terminal() && is_active {
                    batch.remove(active);
                } else if !run.state.is_terminal() && !is_active {
                    batch.insert(active, keys::encode_value(&[]));
                }
                written.push(((t.clone(), run.id), None));
            } else {
                if !is_active {
                    batch.insert(active, keys::encode_value(&[]));
                }
                let window = (run.trigger != crate::executor::Trigger::Event).then_some(run.state);
                written.push((
                    (t.clone(), run.id),
                    Some(super::sled_store::RunIndex { window }),
                ));
            }
        }
        for (tenant, workflow, start) in &changes.cursors {
            batch.insert(
                keys::named_prefix(keys::CURSOR, tenant, workflow),
                keys::encode_json(start),
            );
        }
        for (tenant, a) in &changes.attempts {
            let mut k = keys::u64_key(keys::tenant_prefix(keys::ATTEMPT, tenant), a.run_id);
            keys::push_name(&mut k, &a.task);
            k.extend_from_slice(&a.attempt.to_be_bytes());
            batch.insert(k, keys::encode_json(a));
        }
        for b in &changes.backfills {
            batch.insert(
                super::backfills::backfill_key(&b.tenant, b.id),
                keys::encode_json(b),
            );
        }
        self.stage_backfill_windows(&mut batch, &changes.backfill_windows)?;
        for (tenant, workflow, key, run_id) in &changes.idempotency {
            batch.insert(
                idempotency_key(tenant, workflow, key),
                keys::encode_json(run_id),
            );
        }
        self.stage_object_outputs(&mut batch, &changes.object_outputs);
        let mut usage: HashMap<&str, i64> = HashMap::new();
        // Several attempts of one window may write the same partition of a
        // dataset in one batch: the later commit replaces it, as it would
        // in separate batches, and the usage delta counts it once.
        let mut merged: BTreeMap<(&str, i64), crate::store::StagedOutputs> = BTreeMap::new();
        for (tenant, partition, outputs) in &changes.outputs {
            merged
                .entry((tenant.as_str(), *partition))
                .or_default()
                .replace_datasets(outputs.clone());
        }
        for ((tenant, partition), outputs) in &merged {
            let delta = self.stage_outputs(&mut batch, tenant, *partition, outputs)?;
            *usage.entry(tenant).or_default() += delta;
        }
        // Only `persist` writes here, one batch at a time: read-modify-write
        // of the counter is safe.
        for (tenant, delta) in usage {
            let bytes = (self.usage_get(tenant)? as i64 + delta).max(0) as u64;
            batch.insert(
                keys::tenant_prefix(keys::USAGE, tenant),
                bytes.to_be_bytes().to_vec(),
            );
        }
        self.state.apply_batch(batch).map_err(backend(OP))?;
        // Only what is in the tree may be remembered (a failed write
        // leaves the cache as it was).
        for (key, entry) in written {
            match entry {
                Some(e) => index.insert(key, e),
                None => index.remove(&key),
            };
        }
        drop(index);
        self.flush(OP)
    }

    fn dataset_bytes(&self, tenant: &str) -> Result<u64, StoreError> {
        self.usage_get(tenant)
    }

    fn dataset_delta(
        &self,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<i64, StoreError> {
        self.outputs_delta(tenant, partition, outputs)
    }

    fn run_get(&self, tenant: &str, id: u64) -> Result<Option<Run>, StoreError> {
        self.get_as(
            "reading a run",
            &keys::u64_key(keys::tenant_prefix(keys::RUN, tenant), id),
        )
    }

    fn runs_active(&self) -> Result<Vec<Run>, StoreError> {
        const OP: &str = "listing active runs";
        let mut runs = Vec::new();
        for item in self.state.scan_prefix([keys::ACTIVE]) {
            let (k, _) = item.map_err(backend(OP))?;
            // `a tenant 0 id`: the same key with the run kind byte.
            let mut rk = k.to_vec();
            rk[0] = keys::RUN;
            if let Some(run) = self.get_as::<Run>(OP, &rk)? {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    fn windows(
        &self,
        tenant: &str,
        workflow: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<(i64, WindowRecord)>, StoreError> {
        const OP: &str = "listing windows";
        self.check_injected_read_failure(OP)?;
        let prefix = keys::named_prefix(keys::WINDOW, tenant, workflow);
        let lo = keys::instant_key(prefix.clone(), from);
        let hi = keys::instant_key(prefix.clone(), to);
        let mut out = Vec::new();
        for item in self.state.range(lo..hi).take(limit) {
            let (k, v) = item.map_err(backend(OP))?;
            let start =
                keys::decode_instant(&k[prefix.len()..]).ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    detail: "window key".into(),
                })?;
            out.push((start, keys::decode_json(OP, &v)?));
        }
        Ok(out)
    }

    fn windows_newest(
        &self,
        tenant: &str,
        workflow: &str,
        limit: usize,
    ) -> Result<Vec<(i64, WindowRecord)>, StoreError> {
        const OP: &str = "reading the newest windows";
        let prefix = keys::named_prefix(keys::WINDOW, tenant, workflow);
        let mut out = Vec::new();
        for item in self.state.scan_prefix(&prefix).rev().take(limit) {
            let (k, v) = item.map_err(backend(OP))?;
            let start =
                keys::decode_instant(&k[prefix.len()..]).ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    detail: "window key without an instant".into(),
                })?;
            out.push((start, keys::decode_json(OP, &v)?));
        }
        Ok(out)
    }

    fn idempotency_get(
        &self,
        tenant: &str,
        workflow: &str,
        key: &str,
    ) -> Result<Option<u64>, StoreError> {
        self.get_as(
            "reading an idempotency key",
            &idempotency_key(tenant, workflow, key),
        )
    }

    fn window_get(
        &self,
        tenant: &str,
        workflow: &str,
        start: i64,
    ) -> Result<Option<WindowRecord>, StoreError> {
        self.get_as(
            "reading a window",
            &keys::instant_key(keys::named_prefix(keys::WINDOW, tenant, workflow), start),
        )
    }

    fn cursor_get(&self, tenant: &str, workflow: &str) -> Result<Option<i64>, StoreError> {
        self.get_as(
            "reading a cursor",
            &keys::named_prefix(keys::CURSOR, tenant, workflow),
        )
    }

    fn attempts(&self, tenant: &str, run_id: u64) -> Result<Vec<AttemptRecord>, StoreError> {
        self.all_with_prefix(
            "listing attempts",
            keys::u64_key(keys::tenant_prefix(keys::ATTEMPT, tenant), run_id),
        )
    }
}

fn idempotency_key(tenant: &str, workflow: &str, key: &str) -> Vec<u8> {
    let mut k = keys::named_prefix(keys::IDEMPOTENCY, tenant, workflow);
    k.extend_from_slice(key.as_bytes());
    k
}
