//! What an attempt reads and writes: checkpoints and dataset partitions.
//! A partition is one row holding the encoding of `store::partitions`, so
//! both backends read and replace it whole.

use std::collections::BTreeMap;
use std::ops::Range;

use deadpool_postgres::Transaction;

use super::statements::Cached;
use futures_util::future::try_join_all;

use super::super::{keys, partitions, DatasetEntry, StagedOutputs, StoreError, TaskData};
use super::{column, pg_err, pool_err, PgStore};

/// Partitions fetched per query of a scan.
const SCAN_CHUNK: i64 = 32;

/// One dataset's partition about to be written.
pub(super) struct PartitionWrite {
    pub dataset: String,
    pub data: Vec<u8>,
    /// What it counts against the tenant's dataset bytes.
    pub bytes: i64,
}

/// Bytes a partition counts: what the sled store counts (its key and its
/// value), so a tenant's usage and quota mean the same on both backends.
fn counted(tenant: &str, dataset: &str, partition: i64, value_len: usize) -> i64 {
    (keys::partition_prefix(tenant, dataset, partition).len() + value_len) as i64
}

/// The stored row of one partition (its `data` column), if it exists: what
/// a dataset read and a partition's version both start from.
async fn partition_row(
    op: &'static str,
    pool: &deadpool_postgres::Pool,
    tenant: &str,
    dataset: &str,
    partition: i64,
) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let client = pool.get().await.map_err(pool_err(op))?;
    client
        .query_opt_cached(
            "SELECT data FROM dataset_partitions \
             WHERE tenant = $1 AND dataset = $2 AND partition = $3",
            &[&tenant, &dataset, &partition],
        )
        .await
        .map_err(pg_err(op))
}

/// Encodes each dataset of `outputs` (on the caller's thread: the future
/// that writes them owns only bytes).
pub(super) fn encode_outputs(
    tenant: &str,
    partition: i64,
    outputs: &StagedOutputs,
) -> Vec<PartitionWrite> {
    outputs
        .by_dataset()
        .map(|(dataset, rows)| {
            let data = partitions::encode(rows);
            PartitionWrite {
                bytes: counted(tenant, dataset, partition, data.len()),
                dataset: dataset.to_owned(),
                data,
            }
        })
        .collect()
}

/// Replaces the partitions in `writes` (`(tenant, partition, writes)`,
/// one entry per tenant and partition) inside `tx`; returns how each
/// tenant's dataset bytes change. The old rows are locked first, so two
/// writers of one partition count it once each, in order. The reads, and
/// then the writes, are sent together (tokio-postgres pipelines them): two
/// round trips, not two per partition.
pub(super) async fn write_partitions(
    tx: &Transaction<'_>,
    op: &'static str,
    writes: &[(String, i64, Vec<PartitionWrite>)],
) -> Result<BTreeMap<String, i64>, StoreError> {
    let each: Vec<(&str, i64, &PartitionWrite)> = writes
        .iter()
        .flat_map(|(t, p, ws)| ws.iter().map(move |w| (t.as_str(), *p, w)))
        .collect();
    let old = try_join_all(each.iter().map(|(tenant, partition, w)| async move {
        tx.query_opt_cached(
            "SELECT bytes FROM dataset_partitions \
             WHERE tenant = $1 AND dataset = $2 AND partition = $3 FOR UPDATE",
            &[tenant, &w.dataset, partition],
        )
        .await
    }))
    .await
    .map_err(pg_err(op))?;
    let mut delta: BTreeMap<String, i64> = BTreeMap::new();
    for ((tenant, _, w), old) in each.iter().zip(old) {
        let d = delta.entry((*tenant).to_owned()).or_default();
        if let Some(row) = old {
            *d -= column::<i64>(op, &row, 0)?;
        }
        *d += w.bytes;
    }
    try_join_all(each.iter().map(|(tenant, partition, w)| async move {
        tx.execute_cached(
            "INSERT INTO dataset_partitions (tenant, dataset, partition, data, bytes) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, dataset, partition) \
             DO UPDATE SET data = EXCLUDED.data, bytes = EXCLUDED.bytes",
            &[tenant, &w.dataset, partition, &w.data, &w.bytes],
        )
        .await
    }))
    .await
    .map_err(pg_err(op))?;
    Ok(delta)
}

impl PgStore {
    /// See `StateStore::dataset_delta`: counted like the sled store,
    /// without encoding anything.
    pub(super) fn outputs_delta(
        &self,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<i64, StoreError> {
        const OP: &str = "sizing dataset writes";
        let mut new_bytes = 0i64;
        let mut datasets = Vec::new();
        for (dataset, rows) in outputs.by_dataset() {
            let size = rows.map(|(k, v)| partitions::row_len(k, v)).sum();
            new_bytes += counted(tenant, dataset, partition, partitions::encoded_len(size));
            datasets.push(dataset.to_owned());
        }
        let tenant = tenant.to_owned();
        let old: i64 = self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_one_cached(
                    "SELECT COALESCE(SUM(bytes), 0)::int8 FROM dataset_partitions \
                     WHERE tenant = $1 AND dataset = ANY($2) AND partition = $3",
                    &[&tenant, &datasets, &partition],
                )
                .await
                .map_err(pg_err(OP))?;
            column(OP, &row, 0)
        })?;
        Ok(new_bytes - old)
    }
}

