//! Engine state on PostgreSQL: plugins, workflow versions, runs, the
//! per-window index, cursors and attempts. `apply` is in `changes.rs`.

use std::collections::HashMap;

use super::statements::Cached;
use deadpool_postgres::Pool;

use super::super::records::{AttemptRecord, Changes, PluginMeta, StoredWorkflow, WindowRecord};
use super::super::{StagedOutputs, StateStore, StoreError};
use super::versions::{Push, Versions};
use super::{column, pg_err, pool_err, record, PgStore};
use crate::run::Run;
use crate::workflow::{PluginRef, RawWorkflow};

/// Rows of `sql` decoded from their first column.
async fn records<T: serde::de::DeserializeOwned>(
    pool: Pool,
    op: &'static str,
    sql: &'static str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<T>, StoreError> {
    let client = pool.get().await.map_err(pool_err(op))?;
    let rows = client.query_cached(sql, params).await.map_err(pg_err(op))?;
    rows.iter().map(|r| record(op, r, 0)).collect()
}

/// The first row of `sql`, decoded from its first column.
async fn one<T: serde::de::DeserializeOwned>(
    pool: Pool,
    op: &'static str,
    sql: &'static str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Option<T>, StoreError> {
    let client = pool.get().await.map_err(pool_err(op))?;
    let row = client
        .query_opt_cached(sql, params)
        .await
        .map_err(pg_err(op))?;
    row.map(|r| record(op, &r, 0)).transpose()
}

impl StateStore for PgStore {
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
        // The blob first: a version never points at a missing blob. It is
        // keyed by digest, so writing it again is harmless.
        let (t, d, w) = (tenant.to_owned(), digest.to_owned(), wasm.to_vec());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            client
                .execute_cached(
                    "INSERT INTO plugin_blobs (tenant, digest, wasm) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                    &[&t, &d, &w],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })?;
        let (n, d, size, ex) = (
            name.to_owned(),
            digest.to_owned(),
            wasm.len() as u64,
            exports.to_vec(),
        );
        self.claim_version(
            OP,
            tenant,
            name,
            move |newest: Option<PluginMeta>| match newest {
                Some(m) if m.digest == d => Push::Same(m),
                _ => Push::New(PluginMeta {
                    name: n.clone(),
                    version: newest_version(&newest) + 1,
                    digest: d.clone(),
                    size,
                    created_ms: now,
                    exports: ex.clone(),
                }),
            },
        )
    }

    fn plugin_delete(&self, tenant: &str, name: &str, version: u32) -> Result<bool, StoreError> {
        const OP: &str = "deleting a plugin version";
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(OP, |pool| async move {
            let mut client = pool.get().await.map_err(pool_err(OP))?;
            let tx = client.transaction().await.map_err(pg_err(OP))?;
            let Some(row) = tx
                .query_opt_cached(
                    "DELETE FROM plugins WHERE tenant = $1 AND name = $2 AND version = $3 \
                     RETURNING digest",
                    &[&tenant, &name, &i64::from(version)],
                )
                .await
                .map_err(pg_err(OP))?
            else {
                return Ok(false);
            };
            let digest: String = column(OP, &row, 0)?;
            // The blob goes unless another version of the tenant shares it.
            tx.execute_cached(
                "DELETE FROM plugin_blobs WHERE tenant = $1 AND digest = $2 AND NOT EXISTS \
                 (SELECT 1 FROM plugins WHERE tenant = $1 AND digest = $2)",
                &[&tenant, &digest],
            )
            .await
            .map_err(pg_err(OP))?;
            tx.commit().await.map_err(pg_err(OP))?;
            Ok(true)
        })
    }

    fn plugin_resolve(
        &self,
        tenant: &str,
        plugin: &PluginRef,
    ) -> Result<Option<PluginMeta>, StoreError> {
        const OP: &str = "resolving a plugin";
        let tenant = tenant.to_owned();
        let plugin = plugin.clone();
        self.run(OP, |pool| async move {
            match &plugin {
                PluginRef::Latest(name) => {
                    one(pool, OP, Versions::Plugins.newest(), &[&tenant, name]).await
                }
                PluginRef::Version(name, v) => {
                    one(
                        pool,
                        OP,
                        "SELECT record FROM plugins \
                         WHERE tenant = $1 AND name = $2 AND version = $3",
                        &[&tenant, name, &i64::from(*v)],
                    )
                    .await
                }
                PluginRef::Digest(d) => {
                    one(
                        pool,
                        OP,
                        "SELECT record FROM plugins WHERE tenant = $1 AND digest = $2 \
                         ORDER BY name, version LIMIT 1",
                        &[&tenant, d],
                    )
                    .await
                }
            }
        })
    }

