//! Object-storage outputs on PostgreSQL: the record of each task's window
//! output, the publisher's work list (the `pending` column) and staging
//! markers.

use deadpool_postgres::Transaction;

use super::statements::Cached;

use super::super::{keys, OutputCheckRecord, OutputRecord, OutputStore, StagingRecord, StoreError};
use super::{column, pg_err, pool_err, record, PgStore};

/// Writes committed outputs inside `apply`'s transaction: each replaces
/// its window's record and joins the work list, and the attempt's staging
/// markers go (the record now owns its objects).
pub(super) async fn write_outputs(
    tx: &Transaction<'_>,
    op: &'static str,
    outputs: &[(String, OutputRecord)],
) -> Result<(), StoreError> {
    for (tenant, r) in outputs {
        tx.execute_cached(
            "INSERT INTO outputs (tenant, workflow, connection, task, window_start, run_id, \
             attempt, pending, record) VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8) \
             ON CONFLICT (tenant, workflow, connection, task, window_start) DO UPDATE SET \
             run_id = EXCLUDED.run_id, attempt = EXCLUDED.attempt, pending = true, \
             record = EXCLUDED.record",
            &[
                tenant,
                &r.workflow,
                &r.connection,
                &r.task,
                &r.window_start,
                &(r.run_id as i64),
                &i64::from(r.attempt),
                &keys::encode_json(r),
            ],
        )
        .await
        .map_err(pg_err(op))?;
        tx.execute_cached(
            "DELETE FROM staging WHERE tenant = $1 AND run_id = $2 AND task = $3 \
             AND attempt = $4 AND connection = $5",
            &[
                tenant,
                &(r.run_id as i64),
                &r.task,
                &i64::from(r.attempt),
                &r.connection,
            ],
        )
        .await
        .map_err(pg_err(op))?;
    }
    Ok(())
}

impl PgStore {
    /// Changes the stored record of `r`'s window if it is still `r`'s
    /// commit (same run and attempt), and takes it off the work list once
    /// nothing is left to do; `false` if a newer commit replaced it. The
    /// row is locked while it changes, so a commit landing meanwhile is
    /// never marked by an older publish or check.
    fn output_update<F>(
        &self,
        op: &'static str,
        tenant: &str,
        r: &OutputRecord,
        change: F,
    ) -> Result<bool, StoreError>
    where
        F: FnOnce(&mut OutputRecord) + Send + 'static,
    {
        let tenant = tenant.to_owned();
        let r = r.clone();
        self.run(op, |pool| async move {
            let mut client = pool.get().await.map_err(pool_err(op))?;
            let tx = client.transaction().await.map_err(pg_err(op))?;
            let key: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
                &tenant,
                &r.workflow,
                &r.connection,
                &r.task,
                &r.window_start,
            ];
            let row = tx
                .query_opt_cached(
                    "SELECT record FROM outputs WHERE tenant = $1 AND workflow = $2 \
                     AND connection = $3 AND task = $4 AND window_start = $5 FOR UPDATE",
                    &key,
                )
                .await
                .map_err(pg_err(op))?;
            let Some(row) = row else { return Ok(false) };
            let mut current: OutputRecord = record(op, &row, 0)?;
            if (current.run_id, current.attempt) != (r.run_id, r.attempt) {
                return Ok(false);
            }
            change(&mut current);
            tx.execute_cached(
                "UPDATE outputs SET record = $6, pending = $7 WHERE tenant = $1 \
                 AND workflow = $2 AND connection = $3 AND task = $4 AND window_start = $5",
                &[
                    key[0],
                    key[1],
                    key[2],
                    key[3],
                    key[4],
                    &keys::encode_json(&current),
                    &current.work_left(),
                ],
            )
            .await
            .map_err(pg_err(op))?;
            tx.commit().await.map_err(pg_err(op))?;
            Ok(true)
        })
    }
}

impl OutputStore for PgStore {
    fn output_get(
        &self,
        tenant: &str,
        connection: &str,
        workflow: &str,
        task: &str,
        window_start: i64,
    ) -> Result<Option<OutputRecord>, StoreError> {
        const OP: &str = "reading a window's output";
        let (t, c, w, k) = (
            tenant.to_owned(),
            connection.to_owned(),
            workflow.to_owned(),
            task.to_owned(),
        );
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let row = client
                .query_opt_cached(
                    "SELECT record FROM outputs WHERE tenant = $1 AND workflow = $2 \
                     AND connection = $3 AND task = $4 AND window_start = $5",
                    &[&t, &w, &c, &k, &window_start],
                )
                .await
                .map_err(pg_err(OP))?;
            row.map(|r| record(OP, &r, 0)).transpose()
        })
    }

    fn outputs_of(
        &self,
        tenant: &str,
        workflow: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<OutputRecord>, StoreError> {
        const OP: &str = "listing a workflow's outputs";
        let (t, w) = (tenant.to_owned(), workflow.to_owned());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT record FROM outputs WHERE tenant = $1 AND workflow = $2 \
                     AND window_start >= $3 AND window_start < $4 \
                     ORDER BY window_start, task, connection",
                    &[&t, &w, &since, &until],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter().map(|r| record(OP, r, 0)).collect()
        })
    }

    fn outputs_pending(&self) -> Result<Vec<(String, OutputRecord)>, StoreError> {
        const OP: &str = "listing outputs to publish";
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT tenant, record FROM outputs WHERE pending \
                     ORDER BY tenant, workflow, connection, task, window_start",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter()
                .map(|r| Ok((column(OP, r, 0)?, record(OP, r, 1)?)))
                .collect()
        })
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
        let (t, s) = (tenant.to_owned(), s.clone());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            client
                .execute_cached(
                    "INSERT INTO staging (tenant, run_id, task, attempt, connection, record) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (tenant, run_id, task, attempt, connection) \
                     DO UPDATE SET record = EXCLUDED.record",
                    &[
                        &t,
                        &(s.run_id as i64),
                        &s.task,
                        &i64::from(s.attempt),
                        &s.connection,
                        &keys::encode_json(&s),
                    ],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
    }

    fn staging_clear(&self, tenant: &str, s: &StagingRecord) -> Result<(), StoreError> {
        const OP: &str = "clearing staged objects";
        let (t, s) = (tenant.to_owned(), s.clone());
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            client
                .execute_cached(
                    "DELETE FROM staging WHERE tenant = $1 AND run_id = $2 AND task = $3 \
                     AND attempt = $4 AND connection = $5",
                    &[
                        &t,
                        &(s.run_id as i64),
                        &s.task,
                        &i64::from(s.attempt),
                        &s.connection,
                    ],
                )
                .await
                .map_err(pg_err(OP))?;
            Ok(())
        })
    }

    fn staging_all(&self) -> Result<Vec<(String, StagingRecord)>, StoreError> {
        const OP: &str = "listing staged objects";
        self.run(OP, |pool| async move {
            let client = pool.get().await.map_err(pool_err(OP))?;
            let rows = client
                .query_cached(
                    "SELECT tenant, record FROM staging \
                     ORDER BY tenant, run_id, task, attempt, connection",
                    &[],
                )
                .await
                .map_err(pg_err(OP))?;
            rows.iter()
                .map(|r| Ok((column(OP, r, 0)?, record(OP, r, 1)?)))
                .collect()
        })
    }
}