impl TaskData for PgStore {
    fn checkpoint_load(&self, s: &super::super::TaskScope) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "loading a checkpoint";
        let s = s.clone();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT data FROM checkpoints \
                     WHERE tenant = $1 AND workflow = $2 AND task = $3 AND window_start = $4",
                    &[&s.tenant, &s.workflow, &s.task, &s.window_start],
                )
                .await
                .map_err(pg_err(OP))?;
            match row {
                None => Ok(None),
                Some(r) => keys::decode_value(OP, column(OP, &r, 0)?).map(Some),
            }
        })
    }

    fn checkpoint_save(&self, s: &super::super::TaskScope, data: &[u8]) -> Result<(), StoreError> {
        const OP: &str = "saving a checkpoint";
        let (s, data) = (s.clone(), keys::encode_value(data));
        // A commit returns once it is durable: the checkpoint survives a
        // crash as soon as the guest moves on.
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            client
                .execute_cached(
                    "INSERT INTO checkpoints (tenant, workflow, task, window_start, data) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant, workflow, task, window_start) \
                     DO UPDATE SET data = EXCLUDED.data",
                    &[&s.tenant, &s.workflow, &s.task, &s.window_start, &data],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
    }

    fn checkpoint_clear(&self, s: &super::super::TaskScope) -> Result<(), StoreError> {
        const OP: &str = "clearing a checkpoint";
        let s = s.clone();
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            client
                .execute_cached(
                    "DELETE FROM checkpoints \
                     WHERE tenant = $1 AND workflow = $2 AND task = $3 AND window_start = $4",
                    &[&s.tenant, &s.workflow, &s.task, &s.window_start],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
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
        let (tenant, dataset, key) = (tenant.to_owned(), dataset.to_owned(), key.to_owned());
        self.run(OP, |pool| async move {
            match partition_row(OP, &pool, &tenant, &dataset, partition).await? {
                None => Ok((None, None)),
                Some(r) => {
                    let raw: &[u8] = column(OP, &r, 0)?;
                    Ok((
                        partitions::rows(OP, raw)?.find(&key)?.map(<[u8]>::to_vec),
                        with_version.then(|| partitions::version(raw)),
                    ))
                }
            }
        })
    }

    fn partition_version(
        &self,
        tenant: &str,
        dataset: &str,
        partition: i64,
    ) -> Result<Option<String>, StoreError> {
        const OP: &str = "reading a partition's version";
        let (tenant, dataset) = (tenant.to_owned(), dataset.to_owned());
        self.run(OP, |pool| async move {
            match partition_row(OP, &pool, &tenant, &dataset, partition).await? {
                None => Ok(None),
                Some(r) => {
                    let raw: &[u8] = column(OP, &r, 0)?;
                    Ok(Some(partitions::version(raw)))
                }
            }
        })
    }

    fn dataset_scan_versioned(
        &self,
        tenant: &str,
        dataset: &str,
        range: Range<i64>,
        prefix: &str,
        after: Option<(i64, &str)>,
        limit: usize,
        with_versions: bool,
    ) -> Result<crate::store::ScanPage, StoreError> {
        const OP: &str = "scanning a dataset";
        if range.is_empty() || limit == 0 {
            return Ok(Default::default());
        }
        // Resume inside the partition of `after`, strictly after its key.
        let (first, after_key) = match after {
            Some((p, k)) if p >= range.start => (p, Some(k.to_owned())),
            _ => (range.start, None),
        };
        if first >= range.end {
            return Ok(Default::default());
        }
        let (tenant, dataset, prefix) = (tenant.to_owned(), dataset.to_owned(), prefix.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let mut out = Vec::new();
            let mut versions: Vec<(i64, String)> = Vec::new();
            let mut from = first;
            loop {
                let rows = client
                    .query_cached(
                        "SELECT partition, data FROM dataset_partitions \
                         WHERE tenant = $1 AND dataset = $2 AND partition >= $3 AND partition < $4 \
                         ORDER BY partition LIMIT $5",
                        &[&tenant, &dataset, &from, &range.end, &SCAN_CHUNK],
                    )
                    .await
                    .map_err(pg_err(OP))?;
                let fetched = rows.len() as i64;
                for row in &rows {
                    let partition: i64 = column(OP, row, 0)?;
                    let raw: &[u8] = column(OP, row, 1)?;
                    let skip_to = after_key.as_deref().filter(|_| partition == first);
                    let mut entries = partitions::rows(OP, raw)?;
                    while let Some((key, value)) = entries.next_row()? {
                        if skip_to.is_some_and(|a| key <= a) || key < prefix.as_str() {
                            continue;
                        }
                        if !key.starts_with(prefix.as_str()) {
                            // Keys are sorted: nothing further here.
                            break;
                        }
                        if with_versions && versions.last().map(|(p, _)| *p) != Some(partition) {
                            versions.push((partition, partitions::version(raw)));
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
                    from = partition.saturating_add(1);
                }
                if fetched < SCAN_CHUNK || from >= range.end {
                    return Ok((out, versions));
                }
            }
        })
    }

    fn dataset_commit(
        &self,
        tenant: &str,
        partition: i64,
        outputs: &StagedOutputs,
    ) -> Result<(), StoreError> {
        const OP: &str = "committing dataset writes";
        let writes = [(
            tenant.to_owned(),
            partition,
            encode_outputs(tenant, partition, outputs),
        )];
        // As in the sled store, only `apply` moves the usage counter.
        self.run(OP, |pool| async move {
            let mut client = pool.get().await.map_err(pool_err(OP))?;
            let tx = client.transaction().await.map_err(pg_err(OP))?;
            write_partitions(&tx, OP, &writes).await?;
            tx.commit().await.map_err(pg_err(OP))
        })
    }
}