    fn plugin_blob(&self, tenant: &str, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "reading a plugin";
        let (tenant, digest) = (tenant.to_owned(), digest.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT wasm FROM plugin_blobs WHERE tenant = $1 AND digest = $2",
                    &[&tenant, &digest],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| column(OP, &r, 0)).transpose()
        })
    }

    fn plugin_list(&self, tenant: &str) -> Result<Vec<PluginMeta>, StoreError> {
        const OP: &str = "listing plugins";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            records(
                pool,
                OP,
                "SELECT record FROM plugins WHERE tenant = $1 ORDER BY name, version",
                &[&tenant],
            )
            .await
        })
    }

    fn workflow_put(
        &self,
        tenant: &str,
        raw: &RawWorkflow,
        now: i64,
    ) -> Result<StoredWorkflow, StoreError> {
        const OP: &str = "storing a workflow";
        let r = raw.clone();
        self.claim_version(
            OP,
            tenant,
            &raw.name,
            move |newest: Option<StoredWorkflow>| match newest {
                Some(w) if w.raw == r => Push::Same(w),
                _ => Push::New(StoredWorkflow {
                    name: r.name.clone(),
                    version: newest.map_or(1, |w| w.version + 1),
                    raw: r.clone(),
                    created_ms: now,
                }),
            },
        )
    }

    fn workflow_get(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredWorkflow>, StoreError> {
        const OP: &str = "reading a workflow";
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(OP, |pool| async move {
            match version {
                Some(v) => {
                    one(
                        pool,
                        OP,
                        "SELECT record FROM workflows \
                         WHERE tenant = $1 AND name = $2 AND version = $3",
                        &[&tenant, &name, &i64::from(v)],
                    )
                    .await
                }
                None => one(pool, OP, Versions::Workflows.newest(), &[&tenant, &name]).await,
            }
        })
    }

    fn workflows_all(&self) -> Result<Vec<(String, StoredWorkflow)>, StoreError> {
        const OP: &str = "listing workflows";
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT DISTINCT ON (tenant, name) tenant, record FROM workflows \
                     ORDER BY tenant, name, version DESC",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter()
                .map(|r| Ok((column(OP, r, 0)?, record(OP, r, 1)?)))
                .collect()
        })
    }

    fn workflow_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<StoredWorkflow>, StoreError> {
        const OP: &str = "listing workflow versions";
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(OP, |pool| async move {
            records(
                pool,
                OP,
                "SELECT record FROM workflows WHERE tenant = $1 AND name = $2 ORDER BY version",
                &[&tenant, &name],
            )
            .await
        })
    }

    fn workflow_delete(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        const OP: &str = "deleting a workflow";
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.run(OP, |pool| async move {
            let mut client = pool.get().await.map_err(pool_err(OP))?;
            let tx = client.transaction().await.map_err(pg_err(OP))?;
            for sql in [
                "DELETE FROM workflows WHERE tenant = $1 AND name = $2",
                "DELETE FROM cursors WHERE tenant = $1 AND workflow = $2",
            ] {
                tx.execute_cached(sql, &[&tenant, &name])
                    .await
                    .map_err(pg_err(OP))?;
            }
            tx.commit().await.map_err(pg_err(OP))
        })
    }

    fn next_run_id(&self) -> Result<u64, StoreError> {
        // A round trip per run would cost as much as the rest of its
        // scheduling: ids come in blocks.
        const OP: &str = "allocating a run id";
        const BLOCK: i64 = 64;
        let mut ids = self
            .shared
            .run_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if ids.is_empty() {
            let mut block: Vec<u64> = self.run(OP, |pool| async move {
                let client = pool.get().await.map_err(pool_err(OP))?;
                let rows = client
                    .query_cached(
                        "SELECT nextval('ids') FROM generate_series(1, $1::int8)",
                        &[&BLOCK],
                    )
                    .await
                    .map_err(pg_err(OP))?;
                rows.iter()
                    .map(|r| Ok(column::<i64>(OP, r, 0)? as u64))
                    .collect()
            })?;
            block.sort_unstable();
            ids.extend(block);
        }
        ids.pop_front().ok_or(StoreError::Corrupt {
            op: OP,
            detail: "the id sequence returned no ids".into(),
        })
    }

    fn apply(&self, changes: &Changes) -> Result<(), StoreError> {
        self.apply_changes(changes)
    }

    fn dataset_bytes(&self, tenant: &str) -> Result<u64, StoreError> {
        const OP: &str = "reading usage";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT dataset_bytes FROM usage WHERE tenant = $1",
                    &[&tenant],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(row
                .map(|r| column::<i64>(OP, &r, 0))
                .transpose()?
                .unwrap_or(0)
                .max(0) as u64)
        })
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
        const OP: &str = "reading a run";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            one(
                pool,
                OP,
                "SELECT record FROM runs WHERE tenant = $1 AND id = $2",
                &[&tenant, &(id as i64)],
            )
            .await
        })
    }

    fn runs_active(&self) -> Result<Vec<Run>, StoreError> {
        const OP: &str = "listing active runs";
        self.run(OP, |pool| async move {
            records(
                pool,
                OP,
                "SELECT record FROM runs WHERE active ORDER BY tenant, id",
                &[],
            )
            .await
        })
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
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        let limit = limit.min(i64::MAX as usize) as i64;
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT start_ms, record FROM windows \
                     WHERE tenant = $1 AND workflow = $2 AND start_ms >= $3 AND start_ms < $4 \
                     ORDER BY start_ms LIMIT $5",
                    &[&tenant, &workflow, &from, &to, &limit],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter()
                .map(|r| Ok((column(OP, r, 0)?, record(OP, r, 1)?)))
                .collect()
        })
    }

    fn windows_newest(
        &self,
        tenant: &str,
        workflow: &str,
        limit: usize,
    ) -> Result<Vec<(i64, WindowRecord)>, StoreError> {
        const OP: &str = "reading the newest windows";
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        let limit = limit.min(i64::MAX as usize) as i64;
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT start_ms, record FROM windows WHERE tenant = $1 AND workflow = $2 \
                     ORDER BY start_ms DESC LIMIT $3",
                    &[&tenant, &workflow, &limit],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter()
                .map(|r| Ok((column(OP, r, 0)?, record(OP, r, 1)?)))
                .collect()
        })
    }

    fn idempotency_get(
        &self,
        tenant: &str,
        workflow: &str,
        key: &str,
    ) -> Result<Option<u64>, StoreError> {
        const OP: &str = "reading an idempotency key";
        let (tenant, workflow, key) = (tenant.to_owned(), workflow.to_owned(), key.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT run_id FROM idempotency \
                     WHERE tenant = $1 AND workflow = $2 AND key = $3",
                    &[&tenant, &workflow, &key],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(row
                .map(|r| column::<i64>(OP, &r, 0))
                .transpose()?
                .map(|id| id as u64))
        })
    }

    fn window_get(
        &self,
        tenant: &str,
        workflow: &str,
        start: i64,
    ) -> Result<Option<WindowRecord>, StoreError> {
        const OP: &str = "reading a window";
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        self.run(OP, |pool| async move {
            one(
                pool,
                OP,
                "SELECT record FROM windows WHERE tenant = $1 AND workflow = $2 AND start_ms = $3",
                &[&tenant, &workflow, &start],
            )
            .await
        })
    }

    fn windows_at(
        &self,
        tenant: &str,
        workflow: &str,
        starts: &[i64],
    ) -> Result<Vec<Option<WindowRecord>>, StoreError> {
        const OP: &str = "reading windows";
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let (tenant, workflow, wanted) = (tenant.to_owned(), workflow.to_owned(), starts.to_vec());
        let found: HashMap<i64, WindowRecord> = self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT start_ms, record FROM windows \
                     WHERE tenant = $1 AND workflow = $2 AND start_ms = ANY($3)",
                    &[&tenant, &workflow, &wanted],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter()
                .map(|r| Ok((column(OP, r, 0)?, record(OP, r, 1)?)))
                .collect()
        })?;
        Ok(starts.iter().map(|s| found.get(s).cloned()).collect())
    }

    fn cursor_get(&self, tenant: &str, workflow: &str) -> Result<Option<i64>, StoreError> {
        const OP: &str = "reading a cursor";
        let (tenant, workflow) = (tenant.to_owned(), workflow.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT start_ms FROM cursors WHERE tenant = $1 AND workflow = $2",
                    &[&tenant, &workflow],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| column(OP, &r, 0)).transpose()
        })
    }

    fn attempts(&self, tenant: &str, run_id: u64) -> Result<Vec<AttemptRecord>, StoreError> {
        const OP: &str = "listing attempts";
        let tenant = tenant.to_owned();
        self.run(OP, |pool| async move {
            records(
                pool,
                OP,
                "SELECT record FROM attempts WHERE tenant = $1 AND run_id = $2 \
                 ORDER BY task, attempt",
                &[&tenant, &(run_id as i64)],
            )
            .await
        })
    }
}

fn newest_version(newest: &Option<PluginMeta>) -> u32 {
    newest.as_ref().map_or(0, |m| m.version)
}

impl PgStore {
    /// Ids from one sequence, as the sled store's one id generator: run,
    /// backfill and token ids never repeat, across restarts too.
    pub(super) fn next_id_from_sequence(&self, op: &'static str) -> Result<u64, StoreError> {
        self.run(op, |pool| async move {
            let client = pool.get().await.map_err(pool_err(op))?;
            let row = client
                .query_one_cached("SELECT nextval('ids')", &[])
                .await
                .map_err(pg_err(op))?;
            Ok(column::<i64>(op, &row, 0)? as u64)
        })
    }
}
